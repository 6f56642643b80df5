"""VFD's detector model: a voice encoder and a face encoder trained with a triplet loss (``--model DFD``)."""
import contextlib
import logging

import torch
from torch import nn

from util import distributed

from . import losses, networks
from .base_model import BaseModel
from .config import ModelConfigError, add_config_options
from .training import NEGATIVE_MODES, check_training_combination, make_optimizer

logger = logging.getLogger(__name__)
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_encoder_input(x, what):
    """``x`` if it is encoder input (a float tensor); TypeError otherwise: batches become encoder input on their
    way from the loader (``data/transport.py``), never in the model."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = type(x).__name__ if not isinstance(x, torch.Tensor) else f'a {x.dtype} tensor'
        raise TypeError(f'{what}: the model takes encoder input (float tensors), got {kind}; pass batches through '
                        f'data.transport (create_dataset with transport.dataset_args(config, opt, phase), or '
                        f'Transport.to_encoder)')
    return x


embedding_spread = losses.embedding_spread   # kept here for scripts that import it from the model


class JointEncoder(nn.Module):
    """Both encoders behind one ``forward``, so that one DistributedDataParallel wrapper (or one compiled graph)
    covers every encoder call of a training step.

    forward(voice (B, 1, M, T), face (B, 3, S, S), neg_faces (B, K, 3, S, S) or None, neg_voices (B, K, 1, M, T)
    or None) -> voice_emb (B, E), face_emb (B, E), neg_emb (B, K, E) or None, neg_voice_emb (B, K, E) or None.
    ``separate_negatives`` encodes the positives and the negatives in two passes, as the released code does (its
    position embedding by batch index and its batch statistics make the split matter).
    """

    def __init__(self, voice, face, separate_negatives):
        super().__init__()
        self.voice, self.face = voice, face
        self.separate_negatives = separate_negatives

    def _encode(self, net, first, extra):
        """``net`` over ``first`` (B, ...) and ``extra`` (B, K, ...) or None: (B, E), (B, K, E) or None."""
        if extra is None:
            return net(first), None
        b, k = extra.shape[:2]
        flat = extra.flatten(0, 1)
        if self.separate_negatives:
            return net(first), net(flat).view(b, k, -1)
        both = net(torch.cat([first, flat]))
        return both[:b], both[b:].view(b, k, -1)

    def forward(self, voice, face, neg_faces=None, neg_voices=None):
        """The embeddings of one training step (see the class docstring)."""
        voice_emb, neg_voice_emb = self._encode(self.voice, voice, neg_voices)
        face_emb, neg_emb = self._encode(self.face, face, neg_faces)
        return voice_emb, face_emb, neg_emb, neg_voice_emb


class DFDModel(BaseModel):
    """Voice-face matching: the voice of a clip is the anchor, its own face the positive, other identities' faces
    the negatives.

    Loss per anchor a with positive p and negatives n_1..n_K (``--loss triplet``, margin m)::

        sum_k max(0, d(a, p) - d(a, n_k) + m)        d = ||voice embedding - face embedding||

    averaged over the anchors of a batch (the released code: one anchor with 5 negatives per step, m = 100).
    ``--margin_mode relative`` (the default, m = 0.25) first divides every distance of the batch by the batch's mean
    voice-to-negative distance, so the margin follows the scale of the embeddings (docs/training.md). The losses
    themselves are pure functions in ``models/losses.py`` (``--loss infonce`` is the other family). Distances are
    ``torch.pairwise_distance`` (as ``nn.TripletMarginLoss``). Only the anchor's voice and the faces are encoded.

    ``--negatives`` chooses where the negatives come from:

    * ``in_batch`` (the default): the negatives of an anchor are the faces of all OTHER identities among the batch's
      anchors (faces already encoded as positives, so a negative costs no extra encoding). Its loss per anchor is
      K times the mean hinge term over those negatives, i.e. the expected value of the sampled loss, so both modes
      have the same scale. Anchors with fewer than K other-identity faces in their batch are left out of the loss
      (``in_batch_skipped`` counts them).
    * ``sampled`` (the paper; fine-tuning): K = ``--n_negatives`` faces of other identities drawn by the dataset for
      each anchor; the loss sums the K hinge terms.

    Scoring: ``score = -||voice embedding - face embedding||``, higher = more likely real, whatever the loss.

    Speed: ``--amp bf16|fp16`` runs the encoders under autocast (fp16 with a gradient scaler), distances and the
    loss stay in float32; ``--channels_last`` (default on) stores images and feature maps channels-last;
    ``--compile`` compiles the training step's encoders with ``torch.compile``. Under torchrun the encoders train
    as one DistributedDataParallel module (``opt.world_size`` > 1).

    Networks: ``netG_audio`` (voice encoder) and ``netG_video`` (face encoder), saved as ``<epoch>_net_G_audio.pth``
    and ``<epoch>_net_G_video.pth`` like the released weights. Values reported on every loss line: the optimised
    loss (``triplet`` or ``infonce``), the mean positive / negative distances ``dist_pos`` / ``dist_neg``, the share
    of ``active`` hinge terms and the ``spread`` of the batch's face embeddings (mean distance to their mean over
    ``dist_pos``; near 0 means a collapse, see ``util/collapse.py``).
    """

    model_names = ['G_audio', 'G_video']

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        """The model's flags: encoders and their sizes, and for training the loss and the negatives."""
        add_config_options(parser)
        if is_train:
            parser.add_argument('--loss', type=str, default='triplet', choices=tuple(losses.LOSSES),
                                help=losses.LOSS_HELP)
            parser.add_argument('--margin', type=float, default=0.25,
                                help='triplet-loss margin (also the margin of the "active" share reported with '
                                     'the losses); see --margin_mode')
            parser.add_argument('--margin_mode', type=str, default='relative', choices=('absolute', 'relative'),
                                help='absolute: --margin (and --temperature) in embedding units; relative: the '
                                     'distances are divided by the batch\'s mean voice-to-negative distance first, '
                                     'so the loss does not change with the scale of the embeddings')
            parser.add_argument('--temperature', type=float, default=1.0,
                                help='--loss infonce: logits are -distance / temperature; infonce_paired and '
                                     'fake_pairs: cosine / temperature (the journal: 0.1)')
            parser.add_argument('--learn_temperature', action='store_true',
                                help='learn the temperature of a cosine loss (infonce_paired, fake_pairs) from '
                                     '--temperature on, as CLIP learns its logit scale; it is saved with the training '
                                     'state and restored by --continue_train')
            parser.add_argument('--negatives', type=str, default='in_batch', choices=NEGATIVE_MODES,
                                help='sampled: the paper\'s scheme, --n_negatives faces of other identities loaded and '
                                     'encoded per anchor; in_batch: every other-identity face of the batch is a '
                                     'negative of each anchor (much cheaper per negative; needs --batch_size > '
                                     '--n_negatives)')
            parser.add_argument('--negatives_scope', type=str, default='global', choices=('global', 'local'),
                                help='under torchrun with --negatives in_batch: global = the negatives of an anchor '
                                     'come from the whole global batch (embeddings gathered across processes with '
                                     'their gradients), so the recipe does not change with the number of processes; '
                                     'local = only from the process\'s own batch')
            parser.add_argument('--sync_bn', action='store_true',
                                help='BatchNorm statistics over the global batch (every process\'s samples together) '
                                     'instead of each process\'s own; with --negatives_scope global this makes a '
                                     'run on N processes of batch B train as one process of batch N x B')
            parser.add_argument('--n_negatives', type=int, default=5,
                                help='negatives per anchor (K of the loss); validation scores this many mismatched '
                                     'pairs per real pair')
        return parser

    def __init__(self, opt, config):
        BaseModel.__init__(self, opt, config)
        self.compat = config.compat
        self.score_fn = losses.SCORES[config.score]
        try:
            self.netG_audio, self.netG_video = config.build_encoders()
        except ValueError as err:
            raise ModelConfigError(str(err)) from err
        for net in (self.netG_audio, self.netG_video):
            networks.init_weights(net, opt.init_type, opt.init_gain, opt.token_init_std)
            if self.isTrain and getattr(opt, 'sync_bn', False):   # BatchNorm over every rank's batch together
                distributed.global_batch_norm(net)
        self.amp_dtype = AMP_DTYPES.get(opt.amp)
        self.dtype = torch.float64 if getattr(opt, 'precision', 'float32') == 'float64' else torch.float32
        self.channels_last = opt.channels_last == 'on'
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        self.netG_audio.to(self.device, dtype=self.dtype, memory_format=memory_format)
        self.netG_video.to(self.device, dtype=self.dtype, memory_format=memory_format)
        self.in_batch = False
        if self.isTrain:
            self._setup_training(opt)

    def _setup_training(self, opt):
        """The loss, the optimiser and the training step's encoder (DDP-wrapped and compiled where asked for)."""
        check_training_combination(opt, self.config)
        self.loss_kind = self.config.loss
        self.in_batch = opt.negatives == 'in_batch'
        try:
            self.criterion = losses.build_loss(opt, self.loss_kind).to(self.device)
        except ValueError as err:
            raise ModelConfigError(str(err)) from err
        self.loss_names = [self.loss_kind, *self.criterion.monitor_names]
        groups = networks.fan_in_param_groups([self.netG_audio, self.netG_video], opt.lr, opt.lr_fan_in)
        own = list(self.criterion.parameters())   # a learnt temperature trains at the base rate, without decay
        if own:
            groups.append({'params': own, 'lr': opt.lr, 'weight_decay': 0.0})
        self.optimizer_G = make_optimizer(opt, groups)
        self.optimizers.append(self.optimizer_G)
        if self.amp_dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(self.device.type)
        self.joint = JointEncoder(self.netG_audio, self.netG_video, separate_negatives=self.compat == 'released')
        self.step_encoder = self.joint
        if opt.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.step_encoder = DistributedDataParallel(self.joint, device_ids=ids,
                                                        output_device=None if ids is None else ids[0])
        if opt.compile:
            self.step_encoder = torch.compile(self.step_encoder, backend=opt.compile_backend,
                                              mode=opt.compile_mode if opt.compile_backend == 'inductor' else None)

    def training_modules(self):
        """The loss, whose learnt temperature (``--learn_temperature``) is saved with the training state."""
        return {'criterion': self.criterion} if getattr(self, 'criterion', None) is not None else {}

    def autocast(self):
        """Autocast context for ``--amp`` (a no-op without it)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, tensor, what):
        """Encoder input (``data/transport.py`` made it) on the model's device in its dtype, channels-last for image
        batches when asked for (no-ops for batches from a loader with this model's Transport)."""
        tensor = check_encoder_input(tensor, what).to(self.device, dtype=self.dtype, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def set_input(self, batch):
        """batch: encoder input (``data/transport.py``): ``voice`` (B, 1, M, T), ``face`` (B, 3, S, S); for training
        ``neg_faces`` (B, K, 3, S, S) (sampled negatives), with ``neg_voices`` (B, K, 1, M, T) for fake pairs, or
        ``identity`` (B,) (in-batch negatives)."""
        self.voice = self._to_device(batch['voice'], 'voice')
        self.face = self._to_device(batch['face'], 'face')
        neg = batch.get('neg_faces') if not self.in_batch else None
        self.neg_faces = self._to_device(neg, 'neg_faces') if neg is not None else None
        neg_voices = batch.get('neg_voices') if getattr(self, 'criterion', None) is not None and \
            self.criterion.needs_neg_voices else None
        self.neg_voices = self._to_device(neg_voices, 'neg_voices') if neg_voices is not None else None
        self.identity = batch['identity'].to(self.device, non_blocking=True) if 'identity' in batch else None

    def forward(self, encoder=None):
        """voice_emb (B, E), face_emb (B, E) and, with sampled negatives, neg_emb (B, K, E) (and neg_voice_emb
        (B, K, E) for fake pairs), all float32.

        ``encoder`` defaults to the training step's encoder (DDP-wrapped and compiled where asked for).
        """
        with self.autocast():
            embs = (encoder or self.step_encoder)(self.voice, self.face, self.neg_faces,
                                                  getattr(self, 'neg_voices', None))
        self.voice_emb, self.face_emb, self.neg_emb, self.neg_voice_emb = (
            e.to(self.dtype) if e is not None else None for e in embs)

    def compute_loss(self):
        """The ``--loss`` of the current embeddings (float32, ``models/losses.py``), with the monitoring values of
        ``loss_names`` set as ``loss_<name>``.

        Under torchrun with in-batch negatives from the global batch (``--negatives_scope global``, the default),
        every rank gathers all ranks' embeddings with their gradients and computes the loss of the whole global batch:
        the same loss, the same negatives and, after DDP averages the gradients, the same step as one process with
        the global batch (tests/test_distributed.py)."""
        voice, face, identity = self.voice_emb, self.face_emb, self.identity
        if self.in_batch and self.opt.negatives_scope == 'global' and distributed.active():
            voice, face = distributed.gather_with_grad(voice), distributed.gather_with_grad(face)
            identity = distributed.gather(identity)
        outputs = losses.Outputs(voice, face, self.neg_emb, self.neg_voice_emb, identity)
        loss, monitor = self.criterion(outputs)
        for name, value in monitor.items():
            setattr(self, 'loss_' + name, value)
        setattr(self, 'loss_' + self.loss_kind, loss)
        return loss

    def optimize_parameters(self):
        """One step: forward, the loss (NaN/inf flagged on the device), backward and Adam (scaled under fp16)."""
        self.forward()
        loss = self.compute_loss()
        self.flag_nonfinite(loss)
        self.optimizer_G.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer_G)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer_G.step()

    def recalibrate_batch_norm(self, batches):
        """BatchNorm statistics over ``batches`` through the plain joint module (no DDP collectives, so rank 0 can
        do it alone)."""
        return BaseModel.recalibrate_batch_norm(self, batches, forward=lambda: self.forward(self.joint))

    # -- scoring ----------------------------------------------------------------------------------------------------
    def embed(self, voice=None, face=None):
        """Embeddings for evaluation, (B, E) each (None where no input is given); call in eval mode.

        Each sample is embedded as if encoded on its own (``embed_each``), so scores do not depend on how pairs are
        batched (in released mode that is what the released code gives for a pair scored on its own).
        """
        with self.autocast():
            voice_emb = self.netG_audio.embed_each(self._to_device(voice, 'voice')).float() \
                if voice is not None else None
            face_emb = self.netG_video.embed_each(self._to_device(face, 'face')).float() if face is not None else None
        return voice_emb, face_emb

    def score_pairs(self, voice, face):
        """Scores (B,) of voice-face pairs by the config's score function (minus the L2 distance)."""
        with torch.inference_mode():
            return self.score_fn(*self.embed(voice, face))


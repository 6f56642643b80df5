"""VFD's detector model: a voice encoder and a face encoder trained with a triplet loss (``--model DFD``)."""
import torch
import torch.nn.functional as F

from . import networks
from .base_model import BaseModel

DATA_OPTION_KEYS = ('load_size', 'preprocess')
NEGATIVE_MODES = ('sampled', 'in_batch')


class DFDModel(BaseModel):
    """Voice-face matching: the voice of a clip is the anchor, its own face the positive, other identities' faces
    the negatives.

    Loss per anchor a with positive p and negatives n_1..n_K (``--margin`` m, default 100)::

        sum_k max(0, ||v(a) - f(p)|| - ||v(a) - f(n_k)|| + m)

    averaged over the anchors of a batch (the released code: one anchor with 5 negatives per step). Distances are
    ``torch.pairwise_distance`` (as ``nn.TripletMarginLoss`` and ``nn.PairwiseDistance``). Only the anchor's voice
    and the faces are encoded; negatives need no voice.

    ``--negatives`` chooses where the negatives come from:

    * ``sampled`` (default, the paper): K = ``--n_negatives`` faces of other identities drawn by the dataset for
      each anchor; the loss sums the K hinge terms.
    * ``in_batch``: the negatives of an anchor are the faces of all OTHER identities among the batch's anchors
      (faces already encoded as positives, so a negative costs no extra encoding). Its loss per anchor is
      K times the mean hinge term over those negatives, i.e. the expected value of the sampled loss, so both modes
      have the same scale. Anchors with fewer than K other-identity faces in their batch are left out of the loss
      (``in_batch_skipped`` counts them).

    Scoring: ``score = -||voice embedding - face embedding||``, higher = more likely real.

    Networks: ``netG_audio`` (voice encoder) and ``netG_video`` (face encoder), saved as ``<epoch>_net_G_audio.pth``
    and ``<epoch>_net_G_video.pth`` like the released weights. Losses reported: ``triplet`` (optimised) and the
    mean positive / negative distances ``dist_pos`` / ``dist_neg`` (monitoring only).
    """

    model_names = ['G_audio', 'G_video']
    checkpoint_option_keys = networks.ARCH_KEYS + DATA_OPTION_KEYS
    plain_checkpoint_defaults = {'encoder_compat': 'released'}

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.add_argument('--encoder_compat', type=str, default='fixed', choices=networks.COMPAT_MODES,
                            help='released: the authors\' forward pass with its three quirks (position embedding by '
                                 'batch index, attention scale dim**-0.5, batch statistics in the voice stem), for '
                                 'their weights; fixed: the quirks corrected. Test time: read from the checkpoint; '
                                 'plain state dicts default to released')
        parser.add_argument('--dim', type=int, default=1024, help='transformer width of both encoders')
        parser.add_argument('--depth', type=int, default=6, help='transformer layers of each encoder')
        parser.add_argument('--heads', type=int, default=8, help='attention heads (must divide --dim)')
        parser.add_argument('--mlp_dim', type=int, default=2048, help='hidden width of the transformer feed-forward')
        parser.add_argument('--emb_dim', type=int, default=2048, help='size of the voice and face embeddings')
        parser.add_argument('--width_mult', type=float, default=1.0,
                            help='multiplier on every convolution channel count of both stems')
        parser.add_argument('--n_mels', type=int, default=512, help='mel bins of the stored voice features')
        parser.add_argument('--n_frames', type=int, default=301,
                            help='mel frames fed to the voice encoder (3 s at hop 160 = 301); longer mels are cut, '
                                 'shorter ones padded with silent frames')
        if is_train:
            parser.add_argument('--margin', type=float, default=100.0, help='triplet-loss margin')
            parser.add_argument('--negatives', type=str, default='sampled', choices=NEGATIVE_MODES,
                                help='sampled: the paper\'s scheme, --n_negatives faces of other identities loaded and '
                                     'encoded per anchor; in_batch: every other-identity face of the batch is a '
                                     'negative of each anchor (much cheaper per negative; needs --batch_size > '
                                     '--n_negatives)')
        return parser

    def __init__(self, opt):
        BaseModel.__init__(self, opt)
        self.loss_names = ['triplet', 'dist_pos', 'dist_neg']
        self.compat = opt.encoder_compat
        self.in_batch = self.isTrain and getattr(opt, 'negatives', 'sampled') == 'in_batch'
        if self.in_batch:
            self.loss_names.append('in_batch_skipped')
        self.netG_audio, self.netG_video = networks.define_encoders(networks.arch_args(opt), opt.init_type,
                                                                    opt.init_gain)
        self.netG_audio.to(self.device)
        self.netG_video.to(self.device)
        if self.isTrain:
            params = list(self.netG_audio.parameters()) + list(self.netG_video.parameters())
            self.optimizer_G = torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999))
            self.optimizers.append(self.optimizer_G)

    def set_input(self, batch):
        """batch: ``voice`` (B, 1, M, T), ``face`` (B, 3, S, S); for training ``neg_faces`` (B, K, 3, S, S)
        (sampled negatives) or ``identity`` (B,) (in-batch negatives)."""
        self.voice = batch['voice'].to(self.device, non_blocking=True)
        self.face = batch['face'].to(self.device, non_blocking=True)
        self.neg_faces = batch['neg_faces'].to(self.device, non_blocking=True) if 'neg_faces' in batch else None
        self.identity = batch['identity'].to(self.device, non_blocking=True) if 'identity' in batch else None

    def forward(self):
        """voice_emb (B, E), face_emb (B, E) and, with negatives, neg_emb (B, K, E)."""
        self.voice_emb = self.netG_audio(self.voice)
        if self.neg_faces is None or self.in_batch:
            self.face_emb, self.neg_emb = self.netG_video(self.face), None
            return
        b, k = self.neg_faces.shape[:2]
        negatives = self.neg_faces.flatten(0, 1)
        if self.compat == 'released':  # the released code encodes the positive and the negatives in separate passes
            self.face_emb = self.netG_video(self.face)
            self.neg_emb = self.netG_video(negatives).view(b, k, -1)
        else:
            faces = self.netG_video(torch.cat([self.face, negatives]))
            self.face_emb, self.neg_emb = faces[:b], faces[b:].view(b, k, -1)

    def compute_loss(self):
        if self.in_batch:
            return self._in_batch_loss()
        d_pos = F.pairwise_distance(self.voice_emb, self.face_emb)                          # (B,)
        d_neg = F.pairwise_distance(self.voice_emb.unsqueeze(1).expand_as(self.neg_emb), self.neg_emb)  # (B, K)
        self.loss_triplet = (d_pos.unsqueeze(1) - d_neg + self.opt.margin).clamp(min=0).mean(0).sum()
        self.loss_dist_pos = d_pos.detach().mean()
        self.loss_dist_neg = d_neg.detach().mean()
        return self.loss_triplet

    def _in_batch_loss(self):
        assert self.identity is not None, 'in-batch negatives need the batch\'s identity labels'
        k = self.opt.n_negatives
        dist = torch.cdist(self.voice_emb, self.face_emb, compute_mode='donot_use_mm_for_euclid_dist')  # (B, B)
        d_pos = dist.diagonal()
        other = self.identity.unsqueeze(1) != self.identity.unsqueeze(0)                  # (B, B) valid negatives
        n_other = other.sum(1)
        used = n_other >= k
        hinge = (d_pos.unsqueeze(1) - dist + self.opt.margin).clamp(min=0) * other
        per_anchor = k * hinge.sum(1) / n_other.clamp(min=1)
        self.loss_triplet = (per_anchor * used).sum() / used.sum().clamp(min=1)
        self.loss_dist_pos = d_pos.detach().mean()
        self.loss_dist_neg = (dist.detach() * other).sum() / other.sum().clamp(min=1)
        self.loss_in_batch_skipped = (~used).sum()
        return self.loss_triplet

    def optimize_parameters(self):
        self.forward()
        self.optimizer_G.zero_grad(set_to_none=True)
        self.compute_loss().backward()
        self.optimizer_G.step()

    # -- scoring ----------------------------------------------------------------------------------------------------
    def embed(self, voice=None, face=None):
        """Embeddings for evaluation, (B, E) each (None where no input is given).

        Call in eval mode. In released mode every sample is encoded as the released code encodes a pair on its own
        (batch of one), so scores do not depend on how pairs are batched.
        """
        alone = self.compat == 'released'
        voice_emb = self.netG_audio(voice.to(self.device), alone=alone) if voice is not None else None
        face_emb = self.netG_video(face.to(self.device), alone=alone) if face is not None else None
        return voice_emb, face_emb

    def score_pairs(self, voice, face):
        """Scores (B,) of voice-face pairs: minus the L2 distance of their embeddings."""
        with torch.inference_mode():
            voice_emb, face_emb = self.embed(voice, face)
            return -F.pairwise_distance(voice_emb, face_emb)

    def score_triplets(self, batch):
        """Validation scores of a Vox_image batch: real pairs (B,) and mismatched pairs (B, K).

        Real = the anchor's voice with its own face; mismatched = the anchor's voice with each negative face.
        """
        with torch.inference_mode():
            neg = batch['neg_faces']
            b, k = neg.shape[:2]
            voice_emb, faces = self.embed(batch['voice'], torch.cat([batch['face'], neg.flatten(0, 1)]))
            real = -F.pairwise_distance(voice_emb, faces[:b])
            fake = -F.pairwise_distance(voice_emb.unsqueeze(1).expand(b, k, -1), faces[b:].view(b, k, -1))
            return real, fake

    def mismatch_hint(self, state_dict, meta):
        pos = state_dict.get('pos_embedding')
        if pos is None:
            return ''
        stored = 'released' if pos.shape[0] == networks.RELEASED_MAX_BATCH and pos.shape[1] == 1 else 'fixed'
        if stored != self.compat:
            return (f'\nThe file looks like a {stored}-mode checkpoint (pos_embedding {tuple(pos.shape)}) but the '
                    f'model was built with --encoder_compat {self.compat}; try --encoder_compat {stored}.')
        return ('\nCheck the size options (--dim --depth --mlp_dim --emb_dim --width_mult --crop_size --n_mels '
                '--n_frames).')

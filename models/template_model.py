"""A complete small model to copy when writing a new one (``--model template``).

Copy this file to ``models/<name>_model.py``, rename the class ``<Name>Model`` (the file name without underscores
plus ``Model``, compared case-insensitively) and change what it computes. What it shows:

* flags: ``modify_commandline_options`` adds the encoder flags every ModelConfig is made from
  (``add_config_options``: ``--voice_encoder --face_encoder --dim ...``) and the model's own (here
  ``--template_temperature``);
* networks: built from ``self.config`` (``ModelConfig.build_encoders``), named in ``model_names`` so that saving,
  loading, ``test_DF.py`` and ``scripts/detect.py`` find them (``<epoch>_net_G_audio.pth``, ``..._G_video.pth``);
* input: ``set_input`` receives encoder input on the device (``data/transport.py`` made it from the loader's batch);
* errors the user can fix: ``ModelConfigError`` (one ``error:`` line, exit status 2), never a bare exception;
* training: ``forward`` -> ``compute_loss`` -> ``optimize_parameters``; the loss here is a softmax over minus the
  voice-face distances of the batch (each voice must pick its own face among the batch's faces), written out in
  full rather than taken from ``models/losses.py``; the reported values are ``loss_names``;
* scoring: ``score_pairs`` (higher = more real), by the config's score function.

Everything else (building, loading a checkpoint, saving, learning-rate schedules, the training state for
``--continue_train``) comes from ``BaseModel``.
"""
import torch
import torch.nn.functional as F

from . import losses, networks
from .base_model import BaseModel
from .config import ModelConfigError, add_config_options


class TemplateModel(BaseModel):
    """Voice-face matching with in-batch negatives and a softmax loss: a template (see the module docstring)."""

    model_names = ['G_audio', 'G_video']

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        """The encoder flags of a ModelConfig, and this model's own."""
        add_config_options(parser)
        # the datasets read these: negatives come from the batch itself, so training items carry none; validation
        # scores --n_negatives mismatched pairs per real pair
        parser.set_defaults(negatives='in_batch', loss='infonce')
        parser.add_argument('--n_negatives', type=int, default=5, help='mismatched pairs per real pair in validation')
        if is_train:
            parser.add_argument('--template_temperature', type=float, default=0.1,
                                help='the softmax temperature over minus the voice-face distances')
        return parser

    def __init__(self, opt, config):
        super().__init__(opt, config)
        self.netG_audio, self.netG_video = config.build_encoders()
        for net in (self.netG_audio, self.netG_video):
            networks.init_weights(net, opt.init_type, opt.init_gain, opt.token_init_std)
            net.to(self.device)
        self.score_fn = losses.SCORES[config.score]
        if self.isTrain:
            if not opt.template_temperature > 0:
                raise ModelConfigError(f'--template_temperature must be above 0, got {opt.template_temperature}')
            self.loss_names = ['infonce', 'dist_pos']
            params = list(self.netG_audio.parameters()) + list(self.netG_video.parameters())
            self.optimizer = torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999))
            self.optimizers.append(self.optimizer)

    def set_input(self, batch):
        """voice (B, 1, M, T) and face (B, 3, S, S), encoder input on the device."""
        self.voice = batch['voice'].to(self.device)
        self.face = batch['face'].to(self.device)

    def forward(self):
        """The embeddings of the batch's voices and faces, (B, E) each."""
        self.voice_emb = self.netG_audio(self.voice)
        self.face_emb = self.netG_video(self.face)

    def compute_loss(self):
        """Voice i must pick face i among the batch's faces: cross-entropy over -distance / temperature."""
        distances = torch.cdist(self.voice_emb.float(), self.face_emb.float())   # (B, B)
        targets = torch.arange(len(distances), device=distances.device)
        self.loss_infonce = F.cross_entropy(-distances / self.opt.template_temperature, targets)
        self.loss_dist_pos = distances.diagonal().mean().detach()
        return self.loss_infonce

    def optimize_parameters(self):
        """One step: forward, the loss, backward, Adam."""
        self.forward()
        loss = self.compute_loss()
        self.flag_nonfinite(loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def score_pairs(self, voice, face):
        """Scores (B,) of voice-face pairs, higher = more real."""
        with torch.inference_mode():
            return self.score_fn(self.netG_audio(voice.to(self.device)), self.netG_video(face.to(self.device)))

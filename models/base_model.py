"""The model contract, and saving, loading and reporting driven by the names a model declares.

A model subclasses ``BaseModel`` and

* declares ``model_names`` (networks ``self.net<name>``, saved as ``<epoch>_net_<name>.pth``), fills ``loss_names``
  (values ``self.loss_<name>``, reported by ``get_current_losses``) and, when training, appends its optimisers to
  ``self.optimizers``;
* is built from a ``ModelConfig`` (``models/config.py``), which every checkpoint stores;
* implements the abstract methods below (``abc``: a model without one cannot be made): ``set_input(batch)``,
  ``forward()``, ``optimize_parameters()`` (one training step) and ``score_pairs(voice, face)`` (the evaluation:
  validation, test_DF.py and detect.py all score through it); it may add flags in ``modify_commandline_options``
  (``models/config.py: add_config_options`` gives the encoder flags a ModelConfig is made from).

``build`` (a new model from a config or the command line) and ``from_checkpoint`` (a stored one, its config read
from the files) are the same for every model. ``models/template_model.py`` is a complete small model to copy.

The file formats and the safe reading live in ``models/checkpoint.py``.
"""
import abc
import logging
from collections import OrderedDict

import torch

from . import checkpoint, networks, training
from . import config as config_module

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss, a collapse); the message says what is kept and what to try."""


class BaseModel(abc.ABC):
    """Base class of the models; see the module docstring for the contract (``models/template_model.py`` is a
    complete small model to copy)."""

    model_names = []

    def __init__(self, opt, config):
        self.opt = opt
        self.config = config
        self.isTrain = opt.isTrain
        self.device = torch.device(opt.device)
        self.save_dir = f'{opt.checkpoints_dir}/{opt.name}'
        self.loss_names = []
        self.optimizers = []
        self.schedulers = []
        self.scheduled_lrs = []
        self.scaler = None        # a GradScaler when training in float16
        self.loaded_meta = None   # the facts stored with the checkpoint the weights came from (None: plain files)
        self.run_id = checkpoint.new_run_id()   # written into every network file; a resumed run keeps its own
        self.nonfinite = None     # a device flag set by the training step when a loss is NaN or infinite

    # -- the contract ---------------------------------------------------------------------------------------------
    @staticmethod
    def modify_commandline_options(parser, is_train):
        """Add the model's flags to ``parser`` (and change defaults); return it."""
        return parser

    @abc.abstractmethod
    def set_input(self, batch):
        """Take a batch from the loader (keys: ``data/base_dataset.py``; voices and faces already encoder input on the
        model's device, ``data/transport.py``)."""
        raise NotImplementedError

    @abc.abstractmethod
    def forward(self):
        """Compute the embeddings of the current input."""
        raise NotImplementedError

    @abc.abstractmethod
    def optimize_parameters(self):
        """One training step on the current input: forward, loss, backward, optimiser step."""
        raise NotImplementedError

    @abc.abstractmethod
    def score_pairs(self, voice, face):
        """Scores (B,) of voice-face pairs, higher = more likely real; call in eval mode."""
        raise NotImplementedError

    # -- building -------------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, opt, config=None):
        """A new model: ``config`` or, without one, the command line's (``--encoder_compat auto`` = fixed)."""
        if config is None:
            compat = 'fixed' if opt.encoder_compat == 'auto' else opt.encoder_compat
            config = cls.config_from_options(opt, compat)
        config.apply_to(opt)   # the data side reads the sizes and inputs the encoders were built with
        return cls(opt, config)

    @classmethod
    def from_checkpoint(cls, opt, directory, tag):
        """The model stored as ``<directory>/<tag>_net_*.pth``, each file read once, with the data options of ``opt``
        set to the ones it was trained with.

        Project checkpoints carry their config; a differing size or compat typed on the command line is ignored with
        a warning. Plain state dicts (the authors' files) carry none: the command line gives the sizes, and
        ``--encoder_compat auto`` reads the mode from the position embedding's shape.
        """
        loaded = checkpoint.read_nets(directory, tag, cls.model_names, getattr(opt, 'allow_mixed_runs', False))
        meta = next(iter(loaded.values()))[1]
        if meta is None:
            compat = opt.encoder_compat
            if compat == 'auto':
                compat = config_module.stored_compat(loaded[cls.model_names[0]][0]) or 'released'
            config = cls.config_from_options(opt, compat)
        else:
            config = config_module.config_from_meta(meta, directory, tag)
            if opt.encoder_compat not in ('auto', config.compat):
                logger.warning('--encoder_compat %s ignored: the checkpoint was trained with %s', opt.encoder_compat,
                               config.compat)
        # before the real networks take memory
        config_module.check_fits(config, loaded, directory, tag, cls.model_names)
        config = training.training_loss(opt, config)
        config.apply_to(opt)
        model = cls(opt, config)
        model.load_state_dicts(loaded, directory, tag)
        logger.info('loaded %s/%s_net_*.pth (%s)', directory, tag,
                    'plain state dicts' if meta is None else f'epoch {meta.get("epoch")}')
        return model

    @staticmethod
    def config_from_options(opt, compat):
        """The command line's model config; ModelConfigError for a combination that cannot work."""
        try:
            return config_module.ModelConfig.from_options(opt, compat)
        except ValueError as err:
            raise config_module.ModelConfigError(str(err)) from err

    # -- networks and modes ---------------------------------------------------------------------------------------
    def networks(self):
        """``[(name, network)]`` for every name in ``model_names``."""
        return [(name, getattr(self, 'net' + name)) for name in self.model_names]

    def eval(self):
        """Put every network in eval mode."""
        for _, net in self.networks():
            net.eval()

    def train(self):
        """Put every network in training mode."""
        for _, net in self.networks():
            net.train()

    def setup(self, opt):
        """Create the learning-rate schedulers when training, and log the networks."""
        if self.isTrain:
            self.schedulers = [networks.get_scheduler(optimizer, opt) for optimizer in self.optimizers]
            self.scheduled_lrs = [[group['lr'] for group in o.param_groups] for o in self.optimizers]
        for name, net in self.networks():
            if opt.verbose:
                logger.info('%s', net)
            logger.info('[net%s] %s', name, networks.summary(getattr(net, 'module', net)))

    # -- losses ---------------------------------------------------------------------------------------------------
    def get_current_losses(self):
        """name -> float for every name in ``loss_names`` (this synchronises with the device; call it sparingly)."""
        return OrderedDict((name, float(getattr(self, 'loss_' + name).detach())) for name in self.loss_names)

    def flag_nonfinite(self, loss):
        """Remember, on the device and without waiting for it, whether ``loss`` is NaN or infinite."""
        bad = ~torch.isfinite(loss.detach())
        self.nonfinite = bad if self.nonfinite is None else self.nonfinite | bad

    def loss_went_nonfinite(self):
        """Whether any loss since the start was NaN or infinite (one host-device synchronisation)."""
        return self.nonfinite is not None and bool(self.nonfinite)

    # -- learning rates -------------------------------------------------------------------------------------------
    def apply_warmup(self, step, progress=None):
        """Scale every learning rate by ``step / --warmup_steps`` while ``step`` (1-based) is within the warm-up; with
        ``--lr_policy cosine_warmup``, by the journal's factor at ``progress`` epochs (``networks.cosine_warmup_factor``)
        at every step."""
        factor = None
        warmup = self.opt.warmup_steps
        if warmup > 0 and step <= warmup + 1:
            factor = min(1.0, step / warmup)
        if getattr(self.opt, 'lr_policy', None) == 'cosine_warmup' and progress is not None:
            total = self.opt.n_epochs + self.opt.n_epochs_decay
            factor = (1.0 if factor is None else factor) * networks.cosine_warmup_factor(
                progress, self.opt.warmup_epochs, total)
        if factor is not None:
            self._scale_learning_rates(factor)

    def _scale_learning_rates(self, factor):
        """Set every parameter group's learning rate to ``factor`` x the rate its scheduler last set."""
        for optimizer, rates in zip(self.optimizers, self.scheduled_lrs):
            for group, rate in zip(optimizer.param_groups, rates):
                group['lr'] = rate * factor

    def update_learning_rate(self, metric=None):
        """Step every scheduler once (an epoch); ``metric`` feeds the plateau policy. Returns the new rate."""
        self._scale_learning_rates(1.0)   # undo a warm-up factor first
        old = self.optimizers[0].param_groups[0]['lr']
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if metric is not None:
                    scheduler.step(metric)
            else:
                scheduler.step()
        self.scheduled_lrs = [[group['lr'] for group in o.param_groups] for o in self.optimizers]
        new = self.optimizers[0].param_groups[0]['lr']
        if new != old:
            logger.info('learning rate %.7f -> %.7f', old, new)
        return new

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def save_networks(self, tag, **facts):
        """Write ``<tag>_net_<name>.pth`` for every network (tag: an epoch, 'latest', 'best') with the model config
        and ``facts`` (epoch, total_iters, validation results)."""
        checkpoint.write_nets(self.save_dir, tag, self.networks(), model=self.opt.model,
                              config=self.config.to_dict(), run_id=self.run_id, **facts)

    def load_state_dicts(self, loaded, directory, tag):
        """Load ``{name: (state_dict, meta)}`` read by ``checkpoint.read_nets(directory, tag, ...)``, strictly."""
        for name, net in self.networks():
            state_dict = loaded[name][0]
            checkpoint.load_into(net, state_dict, checkpoint.net_path(directory, tag, name),
                                 self.mismatch_hint(state_dict))
        self.loaded_meta = next(iter(loaded.values()))[1]
        if self.loaded_meta and self.loaded_meta.get('run_id'):
            self.run_id = self.loaded_meta['run_id']

    def mismatch_hint(self, state_dict):
        """Which mode or which size options to try when a state dict does not fit."""
        return config_module.mismatch_hint(self.config.compat, state_dict)

    def save_training_state(self, tag, **counters):
        """Write the weights, optimisers, schedulers, scaler, RNG states and ``counters`` to resume training."""
        checkpoint.write_train_state(self.save_dir, tag, self.networks(), self.optimizers, self.schedulers,
                                     self.scaler, extras=self.training_modules(), **counters)

    def training_modules(self):
        """{name: module} of the modules besides the networks whose state a resumed training needs (models with a
        loss that owns parameters return it here)."""
        return {}

    def load_training_state(self, tag):
        """Restore what ``save_training_state`` wrote (its weights too: one consistent moment); return the
        counters."""
        state = checkpoint.read_train_state(self.save_dir, tag)
        path = checkpoint.train_state_path(self.save_dir, tag)
        for name, net in self.networks():
            if name in state['nets']:
                checkpoint.load_into(net, state['nets'][name], path)
        extras = state.get('extras') if isinstance(state.get('extras'), dict) else {}
        for name, module in self.training_modules().items():
            if name in extras:
                checkpoint.load_into(module, extras[name], path)
            elif list(module.state_dict()):
                logger.warning('%s holds no state for %s; it starts from the options', path, name)
        if state.get('scaler') and self.scaler is not None:
            self.scaler.load_state_dict(state['scaler'])
        for optimizer, saved in zip(self.optimizers, state['optimizers']):
            try:
                optimizer.load_state_dict(saved)
            except ValueError as err:   # other parameter groups: another --lr_fan_in, or a state from before it
                raise checkpoint.CheckpointError(
                    f'{path}: the optimiser state does not fit ({err}); it was saved with other learning-rate groups: '
                    f'resume with the --lr_fan_in of that run (0 for runs from before the option existed)') from err
        for scheduler, saved in zip(self.schedulers, state['schedulers']):
            scheduler.load_state_dict(saved)
        self.scheduled_lrs = [list(scheduler.get_last_lr()) for scheduler in self.schedulers]
        checkpoint.restore_rng(state)
        return checkpoint.counters(state)

    def bytes_per_save(self):
        """Disk space one epoch's saving takes (network files and the training state)."""
        return checkpoint.bytes_per_save(self.networks(), self.optimizers)

    def recalibrate_batch_norm(self, batches, forward=None):
        """Recompute the BatchNorm running statistics exactly over ``batches`` (``networks.recalibrate_batch_norm``);
        ``forward`` replaces ``self.forward``. Returns the number of batches used."""
        def run(batch):
            self.set_input(batch)
            (forward or self.forward)()
        return networks.recalibrate_batch_norm([net for _, net in self.networks()], run, batches)

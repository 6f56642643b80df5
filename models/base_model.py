"""The model contract, and saving, loading and reporting driven by the names a model declares.

A model subclasses ``BaseModel`` and

* declares ``model_names`` (networks ``self.net<name>``; saved as ``<epoch>_net_<name>.pth``), ``loss_names``
  (values ``self.loss_<name>``, reported by ``get_current_losses``) and, when training, appends its optimisers to
  ``self.optimizers``;
* declares ``checkpoint_option_keys``: the options that define its networks and their inputs; they are stored in
  every checkpoint and restored from it at test time (``restore_options``), so nobody has to retype them;
* implements ``modify_commandline_options``, ``set_input(batch)``, ``forward()`` and ``optimize_parameters()``.

Checkpoint files (one per network) are written atomically. A project checkpoint is a dict
``{'format': 'vfd-checkpoint', 'version': 1, 'state_dict': ..., 'options': {...}, 'epoch': ..., ...}``; a plain state
dict (the format of the authors' released ``latest_net_G_audio.pth`` / ``latest_net_G_video.pth``) loads too and
takes its options from the command line and ``plain_checkpoint_defaults``. Loading never unpickles arbitrary
objects (``torch.load(weights_only=True)``).
"""
import logging
import os
import pickle
from collections import OrderedDict

import torch

from util import util

from . import networks

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'vfd-checkpoint'
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, written, or does not fit the model; the message says which file and why."""


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the message says what is kept and what to try."""


def read_checkpoint(path):
    """Load a checkpoint file safely; return ``(state_dict, meta)`` where ``meta`` is None for a plain state dict."""
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint {path} not found')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f'{path} was refused: it holds Python objects other than tensors and plain containers, '
                              f'which could run code when loaded. Only load checkpoints from sources you trust, and '
                              f'convert them to plain state dicts. ({str(err).splitlines()[0]})') from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f'{path} cannot be read; the file may be truncated or not a PyTorch checkpoint '
                              f'({str(err).splitlines()[0] if str(err) else type(err).__name__})') from err
    if isinstance(obj, dict) and obj.get('format') == CHECKPOINT_FORMAT:
        meta = {k: v for k, v in obj.items() if k != 'state_dict'}
        return obj['state_dict'], meta
    plain = isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in obj.items())
    if plain:
        prefix = 'module.'
        if all(k.startswith(prefix) for k in obj):  # saved from a DataParallel / DDP wrapper
            obj = {k[len(prefix):]: v for k, v in obj.items()}
        return obj, None
    raise CheckpointError(f'{path} is neither a VFD checkpoint nor a plain state dict of tensors')


def describe_mismatch(net, state_dict):
    """Lines listing the keys and shapes of ``state_dict`` that do not fit ``net`` (empty when it fits)."""
    own = net.state_dict()
    lines = []
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing:
        lines.append(f'missing keys ({len(missing)}): {", ".join(missing[:8])}{" ..." if len(missing) > 8 else ""}')
    if unexpected:
        lines.append(f'unexpected keys ({len(unexpected)}): {", ".join(unexpected[:8])}'
                     f'{" ..." if len(unexpected) > 8 else ""}')
    for k in shapes[:8]:
        lines.append(f'shape of {k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)}')
    if len(shapes) > 8:
        lines.append(f'... and {len(shapes) - 8} more shape mismatches')
    return lines


class BaseModel:
    """Base class of the models; see the module docstring for the contract."""

    model_names = []
    checkpoint_option_keys = ()
    plain_checkpoint_defaults = {}

    def __init__(self, opt):
        self.opt = opt
        self.isTrain = opt.isTrain
        self.device = torch.device(opt.device)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names = []
        self.optimizers = []
        self.schedulers = []
        self.loaded_meta = {}
        self.nonfinite = None  # a device flag set by the training step when a loss is NaN or infinite

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    def set_input(self, batch):
        raise NotImplementedError

    def forward(self):
        raise NotImplementedError

    def optimize_parameters(self):
        raise NotImplementedError

    # -- set-up -------------------------------------------------------------------------------------------------
    def setup(self, opt):
        """Create schedulers when training; load weights for testing or ``--continue_train``; log the networks."""
        if self.isTrain:
            self.schedulers = [networks.get_scheduler(optimizer, opt) for optimizer in self.optimizers]
            self.scheduled_lrs = [[group['lr'] for group in o.param_groups] for o in self.optimizers]
        if not self.isTrain or opt.continue_train:
            self.load_networks(opt.epoch)
        self.print_networks(opt.verbose)

    def networks(self):
        return [(name, getattr(self, 'net' + name)) for name in self.model_names]

    def eval(self):
        for _, net in self.networks():
            net.eval()

    def train(self):
        for _, net in self.networks():
            net.train()

    def test(self):
        """Forward pass without gradients."""
        with torch.inference_mode():
            self.forward()

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

    def apply_warmup(self, step):
        """Scale every learning rate by ``step / --warmup_steps`` while ``step`` (1-based) is within the warm-up."""
        warmup = getattr(self.opt, 'warmup_steps', 0)
        if warmup <= 0 or step > warmup + 1:
            return
        self._scale_learning_rates(min(1.0, step / warmup))

    def _scale_learning_rates(self, factor):
        """Set every parameter group's learning rate to ``factor`` x the rate its scheduler last set."""
        for optimizer, rates in zip(self.optimizers, self.scheduled_lrs):
            for group, rate in zip(optimizer.param_groups, rates):
                group['lr'] = rate * factor

    def update_learning_rate(self, metric=None):
        """Step every scheduler once (an epoch); ``metric`` feeds the plateau policy."""
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

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def checkpoint_options(self):
        return {key: getattr(self.opt, key) for key in self.checkpoint_option_keys}

    def checkpoint_path(self, epoch, name, directory=None):
        """``<directory>/<epoch>_net_<name>.pth``; the directory defaults to this run's folder."""
        return os.path.join(directory or self.save_dir, f'{epoch}_net_{name}.pth')

    @staticmethod
    def cpu_state_dict(net):
        """A CPU copy of a network's state dict, without a DDP/compile wrapper's ``module.`` prefix."""
        return {k: v.detach().to('cpu', copy=True) for k, v in getattr(net, 'module', net).state_dict().items()}

    def save_networks(self, tag, **extra):
        """Write ``<tag>_net_<name>.pth`` for every network (tag: an epoch, 'latest', 'best'), with the options and
        ``extra`` facts (epoch, total_iters, validation results)."""
        util.mkdirs(self.save_dir)
        for name, net in self.networks():
            self._write({'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'net': name,
                         'model': self.opt.model, 'options': self.checkpoint_options(),
                         'commit': util.git_commit(), **extra, 'state_dict': self.cpu_state_dict(net)},
                        self.checkpoint_path(tag, name))

    @staticmethod
    def _write(obj, path):
        """Atomic save (temporary file, then rename); a failed write leaves the previous file as it was."""
        try:
            util.atomic_torch_save(obj, path)
        except OSError as err:
            raise CheckpointError(f'could not write {path}: {err.strerror or err}; the checkpoint files written '
                                  f'before are intact') from err

    def load_networks(self, epoch, directory=None):
        """Load ``<epoch>_net_<name>.pth`` (from ``directory``, default this run's folder) into every network with
        strict key and shape checks."""
        for name, net in self.networks():
            path = self.checkpoint_path(epoch, name, directory)
            state_dict, meta = read_checkpoint(path)
            net = getattr(net, 'module', net)
            problems = describe_mismatch(net, state_dict)
            if problems:
                raise CheckpointError(f'{path} does not fit the network {name}:\n  ' + '\n  '.join(problems)
                                      + self.mismatch_hint(state_dict, meta))
            net.load_state_dict(state_dict, strict=True)
            self.loaded_meta[name] = meta
            logger.info('loaded %s (%s)', path, 'plain state dict' if meta is None else f'epoch {meta.get("epoch")}')

    def mismatch_hint(self, state_dict, meta):
        """Extra advice appended to a mismatch message (models override this)."""
        return ''

    def training_state_path(self, epoch):
        return os.path.join(self.save_dir, f'{epoch}_train_state.pth')

    def save_training_state(self, tag, **counters):
        """Write the network weights, optimisers, schedulers, gradient scaler, RNG states and ``counters`` (epoch,
        iterations) to resume training.

        The weights are in this file too, so that a run killed between writing ``latest_net_*`` and this file
        resumes from one consistent moment: ``load_training_state`` takes them from here.
        """
        nets = {name: self.cpu_state_dict(net) for name, net in self.networks()}
        scaler = getattr(self, 'scaler', None)
        state = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'kind': 'train_state', 'nets': nets,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers],
                 'scaler': scaler.state_dict() if scaler is not None else {},
                 'torch_rng': torch.get_rng_state(),
                 'cuda_rng': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 **counters}
        self._write(state, self.training_state_path(tag))

    def load_training_state(self, epoch):
        """Restore what ``save_training_state`` wrote; return its counters."""
        path = self.training_state_path(epoch)
        if not os.path.isfile(path):
            raise CheckpointError(f'{path} not found: --continue_train needs the training state saved beside the '
                                  f'weights (optimiser, schedule, epoch)')
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(f'{path} was refused: it holds Python objects other than tensors and plain '
                                  f'containers') from err
        except (RuntimeError, OSError, EOFError) as err:
            raise CheckpointError(f'{path} cannot be read; the file may be truncated ({err})') from err
        if not isinstance(state, dict) or state.get('kind') != 'train_state':
            raise CheckpointError(f'{path} is not a VFD training state')
        for name, net in self.networks():
            if name in state.get('nets', {}):
                getattr(net, 'module', net).load_state_dict(state['nets'][name], strict=True)
        if state.get('scaler') and getattr(self, 'scaler', None) is not None:
            self.scaler.load_state_dict(state['scaler'])
        for optimizer, saved in zip(self.optimizers, state['optimizers']):
            try:
                optimizer.load_state_dict(saved)
            except ValueError as err:   # other parameter groups: another --lr_fan_in, or a state from before it
                raise CheckpointError(f'{path}: the optimiser state does not fit ({err}); it was saved with other '
                                      f'learning-rate groups: resume with the --lr_fan_in of that run (0 for runs '
                                      f'from before the option existed)') from err
        for scheduler, saved in zip(self.schedulers, state['schedulers']):
            scheduler.load_state_dict(saved)
        self.scheduled_lrs = [list(scheduler.get_last_lr()) for scheduler in self.schedulers]
        torch.set_rng_state(state['torch_rng'])
        if state['cuda_rng'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda_rng'])
        skip = {'format', 'version', 'kind', 'nets', 'optimizers', 'schedulers', 'scaler', 'torch_rng', 'cuda_rng'}
        return {k: v for k, v in state.items() if k not in skip}

    @classmethod
    def restore_options(cls, opt):
        """Set the ``checkpoint_option_keys`` of ``opt`` from the checkpoint ``opt.epoch`` (test time).

        Project checkpoints carry their options; an option typed on the command line that disagrees is overridden
        with a warning, since the weights only fit the stored one. Plain state dicts carry none: the command line
        (or ``plain_checkpoint_defaults`` where the user typed nothing) decides. Returns the checkpoint's meta.
        """
        save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        metas = [read_checkpoint(os.path.join(save_dir, f'{opt.epoch}_net_{name}.pth'))[1] for name in cls.model_names]
        if all(meta is None for meta in metas):
            for key, value in cls.plain_checkpoint_defaults.items():
                if key not in opt.explicit:
                    setattr(opt, key, value)
            return None
        if any(meta is None for meta in metas) or any(m['options'] != metas[0]['options'] for m in metas[1:]):
            raise CheckpointError(f'the networks of checkpoint {opt.epoch!r} in {save_dir} come from different runs '
                                  f'(their stored options differ)')
        for key, value in metas[0]['options'].items():
            if key in opt.explicit and getattr(opt, key) != value:
                logger.warning('--%s %s ignored: the checkpoint was trained with %s', key, getattr(opt, key), value)
            setattr(opt, key, value)
        return metas[0]

    def recalibrate_batch_norm(self, batches, forward=None):
        """Replace the running statistics of every BatchNorm layer that keeps them with exact averages over ``batches``.

        The moving averages kept during training lag behind the weights (momentum 0.1), which makes eval-mode
        embeddings, and so validation numbers, swing from epoch to epoch. This runs ``forward`` in training mode
        over the batches, accumulates each layer's input mean and variance over every sample and position, and
        writes them into the layer's buffers. Weights are untouched. ``forward`` replaces ``self.forward`` (a model
        may pass one that avoids distributed wrappers). Returns the number of batches used.
        """
        layers = [m for _, net in self.networks() for m in net.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not layers:
            return 0
        moments = {layer: [0, 0.0, 0.0] for layer in layers}

        def accumulate(layer, inputs, _output):
            x = inputs[0].detach().double().transpose(0, 1).flatten(1)   # (C, N*H*W)
            entry = moments[layer]
            entry[0] += x.shape[1]
            entry[1] = entry[1] + x.sum(1)
            entry[2] = entry[2] + (x * x).sum(1)

        hooks = [layer.register_forward_hook(accumulate) for layer in layers]
        was_training = [net.training for _, net in self.networks()]
        used = 0
        try:
            self.train()
            with torch.no_grad():
                for batch in batches:
                    self.set_input(batch)
                    (forward or self.forward)()
                    used += 1
        finally:
            for hook in hooks:
                hook.remove()
            for (_, net), mode in zip(self.networks(), was_training):
                net.train(mode)
        for layer, (count, total, squares) in moments.items():
            if count > 1:
                mean = total / count
                var = (squares / count - mean * mean).clamp(min=0) * count / (count - 1)
                layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
                layer.running_var.copy_(var.to(layer.running_var.dtype))
        return used

    def print_networks(self, verbose):
        for name, net in self.networks():
            if verbose:
                logger.info('%s', net)
            logger.info('[net%s] %s', name, networks.stem_summary(getattr(net, 'module', net)))

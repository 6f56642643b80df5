"""Reading, writing and checking checkpoints and training states, and the disk space they take.

Files of a run, in ``<checkpoints_dir>/<name>/``:

* ``<tag>_net_<net>.pth`` per network (tag: an epoch number, ``latest`` or ``best``): a dict
  ``{'format': 'vfd-checkpoint', 'version': 2, 'net', 'model', 'config': ModelConfig.to_dict(), 'options',
  'commit', 'epoch', 'total_iters', 'val', 'state_dict'}``. Version 1 stored the architecture in ``options``
  instead of ``config``; both load. A plain state dict (the authors' released ``latest_net_G_audio.pth`` /
  ``latest_net_G_video.pth``) loads too and carries no facts at all.
* ``<tag>_train_state.pth``: the weights again, the optimisers, schedulers, gradient scaler, random-generator
  states and the loop's counters, so that ``--continue_train`` resumes from one consistent moment.

Every write is atomic (a temporary file, then a rename): a failed or killed write leaves the previous file as it
was. Every read uses ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.
"""
import hashlib
import json
import math
import os
import pickle
import uuid
import zipfile

import torch

from util import util

FORMAT = 'vfd-checkpoint'
VERSION = 2
TRAIN_STATE_RNG_KEYS = ('torch_rng', 'cuda_rng')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, written, or does not fit the model; the message says which file and why."""


def net_path(directory, tag, net):
    """``<directory>/<tag>_net_<net>.pth``."""
    return os.path.join(directory, f'{tag}_net_{net}.pth')


def train_state_path(directory, tag):
    """``<directory>/<tag>_train_state.pth``."""
    return os.path.join(directory, f'{tag}_train_state.pth')


def check_archive(path):
    """Refuse, before anything is unpacked, a zip checkpoint whose members are compressed or claim more bytes than
    the file holds: torch.save stores its records uncompressed, so either is a forged file (a zip bomb)."""
    if not zipfile.is_zipfile(path):
        return   # the legacy format, or not a checkpoint at all: torch.load says which
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f'{path} cannot be read; the file may be truncated or not a PyTorch checkpoint '
                              f'({err})') from err
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    claimed = sum(m.file_size for m in members)
    if packed or claimed > size:
        raise CheckpointError(f'{path} was refused: its records are compressed or claim {claimed} bytes in a file of '
                              f'{size} (torch.save stores them as they are), so it was not written by torch.save')


def check_finite(path, state_dict):
    """Refuse (CheckpointError) a state dict with NaN or infinite weights, naming the first such tensor."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f'{path}: {key} holds NaN or infinite values; the weights are unusable (a training '
                                  f'that diverged? its earlier checkpoints may be good)')


def check_meta(path, meta):
    """Refuse (CheckpointError) stored facts of the wrong type, so that no reader meets a KeyError or TypeError."""
    expected = {'config': dict, 'options': dict, 'val': dict, 'epoch': (int, str), 'net': str, 'commit': str,
                'run_id': str, 'fingerprint': str}
    for key, kind in expected.items():
        if (meta.get(key) is not None and not isinstance(meta[key], kind)) or isinstance(meta.get(key), bool):
            raise CheckpointError(f'{path}: its stored {key!r} is a {type(meta[key]).__name__}, not what this '
                                  f'project writes; the file was not written by train_DF.py or was altered')
    for threshold in ((meta.get('val') or {}).get('eer_threshold'), meta.get('decision_threshold')):
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise CheckpointError(f'{path}: its stored threshold {threshold!r} is not a number')


def decision_threshold(meta):
    """(threshold, where it comes from) of a checkpoint's facts: the validation EER threshold stored by training, or
    a fixed rule stored with imported weights (``decision_threshold``); (None, why there is none) otherwise."""
    meta = meta or {}
    value = (meta.get('val') or {}).get('eer_threshold')
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value), 'validation EER threshold stored with the checkpoint'
    value = meta.get('decision_threshold')
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value), (f'fixed rule stored with imported weights ({meta.get("decision_threshold_source", "")}'
                               f'), not chosen on validation data')
    return None, 'none: the checkpoint stores no validation threshold, and none is chosen on the test set'


def _load(path):
    """``torch.load`` with safe unpickling; CheckpointError naming the file when it cannot be used."""
    if os.path.isdir(path):
        raise CheckpointError(f'checkpoint {path} is a folder, not a file')
    if not os.path.isfile(path):
        kind = 'is a broken link (or a link loop)' if os.path.islink(path) else \
            'is not a regular file' if os.path.exists(path) else 'not found'
        raise CheckpointError(f'checkpoint {path} {kind}')
    check_archive(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f'{path} was refused: it holds Python objects other than tensors and plain containers, '
                              f'which could run code when loaded. Only load checkpoints from sources you trust, and '
                              f'convert them to plain state dicts. ({str(err).splitlines()[0]})') from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f'{path} cannot be read; the file may be truncated or not a PyTorch checkpoint '
                              f'({str(err).splitlines()[0] if str(err) else type(err).__name__})') from err


def fingerprint(config, state_dict, run_id):
    """SHA-256 over what a network file says about itself: its model config, its run identifier and the name,
    shape and dtype of every tensor. Written with the file; a file whose config was edited afterwards (say, the
    number of heads, which no shape shows) no longer matches it."""
    digest = hashlib.sha256(json.dumps({'config': config, 'run_id': run_id}, sort_keys=True, default=str).encode())
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(f'{key}:{tuple(value.shape)}:{value.dtype};'.encode())
    return digest.hexdigest()


def read(path):
    """Load a network file; return ``(state_dict, meta)`` where ``meta`` is None for a plain state dict."""
    obj = _load(path)
    if isinstance(obj, dict) and obj.get('format') == FORMAT:
        version = obj.get('version')
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
            raise CheckpointError(f'{path}: format version {version!r}; this project reads versions 1 to {VERSION} '
                                  f'(a file from a newer version of the project, or an altered one)')
        if not isinstance(obj.get('state_dict'), dict):
            raise CheckpointError(f'{path}: a VFD checkpoint without a state dict')
        check_finite(path, obj['state_dict'])
        meta = {k: v for k, v in obj.items() if k != 'state_dict'}
        check_meta(path, meta)
        stored = meta.get('fingerprint')
        if stored is not None and stored != fingerprint(meta.get('config'), obj['state_dict'], meta.get('run_id')):
            raise CheckpointError(f'{path}: its config or its tensors no longer match the fingerprint written with '
                                  f'them (the file was altered after training: e.g. a size in its config edited); '
                                  f'use the file as training wrote it')
        return obj['state_dict'], meta
    plain = isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in obj.items())
    if plain:
        prefix = 'module.'
        if all(k.startswith(prefix) for k in obj):  # saved from a DataParallel / DDP wrapper
            obj = {k[len(prefix):]: v for k, v in obj.items()}
        check_finite(path, obj)
        return obj, None
    raise CheckpointError(f'{path} is neither a VFD checkpoint nor a plain state dict of tensors')


def read_nets(directory, tag, nets, allow_mixed=False):
    """``{net: (state_dict, meta)}`` for the files ``<tag>_net_<net>.pth``, each read once; the networks of a
    project checkpoint must come from one run: equal stored configs and, where they carry one, the same run
    identifier (``allow_mixed`` accepts networks of different runs with equal configs)."""
    loaded = {net: read(net_path(directory, tag, net)) for net in nets}
    metas = [meta for _, meta in loaded.values()]
    if any(meta is not None for meta in metas):
        facts = [None if meta is None else (meta.get('config'), meta.get('options')) for meta in metas]
        if any(fact is None or fact != facts[0] for fact in facts):
            raise CheckpointError(f'the networks of checkpoint {tag!r} in {directory} come from different runs '
                                  f'(their stored configs differ)')
        ids = {meta.get('run_id') for meta in metas}
        if len(ids) > 1 and not allow_mixed:
            shown = ', '.join(f'{net}: {meta.get("run_id") or "none"}' for net, (_, meta) in loaded.items())
            raise CheckpointError(f'the networks of checkpoint {tag!r} in {directory} come from different training '
                                  f'runs ({shown}); pass --allow_mixed_runs to load them together on purpose')
    return loaded


def write(obj, path):
    """Atomic save; CheckpointError (with the files written before intact) when the disk refuses."""
    try:
        util.atomic_torch_save(obj, path)
    except OSError as err:
        raise CheckpointError(f'could not write {path}: {err.strerror or err}; the checkpoint files written '
                              f'before are intact') from err


def cpu_state_dict(net):
    """A CPU copy of a network's state dict, without a DDP/compile wrapper's ``module.`` prefix."""
    return {k: v.detach().to('cpu', copy=True) for k, v in getattr(net, 'module', net).state_dict().items()}


def write_nets(directory, tag, nets, **facts):
    """Write ``<tag>_net_<name>.pth`` for every ``(name, net)`` with the ``facts`` (model, config, run_id, epoch
    ...) and the file's ``fingerprint``."""
    for name, net in nets:
        state_dict = cpu_state_dict(net)
        stamp = fingerprint(facts.get('config'), state_dict, facts.get('run_id'))
        write({'format': FORMAT, 'version': VERSION, 'net': name, 'commit': util.git_commit(), **facts,
               'fingerprint': stamp, 'state_dict': state_dict}, net_path(directory, tag, name))


def new_run_id():
    """A run identifier: 16 random hex digits, written into every network file of a training run."""
    return uuid.uuid4().hex[:16]


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


def check_fit(net, state_dict, path, hint=''):
    """CheckpointError listing every key and shape of ``state_dict`` (from ``path``) that does not fit ``net``."""
    problems = describe_mismatch(net, state_dict)
    if problems:
        raise CheckpointError(f'{path} does not fit the network:\n  ' + '\n  '.join(problems) + hint)


def load_into(net, state_dict, path, hint=''):
    """Strictly load ``state_dict`` into ``net`` (unwrapped); CheckpointError listing every mismatch otherwise."""
    net = getattr(net, 'module', net)
    check_fit(net, state_dict, path, hint)
    net.load_state_dict(state_dict, strict=True)


# -- training state ---------------------------------------------------------------------------------------------
def write_train_state(directory, tag, nets, optimizers, schedulers, scaler, extras=None, **counters):
    """Write ``<tag>_train_state.pth``: weights, optimisers, schedulers, scaler, RNG states, ``extras`` (other
    modules' state dicts by name, e.g. the loss's learnt temperature) and ``counters``."""
    write({'format': FORMAT, 'version': VERSION, 'kind': 'train_state',
           'nets': {name: cpu_state_dict(net) for name, net in nets},
           'extras': {name: cpu_state_dict(module) for name, module in (extras or {}).items()},
           'optimizers': [o.state_dict() for o in optimizers],
           'schedulers': [s.state_dict() for s in schedulers],
           'scaler': scaler.state_dict() if scaler is not None else {},
           'torch_rng': torch.get_rng_state(),
           'cuda_rng': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
           **counters}, train_state_path(directory, tag))


def read_train_state(directory, tag):
    """The dict ``write_train_state`` wrote (any version); CheckpointError when missing or not a training state."""
    path = train_state_path(directory, tag)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path} not found: --continue_train needs the training state saved beside the '
                              f'weights (optimiser, schedule, epoch)')
    state = _load(path)
    if not isinstance(state, dict) or state.get('kind') != 'train_state':
        raise CheckpointError(f'{path} is not a VFD training state')
    for key, kind in (('nets', dict), ('optimizers', list), ('schedulers', list)):
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f'{path}: the training state has no valid {key!r}')
    return state


def restore_rng(state):
    """Put back the random-generator states saved by ``write_train_state``."""
    torch.set_rng_state(state['torch_rng'])
    if state.get('cuda_rng') and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda_rng'])


def counters(state):
    """The loop counters of a training state (epoch, epoch_iter, total_iters, best_auc ...)."""
    skip = {'format', 'version', 'kind', 'nets', 'extras', 'optimizers', 'schedulers', 'scaler',
            *TRAIN_STATE_RNG_KEYS}
    return {k: v for k, v in state.items() if k not in skip}


# -- disk space -------------------------------------------------------------------------------------------------
def tensor_bytes(obj):
    """Bytes of every tensor in a nest of dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def bytes_per_save(nets, optimizers, net_files=3):
    """Disk space of one epoch's saving: ``net_files`` sets of network files (<epoch>, latest, best) and the
    training state, counted from the tensors that are written. Before the first step Adam holds no moments yet; they
    are counted as they will be (two per parameter, in the parameter's dtype)."""
    weights = sum(tensor_bytes(getattr(net, 'module', net).state_dict()) for _, net in nets)
    moments = 0
    for optimizer in optimizers:
        held = tensor_bytes([optimizer.state[p] for group in optimizer.param_groups for p in group['params']
                             if p in optimizer.state])
        moments += held or 2 * sum(p.numel() * p.element_size() for group in optimizer.param_groups
                                   for p in group['params'])
    return net_files * weights + weights + moments

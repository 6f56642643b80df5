"""Turn the authors' released weights into a run folder that every command of this project uses.

    python -m scripts.import_weights --format journal exp/FakeAVCeleb/last_model.pt --name vfd_fakeavceleb
    python -m scripts.import_weights --format released released_weights/ --name vfd2022

``--format journal``: one checkpoint of the journal version (ACM ToMM 2023; its fine-tuned DFDC and FakeAVCeleb
files, or a pre-training file): a dict with ``voice_model_state_dict`` and ``face_model_state_dict`` (keys with or
without the ``module.`` prefix of DataParallel), and usually ``epoch`` and ``optimizer_state_dict``. The encoders'
sizes are read from the weights (patch, width, depth, grid, embedding size); the number of attention heads cannot be
(``--heads``, 12 as published), nor how a voice grid splits into mel bands and frames (``--n_mels``, 128).

``--format released``: the 2022 release's ``latest_net_G_audio.pth`` and ``latest_net_G_video.pth`` (a folder
holding both, or the two files in either order): plain state dicts. Sizes are read from the weights as far as they
tell them; ``--heads`` (8) and ``--n_mels`` / ``--n_frames`` (512 / 301) as published.

It writes ``<checkpoints_dir>/<name>/``:

* ``latest_net_G_audio.pth``, ``latest_net_G_video.pth`` and the same as ``best_*`` (the authors' chosen weights;
  hard links where the file system has them):
  project checkpoints with the model config (journal: its encoders and inputs, the cosine score; released: the
  released encoders, the 2022 inputs, minus the L2 distance), so ``test_DF.py``, ``scripts/detect.py``,
  ``--pretrained_name`` and ``--continue_train`` need no size options;
* ``latest_train_state.pth``: the weights again and, for a journal file with its optimiser, the AdamW moments
  mapped parameter by parameter, so ``--continue_train`` (with ``--recipe journal_finetune`` or ``journal``)
  resumes after the stored epoch;
* ``import.json``: where the weights came from (the file, its size and SHA-256, the format, the sizes read and the
  ones assumed).

No validation threshold comes with these files. The journal's code called a pair real when its cosine was above 0;
``--threshold`` (default 0 for journal files, none for released ones) stores such a fixed rule, which test_DF.py and
detect.py report as what it is, not as a threshold chosen on validation data.

Exit status: 0 written, 2 a file that is not what ``--format`` says (one line naming it and why), a folder that
already holds a run (``--overwrite`` moves it aside first), or bad arguments.
"""
import argparse
import datetime
import hashlib
import math
import os
import shutil
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.import_weights ...')

import torch

from models import checkpoint, networks
from models.checkpoint import CheckpointError
from models.config import ModelConfig
from util import runs, util

FORMATS = ('journal', 'released')
NETS = {'voice': 'G_audio', 'face': 'G_video'}


class ImportError_(CheckpointError):
    """A file that cannot be imported; the message names it and says why (one line)."""


def one_line(text):
    """A multi-line message as one line."""
    return '; '.join(part.strip() for part in str(text).splitlines() if part.strip())


# ------------------------------------------------------------------------------------------------------ reading
def read_journal(path):
    """(voice state dict, face state dict, facts) of a journal checkpoint; ImportError_ for anything else."""
    obj = checkpoint._load(path)   # safe unpickling; truncated, missing and forged files raise CheckpointError
    if not isinstance(obj, dict) or not all(key in obj for key in ('voice_model_state_dict', 'face_model_state_dict')):
        held = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
        hint = ''
        if isinstance(obj, dict) and ('pos_embedding' in obj or obj.get('format') == checkpoint.FORMAT):
            hint = ' (it looks like a 2022 release or project file: use --format released, or test it directly)'
        raise ImportError_(f'{path} is not a journal VFD checkpoint: it holds {held}, not voice_model_state_dict '
                           f'and face_model_state_dict{hint}')
    states = []
    for key in ('voice_model_state_dict', 'face_model_state_dict'):
        state = obj[key]
        if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                               for k, v in state.items()):
            raise ImportError_(f'{path}: its {key} is not a state dict of tensors')
        if all(k.startswith('module.') for k in state):
            state = {k[len('module.'):]: v for k, v in state.items()}
        checkpoint.check_finite(path, state)
        states.append(state)
    epoch = obj.get('epoch')
    facts = {'epoch': epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
             'optimizer': obj.get('optimizer_state_dict') if isinstance(obj.get('optimizer_state_dict'), dict)
             else None,
             'raw_keys': {key: list(obj[key]) for key in ('voice_model_state_dict', 'face_model_state_dict')}}
    return states[0], states[1], facts


def read_released(paths):
    """(voice state dict, face state dict, facts) of the 2022 release's two files (a folder holding them, or the
    two files); the voice file is the one whose first convolution takes one channel."""
    if len(paths) == 1 and os.path.isdir(paths[0]):
        paths = [os.path.join(paths[0], f'latest_net_{net}.pth') for net in ('G_audio', 'G_video')]
    if len(paths) != 2:
        raise ImportError_('--format released takes a folder holding latest_net_G_audio.pth and '
                           'latest_net_G_video.pth, or those two files')
    found = {}
    for path in paths:
        state, meta = checkpoint.read(path)
        if meta is not None:
            raise ImportError_(f'{path} is already a project checkpoint (format {meta.get("format")!r}): use it as it '
                               f'is, no import needed')
        first = state.get('features.0.weight')
        if not isinstance(first, torch.Tensor) or first.dim() != 4 or 'pos_embedding' not in state:
            raise ImportError_(f'{path} is not a 2022 release encoder: it has no features.0.weight convolution and '
                               f'pos_embedding (keys {sorted(state)[:4]} ...)')
        found['voice' if first.shape[1] == 1 else 'face'] = (state, path)
    if set(found) != {'voice', 'face'}:
        raise ImportError_(f'{" and ".join(paths)}: expected one voice encoder (a 1-channel first convolution) and '
                           f'one face encoder (3 channels), got {" and ".join(sorted(found))} only')
    return found['voice'][0], found['face'][0], {'epoch': None, 'optimizer': None,
                                                 'files': {k: v[1] for k, v in found.items()}}


# ------------------------------------------------------------------------------------------------------ sizes
def _tensor(state, key, dims, path, what):
    value = state.get(key)
    if not isinstance(value, torch.Tensor) or value.dim() != dims:
        raise ImportError_(f'{path}: the {what} weights have no {dims}-d {key}; they are not the journal\'s encoder')
    return value


def journal_sizes(state, modality, args, path):
    """The sizes of a journal encoder read from its state dict (heads and the voice's mel bands from ``args``)."""
    what = f'{modality} encoder'
    conv = _tensor(state, 'conv1.weight', 4, path, what)
    pos = _tensor(state, 'positional_embedding', 2, path, what)
    proj = _tensor(state, 'proj', 2, path, what)
    dim, channels, patch = conv.shape[0], conv.shape[1], conv.shape[2]
    depth = len({k.split('.')[2] for k in state if k.startswith('transformer.resblocks.')})
    c_fc = state.get('transformer.resblocks.0.mlp.c_fc.weight')
    mlp_dim = c_fc.shape[0] if isinstance(c_fc, torch.Tensor) and c_fc.dim() == 2 else 4 * dim
    tokens = pos.shape[0] - 1
    sizes = {'patch': int(patch), 'dim': int(dim), 'depth': depth, 'heads': args.heads, 'mlp_dim': int(mlp_dim),
             'emb_dim': int(proj.shape[1])}
    if modality == 'face':
        side = math.isqrt(tokens)
        if channels != 3 or side * side != tokens:
            raise ImportError_(f'{path}: the face encoder has {channels} input channels and {tokens} patches (a face '
                               f'encoder has 3 and a square grid)')
        return {**sizes, 'image_size': side * int(patch)}
    rows = args.n_mels // int(patch)
    if channels != 1 or rows < 1 or tokens % rows:
        raise ImportError_(f'{path}: the voice encoder has {channels} input channels and {tokens} patches, which '
                           f'--n_mels {args.n_mels} does not split into rows of {int(patch)}-band patches')
    return {**sizes, 'n_mels': args.n_mels, 'n_frames': tokens // rows * int(patch)}


def released_sizes(state, modality, args, path):
    """The sizes of a 2022 release encoder read from its state dict (heads, and the voice's mel size, from
    ``args``)."""
    pos = state['pos_embedding']
    first = state['features.0.weight']
    depth = len({k.split('.')[2] for k in state if k.startswith('transformer.layers.')})
    ff = state.get('transformer.layers.0.1.fn.fn.net.0.weight')
    head = state.get('mlp_head.0.weight')
    if not isinstance(ff, torch.Tensor) or not isinstance(head, torch.Tensor) or depth == 0:
        raise ImportError_(f'{path}: the {modality} encoder has no transformer layers or head of the 2022 release')
    sizes = {'dim': int(pos.shape[-1]), 'depth': depth, 'heads': args.heads, 'mlp_dim': int(ff.shape[0]),
             'emb_dim': int(head.shape[0]), 'width_mult': first.shape[0] / (32 if modality == 'face' else 96)}
    if modality == 'face':
        token = state['patch_to_embedding.weight'].shape[1]
        channels = networks.scaled_channels(512, sizes['width_mult'])
        side = math.isqrt(max(1, token // channels))
        return {**sizes, 'image_size': 32 * side}
    return {**sizes, 'n_mels': args.n_mels_released, 'n_frames': args.n_frames_released}


def build_config(fmt, voice_state, face_state, args, paths):
    """The ModelConfig of the imported weights, checked against them on the meta device."""
    if fmt == 'journal':
        voice = {'kind': 'voice_journal', **journal_sizes(voice_state, 'voice', args, paths[0])}
        face = {'kind': 'face_journal', **journal_sizes(face_state, 'face', args, paths[0])}
        config = dict(compat='journal', inputs='journal', score='cosine', loss=args.loss or 'fake_pairs')
        load_size = face['image_size'] * 256 // 224
    else:
        pos = voice_state['pos_embedding']
        compat = 'released' if tuple(pos.shape[:2]) == (networks.RELEASED_MAX_BATCH, 1) else 'fixed'
        suffix = networks.COMPAT_SUFFIX[compat]
        voice = {'kind': 'voice' + suffix, **released_sizes(voice_state, 'voice', args, paths[0])}
        face = {'kind': 'face' + suffix, **released_sizes(face_state, 'face', args, paths[-1])}
        config = dict(compat=compat, inputs='vfd2022', score='neg_l2', loss=args.loss or 'triplet')
        load_size = face['image_size']
    try:
        config = ModelConfig(voice=voice, face=face, load_size=load_size, **config)
        with torch.device('meta'):
            nets = dict(zip(('voice', 'face'), config.build_encoders()))
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        raise ImportError_(f'{" and ".join(paths)}: the sizes read from the weights give no model ({one_line(err)})') \
            from err
    for modality, state in (('voice', voice_state), ('face', face_state)):
        problems = checkpoint.describe_mismatch(nets[modality], state)
        if problems:
            raise ImportError_(f'{" and ".join(paths)}: the {modality} weights do not fit the {fmt} encoder read from '
                               f'them: {"; ".join(problems[:3])}' + (' ...' if len(problems) > 3 else ''))
    return config


# ------------------------------------------------------------------------------------------------------ writing
def sha256(path):
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def journal_optimizer_state(saved, raw_keys, voice_net, face_net):
    """The journal's AdamW state (two groups: the voice encoder's parameters, then the face encoder's, indexed in
    the order of their state dicts) as the state of this project's optimiser over [voice, face] in one group (the
    order of ``networks.fan_in_param_groups`` with ``--lr_fan_in 0``); None when it cannot be mapped."""
    groups = saved.get('param_groups')
    state = saved.get('state')
    if not isinstance(groups, list) or len(groups) != 2 or not isinstance(state, dict):
        return None
    names = [('voice', k[len('module.'):] if k.startswith('module.') else k)
             for k in raw_keys['voice_model_state_dict']]
    names += [('face', k[len('module.'):] if k.startswith('module.') else k) for k in raw_keys['face_model_state_dict']]
    indices = [i for group in groups for i in group.get('params', [])]
    if len(indices) != len(names):
        return None
    by_name = {name: state.get(index) for name, index in zip(names, indices)}
    ours = [('voice', n) for group in networks.fan_in_param_groups([voice_net], 1.0, 0) for p in group['params']
            for n, q in voice_net.named_parameters() if q is p]
    ours += [('face', n) for group in networks.fan_in_param_groups([face_net], 1.0, 0) for p in group['params']
             for n, q in face_net.named_parameters() if q is p]
    if set(ours) != set(by_name):
        return None
    hyper = {k: v for k, v in groups[0].items() if k != 'params'}
    return {'state': {i: by_name[name] for i, name in enumerate(ours) if by_name[name] is not None},
            'param_groups': [{**hyper, 'params': list(range(len(ours)))}]}


def import_weights(args):
    """Read, check and write the run folder; returns the folder."""
    runs.check_name(args.name)
    folder = os.path.join(args.checkpoints_dir, args.name)
    found = runs.run_files(folder)
    if found and not args.overwrite:
        raise ImportError_(f'{folder} already holds a run ({", ".join(found[:3])}); choose another --name or pass '
                           f'--overwrite (the old files move into a replaced-<time> folder there)')
    paths = [os.path.abspath(p) for p in args.files]
    if args.format == 'journal':
        if len(paths) != 1:
            raise ImportError_('--format journal takes one checkpoint file')
        voice_state, face_state, facts = read_journal(paths[0])
    else:
        voice_state, face_state, facts = read_released(paths)
        paths = [facts['files']['voice'], facts['files']['face']]
    config = build_config(args.format, voice_state, face_state, args, paths)
    voice_net, face_net = config.build_encoders()
    voice_net.load_state_dict(voice_state, strict=True)
    face_net.load_state_dict(face_state, strict=True)
    util.check_writable(folder, 'the imported checkpoints')
    if found:
        moved = runs.move_aside(folder)
        print(f'--overwrite: the run that was in {folder} is now in {moved}')
    threshold = args.threshold if args.threshold is not None else (0.0 if args.format == 'journal' else None)
    record = {
        'format': args.format, 'files': [{'path': p, 'bytes': os.path.getsize(p), 'sha256': sha256(p)} for p in paths],
        'imported': datetime.datetime.now().isoformat(timespec='seconds'), 'epoch': facts['epoch'],
        'config': config.to_dict(),
        'assumed': {'heads': args.heads, **({'n_mels': args.n_mels} if args.format == 'journal' else
                                             {'n_mels': args.n_mels_released, 'n_frames': args.n_frames_released})},
        'decision_threshold': threshold,
    }
    meta = {'model': 'DFD', 'config': config.to_dict(), 'epoch': facts['epoch'] if facts['epoch'] is not None else
            'imported', 'imported_from': record['files'][0]['path'], 'run_id': checkpoint.new_run_id()}
    if threshold is not None:
        meta['decision_threshold'] = float(threshold)
        meta['decision_threshold_source'] = (
            'the journal code\'s fixed rule: real when the cosine is above 0' if args.format == 'journal' and
            args.threshold is None else '--threshold given to scripts/import_weights.py')
    nets = [('G_audio', voice_net), ('G_video', face_net)]
    checkpoint.write_nets(folder, 'latest', nets, **meta)
    for name, _ in nets:   # best_* is the same file: a hard link where the file system has them (no second copy)
        latest, best = checkpoint.net_path(folder, 'latest', name), checkpoint.net_path(folder, 'best', name)
        try:
            if os.path.exists(best):
                os.remove(best)
            os.link(latest, best)
        except OSError:
            shutil.copyfile(latest, best)
    optimizer = None
    if facts['optimizer'] is not None:
        optimizer = journal_optimizer_state(facts['optimizer'], facts['raw_keys'], voice_net, face_net)
        if optimizer is None:
            print('the optimiser state does not map onto the encoders\' parameters; --continue_train starts with a '
                  'fresh optimiser')
    next_epoch = facts['epoch'] + 2 if facts['epoch'] is not None else 1   # the journal counts epochs from 0
    checkpoint.write({'format': checkpoint.FORMAT, 'version': checkpoint.VERSION, 'kind': 'train_state',
                      'nets': {name: checkpoint.cpu_state_dict(net) for name, net in nets}, 'extras': {},
                      'optimizers': [optimizer] if optimizer is not None else [], 'schedulers': [], 'scaler': {},
                      'torch_rng': torch.get_rng_state(), 'cuda_rng': [], 'epoch': next_epoch, 'epoch_iter': 0,
                      'total_iters': 0, 'best_auc': -1.0, 'imported': True},
                     checkpoint.train_state_path(folder, 'latest'))
    record['optimizer_state'] = 'mapped' if optimizer is not None else 'none'
    record['resume_epoch'] = next_epoch
    util.atomic_write_json(os.path.join(folder, 'import.json'), record)
    return folder, config, record


def build_parser():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('files', nargs='+', help='journal: the checkpoint file; released: a folder holding '
                                                 'latest_net_G_audio.pth and latest_net_G_video.pth, or the two files')
    parser.add_argument('--format', required=True, choices=FORMATS, help='which release the files come from')
    parser.add_argument('--name', required=True, help='the run folder to write: <checkpoints_dir>/<name>')
    parser.add_argument('--checkpoints_dir', default='./checkpoints', help='where run folders live')
    parser.add_argument('--heads', type=int, default=None,
                        help='attention heads (not readable from the weights): 12 for journal, 8 for released files')
    parser.add_argument('--n_mels', type=int, default=128,
                        help='journal: mel bands of the voice input (its grid of patches is split by this)')
    parser.add_argument('--n_mels_released', type=int, default=512, help='released: mel bins of the voice input')
    parser.add_argument('--n_frames_released', type=int, default=301, help='released: frames of the voice input')
    parser.add_argument('--loss', default='', help='the loss recorded for further training (journal: fake_pairs, '
                                                   'the fine-tuning of its published files; released: triplet)')
    parser.add_argument('--threshold', type=float, default=None,
                        help='a fixed decision threshold on the score to store (journal default: 0, its code\'s '
                             'rule); none for released files')
    parser.add_argument('--overwrite', action='store_true', help='move a run already in the folder aside first')
    return parser


def main(argv=None):
    """Entry point: 0 written, 2 with one line for a file or argument that does not fit."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.heads is None:
        args.heads = 12 if args.format == 'journal' else 8
    if args.heads < 1 or args.n_mels < 1 or args.n_mels_released < 1 or args.n_frames_released < 1:
        parser.error('--heads, --n_mels, --n_mels_released and --n_frames_released must be positive')
    if args.threshold is not None and not math.isfinite(args.threshold):
        parser.error('--threshold must be a finite number')
    from models import losses
    if args.loss and args.loss not in losses.LOSSES:
        parser.error(f'--loss must be one of {", ".join(losses.LOSSES)}')
    try:
        folder, config, record = import_weights(args)
    except (CheckpointError, util.WriteCheckError, ValueError) as err:
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return util.EXIT_INTERRUPTED
    print(f'imported {args.format} weights into {folder}/ (latest_* and best_*; {config.describe()})')
    print(f'optimiser state: {record["optimizer_state"]}; --continue_train resumes at epoch {record["resume_epoch"]}')
    print(f'score a test set:  python test_DF.py --dataroot DATASET --name {args.name} '
          f'--checkpoints_dir {args.checkpoints_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

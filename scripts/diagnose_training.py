"""Why a training recipe learns or collapses: statistics at initialisation, then a short training and its AUC.

    python -m scripts.diagnose_training --dataroot Dataset/Voxceleb2 --config tiny --steps 120 \\
        --variant "released: --recipe released" --variant "default:" --variant "kaiming: --init_type kaiming"

Each ``--variant "label: flags"`` is a training recipe: the flags of ``train_DF.py`` on top of the defaults (and of
``--config``'s sizes). For each one the script builds the model and the loaders as ``train_DF.py`` does and reports

* at initialisation: on a probe batch of ``--probe`` clips in training mode, the scale (RMS) of each encoder's
  activations at every stage (stem, the token, the class token after each transformer layer, the embedding) and how
  much each stage depends on its input (``spread``: mean distance of the batch's vectors to their mean, over the
  mean's norm); on the first training batch, the gradient scale (RMS) of each parameter group after one backward
  pass, the mean positive and negative distances,
  the share of hinge terms that are active and the face-embedding spread against the voice-face distance (the
  quantity that training's collapse monitor watches);
* then trains ``--steps`` steps and reports the same loss statistics on the last batch and the validation AUC on
  the held-out identities (BatchNorm statistics recomputed first, as in training).

One knob exists only here, to measure an idea that the training command does not offer: ``--diag-l2`` trains on
L2-normalised embeddings (validation still scores the raw ones, as the method does, and the AUC of the normalised
ones is reported beside it).

``--layers`` prints the per-stage tables of every variant, ``--trace N`` the loss statistics every N steps;
``--json PATH`` writes everything measured.
"""
import argparse
import itertools
import json
import logging
import shlex
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import train_DF
from data import DatasetLoader, create_dataset, transport
from models import create_model
from models.DFD_model import embedding_spread
from options.train_options import TrainOptions
from util import util

CONFIGS = {
    'tiny': ['--load_size', '64', '--crop_size', '64', '--width_mult', '0.25', '--dim', '128', '--depth', '2',
             '--heads', '4', '--mlp_dim', '256', '--emb_dim', '128'],
    'paper': [],
}


def spread(t):
    """Mean distance of the rows of ``t`` (B, ...) to their mean, over the norm of that mean."""
    t = t.detach().flatten(1).double()
    mean = t.mean(0)
    return float((t - mean).norm(dim=1).mean() / mean.norm().clamp(min=1e-12))


def rms(t):
    """Root mean square of the values of ``t``."""
    return float(t.detach().double().pow(2).mean().sqrt())


STAGE_GROUPS = {'stem': 'stem', 'token': 'patch_to_embedding', 'cls+pos': 'cls+pos', 'embedding': 'mlp_head'}


def activation_stats(net, x):
    """{stage: (rms, spread)} of one encoder on batch ``x`` (training mode, no gradient), in the order of the
    forward pass; ``cls+pos`` is the constant the class token starts from (its spread is 0 by construction)."""
    acts = {}

    def keep(name, pick=lambda out: out):
        return lambda _module, _inputs, out: acts.__setitem__(name, pick(out))

    hooks = [net.features.register_forward_hook(keep('stem')),
             net.patch_to_embedding.register_forward_hook(keep('token'))]
    for i, (_attention, feed_forward) in enumerate(net.transformer.layers):
        hooks.append(feed_forward.register_forward_hook(keep(f'layer{i}', lambda out: out[:, 0])))
    hooks.append(net.mlp_head.register_forward_hook(keep('embedding')))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    start = net.cls_token[0, 0] + net.pos_embedding.reshape(-1, net.pos_embedding.shape[-1])[0]
    stats = {name: (rms(value), spread(value)) for name, value in acts.items()}
    return {'stem': stats.pop('stem'), 'token': stats.pop('token'), 'cls+pos': (rms(start), 0.0), **stats}


def parameter_group(name):
    """The stage a parameter belongs to, for the gradient table."""
    if name.startswith('features.'):
        return 'stem'
    if name.startswith('transformer.layers.'):
        return f'layer{name.split(".")[2]}'
    if name in ('cls_token', 'pos_embedding'):
        return 'cls+pos'
    return name.split('.')[0]   # patch_to_embedding, mlp_head


def gradient_stats(net):
    """{group: RMS of the gradients of its parameters} after a backward pass."""
    sums, counts = {}, {}
    for name, param in net.named_parameters():
        if param.grad is None:
            continue
        group = parameter_group(name)
        sums[group] = sums.get(group, 0.0) + float(param.grad.double().pow(2).sum())
        counts[group] = counts.get(group, 0) + param.grad.numel()
    return {group: (sums[group] / counts[group]) ** 0.5 for group in sums}


def loss_stats(model):
    """The monitoring values of the model's last ``compute_loss``, as floats."""
    return {name: float(getattr(model, 'loss_' + name).detach()) for name in model.loss_names}


def l2_compute_loss(model):
    """``compute_loss`` on L2-normalised embeddings (the ``--diag-l2`` knob)."""
    plain = model.compute_loss

    def compute():
        model.voice_emb = F.normalize(model.voice_emb, dim=1)
        model.face_emb = F.normalize(model.face_emb, dim=1)
        if model.neg_emb is not None:
            model.neg_emb = F.normalize(model.neg_emb, dim=-1)
        return plain()
    return compute


def normalised_auc(model, loader):
    """Validation AUC of ``train_DF.validate`` when real and mismatched pairs are scored with L2-normalised
    embeddings."""
    plain = model.embed

    def embed(voice=None, face=None):
        return tuple(None if e is None else F.normalize(e, dim=1) for e in plain(voice, face))
    model.embed = embed
    try:
        return train_DF.validate(model, loader)[0]['auc']
    finally:
        del model.embed   # back to the class's method


def split_variant(spec):
    """'label: flags' -> (label, train flags, script knobs)."""
    label, colon, flags = spec.partition(':')
    if not colon or not label.strip():
        raise SystemExit(f'error: --variant {spec!r}: write it as "label: train_DF.py flags" (the flags may be empty)')
    args = shlex.split(flags)
    knobs = {'l2': False}
    rest = []
    for arg in args:
        if arg == '--diag-l2':
            knobs['l2'] = True
        else:
            rest.append(arg)
    return label.strip(), rest, knobs


def diagnose(label, flags, knobs, args, workdir):
    """Everything measured for one variant (a dict)."""
    argv = ['--dataroot', args.dataroot, '--name', 'diagnose', '--checkpoints_dir', workdir, '--gpu_ids',
            args.gpu_ids, '--num_threads', str(args.num_threads), '--display_id', '0', '--no_html', '--no_flip',
            '--seed', str(args.seed), *CONFIGS[args.config], *flags]
    opt = TrainOptions().parse(argv, save=False, verbose=False)
    util.seed_everything(opt.seed)
    model = create_model(opt)
    model.setup(opt)
    train_loader = create_dataset(opt, 'train', **transport.dataset_args(model.config, opt, 'train'))
    train_loader.set_epoch(1)
    model.train()
    if knobs['l2']:
        model.compute_loss = l2_compute_loss(model)
    batches = iter(train_loader)
    first = next(batches)
    result = {'label': label, 'flags': ' '.join(flags), 'knobs': knobs, 'batch_size': opt.batch_size,
              'negatives': opt.negatives, 'loss': opt.loss}
    n = len(train_loader.dataset)
    probe = [train_loader.dataset[int(i)] for i in np.unique(np.linspace(0, n - 1, min(args.probe, n)).astype(int))]
    result['activations'] = {   # on a fixed probe batch: a training batch of one has no spread to measure
        'voice': activation_stats(model.netG_audio, train_loader.transport.to_encoder(torch.stack([
            torch.from_numpy(item['voice']) for item in probe]))),
        'face': activation_stats(model.netG_video, train_loader.transport.to_encoder(torch.stack([
            torch.from_numpy(item['face']) for item in probe]))),
    }
    model.set_input(first)
    model.forward()
    loss = model.compute_loss()
    loss.backward()
    result['gradients'] = {'voice': gradient_stats(model.netG_audio), 'face': gradient_stats(model.netG_video)}
    result['init'] = loss_stats(model)
    result['trace'] = []
    model.optimizer_G.zero_grad(set_to_none=True)

    started = time.time()
    steps, batch = 0, first
    epochs = itertools.count(2)
    while steps < args.steps:
        model.apply_warmup(steps + 1)
        model.set_input(batch)
        model.optimize_parameters()
        steps += 1
        if args.trace and steps % args.trace == 0:
            result['trace'].append({'step': steps, **loss_stats(model)})
        try:
            batch = next(batches)
        except StopIteration:
            train_loader.set_epoch(next(epochs))
            batches = iter(train_loader)
            batch = next(batches)
    result['train_seconds'] = time.time() - started
    result['steps'] = steps
    result['final'] = loss_stats(model)

    val_loader = create_dataset(opt, 'val', **transport.dataset_args(model.config, opt, 'val'), shuffle=False)
    recalib = DatasetLoader(train_loader.dataset, opt, shuffle=True, transport=train_loader.transport)
    recalib.set_epoch(0)
    model.recalibrate_batch_norm(itertools.islice(recalib, opt.bn_recalib_batches))
    val, _samples = train_DF.validate(model, val_loader)
    result['val_auc'] = val['auc']
    with torch.no_grad():   # spread of the validation faces' embeddings against the voice-face distance
        batch = next(iter(val_loader))
        model.eval()
        voice, face = model.embed(batch['voice'], batch['face'])
        model.train()
        result['val_spread'] = float(embedding_spread(face, F.pairwise_distance(voice, face).mean()))
    if knobs['l2']:
        result['val_auc_l2'] = normalised_auc(model, val_loader)
    return result


def stage_table(result):
    """Markdown: per stage of each encoder, the activation RMS and spread and the gradient RMS of its parameters."""
    lines = [f'**{result["label"]}** (`{result["flags"] or "defaults"}`)', '',
             '| stage | voice: activation RMS | spread | gradient RMS | face: activation RMS | spread | gradient RMS |',
             '|---|---|---|---|---|---|---|']
    for stage in result['activations']['face']:
        cells = []
        for encoder in ('voice', 'face'):
            a_rms, a_spread = result['activations'][encoder][stage]
            grad = result['gradients'][encoder].get(STAGE_GROUPS.get(stage, stage))
            cells += [f'{a_rms:.3g}', f'{a_spread:.3g}', '' if grad is None else f'{grad:.3g}']
        lines.append(f'| {stage} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def trace_table(result):
    """Markdown: the loss statistics every ``--trace`` steps of one variant (step k: its batch, before its update,
    as on a loss line)."""
    lines = [f'**{result["label"]}** (`{result["flags"] or "defaults"}`)', '',
             '| step | dist_pos | dist_neg | active | spread |', '|---|---|---|---|---|']
    for row in result['trace']:
        lines.append(f'| {row["step"]} | {row["dist_pos"]:.4g} | {row["dist_neg"]:.4g} | {row["active"]:.2f} | '
                     f'{row["spread"]:.3g} |')
    return '\n'.join(lines)


def summary_table(results):
    """Markdown: one row per variant, its statistics at initialisation and after training, and its validation AUC."""
    lines = ['| variant | flags | face spread at init | d_pos / d_neg at init | active at init | gradient RMS '
             '(face token) | after training: d_pos / d_neg | active | spread | val AUC | seconds |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        i, f = r['init'], r['final']
        knobs = ' '.join(f'--diag-{k}' if v is True else f'--diag-{k} {v}' for k, v in r['knobs'].items() if v)
        auc = f'{r["val_auc"]:.3f}' + (f' (normalised: {r["val_auc_l2"]:.3f})' if 'val_auc_l2' in r else '')
        lines.append(f'| {r["label"]} | `{(r["flags"] + " " + knobs).strip() or "defaults"}` | {i["spread"]:.3g} | '
                     f'{i["dist_pos"]:.4g} / {i["dist_neg"]:.4g} | {i["active"]:.2f} | '
                     f'{r["gradients"]["face"]["patch_to_embedding"]:.3g} | '
                     f'{f["dist_pos"]:.4g} / {f["dist_neg"]:.4g} | {f["active"]:.2f} | {f["spread"]:.3g} | {auc} | '
                     f'{r["train_seconds"]:.0f} |')
    return '\n'.join(lines)


def main(argv=None):
    """Diagnose each ``--variant``, print the tables and write ``--json``; returns 0 (bad arguments exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='a VoxCeleb2-layout training set')
    parser.add_argument('--config', default='tiny', choices=tuple(CONFIGS), help='model size')
    parser.add_argument('--variant', action='append', default=[],
                        help='"label: train_DF.py flags" (repeat); --diag-l2 is a knob of this script (see above)')
    parser.add_argument('--steps', type=int, default=100, help='training steps per variant (0: statistics at '
                                                               'initialisation only, and the AUC of the untrained '
                                                               'model)')
    parser.add_argument('--seed', type=int, default=20, help='seed of every variant')
    parser.add_argument('--probe', type=int, default=32,
                        help='clips in the batch on which activations and their spread are measured')
    parser.add_argument('--gpu_ids', default='auto', help='as in train_DF.py')
    parser.add_argument('--num_threads', type=int, default=1, help='loader workers')
    parser.add_argument('--layers', action='store_true', help='print the per-stage table of every variant')
    parser.add_argument('--trace', type=int, default=0,
                        help='record and print the loss statistics every this many training steps (0 = only at the '
                             'end)')
    parser.add_argument('--json', help='write every measurement to this file')
    args = parser.parse_args(argv)
    util.setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for spec in args.variant or ['default:']:
            label, flags, knobs = split_variant(spec)
            print(f'== {label}: {" ".join(flags) or "defaults"}', file=sys.stderr, flush=True)
            results.append(diagnose(label, flags, knobs, args, workdir))
            print(summary_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.layers:
        for result in results:
            print(stage_table(result) + '\n')
    if args.trace:
        for result in results:
            print(trace_table(result) + '\n')
    print(summary_table(results))
    if args.json:
        util.atomic_write_text(args.json, json.dumps({'config': args.config, 'dataroot': args.dataroot,
                                                      'steps': args.steps, 'seed': args.seed,
                                                      'results': results}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

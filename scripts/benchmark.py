"""Measure training, scoring and data-loading speed and peak memory; append the figures to docs/benchmarks.md.

    python -m scripts.benchmark --config paper --device cpu --baseline          # this project vs the released recipe
    python -m scripts.benchmark --config paper --device cuda --amp bf16 --batch_size 64

Each measurement runs in its own child process, so its peak memory is its own: RSS on the CPU, the largest
allocation (``torch.cuda.max_memory_allocated``) on CUDA. After ``--warmup`` steps it times ``--steps`` steps and
reports the median rate with the slowest and fastest step's rate (for data loading, whose workers deliver batches
in bursts, the overall rate over the timed batches).

* train: anchors per second of ``DFDModel.optimize_parameters`` on random batches of the configured shape
  (``--negatives``, ``--batch_size``, ``--n_negatives``, ``--amp``, ``--channels_last``, ``--compile``).
* score: voice-face pairs per second of ``DFDModel.score_pairs`` (batched, inference mode).
* data: samples per second of the Vox_image loader (``--num_threads`` workers) over a synthetic dataset in the
  VoxCeleb2 layout (made once under ``--data_root``).
* train_loop, score_loop: the same training step and scoring fed by the real loaders (Vox_image, DFDC) as in
  train_DF.py and test_DF.py, where loader workers and the model share the machine.
* prep_vox_dlib, prep_vox_none, prep_dfdc: clips per second per core of the prep scripts (``prep_voxceleb2
  --detector dlib`` and ``none``, ``prep_dfdc``) with one worker over ``--prep_clips`` synthetic H.264 videos of
  the sets' shapes (``scripts/make_videos.py``: 224x224 8 s clips; 10 s 1080p videos, landscape and portrait, in
  normal, dark and bright light, faces 150 pixels tall), with the share of clips whose face was found, per CPU
  second of the
  process (decoding threads included), and the projected wall time of the VoxCeleb2 dev set (1,092,009 clips) on
  16 cores, assuming 16 workers scale linearly.
* detect: seconds from starting ``scripts/detect.py`` to its verdict on a 10-s 1080p H.264 video with a face and a
  voice (``scripts/make_videos.py``), with a model of ``--config`` size: each run a new process (imports, model
  loading, decoding, face detection, mels, scoring), its peak RSS, and the stages of one profiled run.
* ``--baseline`` adds the released code's recipe on the same machine: one anchor per step whose five negative
  faces AND five negative voices are encoded (the voices unused by the loss), released-mode encoders, plain
  autograd; scoring one pair at a time under ``torch.no_grad``.
"""
import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import torch

CONFIGS = {
    'paper': dict(dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048, width_mult=1.0, crop_size=224,
                  load_size=224),
    'tiny': dict(dim=128, depth=2, heads=4, mlp_dim=256, emb_dim=128, width_mult=0.25, crop_size=64, load_size=64),
    # the journal version's encoders (--encoder_compat journal): ViT-B/32 at the published sizes, and a tiny copy
    'journal': dict(dim=768, depth=12, heads=12, mlp_dim=3072, emb_dim=512, crop_size=224, load_size=256,
                    n_mels=128, n_frames=256),
    'journal_tiny': dict(dim=64, depth=2, heads=4, mlp_dim=256, emb_dim=64, crop_size=64, load_size=73,
                         n_mels=128, n_frames=256),
}
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_opt(args, train, compat=None, negatives=None, batch_size=None, dataroot=None):
    """The options of train_DF.py (``train``) or test_DF.py for the benchmarked model, parsed as those scripts do."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions
    device = args.device_name
    gpu = device.split(':')[1] if ':' in device else '0'
    argv = ['--dataroot', dataroot or args.data_root, '--checkpoints_dir', tempfile.gettempdir(), '--name', 'benchmark',
            '--gpu_ids', gpu if device.startswith('cuda') else '-1', '--init_type', 'kaiming',
            '--encoder_compat', compat or args.encoder_compat, '--batch_size', str(batch_size or args.batch_size),
            '--amp', args.amp, '--channels_last', args.channels_last, '--num_threads', str(args.num_threads),
            '--face_decode', args.face_decode,
            *(['--compile', '--compile_mode', args.compile_mode] if args.compile else []),
            *[part for key, value in CONFIGS[args.config].items() for part in (f'--{key}', str(value))]]
    if train and (compat or args.encoder_compat) == 'journal':   # the journal's recipe, these negatives and batch
        argv += ['--recipe', 'journal', '--negatives', negatives or args.negatives, '--n_negatives',
                 str(args.n_negatives), '--display_id', '0', '--no_html']
    elif train:   # the released optimiser and margin, as the figures in docs/benchmarks.md were measured with
        argv += ['--negatives', negatives or args.negatives, '--n_negatives', str(args.n_negatives), '--lr', '2e-4',
                 '--beta1', '0.5', '--margin', '100', '--margin_mode', 'absolute', '--lr_fan_in', '0',
                 '--display_id', '0', '--no_html']
    return (TrainOptions if train else TestOptions)().parse(argv, save=False, verbose=False)


def sync(device):
    """Wait for the queued CUDA work on a cuda device, so that timings include it; nothing on the CPU."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device, warmup, steps):
    """Per-step seconds of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def transport_of(args, decode=None):
    """The Transport (``data/transport.py``) of the measured model: how its batches travel and become encoder input
    on ``--device`` (``--voice_dtype`` overriding the voices' dtype)."""
    import dataclasses
    from data import transport
    from models.config import default_inputs
    inputs = default_inputs(args.encoder_compat)
    if decode is None:
        decode = transport.resolve_face_decode(args.face_decode, args.device_name, args.encoder_compat, inputs)
    carry = transport.Transport.for_model(args.encoder_compat, inputs, decode, args.device_name, 'float32',
                                          args.channels_last == 'on')
    return dataclasses.replace(carry, voice_dtype=args.voice_dtype) if args.voice_dtype else carry


def random_batch(args, b, with_negatives, k=None, generator=None):
    """A batch as the loaders deliver it: uint8 faces, voices in the transport dtype (float16, float32 released)."""
    size = CONFIGS[args.config]['crop_size']
    g = generator or torch.Generator().manual_seed(0)
    pin = args.device_name.startswith('cuda')   # the loaders pin their batches on CUDA machines; so does this
    voice_dtype = getattr(torch, transport_of(args).voice_dtype)
    config = CONFIGS[args.config]
    if args.encoder_compat == 'journal':   # power mels: non-negative, with a wide range
        voice = torch.rand(b, 1, config['n_mels'], config['n_frames'], generator=g).pow(4) * 100
    else:
        voice = torch.rand(b, 1, config.get('n_mels', 512), config.get('n_frames', 301), generator=g) - 1
    batch = {'voice': voice.to(voice_dtype),
             'face': torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8),
             'identity': torch.arange(b)}
    if with_negatives:
        batch['neg_faces'] = torch.randint(0, 256, (b, k or args.n_negatives, 3, size, size), generator=g,
                                           dtype=torch.uint8)
    return {key: value.pin_memory() for key, value in batch.items()} if pin else batch


def count_flops(fn):
    """Floating-point operations of one call of ``fn``, counted by torch's FlopCounterMode (matmuls, convolutions,
    attention; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def profile_steps(step, device, path, steps=3):
    """torch.profiler over ``steps`` calls of ``step``: the operators with the most device (or CPU) time, as a table
    written to ``path``."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith('cuda') else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    key = 'self_cuda_time_total' if device.startswith('cuda') else 'self_cpu_time_total'
    with open(path, 'w') as handle:
        handle.write(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=70) + '\n')


def child_peak(args):
    """(step times, FLOPs per step, extras) of one large matmul in the benchmark's precision: the machine's
    attainable rate, the denominator of the model-FLOP utilisation."""
    n = 8192 if args.device_name.startswith('cuda') else 2048
    dtype = torch.bfloat16 if args.amp == 'bf16' else torch.float16 if args.amp == 'fp16' else torch.float32
    a = torch.randn(n, n, device=args.device_name, dtype=dtype)
    b = torch.randn(n, n, device=args.device_name, dtype=dtype)
    times = timed(lambda: a @ b, args.device_name, args.warmup, args.steps)
    return times, 2 * n ** 3, {'matmul': f'{n}x{n} {str(dtype).replace("torch.", "")}'}


def released_train_step(model, batch, voices_neg):
    """One step as the released code took it: negatives' voices encoded too, positive and negatives apart."""
    netv, netf = model.netG_audio, model.netG_video
    anchor = netv(batch['voice'])
    netv(voices_neg)                                    # computed by the released forward(), never used
    negatives = netf(batch['neg_faces'][0])
    positive = netf(batch['face'])
    loss = sum(torch.nn.functional.triplet_margin_loss(anchor, positive, n[None], margin=100.0) for n in negatives)
    model.optimizer_G.zero_grad()
    loss.backward()
    model.optimizer_G.step()


def child_train(args, baseline):
    """(step times, anchors per step, extras) of the training step, or of the released code's step with ``baseline``."""
    from models.DFD_model import DFDModel
    carry = transport_of(args, 'loader')
    if baseline:
        model = DFDModel.build(model_opt(args, True, compat='released', negatives='sampled', batch_size=1))
        batch = carry.batch_to_encoder(random_batch(args, 1, True, k=5))
        voices_neg = (torch.rand(5, 1, 512, 301) - 1).to(args.device_name)
        model.train()
        times = timed(lambda: released_train_step(model, batch, voices_neg), args.device_name, 1, args.steps)
        return times, 1, {'negatives_per_anchor': 5}
    model = DFDModel.build(model_opt(args, True))
    batch = random_batch(args, args.batch_size, args.negatives == 'sampled')
    model.train()

    def step():   # as in training: the pinned uint8 batch made encoder input on the device, then the step
        model.set_input(carry.batch_to_encoder(batch))
        model.optimize_parameters()
    if args.count_flops:
        return [], args.batch_size, {'flops_per_item': count_flops(step) / args.batch_size}
    times = timed(step, args.device_name, args.warmup, args.steps)
    negatives = args.batch_size - 1 if args.negatives == 'in_batch' else args.n_negatives
    extra = {'negatives_per_anchor': negatives}
    if args.profile:
        profile_steps(step, args.device_name, os.path.join(args.profile, f'profile_train{"_compile" * args.compile}'
                                                                         f'.txt'))
    return times, args.batch_size, extra


def child_score(args, baseline):
    """(step times, pairs per step, extras) of batched ``score_pairs``, or of one pair at a time with ``baseline``."""
    from models.DFD_model import DFDModel
    carry = transport_of(args, 'loader')
    model = DFDModel.build(model_opt(args, False, compat='released' if baseline else None))
    model.eval()
    if baseline:
        batch = carry.batch_to_encoder(random_batch(args, 1, False))
        voice, face = batch['voice'], batch['face']

        def one_pair():
            with torch.no_grad():
                torch.nn.PairwiseDistance(p=2)(model.netG_audio(voice), model.netG_video(face))
        return timed(one_pair, args.device_name, 1, args.steps * 4), 1, {}
    batch = random_batch(args, args.score_batch, False)

    def step():
        ready = carry.batch_to_encoder(batch)
        model.score_pairs(ready['voice'], ready['face'])
    if args.count_flops:
        return [], args.score_batch, {'flops_per_item': count_flops(step) / args.score_batch}
    return timed(step, args.device_name, args.warmup, args.steps), args.score_batch, {}


class Repeated(torch.utils.data.Dataset):
    """A dataset seen ``times`` times per epoch, so that an epoch of the small synthetic set holds enough batches for
    every loader worker to reach its steady state (a real VoxCeleb2 epoch has thousands of batches)."""

    def __init__(self, dataset, times):
        self.dataset, self.times = dataset, times

    def __len__(self):
        return len(self.dataset) * self.times

    def __getitem__(self, key):
        epoch, index = key
        return self.dataset[(epoch, index % len(self.dataset))]

    def __getattr__(self, name):   # phase, skipped ... of the wrapped dataset
        return getattr(self.dataset, name)


def loader_for(args, train):
    """The Vox_image training loader, or the DFDC test loader, over the synthetic data under --data_root; each epoch
    covers the data often enough for ``--epoch_batches`` batches."""
    from data import DatasetLoader, create_dataset
    root = ensure_data(args.data_root, args.data_image_size)
    opt = model_opt(args, train, dataroot=os.path.join(root, 'Voxceleb2' if train else 'DFDC'))
    opt.max_dataset_size, opt.no_flip = 10 ** 9, True
    if not train:
        opt.batch_size = args.score_batch
    phase = 'train' if train else 'test'
    carry = transport_of(args)
    negatives = args.n_negatives if train and args.negatives == 'sampled' else 0
    dataset = create_dataset(opt, phase, shuffle=train, n_negatives=negatives, transport=carry).dataset
    times = max(1, -(-args.epoch_batches * opt.batch_size // len(dataset)))
    return DatasetLoader(Repeated(dataset, times), opt, shuffle=train, transport=carry)


def loop_times(loader, needed, step=None):
    """Seconds per batch over ``needed`` batches (epochs repeat as needed), each batch passed to ``step``."""
    times, epoch = [], 0
    while len(times) < needed:
        epoch += 1
        loader.set_epoch(epoch)
        start = time.perf_counter()
        for batch in loader:
            if step is not None:
                step(batch)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            if len(times) >= needed:
                break
    return times


def child_data(args):
    """(batch times, samples per batch, extras) of the Vox_image training loader alone, after the warm-up batches."""
    loader = loader_for(args, train=True)
    times = loop_times(loader, args.warmup + args.steps)[args.warmup:]
    return times, args.batch_size, {'num_threads': args.num_threads, 'face_decode': loader.transport.face_decode}


def child_loop(args, train):
    """A training or test loop as train_DF.py / test_DF.py run it: loader workers and the model share the CPU."""
    from models.DFD_model import DFDModel
    model = DFDModel.build(model_opt(args, train))
    loader = loader_for(args, train)
    if train:
        model.train()

        def step(batch):
            model.set_input(batch)
            model.optimize_parameters()
            sync(args.device_name)
    else:
        model.eval()

        def step(batch):
            model.score_pairs(batch['voice'], batch['face']).cpu()
    times = loop_times(loader, args.warmup + args.steps, step)[args.warmup:]
    return times, args.batch_size if train else args.score_batch, {'num_threads': args.num_threads,
                                                                   'face_decode': loader.transport.face_decode}


PREP = {   # measurement: (prep module, kind of synthetic video, extra arguments)
    'prep_vox_dlib': ('scripts.prep_voxceleb2', 'vox', ['--detector', 'dlib']),
    'prep_vox_none': ('scripts.prep_voxceleb2', 'vox', ['--detector', 'none']),
    'prep_dfdc': ('scripts.prep_dfdc', 'dfdc', []),
}
VOXCELEB2_DEV_CLIPS = 1_092_009


def child_prep(args, what):
    """(CPU seconds per clip, 1, extras) of one prep script run with one worker over synthetic videos."""
    import importlib
    import shutil
    from scripts import make_videos
    module, kind, extra = PREP[what]
    src = os.path.join(args.data_root, 'prep_src', kind)
    if kind == 'vox':
        make_videos.make(src, kind, args.prep_clips)
    else:   # landscape and portrait 1080p, normal, dark and bright light, in turn
        shapes = [(shape, light) for shape in ('dfdc', 'dfdc_portrait') for light in make_videos.LIGHTS]
        for i, (shape, light) in enumerate(shapes):
            make_videos.make(src, shape, len(range(i, args.prep_clips, len(shapes))), light=light)
    prep = importlib.import_module(module)
    out = tempfile.mkdtemp(prefix='vfd_prep_bench_')
    try:   # one clip first, untimed: imports, the detector's set-up and librosa's first calls
        prep.main(['--src', src, '--out', os.path.join(out, 'warmup'), '--workers', '1', '--limit', '1', *extra])
        shutil.rmtree(os.path.join(out, 'warmup'))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        status = prep.main(['--src', src, '--out', out, '--workers', '1', *extra])
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        faces = sum(name.endswith('.jpg') for _, _, names in os.walk(out) for name in names)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if status != 0:
        raise SystemExit(f'{module} exited with {status}')
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    rate = args.prep_clips / cpu
    return [cpu / args.prep_clips], 1, {'clips': args.prep_clips, 'faces': faces, 'kind': kind,
                                        'wall_rate': args.prep_clips / wall,
                                        'voxceleb2_16_cores_h': VOXCELEB2_DEV_CLIPS / (16 * rate) / 3600}


DETECT_COSTS = (   # (label, function name in the profile) of detect.py's stages after its imports
    ('options', 'parse'), ('model loaded', 'load_model'), ('audio decoded', 'decode_audio'),
    ('frames decoded', 'decode_frames'), ('faces found', 'crop'), ('mels', 'window_mel'),
    ('journal voices', 'journal_wav'), ('scored', 'score_pairs'))


DETECT_IMPORTS = ('import scripts.detect, options.test_options, data.audio, data.faces, data.inputs, models, '
                  'prep.video')


def child_detect(args):
    """(seconds to verdict, 1, extras) of ``scripts/detect.py`` on a 10-s 1080p H.264 video (synthetic, with a
    face and a voice) with a model of ``--config`` size: each run a new process, from start to the JSON line; peak
    RSS of that process; then one run profiled in this process to name the largest costs."""
    import cProfile
    import pstats
    import shutil
    from models.DFD_model import DFDModel
    from scripts import make_videos
    video = make_videos.make(os.path.join(args.data_root, 'detect_src'), 'dfdc', 1)[0]
    ck = tempfile.mkdtemp(prefix='vfd_detect_bench_')
    try:
        opt = model_opt(args, False)
        opt.checkpoints_dir, opt.name = ck, 'benchmark'
        model = DFDModel.build(opt)
        model.save_dir = os.path.join(ck, 'benchmark')
        model.save_networks('latest', epoch=0)
        del model
        cmd = [sys.executable, '-m', 'scripts.detect', video, '--name', 'benchmark', '--checkpoints_dir', ck,
               '--gpu_ids', args.device_name.split(':')[1] if args.device_name.startswith('cuda') else '-1', '--json']
        imports = []   # a new process that only imports what detect.py runs: the part the profile cannot see
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, '-c', DETECT_IMPORTS], cwd=HERE, check=True)
            imports.append(time.perf_counter() - start)
        times = []
        for _ in range(1 + max(3, args.steps // 3)):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f'detect.py exited with {done.returncode}: {done.stderr[-2000:]}')
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        windows = json.loads(done.stdout.strip().splitlines()[-1])['windows_scored']
        from scripts import detect
        profile = cProfile.Profile()
        profile.enable()
        detect.main([video, '--name', 'benchmark', '--checkpoints_dir', ck, '--gpu_ids', cmd[cmd.index('--gpu_ids')
                                                                                             + 1], '--json'])
        profile.disable()
    finally:
        shutil.rmtree(ck, ignore_errors=True)
    stats = pstats.Stats(profile).stats
    costs = {}
    for label, name in DETECT_COSTS:
        found = [value[3] for (_, _, function), value in stats.items() if function == name]
        if found:
            costs[label] = max(found)
    costs["imports (new process)"] = statistics.median(imports)
    return times[1:], 1, {'windows': windows, 'costs': costs, 'first_run': times[0], 'child_peak_bytes': peak}


def ensure_data(root, image_size=224):
    """Synthetic Vox_image and DFDC sets under ``root`` (made once), faces stored at ``image_size`` pixels (224: what
    the prep scripts write, so the loader does not resample them at the paper's size)."""
    from scripts import make_sample_data
    make_sample_data.main(['--out', root, '--sets', 'vox,dfdc', '--vox_ids', '64', '--videos', '2', '--frames', '1',
                           '--dfdc_ids', '32', '--dfdc_reals', '2',     # 128 test videos, as in the recorded runs
                           '--image_size', str(image_size), '--workers', str(min(16, os.cpu_count() or 1))])
    return root


def run_child(args):
    """Take the measurement named by ``--child`` and print its rates and peak memory as one JSON line."""
    torch.manual_seed(0)
    if args.child == 'train':
        times, per_step, extra = child_train(args, args.baseline_run)
    elif args.child == 'score':
        times, per_step, extra = child_score(args, args.baseline_run)
    elif args.child == 'data':
        times, per_step, extra = child_data(args)
    elif args.child == 'peak':
        times, per_step, extra = child_peak(args)
    elif args.child in PREP:
        times, per_step, extra = child_prep(args, args.child)
    elif args.child == 'detect':
        times, per_step, extra = child_detect(args)
    else:
        times, per_step, extra = child_loop(args, train=args.child == 'train_loop')
    if args.count_flops:   # a child of its own, so that counting touches neither the timings nor the peak memory
        print(json.dumps(extra))
        return
    rates = sorted(per_step / t for t in times)
    median = statistics.median(rates)
    if args.child in ('data', 'train_loop', 'score_loop', *PREP):   # bursts, or one figure: the overall rate
        median = per_step * len(times) / sum(times)
    peak = (torch.cuda.max_memory_allocated() if args.device_name.startswith('cuda')
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({'median': median, 'min': rates[0], 'max': rates[-1], 'steps': len(times),
                      'per_step': per_step, 'peak_bytes': peak, **extra}))


def machine(device):
    """One line naming the CPU, its cores, the torch version and threads, and the GPU on CUDA."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as handle:
            cpu = next(line.split(':', 1)[1].strip() for line in handle if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    text = f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads'
    if device.startswith('cuda') and torch.cuda.is_available():
        text += f', {torch.cuda.get_device_name(0)}'
    return text


def measure(args, what, baseline=False, count_flops=False):
    """Run one measurement in a child process and return its JSON result; stops with the child's stderr if it fails.
    ``count_flops``: count the FLOPs of one step instead of timing (train and score)."""
    cmd = [sys.executable, '-m', 'scripts.benchmark', '--child', what] + args.passthrough
    if baseline:
        cmd.append('--baseline_run')
    if count_flops:
        cmd.append('--count_flops')
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if args.profile:   # keep what the child logged (compiler messages, warnings) beside the profiles
        name = f'{what}{"_baseline" * baseline}{"_flops" * count_flops}_stderr.txt'
        with open(os.path.join(args.profile, name), 'w') as handle:
            handle.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f'benchmark child {what} failed:\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def table_row(what, label, unit, r, done):
    """One markdown row of a measurement; the detail names the step's size and, where the FLOPs of an item and the
    matmul peak were measured in this run, the model-FLOP utilisation (counted FLOPs x rate / measured peak)."""
    if what == 'peak':
        return (f'| peak | {r["matmul"]} matmul | {r["median"] / 1e12:.1f} {unit} | {r["min"] / 1e12:.1f}-'
                f'{r["max"] / 1e12:.1f} | {r["peak_bytes"] / 2 ** 30:.2f} GiB | the MFU denominator |')
    if what == 'detect':
        costs = ', '.join(f'{label} {seconds:.1f} s' for label, seconds in
                          sorted(r['costs'].items(), key=lambda item: -item[1]))
        return (f'| detect | this project | {1 / r["median"]:.1f} s to verdict | {1 / r["max"]:.1f}-{1 / r["min"]:.1f} '
                f'| {r["child_peak_bytes"] / 2 ** 30:.2f} GiB | a 10-s 1080p H.264 video, {r["windows"]} windows, a new '
                f'process per run (the first, with cold caches, {r["first_run"]:.1f} s); where the time goes (imports '
                f'timed in new processes, the rest profiled in one run, inclusive): {costs} |')
    if what in PREP:
        return (f'| {what} | this project | {r["median"]:.2f} {unit} | - | {r["peak_bytes"] / 2 ** 30:.2f} GiB | '
                f'{r["clips"]} {r["kind"]} clips, one worker, a face found in {r["faces"]} of {r["clips"]} '
                f'({100 * r["faces"] / max(1, r["clips"]):.0f} %), {1 / r["median"]:.2f} s of CPU per clip; '
                f'{r["wall_rate"]:.2f} clips/s of wall time'
                + (f'; VoxCeleb2 dev ({VOXCELEB2_DEV_CLIPS:,} clips) on 16 cores: {r["voxceleb2_16_cores_h"]:.1f} h'
                   if r['kind'] == 'vox' else '') + ' |')
    detail = f'{r["per_step"]} per step'
    if 'negatives_per_anchor' in r:
        detail += f', {r["negatives_per_anchor"]} negatives per anchor'
    if 'num_threads' in r:
        detail += f', {r["num_threads"]} loader workers'
    if 'face_decode' in r:
        detail += f', faces decoded on the {r["face_decode"]}'
    source = {'train_loop': 'train', 'score_loop': 'score'}.get(what, what)
    flops = r.get('flops_per_item') or (done.get(source) or {}).get('flops_per_item')
    if flops:
        detail += f', {flops / 1e9:.1f} GFLOP per item'
        if 'peak' in done and label == 'this project':
            detail += f', MFU {100 * flops * r["median"] / done["peak"]["median"]:.1f} %'
    return (f'| {what} | {label} | {r["median"]:.2f} {unit} | {r["min"]:.2f}-{r["max"]:.2f} | '
            f'{r["peak_bytes"] / 2 ** 30:.2f} GiB | {detail} |')


def main(argv=None):
    """Run the measurements, print their table rows and append them to ``--append``; returns 0 (1 if a child fails)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--config', choices=sorted(CONFIGS), default='paper', help='model size')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (or cuda:N)')
    parser.add_argument('--what', default='train,score,data,train_loop,score_loop',
                        help='measurements to run, comma-separated')
    parser.add_argument('--encoder_compat', default='fixed', choices=('fixed', 'released', 'journal'),
                        help='encoder mode (journal: with --config journal or journal_tiny)')
    parser.add_argument('--negatives', default='in_batch', choices=('in_batch', 'sampled'), help='negatives')
    parser.add_argument('--n_negatives', type=int, default=5, help='sampled negatives per anchor')
    parser.add_argument('--batch_size', type=int, default=8, help='anchors per training step')
    parser.add_argument('--score_batch', type=int, default=16, help='pairs per scoring step')
    parser.add_argument('--voice_dtype', default='', choices=('', 'float16', 'float32'),
                        help='dtype voices travel in from the loader workers (default: what the model asks for)')
    parser.add_argument('--face_decode', default='auto', choices=('auto', 'loader', 'device'),
                        help='where the loader-fed rows decode face JPEGs (train_DF.py --face_decode)')
    parser.add_argument('--amp', default='none', choices=('none', 'bf16', 'fp16'), help='autocast dtype')
    parser.add_argument('--channels_last', default='on', choices=('on', 'off'), help='memory format')
    parser.add_argument('--compile', action='store_true', help='torch.compile the training step')
    parser.add_argument('--compile_mode', default='default', help='torch.compile mode (see train_DF.py --help)')
    parser.add_argument('--num_threads', type=int, default=2, help='DataLoader workers for the data measurement')
    parser.add_argument('--data_root', default=os.path.join(tempfile.gettempdir(), 'vfd_benchmark_data'),
                        help='where the synthetic dataset for the data measurement lives')
    parser.add_argument('--data_image_size', type=int, default=224, help='face size of the synthetic data')
    parser.add_argument('--epoch_batches', type=int, default=200,
                        help='loader measurements: the synthetic data is repeated until an epoch holds this many '
                             'batches')
    parser.add_argument('--profile', default='', help='folder for torch.profiler tables of the train measurement')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--steps', type=int, default=6, help='timed steps')
    parser.add_argument('--baseline', action='store_true', help='also measure the released recipe')
    parser.add_argument('--append', default=os.path.join(HERE, 'docs', 'benchmarks.md'),
                        help='markdown file that receives the figures ("" = print only)')
    parser.add_argument('--note', default='', help='a remark written with the figures')
    parser.add_argument('--prep_clips', type=int, default=8, help='synthetic videos per prep measurement')
    parser.add_argument('--child', choices=('train', 'score', 'data', 'train_loop', 'score_loop', 'peak', 'detect',
                                             *PREP),
                        help=argparse.SUPPRESS)
    parser.add_argument('--baseline_run', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--count_flops', action='store_true', help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.device_name = args.device
    if (args.encoder_compat == 'journal') != args.config.startswith('journal'):
        parser.error('--encoder_compat journal goes with --config journal or journal_tiny (and only it)')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda, but torch sees no CUDA device')
    if args.child:
        run_child(args)
        return 0
    args.passthrough = [a for a in argv if a != '--baseline']
    rows, done = [], {}
    wanted = [w.strip() for w in args.what.split(',') if w.strip()]
    for what in sorted(wanted, key=lambda w: w != 'peak'):   # the matmul peak first: the MFU needs it
        unit = {'train': 'anchors/s', 'score': 'pairs/s', 'data': 'samples/s', 'train_loop': 'anchors/s',
                'score_loop': 'pairs/s', 'peak': 'TFLOP/s', 'detect': 's', **dict.fromkeys(PREP, 'clips/s per core')}[what]
        runs = [('this project', measure(args, what))]
        if what in ('train', 'score') and 'peak' in wanted:   # the MFU needs the FLOPs of an item
            runs[0][1].update(measure(args, what, count_flops=True))
        done[what] = runs[0][1]
        if args.baseline and what in ('train', 'score'):
            runs.append(('released recipe', measure(args, what, baseline=True)))
        for label, r in runs:
            rows.append(table_row(what, label, unit, r, done))
            print(rows[-1], flush=True)
        if len(runs) == 2:
            ratio = runs[0][1]['median'] / runs[1][1]['median']
            rows.append(f'| {what} | ratio | {ratio:.1f}x | | | this project / released recipe |')
            print(rows[-1], flush=True)
        compute = {'train_loop': 'train', 'score_loop': 'score'}.get(what)
        if compute in done:
            ratio = done[what]['median'] / done[compute]['median']
            rows.append(f'| {what} | fed / compute-only | {100 * ratio:.0f} % | | | {what} / {compute} of this run |')
            print(rows[-1], flush=True)
    if args.append:
        from util.util import git_commit
        memory = 'peak RSS' if not args.device.startswith('cuda') else 'max CUDA allocation'
        section = [f'\n### {time.strftime("%Y-%m-%d %H:%M")} - {args.config} size on {args.device}'
                   + (f' ({args.note})' if args.note else ''),
                   '', f'- machine: {machine(args.device)}',
                   f'- command: `python -m scripts.benchmark {shlex.join(argv)}`', f'- commit: {git_commit()}', '',
                   f'| what | code | median | range (slowest-fastest step) | {memory} | detail |',
                   '|---|---|---|---|---|---|', *rows, '']
        with open(args.append, 'a') as handle:
            handle.write('\n'.join(section))
        print(f'appended to {args.append}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

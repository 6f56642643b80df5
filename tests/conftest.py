"""Shared fixtures: the tiny configuration, and small synthetic datasets generated once per test session; a check
that the suite leaves the working tree as it found it."""
import os
import socket
import subprocess

import pytest
import torch

from scripts import make_sample_data


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


MAX_WORKERS = 8     # each worker makes its own session fixtures (the sample data, the learning sets)


@pytest.hookimpl(optionalhook=True)     # a hook of pytest-xdist: no error where it is not installed
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (scripts/run_tests.sh): one worker per usable core, at most MAX_WORKERS."""
    return min(usable_cpus(), MAX_WORKERS)


# a pytest-xdist worker takes its share of the cores: two workers of two threads each on two cores ran slower than
# one process, one thread each ran in 280 s against 496 s. The share holds for torch, for numpy's OpenBLAS (loaded
# before this file; a mel summed on one thread differs in its last bits from one summed on two, and a test compares
# files made here with files made in spawned processes) and, through OMP_NUM_THREADS, for every subprocess.
if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
    from threadpoolctl import threadpool_limits
    WORKER_THREADS = max(1, usable_cpus() // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))
    os.environ['OMP_NUM_THREADS'] = str(WORKER_THREADS)
    torch.set_num_threads(WORKER_THREADS)
    WORKER_LIMITS = threadpool_limits(WORKER_THREADS)

TINY = ['--load_size', '64', '--crop_size', '64', '--width_mult', '0.25', '--dim', '128', '--depth', '2',
        '--heads', '4', '--mlp_dim', '256', '--emb_dim', '128']
# for trainings whose test is about neither the training page nor the BatchNorm statistics: no page (a redraw costs
# about a second at each validation) and no recalibration (about half a second an epoch at the tiny size);
# test_visdom.py, test_browser.py, test_collapse.py, test_learning.py and the tests that read a page keep both
QUICK = ['--no_html', '--bn_recalib_batches', '0']
TINY_ARCH = dict(encoder_compat='fixed', dim=128, depth=2, heads=4, mlp_dim=256, emb_dim=128, width_mult=0.25,
                 crop_size=64, n_mels=512, n_frames=301)
# the CPU always; CUDA too where there is one (the suite runs on a GPU machine as it is)
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
PAPER_ARCH = dict(encoder_compat='released', dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048, width_mult=1.0,
                  crop_size=224, n_mels=512, n_frames=301)


@pytest.fixture(scope='session')
def sample_root(tmp_path_factory):
    """A small copy of the sample data: 8 training identities, DFDC-style and FakeAVCeleb-style test sets, and an
    AV-Deepfake1M-style set of 4 raw videos (AV1M_raw/)."""
    root = tmp_path_factory.mktemp('sample')
    make_sample_data.main(['--out', str(root), '--vox_ids', '8', '--videos', '2', '--frames', '2',
                           '--dfdc_ids', '4', '--dfdc_reals', '1', '--fakeavceleb_ids', '2', '--av1m_ids', '2',
                           '--image_size', '64'])
    return root


# the identities of the learning tests: VFD_LEARNING_SEED (default 0) seeds them, VFD_LEARNING_VARIANT (a or b) picks
# the generator of scripts/make_sample_data.py
LEARNING_SEED = int(os.environ.get('VFD_LEARNING_SEED', '0'))
LEARNING_VARIANT = os.environ.get('VFD_LEARNING_VARIANT', 'a')


@pytest.fixture(scope='session')
def identity_sets(tmp_path_factory):
    """The sets of the learning tests (tests/test_learning.py, test_journal_training.py): 300 training identities of
    one clip each (Voxceleb2/) and a DFDC-style set of 64 further identities with 2 real and 2 fake videos each.
    Made in this process: on 2 cores a pool of 2 workers took 38 s against 20 s here (each worker imports torch
    and librosa again, and the two compete with numpy's threads)."""
    root = tmp_path_factory.mktemp('identities')
    make_sample_data.main(['--out', str(root), '--seed', str(LEARNING_SEED), '--variant', LEARNING_VARIANT,
                           '--vox_ids', '300', '--videos', '1', '--frames', '1', '--dfdc_ids', '64',
                           '--dfdc_reals', '2', '--sets', 'vox,dfdc', '--image_size', '64', '--workers', '1'])
    return root


def run_training(root, tmp_path, *extra):
    """A 2-epoch tiny training named ``watched`` of the sample set ``root``, into ``tmp_path``/ck, with its HTML page
    and the BatchNorm recalibration (the tests of what a person watching a training sees)."""
    import train_DF
    return train_DF.main(['--dataroot', vox(root), '--name', 'watched', *TINY, '--checkpoints_dir',
                          str(tmp_path / 'ck'), '--batch_size', '4', '--negatives', 'sampled', '--n_epochs', '2',
                          '--n_epochs_decay', '0', '--num_threads', '0', '--print_freq', '1', '--gpu_ids', '-1',
                          '--bn_recalib_batches', '2', *extra])


@pytest.fixture(scope='session')
def watched_run(sample_root, tmp_path_factory):
    """The checkpoints folder of one ``run_training`` with its page and no visdom (--display_id 0), shared by the
    tests that read its page; a test that trains on copies it first."""
    base = tmp_path_factory.mktemp('watched')
    assert run_training(sample_root, base, '--display_id', '0') == 0
    return base / 'ck'


@pytest.fixture(autouse=True)
def torch_process_settings():
    """Puts back after each test what an entry point run in the test process sets for the whole process (the
    deterministic mode of --deterministic, a thread count), so that no test depends on the tests before it."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def run_dirs(tmp_path):
    """--checkpoints_dir and --results_dir arguments inside a fresh temporary folder (training takes the first two)."""
    return ['--checkpoints_dir', str(tmp_path / 'checkpoints'), '--results_dir', str(tmp_path / 'results')]


def encoders(arch, init_type='normal'):
    """(voice, face) encoders of an architecture dict like TINY_ARCH, initialised as the released code does."""
    from models import ModelConfig, networks
    voice, face = ModelConfig.from_legacy_options(arch).build_encoders()
    for net in (voice, face):
        networks.init_weights(net, init_type, 0.02)
    return voice, face


def tiny_model(train=False, device='cpu', **options):
    """A new DFD model of the tiny size, from options parsed as train_DF.py (``train``) or test_DF.py parse them;
    ``options`` are flags (``True`` for a switch), ``device`` overrides the device."""
    from models.DFD_model import DFDModel
    from options.test_options import TestOptions
    from options.train_options import TrainOptions
    argv = ['--dataroot', 'unused', '--checkpoints_dir', 'unused', '--gpu_ids', '-1', *TINY]
    for key, value in options.items():
        argv += [f'--{key}'] if value is True else [f'--{key}', str(value)]
    opt = (TrainOptions if train else TestOptions)().parse(argv, save=False, verbose=False)
    opt.device = device
    torch.manual_seed(0)
    return DFDModel.build(opt)


def unavailable(reason, required_by):
    """Skip a test for want of ``reason``; fail it instead where the environment variable ``required_by`` is set
    (.ci/run sets it for what CI provides, so a green CI never hides a test that did not run)."""
    if os.environ.get(required_by):
        log = os.environ.get('VFD_SETUP_LOG')
        tail = ''
        if log and os.path.exists(log):
            tail = '\n' + ''.join(open(log, errors='replace').readlines()[-10:])
        pytest.fail(f'{reason}; {required_by} is set (.ci/run), so this fails instead of skipping{tail}',
                    pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path):
    """Makes real small disks: ``small_disk(size)`` mounts a tmpfs of ``size`` bytes under tmp_path (root only;
    skipped elsewhere, failed where .ci/run found it can mount one) and returns its folder."""
    mounted = []

    def mount(size):
        folder = tmp_path / f'disk{len(mounted)}'
        folder.mkdir()
        done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            unavailable(f'a small tmpfs cannot be mounted here (needs root): {done.stderr.decode().strip()}',
                        'VFD_REQUIRE_TMPFS')
        mounted.append(folder)
        return folder
    yield mount
    for folder in mounted:
        subprocess.run(['umount', '-l', str(folder)], check=False)


def free_port():
    """A TCP port of the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def vox(root):
    return os.path.join(str(root), 'Voxceleb2')


def dfdc(root):
    return os.path.join(str(root), 'DFDC')


SLOW = {line.strip() for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'slow_tests.txt'))
        if line.strip() and not line.startswith('#')}


def pytest_collection_modifyitems(config, items):
    """Mark the tests listed in tests/slow_tests.txt (every parametrisation of each) as ``slow``."""
    for item in items:
        if item.nodeid.split('[')[0] in SLOW:
            item.add_marker(pytest.mark.slow)


def git_status():
    """``git status --porcelain`` of the repository the tests live in (untracked files included), or None outside
    a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=root,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def pytest_sessionstart(session):
    if not os.environ.get('PYTEST_XDIST_WORKER'):      # the controlling process checks, after every worker ended
        session.config.git_status_before = git_status()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when the tests changed, added or removed a file git sees (tracked or not ignored)."""
    if not hasattr(session.config, 'git_status_before'):
        return
    before, after = session.config.git_status_before, git_status()
    if before is None or after is None or before == after:
        return
    changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
    session.config.get_terminal_writer().line(
        'the tests changed the working tree (they must write only to temporary folders):\n  '
        + '\n  '.join(changed[:20]), red=True)
    session.exitstatus = 1

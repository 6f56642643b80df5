"""Checkpoints in the authors' released format and in the project's format: keys, shapes, loading, refusing."""
import csv
import json
import os
import shutil
import string

import numpy as np
import pytest
import torch

import test_DF
import train_DF
from models import CheckpointError, load_model
from models.checkpoint import describe_mismatch
from models.checkpoint import read as read_checkpoint
from models.DFD_model import DFDModel
from options.test_options import TestOptions
from scripts import make_sample_data
from tests.conftest import PAPER_ARCH, QUICK, TINY, encoders, dfdc

V1 = os.path.join(os.path.dirname(__file__), 'fixtures', 'checkpoints_v1')


def parsed_test_options(checkpoints_dir, name, *extra):
    """Parsed test_DF.py options for the run ``name`` (no checkpoint is read while parsing)."""
    return TestOptions().parse(['--dataroot', str(checkpoints_dir), '--name', name, '--checkpoints_dir',
                                str(checkpoints_dir), '--gpu_ids', '-1', *extra], save=False, verbose=False)

KEYS = json.load(open(os.path.join(os.path.dirname(__file__), 'fixtures', 'released_checkpoint_keys.json')))


def state_dict_from_json(keys, generator):
    """A plain state dict with exactly the released keys and shapes (random values, as the authors' files)."""
    out = {}
    for key, shape in keys.items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith('running_var'):
            out[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            out[key] = torch.randn(shape, generator=generator) * 0.02
    return out


@pytest.fixture(scope='module')
def released_files(tmp_path_factory):
    """latest_net_G_audio.pth / latest_net_G_video.pth written from the reference key list, as plain state dicts."""
    folder = tmp_path_factory.mktemp('released') / 'checkpoints' / 'authors'
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name in ('latest_net_G_audio.pth', 'latest_net_G_video.pth'):
        torch.save(state_dict_from_json(KEYS[name], g), folder / name)
    return folder


def test_released_files_load_strictly_in_released_mode(released_files):
    voice, face = encoders(PAPER_ARCH)
    for net, name in ((voice, 'latest_net_G_audio.pth'), (face, 'latest_net_G_video.pth')):
        state_dict, meta = read_checkpoint(str(released_files / name))
        assert meta is None
        assert describe_mismatch(net, state_dict) == []
        net.load_state_dict(state_dict, strict=True)
        assert {k: list(v.shape) for k, v in net.state_dict().items()} == KEYS[name]


def test_released_files_do_not_fit_fixed_mode_and_the_message_says_why(released_files):
    opt = parsed_test_options(released_files.parent, 'authors', '--encoder_compat', 'fixed')
    with pytest.raises(CheckpointError, match=r'(?s)pos_embedding.*\(32, 1, 1024\).*--encoder_compat released'):
        load_model(opt, str(released_files), 'latest')
    model = load_model(parsed_test_options(released_files.parent, 'authors'), str(released_files), 'latest')   # auto
    assert model.config.compat == 'released' and model.loaded_meta is None


def test_test_DF_runs_on_released_weights_without_any_size_option(released_files, sample_root, tmp_path, capsys):
    results = tmp_path / 'results'
    rc = test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'authors', '--checkpoints_dir',
                       str(released_files.parent), '--results_dir', str(results), '--gpu_ids', '-1',
                       '--num_threads', '0', '--batch_size', '4'])
    assert rc == 0
    summary = json.loads((results / 'authors' / 'DFDC_all_sound_latest' / 'summary.json').read_text())
    assert summary['encoder_compat'] == 'released'
    assert summary['checkpoint_format'].startswith('plain state dict')
    assert summary['accuracy'] is None and 'none' in summary['threshold_source']
    page = (results / 'authors' / 'DFDC_all_sound_latest' / 'index.html').read_text()
    assert 'stores no validation threshold' in page and 'not chosen' not in page
    assert (summary['n_real'], summary['n_fake']) == (4, 4)
    assert 'AUC' in capsys.readouterr().out


def test_project_checkpoints_round_trip_with_released_keys(tmp_path):
    opt = parsed_test_options(tmp_path, 'run', *TINY, '--encoder_compat', 'released')
    model = DFDModel.build(opt)
    model.save_networks('latest', epoch=3)
    state_dict, meta = read_checkpoint(str(tmp_path / 'run' / 'latest_net_G_audio.pth'))
    assert meta['config'] == model.config.to_dict() and meta['config']['compat'] == 'released'
    assert meta['version'] == 2 and meta['epoch'] == 3
    released_names = {k for k in KEYS['latest_net_G_audio.pth']  # the released names, for a depth-2 transformer
                      if not k.startswith('transformer.layers.') or int(k.split('.')[2]) < 2}
    assert set(state_dict) == released_names
    other = load_model(parsed_test_options(tmp_path, 'run'), str(tmp_path / 'run'), 'latest')   # no size typed
    assert other.config == model.config and other.loaded_meta['epoch'] == 3
    for (_, a), (_, b) in zip(model.networks(), other.networks()):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


def test_each_weight_file_is_read_once(tmp_path, monkeypatch):
    from models import checkpoint
    opt = parsed_test_options(tmp_path, 'run', *TINY)
    DFDModel.build(opt).save_networks('latest', epoch=1)
    reads = []
    real_load = torch.load
    monkeypatch.setattr(checkpoint.torch, 'load', lambda path, **kw: reads.append(path) or real_load(path, **kw))
    load_model(parsed_test_options(tmp_path, 'run'), str(tmp_path / 'run'), 'latest')
    assert sorted(os.path.basename(p) for p in reads) == ['latest_net_G_audio.pth', 'latest_net_G_video.pth']


@pytest.fixture(scope='module')
def v1_data(tmp_path_factory):
    """The sample sets the version-1 fixtures were trained and scored on (tests/fixtures/checkpoints_v1/README.md).
    The DFDC-style one (``--dfdc_ids 2 --dfdc_reals 1 --image_size 32``) is drawn as make_sample_data drew it then:
    one random stream for names and pixels, each fake's face from any other identity. The script now plans its test
    sets in groups, so this keeps its former loop, built from the same parts."""
    from scripts.make_sample_data import identity_traits, pick_other, render_pair, write_pair
    root = tmp_path_factory.mktemp('v1data')
    seed, first, numbers = 0, 10001, [10001, 10002]
    rng = np.random.default_rng([seed, 2, first])
    for number in numbers:
        traits = identity_traits(seed, number)
        for folder, face in (('real', traits), ('fake', None)):
            if face is None:
                face = identity_traits(seed, pick_other(rng, seed, number, numbers, 1.0))
            name = ''.join(rng.choice(list(string.ascii_lowercase), size=10))
            write_pair(*render_pair(face, traits, rng, 32, 'a'), str(root / 'DFDC' / folder / f'{name}.jpg'),
                       str(root / 'DFDC' / 'audio_feat' / f'{name}.npy'), rng)
    make_sample_data.main(['--out', str(root), '--sets', 'vox', '--vox_ids', '6', '--videos', '1', '--frames', '2',
                           '--image_size', '32'])                           # the training set is drawn as it was
    return root


@pytest.mark.parametrize('mode', ['fixed', 'released'])
def test_version_1_checkpoints_still_load_and_score_as_they_did(mode, v1_data, tmp_path):
    """Checkpoints written before the model config existed (their architecture in ``options``) load without any
    size option and give the scores recorded when they were written."""
    expected = json.load(open(os.path.join(V1, 'expected_scores.json')))[mode]
    results = tmp_path / 'results'
    checkpoints = tmp_path / 'checkpoints'   # a copy: testing writes test_opt.* into the run's folder
    shutil.copytree(os.path.join(V1, mode), checkpoints / mode)
    assert test_DF.main(['--dataroot', str(v1_data / 'DFDC'), '--name', mode, '--checkpoints_dir', str(checkpoints),
                         '--results_dir', str(results), '--gpu_ids', '-1', '--num_threads', '0']) == 0
    summary = json.loads((results / mode / 'DFDC_all_sound_latest' / 'summary.json').read_text())
    assert summary['encoder_compat'] == mode and summary['model_config']['face']['image_size'] == 32
    with open(results / mode / 'DFDC_all_sound_latest' / 'scores.csv') as handle:
        got = {os.path.relpath(row['face_path'], str(v1_data)): float(row['score']) for row in csv.DictReader(handle)}
    assert got.keys() == expected.keys()
    # released mode reads exactly the inputs it read then (PIL faces, float32 voices): the same scores to the digits
    # written. Fixed mode now decodes faces with torchvision and carries voices as float16 (at most 2 ** -12 off):
    # measured 6e-4 of the score at most, bounded at 2e-3.
    for key, score in expected.items():
        tolerance = dict(abs=2e-5) if mode == 'released' else dict(rel=2e-3)
        assert got[key] == pytest.approx(score, **tolerance), key


def test_a_version_1_training_state_resumes(v1_data, tmp_path):
    run = tmp_path / 'ck' / 'fixed'
    shutil.copytree(os.path.join(V1, 'fixed'), run)
    assert train_DF.main(['--dataroot', str(v1_data / 'Voxceleb2'), '--name', 'fixed', '--checkpoints_dir',
                          str(tmp_path / 'ck'), '--continue_train', '--n_epochs', '2', '--n_epochs_decay', '0',
                          '--negatives', 'sampled', '--n_negatives', '2', '--batch_size', '4', '--num_threads', '0',
                          '--gpu_ids', '-1', '--display_id', '0', '--no_html', '--bn_recalib_batches', '1']) == 0
    _, meta = read_checkpoint(str(run / 'latest_net_G_video.pth'))
    assert meta['version'] == 2 and meta['epoch'] == 2 and meta['config']['face']['width_mult'] == 0.0625


def test_module_prefix_is_stripped_and_non_checkpoints_refused(tmp_path):
    torch.save({'module.w': torch.zeros(2)}, tmp_path / 'dp.pth')
    assert list(read_checkpoint(str(tmp_path / 'dp.pth'))[0]) == ['w']
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(CheckpointError, match='neither'):
        read_checkpoint(str(tmp_path / 'list.pth'))
    (tmp_path / 'trunc.pth').write_bytes((tmp_path / 'dp.pth').read_bytes()[:50])
    with pytest.raises(CheckpointError, match='cannot be read'):
        read_checkpoint(str(tmp_path / 'trunc.pth'))


class _Payload:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    torch.save({'state_dict': _Payload()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='refused'):
        read_checkpoint(str(tmp_path / 'evil.pth'))


def test_explicit_options_do_not_override_the_checkpoint(tmp_path, sample_root, caplog):
    """A project checkpoint wins over a size typed on the command line (the weights only fit the stored one)."""
    import train_DF
    run_dirs = ['--checkpoints_dir', str(tmp_path / 'ck'), '--results_dir', str(tmp_path / 'res')]
    assert train_DF.main(['--dataroot', os.path.join(str(sample_root), 'Voxceleb2'), '--name', 'x', *TINY,
                          '--n_epochs', '1', '--n_epochs_decay', '0', '--batch_size', '2', '--negatives', 'sampled',
                          '--num_threads', '0',
                          '--gpu_ids', '-1', '--val_ratio', '0', '--display_id', '0', *QUICK, *run_dirs[:2]]) == 0
    assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'x', '--dim', '64', '--gpu_ids', '-1',
                         '--num_threads', '0', *run_dirs]) == 0
    assert '--dim 64 ignored: the checkpoint was trained with 128' in caplog.text


def test_resuming_puts_back_the_random_state_of_the_moment_it_was_saved(tmp_path):
    """What draws from torch's generator after a resume (dropout in a newcomer's encoder, say) continues the saved
    run's sequence, not the fresh process's."""
    from tests.conftest import tiny_model
    model = tiny_model(train=True)
    model.save_dir = str(tmp_path)
    torch.manual_seed(123)
    model.save_training_state('latest', epoch=1, epoch_iter=0, total_iters=5)
    after_save = torch.rand(8)
    torch.manual_seed(999)          # a new process starts from another state
    torch.rand(100)
    counters = model.load_training_state('latest')
    assert counters['total_iters'] == 5
    assert torch.equal(torch.rand(8), after_save)

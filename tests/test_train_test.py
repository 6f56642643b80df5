"""train_DF.py -> checkpoints -> test_DF.py, resuming, and what the runs write."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch

import test_DF
import train_DF
from models.checkpoint import read as read_checkpoint
from tests.conftest import QUICK, TINY, TINY_ARCH, dfdc, vox


def train_args(root, run_dirs, name, *extra):
    return ['--dataroot', vox(root), '--name', name, *TINY, '--batch_size', '2', '--negatives', 'sampled',
            '--n_epochs', '1',
            '--n_epochs_decay', '0', '--num_threads', '0', '--print_freq', '2', '--gpu_ids', '-1', '--no_flip',
            '--display_id', '0',
            *run_dirs[:2], *extra]


@pytest.fixture(scope='module')
def trained(sample_root, tmp_path_factory):
    """One tiny training run on the sample data, shared by the tests below."""
    base = tmp_path_factory.mktemp('run')
    run_dirs = ['--checkpoints_dir', str(base / 'checkpoints'), '--results_dir', str(base / 'results')]
    assert train_DF.main(train_args(sample_root, run_dirs, 'rt', *QUICK)) == 0
    return base, run_dirs


def test_training_writes_checkpoints_logs_split_and_options(trained):
    base, _ = trained
    folder = base / 'checkpoints' / 'rt'
    for name in ('1_net_G_audio.pth', '1_net_G_video.pth', 'latest_net_G_audio.pth', 'latest_net_G_video.pth',
                 'best_net_G_audio.pth', 'latest_train_state.pth', 'train_opt.txt', 'train_opt.json',
                 'split_train.txt', 'split_val.txt', 'loss_log.txt', 'metrics.jsonl'):
        assert (folder / name).is_file(), name
    assert (folder / 'split_val.txt').read_text().split() == ['id00001', 'id00002']
    records = [json.loads(line) for line in (folder / 'metrics.jsonl').read_text().splitlines()]
    assert {r['type'] for r in records} == {'run', 'train', 'val'}
    run = next(r for r in records if r['type'] == 'run')   # what a run's global batch is, once per start
    assert (run['world_size'], run['global_batch'], run['negatives_scope']) == (1, run['batch_size'], 'global')
    assert all(np.isfinite(r['losses']['triplet']) for r in records if r['type'] == 'train')
    state_dict, meta = read_checkpoint(str(folder / 'latest_net_G_video.pth'))
    from models import ModelConfig
    assert ModelConfig.from_dict(meta['config']) == ModelConfig.from_legacy_options(
        {**TINY_ARCH, 'load_size': 64, 'preprocess': 'resize_and_crop'})
    assert meta['epoch'] == 1 and 0 <= meta['val']['auc'] <= 1
    assert not any(k.startswith('module.') for k in state_dict)


def test_test_restores_the_architecture_from_the_checkpoint(trained, sample_root):
    base, run_dirs = trained
    # no size options typed: they come from the checkpoint
    assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'rt', '--gpu_ids', '-1', '--num_threads', '0',
                         *run_dirs]) == 0
    folder = base / 'results' / 'rt' / 'DFDC_all_sound_latest'
    summary = json.loads((folder / 'summary.json').read_text())
    assert summary['encoder_compat'] == 'fixed' and summary['checkpoint_epoch'] == 1
    assert (summary['n_real'], summary['n_fake']) == (4, 4)
    assert 0 <= summary['auc'] <= 1 and 0 <= summary['eer'] <= 1
    assert summary['accuracy'] is not None and 'validation' in summary['threshold_source']
    low, high = summary['auc_ci95']
    assert low <= summary['auc'] <= high and summary['bootstrap_resamples'] == 1000
    page = (folder / 'index.html').read_text()
    for piece in ('images/roc.png', 'images/scores.png', 'fakes scored most real', 'reals scored most fake',
                  'bootstrap interval', 'validation EER threshold'):
        assert piece in page, piece
    assert (folder / 'images' / 'roc.png').stat().st_size > 0 and (folder / 'images' / 'fake_worst0.png').is_file()
    index = (base / 'results' / 'rt' / 'index.html').read_text()
    assert 'DFDC_all_sound_latest/index.html' in index
    rows = list(csv.DictReader(open(folder / 'scores.csv')))
    assert len(rows) == 8 and {r['label'] for r in rows} == {'0', '1'}
    # the distance column is the score as a dissimilarity (neg_l2: minus the score); the score itself is checked
    # against the embeddings in the next test
    assert all(float(r['distance']) == pytest.approx(-float(r['score']), abs=2e-6) for r in rows)


def test_scores_equal_minus_the_embedding_distance(trained, sample_root, tmp_path):
    """Every row of scores.csv: minus the L2 distance of the pair's embeddings, each encoder run on its own here
    (this test writes its own results, so it does not depend on another test's)."""
    base, run_dirs = trained
    from data import create_dataset, transport
    from models import load_model
    from options.test_options import TestOptions
    results = tmp_path / 'results'
    assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'rt', '--gpu_ids', '-1', '--num_threads', '0',
                         '--checkpoints_dir', str(base / 'checkpoints'), '--results_dir', str(results)]) == 0
    opt = TestOptions().parse(['--dataroot', dfdc(sample_root), '--name', 'rt', '--gpu_ids', '-1',
                               '--num_threads', '0', *run_dirs], save=False, verbose=False)
    model = load_model(opt, str(base / 'checkpoints' / 'rt'), 'latest')
    model.eval()
    expected = {}
    for batch in create_dataset(opt, 'test', shuffle=False, **transport.dataset_args(model.config, opt, 'test')):
        with torch.no_grad():
            voice, face = model.netG_audio(batch['voice']), model.netG_video(batch['face'])
        for path, value in zip(batch['face_path'], -torch.linalg.vector_norm(voice - face + 1e-6, dim=1)):
            expected[path] = value.item()
    rows = list(csv.DictReader(open(results / 'rt' / 'DFDC_all_sound_latest' / 'scores.csv')))
    assert len(rows) == len(expected) == 8
    for row in rows:
        assert float(row['score']) == pytest.approx(expected[row['face_path']], rel=1e-4, abs=1e-5), row


def test_continue_train_resumes_after_the_last_epoch(trained, sample_root):
    base, run_dirs = trained
    # a copy of the shared run, so that the other tests of this file find it as it was, in any order
    shutil.copytree(base / 'checkpoints' / 'rt', base / 'checkpoints' / 'rt_resumed')
    assert train_DF.main(train_args(sample_root, run_dirs, 'rt_resumed', '--continue_train', '--n_epochs', '2',
                                    *QUICK)) == 0
    folder = base / 'checkpoints' / 'rt_resumed'
    assert (folder / '2_net_G_audio.pth').is_file()
    records = [json.loads(line) for line in (folder / 'metrics.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in records if r['type'] == 'val'] == [1, 2]
    _, meta = read_checkpoint(str(folder / 'latest_net_G_audio.pth'))
    assert meta['epoch'] == 2


def test_bad_dataroot_is_a_clear_error(tmp_path, capsys, run_dirs):
    assert train_DF.main(['--dataroot', str(tmp_path / 'missing'), '--name', 'x', *TINY, '--gpu_ids', '-1',
                          '--display_id', '0',
                          *run_dirs[:2]]) == 2
    assert 'is not a folder' in capsys.readouterr().err


def test_faces_decoded_on_the_device_train_and_score_as_in_the_loaders(sample_root, tmp_path):
    """--face_decode device (the default on CUDA: JPEG bytes travel, the model's device decodes them) against the
    loader workers' decoding, here both on the CPU with the same libjpeg: the same weights and the same scores."""
    weights, scores = {}, {}
    for mode in ('loader', 'device'):
        run_dirs = ['--checkpoints_dir', str(tmp_path / mode / 'c'), '--results_dir', str(tmp_path / mode / 'r')]
        assert train_DF.main(train_args(sample_root, run_dirs, 'd', '--face_decode', mode, '--num_threads', '1',
                                        '--max_dataset_size', '6')) == 0
        weights[mode], _ = read_checkpoint(str(tmp_path / mode / 'c' / 'd' / 'latest_net_G_video.pth'))
        assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'd', '--gpu_ids', '-1', '--num_threads', '1',
                             '--face_decode', mode, *run_dirs]) == 0
        rows = list(csv.DictReader(open(tmp_path / mode / 'r' / 'd' / 'DFDC_all_sound_latest' / 'scores.csv')))
        scores[mode] = [float(r['score']) for r in rows]
        assert (tmp_path / mode / 'c' / 'd' / 'web' / 'images').is_dir()   # the validation page's faces
    assert all(torch.equal(weights['loader'][k], weights['device'][k]) for k in weights['loader'])
    assert scores['loader'] == scores['device']


def test_the_option_record_of_a_fine_tuning_run_shows_the_sizes_its_model_has(trained, sample_root):
    """A run whose sizes came from a checkpoint records them (marked as such), not the flags' defaults; read back
    against the model itself."""
    from models import load_model
    from options.test_options import TestOptions
    base, run_dirs = trained
    argv = ['--dataroot', vox(sample_root), '--name', 'ft_record', '--pretrained_name', 'rt', '--batch_size', '2',
            '--negatives', 'sampled', '--n_epochs', '1', '--n_epochs_decay', '0', '--num_threads', '0',
            '--gpu_ids', '-1', '--no_flip', '--display_id', '0', *QUICK, *run_dirs[:2]]   # no size flags
    assert train_DF.main(argv) == 0
    folder = base / 'checkpoints' / 'ft_record'
    table = json.loads((folder / 'train_opt.json').read_text())
    text = (folder / 'train_opt.txt').read_text()
    opt = TestOptions().parse(['--dataroot', vox(sample_root), '--name', 'ft_record', '--gpu_ids', '-1',
                               *run_dirs], save=False, verbose=False)
    model = load_model(opt, str(folder), 'latest')
    voice, face = model.config.voice, model.config.face
    for key in ('dim', 'emb_dim', 'depth', 'heads', 'mlp_dim', 'width_mult'):
        assert table[key] == voice[key] == face[key], key
        assert table['model_sources'][key] == 'model: from the checkpoint'
        line = next(line for line in text.splitlines() if line.split(':')[0].strip() == key)
        assert line.split(':')[1].split()[0] == str(face[key]) and '[model: from the checkpoint]' in line
    assert (table['crop_size'], table['load_size'], table['n_mels']) == (face['image_size'], model.config.load_size,
                                                                         voice['n_mels'])
    assert (table['dim'], table['emb_dim'], table['load_size']) == (128, 128, 64)   # not 1024, 2048, 224
    assert table['model_config'] == model.config.to_dict()
    # the pre-training run typed its sizes: only --inputs auto, resolved by the model, is marked there
    own = json.loads((base / 'checkpoints' / 'rt' / 'train_opt.json').read_text())
    assert own['model_sources'] == {'inputs': 'model: from the model config'} and own['inputs'] == 'vfd2022'
    assert own['dim'] == 128

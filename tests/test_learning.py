"""The default recipe learns: a short training on synthetic identity data matches voices with faces of identities
it never saw, with no recipe flag (only the tiny model size and the number of epochs are set).

300 synthetic identities (one clip each; 30 held out for validation), the tiny configuration, EPOCHS epochs of the
default recipe (90 steps of 32 anchors, under 2 minutes on 2 CPU cores), then a test on 16 further identities.
VFD_LEARNING_SEED (default 0) seeds the data and the training; VFD_LEARNING_VARIANT (a or b) picks the generator of
scripts/make_sample_data.py.

Bound: measured with this file, validation / test AUC: seed 1 a 0.789 / 0.742, seed 1 b 0.660 / 0.650, seed 2 a
0.780 / 0.730, seed 2 b 0.665 / 0.759; the same training (validation only) for seed 0: a 0.759, b 0.740. The
assertion asks for 0.60 on both: below every measured run, while a broken loss, pairing or scoring gives about 0.5
(with 30 real pairs a chance AUC has a standard deviation of about 0.06, so it passes both checks well under 1 %
of the time), and a collapsed training also trips the collapse monitor, which must stay silent.
"""
import json
import os

import pytest

import test_DF
import train_DF
from scripts import make_sample_data
from tests.conftest import TINY
from util.visualizer import read_metrics

AUC_BOUND = 0.60
SEED = int(os.environ.get('VFD_LEARNING_SEED', '0'))
VARIANT = os.environ.get('VFD_LEARNING_VARIANT', 'a')
EPOCHS = 10
IDS = 300


@pytest.fixture(scope='module')
def identity_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('learning')
    make_sample_data.main(['--out', str(root), '--seed', str(SEED), '--variant', VARIANT, '--vox_ids', str(IDS),
                           '--videos', '1', '--frames', '1', '--dfdc_ids', '16', '--dfdc_reals', '2',
                           '--sets', 'vox,dfdc', '--image_size', '64'])
    return root


def test_default_recipe_separates_real_from_swapped_pairs_of_unseen_identities(identity_data, tmp_path):
    run = ['--name', 'learn', '--checkpoints_dir', str(tmp_path / 'ck'), '--gpu_ids', '-1', '--num_threads', '0',
           '--seed', str(20 + SEED)]
    assert train_DF.main(['--dataroot', str(identity_data / 'Voxceleb2'), *TINY, *run, '--no_flip',
                          '--val_ratio', '0.1', '--n_epochs', str(EPOCHS), '--n_epochs_decay', '0',
                          '--save_epoch_freq', str(EPOCHS), '--save_latest_freq', '0', '--print_freq', '5',
                          '--display_id', '0']) == 0
    records = read_metrics(tmp_path / 'ck' / 'learn' / 'metrics.jsonl')
    val = [r for r in records if r['type'] == 'val'][-1]
    assert test_DF.main(['--dataroot', str(identity_data / 'DFDC'), *run, '--results_dir', str(tmp_path / 'res')]) == 0
    summary = json.loads((tmp_path / 'res' / 'learn' / 'DFDC_all_sound_latest' / 'summary.json').read_text())
    print(f'seed {SEED} variant {VARIANT}: validation AUC {val["auc"]:.3f}, test AUC {summary["auc"]:.3f}')
    assert [r for r in records if r['type'].startswith('collapse')] == []
    assert val['auc'] >= AUC_BOUND, val
    assert summary['auc'] >= AUC_BOUND, summary

"""torchrun with two CPU processes (gloo): ranks stay identical, and only rank 0 writes."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TINY, vox

EXPECTED_FILES = {f'{tag}_net_{net}.pth' for tag in ('1', '2', 'latest', 'best') for net in ('G_audio', 'G_video')} | {
    'latest_train_state.pth', 'loss_log.txt', 'metrics.jsonl', 'split_train.txt', 'split_val.txt', 'train_opt.txt',
    'train_opt.json', 'web'}


@pytest.mark.parametrize('negatives, batch', [('in_batch', '8'), ('sampled', '2')])
def test_two_process_training_keeps_ranks_identical_and_writes_one_set(sample_root, tmp_path, negatives, batch):
    checkpoints = tmp_path / 'ck'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', 'train_DF.py',
           '--dataroot', vox(sample_root), '--name', 'ddp', '--checkpoints_dir', str(checkpoints), *TINY,
           '--gpu_ids', '-1', '--negatives', negatives, '--batch_size', batch, '--n_negatives', '3',
           '--n_epochs', '2', '--n_epochs_decay', '0', '--num_threads', '0', '--print_freq', '1',
           '--bn_recalib_batches', '2', '--display_id', '0']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    done = subprocess.run(cmd, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = checkpoints / 'ddp'
    assert set(os.listdir(folder)) == EXPECTED_FILES
    records = [json.loads(line) for line in (folder / 'metrics.jsonl').read_text().splitlines()]
    checks = [r for r in records if r['type'] == 'ddp_check']
    assert [c['epoch'] for c in checks] == [1, 2]
    assert all(c['identical'] and c['world_size'] == 2 and len(c['checksums']) == 2 for c in checks)
    steps = [r['total_iters'] for r in records if r['type'] == 'train']
    assert steps == sorted(set(steps)) and steps  # one writer: every step logged once
    assert (folder / 'loss_log.txt').read_text().count('Training Loss') == 1
    # 6 training identities x 4 clips = 24 clips, split over 2 ranks: 12 each
    per_rank = 24 // 2
    assert steps[-1] == 2 * -(-per_rank // int(batch))

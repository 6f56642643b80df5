"""Training in two CPU processes (gloo), under torchrun or started with the environment it gives: ranks stay identical,
the recipe does not change with the number of processes, and only rank 0 writes."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TINY, free_port, vox

EXPECTED_FILES = {f'{tag}_net_{net}.pth' for tag in ('1', '2', 'latest', 'best') for net in ('G_audio', 'G_video')} | {
    'latest_train_state.pth', 'loss_log.txt', 'metrics.jsonl', 'split_train.txt', 'split_val.txt', 'train_opt.txt',
    'train_opt.json', 'web'}


def test_two_nodes_train_on_the_packed_format_with_identical_weights(sample_root, tmp_path):
    """Two torchrun "nodes" on this machine (--nnodes 2, c10d rendezvous on 127.0.0.1, gloo), one process each,
    reading the packed shards of the sample set with sampled negatives; at every checkpoint their weights agree, each
    node takes its half of the clips, and only rank 0 writes: one set of files, every step logged once. (The
    negatives of the whole global batch, the default, are checked under torchrun --standalone below.)"""
    from scripts import pack_dataset
    packed = tmp_path / 'packed'
    assert pack_dataset.main(['--dataroot', vox(sample_root), '--out', str(packed), '--files_per_shard', '20',
                              '--workers', '1']) == 0
    port = free_port()
    checkpoints = tmp_path / 'ck'
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    nodes = []
    for node in range(2):
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--nproc_per_node', '1',
               '--node_rank', str(node), '--rdzv_backend', 'c10d', '--rdzv_endpoint', f'127.0.0.1:{port}',
               '--rdzv_id', 'vfd-test', 'train_DF.py', '--dataroot', str(packed), '--name', 'nodes',
               '--checkpoints_dir', str(checkpoints), *TINY, '--gpu_ids', '-1', '--negatives', 'sampled',
               '--batch_size', '2', '--n_negatives', '3', '--n_epochs', '2', '--n_epochs_decay', '0',
               '--num_threads', '1', '--print_freq', '1', '--bn_recalib_batches', '2', '--display_id', '0']
        nodes.append(subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    folder = checkpoints / 'nodes'
    assert set(os.listdir(folder)) == EXPECTED_FILES
    records = [json.loads(line) for line in (folder / 'metrics.jsonl').read_text().splitlines()]
    checks = [r for r in records if r['type'] == 'ddp_check']
    assert [c['epoch'] for c in checks] == [1, 2]
    assert all(c['identical'] and c['world_size'] == 2 and len(c['checksums']) == 2 for c in checks)
    steps = [r['total_iters'] for r in records if r['type'] == 'train']
    assert steps == sorted(set(steps)) and steps      # one writer: every step logged once
    assert (folder / 'loss_log.txt').read_text().count('Training Loss') == 1
    assert steps[-1] == 2 * (24 // 2 // 2)      # 24 training clips, 12 a node, 6 steps of 2 an epoch


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


INVARIANCE_EPOCHS = 2


def train_losses_and_weights(sample_root, folder, processes, batch, *extra, epochs=INVARIANCE_EPOCHS, torchrun=True):
    """Train ``epochs`` epochs of 2 steps of a global batch of 8 (16 training clips, their first 1.5 s of voice, no
    validation) with global BatchNorm and deterministic kernels, in this process or in ``processes`` processes;
    returns the loss lines (one dict per step), the final weights and the run record. The processes start under
    torchrun --standalone, as the README says, or with ``torchrun=False`` straight from this test with the
    environment torchrun would give them (RANK, WORLD_SIZE, MASTER_ADDR...): the same training, without the 3 s that
    torchrun's own agent takes to start and stop."""
    import torch

    import train_DF
    argv = ['--dataroot', vox(sample_root), '--name', 'inv', '--checkpoints_dir', str(folder), *TINY, '--gpu_ids',
            '-1', '--negatives', 'in_batch', '--batch_size', str(batch), '--n_negatives', '3', '--n_epochs',
            str(epochs), '--n_epochs_decay', '0', '--save_epoch_freq', str(epochs), '--max_dataset_size', '16',
            '--val_ratio', '0', '--n_frames', '151', '--num_threads', '0', '--print_freq', '1',
            '--bn_recalib_batches', '0', '--display_id', '0', '--no_html', '--sync_bn', '--deterministic',
            '--no_flip', *extra]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    if processes == 1:
        assert train_DF.main(argv) == 0        # conftest puts the process-wide deterministic mode back after
    elif torchrun:
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(processes),
               'train_DF.py', *argv]
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    else:
        env.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), WORLD_SIZE=str(processes),
                   LOCAL_WORLD_SIZE=str(processes))
        ranks = [subprocess.Popen([sys.executable, 'train_DF.py', *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**env, 'RANK': str(rank), 'LOCAL_RANK': str(rank)})
                 for rank in range(processes)]
        try:
            errors = [rank.communicate(timeout=600)[1] for rank in ranks]
        finally:
            for rank in ranks:
                rank.kill()
        assert [rank.returncode for rank in ranks] == [0] * processes, errors[0][-3000:] + errors[-1][-3000:]
    records = [json.loads(line) for line in (folder / 'inv' / 'metrics.jsonl').read_text().splitlines()]
    losses = [r['losses'] for r in records if r['type'] == 'train']
    run = next(r for r in records if r['type'] == 'run')
    weights = {}
    for net in ('G_audio', 'G_video'):
        weights.update({f'{net}.{k}': v for k, v in torch.load(folder / 'inv' / f'latest_net_{net}.pth',
                                                              weights_only=True)['state_dict'].items()})
    return losses, weights, run


def largest_difference(a, b):
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x if k != 'in_batch_skipped')


@pytest.mark.parametrize('loss', ['triplet', 'infonce'])
def test_two_processes_of_batch_b_train_as_one_process_of_batch_2b(sample_root, tmp_path, loss):
    """The recipe does not change with the number of processes: one process with batch 8 and two gloo processes
    with batch 4 (global negatives, --sync_bn) give the same loss lines over 4 steps in 2 epochs (within 1e-5;
    measured: 8e-12) and the same weights (within 1e-4; measured: 2e-10). With the negatives of each process's own
    batch (--negatives_scope local) they differ from the first step on, which shows the comparison would see a
    missing gather.

    In double precision (--precision float64): in float32 the two set-ups agree to 1e-7 for the first steps, then
    the rounding of sums taken in another order is amplified by the training itself (a max-pooling or ReLU that
    flips, Adam's division of near-zero gradients by their own size) to 1e-4 after 20 steps, which would hide what
    the test is about."""
    extra = ['--loss', loss, '--precision', 'float64'] + (['--temperature', '0.5'] if loss == 'infonce' else [])
    one, w_one, run_one = train_losses_and_weights(sample_root, tmp_path / 'one', 1, 8, *extra)
    two, w_two, run_two = train_losses_and_weights(sample_root, tmp_path / 'two', 2, 4, *extra,
                                                   torchrun=loss == 'triplet')
    assert len(one) == len(two) == 2 * INVARIANCE_EPOCHS
    assert run_one['global_batch'] == run_two['global_batch'] == 8 and run_two['world_size'] == 2
    weights = max((w_one[k].double() - w_two[k].double()).abs().max().item() for k in w_one)
    print(f'{loss}: largest difference of a loss {largest_difference(one, two):.1e}, of a weight {weights:.1e}')
    assert largest_difference(one, two) < 1e-5 and weights < 1e-4
    if loss == 'triplet':
        local, _, _ = train_losses_and_weights(sample_root, tmp_path / 'local', 2, 4, *extra, '--negatives_scope',
                                               'local', epochs=1, torchrun=False)
        print(f'local negatives: largest difference of a loss {largest_difference(one, local):.1e}')
        assert largest_difference(one, local) > 1e-3

"""torch.distributed set-up for training under torchrun (one process per GPU, or several CPU processes).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR / MASTER_PORT); without them everything here is a
no-op for a single process. NCCL drives CUDA devices, gloo the CPU.
"""
import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def env_world():
    """(rank, local_rank, world_size) from the torchrun environment; (0, 0, 1) without it."""
    return (int(os.environ.get('RANK', 0)), int(os.environ.get('LOCAL_RANK', 0)),
            int(os.environ.get('WORLD_SIZE', 1)))


def setup(opt):
    """Join the process group when launched by torchrun (``opt.world_size`` > 1; the options set the rank facts and
    ``opt.device = cuda:<local_rank>`` on GPUs); a no-op for a single process."""
    if opt.world_size == 1:
        return
    if opt.device.startswith('cuda'):
        if opt.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f'local rank {opt.local_rank} has no GPU: this node has {torch.cuda.device_count()}; '
                               f'use --nproc_per_node {torch.cuda.device_count()} or fewer')
        torch.cuda.set_device(opt.local_rank)
        backend = 'nccl'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend)
    logger.info('rank %d of %d (local rank %d) on %s, backend %s', opt.rank, opt.world_size, opt.local_rank,
                opt.device, backend)


def is_main(opt):
    """True in the rank-0 process (always, for a single process)."""
    return opt.rank == 0


def barrier(opt):
    """Wait until every rank gets here; a no-op for a single process."""
    if opt.world_size > 1:
        dist.barrier()


def cleanup(opt):
    """Leave the process group if one was joined; a no-op for a single process."""
    if opt.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(opt, value):
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if opt.world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(opt, nets):
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward pass, so after the last step of an epoch every rank holds
    the statistics that its own last batch moved; this makes them equal again before checking or saving.
    """
    if opt.world_size == 1:
        return
    for net in nets:
        for buffer in net.buffers():
            dist.broadcast(buffer.data, src=0)


def weight_checksums(opt, nets):
    """Per rank, (sum, sum of squares) over every parameter and buffer of ``nets``, gathered on every rank.

    Equal rows mean the ranks hold the same weights (DDP keeps them equal; a mismatch means a broken set-up).
    Returns a list of world_size [sum, sum of squares] pairs.
    """
    total = torch.zeros(2, dtype=torch.float64, device=opt.device)
    with torch.no_grad():
        for net in nets:
            for tensor in list(net.parameters()) + list(net.buffers()):
                t = tensor.detach().double()
                total[0] += t.sum()
                total[1] += (t * t).sum()
    if opt.world_size == 1:
        return [total.tolist()]
    gathered = [torch.zeros_like(total) for _ in range(opt.world_size)]
    dist.all_gather(gathered, total)
    return [g.tolist() for g in gathered]


def any_rank(opt, flag):
    """True on every rank when ``flag`` (a bool) is true on any rank: one small all-reduce under torchrun."""
    if opt.world_size == 1:
        return bool(flag)
    device = opt.device if str(opt.device).startswith('cuda') else 'cpu'
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())

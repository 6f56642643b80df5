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


# ---------------------------------------------------------------------------------------------------------------
# One recipe whatever the number of processes: embeddings gathered with their gradients, BatchNorm over all ranks
# ---------------------------------------------------------------------------------------------------------------
def active():
    """Whether this process belongs to a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """Every rank's (n, ...) tensor, concatenated in rank order (W n, ...); the gradient of each rank's slice is
    the sum of what every rank's loss sends it (an all-reduce, then this rank's slice)."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x):
    """``x`` (n, ...) of every rank, concatenated in rank order, with gradients flowing back to the rank that
    computed each part; ``x`` itself for a single process. Every rank must bring the same n (the epoch sampler pads
    the ranks' shares to equal length)."""
    if not active():
        return x
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    if len({int(s) for s in sizes}) != 1:
        raise RuntimeError(f'the ranks hold batches of different sizes ({[int(s) for s in sizes]}); global in-batch '
                           f'negatives need equal ones')
    return _GatherWithGrad.apply(x)


def gather(x):
    """``x`` of every rank concatenated in rank order, without gradients (labels, identities)."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _SumWithGrad(torch.autograd.Function):
    """The sum over ranks of a tensor, each rank receiving it; its gradient is the sum over ranks too."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x):
    """The sum of ``x`` over the ranks, differentiable (``x`` itself for a single process)."""
    return _SumWithGrad.apply(x) if active() else x


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm over the batch of every rank together (``--sync_bn``): in training, each channel's mean and variance
    are those of all ranks' samples and positions (sums gathered with their gradients), so 2 processes of batch B
    normalise as 1 process of batch 2B does; the running statistics follow those global moments. One process computes
    the same formula without communicating. Works with gloo on the CPU and NCCL on GPUs; state-dict names are those
    of ``nn.BatchNorm2d``."""

    def forward(self, x):
        """Normalise with the global batch statistics in training, the running ones in eval mode."""
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()   # the moments in float32 under autocast too, as BatchNorm runs there
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = sum_over_ranks(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        total = stats[2 * c]
        mean = stats[:c] / total
        var = (stats[c:2 * c] / total - mean * mean).clamp(min=0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * total / (total - 1).clamp(min=1)
            self.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased.detach() * momentum)
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def global_batch_norm(module):
    """``module`` with every BatchNorm2d that keeps running statistics replaced by a GlobalBatchNorm2d holding the
    same parameters and buffers (in place; returns the module)."""
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm2d and child.track_running_stats:
            new = GlobalBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine)
            new.load_state_dict(child.state_dict())
            new.to(device=child.running_mean.device)
            setattr(module, name, new)
        else:
            global_batch_norm(child)
    return module

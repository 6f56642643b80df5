"""The speed options train: --amp bf16/fp16, --channels_last, --compile, in-batch negatives."""
import pytest
import torch

from tests.conftest import DEVICES, tiny_model


def train_model(device='cpu', **extra):
    options = dict(init_type='kaiming', lr=2e-4, beta1=0.5, margin=10.0, margin_mode='absolute', lr_fan_in=0,
                   token_init_std=1.0, n_negatives=3, negatives='sampled', batch_size=4)
    options.update(extra)
    return tiny_model(train=True, device=device, **options)


def batch(b=4, k=3, in_batch=False):
    g = torch.Generator().manual_seed(2)
    out = {'voice': torch.rand(b, 1, 512, 301, generator=g) - 1, 'face': torch.rand(b, 3, 64, 64, generator=g) * 2 - 1,
           'identity': torch.arange(b)}
    if not in_batch:
        out['neg_faces'] = torch.rand(b, k, 3, 64, 64, generator=g) * 2 - 1
    return out


def step_changes_weights(m, data):
    before = [p.detach().clone() for p in m.netG_video.parameters()]
    m.set_input(data)
    m.optimize_parameters()
    loss = m.get_current_losses()['triplet']
    changed = any(not torch.equal(a, b) for a, b in zip(before, m.netG_video.parameters()))
    return loss, changed


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_training_step(amp, device):
    m = train_model(amp=amp, device=device)
    assert (m.scaler is not None) == (amp == 'fp16')
    data = batch()
    if m.scaler is not None:
        # the scaler skips steps while it lowers its scale from 2**16 until the gradients fit in fp16, and fp16
        # is slow on CPUs: start it lower so that the test needs few steps (same code path)
        m.scaler = torch.amp.GradScaler(device, init_scale=2.0 ** 6)
    for _ in range(20):
        loss, changed = step_changes_weights(m, data)
        if changed:
            break
    assert torch.isfinite(torch.tensor(loss)) and changed
    assert m.voice_emb.dtype == torch.float32  # distances and loss in float32


def test_in_batch_negatives_skip_anchors_without_enough_other_identities():
    m = train_model(negatives='in_batch', n_negatives=2)
    data = batch(in_batch=True)
    data['identity'] = torch.tensor([0, 0, 0, 1])  # anchors 0-2 have one other identity, anchor 3 has three
    loss, changed = step_changes_weights(m, data)
    assert m.loss_in_batch_skipped.item() == 3 and changed
    # the loss is that of anchor 3 alone: 2 x mean hinge over its three negatives
    d = torch.cdist(m.voice_emb, m.face_emb)
    expected = 2 * (d[3, 3] - d[3, :3] + 10.0).clamp(min=0).mean()
    assert loss == pytest.approx(expected.item(), rel=1e-5)


def test_in_batch_loss_equals_sampled_loss_on_the_same_negatives():
    """With every other anchor as a negative, in-batch = K x mean of the per-pair terms of the sampled loss."""
    m = train_model(negatives='in_batch', n_negatives=3)
    data = batch(in_batch=True)
    m.set_input(data)
    m.forward()
    in_batch = m.compute_loss().item()
    b = len(data['identity'])
    others = torch.stack([torch.cat([torch.arange(i), torch.arange(i + 1, b)]) for i in range(b)])
    m.in_batch, m.neg_emb = False, m.face_emb[others]                        # (B, B-1, E): the same negatives
    assert m.compute_loss().item() == pytest.approx(in_batch, rel=1e-5)  # K = B - 1 = 3: mean x K == sum


def steps_of(m, data, n=3):
    """Loss lines, the gradients of the first step and the weight updates of ``n`` steps of ``m`` on ``data``."""
    start = [p.detach().clone() for net in (m.netG_audio, m.netG_video) for p in net.parameters()]
    losses, grads = [], None
    for _ in range(n):
        m.set_input(data)
        m.optimize_parameters()
        losses.append(m.get_current_losses()['triplet'])
        if grads is None:
            grads = [p.grad.detach().clone() for net in (m.netG_audio, m.netG_video) for p in net.parameters()]
    updates = [p.detach() - s for s, p in zip(start, (p for net in (m.netG_audio, m.netG_video)
                                                      for p in net.parameters()))]
    return losses, grads, updates


def cosine(x, y):
    return torch.nn.functional.cosine_similarity(x.flatten().double(), y.flatten().double(), dim=0).item()


def assert_same_training(a, b):
    """Two training runs from the same weights on the same data: the same loss lines, every gradient of the first
    step pointing the same way (float32 convolutions in another memory format or order, through BatchNorm stems,
    differ by about 1 % of a gradient's size; a wrong layout or a lost gradient is far off), and the same weight
    updates over the steps. The first loss agrees to the rounding; the later ones follow a first step that moves the
    tiny model far (a loss of 26.7 falls to 1.7), which amplifies that rounding: channels-last against contiguous
    measured 0.8 % apart at the second step on one thread (within 0.1 % on two)."""
    (loss_a, grad_a, update_a), (loss_b, grad_b, update_b) = a, b
    assert loss_a[0] == pytest.approx(loss_b[0], rel=1e-4)
    assert loss_a == pytest.approx(loss_b, rel=3e-2, abs=1e-3)
    assert len(grad_a) == len(grad_b) > 10
    scale = max(y.abs().max().item() for y in grad_b)
    checked = 0
    for i, (x, y) in enumerate(zip(grad_a, grad_b)):
        if y.abs().max() > 1e-3 * scale:   # not the rounding noise of a gradient that is 0 in exact arithmetic
            assert cosine(x, y) > 0.999, (i, tuple(y.shape), cosine(x, y))   # (a bias before BatchNorm)
            checked += 1
    assert checked > 10
    flat_a, flat_b = torch.cat([u.flatten() for u in update_a]), torch.cat([u.flatten() for u in update_b])
    assert flat_b.abs().max() > 0 and cosine(flat_a, flat_b) > 0.99


def test_channels_last_training_matches_contiguous():
    torch.manual_seed(0)
    a = train_model(channels_last='on')
    b = train_model(channels_last='off')
    b.netG_audio.load_state_dict(a.netG_audio.state_dict())
    b.netG_video.load_state_dict(a.netG_video.state_dict())
    data = batch()
    assert_same_training(steps_of(a, data), steps_of(b, data))
    assert a.face.is_contiguous(memory_format=torch.channels_last) and b.face.is_contiguous()


@pytest.mark.parametrize('device', DEVICES)
def test_compile_training_step(device):
    """--compile trains as the model does uncompiled: the same losses, gradients and weights. On the CPU through
    the aot_eager backend (dynamo's capture and AOTAutograd's forward and backward graphs, run as they are):
    inductor would spend about two minutes of a 2-core machine compiling 72 C++ kernels on a fresh cache. On CUDA
    through inductor, the default."""
    backend = 'inductor' if device == 'cuda' else 'aot_eager'
    from torch._dynamo.utils import counters
    m = train_model(compile=True, compile_backend=backend, device=device)
    assert m.step_encoder._orig_mod is m.joint                     # the training step's encoder is the compiled one
    reference = train_model(device=device)
    reference.netG_audio.load_state_dict(m.netG_audio.state_dict())
    reference.netG_video.load_state_dict(m.netG_video.state_dict())
    counters.clear()
    compiled = steps_of(m, batch())
    assert counters['stats']['unique_graphs'] >= 1 and counters['aot_autograd']['total'] >= 1   # traced, not eager
    assert_same_training(compiled, steps_of(reference, batch()))

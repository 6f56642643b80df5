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


def test_channels_last_training_matches_contiguous():
    a = train_model(channels_last='on')
    b = train_model(channels_last='off')
    data = batch()
    loss_a, _ = step_changes_weights(a, data)
    loss_b, _ = step_changes_weights(b, data)
    assert loss_a == pytest.approx(loss_b, rel=1e-3)


@pytest.mark.parametrize('device', DEVICES)
def test_compile_training_step(device):
    m = train_model(compile=True, device=device)
    loss, changed = step_changes_weights(m, batch())
    reference, _ = step_changes_weights(train_model(device=device), batch())
    assert changed and loss == pytest.approx(reference, rel=1e-3)

"""Batched scoring: released-mode scores equal per-pair scoring of the released code; AMP stays close."""
import pytest
import torch

from tests.conftest import DEVICES, tiny_model


def model(compat, init_type='normal', device='cpu', **extra):
    m = tiny_model(device=device, encoder_compat=compat, init_type=init_type, token_init_std=1.0, **extra)
    m.eval()
    return m


def per_pair_released_scores(m, voices, faces):
    """What the released test loop computes: every pair encoded on its own, batch of one, plain forward."""
    scores = []
    with torch.no_grad():
        for v, f in zip(voices, faces):
            voice_emb = m.netG_audio(v[None])
            face_emb = m.netG_video(f[None])
            scores.append(-torch.nn.PairwiseDistance(p=2)(voice_emb, face_emb))
    return torch.cat(scores)


@pytest.fixture(scope='module')
def pairs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(7, 1, 512, 301, generator=g) - 1, torch.rand(7, 3, 64, 64, generator=g) * 2 - 1


@pytest.mark.parametrize('device', DEVICES)
def test_released_batched_scores_equal_per_pair_scoring(pairs, device):
    m = model('released', device=device)
    voices, faces = (t.to(device) for t in pairs)
    expected = per_pair_released_scores(m, voices, faces)
    batched = torch.cat([m.score_pairs(voices[:4], faces[:4]), m.score_pairs(voices[4:], faces[4:])])
    # on CUDA, cuDNN may pick other convolution algorithms (TF32 included) for other batch sizes
    tolerance = dict(rtol=1e-5, atol=1e-4) if device == 'cpu' else dict(rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(batched, expected, **tolerance)
    # a plain batched forward of the released encoders would NOT give these scores (why the emulation exists)
    with torch.no_grad():
        naive = -torch.nn.PairwiseDistance(p=2)(m.netG_audio(voices), m.netG_video(faces))
    assert (naive - expected).abs().max() > 1e-3


@pytest.mark.parametrize('device', DEVICES)
def test_fixed_scores_do_not_depend_on_batching(pairs, device):
    m = model('fixed', device=device)
    voices, faces = (t.to(device) for t in pairs)
    one_by_one = torch.cat([m.score_pairs(voices[i:i + 1], faces[i:i + 1]) for i in range(len(voices))])
    tolerance = dict(rtol=1e-5, atol=1e-4) if device == 'cpu' else dict(rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(m.score_pairs(voices, faces), one_by_one, **tolerance)


def test_scoring_runs_under_inference_mode(pairs):
    m = model('fixed')
    scores = m.score_pairs(*pairs)
    assert scores.shape == (7,) and scores.dtype == torch.float32
    assert torch.is_inference(scores) and (scores <= 0).all()


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('compat', ['released', 'fixed'])
def test_bf16_autocast_scores_stay_close_to_float32(pairs, compat, device):
    # kaiming: an untrained N(0, 0.02) model gives nearly equal scores, which would make the check meaningless
    full = model(compat, 'kaiming', device).score_pairs(*pairs)
    low = model(compat, 'kaiming', device, amp='bf16').score_pairs(*pairs)
    assert full.std() > 0.01
    assert low.dtype == torch.float32
    assert torch.corrcoef(torch.stack([full, low]))[0, 1] > 0.95


def test_channels_last_gives_the_same_scores(pairs):
    torch.testing.assert_close(model('fixed', channels_last='on').score_pairs(*pairs),
                               model('fixed', channels_last='off').score_pairs(*pairs), rtol=1e-4, atol=1e-3)

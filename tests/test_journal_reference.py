"""The journal encoders (``--encoder_compat journal``) against an independent transcription of the journal's code.

Our encoder's weights go into the transcription (``tests/journal_reference.py``) with ``load_state_dict(strict=True)``,
which proves the names and shapes agree; then the embeddings must be bit-identical (``torch.equal``, float32, CPU):
both run the same kernels in the same order, so nothing but a difference in the arithmetic could move a bit.
"""
import pytest
import torch

from models import networks
from tests import journal_reference

TINY = dict(image_size=64, n_mels=32, n_frames=64, patch=16, dim=64, depth=2, heads=4, emb_dim=48)
PAPER = dict(image_size=224, n_mels=128, n_frames=256, patch=32, dim=768, depth=12, heads=12, emb_dim=512)


def build_ours(modality, sizes):
    """Our journal encoder for ``modality`` with ``sizes``."""
    shared = dict(patch=sizes['patch'], dim=sizes['dim'], depth=sizes['depth'], heads=sizes['heads'],
                  mlp_dim=4 * sizes['dim'], emb_dim=sizes['emb_dim'])
    if modality == 'face':
        return networks.define_encoder('face_journal', image_size=sizes['image_size'], **shared)
    return networks.define_encoder('voice_journal', n_mels=sizes['n_mels'], n_frames=sizes['n_frames'], **shared)


def build_reference(modality, sizes):
    """The transcribed journal tower with the same sizes."""
    common = dict(patch_size=sizes['patch'], width=sizes['dim'], layers=sizes['depth'], heads=sizes['heads'],
                  output_dim=sizes['emb_dim'])
    if modality == 'face':
        return journal_reference.VisualTransformer(sizes['image_size'], **common)
    return journal_reference.AuditoryTransformer([sizes['n_mels'], sizes['n_frames']], **common)


def inputs(modality, sizes, batch, frames=None):
    """Normalised faces, or power mels (non-negative, with the large range of real ones)."""
    if modality == 'face':
        return torch.randn(batch, 3, sizes['image_size'], sizes['image_size'])
    return torch.rand(batch, 1, sizes['n_mels'], frames or sizes['n_frames']).pow(4) * 50


def randomise(net):
    """Random values of a sensible scale everywhere (the defaults leave biases at 0 and LayerNorms at identity)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if 'ln' in name else 0.05) + (1.0 if name.endswith('ln_1.weight')
                                                                                  or 'ln_2.weight' in name else 0.0))


def pair(modality, sizes):
    torch.manual_seed(1)
    ours = build_ours(modality, sizes)
    randomise(ours)
    reference = build_reference(modality, sizes)
    reference.load_state_dict(ours.state_dict(), strict=True)
    return ours, reference


@pytest.mark.parametrize('modality', ['face', 'voice'])
@pytest.mark.parametrize('batch', [1, 5])
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_tiny_bit_identical(modality, batch, mode):
    ours, reference = pair(modality, TINY)
    x = inputs(modality, TINY, batch)
    for net in (ours, reference):
        net.train(mode == 'train')
    with torch.no_grad():
        a, b = ours(x), reference(x)
    assert a.shape == (batch, TINY['emb_dim'])
    assert torch.equal(a, b)
    assert torch.equal(ours.embed_each(x), b)


@pytest.mark.parametrize('modality', ['face', 'voice'])
def test_paper_size_bit_identical(modality):
    """At the published sizes (ViT-B/32, 512-d), in both modes and at batch 1 and 5; the voice also on the 128 x 257
    mel the journal feeds it (its last frame falls outside every patch)."""
    ours, reference = pair(modality, PAPER)
    assert sorted(reference.state_dict()) == sorted(ours.state_dict())
    for batch in (1, 5):
        x = inputs(modality, PAPER, batch)
        for mode in (True, False):
            ours.train(mode)
            reference.train(mode)
            with torch.no_grad():
                assert torch.equal(ours(x), reference(x))
    if modality == 'voice':
        x = inputs(modality, PAPER, 2, frames=257)
        with torch.no_grad():
            assert torch.equal(ours(x), reference(x))
            assert torch.equal(ours(x), ours(x[..., :256]))


def test_gradients_identical():
    """Training goes through the same arithmetic: the gradient of every weight agrees bit for bit too."""
    ours, reference = pair('voice', TINY)
    x = inputs('voice', TINY, 3)
    ours(x).square().sum().backward()
    reference(x).square().sum().backward()
    grads = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.equal(p.grad, grads[name].grad), name


def test_paper_sizes_and_names():
    """The published encoders: 87.8 M parameters for the face tower, a (50, 768) and a (33, 768) position
    embedding, a (768, 512) projection, and the journal's parameter names."""
    face, voice = (networks.define_encoder(kind) for kind in ('face_journal', 'voice_journal'))
    assert face.positional_embedding.shape == (50, 768) and voice.positional_embedding.shape == (33, 768)
    assert face.proj.shape == (768, 512) and face.emb_dim == voice.emb_dim == 512
    assert face.conv1.bias is None and face.conv1.weight.shape == (768, 3, 32, 32)
    assert voice.conv1.weight.shape == (768, 1, 32, 32)
    assert round(networks.count_parameters(face) / 1e6, 1) == 87.8
    keys = set(face.state_dict())
    assert {'transformer.resblocks.11.attn.in_proj_weight', 'transformer.resblocks.0.mlp.c_fc.weight',
            'ln_post.bias', 'class_embedding'} <= keys


def test_init_left_alone():
    """networks.init_weights does not redraw what the journal encoders drew when built (their own set-up)."""
    torch.manual_seed(0)
    net = networks.define_encoder('face_journal', **{k: TINY[k] for k in ('image_size', 'patch', 'dim', 'depth',
                                                                          'heads', 'emb_dim')})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    networks.init_weights(net, 'kaiming', 0.02, token_std=0.02)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_sizes():
    with pytest.raises(ValueError, match='divisible'):
        networks.define_encoder('face_journal', dim=30, heads=4)
    with pytest.raises(ValueError, match='smaller than one'):
        networks.define_encoder('voice_journal', n_mels=16, patch=32)

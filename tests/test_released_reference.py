"""Our released-compatibility encoders against an independent transcription of the authors' released code.

Our encoder's weights are copied into the reference (``tests/released_reference.py``) with
``load_state_dict(strict=True)``, which alone proves that key names and shapes agree; then the embeddings must be
bit-identical (``torch.equal``, float32, CPU), not merely close. Every use of our encoder API is in the two helpers
right below, so that an API change touches only them.
"""
import json
import os

import pytest
import torch

from models import networks
from tests import released_reference


def build_ours(modality, sizes):
    """Our released-compatibility encoder for ``modality`` ('voice' or 'face'), built with ``sizes``."""
    shared = {k: sizes[k] for k in ('dim', 'depth', 'heads', 'mlp_dim', 'emb_dim', 'width_mult')}
    if modality == 'face':
        return networks.define_encoder('face_released', image_size=sizes['image_size'], **shared)
    return networks.define_encoder('voice_released', n_mels=sizes['n_mels'], n_frames=sizes['n_frames'], **shared)


def embed_alone(encoder, x):
    """Our embeddings of a batch, each computed as if its sample were encoded on its own (a batch of one)."""
    return encoder.embed_each(x)


KEYS = json.load(open(os.path.join(os.path.dirname(__file__), 'fixtures', 'released_checkpoint_keys.json')))
CHECKPOINT = {'face': 'latest_net_G_video.pth', 'voice': 'latest_net_G_audio.pth'}

# 64 px faces give a 2x2 stem map and a 320x301 mel a 4x5 one, so the patch rearrangements are really exercised.
TINY = dict(dim=64, depth=2, heads=4, mlp_dim=96, emb_dim=48, width_mult=0.25, image_size=64, n_mels=320,
            n_frames=301)
PAPER = dict(dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048, width_mult=1.0, image_size=224, n_mels=512,
             n_frames=301)


def build_reference(modality, sizes):
    """The transcribed released encoder for ``modality`` with the same sizes."""
    common = dict(width_mult=sizes['width_mult'], dim=sizes['dim'], depth=sizes['depth'], heads=sizes['heads'],
                  mlp_dim=sizes['mlp_dim'], emb_dim=sizes['emb_dim'])
    if modality == 'face':
        return released_reference.CViT(image_size=sizes['image_size'], **common)
    return released_reference.CAiT(n_mels=sizes['n_mels'], n_frames=sizes['n_frames'], **common)


def inputs(modality, sizes, batch):
    """A random batch of faces (B, 3, S, S) or log-mel spectrograms (B, 1, M, T)."""
    if modality == 'face':
        return torch.randn(batch, 3, sizes['image_size'], sizes['image_size'])
    return torch.rand(batch, 1, sizes['n_mels'], sizes['n_frames']) - 1


def randomise(encoder):
    """Give every weight, bias, norm parameter and running statistic a random value of a sensible scale.

    The standard initialisation leaves biases at zero and the norms at identity, and its small weights would
    shrink an eval-mode signal to almost nothing; random values make every part of the forward pass count.
    """
    with torch.no_grad():
        for name, tensor in encoder.state_dict().items():
            leaf = name.rsplit('.', 1)[-1]
            if name in ('cls_token', 'pos_embedding') or leaf == 'num_batches_tracked':
                continue
            if leaf == 'running_mean':
                tensor.normal_(0.0, 0.1)
            elif leaf == 'running_var':
                tensor.uniform_(0.5, 1.5)
            elif tensor.dim() >= 2:
                tensor.normal_(0.0, (tensor[0].numel()) ** -0.5)
            elif leaf == 'weight':
                tensor.normal_(1.0, 0.1)
            else:
                tensor.normal_(0.0, 0.1)


def pair(modality, sizes):
    """Our encoder with random weights, and the reference holding a strict copy of them."""
    ours = build_ours(modality, sizes)
    randomise(ours)
    reference = build_reference(modality, sizes)
    reference.load_state_dict(ours.state_dict(), strict=True)
    return ours, reference


class NotBitIdentical(AssertionError):
    """Two outputs that should be bit-identical are not."""


def assert_bit_identical(ours, reference, what):
    """torch.equal, and on failure the number of differing values and the largest absolute difference."""
    assert ours.shape == reference.shape, f'{what}: shapes {tuple(ours.shape)} vs {tuple(reference.shape)}'
    if not torch.equal(ours, reference):
        diff = (ours - reference).abs()
        raise NotBitIdentical(f'{what}: {int((diff > 0).sum())} of {diff.numel()} values differ, max abs difference '
                             f'{diff.max().item():.3e} (max abs value {reference.abs().max().item():.3e})')


def assert_informative(embeddings):
    """The embeddings are not a constant: comparing them bit for bit means something."""
    assert embeddings.abs().max() > 1e-3
    if len(embeddings) > 1:
        assert (embeddings - embeddings[0]).abs().max() > 1e-4


def shapes(state_dict):
    return {k: list(v.shape) for k, v in state_dict.items()}


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Run this module on one CPU thread: on a small, busy machine thread hand-offs cost more than the work.

    Both sides always run under the same setting; the comparisons were also checked by hand with two threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('modality', ['face', 'voice'])
@pytest.mark.parametrize('batch', [1, 5])
def test_train_mode_batch_is_bit_identical(modality, batch):
    """Training mode, batch statistics everywhere; the running statistics must also be updated identically."""
    torch.manual_seed(0)
    ours, reference = pair(modality, TINY)
    ours.train(), reference.train()
    x = inputs(modality, TINY, batch)
    with torch.no_grad():
        expected = reference(x.clone())
        got = ours(x.clone())
    assert_informative(expected)
    assert_bit_identical(got, expected, f'{modality} train batch {batch}')
    ref_state = reference.state_dict()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, ref_state[name]), f'{modality}: {name} differs after a training-mode pass'


@pytest.mark.parametrize('modality', ['face', 'voice'])
@pytest.mark.parametrize('batch', [1, 5, 32])
def test_eval_mode_batch_is_bit_identical(modality, batch):
    """Eval mode: running statistics in the face stem, still batch statistics in the voice stem."""
    torch.manual_seed(1)
    ours, reference = pair(modality, TINY)
    ours.eval(), reference.eval()
    x = inputs(modality, TINY, batch)
    with torch.no_grad():
        expected = reference(x.clone())
        got = ours(x.clone())
    assert_informative(expected)
    assert_bit_identical(got, expected, f'{modality} eval batch {batch}')


@pytest.mark.parametrize('modality', ['face', 'voice'])
def test_per_sample_embedding_of_a_single_sample_is_bit_identical(modality):
    """Our per-sample path on a batch of one = the reference on that batch of one, sample after sample."""
    torch.manual_seed(2)
    ours, reference = pair(modality, TINY)
    ours.eval(), reference.eval()
    x = inputs(modality, TINY, 3)
    with torch.no_grad():
        expected = torch.cat([reference(x[i:i + 1].clone()) for i in range(len(x))])
        got = torch.cat([embed_alone(ours, x[i:i + 1].clone()) for i in range(len(x))])
    assert_informative(expected)
    assert_bit_identical(got, expected, f'{modality} per-sample, one at a time')


@pytest.mark.parametrize('modality', ['face', 'voice'])
def test_per_sample_embeddings_of_a_batch_equal_the_reference_on_batches_of_one(modality):
    """Our per-sample embeddings of a whole batch = the reference run on each sample as a batch of one, stacked.

    The same arithmetic, but not bit for bit: PyTorch's CPU kernels round differently for a batch of B than for a
    batch of one (nn.Linear through MKL, the stem convolutions through oneDNN), and so does the reference itself.
    Measured: at most about 2e-6 of the largest value here, 1e-6 at paper size. The one-sample path above is
    bit-identical, and in a batch the released code gives something else entirely (checked below).
    """
    torch.manual_seed(2)
    ours, reference = pair(modality, TINY)
    ours.eval(), reference.eval()
    x = inputs(modality, TINY, 3)
    with torch.no_grad():
        expected = torch.cat([reference(x[i:i + 1].clone()) for i in range(len(x))])
        got = embed_alone(ours, x.clone())
        batched = reference(x.clone())
    assert_informative(expected)
    scale = expected.abs().max()
    assert (batched - expected).abs().max() > 1e-3 * scale   # in a batch the released code gives something else
    assert (got - expected).abs().max() <= 1e-5 * scale


@pytest.fixture(scope='module')
def paper_pairs():
    torch.manual_seed(3)
    return {modality: pair(modality, PAPER) for modality in ('face', 'voice')}


@pytest.mark.parametrize('modality', ['face', 'voice'])
def test_paper_size_reference_has_the_released_keys_and_shapes(paper_pairs, modality):
    """The transcription at paper size has exactly the released checkpoint's keys, shapes and key order."""
    _, reference = paper_pairs[modality]
    state = reference.state_dict()
    assert shapes(state) == KEYS[CHECKPOINT[modality]]
    assert list(state) == list(KEYS[CHECKPOINT[modality]])


@pytest.mark.parametrize('modality', ['face', 'voice'])
def test_paper_size_eval_batch_is_bit_identical(paper_pairs, modality):
    """Paper sizes (224 px faces, 512x301 mels, dim 1024, depth 6), a batch of two in eval mode."""
    ours, reference = paper_pairs[modality]
    ours.eval(), reference.eval()
    torch.manual_seed(4)
    x = inputs(modality, PAPER, 2)
    with torch.no_grad():
        expected = reference(x.clone())
        got = ours(x.clone())
    assert expected.shape == (2, 2048)
    assert_informative(expected)
    assert_bit_identical(got, expected, f'{modality} paper size eval batch 2')

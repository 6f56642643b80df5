"""The encoders: output shapes, the released state-dict layout, and released versus fixed semantics."""
import contextlib
import json
import os
import textwrap

import pytest
import torch

from models import networks
from tests.conftest import PAPER_ARCH, TINY_ARCH, encoders

KEYS = json.load(open(os.path.join(os.path.dirname(__file__), 'fixtures', 'released_checkpoint_keys.json')))


def shapes(state_dict):
    return {k: list(v.shape) for k, v in state_dict.items()}


@pytest.fixture(scope='module')
def paper_released():
    torch.manual_seed(0)
    return encoders(PAPER_ARCH)


def test_paper_size_state_dicts_equal_the_released_weights_keys_and_shapes(paper_released):
    voice, face = paper_released
    assert shapes(voice.state_dict()) == KEYS['latest_net_G_audio.pth']
    assert shapes(face.state_dict()) == KEYS['latest_net_G_video.pth']


def test_paper_parameter_counts(paper_released):
    voice, face = paper_released
    assert networks.count_parameters(face) / 1e6 == pytest.approx(89.0, abs=0.05)
    assert networks.count_parameters(voice) / 1e6 == pytest.approx(65.4, abs=0.05)


def test_paper_size_output_shapes(paper_released):
    voice, face = paper_released
    voice.eval(), face.eval()
    with torch.no_grad():
        assert face(torch.randn(2, 3, 224, 224)).shape == (2, 2048)
        assert voice(torch.rand(2, 1, 512, 301) - 1).shape == (2, 2048)
    assert face.stem_shape == (512, 7, 7) and voice.stem_shape == (256, 8, 5)


@pytest.mark.parametrize('compat', ['released', 'fixed'])
def test_tiny_output_shapes(compat):
    voice, face = encoders({**TINY_ARCH, 'encoder_compat': compat})
    voice.eval(), face.eval()
    with torch.no_grad():
        assert face(torch.randn(3, 3, 64, 64)).shape == (3, 128)
        assert voice(torch.rand(3, 1, 512, 301) - 1).shape == (3, 128)
    assert face.stem_shape == (128, 2, 2) and voice.stem_shape == (64, 8, 5)


def test_token_size_follows_the_input_size_options():
    voice, face = encoders({**TINY_ARCH, 'crop_size': 96, 'n_mels': 256, 'n_frames': 201})
    assert face.stem_shape == (128, 3, 3)
    assert face.patch_to_embedding.in_features == 128 * 3 * 3
    assert voice.patch_to_embedding.in_features == voice.stem_shape[0] * voice.stem_shape[1] * voice.stem_shape[2]
    voice.eval()
    with torch.no_grad():
        assert voice(torch.rand(2, 1, 256, 201) - 1).shape == (2, 128)
    with pytest.raises(AssertionError, match='built for'):
        voice(torch.rand(2, 1, 512, 301) - 1)
    with pytest.raises(ValueError, match='too small'):
        networks.FaceEncoder(image_size=16, width_mult=0.25, dim=64, depth=1, heads=2, mlp_dim=64, emb_dim=32)


def test_fixed_mode_keys_differ_only_where_the_quirks_are_fixed():
    voice_r, face_r = encoders({**TINY_ARCH, 'encoder_compat': 'released'})
    voice_f, face_f = encoders({**TINY_ARCH, 'encoder_compat': 'fixed'})
    assert voice_r.pos_embedding.shape == (32, 1, 128) and voice_f.pos_embedding.shape == (1, 2, 128)
    extra = set(voice_f.state_dict()) - set(voice_r.state_dict())
    assert extra and all(k.rsplit('.', 1)[1] in ('running_mean', 'running_var', 'num_batches_tracked') for k in extra)
    assert set(face_f.state_dict()) == set(face_r.state_dict())


def _batch_dependence(encoder, x):
    """Max change of sample 0's embedding when it sits at position 0 vs 1 of the batch, and with other company."""
    with torch.no_grad():
        first = encoder(x)[0]
        moved = encoder(torch.cat([x[1:2], x[0:1], x[2:]]))[1]
        alone = encoder(x[0:1])[0]
    return (first - moved).abs().max().item(), (first - alone).abs().max().item()


def test_released_mode_embedding_depends_on_batch_position_and_company():
    torch.manual_seed(0)
    voice, face = encoders({**TINY_ARCH, 'encoder_compat': 'released'})
    voice.eval(), face.eval()
    faces, mels = torch.randn(4, 3, 64, 64), torch.rand(4, 1, 512, 301) - 1
    moved, _ = _batch_dependence(face, faces)
    assert moved > 1e-3  # quirk 1: position embedding by batch index
    moved, alone = _batch_dependence(voice, mels)
    assert moved > 1e-3 and alone > 1e-3  # quirks 1 and 3: batch index and batch statistics in eval mode


def test_fixed_mode_embedding_independent_of_the_batch():
    torch.manual_seed(0)
    voice, face = encoders(TINY_ARCH)
    voice.eval(), face.eval()
    for encoder, x in ((face, torch.randn(4, 3, 64, 64)), (voice, torch.rand(4, 1, 512, 301) - 1)):
        moved, alone = _batch_dependence(encoder, x)
        assert moved < 1e-5 and alone < 1e-5


def test_released_embed_each_equals_encoding_each_sample_on_its_own():
    torch.manual_seed(0)
    voice, face = encoders({**TINY_ARCH, 'encoder_compat': 'released'})
    voice.eval(), face.eval()
    for encoder, x in ((face, torch.randn(5, 3, 64, 64)), (voice, torch.rand(5, 1, 512, 301) - 1)):
        with torch.no_grad():
            one_by_one = torch.cat([encoder(x[i:i + 1]) for i in range(len(x))])
            batched = encoder.embed_each(x)
        torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)


def test_released_mode_refuses_more_than_32_samples():
    voice, face = encoders({**TINY_ARCH, 'encoder_compat': 'released'})
    face.eval()
    with torch.no_grad(), pytest.raises(AssertionError, match='at most 32'):
        face(torch.randn(33, 3, 64, 64))
    with torch.no_grad():
        assert face.embed_each(torch.randn(33, 3, 64, 64)).shape == (33, 128)


def _reference_attention(attn, x, scale):
    """Multi-head attention written out with an explicit scale, from the module's own weights."""
    b, n, dim = x.shape
    h = attn.heads
    q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, h, dim // h).transpose(1, 2) for t in (q, k, v))
    out = ((q @ k.transpose(-1, -2)) * scale).softmax(-1) @ v
    return attn.to_out(out.transpose(1, 2).reshape(b, n, dim))


@pytest.mark.parametrize('released, scale', [(True, 64 ** -0.5), (False, 16 ** -0.5)])
def test_attention_scale(released, scale):
    torch.manual_seed(0)
    attn = (networks.ReleasedAttention if released else networks.Attention)(dim=64, heads=4)
    x = torch.randn(3, 2, 64) * 3
    with torch.no_grad():
        torch.testing.assert_close(attn(x), _reference_attention(attn, x, scale), rtol=1e-5, atol=1e-5)
        other = _reference_attention(attn, x, 16 ** -0.5 if released else 64 ** -0.5)
    assert (attn(x) - other).abs().max() > 1e-4


def test_initialisation_follows_the_recipe():
    torch.manual_seed(0)
    voice, face = encoders(TINY_ARCH)
    conv = face.features[0]
    bn = face.features[1]
    assert conv.bias.abs().max() == 0 and bn.bias.abs().max() == 0
    assert abs(face.patch_to_embedding.weight.std().item() - 0.02) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.02
    assert abs(voice.cls_token.std().item() - 1.0) < 0.2  # standard normal


def test_encoders_are_built_by_name_with_their_own_sizes():
    voice = networks.define_encoder('voice', n_mels=512, n_frames=301, width_mult=0.25, dim=64, depth=1, heads=2,
                                    mlp_dim=64, emb_dim=32)
    face = networks.define_encoder('face_released', image_size=64, width_mult=0.5, dim=96, depth=2, heads=3,
                                   mlp_dim=128, emb_dim=32)
    assert type(voice) is networks.VoiceEncoder and type(face) is networks.ReleasedFaceEncoder
    assert face.pos_embedding.shape == (32, 1, 96) and len(face.transformer.layers) == 2
    assert voice.features[1].track_running_stats and voice.pos_embedding.shape == (1, 2, 64)
    # the message lists what is registered (whatever else a newcomer registers)
    unknown = 'not_registered_' + '_'.join(sorted(networks.ENCODERS))   # whatever a newcomer registers
    with pytest.raises(ValueError, match=f"unknown encoder '{unknown}'; registered: .*face_released.*voice_released"):
        networks.define_encoder(unknown)
    with pytest.raises(networks.EncoderBuildError, match="encoder 'face' cannot be built with n_mels=512: TypeError"):
        networks.define_encoder('face', n_mels=512)


def test_a_registered_encoder_is_used_by_the_model_config():
    from models import ModelConfig

    @networks.register_encoder('test_mean_face')
    class MeanFace(torch.nn.Module):
        """A face 'encoder' for the test: a linear map of the mean colour."""

        def __init__(self, *, image_size, emb_dim):
            super().__init__()
            self.emb_dim = emb_dim
            self.proj = torch.nn.Linear(3, emb_dim)

        def forward(self, x):
            return self.proj(x.mean(dim=(2, 3)))

        def embed_each(self, x):
            return self(x)
    try:
        config = ModelConfig(voice={'kind': 'voice', 'width_mult': 0.25, 'dim': 64, 'depth': 1, 'heads': 2,
                                    'mlp_dim': 64, 'emb_dim': 16, 'n_mels': 512, 'n_frames': 301},
                             face={'kind': 'test_mean_face', 'image_size': 64, 'emb_dim': 16})
        voice, face = config.build_encoders()
        assert isinstance(face, MeanFace) and face(torch.randn(2, 3, 64, 64)).shape == (2, 16)
        assert config.input_options()['crop_size'] == 64
        assert ModelConfig.from_dict(config.to_dict()) == config
    finally:
        del networks.ENCODERS['test_mean_face']


@contextlib.contextmanager
def overview_encoder_example():
    """The encoder example of docs/overview.md, run as written: its class registered as ``vit_b16`` for the block,
    then whatever was registered under that name before (a newcomer's own ``vit_b16``) put back."""
    text = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'overview.md')).read()
    section = text[text.index('## Another encoder'):]
    code = section[section.index('```python') + len('```python'):section.index('```', section.index('```python') + 9)]
    namespace = {'torch': torch, 'nn': torch.nn, 'register_encoder': networks.register_encoder,
                 'Transformer': networks.Transformer}
    before = networks.ENCODERS.get('vit_b16')
    try:
        exec(textwrap.dedent(code), namespace)   # noqa: S102 -- our own documentation
        yield namespace['ViTFace']
    finally:
        if before is None:
            networks.ENCODERS.pop('vit_b16', None)
        else:
            networks.ENCODERS['vit_b16'] = before


def test_the_overview_encoder_keeps_its_own_initialisation_and_is_told_flags_it_does_not_take(caplog):
    from tests.conftest import tiny_model
    with overview_encoder_example() as cls, caplog.at_level('WARNING'):
        model = tiny_model(train=True, face_encoder='vit_b16', face_args='patch=16,depth=1,heads=4')
        face = model.netG_video
        assert isinstance(face, cls)
        assert face.cls_token.abs().max() == 0 and face.pos_embedding.abs().max() == 0   # zero, as it made them
        assert model.netG_audio.cls_token.abs().max() > 0                                # ours: the recipe's draw
        assert "--width_mult 0.25 does not reach the face encoder 'vit_b16'" in caplog.text
        assert 'voice encoder' not in caplog.text   # the voice encoder takes every shared flag


def test_an_encoder_that_cannot_be_built_is_one_line_and_exit_2(sample_root, run_dirs, capsys):
    import train_DF
    from models import ModelConfigError
    from tests.conftest import TINY, tiny_model, vox
    with overview_encoder_example():
        with pytest.raises(ModelConfigError) as caught:   # 72 is no multiple of the 16-pixel patch
            tiny_model(face_encoder='vit_b16', crop_size=72, load_size=72, face_args='patch=16')
        message = str(caught.value)
        assert message.startswith("encoder 'vit_b16' cannot be built with ") and 'image_size=72' in message
        assert message.endswith('AssertionError: image_size 72 is not a multiple of the patch 16')
        assert '\n' not in message
        argv = ['--dataroot', vox(sample_root), '--name', 'bad_vit', '--gpu_ids', '-1', '--display_id', '0',
                '--num_threads', '0', *TINY, '--crop_size', '72', '--load_size', '72', '--face_encoder', 'vit_b16',
                '--face_args', 'patch=16', '--n_epochs', '1', '--n_epochs_decay', '0', *run_dirs[:2]]
        assert train_DF.main(argv) == 2
        err = capsys.readouterr().err
        assert "error: encoder 'vit_b16' cannot be built with " in err and 'Traceback' not in err

"""Transport lives in data/: datasets are built from a model config without a model, batches arrive as encoder
input, the model refuses anything else, and models/ imports nothing from data/."""
import ast
import os

import numpy as np
import pytest
import torch

import train_DF
from data import create_dataset, inputs, transport
from models import ModelConfig
from models.config import INPUT_RECIPES
from tests.conftest import TINY, tiny_model, vox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_opt(root, *extra):
    from options.train_options import TrainOptions
    return TrainOptions().parse(['--dataroot', vox(root), '--checkpoints_dir', 'unused', '--gpu_ids', '-1',
                                 '--num_threads', '0', '--batch_size', '4', *TINY, *extra], save=False, verbose=False)


def test_models_import_nothing_from_data():
    for name in sorted(os.listdir(os.path.join(ROOT, 'models'))):
        if not name.endswith('.py'):
            continue
        tree = ast.parse(open(os.path.join(ROOT, 'models', name)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split('.')[0] == 'data' for alias in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert node.level or (node.module or '').split('.')[0] != 'data', f'{name}: from {node.module}'


def test_the_model_side_and_the_data_side_name_the_same_input_recipes():
    assert set(INPUT_RECIPES) == set(inputs.INPUTS)


def test_a_dataset_is_built_from_a_config_alone_and_yields_encoder_input(sample_root):
    opt = train_opt(sample_root, '--negatives', 'sampled', '--n_negatives', '2')
    config = ModelConfig.from_options(opt, 'fixed')
    args = transport.dataset_args(config, opt, 'train')
    assert args['n_negatives'] == 2 and not args['neg_voices'] and args['transport'].face_backend == 'torchvision'
    loader = create_dataset(opt, 'train', **args)
    raw = create_dataset(opt, 'train', **{k: v for k, v in args.items() if k != 'transport'},
                         **args['transport'].dataset_kwargs())
    loader.set_epoch(1)
    raw.set_epoch(1)
    batch, plain = next(iter(loader)), next(iter(raw))
    assert plain['face'].dtype == torch.uint8 and plain['voice'].dtype == torch.float16
    for key in ('voice', 'face', 'neg_faces'):
        assert batch[key].dtype == torch.float32, key
    # the vfd2022 recipe: faces x / 255 with mean and std 0.5, i.e. [-1, 1]; voices the stored dB values
    torch.testing.assert_close(batch['face'], plain['face'].float() / 127.5 - 1, rtol=0, atol=1e-6)
    torch.testing.assert_close(batch['voice'], plain['voice'].float(), rtol=0, atol=0)
    assert torch.equal(batch['identity'], plain['identity'])
    # in-batch training carries no negatives; tests carry none either
    assert transport.dataset_args(config, train_opt(sample_root), 'train')['n_negatives'] == 0


@pytest.mark.parametrize('recipe', sorted(inputs.INPUTS))
def test_to_images_undoes_the_recipe_normalisation(recipe):
    faces = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    carry = transport.Transport(inputs=recipe, channels_last=True)
    ready = carry.to_encoder(faces)
    assert ready.dtype == torch.float32 and ready.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(carry.to_images(ready), faces)


def test_the_model_refuses_what_is_not_encoder_input():
    model = tiny_model()
    voice = torch.zeros(2, 1, 512, 301)
    with pytest.raises(TypeError, match='face: the model takes encoder input.*uint8.*data.transport'):
        model.score_pairs(voice, torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert model.score_pairs(voice, torch.zeros(2, 3, 64, 64)).shape == (2,)


def test_the_page_shows_the_faces_the_encoder_was_given(sample_root):
    from options.train_options import TrainOptions
    opt = TrainOptions().parse(['--dataroot', vox(sample_root), '--checkpoints_dir', 'unused', '--gpu_ids', '-1',
                                '--num_threads', '0', *TINY], save=False, verbose=False)
    model = tiny_model(train=True)
    args = transport.dataset_args(model.config, opt, 'val')
    loader = create_dataset(opt, 'val', shuffle=False, **args)
    raw = create_dataset(opt, 'val', shuffle=False, n_negatives=args['n_negatives'],
                         **args['transport'].dataset_kwargs())
    _, samples = train_DF.validate(model, loader, n_samples=2)
    plain = next(iter(raw))
    real = np.flatnonzero(plain['label'].numpy() == 1)[:2]
    assert len(samples) == 2
    for (image, *_), i in zip(samples, real):
        assert np.array_equal(image, plain['face'][i].permute(1, 2, 0).numpy())

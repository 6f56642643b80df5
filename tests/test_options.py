"""Options: the CycleGAN-style parser, name discovery, GPU selection and the saved option table."""
import json
import os
import subprocess
import sys

import pytest
import torch

import models
from models.DFD_model import DFDModel
from options.base_options import parse_gpu_ids
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.conftest import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_opt(tmp_path, *extra):
    return TrainOptions().parse(['--dataroot', str(tmp_path), '--name', 'opt_test', '--checkpoints_dir',
                                 str(tmp_path / 'ck'), *TINY, *extra], verbose=False)


def test_every_flag_has_help(tmp_path):
    options = TrainOptions()
    options.parse(['--dataroot', str(tmp_path), '--checkpoints_dir', str(tmp_path / 'ck')], verbose=False)
    flags = [a for a in options.parser._actions if a.option_strings and a.dest != 'help']
    assert len(flags) > 30
    assert [a.dest for a in flags if not a.help] == []


def parse_train(tmp_path, *argv):
    return TrainOptions().parse(['--dataroot', str(tmp_path), '--checkpoints_dir', str(tmp_path / 'ck'), *argv],
                                verbose=False)


def test_defaults_are_the_papers_sizes_and_the_measured_recipe(tmp_path):
    opt = parse_train(tmp_path)
    assert (opt.dim, opt.depth, opt.heads, opt.mlp_dim, opt.emb_dim, opt.width_mult) == (1024, 6, 8, 2048, 2048, 1.0)
    assert (opt.load_size, opt.crop_size, opt.n_mels, opt.n_frames) == (224, 224, 512, 301)
    assert (opt.lr_policy, opt.n_epochs, opt.n_epochs_decay, opt.seed, opt.n_negatives) == ('linear', 2, 20, 20, 5)
    assert opt.encoder_compat == 'auto' and opt.val_ratio == 0.1 and opt.recipe == 'default'
    assert DFDModel.config_from_options(opt, 'fixed').compat == 'fixed'   # what auto means for a new model
    # the recipe of docs/training.md
    assert (opt.negatives, opt.batch_size, opt.init_type, opt.token_init_std) == ('in_batch', 32, 'kaiming', 0.02)
    assert (opt.loss, opt.margin, opt.margin_mode) == ('triplet', 0.25, 'relative')
    assert (opt.lr, opt.beta1, opt.lr_fan_in, opt.warmup_steps) == (0.0005, 0.9, 512, 0)


def test_released_recipe_is_one_switch_away_and_typed_options_still_win(tmp_path):
    opt = parse_train(tmp_path, '--recipe', 'released')
    assert (opt.init_type, opt.init_gain, opt.token_init_std) == ('normal', 0.02, 1.0)
    assert (opt.negatives, opt.n_negatives, opt.batch_size) == ('sampled', 5, 1)
    assert (opt.loss, opt.margin, opt.margin_mode) == ('triplet', 100.0, 'absolute')
    assert (opt.lr, opt.beta1, opt.lr_fan_in, opt.warmup_steps) == (0.0002, 0.5, 0, 0)
    assert (opt.lr_policy, opt.n_epochs, opt.n_epochs_decay, opt.bn_recalib_batches) == ('linear', 2, 20, 0)
    opt = parse_train(tmp_path, '--recipe', 'released', '--lr', '0.001', '--batch_size', '4')
    assert (opt.lr, opt.batch_size, opt.margin) == (0.001, 4, 100.0)
    table = json.loads((tmp_path / 'ck' / 'experiment_name' / 'train_opt.json').read_text())
    assert table['recipe'] == 'released' and table['margin'] == 100.0


def test_option_table_is_saved_as_text_and_json(tmp_path):
    opt = train_opt(tmp_path, '--lr', '0.001')
    folder = tmp_path / 'ck' / 'opt_test'
    text = (folder / 'train_opt.txt').read_text()
    assert 'lr: 0.001' in text and '[default: 0.0005]' in text
    table = json.loads((folder / 'train_opt.json').read_text())
    assert table['lr'] == 0.001 and table['dim'] == 128 and table['model'] == 'DFD'
    assert 'lr' in table['explicit'] and 'margin' not in table['explicit']
    assert opt.explicit >= {'dataroot', 'lr', 'dim'}


def test_models_are_found_by_name_and_unknown_names_list_valid_ones(tmp_path, capsys):
    assert models.find_model_using_name('DFD') is DFDModel
    with pytest.raises(ValueError, match='valid names: DFD'):
        models.find_model_using_name('cycle_gan')
    with pytest.raises(SystemExit) as exit_info:
        train_opt(tmp_path, '--model', 'cycle_gan')
    assert exit_info.value.code == 2
    assert 'valid names: DFD' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_opt(tmp_path, '--dataset_mode', 'aligned')
    err = capsys.readouterr().err
    assert 'DFDC' in err and 'Vox_image' in err


def test_gpu_ids(monkeypatch, tmp_path):
    assert parse_gpu_ids('-1') == []
    assert parse_gpu_ids('0,2') == [0, 2]
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert parse_gpu_ids('auto') == []
    assert train_opt(tmp_path).device == 'cpu'
    with pytest.raises(SystemExit, match='no CUDA device'):
        train_opt(tmp_path, '--gpu_ids', '0')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert parse_gpu_ids('auto') == [0]
    assert train_opt(tmp_path, '--gpu_ids', '-1').device == 'cpu'


def test_impossible_combinations_are_refused(tmp_path):
    # the model refuses what its config cannot train (the compat mode is only known where the model is built)
    for flags, message in (
            (('--encoder_compat', 'released', '--negatives', 'sampled', '--batch_size', '8'), 'at most 32'),
            (('--encoder_compat', 'released'), 'by its position alone'),
            (('--negatives', 'in_batch', '--batch_size', '4'), 'must exceed --n_negatives'),
            (('--face_args', 'emb_dim=64'), 'set emb_dim alike'),
            (('--face_encoder', 'vit'), "unknown encoder 'vit'"),
            (('--voice_args', 'depth'), 'key=value')):
        with pytest.raises(models.ModelConfigError, match=message):
            DFDModel.build(train_opt(tmp_path, *flags))
    with pytest.raises(SystemExit, match='larger than --load_size'):
        train_opt(tmp_path, '--crop_size', '96')
    with pytest.raises(SystemExit, match="'no_such' is not a torch.compile backend here; choose from .*aot_eager"):
        train_opt(tmp_path, '--compile', '--compile_backend', 'no_such')
    with pytest.raises(SystemExit, match='max-autotune is a mode of the inductor backend'):
        train_opt(tmp_path, '--compile', '--compile_backend', 'aot_eager', '--compile_mode', 'max-autotune')
    assert train_opt(tmp_path, '--compile', '--compile_backend', 'aot_eager').compile_backend == 'aot_eager'


def test_test_options_read_no_checkpoint_and_loading_a_missing_one_says_so(tmp_path):
    opt = TestOptions().parse(['--dataroot', str(tmp_path), '--name', 'none', '--checkpoints_dir', str(tmp_path)],
                              verbose=False)
    assert not os.path.exists(tmp_path / 'none')      # no option table for an experiment that does not exist
    with pytest.raises(models.CheckpointError, match='not found'):
        models.load_model(opt, str(tmp_path / 'none'), 'latest')


def test_progress_writes_whole_lines_when_not_on_a_terminal(capsys):
    from util.util import LineProgress, progress
    bar = progress(range(20), desc='scan')  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    assert list(bar) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[-1].startswith('scan: 20/20') and '\r' not in ''.join(lines)


def help_text(options, argv, capsys):
    with pytest.raises(SystemExit) as done:
        options.parse([*argv, '--help'], save=False, verbose=False)
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize('options', [TrainOptions, TestOptions])
@pytest.mark.parametrize('dataset', ['Vox_image', 'DFDC'])
def test_help_lists_every_option_with_the_default_the_run_uses(options, dataset, tmp_path, capsys):
    text = ' '.join(help_text(options(), ['--dataset_mode', dataset], capsys).split())
    runner = options()
    opt = runner.parse(['--dataroot', str(tmp_path), '--dataset_mode', dataset, '--checkpoints_dir', str(tmp_path)],
                       save=False, verbose=False)
    flags = [a for a in runner.parser._actions if a.option_strings and a.dest != 'help']
    names = {a.option_strings[-1] for a in flags}
    assert {'--dim', '--encoder_compat', '--score'} <= names   # the model's (DFD) options
    assert ('--val_ratio' if dataset == 'Vox_image' else '--split_file') in names   # the dataset's
    for action in flags:
        name = action.option_strings[-1]
        assert f'{name} ' in text or text.endswith(name), name
        if action.default is not None and action.default != '' and not isinstance(action.default, bool):
            shown = f'(default: {action.default})'
            assert shown in text.split(f' {name} ', 1)[1].split(' --', 1)[0] or \
                shown in text.split(f' {name} ', 1)[1][:2000], name
    # the value the run uses is the one the help shows (Vox_image caps training at 100,000 clips)
    assert f'(default: {opt.max_dataset_size})' in text
    if dataset == 'Vox_image':
        assert opt.max_dataset_size == 100000


def readme_option_rows():
    """(options, default tokens) of each row of the README's 'Main options' table."""
    import re
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md')).read()
    table = readme[readme.index('## Main options'):]
    table = table[:table.index('\n## ')]
    for line in table.splitlines():
        if not line.startswith('| `--'):
            continue
        first, default = line.split('|')[1:3]
        names = re.findall(r'--[a-z_0-9]+', first)
        tokens = [t for span in re.findall(r'`([^`]*)`', default) for t in re.split(r'[\s,]+', span) if t]
        yield names, tokens


def test_the_readme_option_table_names_real_options_with_their_defaults(tmp_path):
    parsers = []
    for options, dataset in ((TrainOptions, 'Vox_image'), (TestOptions, 'DFDC')):
        runner = options()
        runner.parse(['--dataroot', str(tmp_path), '--dataset_mode', dataset, '--checkpoints_dir', str(tmp_path)],
                     save=False, verbose=False)
        parsers.append(runner.parser)
    rows = list(readme_option_rows())
    assert len(rows) > 30
    compared = 0
    for names, tokens in rows:
        for name, token in zip(names, tokens):
            parser = next((p for p in parsers if any(name in a.option_strings for a in p._actions)), None)
            assert parser is not None, f'README names {name}, which no entry script takes'
            default = parser.get_default(name[2:])
            try:
                same = float(token) == float(default)
            except (TypeError, ValueError):
                same = str(default) == token
            assert same, f'README: {name} defaults to {token}; the parser: {default}'
            compared += 1
    assert compared > 30


def test_the_entry_scripts_start_without_matplotlib_or_sklearn():
    """matplotlib is imported by the first figure and sklearn not at all (the metrics are numpy): `--help`, a run
    with --no_html and every DDP rank but the first start about 2 s sooner than with both imported up front."""
    code = ('import sys, train_DF, test_DF, scripts.detect, scripts.evaluate; '
            'print(sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "sklearn", "scipy"}))')
    done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ['[]']

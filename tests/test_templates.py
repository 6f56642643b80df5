"""The templates a newcomer copies work as they are: ``--model template`` trained on ``--dataset_mode template``
with train_DF.py, tested with test_DF.py; BaseModel refuses a model that lacks part of the contract."""
import csv
import json
import os

import pytest

import test_DF
import train_DF
from models import BaseModel
from tests.conftest import TINY, vox


def write_items(sample_root, out):
    """items.csv over the sample VoxCeleb2 files: identities 0-5 train, 6-7 val and test, each voice paired with
    its own face (label 1) and with another identity's face (label 0)."""
    root = vox(sample_root)
    rows = []
    ids = sorted(os.listdir(os.path.join(root, 'face')))
    clips = {}
    for who in ids:
        for clip in sorted(os.listdir(os.path.join(root, 'face', who))):
            face = sorted(os.listdir(os.path.join(root, 'face', who, clip)))[0]
            voice = os.path.splitext(face)[0] + '.npy'
            clips.setdefault(who, []).append((f'face/{who}/{clip}/{face}', f'voice/{who}_{clip}_{voice}'))
    for who in ids[:6]:
        rows += [{'part': 'train', 'identity': who, 'voice': v, 'face': f, 'label': '', 'video': ''}
                 for f, v in clips[who]]
    for part, (a, b) in (('val', ids[6:8]), ('test', ids[6:8][::-1])):
        for who, other in ((a, b), (b, a)):
            for (face, voice), (other_face, _) in zip(clips[who], clips[other]):
                rows.append({'part': part, 'identity': who, 'voice': voice, 'face': face, 'label': '1',
                             'video': voice})
                rows.append({'part': part, 'identity': who, 'voice': voice, 'face': other_face, 'label': '0',
                             'video': voice + '+' + other_face})
    with open(out, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_the_template_model_trains_and_tests_on_the_template_dataset(sample_root, run_dirs, tmp_path):
    root = vox(sample_root)
    items = 'items_template_test.csv'
    rows = write_items(sample_root, os.path.join(root, items))
    try:
        common = ['--dataroot', root, '--model', 'template', '--dataset_mode', 'template', '--items_file', items,
                  '--gpu_ids', '-1', '--num_threads', '0', *TINY]
        assert train_DF.main([*common, '--name', 'tpl', '--batch_size', '4', '--print_freq', '4', '--n_epochs', '2',
                              '--n_epochs_decay',
                              '0', '--save_epoch_freq', '1', '--display_id', '0', *run_dirs[:2]]) == 0
        folder = os.path.join(run_dirs[1], 'tpl')
        records = [json.loads(line) for line in open(os.path.join(folder, 'metrics.jsonl'))]
        train = [r for r in records if r['type'] == 'train']
        assert train and all(set(r['losses']) == {'infonce', 'dist_pos'} for r in train)
        assert [r['epoch'] for r in records if r['type'] == 'val'] == [1, 2]
        assert os.path.isfile(os.path.join(folder, 'best_net_G_video.pth'))
        assert test_DF.main([*common, '--name', 'tpl', '--epoch', 'latest', '--phase', 'test', *run_dirs]) == 0
        results = os.path.join(run_dirs[3], 'tpl')
        folders = [name for name in os.listdir(results) if os.path.isdir(os.path.join(results, name))]
        assert len(folders) == 1
        scores = list(csv.DictReader(open(os.path.join(results, folders[0], 'scores.csv'))))
        tests = [r for r in rows if r['part'] == 'test']
        assert sorted(int(r['label']) for r in scores) == sorted(int(r['label']) for r in tests)
        summary = json.load(open(os.path.join(results, folders[0], 'summary.json')))
        assert summary['not_measurable'] is None and summary['model_config']['loss'] == 'infonce'
        assert (summary['n_real'], summary['n_fake']) == (sum(r['label'] == '1' for r in tests),
                                                          sum(r['label'] == '0' for r in tests))
    finally:
        os.remove(os.path.join(root, items))


def test_a_model_without_its_scoring_cannot_be_made():
    class Half(BaseModel):
        model_names = []

        def set_input(self, batch):
            pass

        def forward(self):
            pass

        def optimize_parameters(self):
            pass
    with pytest.raises(TypeError, match='score_pairs'):
        Half(None, None)


def test_the_template_dataset_reports_every_bad_row_at_once(sample_root, tmp_path):
    from data import DatasetError
    from data.template_dataset import TemplateDataset
    from options.train_options import TrainOptions
    root = tmp_path / 'd'
    (root / 'f').mkdir(parents=True)
    (root / 'f' / 'a.jpg').write_bytes(b'x')
    (root / 'items.csv').write_text('part,identity,voice,face,label,video\n'
                                    'train,a,f/a.npy,f/a.jpg,,\n'           # no such voice file
                                    'trian,a,f/a.jpg,f/a.jpg,,\n'           # unknown part
                                    'val,a,f/a.jpg,../../etc/passwd,1,v\n'  # outside --dataroot
                                    'test,a,f/a.jpg,f/a.jpg,2,v\n')         # bad label
    opt = TrainOptions().parse(['--dataroot', str(root), '--dataset_mode', 'template', '--model', 'template',
                                '--checkpoints_dir', str(tmp_path), '--gpu_ids', '-1'], save=False, verbose=False)
    with pytest.raises(DatasetError) as caught:
        TemplateDataset(opt, 'train')
    message = str(caught.value)
    assert '4 problem(s)' in message
    for said in ('voice file f/a.npy does not exist', "part 'trian'", 'not a path inside --dataroot',
                 "label '2'"):
        assert said in message


def test_the_template_model_refuses_a_bad_flag_in_one_line(sample_root, run_dirs, capsys):
    argv = ['--dataroot', vox(sample_root), '--model', 'template', '--dataset_mode', 'template', '--gpu_ids', '-1',
            '--template_temperature', '0', '--display_id', '0', *TINY, *run_dirs[:2]]
    assert train_DF.main(argv) == 2
    err = capsys.readouterr().err
    assert 'error: --template_temperature must be above 0' in err and 'Traceback' not in err

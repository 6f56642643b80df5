"""Sound evaluation: video-level scores from several windows, per-category AUC, identity-disjoint splits,
fine-tuning on deepfake data, and the released protocol for comparison."""
import collections
import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import test_DF
import train_DF
from data.DFDC_dataset import DFDCDataset, original_sampling
from models.checkpoint import read as read_checkpoint
from scripts import make_splits
from tests.conftest import QUICK, TINY, dfdc, vox
from tests.test_datasets import make_opt
from util import metrics


@pytest.fixture(scope='module')
def pretrained(sample_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('eval')
    args = ['--dataroot', vox(sample_root), '--name', 'pre', *TINY, '--batch_size', '4', '--negatives', 'sampled',
            '--n_epochs', '1',
            '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1', '--no_flip', '--display_id', '0',
            '--checkpoints_dir', str(base / 'ck'), *QUICK]
    assert train_DF.main(args) == 0
    return base


def run_test(base, dataroot, *extra, name='pre'):
    assert test_DF.main(['--dataroot', str(dataroot), '--name', name, '--checkpoints_dir', str(base / 'ck'),
                         '--results_dir', str(base / 'res'), '--gpu_ids', '-1', '--num_threads', '0', *extra]) == 0
    part = (extra[extra.index('--phase') + 1] if '--phase' in extra else 'test') if '--split_file' in extra else 'all'
    protocol = extra[extra.index('--protocol') + 1] if '--protocol' in extra else 'sound'
    tag = extra[extra.index('--results_tag') + 1] if '--results_tag' in extra \
        else f'{os.path.basename(str(dataroot))}_{part}_{protocol}_latest'
    folder = base / 'res' / name / tag
    return folder, json.loads((folder / 'summary.json').read_text())


def read_csv(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def test_aggregation_and_per_category_auc_by_hand():
    names, labels, scores, members = metrics.aggregate_by_video(['a', 'a', 'b', 'c', 'c', 'c'], [1, 1, 0, 0, 0, 0],
                                                                [1.0, 3.0, -1.0, 0.0, 6.0, 3.0], 'mean')
    assert names == ['a', 'b', 'c'] and labels.tolist() == [1, 0, 0] and [len(m) for m in members] == [2, 1, 3]
    assert members == [[0, 1], [2], [3, 4, 5]]
    assert scores.tolist() == [2.0, -1.0, 3.0]
    assert metrics.aggregate_by_video(['c', 'c', 'c'], [0, 0, 0], [0.0, 6.0, 3.0], 'median')[2].tolist() == [3.0]
    assert metrics.aggregate_by_video(['c', 'c'], [0, 0], [0.0, 6.0], 'max')[2].tolist() == [6.0]
    with pytest.raises(ValueError, match='unknown aggregation'):
        metrics.aggregate_by_video(['a'], [1], [0.0], 'mode')
    # reals 0.9, 0.8; fakes of A: 0.1 (below both: AUC 1), of B: 0.85, 0.95 (1 of 4 pairs ranked right: 0.25)
    per = metrics.per_category_auc([1, 1, 0, 0, 0], [0.9, 0.8, 0.1, 0.85, 0.95], [None, None, 'A', 'B', 'B'])
    assert per == {'A': {'auc': 1.0, 'n_fake': 1}, 'B': {'auc': 0.25, 'n_fake': 2}}


@pytest.fixture(scope='module')
def windowed(sample_root, tmp_path_factory):
    """The sample DFDC set with half of its videos turned into folders of three windows (mixed layout)."""
    root = tmp_path_factory.mktemp('win') / 'DFDCwin'
    shutil.copytree(dfdc(sample_root), root)
    convert = [(folder, name) for folder in ('real', 'fake') for name in sorted(os.listdir(root / folder))[::2]]
    keep = [(folder, name) for folder in ('real', 'fake') for name in sorted(os.listdir(root / folder))[1::2]]
    donors = [(root / folder / name, root / 'audio_feat' / (os.path.splitext(name)[0] + '.npy'))
              for folder, name in keep[:2]]
    for folder, name in convert:
        video = os.path.splitext(name)[0]
        (root / folder / video).mkdir()
        (root / 'audio_feat' / video).mkdir()
        for k, (face, voice) in enumerate([(root / folder / name, root / 'audio_feat' / (video + '.npy'))] + donors):
            shutil.copy(face, root / folder / video / f'{k}.jpg')
            shutil.copy(voice, root / 'audio_feat' / video / f'{k}.npy')
        os.remove(root / folder / name)
        os.remove(root / 'audio_feat' / (video + '.npy'))
    return root


@pytest.mark.parametrize('how', ['mean', 'max'])
def test_video_level_scores_aggregate_the_windows(pretrained, windowed, how):
    folder, summary = run_test(pretrained, windowed, '--video_agg', how, '--results_tag', f'win_{how}')
    windows = read_csv(folder / 'scores.csv')
    videos = read_csv(folder / 'video_scores.csv')
    assert summary['level'] == 'video' and summary['video_agg'] == how
    assert summary['n_videos'] == len(videos) == 8 and summary['n_windows'] == len(windows) == 4 * 3 + 4
    per_video = {}
    for row in windows:
        per_video.setdefault(row['video'], []).append(float(row['score']))
    assert sorted(len(v) for v in per_video.values()) == [1] * 4 + [3] * 4
    for row in videos:
        expected = np.mean(per_video[row['video']]) if how == 'mean' else np.max(per_video[row['video']])
        assert float(row[f'score_{how}']) == pytest.approx(expected, abs=1e-5)
    frame_auc = roc_auc_score([int(r['label']) for r in windows], [float(r['score']) for r in windows])
    video_auc = roc_auc_score([int(r['label']) for r in videos], [float(r[f'score_{how}']) for r in videos])
    assert summary['frame_level']['auc'] == pytest.approx(frame_auc, abs=1e-6)
    assert summary['auc'] == summary['video_level']['auc'] == pytest.approx(video_auc, abs=1e-5)
    assert 'nothing chosen on this test set' in summary['selection']
    assert 'frame level and video level' in (folder / 'index.html').read_text()


def test_per_category_auc_on_the_fakeavceleb_sample(pretrained, sample_root):
    folder, summary = run_test(pretrained, os.path.join(str(sample_root), 'FakeAVCeleb'))
    categories = {r['video']: r['category'] for r in read_csv(os.path.join(str(sample_root), 'FakeAVCeleb',
                                                                             'categories.csv'))}
    videos = read_csv(folder / 'video_scores.csv')
    assert set(summary['categories']) == {'FakeVideo-RealAudio', 'RealVideo-FakeAudio', 'FakeVideo-FakeAudio'}
    reals = [float(r['score_mean']) for r in videos if r['label'] == '1']
    for category, row in summary['categories'].items():
        fakes = [float(r['score_mean']) for r in videos if categories[r['video']] == category]
        expected = roc_auc_score([1] * len(reals) + [0] * len(fakes), reals + fakes)
        assert row['auc'] == pytest.approx(expected, abs=1e-6) and row['n_fake'] == len(fakes)
    assert 'AUC per fake category' in (folder / 'index.html').read_text()


def test_protocol_original_samples_fakes_per_real_and_reports_frames(pretrained, windowed):
    items = [(f'r{i}', '', '', 1, 0) for i in range(2)] + [(f'f{i}', '', '', 0, 0) for i in range(5)]
    chosen = original_sampling(items)
    assert [i[0] for i in chosen] == ['r0', 'r1', 'f0', 'f1', 'f2', 'f3', 'f4']      # s = 2.5: [0, 2), [2, 5)
    many = [('r', '', '', 1, 0)] + [(f'f{i:02d}', '', '', 0, 0) for i in range(35)]
    assert len(original_sampling(many)) == 1 + 30                                        # at most 30 per real
    folder, summary = run_test(pretrained, windowed, '--protocol', 'original', '--results_tag', 'orig')
    assert summary['level'] == 'frame' and summary['protocol'] == 'original'
    assert summary['auc'] == summary['frame_level']['auc']


def fake_avceleb_layout(root, n_ids=20, seed=0, kinds=('FakeVideo-RealAudio',)):
    """Names-only FakeAVCeleb-like layout: a real per identity and fakes mixing two identities (their categories
    taken in turn from ``kinds``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        ident = f'id{i:05d}'
        rows.append([f'RVRA_{ident}', 'RealVideo-RealAudio', 'real', ident, '-', '-'])
        for j in rng.choice([x for x in range(n_ids) if x != i], size=2, replace=False):
            kind = kinds[(i + j) % len(kinds)]
            rows.append([f'{kind}_{ident}_{j}', kind, 'faceswap', ident, f'id{j:05d}', '-'])
    names_only_layout(root, {r[0]: 'real' if r[1].startswith('RealVideo-Real') else 'fake' for r in rows},
                      'categories.csv', [['video', 'category', 'method', 'source', 'target1', 'target2'], *rows])
    return {r[0]: {x for x in r[3:] if x != '-'} for r in rows}


def names_only_layout(root, folders, index_file, rows):
    """A DFDC layout of empty files ({video: 'real' or 'fake'}; enough for make_splits) and its side file."""
    for folder in ('real', 'fake', 'audio_feat'):
        (root / folder).mkdir(parents=True)
    for video, folder in folders.items():
        (root / folder / f'{video}.jpg').write_bytes(b'')
        (root / 'audio_feat' / f'{video}.npy').write_bytes(b'')
    with open(root / index_file, 'w', newline='') as handle:
        csv.writer(handle).writerows(rows)


def test_make_splits_keeps_identities_apart_and_datasets_take_the_lists(tmp_path, capsys):
    root = tmp_path / 'FAVC'
    identities = fake_avceleb_layout(root)
    out = tmp_path / 'split.json'
    assert make_splits.main(['--dataroot', str(root), '--out', str(out), '--ratios', '0.6', '0.2', '0.2']) == 0
    split = json.loads(out.read_text())
    parts = ('train', 'val', 'test')
    for a in parts:
        for b in parts:
            if a < b:
                assert not set(split['identities'][a]) & set(split['identities'][b])
        for video in split[a]:
            assert identities[video] <= set(split['identities'][a])
    placed = {v for p in parts for v in split[p]}
    assert placed | {d['video'] for d in split['dropped']} == set(identities) and split['dropped']
    assert all(len(d['parts']) == 2 for d in split['dropped'])
    assert 'dropped:' in capsys.readouterr().out
    ds = DFDCDataset(make_opt(root, dataset_mode='DFDC', phase='test', split_file=str(out), isTrain=False), 'test')
    assert {item[0] for item in ds.items} == set(split['test'])
    again = tmp_path / 'again.json'
    assert make_splits.main(['--dataroot', str(root), '--out', str(again), '--ratios', '0.6', '0.2', '0.2']) == 0
    assert json.loads(again.read_text())['test'] == split['test']                  # the same seed, the same lists
    os.remove(root / 'categories.csv')
    assert make_splits.main(['--dataroot', str(root), '--out', str(again)]) == 2
    assert 'identities of the videos are unknown' in capsys.readouterr().err


def test_fine_tuning_on_deepfake_data_from_a_pretrained_checkpoint(pretrained, sample_root, tmp_path, capsys):
    root = dfdc(sample_root)
    reals = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'real')))
    fakes = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'fake')))
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': reals[:3] + fakes[:3], 'val': reals[3:] + fakes[3:], 'test': reals[3:]}))
    common = ['--dataroot', root, '--dataset_mode', 'DFDC', '--split_file', str(split), '--pretrained_name', 'pre',
              '--pretrained_epoch', 'latest', '--checkpoints_dir', str(pretrained / 'ck'), '--gpu_ids', '-1',
              '--num_threads', '0', '--batch_size', '2', '--n_negatives', '2', '--n_epochs', '1',
              '--n_epochs_decay', '0', '--display_id', '0', '--bn_recalib_batches', '0']
    assert train_DF.main([*common, '--name', 'ft0', '--lr', '0']) == 0         # no size options: from 'pre'
    before, _ = read_checkpoint(str(pretrained / 'ck' / 'pre' / 'latest_net_G_video.pth'))
    after, meta = read_checkpoint(str(pretrained / 'ck' / 'ft0' / 'latest_net_G_video.pth'))
    weights = [k for k in before if 'running_' not in k and 'num_batches' not in k]
    assert all(torch.equal(before[k], after[k]) for k in weights)                # started from the pre-trained one
    assert meta['config']['face']['dim'] == 128 and np.isfinite(meta['val']['eer_threshold'])
    assert (pretrained / 'ck' / 'ft0' / 'best_net_G_audio.pth').is_file()
    assert train_DF.main([*common, '--name', 'ft1']) == 0
    tuned, _ = read_checkpoint(str(pretrained / 'ck' / 'ft1' / 'latest_net_G_video.pth'))
    assert any(not torch.equal(before[k], tuned[k]) for k in weights)
    assert train_DF.main([*common, '--name', 'ft2', '--negatives', 'in_batch', '--batch_size', '4']) == 2
    assert 'use --negatives sampled' in capsys.readouterr().err


def test_the_original_protocol_takes_fakes_sorted_or_in_listdir_order():
    """Above 30 fakes per real the order of the list of fakes decides the pairs: sorted by name (reproducible) or
    os.listdir's (the released code's, whatever the file system gives)."""
    from data.DFDC_dataset import original_sampling
    reals = [(f'real{i}', f'r{i}.jpg', f'r{i}.npy', 1, 0) for i in range(2)]
    fakes = [(f'fake{i:03d}', f'f{i}.jpg', f'f{i}.npy', 0, 0) for i in range(80)]
    by_name = original_sampling(reals + fakes)
    listed = {f'fake{i:03d}': rank for rank, i in enumerate(reversed(range(80)))}   # a file system's order
    by_listdir = original_sampling(reals + fakes, listed)
    assert len(by_name) == len(by_listdir) == 2 + 60                   # at most 30 fakes per real either way
    assert [f[0] for f in by_name[2:4]] == ['fake000', 'fake001']
    assert [f[0] for f in by_listdir[2:4]] == ['fake079', 'fake078']
    assert {f[0] for f in by_name[2:]} != {f[0] for f in by_listdir[2:]}


def test_make_splits_refuses_parts_that_cannot_measure_and_reports_categories(tmp_path, capsys):
    root = tmp_path / 'FAVC'
    fake_avceleb_layout(root)
    assert make_splits.main(['--dataroot', str(root), '--out', str(tmp_path / 'f.json'), '--ratios', '0.6', '0.2',
                             '0.2']) == 0
    printed = capsys.readouterr().out
    assert printed.count('fakes per category: FakeVideo-RealAudio') == 3     # each part reports its fakes
    for fake in (root / 'fake').iterdir():                                   # now no part can hold a fake
        fake.unlink()
    out = tmp_path / 'reals_only.json'
    assert make_splits.main(['--dataroot', str(root), '--out', str(out), '--ratios', '0.6', '0.2', '0.2']) == 2
    err = capsys.readouterr().err
    assert 'no real or no fake in train' in err and '--allow_empty' in err and not out.exists()
    assert make_splits.main(['--dataroot', str(root), '--out', str(out), '--ratios', '0.6', '0.2', '0.2',
                             '--allow_empty']) == 0 and out.exists()


def test_a_validation_part_of_one_class_warns_and_best_follows_the_validation_loss(pretrained, sample_root,
                                                                                    tmp_path, caplog):
    import logging
    root = dfdc(sample_root)
    reals = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'real')))
    fakes = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'fake')))
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': reals[:2] + fakes[:3], 'val': reals[2:], 'test': reals[2:] + fakes[3:]}))
    caplog.set_level(logging.WARNING)
    assert train_DF.main(['--dataroot', root, '--dataset_mode', 'DFDC', '--split_file', str(split),
                          '--pretrained_name', 'pre', '--pretrained_epoch', 'latest', '--checkpoints_dir',
                          str(pretrained / 'ck'), '--gpu_ids', '-1', '--num_threads', '0', '--batch_size', '2',
                          '--n_negatives', '2', '--n_epochs', '2', '--n_epochs_decay', '0', '--display_id', '0',
                          '--bn_recalib_batches', '0', '--name', 'oneclass']) == 0
    warned = [r.getMessage() for r in caplog.records if 'validation set holds' in r.getMessage()]
    assert len(warned) == 1 and 'not measurable' in warned[0] and 'validation loss' in warned[0]
    folder = pretrained / 'ck' / 'oneclass'
    assert (folder / 'best_net_G_audio.pth').is_file()              # chosen by the validation loss
    _, meta = read_checkpoint(str(folder / 'best_net_G_audio.pth'))
    assert meta['val']['auc'] is None or not np.isfinite(meta['val']['auc'])
    assert np.isfinite(meta['val']['val_loss'])
    log = (folder / 'loss_log.txt').read_text()
    assert 'not measurable (only reals' in log and 'nan' not in log.lower()
    _, summary = run_test(pretrained, root, '--epoch', 'best', '--split_file', str(split), '--results_tag',
                          'best_of_one_class', name='oneclass')    # best_* exists, so test_DF --epoch best works
    assert summary['epoch'] == 'best' and summary['n_real'] > 0 and summary['n_fake'] > 0


def test_make_splits_stratified_by_category_puts_every_category_in_every_part(tmp_path, capsys):
    root = tmp_path / 'FAVC'
    kinds = ('FakeVideo-RealAudio', 'RealVideo-FakeAudio', 'FakeVideo-FakeAudio')
    fake_avceleb_layout(root, n_ids=30, kinds=kinds)
    out = tmp_path / 'split.json'
    assert make_splits.main(['--dataroot', str(root), '--out', str(out), '--ratios', '0.6', '0.2', '0.2',
                             '--stratify', 'category']) == 0
    split = json.loads(out.read_text())
    categories = make_splits.video_categories(str(root))
    for part in ('train', 'val', 'test'):
        assert {categories[v] for v in split[part] if not categories[v].startswith('RealVideo-Real')} == set(kinds)
    assert split['stratified']['missing'] == []
    assert 'every part holds reals and fakes of every category' in capsys.readouterr().out
    for part in ('val', 'test'):      # still identity-disjoint
        assert not set(split['identities'][part]) & set(split['identities']['train'])


@pytest.mark.parametrize('folder', ['DFDC', 'FakeAVCeleb'])
def test_the_default_split_of_each_sample_set_measures_val_and_test(tmp_path, capsys, folder):
    """The sample sets as make_sample_data makes them by default (their planned names and identities), split with
    make_splits' defaults: at least 10 reals and 10 fakes in val and test, every fake category there, none dropped."""
    from scripts import make_sample_data
    plan = make_sample_data.plan_test_sets(make_sample_data.build_parser().parse_args([]))[folder]
    index_file, header = ('videos.csv', 'label') if folder == 'DFDC' else ('categories.csv', 'category')
    names_only_layout(tmp_path / folder, {v.name: v.folder for v in plan}, index_file,
                      [['video', header, 'face_identity', 'voice_identity']]
                      + [[v.name, v.kind, f'id{v.face_id:05d}', f'id{v.voice_id:05d}'] for v in plan])
    out = tmp_path / 'split.json'
    assert make_splits.main(['--dataroot', str(tmp_path / folder), '--out', str(out)]) == 0
    assert 'warning' not in capsys.readouterr().out
    split = json.loads(out.read_text())
    kinds = {v.name: v.kind for v in plan}
    assert split['dropped'] == []
    for part in ('val', 'test'):
        held = collections.Counter('real' if kinds[v] in ('real', 'RealVideo-RealAudio') else 'fake'
                                   for v in split[part])
        assert held['real'] >= 10 and held['fake'] >= 10, (part, held)
        assert {kinds[v] for v in split[part]} == set(kinds.values())          # every category in every part
    assert make_splits.main(['--dataroot', str(tmp_path / folder), '--out', str(out), '--stratify', 'category']) == 0
    assert json.loads(out.read_text())['stratified'] == {'seed_used': 20, 'missing': []}   # the first shuffle does


def test_the_sample_sets_are_rendered_as_planned(sample_root):
    from scripts import make_sample_data
    args = make_sample_data.build_parser().parse_args(['--dfdc_ids', '4', '--dfdc_reals', '1',
                                                       '--fakeavceleb_ids', '2'])      # conftest's sample_root
    for folder, index_file in (('DFDC', 'videos.csv'), ('FakeAVCeleb', 'categories.csv')):
        plan = make_sample_data.plan_test_sets(args)[folder]
        rows = read_csv(os.path.join(str(sample_root), folder, index_file))
        assert [(r['video'], r['face_identity'], r['voice_identity']) for r in rows] == \
            [(v.name, f'id{v.face_id:05d}', f'id{v.voice_id:05d}') for v in plan]
        for video in plan:
            assert os.path.isfile(os.path.join(str(sample_root), folder, video.folder, video.name + '.jpg'))


def test_make_splits_keeps_linked_identities_together():
    """Identities linked by fakes go out group by group, a cut inside a group moves to its edge: nothing dropped;
    a group too large for a part is still cut, and its straddling fakes dropped."""
    videos, identities = {}, {}
    for g in range(15):                          # 15 groups of 4 people; each fakes the next one's face
        group = [f'p{g:02d}{k}' for k in range(4)]
        for k, person in enumerate(group):
            videos[f'real_{person}'], identities[f'real_{person}'] = 1, {person}
            videos[f'fake_{person}'], identities[f'fake_{person}'] = 0, {person, group[(k + 1) % 4]}
    split = make_splits.make_splits(videos, identities, [0.7, 0.1, 0.2], 20)
    assert split['dropped'] == []
    sizes = [len(split['identities'][p]) for p in ('train', 'val', 'test')]
    assert sum(sizes) == 60 and all(abs(a - b) <= 3 for a, b in zip(sizes, (42, 6, 12)))
    assert all(n % 4 == 0 for n in sizes)                          # whole groups
    chain = {f'v{i}': {f'q{i:02d}', f'q{i + 1:02d}'} for i in range(29)}   # one group of 30 people
    split = make_splits.make_splits({v: 0 for v in chain}, chain, [0.7, 0.1, 0.2], 20)
    assert [len(split['identities'][p]) for p in ('train', 'val', 'test')] == [21, 3, 6] and split['dropped']


def test_results_of_each_part_and_protocol_are_kept_apart(pretrained, tmp_path):
    """On a generated sample set split by make_splits: the whole set, the test part, the val part and the original
    protocol write four results folders, and the run's results index lists them all."""
    from scripts import make_sample_data
    assert make_sample_data.main(['--out', str(tmp_path), '--sets', 'dfdc', '--dfdc_ids', '16', '--dfdc_reals', '1',
                                  '--group_size', '2', '--image_size', '32', '--workers', '1']) == 0
    root, split = tmp_path / 'DFDC', tmp_path / 'split.json'
    assert make_splits.main(['--dataroot', str(root), '--out', str(split), '--ratios', '0.5', '0.25', '0.25']) == 0
    parts = json.loads(split.read_text())
    runs = {'DFDC_all_sound_latest': ((), 32),
            'DFDC_test_sound_latest': (('--split_file', str(split)), len(parts['test'])),
            'DFDC_val_sound_latest': (('--split_file', str(split), '--phase', 'val'), len(parts['val'])),
            'DFDC_test_original_latest': (('--split_file', str(split), '--protocol', 'original'), None)}
    for tag, (extra, n_videos) in runs.items():
        folder, summary = run_test(pretrained, root, *extra)
        assert folder.name == tag
        if n_videos is not None:
            assert summary['n_videos'] == n_videos
    index = (pretrained / 'res' / 'pre' / 'index.html').read_text()
    for tag in runs:
        assert json.loads((pretrained / 'res' / 'pre' / tag / 'summary.json').read_text())
        assert f'{tag}/index.html' in index


def test_window_k_is_scored_with_the_voice_of_window_k(windowed):
    """Every pair of a windowed video holds window k's face and window k's voice, read back from the files the
    layout names (the donors make the windows of one video differ)."""
    from data import find_dataset_using_name
    from data.audio import load_voice
    from options.test_options import TestOptions
    opt = TestOptions().parse(['--dataroot', str(windowed), '--dataset_mode', 'DFDC', '--checkpoints_dir', 'unused',
                               '--gpu_ids', '-1', *TINY], save=False, verbose=False)
    dataset = find_dataset_using_name('DFDC')(opt, 'test')
    seen = 0
    for index in range(len(dataset)):
        item = dataset[index]
        folder = os.path.join(str(windowed), 'real' if item['label'] == 1 else 'fake', item['video'])
        if not os.path.isdir(folder):
            continue
        k = int(item['window'])
        face = dataset.load_face(os.path.join(folder, f'{k}.jpg'))
        voice = load_voice(os.path.join(str(windowed), 'audio_feat', item['video'], f'{k}.npy'), opt.n_mels,
                           opt.n_frames).astype(item['voice'].dtype)
        assert np.array_equal(item['face'], face) and np.array_equal(item['voice'], voice), (item['video'], k)
        others = [j for j in range(3) if j != k]
        assert not any(np.array_equal(item['voice'], load_voice(os.path.join(
            str(windowed), 'audio_feat', item['video'], f'{j}.npy'), opt.n_mels, opt.n_frames).astype(
            item['voice'].dtype)) for j in others)   # the windows' voices differ, so a swap would show
        seen += 1
    assert seen == 4 * 3

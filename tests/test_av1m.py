"""AV-Deepfake1M and LAV-DF: window labels, segment proposals, the localisation metrics (by hand, and against the
avdeepfake1m SDK where its wheel can be fetched), the prep script, and test_DF.py's localisation on a prepared set."""
import csv
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import test_DF
import train_DF
from data import segments
from scripts import prep_av1m
from tests.conftest import QUICK, TINY, vox
from util import localisation as loc


# ------------------------------------------------------------------------------------------------ window labels

def test_a_window_half_inside_a_fake_segment_is_fake_with_half_its_length_overlapping():
    assert loc.window_label(0.0, 3.0, [[1.5, 4.0]]) == (0, 1.5, 0.5)
    assert loc.window_label(0.0, 3.0, [[3.0, 4.0]]) == (1, 0.0, 0.0)       # touching the end: no overlap
    assert loc.window_label(2.0, 5.0, [[0.0, 1.0], [6.0, 7.0]])[0] == 1
    assert loc.window_label(0.0, 3.0, [[1.5, 4.0]], min_overlap=1.5)[0] == 1  # not above the minimum
    assert loc.window_label(0.0, 3.0, [[1.5, 4.0]], min_overlap=1.4)[0] == 0


def test_overlapping_segments_are_merged_before_the_overlap_is_measured():
    assert loc.merge([[2, 3], [1, 2.5], [5, 6], [4, 4]]) == [[1.0, 3.0], [5.0, 6.0]]
    assert loc.overlap(0.0, 3.0, [[1.0, 2.0], [1.5, 2.5]]) == pytest.approx(1.5)   # not 2.0
    assert loc.overlap(0.0, 10.0, [[1.0, 2.0], [3.0, 4.0]]) == pytest.approx(2.0)


def test_window_spans_follow_the_grid_and_stop_at_the_video_end():
    assert segments.window_span(0, 1.0, 3.0) == (0.0, 3.0)
    assert segments.window_span(4, 0.5, 3.0, 4.5) == (2.0, 4.5)
    from prep.video import grid_starts
    assert grid_starts(7.5, 1.0) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert grid_starts(2.0, 1.0) == [0.0]
    assert grid_starts(6.0, 1.5) == [0.0, 1.5, 3.0]


# ------------------------------------------------------------------------------------------------ proposals

def test_a_raised_stretch_of_window_scores_is_the_top_proposal():
    spans = [(k, k + 1) for k in range(10)]
    fakeness = [0.0] * 10
    fakeness[3] = fakeness[4] = 1.0
    found = loc.propose(spans, fakeness, thresholds=[0.5])
    assert found[0] == [pytest.approx(1.0), 3.0, 5.0]     # mean 1 inside, 0 outside
    assert [p[1:] for p in found] == [[3.0, 5.0], [0.0, 10.0]]   # and the whole covered span
    assert found[1][0] == pytest.approx(0.2)


def test_overlapping_windows_average_where_they_meet_and_proposals_are_ranked():
    starts, curve = loc.fakeness_curve([(0, 3), (1, 4), (2, 5)], [0.0, 3.0, 6.0], step=0.5)
    assert starts.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert curve.tolist() == [0.0, 0.0, 1.5, 1.5, 3.0, 3.0, 4.5, 4.5, 6.0, 6.0]
    # fakeness 0, 0, 6: the curve is 0 to 2 s, 2 from 2 to 3 s (a third of 6), 3 from 3 to 4 s, 6 from 4 to 5 s
    found = loc.propose([(0, 3), (1, 4), (2, 5)], [0.0, 0.0, 6.0], thresholds=[1.0, 2.5, 5.0], step=0.5)
    assert [p[1:] for p in found] == [[4.0, 5.0], [3.0, 5.0], [2.0, 5.0], [0.0, 5.0]]
    assert [p[0] for p in found] == pytest.approx([6 - 10 / 8, 4.5 - 4 / 6, 22 / 6, 2.2])
    assert len(loc.propose([(0, 3), (1, 4), (2, 5)], [0.0, 0.0, 6.0], [1.0, 2.5, 5.0], 0.5, max_proposals=2)) == 2


def test_thresholds_are_shared_by_the_videos_of_a_set():
    # a video whose windows are all less fake than the other video's gets only its whole span
    found = loc.propose_all({'calm': ([(0, 1), (1, 2)], [0.0, 0.1]), 'odd': ([(0, 1), (1, 2)], [1.0, 5.0])},
                            levels=(0.5, 0.7))   # thresholds 0.55 and 1 over the two curves
    assert [p[1:] for p in found['calm']] == [[0.0, 2.0]]
    assert [1.0, 2.0] in [p[1:] for p in found['odd']]


# ------------------------------------------------------------------------------------------------ metrics

def test_ap_by_hand():
    # two videos, one segment each; ranked: TP (0.9), TP (0.8), FP (0.7): the curve holds recall 0.5 and 1 at
    # precision 1, so the area from recall 0.5 to 1 is 0.5 (the SDK counts nothing below the top proposal's recall)
    truths = {'a': [[0, 1]], 'b': [[0, 1]]}
    proposals = {'a': [[0.9, 0, 1]], 'b': [[0.8, 0, 1], [0.7, 5, 6]]}
    assert loc.average_precision(proposals, truths, 0.5) == pytest.approx(0.5)
    # the false positive ranked first: recall 0, then 1/2 at precision 1/2, then 1 at precision 2/3; the curve now
    # starts at recall 0 and its interpolated precision is 2/3 from 0 to 1
    proposals = {'a': [[0.9, 0, 1]], 'b': [[0.8, 0, 1], [0.95, 5, 6]]}
    assert loc.average_precision(proposals, truths, 0.5) == pytest.approx(2 / 3)
    # IoU exactly at the threshold is not a hit: [0, 1] against [0, 2] has IoU 0.5
    assert loc.average_precision({'a': [[0.9, 0, 1]]}, {'a': [[0, 2]]}, 0.5) == 0.0
    assert loc.average_precision({'a': [[0.9, 0, 1]], 'b': [[0.8, 0, 1]]}, {'a': [[0, 2]], 'b': [[0, 1]]},
                                 0.49) == pytest.approx(0.5)
    # one proposal cannot match two segments
    assert loc._matches([[0.9, 0, 2]], [[0, 2], [0, 2]], 0.5).tolist() == [True]
    assert loc._matches([[0.9, 0, 2], [0.8, 0, 2]], [[0, 2], [0, 2]], 0.5).tolist() == [True, True]
    assert loc.average_precision({'a': [[0.9, 0, 1]]}, {'a': []}, 0.5) is None


def test_ar_by_hand():
    # the first proposal hits the first segment exactly, the second hits the other at IoU 0.7
    truths = {'a': [[0, 1], [4, 5]], 'b': [[0, 1]]}
    proposals = {'a': [[0.9, 0, 1], [0.8, 4, 5.3], [0.1, 9, 10]]}    # b has none: it counts nothing (the SDK's rule)
    assert loc.iou([[4, 5.3]], [[4, 5]])[0, 0] == pytest.approx(1 / 1.3)
    assert loc.average_recall(proposals, truths, 1) == pytest.approx(0.5)
    # at 2 proposals: both found at IoU thresholds 0.5 .. 0.75 (1/1.3 = 0.769), one above
    assert loc.average_recall(proposals, truths, 2) == pytest.approx((6 * 1.0 + 4 * 0.5) / 10)
    assert loc.average_recall(proposals, truths, 50) == loc.average_recall(proposals, truths, 2)
    assert loc.average_recall({}, truths, 5) is None
    found = loc.ap_ar(proposals, truths)
    assert list(found['ap']) == [0.5, 0.75, 0.9, 0.95] and list(found['ar']) == [50, 30, 20, 10, 5]


def sdk_module(tmp_path_factory):
    """The avdeepfake1m SDK's compiled metrics, loaded from its wheel without its other dependencies (Lightning,
    OpenCV, numpy < 2); None where the wheel cannot be fetched or does not fit this Python."""
    folder = tmp_path_factory.mktemp('sdk')
    done = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-q', '-d',
                           str(folder), 'avdeepfake1m==0.0.4'], capture_output=True, text=True, timeout=300)
    wheels = glob.glob(str(folder / '*.whl'))
    if done.returncode or not wheels:
        return None
    shutil.unpack_archive(wheels[0], str(folder / 'x'), format='zip')
    found = glob.glob(str(folder / 'x' / 'avdeepfake1m' / '_evaluation*.so'))
    if not found:
        return None
    spec = importlib.util.spec_from_file_location('_evaluation', found[0])
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:
        return None
    return module


def random_case(rng, videos=25):
    truths, proposals = {}, {}
    for v in range(videos):
        n = int(rng.integers(0, 4))
        truths[f'v{v}.mp4'] = sorted([round(s, 2), round(s + d, 2)]
                                     for s, d in zip(rng.uniform(0, 8, n), rng.uniform(0.2, 2, n)))
        k = int(rng.integers(1, 15))
        rows = [[round(float(c), 3), round(s, 2), round(s + d, 2)]
                for c, s, d in zip(rng.uniform(0, 1, k), rng.uniform(0, 8, k), rng.uniform(0.2, 3, k))]
        proposals[f'v{v}.mp4'] = sorted(rows, key=lambda r: -r[0])
    return truths, proposals


def test_metrics_agree_with_the_avdeepfake1m_sdk(tmp_path, tmp_path_factory):
    sdk = sdk_module(tmp_path_factory)
    if sdk is None:
        pytest.skip('the avdeepfake1m 0.0.4 wheel cannot be fetched here, or does not fit this Python')
    rng = np.random.default_rng(3)
    for trial in range(6):
        truths, proposals = random_case(rng)
        (tmp_path / 'p.json').write_text(json.dumps(proposals))
        (tmp_path / 'm.json').write_text(json.dumps([{'file': k, 'fake_segments': v} for k, v in truths.items()]))
        theirs = sdk.ap_ar_1d(str(tmp_path / 'p.json'), str(tmp_path / 'm.json'), 'file', 'fake_segments', 1.0,
                              list(loc.AP_IOU), list(loc.AR_PROPOSALS), list(loc.AR_IOU))
        ours = loc.ap_ar(proposals, truths)
        assert [round(v, 5) for v in theirs['ap'].values()] == [round(v, 5) for v in ours['ap'].values()], trial
        assert {n: round(v, 5) for n, v in theirs['ar'].items()} == {n: round(v, 5) for n, v in ours['ar'].items()}


# ------------------------------------------------------------------------------------------------ the prep script

def read_csv(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope='module')
def prepared(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('av1m') / 'AV1M'
    assert prep_av1m.main(['--src', str(sample_root / 'AV1M_raw'), '--out', str(out), '--detector', 'none',
                           '--workers', '1']) == 0
    return out


def test_prep_writes_the_layout_the_labels_and_the_segments(prepared, sample_root):
    published = json.loads((sample_root / 'AV1M_raw' / 'val_metadata.json').read_text())
    data = segments.load(str(prepared))
    assert len(data['videos']) == len(published) == 4 and data['hop'] == 1.0 and data['split'] == 'val'
    for entry in published:
        name = prep_av1m.video_name(entry['file'])
        info = data['videos'][name]
        assert info['fake_segments'] == entry['fake_segments'] and info['modify_type'] == entry['modify_type']
        folder = 'real' if entry['modify_type'] == 'real' else 'fake'
        frames = sorted(os.listdir(prepared / folder / name))
        assert frames and all((prepared / 'audio_feat' / name / (f[:-4] + '.npy')).is_file() for f in frames)
    rows = read_csv(prepared / 'windows.csv')
    assert rows
    for row in rows:
        info = data['videos'][row['video']]
        start, end = float(row['start']), float(row['end'])
        assert start == pytest.approx(int(row['window']) * 1.0)
        expected = loc.window_label(start, end, info['fake_segments'])
        assert int(row['label']) == expected[0] and float(row['overlap']) == pytest.approx(expected[1], abs=1e-3)
    fakes = {v for v, info in data['videos'].items() if info['label'] == 0}
    assert fakes and all(any(r['label'] == '0' for r in rows if r['video'] == v) for v in fakes)
    assert all(r['label'] == '1' for r in rows if data['videos'][r['video']]['label'] == 1)
    categories = read_csv(prepared / 'categories.csv')
    assert {c['category'] for c in categories} <= set(segments.MODIFY_TYPES) and len(categories) == 4
    # a second run resumes: nothing to do
    again = subprocess.run([sys.executable, '-m', 'scripts.prep_av1m', '--src', str(sample_root / 'AV1M_raw'),
                            '--out', str(prepared), '--detector', 'none', '--workers', '1'],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and '+4 already done' in again.stdout


def test_lavdf_metadata_is_read_as_well(sample_root, tmp_path):
    src = tmp_path / 'LAV-DF'
    (src / 'test').mkdir(parents=True)
    published = json.loads((sample_root / 'AV1M_raw' / 'val_metadata.json').read_text())
    entries = []
    for i, entry in enumerate(published):
        shutil.copy(sample_root / 'AV1M_raw' / 'val' / entry['file'], src / 'test' / f'{i:06d}.mp4')
        video, audio = entry['modify_type'] in ('visual_modified', 'both_modified'), \
            entry['modify_type'] in ('audio_modified', 'both_modified')
        entries.append({'file': f'test/{i:06d}.mp4', 'split': 'test', 'modify_video': video, 'modify_audio': audio,
                        'n_fakes': len(entry['fake_segments']), 'fake_periods': entry['fake_segments'],
                        'duration': entry['video_frames'] / 25})
    (src / 'metadata.min.json').write_text(json.dumps(entries))
    out = tmp_path / 'out'
    assert prep_av1m.main(['--src', str(src), '--out', str(out), '--detector', 'none', '--workers', '1',
                           '--voices', 'mel']) == 0
    data = segments.load(str(out))
    assert data['flavour'] == 'lavdf' and data['split'] == 'test'
    assert [data['videos'][f'test__{i:06d}']['modify_type'] for i in range(4)] == \
        [e['modify_type'] for e in published]


@pytest.mark.parametrize('entry, message', [
    ({'file': '../outside.mp4', 'fake_segments': []}, 'would leave'),
    ({'file': '/etc/hostname', 'fake_segments': []}, 'would leave'),
    ({'file': 'a.mp4', 'fake_segments': [[2.0, 1.0]]}, 'not 0 <= start < end'),
    ({'file': 'a.mp4', 'fake_segments': [[0.0, 'x']]}, 'not a \\[start, end\\] pair'),
    ({'file': 'a.mp4', 'fake_segments': [], 'modify_type': 'audio_modified'}, 'with 0 fake segment'),
    ({'file': 'a.mp4', 'fake_periods': [[1, 2]], 'modify_type_missing': 1, 'modify_video': True}, None),
    ({'no_file': 1}, 'expected an object with a "file" path'),
])
def test_prep_refuses_metadata_that_escapes_or_is_malformed(tmp_path, capsys, entry, message):
    src = tmp_path / 'src'
    (src / 'val').mkdir(parents=True)
    (src / 'val_metadata.json').write_text(json.dumps([entry]))
    status = prep_av1m.main(['--src', str(src), '--out', str(tmp_path / 'out'), '--workers', '1'])
    err = capsys.readouterr().err
    if message is None:   # LAV-DF fields in an AV-Deepfake1M-named file: read, the video is missing: nothing usable
        assert status == 1 and 'Traceback' not in err
        return
    assert status == 2 and err.startswith('error:') and 'Traceback' not in err
    assert __import__('re').search(message, err), err


def test_prep_refuses_a_link_out_of_src_and_trimming(tmp_path, capsys, sample_root):
    src = tmp_path / 'src'
    (src / 'val').mkdir(parents=True)
    os.symlink('/etc', src / 'val' / 'escape')
    (src / 'val_metadata.json').write_text(json.dumps([{'file': 'escape/hostname', 'fake_segments': []}]))
    assert prep_av1m.main(['--src', str(src), '--out', str(tmp_path / 'o')]) == 2
    assert 'would leave' in capsys.readouterr().err
    assert prep_av1m.main(['--src', str(sample_root / 'AV1M_raw'), '--out', str(tmp_path / 'o2'),
                           '--trim_leading_silence']) == 2
    assert 'timeline' in capsys.readouterr().err
    assert prep_av1m.main(['--src', str(sample_root / 'AV1M_raw'), '--out', str(tmp_path / 'o3'),
                           '--split', '../val']) == 2
    assert 'a split is a plain name' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ test_DF.py

@pytest.fixture(scope='module')
def checkpoint(sample_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('av1m_ck')
    assert train_DF.main(['--dataroot', vox(sample_root), '--name', 'av', *TINY, '--batch_size', '4',
                          '--negatives', 'sampled',
                          '--n_epochs', '1', '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1',
                          '--no_flip', '--display_id', '0', '--checkpoints_dir', str(base / 'ck'), *QUICK]) == 0
    return base


def test_test_DF_localises_the_fake_segments_of_a_prepared_set(prepared, checkpoint, capsys):
    base = checkpoint
    assert test_DF.main(['--dataroot', str(prepared), '--name', 'av', '--checkpoints_dir', str(base / 'ck'),
                         '--results_dir', str(base / 'res'), '--gpu_ids', '-1', '--num_threads', '0']) == 0
    out = capsys.readouterr().out
    assert 'localisation: AP@0.5' in out and 'windows labelled by their fake segments' in out
    folder = base / 'res' / 'av' / 'AV1M_all_sound_latest'
    summary = json.loads((folder / 'summary.json').read_text())
    data = segments.load(str(prepared))
    assert summary['localisation']['n_segments'] == sum(len(v['fake_segments']) for v in data['videos'].values())
    assert set(summary['localisation']['ap']) == {'0.5', '0.75', '0.9', '0.95'}
    assert set(summary['video_level']['categories']) <= set(segments.MODIFY_TYPES) - {'real'}
    assert all(0 <= row['ap_fake'] <= 1 for row in summary['video_level']['categories'].values())
    windows = read_csv(folder / 'windows.csv')
    assert len(windows) == summary['n_windows']
    assert sum(r['segment_label'] == '0' for r in windows) == summary['window_level']['n_fake']
    # the SDK's formats: the proposals keyed by the published file, the truth as a metadata list
    proposals = json.loads((folder / 'proposals.json').read_text())
    truth = json.loads((folder / 'segments_truth.json').read_text())
    assert set(proposals) == {t['file'] for t in truth} == {v['file'] for v in data['videos'].values()}
    recomputed = loc.ap_ar(proposals, {t['file']: t['fake_segments'] for t in truth})
    assert [round(v, 6) for v in recomputed['ap'].values()] == \
        [round(v, 6) for v in summary['localisation']['ap'].values()]
    assert 'temporal localisation' in (folder / 'index.html').read_text()


def test_segments_of_another_preparation_are_refused(prepared, checkpoint, tmp_path, capsys):
    copy = tmp_path / 'AV1M'
    shutil.copytree(prepared, copy)
    data = json.loads((copy / 'segments.json').read_text())
    data['videos'].pop(sorted(data['videos'])[0])
    (copy / 'segments.json').write_text(json.dumps(data))
    assert test_DF.main(['--dataroot', str(copy), '--name', 'av', '--checkpoints_dir', str(checkpoint / 'ck'),
                         '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0']) == 2
    assert 'written for another preparation' in capsys.readouterr().err
    (copy / 'segments.json').write_text('{"format": "vfd-segments", "version": 1, "hop": -1, "videos": {}}')
    assert test_DF.main(['--dataroot', str(copy), '--name', 'av', '--checkpoints_dir', str(checkpoint / 'ck'),
                         '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0']) == 2
    assert '"hop" must be a positive number' in capsys.readouterr().err
    data['min_overlap'] = 'some'
    (copy / 'segments.json').write_text(json.dumps(data))
    assert test_DF.main(['--dataroot', str(copy), '--name', 'av', '--checkpoints_dir', str(checkpoint / 'ck'),
                         '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0']) == 2
    assert '"min_overlap" must be a number' in capsys.readouterr().err

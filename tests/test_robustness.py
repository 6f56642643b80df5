"""Robustness tests (``test_DF.py --perturb``): each perturbation changes its input by the expected amount and repeats
with its seed; test_DF.py scores the set under each condition; scripts/evaluate.py writes the cross-dataset table."""
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

import test_DF
from data import perturb, segments
from data.inputs import read_wav, wav_bytes
from scripts import evaluate, make_sample_data, prep_av1m
from tests.conftest import dfdc


def face():
    """A drawn sample face (128 pixels): edges and flat areas, as the codecs meet them."""
    traits = make_sample_data.identity_traits(0, 1)
    return np.asarray(make_sample_data.draw_face(traits, np.random.default_rng(0), 128))


def voice():
    traits = make_sample_data.identity_traits(0, 1)
    return make_sample_data.synth_voice(traits, np.random.default_rng(0), duration=3.0)


def error(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def snr_db(clean, other):
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((other - clean) ** 2)))


def test_conditions_parse_and_refuse_what_is_not_a_perturbation():
    assert perturb.parse('jpeg:50, h264:30+snr:10,') == [(('jpeg', 50),), (('h264', 30), ('snr', 10.0))]
    assert perturb.name((('h264', 30), ('snr', 10.0))) == 'h264:30+snr:10'
    assert perturb.parse('') == []
    for bad, message in (('jpeg', 'expected KIND:LEVEL'), ('gamma:2', 'unknown kind'), ('jpeg:0', r'\[1, 100\]'),
                         ('jpeg:50.5', 'whole number'), ('h264:52', r'\[0, 51\]'), ('scale:1', 'shrinks'),
                         ('blur:1e400', 'must be'), ('blur:nan', 'KIND:LEVEL'), ('jpeg:50,jpeg:50', 'listed twice'),
                         ('jpeg:50+jpeg:60', 'appears twice')):
        with pytest.raises(perturb.PerturbError, match=message):
            perturb.parse(bad)


@pytest.mark.parametrize('kind, mild, strong', [('jpeg', 95, 10), ('h264', 15, 45), ('scale', 0.75, 0.25),
                                                ('blur', 0.5, 3.0), ('noise', 2.0, 20.0)])
def test_each_picture_perturbation_changes_the_face_more_at_a_stronger_level(kind, mild, strong):
    rgb = face()
    rng = np.random.default_rng(0)
    soft, hard = perturb.perturb_face(rgb, kind, mild, rng), perturb.perturb_face(rgb, kind, strong, rng)
    assert soft.shape == hard.shape == rgb.shape and soft.dtype == hard.dtype == np.uint8
    assert 0 < error(rgb, soft) < error(rgb, hard)


def test_picture_perturbations_by_their_definition():
    rgb = face()
    noisy = perturb.perturb_face(rgb, 'noise', 10.0, np.random.default_rng(1)).astype(np.float64) - rgb
    unclipped = (rgb > 40) & (rgb < 215)
    assert noisy[unclipped].std() == pytest.approx(10.0, abs=0.5) and abs(noisy[unclipped].mean()) < 0.3
    blurred = perturb.perturb_face(rgb, 'blur', 2.0, None).astype(np.float64)
    detail = lambda x: np.abs(np.diff(x, axis=1)).mean()    # noqa: E731  high frequencies: what a blur removes
    assert detail(blurred) < 0.6 * detail(rgb.astype(np.float64))
    assert perturb.perturb_face(rgb, 'blur', 0.0, None) is rgb
    # JPEG: the same as PIL's own encoder at that quality
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format='JPEG', quality=30)
    assert np.array_equal(perturb.perturb_face(rgb, 'jpeg', 30, None), np.asarray(Image.open(buffer).convert('RGB')))
    # H.264 on an odd-sized picture keeps its size
    odd = rgb[:101, :99]
    assert perturb.perturb_face(np.ascontiguousarray(odd), 'h264', 23, None).shape == odd.shape


def test_voice_noise_lands_at_the_asked_snr_and_codecs_are_aligned_with_the_input():
    clean = voice()
    for level in (0.0, 10.0, 20.0):
        noisy = perturb.perturb_voice(clean, 'snr', level, np.random.default_rng(2))
        assert snr_db(clean, noisy) == pytest.approx(level, abs=0.3)
    for codec in ('mp3', 'aac'):
        low, high = (perturb.perturb_voice(clean, codec, k, None) for k in (16, 128))
        assert len(low) == len(high) == len(clean)
        # aligned: a shift of even one sample would leave an SNR near 0 dB on this voice
        assert snr_db(clean, high) > 15 and snr_db(clean, low) < snr_db(clean, high)


def test_the_seed_repeats_a_perturbation_and_another_seed_does_not(tmp_path):
    rgb = face()
    Image.fromarray(rgb).save(tmp_path / 'f.png')
    (tmp_path / 'v.wav').write_bytes(wav_bytes(voice()))
    np.save(tmp_path / 'v.npy', np.zeros((512, 301), np.float32))
    read = lambda path: open(path, 'rb').read()    # noqa: E731
    condition = (('noise', 5.0), ('snr', 10.0))
    first, again, other = (perturb.PerturbedReader(read, condition, seed) for seed in (0, 0, 1))
    for name in ('f.png', 'v.wav', 'v.npy'):
        path = str(tmp_path / name)
        assert first(path) == again(path)
        assert first(path) != other(path) and first(path) != read(path)
    # a mel comes from the perturbed WAV beside it, by the stored mels' recipe
    mel = np.load(io.BytesIO(first(str(tmp_path / 'v.npy'))))
    assert mel.shape == (512, 301) and mel.max() == 0.0
    noisy = read_wav(first(str(tmp_path / 'v.wav')), 'v.wav')
    assert snr_db(read_wav(read(str(tmp_path / 'v.wav')), 'v.wav'), noisy) == pytest.approx(10.0, abs=0.5)
    # picture perturbations leave voices alone and the other way round
    faces_only = perturb.PerturbedReader(read, (('jpeg', 40),), 0)
    assert faces_only(str(tmp_path / 'v.wav')) == read(str(tmp_path / 'v.wav'))


def test_a_voice_perturbation_without_the_wav_says_what_is_missing(tmp_path):
    from data import DatasetError
    np.save(tmp_path / 'v.npy', np.zeros((512, 301), np.float32))
    reader = perturb.PerturbedReader(lambda p: open(p, 'rb').read(), (('snr', 10.0),), 0)
    with pytest.raises(DatasetError, match='need the 16 kHz WAV beside each mel'):
        reader(str(tmp_path / 'v.npy'))


# ------------------------------------------------------------------------------------------------ test_DF.py

@pytest.fixture(scope='module')
def trained(sample_root, tmp_path_factory):
    """A tiny model trained for one epoch on the sample set: <base>/ck/rb."""
    import train_DF
    from tests.conftest import QUICK, TINY, vox
    base = tmp_path_factory.mktemp('robust')
    assert train_DF.main(['--dataroot', vox(sample_root), '--name', 'rb', *TINY, '--batch_size', '4',
                          '--negatives', 'sampled', '--n_epochs', '1', '--n_epochs_decay', '0', '--num_threads', '0',
                          '--gpu_ids', '-1', '--no_flip', '--display_id', '0', '--checkpoints_dir',
                          str(base / 'ck'), *QUICK]) == 0
    return base


def test_test_DF_scores_each_condition_against_the_clean_set(sample_root, trained, capsys):
    base = trained
    argv = ['--dataroot', dfdc(sample_root), '--name', 'rb', '--checkpoints_dir', str(base / 'ck'), '--results_dir',
            str(base / 'res'), '--gpu_ids', '-1', '--num_threads', '0']
    assert test_DF.main(argv + ['--perturb', 'noise:40,snr:0']) == 0
    out = capsys.readouterr().out
    assert 'perturbed noise:40: AUC' in out and 'perturbed snr:0: AUC' in out
    folder = base / 'res' / 'rb' / 'DFDC_all_sound_latest'
    summary = json.loads((folder / 'summary.json').read_text())
    rows = {r['condition']: r for r in summary['robustness']}
    assert list(rows) == ['noise:40', 'snr:0'] and summary['test']['perturb'] == 'noise:40,snr:0'
    clean = {r['video']: float(r['score_mean']) for r in csv.DictReader(open(folder / 'video_scores.csv'))}
    for name, row in rows.items():
        scores = {r['video']: float(r['score_mean'])
                  for r in csv.DictReader(open(folder / 'perturbed' / f'{name.replace(":", "-")}.csv'))}
        assert scores.keys() == clean.keys() and scores != clean     # the same videos, scored differently
        assert row['auc_drop'] == pytest.approx(summary['auc'] - row['auc'])
        low, high = row['auc_drop_ci95']
        assert low <= high
    table = list(csv.DictReader(open(folder / 'robustness.csv')))
    assert [r['condition'] for r in table] == ['noise:40', 'snr:0']
    assert 'robustness: the same set under each perturbation' in (folder / 'index.html').read_text()
    # the same run again repeats every figure (seeded perturbations)
    assert test_DF.main(argv + ['--perturb', 'noise:40,snr:0', '--results_tag', 'again']) == 0
    again = json.loads((base / 'res' / 'rb' / 'again' / 'summary.json').read_text())
    assert again['robustness'] == summary['robustness']
    # a clean test of the same set is another test: its results go to another folder, these stay
    assert test_DF.main(argv) == 0
    assert json.loads((folder / 'summary.json').read_text())['robustness'] == summary['robustness']
    [other] = (base / 'res' / 'rb').glob('DFDC_all_sound_latest-*')
    assert 'robustness' not in json.loads((other / 'summary.json').read_text())
    with pytest.raises(SystemExit, match="unknown kind 'gamma'"):
        test_DF.main(argv + ['--perturb', 'gamma:2'])


def test_evaluate_writes_the_cross_dataset_table(sample_root, trained, tmp_path, capsys):
    base = trained
    av1m = tmp_path / 'AV1M'
    assert prep_av1m.main(['--src', str(sample_root / 'AV1M_raw'), '--out', str(av1m), '--detector', 'none',
                           '--workers', '1']) == 0
    common = ['--name', 'rb', '--checkpoints_dir', str(base / 'ck'), '--results_dir', str(base / 'res'),
              '--gpu_ids', '-1', '--num_threads', '0']
    sets = f'favc={sample_root / "FakeAVCeleb"},av1m={av1m},odd={sample_root / "Voxceleb2"}'
    assert evaluate.main(common + ['--sets', sets]) == 1          # one set is not in the DFDC layout
    table = (base / 'res' / 'rb' / 'table.md').read_text()
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith('| Method'))
    assert header.split(' | ')[1:5] == ['FakeAVCeleb AUC', 'FakeAVCeleb AP', 'AV-Deepfake1M AUC', 'AV-Deepfake1M AP']
    row = lines[lines.index(header) + 2].strip('|').split(' | ')
    summaries = {key: json.loads((base / 'res' / 'rb' / f'eval-{key}-latest' / 'summary.json').read_text())
                 for key in ('favc', 'av1m')}
    assert row[1] == f'{100 * summaries["favc"]["auc"]:.1f}' and row[4] == f"{100 * summaries['av1m']['ap_fake']:.1f}"
    assert row[5:7] == ['-', '-']                                  # the set that was not tested
    assert row[7].strip() == f'{50 * (summaries["favc"]["auc"] + summaries["av1m"]["auc"]):.1f}'
    assert 'not tested: ' in table and 'audio_feat is missing' in table
    assert 'trimming unknown (no prep_options.json): its fakes\' leading silence can give them away' in table
    assert 'leading silence not trimmed' in table                 # the AV-Deepfake1M set: prepared, untrimmed
    assert 'FakeVideo-RealAudio' in table and any(k in table for k in segments.MODIFY_TYPES[1:])
    assert 'AP@0.5' in table and (base / 'res' / 'rb' / 'table.html').is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        evaluate.main(common + ['--sets', 'favc'])
    assert 'KEY=FOLDER' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(common + ['--sets', f'favc={av1m}', '--dataroot', 'x'])


def test_the_table_from_summaries_by_hand(tmp_path):
    """The table's sections from two made-up summaries: the row in per cent, the average over measurable sets, the
    protocol of each cell, a set that was not tested."""
    favc = {'auc': 0.8, 'ap_fake': 0.9, 'ap': 0.7, 'eer': 0.2, 'n_real': 10, 'n_fake': 30, 'auc_ci95': [0.7, 0.9],
            'ap_fake_ci95': [0.85, 0.95],
            'level': 'video', 'video_agg': 'mean', 'protocol': 'sound', 'test': {'part': 'test'},
            'video_level': {'categories': {'FakeVideo-RealAudio': {'auc': 0.75, 'ap_fake': 0.5, 'n_fake': 10}}}}
    av1m = dict(favc, auc=0.6, ap_fake=0.5, video_level={}, localisation={
        'ap': {'0.5': 0.1}, 'ar': {'50': 0.2}, 'proposals': 'p', 'metrics': 'm'}, window_level={'auc': 0.55})
    (tmp_path / 'trimmed').mkdir()
    (tmp_path / 'trimmed' / 'prep_options.json').write_text(json.dumps({'trim_leading_silence': True}))
    args = evaluate.argparse.Namespace(name='x', epoch='best')
    results = [('favc', str(tmp_path / 'trimmed'), favc, ''), ('av1m', str(tmp_path), av1m, ''),
               ('dfdc', str(tmp_path / 'none'), None, 'no such folder')]
    sections = {title.split(' (')[0]: (header, rows) for title, header, rows, _ in evaluate.table_rows(args, results)}
    header, [row] = sections['the row']
    assert row == ['VFD (x, best)', '80.0', '90.0', '60.0', '50.0', '-', '-', '70.0', '70.0']
    assert header[1:3] == ['FakeAVCeleb AUC', 'FakeAVCeleb AP'] and header[5] == 'DFDC AUC'
    detail = sections['per set'][1]
    assert 'leading silence trimmed' in detail[0][-1] and 'not comparable' not in detail[0][-1]
    assert 'trimming unknown (no prep_options.json)' in detail[1][-1]
    assert detail[2][1] == 'not tested: no such folder'
    assert detail[0][1:3] == ['0.8000 [0.7000, 0.9000]', '0.9000 [0.8500, 0.9500]']
    assert sections['AUC per category'][1] == [['FakeAVCeleb', 'FakeVideo-RealAudio', '0.7500', '0.5000', 10]]
    assert sections['temporal localisation'][1] == [['AV-Deepfake1M', '0.5500', '0.1000', '0.2000']]
    assert evaluate.parse_sets(' favc=a, av1m=b ') == [('favc', 'a'), ('av1m', 'b')]
    for bad in ('favc', 'favc=a,favc=b', '../x=a', '='):
        with pytest.raises(ValueError):
            evaluate.parse_sets(bad)

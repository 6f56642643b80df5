"""Hostile input, round three (docs/bad_input.md): names taken from options and files that would reach outside
their folders, pack indexes that lie, locks of other machines, limits checked before the work (SIGTERM: with Ctrl-C
in test_hostile.py)."""
import json
import os
import shutil

import pytest

import test_DF
import train_DF
from scripts import detect, pack_dataset
from tests.conftest import dfdc
from tests.test_hostile import args, finished, outcome  # noqa: F401  (finished is a fixture)


def test_names_from_options_stay_inside_their_folders(finished, sample_root, tmp_path, capsys):
    common = ['--dataroot', dfdc(sample_root), '--name', 'run', '--checkpoints_dir', str(finished), '--results_dir',
              str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0']
    for extra, flag in ((['--epoch', '../../x/latest'], '--epoch'), (['--epoch', '..'], '--epoch'),
                        (['--results_tag', '../../x'], '--results_tag'), (['--results_tag', '/tmp/x'],
                                                                            '--results_tag')):
        status, err = outcome(test_DF.main, [*common, *extra], capsys)
        assert status == 2 and flag in err and 'plain' in err and 'Traceback' not in err
    assert not (tmp_path / 'res').exists() and not os.path.exists(tmp_path / 'x')
    for extra, flag in ((['--pretrained_name', '../run'], '--pretrained_name'),
                        (['--pretrained_name', 'run', '--pretrained_epoch', '../../e'], '--pretrained_epoch')):
        status, err = outcome(train_DF.main, args(sample_root, tmp_path / 'ck', *extra, name='ft'), capsys)
        assert status == 2 and flag in err


@pytest.fixture
def pack(sample_root, tmp_path):
    out = tmp_path / 'pack'
    assert pack_dataset.main(['--dataroot', dfdc(sample_root), '--out', str(out), '--files_per_shard', '9',
                              '--workers', '1']) == 0
    return out


def score_pack(finished, pack, tmp_path, capsys):
    return outcome(test_DF.main, ['--dataroot', str(pack), '--name', 'run', '--checkpoints_dir', str(finished),
                                  '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0'],
                   capsys)


def test_pack_indexes_that_lie_are_refused(finished, pack, tmp_path, capsys):
    index_path = pack / 'pack.json'
    index = json.loads(index_path.read_text())
    shard = index['shards'][0]
    outside = tmp_path / 'outside'
    outside.mkdir()
    shutil.copy(pack / f'{shard}.json', outside / 'evil.json')
    shutil.copy(pack / f'{shard}.bin', outside / 'evil.bin')
    cases = {'a shard outside the pack': dict(index, shards=['../outside/evil', *index['shards'][1:]]),
             'no shards': {k: v for k, v in index.items() if k != 'shards'},
             'shards that are no names': dict(index, shards=[3, None])}
    for what, forged in cases.items():
        index_path.write_text(json.dumps(forged))
        status, err = score_pack(finished, pack, tmp_path, capsys)
        assert status == 2 and 'pack.json' in err and '"shards"' in err and 'Traceback' not in err, what
    index_path.write_text(json.dumps(index))
    entries = json.loads((pack / f'{shard}.json').read_text())
    size = os.path.getsize(pack / f'{shard}.bin')
    forged_entries = {'cut mid-list': json.dumps(entries)[:-20],
                      'entries of the wrong length': json.dumps([e[:2] for e in entries]),
                      'a path outside the pack': json.dumps([['../../etc/passwd', 0, 10], *entries[1:]]),
                      'beyond the data': json.dumps([[entries[0][0], size - 1, 10], *entries[1:]]),
                      'overlapping files': json.dumps([[entries[0][0], 0, 100], [entries[1][0], 50, 100],
                                                       *entries[2:]])}
    for what, text in forged_entries.items():
        (pack / f'{shard}.json').write_text(text)
        status, err = score_pack(finished, pack, tmp_path, capsys)
        assert status == 2 and f'{shard}.json' in err and 'Traceback' not in err, (what, err)
    (pack / f'{shard}.json').write_text(json.dumps(entries))
    assert score_pack(finished, pack, tmp_path, capsys)[0] == 0


def test_a_lock_of_another_machine_says_whose_and_break_lock_takes_over(sample_root, tmp_path, capsys):
    folder = tmp_path / 'ck' / 'run'
    folder.mkdir(parents=True)
    (folder / 'train.lock').write_text(json.dumps({'pid': 1, 'host': 'node-17', 'started': '2026-12-01T00:00:00',
                                                   'command': 'train_DF.py ...'}))
    status, err = outcome(train_DF.main, args(sample_root, tmp_path / 'ck'), capsys)
    assert status == 2 and 'node-17' in err and 'another machine' in err and '--break_lock' in err
    assert train_DF.main(args(sample_root, tmp_path / 'ck', '--break_lock')) == 0
    assert not (folder / 'train.lock').exists()


@pytest.mark.parametrize('extra,expected', [
    (['--lr_policy', 'step', '--lr_decay_iters', '0'], '--lr_decay_iters must be at least 1'),
    (['--seed', str(2 ** 64)], '--seed must lie in [0, 2^63)'),
    (['--seed', '-1'], '--seed must lie in [0, 2^63)'),
    (['--init_type', 'magic'], "invalid choice: 'magic'"),
    (['--beta2', '1.5'], '--beta2 must lie in [0, 1)'),
    (['--loss', 'infonce', '--temperature', '0'], '--temperature must be above 0'),
])
def test_option_limits_are_checked_before_any_work(sample_root, tmp_path, capsys, extra, expected):
    status, err = outcome(train_DF.main, args(sample_root, tmp_path / 'ck', *extra), capsys)
    assert status == 2 and expected in err and 'Traceback' not in err
    assert not (tmp_path / 'ck' / 'run' / 'loss_log.txt').exists()


def test_detect_limits(finished, tmp_path, capsys):
    from tests.media import face_frame, tone, write_video
    video = tmp_path / 'v.mkv'
    write_video(video, face_frame(), seconds=4.0, audio=tone(4.0))
    common = [str(video), '--name', 'run', '--checkpoints_dir', str(finished), '--gpu_ids', '-1']
    assert detect.main([*common, '--windows', '5000']) == 2
    assert '--windows must lie between 1 and 100' in capsys.readouterr().err
    assert detect.main([*common, '--margin', '-0.9']) == 2
    assert '--margin must lie in' in capsys.readouterr().err


def test_windows_named_with_other_digits(sample_root, tmp_path):
    """Window files whose names hold digits int() refuses ('²') or decimal digits of another script ('٣')."""
    from data.DFDC_dataset import _window_key
    assert _window_key('².jpg') == (0, '²') and _window_key('٣.jpg') == (3, '٣') and _window_key('12.jpg')[0] == 12
    root = tmp_path / 'set'
    shutil.copytree(dfdc(sample_root), root)
    real = sorted(os.listdir(root / 'real'))[0]
    video = os.path.splitext(real)[0]
    (root / 'real' / video).mkdir()
    (root / 'audio_feat' / video).mkdir()
    for stem in ('²', '٣'):
        shutil.copy(root / 'real' / real, root / 'real' / video / f'{stem}.jpg')
        shutil.copy(root / 'audio_feat' / f'{video}.npy', root / 'audio_feat' / video / f'{stem}.npy')
    os.remove(root / 'real' / real)
    os.remove(root / 'audio_feat' / f'{video}.npy')
    os.remove(root / 'audio_feat' / f'{video}.wav')
    from tests.test_datasets import DFDC, make_opt
    items = DFDC(make_opt(root, phase='test', isTrain=False)).items
    assert [item[4] for item in items if item[0] == video] == [0, 3]


def test_checkpoints_that_disagree_with_themselves(finished, sample_root, tmp_path, capsys):
    """A voice encoder of one run beside the face encoder of another, a config edited after training (heads, which
    no shape shows), a format version from the future: each refused with one line."""
    import torch
    ck = tmp_path / 'ck'
    shutil.copytree(finished, ck)
    assert train_DF.main(args(sample_root, ck, name='other')) == 0    # the same options: equal configs
    common = ['--dataroot', dfdc(sample_root), '--name', 'run', '--checkpoints_dir', str(ck), '--results_dir',
              str(tmp_path / 'res'), '--gpu_ids', '-1', '--num_threads', '0']
    shutil.copy(ck / 'other' / 'latest_net_G_video.pth', ck / 'run' / 'latest_net_G_video.pth')
    status, err = outcome(test_DF.main, common, capsys)
    assert status == 2 and 'different training runs' in err and '--allow_mixed_runs' in err
    assert outcome(test_DF.main, [*common, '--allow_mixed_runs'], capsys)[0] == 0
    shutil.copy(finished / 'run' / 'latest_net_G_video.pth', ck / 'run' / 'latest_net_G_video.pth')
    assert outcome(test_DF.main, common, capsys)[0] == 0
    path = ck / 'run' / 'latest_net_G_audio.pth'
    saved = torch.load(path, weights_only=True)
    edited = {**saved, 'config': {**saved['config'], 'voice': {**saved['config']['voice'], 'heads': 2}},
              'version': saved['version']}
    torch.save(edited, path)
    status, err = outcome(test_DF.main, common, capsys)
    assert status == 2 and 'fingerprint' in err and 'latest_net_G_audio.pth' in err
    torch.save({**saved, 'version': 99}, path)
    status, err = outcome(test_DF.main, common, capsys)
    assert status == 2 and 'format version 99' in err


def test_results_folders_belong_to_one_test(finished, sample_root, tmp_path, capsys):
    """Another set whose folder has the same name, another aggregate, a --results_tag of another test, a failed
    rerun, a damaged summary elsewhere, a publication killed half-way: no test takes over another's results."""
    a, b = tmp_path / 'a' / 'DFDC', tmp_path / 'b' / 'DFDC'
    shutil.copytree(dfdc(sample_root), a)
    shutil.copytree(dfdc(sample_root), b)
    for name in sorted(os.listdir(b / 'fake'))[:1]:   # b: another set under the same folder name
        os.remove(b / 'fake' / name)
        os.remove(b / 'audio_feat' / (os.path.splitext(name)[0] + '.npy'))
        os.remove(b / 'audio_feat' / (os.path.splitext(name)[0] + '.wav'))
    res = tmp_path / 'res'

    def run(root, *extra):
        return outcome(test_DF.main, ['--dataroot', str(root), '--name', 'run', '--checkpoints_dir', str(finished),
                                      '--results_dir', str(res), '--gpu_ids', '-1', '--num_threads', '0', *extra],
                       capsys)
    assert run(a)[0] == 0
    first = res / 'run' / 'DFDC_all_sound_latest'
    before = (first / 'scores.csv').read_bytes()
    assert run(b)[0] == 0                                       # b's results go elsewhere
    assert (first / 'scores.csv').read_bytes() == before
    others = [d for d in os.listdir(res / 'run') if d.startswith('DFDC_all_sound_latest-')]
    assert len(others) == 1 and json.loads((res / 'run' / others[0] / 'summary.json').read_text())['test'][
        'dataroot'] == str(b)
    assert run(a)[0] == 0 and (first / 'scores.csv').read_bytes() == before   # the same test again: its folder
    assert run(a, '--video_agg', 'median')[0] == 0
    assert (res / 'run' / 'DFDC_all_sound_median_latest' / 'summary.json').is_file()
    status, err = run(b, '--results_tag', 'DFDC_all_sound_latest')
    assert status == 2 and 'holds the results of another test' in err and '--overwrite_results' in err
    assert (first / 'scores.csv').read_bytes() == before
    # a rerun that fails keeps what the folder held (skipped_samples.csv of an earlier --skip_bad run too)
    (first / 'skipped_samples.csv').write_text('phase,path,reason\n')
    assert run(a, '--epoch', '7')[0] == 2
    assert (first / 'skipped_samples.csv').is_file() and (first / 'scores.csv').read_bytes() == before
    # a damaged summary.json in one folder: later tests still finish, and the index says what it left out
    (res / 'run' / 'DFDC_all_sound_median_latest' / 'summary.json').write_text('{"auc": ')
    assert run(a)[0] == 0
    assert 'summary.json unreadable' in (res / 'run' / 'index.html').read_text()
    # a publication killed between its two moves: the next test puts the old results back, and drops leftovers
    os.rename(first, res / 'run' / '.DFDC_all_sound_latest.old-999999')
    (res / 'run' / '.DFDC_all_sound_latest.tmp-999999').mkdir()
    assert run(b, '--results_tag', 'elsewhere')[0] == 0
    assert (first / 'scores.csv').read_bytes() == before
    assert not [d for d in os.listdir(res / 'run') if d.startswith('.')]


def png16(path, array):
    """A 16-bit RGB PNG of ``array`` (H, W, 3) uint16 (PIL cannot write one)."""
    import struct
    import zlib
    height, width, _ = array.shape
    raw = b''.join(b'\x00' + array[y].astype('>u2').tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 16, 2, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def test_files_that_decode_but_are_unusual(sample_root, tmp_path, capsys):
    """An animated GIF and 16-bit PNGs saved as faces: read as their first frame and scaled to 8 bits by every
    backend (they crashed, also in loader workers); a 1x1 face, a constant mel, a mel beyond what dB holds and an
    all-zero WAV: refused, naming the file (they were scored without a word)."""
    from argparse import Namespace

    import numpy as np
    from PIL import Image

    from data import DatasetError, audio, faces, inputs
    rng = np.random.default_rng(0)
    opt = Namespace(load_size=64, crop_size=64, preprocess='resize_and_crop', no_flip=True)
    frames = [Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / 'anim.jpg', format='GIF', save_all=True, append_images=frames[1:])
    first = faces.load_face(str(tmp_path / 'anim.jpg'), opt, backend='pil')
    deep = rng.integers(0, 65536, (80, 80, 3)).astype(np.uint16)
    png16(tmp_path / 'rgb16.png', deep)
    Image.fromarray(deep[..., 0]).save(tmp_path / 'gray16.png')
    for backend in ('torchvision', 'pil', 'jpeg'):
        got = faces.load_face(str(tmp_path / 'anim.jpg'), opt, backend=backend)
        assert got.shape == (3, 64, 64) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - first.astype(int)).max() <= 1        # the first frame, by any decoder
        for name in ('rgb16.png', 'gray16.png'):
            got = faces.load_face(str(tmp_path / name), opt, backend=backend)
            assert got.shape == (3, 64, 64) and got.dtype == np.uint8 and 100 < got.mean() < 155   # not white
    Image.new('RGB', (1, 1)).save(tmp_path / 'dot.png')
    with pytest.raises(DatasetError, match='dot.png.*at least 16'):
        faces.load_face(str(tmp_path / 'dot.png'), opt)
    with pytest.raises(DatasetError, match='no sound'):
        audio.voice_array(np.zeros((512, 301), np.float32), source='flat.npy')
    with pytest.raises(DatasetError, match='beyond what a mel in dB holds'):
        audio.voice_array(np.full((512, 301), -1e300), source='huge.npy')
    (tmp_path / 'zero.wav').write_bytes(inputs.wav_bytes(np.zeros(48000, np.float32)))
    with pytest.raises(DatasetError, match='zero.wav.*no sound'):
        inputs.load_journal_voice(str(tmp_path / 'zero.wav'), lambda p: open(p, 'rb').read())
    # in a loader worker in the middle of training: the unusual faces train, a 1x1 one is named (or skipped)
    root = tmp_path / 'vox'
    shutil.copytree(os.path.join(sample_root, 'Voxceleb2'), root)
    faces_found = sorted((root / 'face').rglob('*.jpg'))
    shutil.copy(tmp_path / 'anim.jpg', faces_found[0])
    png16(faces_found[1], deep)
    ck = tmp_path / 'ck'
    run = args(tmp_path, ck, '--num_threads', '1', '--max_dataset_size', '100')
    run[run.index('--dataroot') + 1] = str(root)
    assert train_DF.main(run) == 0
    Image.new('RGB', (1, 1)).save(faces_found[2], format='PNG')
    status, err = outcome(train_DF.main, [*run, '--overwrite'], capsys)
    assert status == 2 and 'at least 16' in err and os.path.basename(faces_found[2]) in err
    assert train_DF.main([*run, '--overwrite', '--skip_bad']) == 0


def test_make_splits_writes_only_split_files(tmp_path, capsys):
    from scripts import make_splits
    from tests.test_evaluation import fake_avceleb_layout
    root = tmp_path / 'FAVC'
    fake_avceleb_layout(root)
    categories = (root / 'categories.csv').read_bytes()
    assert make_splits.main(['--dataroot', str(root), '--out', str(root / 'categories.csv')]) == 2
    assert 'inside the dataset folder' in capsys.readouterr().err
    assert (root / 'categories.csv').read_bytes() == categories
    other = tmp_path / 'notes.txt'
    other.write_text('my notes')
    assert make_splits.main(['--dataroot', str(root), '--out', str(other), '--ratios', '0.6', '0.2', '0.2']) == 2
    assert 'not a split written by this script' in capsys.readouterr().err and other.read_text() == 'my notes'
    split = tmp_path / 'split.json'
    for _ in range(2):   # a split it wrote is replaced
        assert make_splits.main(['--dataroot', str(root), '--out', str(split), '--ratios', '0.6', '0.2', '0.2']) == 0
    assert make_splits.main(['--dataroot', str(root), '--out', str(other), '--ratios', '0.6', '0.2', '0.2',
                             '--overwrite']) == 0


def test_packs_know_what_they_hold(sample_root, tmp_path, capsys):
    """Another set into an existing pack, another --files_per_shard on resume, --out inside --dataroot, a second
    run into the same --out, a shard count that disagrees with pack.json: refused; --overwrite repacks."""
    from data.store import PackedStore
    from tests.conftest import vox
    out = tmp_path / 'pack'
    packs = lambda root, *extra: pack_dataset.main(['--dataroot', str(root), '--out', str(out),  # noqa: E731
                                                    '--files_per_shard', '9', '--workers', '1', *extra])
    assert packs(dfdc(sample_root)) == 0
    index = json.loads((out / 'pack.json').read_text())
    assert index['source'] == os.path.abspath(dfdc(sample_root)) and sum(index['shard_files'].values()) == \
        index['files'] and len(index['shard_sha256']) == len(index['shards'])
    held = set(PackedStore(str(out)).files)
    assert packs(vox(sample_root)) == 2
    assert 'another plan' in capsys.readouterr().err and set(PackedStore(str(out)).files) == held
    assert pack_dataset.main(['--dataroot', dfdc(sample_root), '--out', str(out), '--files_per_shard', '5',
                              '--workers', '1']) == 2
    assert 'files_per_shard' in capsys.readouterr().err
    inside = tmp_path / 'set'
    shutil.copytree(dfdc(sample_root), inside)
    assert pack_dataset.main(['--dataroot', str(inside), '--out', str(inside / 'packed')]) == 2
    assert 'inside each other' in capsys.readouterr().err
    (out / 'pack.lock').write_text(json.dumps({'pid': os.getpid(), 'host': __import__('socket').gethostname(),
                                               'started': 'now', 'command': 'pack'}))
    assert packs(dfdc(sample_root)) == 2
    assert 'another pack_dataset run writes into' in capsys.readouterr().err
    os.remove(out / 'pack.lock')
    forged = dict(index, shard_files={**index['shard_files'], index['shards'][0]: 1})
    (out / 'pack.json').write_text(json.dumps(forged))
    with pytest.raises(Exception, match='pack.json recorded 1'):
        PackedStore(str(out))
    assert packs(vox(sample_root), '--overwrite') == 0
    assert json.loads((out / 'pack.json').read_text())['source'] == os.path.abspath(vox(sample_root))


def test_split_files_and_side_files_that_lie(sample_root, tmp_path, capsys):
    """Parts holding numbers, a test part naming videos the set does not hold, train = val, a FIFO as the split
    file, --max_dataset_size 0, a categories.csv saved with a byte-order mark."""
    from data import DatasetError
    from data.DFDC_dataset import read_categories
    from tests.test_datasets import DFDC, make_opt
    root = dfdc(sample_root)
    videos = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'real')))
    videos += sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'fake')))
    split = tmp_path / 'split.json'

    def dataset(parts, phase='test', train=False):
        split.write_text(json.dumps(parts))
        return DFDC(make_opt(root, phase=phase, isTrain=train, split_file=str(split)), n_negatives=2 if train else 0)
    with pytest.raises(DatasetError, match='test part must be a list of video names'):
        dataset({'train': videos, 'test': [1, 2]})
    with pytest.raises(DatasetError, match='200 of the 204 test videos it names are not in'):
        dataset({'test': videos[:4] + [f'missing{i}' for i in range(200)]})
    with pytest.raises(DatasetError, match='in both train and val'):
        dataset({'train': videos, 'val': videos, 'test': videos}, phase='train', train=True)
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match='not a regular file'):
        DFDC(make_opt(root, phase='test', isTrain=False, split_file=str(fifo)))
    status, err = outcome(test_DF.main, ['--dataroot', root, '--name', 'x', '--max_dataset_size', '0'], capsys)
    assert status == 2 and '--max_dataset_size must be at least 1' in err
    (tmp_path / 'categories.csv').write_bytes('\ufeffvideo,category\na,FakeVideo-RealAudio\n'.encode('utf-8'))
    assert read_categories(str(tmp_path / 'categories.csv')) == {'a': 'FakeVideo-RealAudio'}


def test_checkpoint_paths_that_are_not_files_say_what_they_are(tmp_path):
    from models.checkpoint import CheckpointError, read
    os.symlink(tmp_path / 'loop_b', tmp_path / 'loop_a')
    os.symlink(tmp_path / 'loop_a', tmp_path / 'loop_b')
    (tmp_path / 'folder.pth').mkdir()
    for name, expected in (('loop_a', 'broken link (or a link loop)'), ('folder.pth', 'is a folder'),
                           ('absent.pth', 'not found')):
        with pytest.raises(CheckpointError, match=expected.replace('(', r'\(').replace(')', r'\)')):
            read(str(tmp_path / name))

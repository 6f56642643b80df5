"""Datasets: pairing in both layouts, the identity split, negatives, voice normalisation and the mel recipe."""
import csv
import json
import os
import shutil
import types

import numpy as np
import pytest
import soundfile
from PIL import Image

from data import DatasetError, DatasetLoader, SkipLog, available_datasets, create_dataset, find_dataset_using_name
from data.audio import fit_frames, load_voice, mel_from_file, mel_from_waveform, normalize_mel
from data.DFDC_dataset import DFDCDataset
from data.Vox_image_dataset import (SCAN_PROGRESS_FROM, VoxImageDataset, interleave, scan_clips, split_identities,
                                    voice_owner)


def make_opt(root, **kw):
    opt = dict(dataroot=str(root), phase='train', seed=20, n_negatives=3, val_ratio=0.25, id_prefix='id',
               max_clips_per_id=40, max_val_clips=15000, max_dataset_size=10 ** 9, n_mels=512, n_frames=301,
               load_size=32, crop_size=32, preprocess='resize_and_crop', no_flip=True, batch_size=2, num_threads=0,
               serial_batches=False, dataset_mode='Vox_image', device='cpu', skip_bad=False, split_file='',
               protocol='sound', original_order='sorted', isTrain=True, prefetch_factor=2)
    opt.update(kw)
    return types.SimpleNamespace(**opt)


def Vox(opt, n_negatives=3):
    """The Vox_image dataset of ``opt.phase`` with ``n_negatives`` negatives per training item."""
    return VoxImageDataset(opt, opt.phase, n_negatives)


def DFDC(opt, n_negatives=0):
    """The DFDC dataset of ``opt.phase``."""
    return DFDCDataset(opt, opt.phase, n_negatives)


def write_clip(root, identity, video, frame, colour=(128, 64, 32), frames=301):
    face_dir = os.path.join(root, 'face', identity, video)
    os.makedirs(face_dir, exist_ok=True)
    os.makedirs(os.path.join(root, 'voice'), exist_ok=True)
    Image.new('RGB', (40, 40), colour).save(os.path.join(face_dir, frame + '.jpg'))
    mel = -80 * np.random.default_rng(abs(hash((identity, video, frame))) % 2 ** 32).random((512, frames))
    np.save(os.path.join(root, 'voice', f'{identity}_{video}_{frame}.npy'), mel.astype(np.float32))


@pytest.fixture
def vox_root(tmp_path):
    """8 identities; video names with '_' and '-' (as in VoxCeleb2), two clips each."""
    root = tmp_path / 'vox'
    for i in range(8):
        identity = f'id{i:05d}'
        write_clip(root, identity, 'a_b-c_d', '00001')
        write_clip(root, identity, 'JF-4trZP6fE', '00182')
    os.makedirs(root / 'face' / 'not_an_identity' / 'v')  # ignored: no 'id' prefix
    return root


def test_names_resolve_and_unknown_names_list_the_valid_ones():
    assert {'Vox_image', 'DFDC'} <= set(available_datasets())
    assert find_dataset_using_name('Vox_image') is VoxImageDataset
    assert find_dataset_using_name('DFDC') is DFDCDataset
    with pytest.raises(ValueError, match='valid names: .*DFDC.*Vox_image'):
        find_dataset_using_name('vox')


def test_vox_pairs_faces_with_voices_when_video_names_hold_separators(vox_root):
    ds = Vox(make_opt(vox_root))
    assert len(ds) == 12  # 6 training identities x 2 clips
    for face, voice in zip(ds.face_paths, ds.voice_paths):
        identity, video, frame = face.split(os.sep)[-3:]
        assert os.path.basename(voice) == f'{identity}_{video}_{frame[:-4]}.npy'
    assert any('a_b-c_d' in p for p in ds.voice_paths)


def test_a_voice_file_belongs_to_the_identity_that_starts_its_name():
    identities = {'id1', 'id_2'}
    assert voice_owner('id1_v_00001.npy', identities) == 'id1'
    assert voice_owner('id_2_v-x_00001.npy', identities) == 'id_2'          # an identity name holding '_'
    assert voice_owner('id3_v_00001.npy', identities) is None
    assert voice_owner('id__v_00001.npy', {'id_'}) == 'id_'              # one ending in '_'
    assert voice_owner('id1.npy', identities) is None and voice_owner('_id1_v.npy', identities) is None


def test_identity_split_is_sorted_disjoint_and_deterministic(vox_root):
    train = Vox(make_opt(vox_root))
    val = Vox(make_opt(vox_root, phase='val'))
    assert train.split_lists() == {'train': [f'id{i:05d}' for i in range(2, 8)], 'val': ['id00000', 'id00001']}
    assert set(train.identities).isdisjoint(val.identities)
    assert Vox(make_opt(vox_root)).face_paths == train.face_paths


def test_split_holds_out_at_least_two_identities_and_rejects_too_few():
    assert split_identities(['id3', 'id1', 'id2', 'id4', 'id5'], 0.1, 'x') == (['id3', 'id4', 'id5'], ['id1', 'id2'])
    assert split_identities(['b', 'a'], 0.0, 'x') == (['a', 'b'], [])
    with pytest.raises(DatasetError, match='at least two'):
        split_identities(['id1'], 0.1, 'x')
    with pytest.raises(DatasetError, match='too few'):
        split_identities(['id1', 'id2', 'id3'], 0.1, 'x')
    assert split_identities(['d', 'c', 'b', 'a'], 0.5, 'x') == (['c', 'd'], ['a', 'b'])    # two left: enough
    for ratio in (1, 1.5, -0.1):
        with pytest.raises(DatasetError) as error:
            split_identities(['a', 'b', 'c'], ratio, 'x')
        assert str(error.value) == f'--val_ratio must lie in [0, 1), got {ratio}'


def test_fewer_than_two_identities_is_a_clear_error(tmp_path):
    write_clip(tmp_path, 'id00001', 'v', '00001')
    with pytest.raises(DatasetError, match='at least two'):
        Vox(make_opt(tmp_path, val_ratio=0.0))


def test_negatives_come_from_other_identities_and_change_per_epoch(vox_root):
    ds = Vox(make_opt(vox_root))
    draws = []
    for epoch in (1, 2):
        items = [ds[(epoch, i)] for i in range(len(ds))]
        for item in items:
            assert item['neg_faces'].shape == (3, 3, 32, 32) and item['neg_faces'].dtype == np.uint8
            assert item['identity'] not in item['neg_identities']
        draws.append([tuple(item['neg_identities'].tolist()) for item in items])
        # the same (seed, epoch, index) gives the same draw, from another dataset object (as in another worker)
        again = Vox(make_opt(vox_root))
        assert draws[-1] == [tuple(again[(epoch, i)]['neg_identities'].tolist()) for i in range(len(ds))]
    assert draws[0] != draws[1]
    assert draws[0] != [tuple(Vox(make_opt(vox_root, seed=21))[(1, i)]['neg_identities'].tolist())
                        for i in range(len(ds))]


def test_vox_validation_yields_labelled_pairs(vox_root):
    ds = Vox(make_opt(vox_root, phase='val'), n_negatives=3)
    assert ds.clip_count() == 4 and len(ds) == 4 * (1 + 3)
    for clip in range(ds.clip_count()):
        pairs = [ds[(7, clip * 4 + slot)] for slot in range(4)]   # the epoch does not change validation pairs
        assert [int(p['label']) for p in pairs] == [1, 0, 0, 0] and [int(p['window']) for p in pairs] == [0, 1, 2, 3]
        assert {p['voice_path'] for p in pairs} == {ds.voice_paths[clip]} and len({p['video'] for p in pairs}) == 1
        assert pairs[0]['face_path'] == ds.face_paths[clip]
        assert pairs[0]['video'] == os.path.splitext(os.path.relpath(ds.face_paths[clip], vox_root / 'face'))[0]
        negatives = ds.sample_negatives(clip, ds.rng(0, clip))
        assert [p['face_path'] for p in pairs[1:]] == [ds.face_paths[j] for j in negatives]
        own = ds.face_paths[clip].split(os.sep)[-3]
        assert all(p['face_path'].split(os.sep)[-3] != own for p in pairs[1:])
        assert set(pairs[0]) == {'voice', 'face', 'label', 'video', 'window', 'face_path', 'voice_path'}
    with pytest.raises(DatasetError, match='mismatched pair'):
        Vox(make_opt(vox_root, phase='val'), n_negatives=0)


def noise_face(path, seed):
    """A 40 x 40 face of noise at ``path``: every crop and flip of it differs."""
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)


def noise_clips(root, count):
    """Identities id0, id1, ... of one clip each, whose faces are noise."""
    for i in range(count):
        write_clip(root, f'id{i}', 'v', '00001')
        noise_face(root / 'face' / f'id{i}' / 'v' / '00001.jpg', i)
    return root


def test_vox_negatives_are_distinct_while_they_can_be_and_every_training_face_is_augmented(tmp_path):
    root = noise_clips(tmp_path / 'vox', 3)
    opt = make_opt(root, val_ratio=0, load_size=40, crop_size=32, no_flip=False)
    ds = Vox(opt, n_negatives=2)            # as many negatives as other clips: each other clip once
    for epoch in range(1, 6):
        for index in range(3):
            item = ds[(epoch, index)]
            assert item['index'] == index and item['identity'] == index and item['face_path'] == ds.face_paths[index]
            assert sorted(item['neg_identities'].tolist()) == sorted({0, 1, 2} - {index})
    wide = Vox(opt, n_negatives=5)          # more negatives than other clips: drawn again
    anchors, negatives = set(), set()
    for epoch in range(1, 7):
        item = wide[(epoch, 0)]
        assert item['neg_faces'].shape == (5, 3, 32, 32) and set(item['neg_identities'].tolist()) <= {1, 2}
        anchors.add(item['face'].tobytes())
        negatives.update(face.tobytes() for face, who in zip(item['neg_faces'], item['neg_identities']) if who == 1)
    # a training face is cropped and flipped afresh at each draw, the anchor's and the negatives' alike
    assert len(anchors) > 3 and len(negatives) > 3


def test_vox_unreadable_negatives_are_drawn_again_at_most_ten_times(tmp_path):
    root = noise_clips(tmp_path / 'vox', 3)
    bad = root / 'face' / 'id1' / 'v' / '00001.jpg'
    bad.write_bytes(b'not a jpeg')
    ds = Vox(make_opt(root, val_ratio=0, skip_bad=True), n_negatives=1)
    items = [ds[(epoch, 0)] for epoch in range(1, 9)]
    # the one negative of id0 is id1 (unreadable, drawn again) or id2: always id2 in the end
    assert [item['neg_identities'].tolist() for item in items] == [[2]] * 8
    replaced = [r for item in items for r in item['replaced']]
    assert replaced and all(r['path'] == str(bad) and 'cannot read the face image' in r['reason'] for r in replaced)
    read = ds.load_face                    # an error that names no file: the record names the face drawn

    def pathless(path, *args, **kw):
        if path == str(bad):
            raise DatasetError('cannot prepare it')
        return read(path, *args, **kw)
    ds.load_face = pathless
    replaced = [r for epoch in range(1, 9) for r in ds[(epoch, 0)]['replaced']]
    assert replaced and all(r == {'path': str(bad), 'reason': 'cannot prepare it'} for r in replaced)
    ds.load_face = read
    (root / 'face' / 'id2' / 'v' / '00001.jpg').write_bytes(b'not a jpeg')
    anchor = str(root / 'face' / 'id0' / 'v' / '00001.jpg')
    with pytest.raises(DatasetError) as error:
        ds[(1, 0)]
    assert str(error.value) == f'10 negatives in a row for {anchor} could not be read' and error.value.path == anchor


def test_vox_item_keys_shapes_dtypes(vox_root):
    item = Vox(make_opt(vox_root))[0]
    # faces travel as uint8 and voices as float16 (the model makes them float32 on its device)
    assert item['voice'].shape == (1, 512, 301) and item['voice'].dtype == np.float16
    assert item['face'].shape == (3, 32, 32) and item['face'].dtype == np.uint8
    assert item['identity'].dtype == np.int64
    exact = VoxImageDataset(make_opt(vox_root), 'train', 3, face_backend='pil', voice_dtype='float32')[0]
    assert exact['voice'].dtype == np.float32 and exact['face'].dtype == np.uint8
    np.testing.assert_array_equal(exact['voice'], load_voice(exact_path(exact)))
    # float16 transport: the normalised mel within half a float16 step (values in [-1, 0]: at most 2 ** -12)
    assert np.abs(item['voice'].astype(np.float32) - load_voice(VoxImageDataset(make_opt(vox_root), 'train', 3)
                                                                .voice_paths[0])).max() <= 2 ** -12
    in_batch = Vox(make_opt(vox_root), n_negatives=0)[0]
    assert 'neg_faces' not in in_batch and 'identity' in in_batch


def exact_path(item):
    """The voice file of a training item (by its face path)."""
    identity, video, frame = item['face_path'].split(os.sep)[-3:]
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(item['face_path'])))),
                        'voice', f'{identity}_{video}_{frame[:-4]}.npy')


def test_face_without_voice_names_the_file(vox_root):
    os.remove(os.path.join(vox_root, 'voice', 'id00005_JF-4trZP6fE_00182.npy'))
    with pytest.raises(DatasetError, match='id00005.*JF-4trZP6fE.*00182.jpg'):
        Vox(make_opt(vox_root))


def test_missing_layout_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match='not a folder'):
        Vox(make_opt(tmp_path / 'nowhere'))
    with pytest.raises(DatasetError, match="face is missing"):
        Vox(make_opt(tmp_path))
    with pytest.raises(DatasetError, match='audio_feat is missing'):
        DFDC(make_opt(tmp_path, dataset_mode='DFDC'))


def test_per_identity_cap_takes_clips_from_every_video(tmp_path):
    for v in ('v1', 'v2', 'v3'):
        for f in ('00001', '00002', '00003'):
            write_clip(tmp_path, 'id00001', v, f)
            write_clip(tmp_path, 'id00002', v, f)
    ds = Vox(make_opt(tmp_path, val_ratio=0.0, max_clips_per_id=3))
    videos = [p.split(os.sep)[-2] for p in ds.face_paths[:3]]
    assert videos == ['v1', 'v2', 'v3']
    assert len(Vox(make_opt(tmp_path, val_ratio=0.0, max_clips_per_id=3, max_dataset_size=4))) == 4


def test_interleave_takes_one_clip_of_each_video_in_turn():
    assert interleave([[1, 2, 3], [4], [], [5, 6]]) == [1, 4, 5, 2, 6, 3]
    assert interleave([]) == [] and interleave([[], []]) == []


def vox_problem_layout(root):
    """Five identities: id0 with a file and an empty video folder before its videos v1 (two clips) and v2 (one),
    id1 with no video folder, id2 whose first clip has no voice, id3 whose second video w has no voice, id4 with an
    empty video folder only; and two voices that no face takes."""
    for identity, video, frame in (('id0', 'v1', '00001'), ('id0', 'v1', '00002'), ('id0', 'v2', '00001'),
                                   ('id2', 'v', '00001'), ('id2', 'v', '00002'), ('id3', 'v', '00001'),
                                   ('id3', 'w', '00001'), ('id0', 'v9', '00001'), ('zz', 'v', '00001')):
        write_clip(root, identity, video, frame)
    shutil.rmtree(root / 'face' / 'zz')
    shutil.rmtree(root / 'face' / 'id0' / 'v9')
    os.remove(root / 'voice' / 'id2_v_00001.npy')
    os.remove(root / 'voice' / 'id3_w_00001.npy')
    os.makedirs(root / 'face' / 'id0' / 'v0')
    os.makedirs(root / 'face' / 'id1')
    os.makedirs(root / 'face' / 'id4' / 'e')
    for name in ('face/id0/notes.txt', 'face/id1/readme.txt', 'voice/notes.txt', 'voice/id0_v1_00001.wav',
                 'voice/id2_v_00002.wav', 'voice/id3_v_00001.wav'):
        (root / name).write_text('')
    return root


def test_vox_scan_pairs_clips_in_turn_and_lists_each_problem_in_order(tmp_path):
    root = vox_problem_layout(tmp_path / 'vox')
    face, voice = root / 'face', root / 'voice'
    with pytest.raises(DatasetError, match=r'^7 problem\(s\) under '):
        Vox(make_opt(root, val_ratio=0))
    ds = Vox(make_opt(root, val_ratio=0, skip_bad=True))
    clips = ['id0/v1/00001', 'id0/v2/00001', 'id0/v1/00002', 'id2/v/00002', 'id3/v/00001']
    assert ds.face_paths == [f'{face}/{c}.jpg' for c in clips]
    assert ds.voice_paths == [f'{voice}/{c.replace("/", "_")}.npy' for c in clips]
    assert ds.labels.tolist() == [0, 0, 0, 2, 3] and ds.identities == ['id0', 'id1', 'id2', 'id3', 'id4']
    # in the order of the scan; each problem sorts before good entries of its folder
    assert ds.skipped == [
        (f'{face}/id0/v0', 'empty folder: no face images'),
        (f'{face}/id1', 'empty folder: no video folders with face images'),
        (f'{face}/id2/v/00001.jpg', f'no voice file {voice}/id2_v_00001.npy'),
        (f'{face}/id3/w/00001.jpg', f'no voice file {voice}/id3_w_00001.npy'),
        (f'{face}/id4/e', 'empty folder: no face images'),
        (f'{voice}/id0_v9_00001.npy', f'no face image: expected one in {face}/id0/'),
        (f'{voice}/zz_v_00001.npy', f'belongs to no identity folder of {face}')]
    # the cap ends the scan: the identities beyond it (id3, id4) are neither taken nor reported
    capped = Vox(make_opt(root, val_ratio=0, skip_bad=True, max_dataset_size=4))
    assert capped.face_paths == [f'{face}/{c}.jpg' for c in clips[:4]]
    assert capped.skipped == [ds.skipped[i] for i in (0, 1, 2, 5, 6)]
    capped = Vox(make_opt(root, val_ratio=0, skip_bad=True, max_dataset_size=3, max_clips_per_id=2))
    assert capped.face_paths == [f'{face}/{c}.jpg' for c in clips[:2] + clips[3:4]]
    # the journal's inputs pair the faces with the .wav files, and a missing one says where .wav files come from
    journal = VoxImageDataset(make_opt(root, val_ratio=0, skip_bad=True), 'train', 3, inputs='journal')
    assert journal.voice_paths == [f'{voice}/id0_v1_00001.wav', f'{voice}/id2_v_00002.wav', f'{voice}/id3_v_00001.wav']
    assert (f'{face}/id0/v2/00001.jpg', f'no voice file {voice}/id0_v2_00001.wav' + journal.missing_voice_hint()) \
        in journal.skipped


class TreeStore:
    """The folder questions of data/store.py over {folder: [entries]}: a folder is a key."""

    def __init__(self, tree):
        self.tree = tree

    def listdir(self, path):
        return list(self.tree[path])

    def isdir(self, path):
        return path in self.tree


def test_scan_clips_defaults_to_mels_and_shows_progress_from_its_threshold(capfd):
    tree = {'F': ['id0', 'id1'], 'F/id0': ['v'], 'F/id0/v': ['1.jpg', '2.jpg'], 'F/id1': [],
            'V': ['id0_v_1.npy', 'id0_v_1.wav', 'id0_v_2.wav']}
    faces, voices, labels, problems = scan_clips(TreeStore(tree), 'F', 'V', ['id0', 'id1'], 0, 10)
    assert (faces, voices, labels) == (['F/id0/v/1.jpg'], ['V/id0_v_1.npy'], [0])
    assert problems == [('F/id0/v/2.jpg', 'no voice file V/id0_v_2.npy'),
                        ('F/id1', 'empty folder: no video folders with face images')]
    # a scan of many identities reports its progress (as lines on a pipe); a smaller one says nothing
    for count, shown in ((SCAN_PROGRESS_FROM - 1, False), (SCAN_PROGRESS_FROM, True)):
        many = [f'id{i}' for i in range(count)]
        capfd.readouterr()
        scan_clips(TreeStore({'F': many, 'V': [], **{f'F/{i}': [] for i in many}}), 'F', 'V', many, 0, 10)
        assert ('scanning F' in capfd.readouterr().err) == shown


@pytest.fixture
def dfdc_root(tmp_path):
    root = tmp_path / 'dfdc'
    for folder, names in (('real', ['r_1', 'r-2']), ('fake', ['f_1', 'f-2', 'f3'])):
        os.makedirs(root / folder)
        for name in names:
            Image.new('RGB', (40, 40), (10, 20, 30)).save(root / folder / f'{name}.jpg')
    os.makedirs(root / 'audio_feat')
    for name in ('r_1', 'r-2', 'f_1', 'f-2', 'f3'):
        mel = -80 * np.random.default_rng(0).random((512, 250), dtype=np.float32)
        np.save(root / 'audio_feat' / f'{name}.npy', mel)
    return root


def test_dfdc_pairs_and_labels(dfdc_root):
    ds = DFDC(make_opt(dfdc_root, dataset_mode='DFDC', phase='test'))
    pairs = [(video, label) for video, _, _, label, _ in ds.items]
    assert pairs == [('r-2', 1), ('r_1', 1), ('f-2', 0), ('f3', 0), ('f_1', 0)]
    item = ds[0]
    assert item['face'].shape == (3, 32, 32) and item['voice'].shape == (1, 512, 301)
    assert item['label'] == 1 and item['video'] == 'r-2'
    assert os.path.basename(item['voice_path']) == 'r-2.npy'


def test_dfdc_face_without_voice_names_the_file(dfdc_root):
    os.remove(dfdc_root / 'audio_feat' / 'f3.npy')
    with pytest.raises(DatasetError, match='f3.jpg'):
        DFDC(make_opt(dfdc_root, dataset_mode='DFDC', phase='test'))


def test_loader_batches_and_serial_order(dfdc_root):
    loader = create_dataset(make_opt(dfdc_root, dataset_mode='DFDC'), 'test', shuffle=False)
    batches = list(loader)
    assert [len(b['video']) for b in batches] == [2, 2, 1]
    assert batches[0]['face'].shape == (2, 3, 32, 32) and batches[0]['label'].tolist() == [1, 1]


def test_voice_normalisation_is_librosa_normalize_per_frame():
    import librosa
    mel = -80 * np.random.default_rng(1).random((512, 301)).astype(np.float32)
    mel[:, 5] = -80.0  # a silent frame
    out = normalize_mel(mel)
    np.testing.assert_array_equal(out, librosa.util.normalize(mel))
    np.testing.assert_allclose(out, mel / np.abs(mel).max(axis=0, keepdims=True), rtol=1e-6)
    assert out.min() >= -1 and out.max() <= 0 and np.all(out[:, 5] == -1)
    # to the bit, in both float widths, with positive values, an all-zero column and one of subnormal numbers
    # (librosa leaves both as they are), and a column whose maximum is exactly the smallest normal number
    for dtype in (np.float32, np.float64):
        odd = np.random.default_rng(2).standard_normal((64, 9)).astype(dtype) * 40
        odd[:, 1] = 0
        odd[:, 2] = np.finfo(dtype).tiny / 4
        odd[:, 3] = 0
        odd[:3, 3] = -np.finfo(dtype).tiny
        got, want = normalize_mel(odd), librosa.util.normalize(odd)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
        assert np.all(got[:, 1] == 0) and np.all(got[:, 2] == odd[:, 2]) and np.all(got[:3, 3] == -1)


def test_load_voice_fits_frames_and_checks_the_file(tmp_path):
    short = -80 * np.random.default_rng(2).random((512, 200)).astype(np.float32)
    np.save(tmp_path / 'short.npy', short)
    voice = load_voice(str(tmp_path / 'short.npy'))
    assert voice.shape == (1, 512, 301) and voice.dtype == np.float32
    np.testing.assert_array_equal(voice[0, :, :200], normalize_mel(short))
    assert np.all(voice[0, :, 200:] == -1.0)
    assert fit_frames(np.zeros((4, 10)), 6).shape == (4, 6)
    np.save(tmp_path / 'wrong.npy', np.zeros((128, 301), np.float32))
    with pytest.raises(DatasetError, match='wrong.npy.*shape'):
        load_voice(str(tmp_path / 'wrong.npy'))


def test_mel_recipe_matches_librosa_on_a_file(tmp_path):
    import librosa
    rng = np.random.default_rng(3)
    t = np.arange(int(3.5 * 16000)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    path = str(tmp_path / 'clip.wav')
    soundfile.write(path, wave, 16000, subtype='FLOAT')
    y, sr = librosa.load(path, sr=16000, duration=3)
    expected = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, hop_length=160, n_mels=512), ref=np.max)
    got = mel_from_file(path)
    assert got.shape == (512, 301) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(mel_from_waveform(wave, 16000), expected, rtol=0, atol=1e-4)
    assert got.max() == 0.0 and got.min() >= -80.0
    # the recipe step by step (a filter bank built once) is librosa's melspectrogram to the bit: on this clip, on
    # noise of other lengths, on a clip at another rate (resampled first) and on near silence
    for y, rate in ((wave, 16000), (rng.standard_normal(12345).astype(np.float32), 16000),
                    (rng.standard_normal(70000).astype(np.float32) * 1e-6, 16000), (wave[:30000], 22050)):
        cut = y[:int(round(3 * rate))]
        cut = librosa.resample(cut, orig_sr=rate, target_sr=16000) if rate != 16000 else cut
        want = librosa.power_to_db(librosa.feature.melspectrogram(y=cut, sr=16000, hop_length=160, n_mels=512),
                                   ref=np.max).astype(np.float32)
        np.testing.assert_array_equal(mel_from_waveform(y, rate), want)


def test_unreadable_negatives_are_replaced_and_reported_as_records(vox_root, tmp_path):
    bad = os.path.join(str(vox_root), 'face', 'id00003', 'JF-4trZP6fE', '00182.jpg')
    with open(bad, 'wb') as handle:
        handle.write(b'not a jpeg')
    opt = make_opt(vox_root, skip_bad=True)
    ds = Vox(opt, n_negatives=5)
    anchors = [i for i in range(len(ds)) if ds.face_paths[i] != bad]
    items = [ds[(1, i)] for i in anchors]
    hit = [item for item in items if item['replaced']]
    assert hit, 'the bad face should be drawn as a negative of some anchor'
    for item in hit:
        assert all(set(r) == {'path', 'reason'} and r['path'] == bad for r in item['replaced'])
        assert all('cannot read the face image' in r['reason'] for r in item['replaced'])
        assert item['neg_faces'].shape == (5, 3, 32, 32)
    for item in hit:   # each replaced negative is another draw, a real picture (not a blank left in its place)
        assert all(face.std() > 0 for face in item['neg_faces'])
    log = SkipLog(str(tmp_path / 'skipped.csv'))
    loader = DatasetLoader(ds, opt, shuffle=False, skip_log=log)
    loader.set_epoch(1)
    batches = list(loader)
    assert batches and all('replaced' not in batch for batch in batches)
    with open(tmp_path / 'skipped.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert [(row['phase'], row['path']) for row in rows] == [('train', bad)]


def test_sample_data_files_do_not_depend_on_the_workers(tmp_path, monkeypatch):
    """make_sample_data renders small sets in its own process and larger ones in a pool of spawned workers: the
    files are the same byte for byte either way, for every set."""
    from scripts import make_sample_data
    args = ['--vox_ids', '3', '--videos', '1', '--frames', '2', '--dfdc_ids', '2', '--dfdc_reals', '1',
            '--fakeavceleb_ids', '2', '--av1m_ids', '2', '--image_size', '32']
    assert make_sample_data.main(['--out', str(tmp_path / 'here'), '--workers', '1', *args]) == 0
    monkeypatch.setattr(make_sample_data.SharedPool, 'MIN_JOBS', 0)      # every set through the pool
    assert make_sample_data.main(['--out', str(tmp_path / 'pool'), '--workers', '2', *args]) == 0

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}
    here, pool = files(tmp_path / 'here'), files(tmp_path / 'pool')
    assert len(here) > 30 and {k for k in here if k.startswith('AV1M_raw/val/')}
    assert here.keys() == pool.keys() and [k for k in here if here[k] != pool[k]] == []
    # the H.264 videos carry x264's settings in the stream: the fixed ones (make_videos.EXACT_X264, one thread), with
    # which a loaded machine writes the same bytes; veryfast with CRF did not, now and then, so equal bytes in an
    # idle run would not show it
    for name in (k for k in here if k.endswith('.mp4')):
        assert EXACT_SETTINGS <= x264_settings(here[name]), name


EXACT_SETTINGS = {'threads=1', 'bframes=0', 'rc=cqp', 'mbtree=0', 'aq=0'}


def x264_settings(data):
    """The settings x264 wrote into an H.264 stream (``data``: the file's bytes), as a set of 'key=value'."""
    return set(data.split(b'options: ', 1)[1].split(b'\x00', 1)[0].decode().split())


def test_exact_h264_is_written_on_one_thread_at_the_demo_size(tmp_path):
    """The sample test's 32x32 videos get one x264 thread whatever the setting (two macroblock rows); the demo's
    128x128 ones would get a thread count that follows the machine's cores."""
    from scripts.make_videos import write_video
    path = tmp_path / 'v.mp4'
    write_video(path, np.full((128, 128, 3), 90, np.uint8), 0.4, 25, video_codec='libx264', exact=True)
    assert EXACT_SETTINGS <= x264_settings(path.read_bytes())


def test_window_files_sort_by_their_number_then_their_name():
    from data.DFDC_dataset import _window_key
    names = ['10.jpg', '2.jpg', 'b.jpg', '²3.jpg', '١٢.jpg', '02.jpg', 'a.jpg']
    # '02' and '2' are both window 2 (the name breaks the tie); '²3' is not a number; Arabic-Indic '١٢' is 12
    assert sorted(names, key=_window_key) == ['a.jpg', 'b.jpg', '²3.jpg', '02.jpg', '2.jpg', '10.jpg', '١٢.jpg']
    assert _window_key('7.png') == (7, '7') and _window_key('x.jpg') == (0, 'x')


def item(video, label, window=0):
    return (video, f'{video}/{window}.jpg', f'{video}_{window}.npy', label, window)


def test_original_sampling_takes_the_fakes_of_each_real_in_turn_by_hand():
    from data.DFDC_dataset import ORIGINAL_FAKES_PER_REAL, original_sampling
    reals = [item('r1', 1), item('r2', 1)]
    fakes = [item(f'f{k}', 0) for k in (5, 3, 1, 4, 2)]
    # 5 fakes for 2 reals, s = 2.5: real 0 takes round(0) .. round(2.5) = 0 .. 2 (Python rounds half to even),
    # real 1 takes round(2.5) .. round(5) = 2 .. 5 of the fakes sorted by name
    assert original_sampling(reals + fakes) == reals + [item(f'f{k}', 0) for k in (1, 2, 3, 4, 5)]
    # in a given order (os.listdir's): that order, and videos it does not know after those it does
    order = {'f4': 0, 'f2': 1, 'f5': 2}
    assert [i[0] for i in original_sampling(reals + fakes, order)] == ['r1', 'r2', 'f4', 'f2', 'f5', 'f1', 'f3']
    # windows of one video follow their number; a real takes at most ORIGINAL_FAKES_PER_REAL fakes
    many = [item('f', 0, w) for w in range(2 * ORIGINAL_FAKES_PER_REAL + 5)][::-1]
    one_real = original_sampling([item('r', 1)] + many)
    assert [i[4] for i in one_real[1:]] == list(range(ORIGINAL_FAKES_PER_REAL))
    # 3 reals, 7 fakes, s = 7/3: 0 .. 2, 2 .. 5, 5 .. 7 (round(2.33) = 2, round(4.67) = 5)
    three = [item(f'r{k}', 1) for k in range(3)]
    seven = [item(f'f{k}', 0) for k in range(7)]
    assert original_sampling(three + seven) == three + seven
    assert original_sampling(three + seven[:1]) == three + seven[:1]       # fewer fakes than reals: each once
    assert original_sampling(seven) == []                                     # no reals, no pairs
    # the cap: 1 real of 50 fakes takes the first 30; 2 reals of 70 (s = 35) take 0 .. 29 and 35 .. 64
    seventy = [item(f'f{k:02d}', 0) for k in range(70)]
    assert original_sampling([item('r', 1)] + seventy[:50])[1:] == seventy[:30]
    assert original_sampling(three[:2] + seventy)[2:] == seventy[:30] + seventy[35:65]
    # videos that ``order`` does not know follow in name order (d before d-x, though their paths sort the other way)
    unknown = [item('d-x', 0), item('d', 0)]
    assert [i[0] for i in original_sampling(three[:2] + unknown, {})] == ['r0', 'r1', 'd', 'd-x']


def dfdc_layout(root, entries):
    """A DFDC-layout folder from ``entries``: {path under root: number}; a path ending in .jpg gets a face of that
    grey level, one ending in .npy a random mel in dB drawn from that seed whose first value is minus the number,
    anything else an empty file. Returns root."""
    for name, value in entries.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith('.jpg'):
            Image.new('RGB', (32, 32), (value,) * 3).save(path)
        elif name.endswith('.npy'):
            mel = -80 * np.random.default_rng(value).random((512, 301), dtype=np.float32)
            mel[0, 0] = -value
            np.save(path, mel)
        else:
            path.write_text('')
    return root


# windows 0, 1, 2 and 10 of real video b (10 sorts after 2); each face and voice carries its own value
MIXED = {'real/a.jpg': 10, 'audio_feat/a.npy': 10,
         'real/b/0.jpg': 20, 'real/b/1.jpg': 21, 'real/b/10.jpg': 30, 'real/b/2.jpg': 22, 'real/b/notes.txt': 0,
         'audio_feat/b/0.npy': 20, 'audio_feat/b/1.npy': 21, 'audio_feat/b/2.npy': 22, 'audio_feat/b/10.npy': 30,
         'fake/c.jpg': 40, 'audio_feat/c.npy': 40, 'fake/_notes.txt': 0,
         'fake/d/0.jpg': 50, 'fake/d/1.jpg': 51, 'audio_feat/d/0.npy': 50, 'audio_feat/d/1.npy': 51,
         'audio_feat/notes.txt': 0}


def test_dfdc_pairs_each_window_face_with_the_voice_of_that_window_by_hand(tmp_path):
    root = dfdc_layout(tmp_path / 'dfdc', MIXED)
    ds = DFDC(make_opt(root, dataset_mode='DFDC', phase='test'))
    r, f, a = str(root / 'real'), str(root / 'fake'), str(root / 'audio_feat')
    assert ds.items == [
        ('a', f'{r}/a.jpg', f'{a}/a.npy', 1, 0),
        ('b', f'{r}/b/0.jpg', f'{a}/b/0.npy', 1, 0), ('b', f'{r}/b/1.jpg', f'{a}/b/1.npy', 1, 1),
        ('b', f'{r}/b/2.jpg', f'{a}/b/2.npy', 1, 2), ('b', f'{r}/b/10.jpg', f'{a}/b/10.npy', 1, 10),
        ('c', f'{f}/c.jpg', f'{a}/c.npy', 0, 0),
        ('d', f'{f}/d/0.jpg', f'{a}/d/0.npy', 0, 0), ('d', f'{f}/d/1.jpg', f'{a}/d/1.npy', 0, 1)]
    assert ds.skipped == [] and len(ds) == 8
    # what is loaded is the files of the item: a face's grey level and its voice file's seed are one number
    for i, (video, face, voice, label, window) in enumerate(ds.items):
        got = ds[i]
        value = MIXED[os.path.relpath(face, root)]
        assert abs(int(np.median(got['face'])) - value) <= 2
        assert np.array_equal(got['voice'], ds.load_voice(voice)) and np.load(voice)[0, 0] == -value
        assert (got['video'], got['face_path'], got['voice_path'], got['label'], got['window']) == ds.items[i]


def test_dfdc_problems_are_listed_or_skipped_and_a_split_keeps_its_videos_only(tmp_path):
    # each problem sorts before good entries of its folder, so that a scan that stopped at one would lose them
    bad = {**MIXED, 'audio_feat/b/3.npy': 23,        # a window voice with no face
           'audio_feat/e.npy': 60,                   # a voice with no video
           'real/a0/readme.txt': 0,                  # a window folder without a window
           'fake/a.jpg': 11}                         # a fake of the same name as a real
    del bad['audio_feat/d/0.npy']                    # a window face without its voice
    root = dfdc_layout(tmp_path / 'dfdc', bad)
    r, f, a = str(root / 'real'), str(root / 'fake'), str(root / 'audio_feat')
    with pytest.raises(DatasetError) as error:
        DFDC(make_opt(root, dataset_mode='DFDC', phase='test'))
    assert str(error.value).startswith(f'5 problem(s) under {root}; expected <dataroot>/real/<video>.jpg and ')
    ds = DFDC(make_opt(root, dataset_mode='DFDC', phase='test', skip_bad=True))
    # in the order of the scan: real/, fake/, then the voices of audio_feat/ (sorted) that no face took
    assert ds.skipped == [
        (f'{r}/a0', 'empty folder: no window images'),
        (f'{f}/a.jpg', f'video a is also {r}/a.jpg; a folder prepared twice with different --windows (or labels) '
                       f'holds both: keep one'),
        (f'{f}/d/0.jpg', f'no voice file {a}/d/0.npy'),
        (f'{a}/b/3.npy', 'no face image in real/ or fake/ for this voice'),
        (f'{a}/e.npy', 'no face image in real/ or fake/ for this voice')]
    assert [(v, w) for v, _, _, _, w in ds.items] == [('a', 0), ('b', 0), ('b', 1), ('b', 2), ('b', 10), ('c', 0),
                                                     ('d', 1)]
    # a split keeps the videos of its part, and only their problems count
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': ['a'], 'val': ['d'], 'test': ['b', 'c']}))
    with pytest.raises(DatasetError, match=r'b/3\.npy'):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='test', split_file=str(split)))
    split.write_text(json.dumps({'train': ['a'], 'val': ['c'], 'test': ['b']}))
    val = DFDC(make_opt(root, dataset_mode='DFDC', phase='val', split_file=str(split), isTrain=False))
    assert val.items == [('c', f'{f}/c.jpg', f'{a}/c.npy', 0, 0)] and val.skipped == []
    test = DFDC(make_opt(root, dataset_mode='DFDC', phase='test', split_file=str(split), isTrain=False,
                         skip_bad=True))
    assert [(v, w) for v, _, _, _, w in test.items] == [('b', 0), ('b', 1), ('b', 2), ('b', 10)]
    assert test.skipped == [(f'{a}/b/3.npy', 'no face image in real/ or fake/ for this voice')]
    split.write_text(json.dumps({'train': [], 'val': ['c', 'q'], 'test': ['b']}))
    with pytest.raises(DatasetError, match=r'1 of the 2 val videos it names are not in .* \(e\.g\. q\)') as error:
        DFDC(make_opt(root, dataset_mode='DFDC', phase='val', split_file=str(split), isTrain=False))
    assert error.value.path == str(split)
    # a part the file lacks, a phase with no part, parts that share videos when training
    split.write_text(json.dumps({'train': ['a'], 'val': ['c']}))
    with pytest.raises(DatasetError, match=f'--split_file {split} lists no test videos'):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='test', split_file=str(split), isTrain=False))
    with pytest.raises(DatasetError, match='--split_file: no part for --phase dev; use train, val or test'):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='dev', split_file=str(split), isTrain=False))
    split.write_text(json.dumps({'train': ['a', 'c'], 'val': ['c'], 'test': ['b']}))
    with pytest.raises(DatasetError, match=f'--split_file {split}: 1 video.* in both train and val'):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='val', split_file=str(split), isTrain=True))
    assert DFDC(make_opt(root, dataset_mode='DFDC', phase='val', split_file=str(split), isTrain=False)).items


def test_dfdc_max_dataset_size_keeps_evenly_spaced_windows(tmp_path):
    root = dfdc_layout(tmp_path / 'dfdc', MIXED)
    full = DFDC(make_opt(root, dataset_mode='DFDC', phase='test')).items
    # 8 windows cut to 3: positions linspace(0, 7, 3) = 0, 3.5, 7, rounded half to even: 0, 4, 7
    assert DFDC(make_opt(root, dataset_mode='DFDC', phase='test', max_dataset_size=3)).items == [full[0], full[4],
                                                                                                 full[7]]
    assert DFDC(make_opt(root, dataset_mode='DFDC', phase='test', max_dataset_size=8)).items == full
    assert DFDC(make_opt(root, dataset_mode='DFDC', phase='test', max_dataset_size=1)).items == [full[0]]


def test_dfdc_layout_errors_name_what_is_wrong(tmp_path):
    only_folders = {k: v for k, v in MIXED.items() if k.split('/')[1] not in ('a.jpg', 'c.jpg', 'a.npy', 'c.npy')}
    root = dfdc_layout(tmp_path / 'folders', only_folders)     # real/ and fake/ hold window folders only
    videos = [v for v, _, _, _, _ in DFDC(make_opt(root, dataset_mode='DFDC', phase='test')).items]
    assert videos == ['b'] * 4 + ['d'] * 2
    for missing in ('fake', 'audio_feat'):
        root = dfdc_layout(tmp_path / f'no_{missing}', {k: v for k, v in MIXED.items() if not k.startswith(missing)})
        with pytest.raises(DatasetError, match=f'^{root / missing} is missing; DFDC expects <dataroot>/real/'):
            DFDC(make_opt(root, dataset_mode='DFDC', phase='test'))
    root = dfdc_layout(tmp_path / 'empty', {**MIXED, 'fake/_notes.txt': 0})
    os.remove(root / 'fake' / 'c.jpg')
    shutil.rmtree(root / 'fake' / 'd')                          # fake/ holds _notes.txt only
    with pytest.raises(DatasetError, match=f'^{root / "fake"} holds no face images \\(an empty folder\\); DFDC '):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='test'))
    root = dfdc_layout(tmp_path / 'voiceless', {k: v for k, v in MIXED.items() if not k.endswith('.npy')})
    with pytest.raises(DatasetError, match=f'^no usable voice-face pairs under {root}; DFDC expects '):
        DFDC(make_opt(root, dataset_mode='DFDC', phase='test', skip_bad=True))


def test_dfdc_logs_its_counts_and_takes_the_transport_options(tmp_path, caplog):
    root = dfdc_layout(tmp_path / 'dfdc', MIXED)
    with caplog.at_level('INFO', logger='data.DFDC_dataset'):
        ds = DFDC(make_opt(root, dataset_mode='DFDC', phase='test'))
    assert f'DFDC {root} (test): 5 real and 3 fake windows of 4 videos' in caplog.messages
    assert ds.phase == 'test' and ds[0]['voice'].dtype == np.float16
    wide = DFDCDataset(make_opt(root, dataset_mode='DFDC', phase='test'), 'test', voice_dtype='float32')
    assert wide[0]['voice'].dtype == np.float32
    # the journal's inputs pair each face with a .wav beside it; the .npy files are not theirs
    wavs = dfdc_layout(tmp_path / 'wav', {**{k: v for k, v in MIXED.items() if not k.endswith('.npy')},
                                          'audio_feat/a.wav': 0, 'audio_feat/b/0.wav': 0, 'audio_feat/b/1.wav': 0,
                                          'audio_feat/b/2.wav': 0, 'audio_feat/b/10.wav': 0, 'audio_feat/c.wav': 0,
                                          'audio_feat/d/0.wav': 0, 'audio_feat/x.wav': 0, 'audio_feat/a.npy': 1})
    journal = DFDCDataset(make_opt(wavs, dataset_mode='DFDC', phase='test', skip_bad=True), 'test', inputs='journal')
    a = str(wavs / 'audio_feat')
    assert [voice for _, _, voice, _, _ in journal.items] == [
        f'{a}/a.wav', f'{a}/b/0.wav', f'{a}/b/1.wav', f'{a}/b/2.wav', f'{a}/b/10.wav', f'{a}/c.wav', f'{a}/d/0.wav']
    assert journal.skipped == [(str(wavs / 'fake' / 'd' / '1.jpg'),
                                f'no voice file {a}/d/1.wav' + journal.missing_voice_hint()),
                               (f'{a}/x.wav', 'no face image in real/ or fake/ for this voice')]


def test_dfdc_fine_tuning_takes_real_windows_as_anchors_and_needs_negatives(tmp_path):
    root = dfdc_layout(tmp_path / 'dfdc', MIXED)
    opt = make_opt(root, dataset_mode='DFDC', phase='train', augment='none')
    with pytest.raises(DatasetError, match='^fine-tuning on DFDC takes its negatives from the fake faces: use '
                                           '--negatives sampled$'):
        DFDCDataset(opt, 'train')                 # no negatives by default
    assert DFDC(opt, n_negatives=1).load(0, np.random.default_rng(0))['neg_faces'].shape[0] == 1
    ds = DFDC(opt, n_negatives=2)
    assert ds.training and ds.phase == 'train' and len(ds) == 5
    assert [i[0] for i in ds.reals] == ['a'] + ['b'] * 4 and [i[0] for i in ds.fakes] == ['c', 'd', 'd']
    assert ds.video_index == {'a': 0, 'b': 1, 'c': 2, 'd': 3}
    item = ds.load(1, np.random.default_rng(0))
    assert item['face_path'] == str(root / 'real' / 'b' / '0.jpg') and item['identity'] == 1
    assert item['neg_faces'].shape[0] == 2 and set(item['neg_identities'].tolist()) <= {-3, -4}
    # the same folder read by test_DF.py (not training): labelled windows, real and fake
    assert not DFDC(make_opt(root, dataset_mode='DFDC', phase='train', isTrain=False)).training
    only_reals = dfdc_layout(tmp_path / 'reals', {**{k: v for k, v in MIXED.items() if not k.startswith('fake/')},
                                                   'fake/d/x.txt': 0})
    with pytest.raises(DatasetError, match='fine-tuning needs real and fake videos in the training part of '):
        DFDC(make_opt(only_reals, dataset_mode='DFDC', phase='train', skip_bad=True), n_negatives=2)


# fine-tuning: 5 real windows (videos a, b) and 4 fake ones (c, d, e); grey levels far apart, so that each face read
# back names its file
FINE = {'real/a.jpg': 10, 'real/b/0.jpg': 30, 'real/b/1.jpg': 50, 'real/b/2.jpg': 70, 'real/b/3.jpg': 90,
        'fake/c.jpg': 120, 'fake/d/0.jpg': 150, 'fake/d/1.jpg': 180, 'fake/e.jpg': 210}


def fine_voice(face):
    """The voice file (under the root) of FINE face ``face``: audio_feat/<video>.npy or audio_feat/<video>/<k>.npy."""
    return 'audio_feat/' + os.path.splitext(face.split('/', 1)[1])[0] + '.npy'


FINE_VOICES = {fine_voice(path): value for path, value in FINE.items()}


def fake_of(face):
    """The FINE fake whose grey level ``face`` (uint8, (3, S, S)) holds."""
    level = int(np.median(face))
    path = min((p for p in FINE if p.startswith('fake/')), key=lambda p: abs(FINE[p] - level))
    assert abs(FINE[path] - level) <= 3, level
    return path


def test_dfdc_fine_tuning_items_hold_their_real_window_and_distinct_fakes_by_hand(tmp_path):
    root = dfdc_layout(tmp_path / 'dfdc', {**FINE, **FINE_VOICES})
    opt = make_opt(root, dataset_mode='DFDC', phase='train', augment='none')
    # the negative's identity: minus one minus its video's index among all videos in name order (a b c d e)
    identity = {'fake/c.jpg': -3, 'fake/d/0.jpg': -4, 'fake/d/1.jpg': -4, 'fake/e.jpg': -5}
    for k in (1, 3, 4, 6):                      # 4 fakes: drawn without replacement up to 4, with it beyond
        ds = DFDCDataset(opt, 'train', k, neg_voices=k != 3)
        assert len(ds) == 5
        drawn = set()
        for index, (video, face, voice, label, _) in enumerate(ds.reals):
            assert label == 1
            for seed in range(4):
                item = ds.load(index, np.random.default_rng([index, seed]))
                assert item['index'] == index and item['face_path'] == face
                assert item['identity'] == 'ab'.index(video)
                assert abs(int(np.median(item['face'])) - FINE[os.path.relpath(face, root)]) <= 3
                assert np.array_equal(item['voice'], ds.load_voice(voice))
                negatives = [fake_of(f) for f in item['neg_faces']]
                assert len(negatives) == k and (k > 4 or len(set(negatives)) == k)   # distinct while they can be
                assert item['neg_identities'].dtype == np.int64
                assert item['neg_identities'].tolist() == [identity[n] for n in negatives]
                if k == 3:
                    assert 'neg_voices' not in item
                else:                            # each fake face with the voice of its own window
                    assert item['neg_voices'].shape == (k, 1, 512, 301)
                    for got, path in zip(item['neg_voices'], negatives):
                        assert np.array_equal(got, ds.load_voice(str(root / fine_voice(path))))
                again = ds.load(index, np.random.default_rng([index, seed]))      # the same generator, the same item
                assert np.array_equal(again['neg_identities'], item['neg_identities'])
                assert np.array_equal(again['neg_faces'], item['neg_faces'])
                drawn.update(negatives)
        assert drawn == set(identity)            # the draws differ between generators and reach every fake
    # with room to crop and flips on, the anchor's face and each fake face are cropped and flipped afresh per draw
    for i, path in enumerate(FINE):
        noise_face(root / path, i)
    ds = DFDCDataset(make_opt(root, dataset_mode='DFDC', phase='train', load_size=40, crop_size=32, no_flip=False),
                     'train', 4)
    anchors, fakes = set(), set()
    for seed in range(6):
        item = ds.load(0, np.random.default_rng(seed))
        anchors.add(item['face'].tobytes())
        fakes.update(f.tobytes() for f, who in zip(item['neg_faces'], item['neg_identities']) if who == -3)
    assert len(anchors) > 3 and len(fakes) > 3


def test_dfdc_fine_tuning_starts_journal_voices_at_a_random_offset(tmp_path, monkeypatch):
    from data import inputs as data_inputs
    wavs = {path[:-len('.npy')] + '.wav': 0 for path in FINE_VOICES}      # empty files: the reader is replaced
    root = dfdc_layout(tmp_path / 'dfdc', {**FINE, **wavs})
    # a voice that says where it started: every value is the offset it was read from
    monkeypatch.setattr(data_inputs, 'load_journal_voice',
                        lambda path, read, offset, n_mels, n_frames: np.full((1, 2, 3), offset, np.float32))
    opt = make_opt(root, dataset_mode='DFDC', phase='train', augment='none')
    ds = DFDCDataset(opt, 'train', 2, inputs='journal', voice_dtype='float32', neg_voices=True)
    starts = []
    for index in range(len(ds)):
        for seed in range(4):
            item = ds.load(index, np.random.default_rng([index, seed]))
            starts.append([int(item['voice'][0, 0, 0])] + [int(v[0, 0, 0]) for v in item['neg_voices']])
    offsets = [s for item in starts for s in item]
    assert all(s in data_inputs.DEEPFAKE_OFFSETS for s in offsets)       # 0.1 to 1 s, in steps of 10 ms
    assert len(set(offsets)) > 30                                       # drawn, not fixed: 60 draws from 90
    assert sum(len(set(item)) == 3 for item in starts) > 15            # each voice of an item draws its own start
    # a test reads each window from its start; the stored mels have no offset
    test = DFDCDataset(make_opt(root, dataset_mode='DFDC', phase='train', isTrain=False), 'train', inputs='journal',
                       voice_dtype='float32')
    assert {int(test[i]['voice'].max()) for i in range(len(test))} == {0}
    mels = dfdc_layout(tmp_path / 'mels', {**FINE, **FINE_VOICES})
    assert {DFDCDataset(make_opt(mels, dataset_mode='DFDC', phase='train'), 'train', 2)._offset(
        np.random.default_rng(seed)) for seed in range(20)} == {0}


def test_dfdc_original_protocol_takes_the_fakes_in_name_or_listdir_order(tmp_path, monkeypatch):
    # fakes: the image e.jpg, the window folder d.v2/ (a dot in a folder name is not an extension), c.jpg
    layout = {**MIXED, 'fake/e.jpg': 70, 'audio_feat/e.npy': 70}
    layout = {k.replace('/d/', '/d.v2/'): v for k, v in layout.items()}
    root = dfdc_layout(tmp_path / 'dfdc', layout)
    listing = ['e.jpg', '_notes.txt', 'd.v2', 'c.jpg']    # the file system's order, neither sorted nor reversed
    real_listdir = os.listdir
    monkeypatch.setattr(os, 'listdir', lambda path='.': listing if os.path.normpath(str(path)) == str(root / 'fake')
                        else real_listdir(path))

    def fakes(**options):
        ds = DFDC(make_opt(root, dataset_mode='DFDC', phase='test', protocol='original', **options))
        assert [v for v, _, _, label, _ in ds.items if label == 1] == ['a', 'b', 'b', 'b', 'b']
        return [(v, w) for v, _, _, label, w in ds.items if label == 0]
    # 4 fakes for 5 reals: every fake once
    assert fakes() == fakes(original_order='sorted') == [('c', 0), ('d.v2', 0), ('d.v2', 1), ('e', 0)]
    assert fakes(original_order='listdir') == [('e', 0), ('d.v2', 0), ('d.v2', 1), ('c', 0)]

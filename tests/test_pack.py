"""scripts/pack_dataset.py: packed shards mean what the folder meant, for both layouts; packing is resumable and
split across machines; prep scripts share their inputs with --shard K/N."""
import json
import os

import pytest
import torch

from data import DatasetError, create_dataset
from data.store import PackedStore, open_store
from scripts import pack_dataset
from tests.conftest import dfdc, vox
from tests.test_datasets import make_opt


def batches(opt, phase, epochs=(1, 2), **dataset_args):
    """Every batch of ``phase`` for two epochs (shuffled for training), as plain tensors and lists."""
    loader = create_dataset(opt, phase, **dataset_args)
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        out.extend(loader)
    return loader, out


def assert_same_batches(a, b, loose_root, packed_root):
    assert len(a) == len(b) and a
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), key
            else:   # paths name the same files under the other root
                assert [p.replace(str(loose_root), '') for p in x[key]] == \
                       [p.replace(str(packed_root), '') for p in y[key]], key


@pytest.fixture(scope='module')
def packed(sample_root, tmp_path_factory):
    """The sample Voxceleb2 and DFDC sets, packed into small shards (several per set)."""
    out = tmp_path_factory.mktemp('packed')
    for name, root in (('vox', vox(sample_root)), ('dfdc', dfdc(sample_root))):
        assert pack_dataset.main(['--dataroot', root, '--out', str(out / name), '--files_per_shard', '7',
                                  '--workers', '2']) == 0
    return out


@pytest.mark.parametrize('negatives', [0, 3])
def test_packed_vox_gives_the_same_batches_as_the_folder(sample_root, packed, negatives):
    for phase, k in (('train', negatives), ('val', 3)):
        loose = make_opt(vox(sample_root), val_ratio=0.25, batch_size=3, load_size=64, crop_size=64, no_flip=False)
        pack = make_opt(packed / 'vox', val_ratio=0.25, batch_size=3, load_size=64, crop_size=64, no_flip=False)
        ld, a = batches(loose, phase, n_negatives=k)
        pd, b = batches(pack, phase, n_negatives=k)
        assert pd.dataset.store.packed and not ld.dataset.store.packed
        assert ld.dataset.split_lists() == pd.dataset.split_lists()
        assert_same_batches(a, b, vox(sample_root), packed / 'vox')


def test_packed_dfdc_keeps_windows_split_file_categories_and_protocol(sample_root, packed, tmp_path):
    root = dfdc(sample_root)
    reals = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'real')))
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': reals[:2], 'val': reals[2:3], 'test': reals[1:]}))
    for extra in ({}, {'split_file': str(split)}, {'protocol': 'original'}):
        loose = make_opt(root, dataset_mode='DFDC', phase='test', isTrain=False, batch_size=4, load_size=64,
                         crop_size=64, **extra)
        pack = make_opt(packed / 'dfdc', dataset_mode='DFDC', phase='test', isTrain=False, batch_size=4,
                        load_size=64, crop_size=64, **extra)
        ld, a = batches(loose, 'test', epochs=(0,))
        pd, b = batches(pack, 'test', epochs=(0,))
        assert ld.dataset.categories() == pd.dataset.categories()
        assert_same_batches(a, b, root, packed / 'dfdc')


def test_packing_is_resumable_and_split_across_machines(sample_root, tmp_path, capsys):
    root = vox(sample_root)
    out = tmp_path / 'p'
    # two "machines": part 1 of 2 first; the set is refused until part 0 is there too
    assert pack_dataset.main(['--dataroot', root, '--out', str(out), '--files_per_shard', '5', '--shard', '1/2',
                              '--workers', '1']) == 0
    shards = json.loads((out / 'pack.json').read_text())['shards']
    done = sorted(n[:-5] for n in os.listdir(out) if n.endswith('.json') and n.startswith('shard-'))
    assert done == shards[1::2]
    with pytest.raises(DatasetError, match='shards are missing'):
        PackedStore(str(out))
    assert pack_dataset.main(['--dataroot', root, '--out', str(out), '--files_per_shard', '5', '--shard', '0/2',
                              '--workers', '2']) == 0
    store = open_store(str(out))
    files = pack_dataset.list_files(root)
    assert store.packed and len(store.files) == len(files)
    for rel in files[::7]:
        with open(os.path.join(root, rel), 'rb') as handle:
            assert store.read(os.path.join(str(out), rel)) == handle.read()
    # a killed run: a shard's index gone and a temporary left behind; the rerun redoes only that shard
    (out / (shards[0] + '.json')).unlink()
    (out / f'.{shards[0]}.bin.123.tmp').write_bytes(b'half')
    capsys.readouterr()
    assert pack_dataset.main(['--dataroot', root, '--out', str(out), '--files_per_shard', '5', '--workers', '1']) == 0
    printed = capsys.readouterr().out
    assert 'removed 1 temporary file' in printed and f'{len(shards) - 1} already packed' in printed
    assert not any(n.endswith('.tmp') for n in os.listdir(out))
    assert len(open_store(str(out)).files) == len(files)


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert pack_dataset.main(['--dataroot', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'o')]) == 2
    assert 'is not a folder' in capsys.readouterr().err
    assert pack_dataset.main(['--dataroot', str(tmp_path), '--out', str(tmp_path / 'o'), '--shard', '2/2']) == 2
    assert 'K must lie in 0..N-1' in capsys.readouterr().err


def test_prep_scripts_share_their_inputs_with_shard(monkeypatch, tmp_path):
    from prep import video
    seen = []
    monkeypatch.setattr(video, 'run', lambda clips, config, out, workers, desc, skipped_name, shared: seen.append(
        ([c.video for c in clips], skipped_name, shared)) or {'done': len(clips), 'already': 0})
    clips = [video.Clip(video=f'v{i}.mp4', face_out=str(tmp_path / f'{i}.jpg'), voice_out=str(tmp_path / f'{i}.npy'))
             for i in range(7)]

    def build(args):
        return clips, 'clips'
    for part in range(3):
        assert video.main_for('test', lambda parser: None, build, ['--out', str(tmp_path), '--shard', f'{part}/3']) == 0
    assert [s[0] for s in seen] == [['v0.mp4', 'v3.mp4', 'v6.mp4'], ['v1.mp4', 'v4.mp4'], ['v2.mp4', 'v5.mp4']]
    assert [s[1] for s in seen] == ['skipped-0-of-3.csv', 'skipped-1-of-3.csv', 'skipped-2-of-3.csv']
    assert all(s[2] for s in seen)   # each part knows the others write into the same folder


def test_packed_sets_feed_journal_inputs_as_the_folders_do(sample_root, packed):
    """The WAV voices travel in the shards too: journal training items (augmented faces, power mels) and DFDC test
    pairs come out of a pack exactly as out of the folder."""
    journal = dict(inputs='journal', face_backend='pil', voice_dtype='float32', face_resample='bilinear')
    sizes = dict(load_size=73, crop_size=64, n_mels=128, n_frames=256, no_flip=False)
    loose = make_opt(vox(sample_root), val_ratio=0.25, batch_size=3, augment='journal', **sizes)
    pack = make_opt(packed / 'vox', val_ratio=0.25, batch_size=3, augment='journal', **sizes)
    ld, a = batches(loose, 'train', n_negatives=2, **journal)
    _, b = batches(pack, 'train', n_negatives=2, **journal)
    assert a[0]['voice'].shape[1:] == (1, 128, 256) and a[0]['voice'].dtype == torch.float32
    assert_same_batches(a, b, vox(sample_root), packed / 'vox')
    loose = make_opt(dfdc(sample_root), dataset_mode='DFDC', phase='test', isTrain=False, **sizes)
    pack = make_opt(packed / 'dfdc', dataset_mode='DFDC', phase='test', isTrain=False, **sizes)
    _, a = batches(loose, 'test', epochs=(0,), shuffle=False, **journal)
    _, b = batches(pack, 'test', epochs=(0,), shuffle=False, **journal)
    assert all(p.endswith('.wav') for batch in a for p in batch['voice_path'])
    assert_same_batches(a, b, dfdc(sample_root), packed / 'dfdc')

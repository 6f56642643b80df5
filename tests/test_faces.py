"""Face preparation: the torchvision and PIL backends against each other, the uint8 transport against the float
inputs the encoders got before, and clear errors."""
import os
import types

import numpy as np
import pytest
import torch
from PIL import Image

from data import DatasetError, faces
from data.transport import Transport


def opt(load=48, crop=40, preprocess='resize_and_crop', no_flip=False):
    return types.SimpleNamespace(load_size=load, crop_size=crop, preprocess=preprocess, no_flip=no_flip)


def photo(size=(60, 52), seed=0):
    """A smooth colour image with some texture (what faces look like to a resampler)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) * 127 / (size[0] + size[1])], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def old_float_face(image, o, rng, train):
    """The float32 encoder input the datasets delivered before faces travelled as uint8 (PIL, / 255, mean/std 0.5)."""
    image = image.resize((o.load_size, o.load_size), Image.BICUBIC)
    crop = o.crop_size
    left, top = (int(rng.integers(0, o.load_size - crop + 1)), int(rng.integers(0, o.load_size - crop + 1))) \
        if train else ((o.load_size - crop) // 2,) * 2
    array = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    if train and not o.no_flip and rng.random() < 0.5:
        array = array[:, ::-1]
    return np.ascontiguousarray(((array - 0.5) / 0.5).transpose(2, 0, 1))


@pytest.mark.parametrize('train', [False, True])
def test_uint8_transport_gives_the_encoders_exactly_the_old_float_input(tmp_path, train):
    path = tmp_path / 'face.png'
    photo().save(path)
    for seed in range(6):
        got = faces.load_face(str(path), opt(), np.random.default_rng(seed), train, backend='pil')
        assert got.dtype == np.uint8 and got.shape == (3, 40, 40)
        expected = old_float_face(Image.open(path).convert('RGB'), opt(), np.random.default_rng(seed), train)
        assert torch.equal(Transport().to_encoder(torch.from_numpy(got)), torch.from_numpy(expected))


def test_both_backends_draw_the_same_crop_and_flip(tmp_path):
    """Without resampling (a PNG already at --load_size) the two backends give identical pixels."""
    path = tmp_path / 'face.png'
    photo((48, 48)).save(path)
    flips = set()
    for seed in range(12):
        a = faces.load_face(str(path), opt(), np.random.default_rng(seed), True, backend='pil')
        b = faces.load_face(str(path), opt(), np.random.default_rng(seed), True, backend='torchvision')
        np.testing.assert_array_equal(a, b)
        flips.add(bool(np.array_equal(a, faces.load_face(str(path), opt(no_flip=True), np.random.default_rng(seed),
                                                          True, backend='pil'))))
    assert flips == {True, False}   # both outcomes of the flip were drawn
    for preprocess in ('crop', 'none'):    # no resampling in these either ('resize' resamples: see below)
        o = opt(48, 48, preprocess) if preprocess == 'none' else opt(48, 40, preprocess)
        np.testing.assert_array_equal(faces.load_face(str(path), o, backend='pil'),
                                      faces.load_face(str(path), o, backend='torchvision'))


def test_torchvision_resizing_and_decoding_stay_within_two_levels_of_pil(tmp_path):
    """What differs and why: PIL and torchvision both decode JPEG with libjpeg-turbo but may upsample chroma
    differently, and their bicubic antialiasing kernels round differently, so a pixel may move by a level or two.
    Measured here: at most 2 of 255, and fewer than 1 % of the values more than 1 apart."""
    diffs = []
    for seed, size in enumerate([(60, 52), (128, 128), (31, 90)]):
        path = tmp_path / f'face{seed}.jpg'
        photo(size, seed).save(path, quality=90)
        a = faces.load_face(str(path), opt(), backend='pil').astype(int)
        b = faces.load_face(str(path), opt(), backend='torchvision').astype(int)
        diffs.append(np.abs(a - b).ravel())
    diffs = np.concatenate(diffs)
    assert diffs.max() <= 2 and (diffs > 1).mean() < 0.01


@pytest.mark.parametrize('backend', faces.BACKENDS)
def test_unreadable_and_too_small_images_name_the_file(tmp_path, backend):
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.raises(DatasetError, match='bad.jpg: cannot read the face image') as info:
        faces.load_face(str(bad), opt(), backend=backend)
    assert info.value.path == str(bad)
    small = tmp_path / 'small.png'
    photo((20, 20)).save(small)
    with pytest.raises(DatasetError, match='small.png: image 20x20 is smaller than --crop_size 40'):
        faces.load_face(str(small), opt(preprocess='crop'), backend=backend)


def test_device_decoding_gives_the_loader_faces_exactly(tmp_path):
    """--face_decode device: the workers ship JPEG bytes and draws, the batch is decoded and cropped, resized and
    flipped together (here on the CPU: the same libjpeg and the same uint8 resize as the workers, so bit-identical;
    nvjpeg on a GPU rounds its own way). PNG faces are decoded in the worker and travel as pixels among them."""
    paths = []
    for seed, size in enumerate([(60, 52), (48, 48), (128, 100), (48, 48)]):
        path = tmp_path / f'face{seed}.jpg'
        photo(size, seed).save(path, quality=90)
        paths.append(str(path))
    photo((48, 48), 9).save(tmp_path / 'face.png')
    paths.append(str(tmp_path / 'face.png'))
    flips = 0
    for train in (False, True):
        for o in (opt(), opt(48, 48, 'crop')):
            if o.preprocess == 'crop':
                paths_here = [p for p in paths if Image.open(p).size == (48, 48)]
            else:
                paths_here = paths
            loader = [faces.load_face(p, o, np.random.default_rng(i), train) for i, p in enumerate(paths_here)]
            shipped = [faces.load_face(p, o, np.random.default_rng(i), train, backend='jpeg')
                       for i, p in enumerate(paths_here)]
            assert sum(isinstance(face, faces.EncodedFace) for face in shipped) == len(paths_here) - 1   # not the PNG
            batch = faces.FaceBatch.collate(shipped)
            decoded = faces.decode_batch(batch, 'cpu')
            assert decoded.dtype == torch.uint8 and decoded.shape == (len(paths_here), 3, o.crop_size, o.crop_size)
            assert torch.equal(decoded, torch.from_numpy(np.stack(loader)))
            flips += sum(face.flip for face in shipped if isinstance(face, faces.EncodedFace))
    assert flips > 0   # the flip path was taken


def test_device_decoding_keeps_negatives_shaped_and_names_a_corrupt_file(tmp_path):
    paths = []
    for seed in range(3):
        path = tmp_path / f'face{seed}.jpg'
        photo((48, 48), seed).save(path, quality=90)
        paths.append(str(path))
    negatives = [faces.stack_faces([faces.load_face(p, opt(), backend='jpeg') for p in paths]) for _ in range(2)]
    batch = faces.FaceBatch.collate(negatives)
    assert batch.shape == (2, 3) and faces.decode_batch(batch, 'cpu').shape == (2, 3, 3, 40, 40)
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(paths[1], quality=95)
    data = open(paths[1], 'rb').read()
    with open(paths[1], 'wb') as handle:   # header intact, body cut: only the decoder can tell
        handle.write(data[:len(data) * 2 // 3])
    shipped = [faces.load_face(p, opt(), backend='jpeg') for p in paths]    # the worker reads headers only
    with pytest.raises(DatasetError) as caught:
        faces.decode_batch(faces.FaceBatch.collate(shipped), 'cpu')
    assert caught.value.path == paths[1] and 'truncated' in str(caught.value)


def test_where_faces_are_decoded():
    from data.transport import Transport, TransportError, device_decodes_jpeg, resolve_face_decode
    assert resolve_face_decode('auto', 'cpu', 'fixed', 'vfd2022') == 'loader'     # device decoding is for GPUs
    assert resolve_face_decode('device', 'cpu', 'fixed', 'vfd2022') == 'device' and device_decodes_jpeg('cpu')
    assert resolve_face_decode('auto', 'cpu', 'released', 'vfd2022') == 'loader'
    with pytest.raises(TransportError, match='released'):
        resolve_face_decode('device', 'cpu', 'released', 'vfd2022')
    with pytest.raises(TransportError, match='journal'):
        resolve_face_decode('device', 'cpu', 'journal', 'journal')
    assert Transport.for_model('fixed', 'vfd2022', 'device').dataset_kwargs()['face_backend'] == 'jpeg'
    assert Transport.for_model('released', 'vfd2022', 'device').dataset_kwargs() == {
        'face_backend': 'pil', 'voice_dtype': 'float32', 'inputs': 'vfd2022', 'face_resample': 'bicubic'}
    assert Transport.for_model('journal', 'journal', 'device').dataset_kwargs() == {
        'face_backend': 'pil', 'voice_dtype': 'float32', 'inputs': 'journal', 'face_resample': 'bilinear'}


def cut_body(path):
    """Keep a JPEG's header and the first two thirds of its body: it opens, then fails while decoding."""
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) * 2 // 3])


@pytest.mark.parametrize('backend', ['torchvision', 'pil'])
def test_a_jpeg_cut_in_its_body_is_named_from_a_loader_worker(sample_root, tmp_path, backend):
    import shutil
    from data import create_dataset
    from options.test_options import TestOptions
    from tests.conftest import TINY, dfdc
    root = tmp_path / 'DFDC'
    shutil.copytree(dfdc(sample_root), root)
    victim = root / 'real' / sorted(os.listdir(root / 'real'))[0]
    cut_body(victim)
    assert Image.open(victim).size   # the header still reads: the failure comes in the decoder
    opt = TestOptions().parse(['--dataroot', str(root), '--dataset_mode', 'DFDC', '--checkpoints_dir', 'unused',
                               '--gpu_ids', '-1', '--num_threads', '1', *TINY], save=False, verbose=False)
    loader = create_dataset(opt, 'test', shuffle=False, face_backend=backend)
    with pytest.raises(DatasetError) as caught:
        for _ in loader:
            pass
    assert caught.value.path == str(victim) and 'cannot read the face image' in str(caught.value)


def test_a_process_that_keeps_a_loader_error_still_exits(sample_root, tmp_path):
    """Loader workers ignore SIGTERM (the main process handles it), so the exit handler of multiprocessing cannot end
    them: a process that ends while a loader error is still referenced (a failed test's traceback, say) waited for
    ever. The loader now ends its workers when an error leaves it."""
    import shutil
    import subprocess
    import sys
    from tests.conftest import TINY, dfdc
    root = tmp_path / 'DFDC'
    shutil.copytree(dfdc(sample_root), root)
    cut_body(root / 'real' / sorted(os.listdir(root / 'real'))[0])
    script = f'''
import sys
from data import DatasetError, create_dataset
from options.test_options import TestOptions
opt = TestOptions().parse(['--dataroot', {str(root)!r}, '--dataset_mode', 'DFDC', '--checkpoints_dir', 'unused',
                           '--gpu_ids', '-1', '--num_threads', '1', *{TINY!r}], save=False, verbose=False)
KEPT = []
try:
    for _ in create_dataset(opt, 'test', shuffle=False):
        pass
except DatasetError:
    KEPT.append(sys.exc_info())
print('done')
'''
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, '-c', script], cwd=root_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and 'done' in done.stdout, done.stderr[-2000:]

"""The journal's inputs (data/inputs.py): its voice feature against values worked out independently, its WAV
voices, its faces, and the datasets feeding each model the inputs its config names."""
import io
import os

import numpy as np
import pytest
import torch

from data import inputs
from data.errors import DatasetError


def hann_periodic(n):
    """w[i] = 0.5 - 0.5 cos(2 pi i / n), i = 0 .. n-1 (the periodic Hann window)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def htk_filterbank(n_freqs, n_mels, sample_rate):
    """Triangular filters on the HTK mel scale (mel = 2595 log10(1 + f / 700)), peak 1, from 0 Hz to the Nyquist
    frequency, written from the formula in float64: (n_freqs, n_mels)."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    edges = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))
    bank = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        low, centre, high = edges[m:m + 3]
        up = (freqs - low) / (centre - low)
        down = (high - freqs) / (high - centre)
        bank[:, m] = np.maximum(0, np.minimum(up, down))
    return bank


def reference_power_mel(y):
    """The journal's mel worked out in numpy, float64: frames of 512 samples every 160 over the signal padded by 256
    reflected samples at each end, a 480-sample periodic Hann window centred in the frame, |rfft|^2, then the
    filterbank."""
    y = np.asarray(y, dtype=np.float64)
    padded = np.pad(y, 256, mode='reflect')
    window = np.zeros(512)
    window[16:16 + 480] = hann_periodic(480)
    frames = 1 + (len(padded) - 512) // 160
    spectrum = np.stack([np.abs(np.fft.rfft(padded[t * 160:t * 160 + 512] * window)) ** 2 for t in range(frames)],
                        axis=1)                                       # (257, frames)
    return htk_filterbank(257, 128, 16000).T @ spectrum


def speech_like(seconds=2.56, seed=0):
    """A waveform with harmonics, noise and silence (every mel band and a wide range of values get exercised)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    y = sum(np.sin(2 * np.pi * 140 * h * t + rng.uniform(0, 6)) / h for h in range(1, 30)) * 0.1
    y = y * (np.sin(2 * np.pi * 2 * t) > -0.3) + rng.standard_normal(len(t)) * 0.01
    return y.astype(np.float32)


def assert_close_relative(ours, reference, rel=1e-4):
    """Every value within ``rel`` of the reference, relative to the value itself, where the value is not negligible
    (above 1e-6 of the largest), and everywhere within ``rel`` of the largest value."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    scale = np.abs(reference).max()
    assert np.all(np.abs(ours - reference) <= rel * scale)
    big = np.abs(reference) > 1e-6 * scale
    assert np.all(np.abs(ours - reference)[big] <= rel * np.abs(reference[big]))


def test_power_mel_matches_the_formulas():
    y = speech_like()
    ours = inputs.power_mel(y).numpy()
    assert ours.shape == (128, 257)                                   # 40,960 samples -> 257 frames
    assert_close_relative(ours, reference_power_mel(y))


def test_filterbank_matches_the_formula():
    ours = inputs.mel_filterbank().numpy()
    reference = htk_filterbank(257, 128, 16000)
    assert ours.shape == (257, 128)
    assert np.abs(ours - reference).max() < 5e-5                            # float32 against float64
    # 128 bands over 257 bins: the lowest bands are narrower than a bin (31.25 Hz), so band 0 catches nothing at
    # all (torchaudio warns of it with the journal's parameters) and the next few only part of a bin
    assert ours[:, 0].max() == 0 and (ours[:, 1:].max(axis=0) > 0).all()


def test_power_mel_matches_torchaudio_where_it_installs():
    """torchaudio's MelSpectrogram with the journal's parameters (skipped where torchaudio is not installed beside
    this torch: its wheels are built for one torch version each). Run on 2026-12-04 with torch 2.9.1 and
    torchaudio 2.9.1 (a venv of their own; the project's torch 2.14.1 has no torchaudio): passed, and the two mels
    were equal bit for bit on three signals."""
    torchaudio = pytest.importorskip('torchaudio')
    y = speech_like(seed=3)
    transform = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=480, hop_length=160)
    assert_close_relative(inputs.power_mel(y).numpy(), transform(torch.from_numpy(y)).numpy())


def test_journal_window_repeats_short_audio_and_takes_the_offset():
    y = np.arange(1000, dtype=np.float32)
    window = inputs.journal_window(y, offset=1600, length=4000)
    # (1600 + 4000) // 1000 + 1 = 6 copies, from sample 1600 on
    assert window.shape == (4000,) and window[0] == 600 and window[399] == 999 and window[400] == 0
    long = np.arange(50000, dtype=np.float32)
    assert np.array_equal(inputs.journal_window(long, 160), long[160:160 + 40960])


def test_journal_voice_shape_and_frames():
    y = speech_like(3.0)
    voice = inputs.journal_voice(y, n_frames=256)
    assert voice.shape == (1, 128, 256) and voice.dtype == np.float32
    assert np.array_equal(voice[0], inputs.power_mel(y[:40960]).numpy()[:, :256])
    assert inputs.journal_voice(y, n_frames=260)[0, :, 257:].sum() == 0   # padded with zero columns


def test_journal_clip_cut():
    y = np.arange(5 * 16000, dtype=np.float32)
    assert np.array_equal(inputs.journal_clip_cut(y), y[16000:64000])           # seconds 1 to 4
    short = np.arange(3 * 16000, dtype=np.float32)                            # played twice first
    cut = inputs.journal_clip_cut(short)
    assert len(cut) == 48000 and cut[0] == 16000 and cut[32000] == 0


def test_wav_round_trip_is_16_bit(tmp_path):
    y = speech_like(1.0)
    data = inputs.wav_bytes(y)
    back = inputs.read_wav(data, 'x.wav')
    assert back.dtype == np.float32 and len(back) == len(y)
    assert np.abs(back - y).max() <= 1 / 32768 + 1e-7                        # 16-bit PCM, value / 32768
    assert np.array_equal(back * 32768, np.round(back * 32768))
    assert len(inputs.read_wav(data, 'x.wav', frames=100)) == 100


def test_bad_wavs_name_the_file():
    import soundfile
    with pytest.raises(DatasetError, match='x.wav.*empty'):
        inputs.read_wav(b'', 'x.wav')
    with pytest.raises(DatasetError, match='x.wav.*cannot read the voice as a WAV'):
        inputs.read_wav(b'RIFF\x00\x00not a wav at all', 'x.wav')
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(100, np.float32), 44100, format='WAV')
    with pytest.raises(DatasetError, match='44100 Hz'):
        inputs.read_wav(buffer.getvalue(), 'x.wav')
    buffer = io.BytesIO()
    soundfile.write(buffer, np.array([0.0, np.nan], np.float32), 16000, format='WAV', subtype='FLOAT')
    with pytest.raises(DatasetError, match='NaN'):
        inputs.read_wav(buffer.getvalue(), 'x.wav')


def test_faces_are_normalised_as_each_recipe_says():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    half = inputs.normalise_faces(x, 'vfd2022')
    assert torch.allclose(half[0, :, 0, 0], torch.tensor([-1.0, 128 / 127.5 - 1, 1.0]), atol=1e-6)
    clip = inputs.normalise_faces(x, 'journal')
    expected = [(v / 255 - m) / s for v, m, s in zip((0, 128, 255), inputs.CLIP_MEAN, inputs.CLIP_STD)]
    assert torch.allclose(clip[0, :, 0, 0], torch.tensor(expected), atol=1e-6)


def test_journal_faces_scale_bilinear_then_crop_the_centre(tmp_path):
    """A 224 px face, as the prep scripts store it: scaled to 256 with PIL's bilinear filter (the journal's
    GroupScale) and cut to the centre 224."""
    from argparse import Namespace

    from PIL import Image

    from data import faces
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    path = tmp_path / 'f.png'
    image.save(path)
    opt = Namespace(load_size=256, crop_size=224, preprocess='resize_and_crop', no_flip=True)
    got = faces.load_face(str(path), opt, backend='pil', resample='bilinear')
    expected = np.asarray(image.resize((256, 256), Image.BILINEAR))[16:240, 16:240].transpose(2, 0, 1)
    assert np.array_equal(got, expected)


def test_journal_augmentation_is_reproducible_and_changes_faces(tmp_path):
    from argparse import Namespace

    from PIL import Image

    from data import faces
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    opt = Namespace(crop_size=64, no_flip=False)
    a = faces.journal_augment(image, opt, np.random.default_rng([1, 2]))
    b = faces.journal_augment(image, opt, np.random.default_rng([1, 2]))
    c = faces.journal_augment(image, opt, np.random.default_rng([1, 3]))
    assert a.shape == (3, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    before = torch.get_rng_state()
    faces.journal_augment(image, opt, np.random.default_rng(5))
    assert torch.equal(before, torch.get_rng_state())                       # the global generator is left alone


def test_multi_scale_boxes_stay_inside():
    from data.faces import multi_scale_box
    rng = np.random.default_rng(0)
    scales = [224, 196, 168, 147]                                            # 1, .875, .75, .66 of 224
    seen = set()
    for _ in range(300):
        left, top, w, h = multi_scale_box(224, 224, 224, rng)
        assert 0 <= left and left + w <= 224 and 0 <= top and top + h <= 224
        assert abs(scales.index(w) - scales.index(h)) <= 1                   # sides at most one scale step apart
        seen.add((w, h))
    assert len(seen) == 10                                                   # every allowed pair comes up


def test_datasets_read_the_voices_their_model_names(sample_root):
    """One set, two recipes: the 2022 inputs read <clip>.npy, the journal's <clip>.wav (its power mel)."""
    from data import create_dataset
    from tests.conftest import dfdc
    from options.test_options import TestOptions
    opt = TestOptions().parse(['--dataroot', dfdc(sample_root), '--gpu_ids', '-1', '--checkpoints_dir', 'unused',
                               '--crop_size', '64', '--load_size', '73', '--n_mels', '128', '--n_frames', '256'],
                              save=False, verbose=False)
    loader = create_dataset(opt, 'test', shuffle=False, face_backend='pil', voice_dtype='float32', inputs='journal',
                            face_resample='bilinear')
    item = loader.dataset[0]
    assert item['voice_path'].endswith('.wav') and item['voice'].shape == (1, 128, 256)
    samples = inputs.read_wav(open(item['voice_path'], 'rb').read(), item['voice_path'])
    assert np.array_equal(item['voice'], inputs.journal_voice(samples, 0, 128, 256))
    os.rename(item['voice_path'], item['voice_path'] + '.moved')
    try:
        with pytest.raises(DatasetError, match='journal'):
            create_dataset(opt, 'test', shuffle=False, face_backend='pil', voice_dtype='float32', inputs='journal')
    finally:
        os.rename(item['voice_path'] + '.moved', item['voice_path'])

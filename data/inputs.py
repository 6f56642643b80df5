"""What a model reads: the named input recipes, and the journal version's voice feature.

A model's config names its inputs (``ModelConfig.inputs``); the datasets, ``scripts/detect.py`` and the model's own
normalisation follow that name, so a checkpoint is always fed what it was trained on:

======== ============================================== ==================================================
recipe   voice                                          face
======== ============================================== ==================================================
vfd2022  ``<clip>.npy``: the 2022 release's mel in dB   resized to ``load_size`` (bicubic), ``crop_size``
         (512 x 301, librosa, ``data/audio.py``), each  crop, values x / 255 with mean 0.5 and std 0.5 per
         frame divided by its largest magnitude         channel (range [-1, 1])
journal  ``<clip>.wav``: 16 kHz audio; 40,960 samples   resized to ``load_size`` 256 (bilinear, PIL, as the
         (2.56 s) from ``offset`` become a power mel    journal's ``GroupScale``), centre ``crop_size`` 224
         of 128 bands x 257 frames (``power_mel``: no   crop, values x / 255 normalised with CLIP's mean
         logarithm, no normalisation), the first 256    and standard deviation
         frames of which reach the encoder
======== ============================================== ==================================================

The journal's mel is torchaudio's ``MelSpectrogram(sample_rate=16000, n_fft=512, win_length=480, hop_length=160)``
with its other defaults (128 HTK mel bands from 0 Hz to 8 kHz without area normalisation, a periodic Hann window of
480 samples centred in the 512-sample frame, centred frames with reflected padding, power 2). ``power_mel`` computes
exactly that with ``torch.stft`` and its own filterbank, so the runtime does not need torchaudio (whose wheels are
built for one torch version each); tests/test_inputs.py compares it with torchaudio where torchaudio installs (with
torch 2.9.1 and torchaudio 2.9.1 the two are equal bit for bit), and always with a transcription of the formulas
in numpy.

Where the journal's 2.56 s come from: for VoxCeleb2 (pre-training), its preprocessing kept seconds 1 to 4 of a clip
(the clip played twice first when shorter than 4 s, ``journal_clip_cut``) and its loader the first 40,960 samples of
that, offset 0. For the deepfake sets its loader started at a random sample in [1600, 16000) in steps of 160 (0.1 to
1 s), the audio repeated when too short, in fine-tuning and at test time alike; here a test starts at offset 0 of
the stored window (a fixed input, so scores repeat) and fine-tuning draws the journal's random offset
(``DEEPFAKE_OFFSETS``).
"""
import dataclasses
import io
import math

import numpy as np
import torch

from .errors import DatasetError

SAMPLE_RATE = 16000
N_FFT, WIN_LENGTH, HOP_LENGTH, N_MELS = 512, 480, 160, 128
JOURNAL_SAMPLES = 40960                     # 2.56 s at 16 kHz -> 257 frames
JOURNAL_FRAMES = JOURNAL_SAMPLES // HOP_LENGTH + 1
DEEPFAKE_OFFSETS = range(1600, 16000, 160)  # the journal's random start of a deepfake set's voice (fine-tuning)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_WAV_SECONDS = 600                       # a voice file claiming more than this is refused before reading


@dataclasses.dataclass(frozen=True)
class InputRecipe:
    """How one recipe's voices and faces are stored and prepared (see the module docstring)."""

    name: str
    voice_ext: str           # the voice file beside each face: '.npy' (mel in dB) or '.wav' (16 kHz audio)
    voice_dtype: str         # how voices travel from the loader workers
    face_backend: str        # data/faces.py backend that prepares the faces in the workers ('auto': by the model)
    face_resample: str       # 'bicubic' or 'bilinear'
    face_mean: tuple
    face_std: tuple
    n_mels: int
    n_frames: int


INPUTS = {
    'vfd2022': InputRecipe('vfd2022', '.npy', 'float16', 'auto', 'bicubic', (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 512,
                           301),
    # power mels span ten orders of magnitude, beyond float16's range: they travel as float32
    'journal': InputRecipe('journal', '.wav', 'float32', 'pil', 'bilinear', CLIP_MEAN, CLIP_STD, N_MELS,
                           JOURNAL_FRAMES - 1),
}


def recipe(name):
    """The InputRecipe called ``name``; ValueError listing the known ones."""
    if name not in INPUTS:
        raise ValueError(f'unknown inputs {name!r}; known: {", ".join(INPUTS)}')
    return INPUTS[name]


def face_stats(name, device=None):
    """The per-channel mean and standard deviation of recipe ``name``, float32 (3, 1, 1) tensors on ``device``."""
    spec = recipe(name)
    return (torch.tensor(spec.face_mean, dtype=torch.float32, device=device).view(3, 1, 1),
            torch.tensor(spec.face_std, dtype=torch.float32, device=device).view(3, 1, 1))


def normalise_faces(x, name):
    """uint8 faces (..., 3, S, S) -> float32 as the recipe ``name`` feeds them: x / 255, minus the mean, over the
    standard deviation, per channel (the journal's order of operations: divide, subtract, divide)."""
    mean, std = face_stats(name, x.device)
    return x.float().div(255).sub(mean).div(std)


# ------------------------------------------------------------------------------------------------- the journal mel
def hz_to_mel(hz):
    """HTK mel scale: 2595 log10(1 + hz / 700)."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(n_freqs=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=None):
    """(n_freqs, n_mels) float32 triangular filters on the HTK mel scale, peak 1, no area normalisation: filter m
    rises from mel point m to m + 1 and falls to m + 2 of ``n_mels + 2`` points evenly spaced in mel between
    ``f_min`` and ``f_max`` (default: half the sample rate); computed as torchaudio computes them, in float32."""
    f_max = sample_rate // 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    points = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    gaps = points[1:] - points[:-1]                               # (n_mels + 1,)
    slopes = points.unsqueeze(0) - freqs.unsqueeze(1)             # (n_freqs, n_mels + 2)
    rising = -slopes[:, :-2] / gaps[:-1]
    falling = slopes[:, 2:] / gaps[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


_FILTERBANK = {}


def power_mel(samples, n_mels=N_MELS):
    """The journal's voice feature of a 1-D float waveform at 16 kHz: float32 (n_mels, 1 + len // 160) power mel.

    ``torch.stft`` with a periodic Hann window of 480 samples (centred in the 512-point frame), hop 160, centred
    frames with reflected padding; the squared magnitude; then ``@`` the mel filterbank.
    """
    samples = torch.as_tensor(samples, dtype=torch.float32)
    if samples.dim() != 1:
        raise ValueError(f'expected a mono waveform (1-D), got shape {tuple(samples.shape)}')
    if n_mels not in _FILTERBANK:
        _FILTERBANK[n_mels] = mel_filterbank(n_mels=n_mels)
    spec = torch.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
                      window=torch.hann_window(WIN_LENGTH), center=True, pad_mode='reflect', normalized=False,
                      onesided=True, return_complex=True)
    power = spec.abs().pow(2.0)                                   # (257, frames)
    return torch.matmul(power.transpose(-1, -2), _FILTERBANK[n_mels]).transpose(-1, -2)


def journal_window(samples, offset=0, length=JOURNAL_SAMPLES):
    """``length`` samples from ``offset``, the waveform repeated first when it is too short (the journal's loader:
    ``(offset + length) // n + 1`` copies)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise ValueError('an empty waveform')
    if samples.size < offset + length:
        samples = np.tile(samples, (offset + length) // samples.size + 1)
    return samples[offset:offset + length]


def journal_voice(samples, offset=0, n_mels=N_MELS, n_frames=JOURNAL_FRAMES - 1):
    """The voice input of a journal model: float32 (1, n_mels, n_frames), the power mel of the 40,960 samples from
    ``offset``, its frames cut to ``n_frames`` (257 are computed; 256 reach the published encoder) or padded with
    zero columns."""
    mel = power_mel(journal_window(samples, offset), n_mels).numpy()
    if mel.shape[1] >= n_frames:
        mel = mel[:, :n_frames]
    else:
        mel = np.concatenate([mel, np.zeros((n_mels, n_frames - mel.shape[1]), np.float32)], axis=1)
    return np.ascontiguousarray(mel[None], dtype=np.float32)


def journal_clip_cut(samples, sample_rate=SAMPLE_RATE):
    """The journal's VoxCeleb2 preprocessing: seconds 1 to 4 of a clip, the clip played twice first when it is
    shorter than 4 s (so a clip of 2 to 4 s gives a full 3 s; a shorter one gives less)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size < 4 * sample_rate:
        samples = np.concatenate([samples, samples])
    return samples[sample_rate:4 * sample_rate]


# ------------------------------------------------------------------------------------------------- wav files
def wav_bytes(samples, sample_rate=SAMPLE_RATE):
    """A mono 16-bit PCM WAV file of float samples in [-1, 1] (clipped), as bytes."""
    import soundfile
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), sample_rate, format='WAV',
                    subtype='PCM_16')
    return buffer.getvalue()


def read_wav(data, path, frames=None):
    """Float32 mono samples (channels averaged, 16-bit PCM as value / 32768) of the WAV bytes ``data``; only the
    first ``frames`` samples when given. DatasetError naming ``path`` for a file that is not a 16 kHz WAV, is empty
    or claims more than ``MAX_WAV_SECONDS`` seconds."""
    import soundfile
    if not data:
        raise DatasetError(f'{path}: cannot read the voice: the file is empty (0 bytes)', path=path)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as handle:
            if handle.samplerate != SAMPLE_RATE:
                raise DatasetError(f'{path}: the voice is sampled at {handle.samplerate} Hz; journal models read '
                                   f'{SAMPLE_RATE} Hz WAV files (the prep scripts write them)', path=path)
            if handle.frames > MAX_WAV_SECONDS * SAMPLE_RATE or handle.channels > 16:
                raise DatasetError(f'{path}: the voice claims {handle.frames} samples in {handle.channels} channels, '
                                   f'more than a voice window needs; refused before reading', path=path)
            samples = handle.read(frames=-1 if frames is None else frames, dtype='float32', always_2d=True)
    except DatasetError:
        raise
    except (RuntimeError, ValueError, OSError, EOFError) as err:   # soundfile.LibsndfileError is a RuntimeError
        raise DatasetError(f'{path}: cannot read the voice as a WAV file ({str(err).splitlines()[0]})',
                           path=path) from err
    if samples.shape[0] == 0:
        raise DatasetError(f'{path}: the voice holds no samples', path=path)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.all(np.isfinite(mono)):
        raise DatasetError(f'{path}: the voice holds NaN or infinite samples', path=path)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_journal_voice(path, read, offset=0, n_mels=N_MELS, n_frames=JOURNAL_FRAMES - 1):
    """The journal model's voice input from the WAV file ``path`` (its bytes from ``read``): float32
    (1, n_mels, n_frames). Only the samples the window needs are decoded; a shorter file is repeated."""
    samples = read_wav(read(path), path, frames=offset + JOURNAL_SAMPLES)
    if not np.any(samples):
        raise DatasetError(f'{path}: every sample of the voice is 0: it holds no sound (the prep scripts leave '
                           f'silent windows out)', path=path)
    return journal_voice(samples, offset, n_mels, n_frames)

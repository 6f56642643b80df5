"""Voice features: the mel-spectrogram recipe of the released code, and loading a stored mel for the encoders.

Recipe (the released code; docs/method.md): ``librosa.load(path, sr=16000, duration=3)``;
``melspectrogram(hop_length=160, n_mels=512)`` with librosa's other defaults (n_fft 2048, power 2);
``power_to_db(ref=np.max)``; stored as float32 .npy, (512, 301) for a full 3 s clip. At load time every time frame (column) is divided by its largest absolute value over the
mel bins (``librosa.util.normalize`` with its defaults), so values lie in [-1, 0].
"""
import io

import numpy as np

from .errors import DatasetError

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_MELS = 512
DURATION = 3.0
N_FRAMES = int(SAMPLE_RATE * DURATION) // HOP_LENGTH + 1  # 301
SILENT_COLUMN = -1.0  # a silent frame after normalisation: -80 dB everywhere, divided by 80


def mel_from_waveform(y, sr=SAMPLE_RATE, duration=DURATION):
    """Mel spectrogram in dB of the first ``duration`` seconds of a mono waveform, as float32 (n_mels, frames).

    Matches ``mel_from_file`` on a file holding the same samples: the clip is cut to ``duration`` seconds at its
    own rate first, then resampled to 16 kHz (as ``librosa.load(..., sr=16000, duration=3)`` does).
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f'expected a mono waveform (1-D), got shape {y.shape}')
    if duration is not None:
        y = y[:int(round(duration * sr))]
    if sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_mels=N_MELS)
    return librosa.power_to_db(mel, ref=np.max).astype(np.float32)


def mel_from_file(path, duration=DURATION):
    """The released recipe on an audio file: ``librosa.load(path, sr=16000, duration=3)`` -> mel in dB."""
    import librosa

    y, sr = librosa.load(path, sr=SAMPLE_RATE, duration=duration)
    return mel_from_waveform(y, sr, duration=None)


def normalize_mel(mel):
    """``librosa.util.normalize(mel)``: each column divided by its maximum absolute value (all-zero columns kept)."""
    import librosa

    return librosa.util.normalize(mel)


def fit_frames(mel, n_frames):
    """Cut a (n_mels, T) array to its first ``n_frames`` columns, or pad it on the right with silent columns."""
    t = mel.shape[1]
    if t >= n_frames:
        return mel[:, :n_frames]
    pad = np.full((mel.shape[0], n_frames - t), SILENT_COLUMN, dtype=mel.dtype)
    return np.concatenate([mel, pad], axis=1)


def load_voice(path, n_mels=N_MELS, n_frames=N_FRAMES, read=None):
    """Read a stored mel (.npy) and return the encoder input: float32 (1, n_mels, n_frames), values in [-1, 0].

    The mel is normalised per column, then cut or padded to ``n_frames`` (shorter clips get silent columns).
    ``read``: where the file's bytes come from (e.g. a packed store); default the file itself.
    """
    try:
        mel = np.load(io.BytesIO(read(path)) if read else path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(f'{path}: cannot read the mel spectrogram ({err})', path=path) from err
    return voice_array(mel, n_mels, n_frames, source=path)


def voice_array(mel, n_mels=N_MELS, n_frames=N_FRAMES, source='mel'):
    """The encoder input for a mel in dB (n_mels, frames): float32 (1, n_mels, n_frames), values in [-1, 0]."""
    if mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
        raise DatasetError(f'{source}: expected a mel spectrogram of shape ({n_mels}, frames), got {mel.shape}',
                           path=source)
    if not np.issubdtype(mel.dtype, np.floating):
        raise DatasetError(f'{source}: expected floating-point values, got dtype {mel.dtype}', path=source)
    if not np.all(np.isfinite(mel)):
        raise DatasetError(f'{source}: the mel spectrogram holds NaN or infinite values', path=source)
    mel = fit_frames(normalize_mel(mel.astype(np.float32, copy=False)), n_frames)
    return np.ascontiguousarray(mel[None], dtype=np.float32)

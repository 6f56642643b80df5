"""Voice features: the mel-spectrogram recipe of the released code, and loading a stored mel for the encoders.

Recipe (the released code; docs/method.md): ``librosa.load(path, sr=16000, duration=3)``;
``melspectrogram(hop_length=160, n_mels=512)`` with librosa's other defaults (n_fft 2048, power 2);
``power_to_db(ref=np.max)``; stored as float32 .npy, (512, 301) for a full 3 s clip. At load time every time frame (column) is divided by its largest absolute value over the
mel bins (``librosa.util.normalize`` with its defaults), so values lie in [-1, 0].
"""
import functools
import io

import numpy as np

from .errors import DatasetError

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 2048
N_MELS = 512
DURATION = 3.0
N_FRAMES = int(SAMPLE_RATE * DURATION) // HOP_LENGTH + 1  # 301
SILENT_COLUMN = -1.0  # a silent frame after normalisation: -80 dB everywhere, divided by 80
MAX_DB = 1e4          # a stored mel in dB beyond this magnitude is not one (and float32 could not even hold 1e39)


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
    # librosa.feature.melspectrogram(y=y, sr=16000, hop_length=160, n_mels=512), step by step, with its filter bank
    # built once per process (building it took 40 % of the call)
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, window='hann', center=True,
                                pad_mode='constant')) ** 2.0
    mel = np.einsum('...ft,mf->...mt', power, mel_basis(), optimize=True)
    return librosa.power_to_db(mel, ref=np.max).astype(np.float32)


@functools.lru_cache(maxsize=1)
def mel_basis():
    """librosa's mel filter bank of the recipe, (N_MELS, N_FFT // 2 + 1) float32, read-only (shared by every call)."""
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
    basis.flags.writeable = False
    return basis


def mel_from_file(path, duration=DURATION):
    """The released recipe on an audio file: ``librosa.load(path, sr=16000, duration=3)`` -> mel in dB."""
    import librosa

    y, sr = librosa.load(path, sr=SAMPLE_RATE, duration=duration)
    return mel_from_waveform(y, sr, duration=None)


def normalize_mel(mel):
    """``librosa.util.normalize(mel)`` with its defaults, to the bit: each column divided (in float64, the result
    in the mel's dtype) by its maximum absolute value; a column whose maximum is below the dtype's smallest normal
    number is kept as it is. Written out because importing ``librosa.util`` costs seconds per process (numba)."""
    length = np.abs(mel).astype(np.float64).max(axis=0, keepdims=True)
    length[length < np.finfo(mel.dtype).tiny] = 1.0
    out = np.empty_like(mel)
    out[:] = mel / length
    return out


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
        if read is None:
            with open(path, 'rb') as handle:
                data = handle.read()
        else:
            data = read(path)
        check_npy_header(data[:HEADER_PROBE], len(data), path, n_mels)   # before anything the header claims exists
        mel = np.load(io.BytesIO(data), allow_pickle=False)
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(f'{path}: cannot read the mel spectrogram ({err})', path=path) from err
    return voice_array(mel, n_mels, n_frames, source=path)


HEADER_PROBE = 4096   # .npy headers are padded to 64 bytes; any this project writes fits in 4 kB


def check_npy_header(head, size, path, n_mels):
    """Check an .npy file from its first bytes ``head`` and its ``size``, before it is loaded: a zero-byte file,
    another format under the name (an .npz archive, a pickle), a corrupt header, or a shape whose bytes the file
    does not hold (a header claiming petabytes) raise DatasetError naming the file."""
    if size == 0:
        raise DatasetError(f'{path}: cannot read the mel spectrogram: the file is empty (0 bytes)',
                           path=path)
    if head[:2] == b'PK':
        raise DatasetError(f'{path}: cannot read the mel spectrogram: an .npz archive under an .npy name; save '
                           f'each mel with np.save', path=path)
    if head[:6] != b'\x93NUMPY':
        raise DatasetError(f'{path}: cannot read the mel spectrogram: not an .npy file (it starts with '
                           f'{head[:8]!r})', path=path)
    stream = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream, max_header_size=HEADER_PROBE)
    except Exception as err:   # noqa: BLE001 -- numpy's header parser raises ValueError, SyntaxError, TokenError ...
        raise DatasetError(f'{path}: cannot read the mel spectrogram: the .npy header is corrupt '
                           f'({str(err).splitlines()[0]})', path=path) from err
    if dtype.hasobject:
        raise DatasetError(f'{path}: cannot read the mel spectrogram: it holds Python objects, not numbers',
                           path=path)
    if len(shape) != 2 or shape[0] != n_mels:
        raise DatasetError(f'{path}: expected a mel spectrogram of shape ({n_mels}, frames), got {shape}', path=path)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > size - stream.tell():
        raise DatasetError(f'{path}: cannot read the mel spectrogram: its header claims {shape} {dtype} '
                           f'({needed} bytes) but the file holds '
                           f'{size - stream.tell()} bytes of data (truncated or forged)', path=path)


def voice_array(mel, n_mels=N_MELS, n_frames=N_FRAMES, source='mel'):
    """The encoder input for a mel in dB (n_mels, frames): float32 (1, n_mels, n_frames), values in [-1, 0]."""
    if mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
        raise DatasetError(f'{source}: expected a mel spectrogram of shape ({n_mels}, frames), got {mel.shape}',
                           path=source)
    if not np.issubdtype(mel.dtype, np.floating):
        raise DatasetError(f'{source}: expected floating-point values, got dtype {mel.dtype}', path=source)
    if not np.all(np.isfinite(mel)):
        raise DatasetError(f'{source}: the mel spectrogram holds NaN or infinite values', path=source)
    if np.abs(mel).max() > MAX_DB:
        raise DatasetError(f'{source}: the mel spectrogram holds values up to {np.abs(mel).max():.3g}, beyond what a '
                           f'mel in dB holds (power_to_db gives 0 to -80); was it saved in another unit?',
                           path=source)
    if mel.min() == mel.max():
        raise DatasetError(f'{source}: every value of the mel spectrogram is {mel.min():g}: it holds no sound (the '
                           f'prep scripts leave silent windows out)', path=source)
    mel = fit_frames(normalize_mel(mel.astype(np.float32, copy=False)), n_frames)
    return np.ascontiguousarray(mel[None], dtype=np.float32)

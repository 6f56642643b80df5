"""Perturbations of the test inputs for robustness tests (``test_DF.py --perturb KIND:LEVEL[,...]``).

Each perturbation acts where it would act in the world, on the stored media before the model's preprocessing: the
face image (the stored crop, at its stored size) is re-encoded or degraded as a picture, the voice as a 16 kHz
waveform, whose mel is then computed again by the recipe of the stored mels (``data/audio.py``). A mel alone
cannot be re-encoded, so voice perturbations need the WAV the prep scripts write beside every mel (their default
``--voices mel,wav``); journal models read that WAV anyway.

    kind     level                  what is done
    h264     CRF (0-51)             the face encoded as an H.264 picture (libx264, yuv420p) and decoded
    jpeg     quality (1-100)        the face saved as a JPEG of that quality and decoded
    scale    factor (0-1)           the face shrunk to that fraction of its side, then scaled back (bicubic)
    blur     sigma in pixels        Gaussian blur of the face
    noise    sigma (0-255 levels)   Gaussian noise added to every pixel of the face
    snr      dB                     white Gaussian noise added to the voice at that signal-to-noise ratio
    mp3      kbit/s                 the voice encoded as MP3 (libmp3lame) and decoded
    aac      kbit/s                 the voice encoded as AAC and decoded

A condition is one perturbation or several joined with ``+`` (``jpeg:50+snr:10``); ``--perturb`` takes a
comma-separated list of conditions and test_DF.py scores the clean set and each condition in turn. The random draws
(the two noises) come from a generator seeded by ``--seed``, the condition and the file's path, so a test run
repeats exactly, and a file gets the same noise whichever order the loader reads it in.

Limits: the picture perturbations act on the face crop (224 pixels in the prep scripts' layout), not on the whole
frame of the video, so an H.264 CRF here is not the CRF of a full-frame re-encode of the source; the codecs decode
what they encoded (the encoder's delay is removed by aligning the decoded audio with the input).
"""
import hashlib
import io
import re

import numpy as np
from PIL import Image, ImageFilter

from .errors import DatasetError

FACE_KINDS = {'h264': (0, 51), 'jpeg': (1, 100), 'scale': (0.01, 1.0), 'blur': (0.0, 50.0), 'noise': (0.0, 255.0)}
VOICE_KINDS = {'snr': (-30.0, 100.0), 'mp3': (8, 320), 'aac': (8, 320)}
KINDS = {**FACE_KINDS, **VOICE_KINDS}
INTEGER_KINDS = ('h264', 'jpeg', 'mp3', 'aac')
AUDIO_RATE = 16000


class PerturbError(ValueError):
    """A --perturb value that names no known perturbation, or a level outside its range."""


def parse(text):
    """The conditions of a ``--perturb`` value: a list of conditions, each a tuple of (kind, level) pairs."""
    conditions = []
    for part in (p.strip() for p in str(text).split(',')):
        if not part:
            continue
        condition = []
        for piece in part.split('+'):
            match = re.fullmatch(r'\s*([a-z0-9]+)\s*:\s*([-+0-9.eE]+)\s*', piece)
            if not match:
                raise PerturbError(f'--perturb {piece!r}: expected KIND:LEVEL (kinds: {", ".join(KINDS)})')
            kind, value = match.group(1), match.group(2)
            if kind not in KINDS:
                raise PerturbError(f'--perturb {piece!r}: unknown kind {kind!r}; use one of {", ".join(KINDS)}')
            try:
                level = float(value)
            except ValueError:
                raise PerturbError(f'--perturb {piece!r}: the level {value!r} is not a number') from None
            low, high = KINDS[kind]
            if not np.isfinite(level) or not low <= level <= high or (kind in INTEGER_KINDS and level != int(level)):
                whole = ' whole' if kind in INTEGER_KINDS else ''
                raise PerturbError(f'--perturb {piece!r}: the level of {kind} must be a{whole} number in '
                                   f'[{low:g}, {high:g}]')
            if kind == 'scale' and level >= 1.0:
                raise PerturbError(f'--perturb {piece!r}: a scale factor below 1 shrinks the face; 1 changes nothing')
            condition.append((kind, int(level) if kind in INTEGER_KINDS else level))
        if len({k for k, _ in condition}) < len(condition):
            raise PerturbError(f'--perturb {part!r}: a kind appears twice in one condition')
        conditions.append(tuple(condition))
    names = [name(c) for c in conditions]
    if len(set(names)) < len(names):
        raise PerturbError(f'--perturb {text!r}: a condition is listed twice')
    return conditions


def name(condition):
    """The text of a condition, e.g. ``jpeg:50+snr:10``."""
    return '+'.join(f'{kind}:{level:g}' for kind, level in condition)


def _rng(seed, condition, path, kind):
    digest = hashlib.sha256(f'{seed}|{name(condition)}|{kind}|{path}'.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], 'little'))


# ------------------------------------------------------------------------------------------------------ faces

def h264_picture(rgb, crf):
    """``rgb`` (H, W, 3 uint8) encoded as one H.264 picture at ``crf`` (libx264, yuv420p) and decoded."""
    import av
    h, w = rgb.shape[:2]
    even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode='edge')   # 4:2:0 needs even sides
    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='h264') as out:
        stream = out.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = even.shape[1], even.shape[0], 'yuv420p'
        stream.options = {'crf': str(int(crf)), 'preset': 'medium', 'tune': 'stillimage'}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format='rgb24')
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer, 'r', format='h264') as source:
        decoded = next(source.decode(video=0)).to_ndarray(format='rgb24')
    return decoded[:h, :w]


def perturb_face(rgb, kind, level, rng):
    """``rgb`` (H, W, 3 uint8) after one picture perturbation."""
    if kind == 'h264':
        return h264_picture(rgb, level)
    image = Image.fromarray(rgb)
    if kind == 'jpeg':
        buffer = io.BytesIO()
        image.save(buffer, format='JPEG', quality=int(level))
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert('RGB'))
    if kind == 'scale':
        w, h = image.size
        small = image.resize((max(1, round(w * level)), max(1, round(h * level))), Image.BICUBIC)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    if kind == 'blur':
        return np.asarray(image.filter(ImageFilter.GaussianBlur(level))) if level > 0 else rgb
    if kind == 'noise':
        noisy = rgb.astype(np.float64) + rng.normal(0.0, level, size=rgb.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    raise PerturbError(f'{kind} is not a picture perturbation')


# ------------------------------------------------------------------------------------------------------ voices

def mux_mono_audio(container, stream, samples, fmt, rate, size=1024):
    """Encode mono ``samples`` (an array in the sample format ``fmt``, e.g. 'fltp', 's16') with ``stream`` in
    frames of ``size`` and mux them into ``container``, flushing the encoder at the end."""
    import av
    for start in range(0, len(samples), size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, start:start + size]), format=fmt,
                                           layout='mono')
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _codec_round_trip(samples, codec, kbps):
    """``samples`` (float32 mono at 16 kHz) encoded with ``codec`` at ``kbps`` and decoded, aligned with the input."""
    import av
    buffer = io.BytesIO()
    container = {'libmp3lame': 'mp3', 'aac': 'adts'}[codec]
    with av.open(buffer, 'w', format=container) as out:
        stream = out.add_stream(codec, rate=AUDIO_RATE)
        stream.layout = 'mono'
        stream.bit_rate = int(kbps) * 1000
        fmt = 's16p' if codec == 'libmp3lame' else 'fltp'
        data = (np.clip(samples, -1, 1) * 32767).astype(np.int16) if fmt == 's16p' else samples.astype(np.float32)
        mux_mono_audio(out, stream, data, fmt, AUDIO_RATE, stream.codec_context.frame_size or 1152)
    buffer.seek(0)
    chunks = []
    with av.open(buffer, 'r', format=container) as source:
        for frame in source.decode(audio=0):
            array = frame.to_ndarray()
            if array.dtype == np.int16:
                array = array.astype(np.float32) / 32768.0
            chunks.append(array.reshape(array.shape[0] if frame.format.is_planar else 1, -1).mean(axis=0))
    decoded = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return _align(decoded, samples)


def _align(decoded, reference, max_lag=4096):
    """``decoded`` shifted by the lag (0 to ``max_lag`` samples of encoder delay) that best matches ``reference``,
    cut or padded with zeros to its length."""
    from scipy.signal import correlate
    n = len(reference)
    probe = reference[:min(n, AUDIO_RATE)].astype(np.float64)
    span = decoded[:len(probe) + max_lag].astype(np.float64)
    if len(span) <= len(probe):
        lag = 0
    else:
        lag = int(np.argmax(correlate(span, probe, mode='valid', method='fft')))
    out = decoded[lag:lag + n]
    return np.pad(out, (0, n - len(out))).astype(np.float32)


def perturb_voice(samples, kind, level, rng):
    """``samples`` (float32 mono at 16 kHz) after one voice perturbation."""
    samples = np.asarray(samples, dtype=np.float32)
    if kind == 'snr':
        power = float(np.mean(samples.astype(np.float64) ** 2))
        noise = rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (level / 10))
        return (samples + noise).astype(np.float32)
    if kind in ('mp3', 'aac'):
        return _codec_round_trip(samples, 'libmp3lame' if kind == 'mp3' else 'aac', level)
    raise PerturbError(f'{kind} is not a voice perturbation')


# ------------------------------------------------------------------------------------------------------ reading

class PerturbedReader:
    """A ``read(path)`` (the dataset store's) that returns the bytes of perturbed media: a face image (JPEG or PNG)
    after the condition's picture perturbations, a voice after its voice perturbations (a WAV for journal inputs;
    for a mel, the mel of the perturbed WAV beside it, as .npy). Other files pass unchanged."""

    def __init__(self, read, condition, seed):
        self.read, self.condition, self.seed = read, tuple(condition), int(seed)
        self.face = [(k, v) for k, v in self.condition if k in FACE_KINDS]
        self.voice = [(k, v) for k, v in self.condition if k in VOICE_KINDS]

    def __call__(self, path):
        lower = path.lower()
        if self.face and lower.endswith(('.jpg', '.jpeg', '.png')):
            return self._face(path)
        if self.voice and lower.endswith('.npy'):
            return self._mel(path)
        if self.voice and lower.endswith('.wav'):
            from .inputs import wav_bytes
            return wav_bytes(self._voice(path[:-4] + '.wav'))
        return self.read(path)

    def _face(self, path):
        data = self.read(path)
        try:
            rgb = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
        except (OSError, ValueError) as err:
            raise DatasetError(f'{path}: cannot decode the face image to perturb it ({err})', path=path) from err
        for kind, level in self.face:
            rgb = perturb_face(rgb, kind, level, _rng(self.seed, self.condition, path, kind))
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format='PNG', compress_level=1)   # lossless: nothing but the perturbation
        return buffer.getvalue()

    def _voice(self, wav_path):
        from .inputs import read_wav
        try:
            data = self.read(wav_path)
        except OSError as err:
            raise DatasetError(f'{wav_path}: voice perturbations need the 16 kHz WAV beside each mel (the prep scripts '
                               f'write it with --voices mel,wav, their default) ({err})', path=wav_path) from err
        samples = read_wav(data, wav_path)
        for kind, level in self.voice:
            samples = perturb_voice(samples, kind, level, _rng(self.seed, self.condition, wav_path, kind))
        return samples

    def _mel(self, path):
        from .audio import mel_from_waveform
        mel = mel_from_waveform(self._voice(path[:-4] + '.wav'), AUDIO_RATE)
        buffer = io.BytesIO()
        np.save(buffer, mel, allow_pickle=False)
        return buffer.getvalue()

"""From raw videos to the dataset layouts: decoding, face crops, mels, and a resumable parallel runner.

The per-dataset commands (``scripts/prep_voxceleb2.py``, ``prep_dfdc.py``, ``prep_fakeavceleb.py``,
``prep_timit.py``) list their clips and hand them to ``run``; ``scripts/detect.py`` uses ``clip_windows`` on one
video. The rules, the same everywhere:

* Decoding: PyAV (FFmpeg) reads video and audio; the audio comes from the video file itself or from a separate
  file (VoxCeleb2's ``.m4a`` tree, VidTIMIT's ``.wav``); VidTIMIT's videos are folders of numbered frames.
* Audio: every channel averaged to mono, at the file's own rate. With ``--trim_leading_silence`` the samples
  before the first one whose absolute value exceeds ``--silence_threshold`` (default 5e-4, full scale 1.0) are
  dropped first (the leading-silence shortcut of FakeAVCeleb, see docs/method.md); a clip with no such sample is skipped
  as ``silent``.
* Voice window: the first 3 s of that audio, turned into a mel by the released recipe of docs/method.md (cut at
  the file's rate, resampled to 16 kHz as ``librosa.load(sr=16000, duration=3)`` does, ``melspectrogram(hop_length=160,
  n_mels=512)``, ``power_to_db(ref=np.max)``), stored as float32 (512, 301).
* Journal voices (``--voices``, by default both kinds): beside each mel, a 16 kHz mono 16-bit WAV for journal
  models (``data/inputs.py``): 4 s of the audio from the window's start (resampled to 16 kHz), from which their
  loader takes 2.56 s; the VoxCeleb2 script cuts as the journal's preprocessing did (seconds 1 to 4 of the clip,
  played twice first when shorter than 4 s).
* Short clips: a clip with less than 3 s but at least ``--min_seconds`` (default 1.0) of audio keeps the mel of
  what it has, padded on the right to 301 frames with -80 dB columns (silence: the floor of ``power_to_db``, which
  the loader's normalisation turns into -1, the value it pads with too); a shorter clip is skipped as
  ``too_short``.
* Several windows per video (``--windows K``, DFDC-style layouts): K windows of 3 s spread evenly over the audio,
  from its start to its end (one window when the audio is not longer than 3 s). On a time grid instead
  (``Clip.hop``, scripts/prep_av1m.py): window k starts at k x hop seconds, while a whole window fits (at most
  100), and keeps the number k in its file names even when others are left out.
* Face: the video frame shown in the middle of the voice window (1.5 s into it, or the middle of a shorter clip);
  dlib's HOG frontal-face detector (built into the ``dlib-bin`` wheel, no model file) on the frame scaled so its
  shorter side is at most ``--detect_size`` (640; portrait and landscape 1080p alike become 640 pixels across the
  short side, where a 150-pixel face is still larger than the detector's 80-pixel window), upsampled
  ``--upsample`` times (0), and once more upsampled when nothing is found; when the middle frame still shows no
  face, the frames 0.5 s and 1 s either side (within the window) are tried in turn; the largest face wins; the
  crop is a square centred on the box with side (1 + 2 x ``--margin``) x the box's longer side (margin 0.25),
  moved inside the frame where it crosses an edge (and shrunk to the frame if larger), resized to ``--face_size``
  (224) with bicubic filtering and stored as JPEG (quality ``--jpeg_quality``, 95). ``--detector none`` keeps the
  centred square of the whole frame instead (VoxCeleb2's videos are already face-centred crops).
* Silence: a voice window whose RMS level is below ``--silent_db`` (-60 dB full scale) is left out whatever the
  trim option (digital zeros, or hiss: ``power_to_db(ref=np.max)`` would scale either to full loudness), and a clip
  with no other window is skipped as ``silent``.
* Broken files: a file that is not there is ``missing``; audio that ends well before the duration its header
  announces is ``truncated`` (with the seconds decoded); a decoder error is ``unreadable`` (with the seconds decoded
  before it).
* Options: the first run into ``--out`` stores its options in ``<out>/prep_options.json``; a later run with others
  (``--windows``, the detector, sizes, thresholds) is refused, naming them, so one folder never mixes two kinds.
* Outputs are written atomically (temporary name, then rename): the voice first, the face last, so a clip counts
  as done when both exist. A second run skips done clips (resumable); temporary files left by a killed run are
  removed at the start (with ``--shard``, those older than 15 minutes: the other shards may be writing). Clips
  that cannot be used are listed in ``<out>/skipped.csv`` (input, status, reason, detail): status ``skipped``
  (no_audio, no_video, no_face, too_short, silent) or ``failed`` (missing, truncated, unreadable: a corrupt file;
  error: anything unexpected). One bad file never stops the run. Ctrl-C stops the pool, writes ``skipped.csv`` for
  what was met and exits with 130; pool workers end with their parent, even a SIGKILLed one.
"""
import argparse
import io
import json
import multiprocessing
import os
import shutil
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from util import util
from util.runs import remove_stale_temporaries

from data.audio import DURATION, N_FRAMES, SAMPLE_RATE, mel_from_waveform
from data.inputs import journal_clip_cut, wav_bytes

SILENCE_DB = -80.0  # power_to_db(ref=np.max) with top_db=80 never goes below this
SKIP_REASONS = ('no_audio', 'no_video', 'no_face', 'too_short', 'silent')
FAIL_REASONS = ('missing', 'truncated', 'unreadable', 'error')
SILENT_DB = -60.0   # default --silent_db: a window quieter than this (RMS, dB full scale) holds no voice
MAX_WINDOWS = 100   # --windows: each window decodes frames, so thousands would take minutes on a short video


class ClipSkipped(Exception):
    """A clip that gives no usable output; ``reason`` is one of SKIP_REASONS or FAIL_REASONS."""

    def __init__(self, reason, detail):
        super().__init__(f'{reason}: {detail}')
        self.reason, self.detail = reason, detail

    @property
    def status(self):
        """'failed' for the reasons of FAIL_REASONS, 'skipped' for the others."""
        return 'failed' if self.reason in FAIL_REASONS else 'skipped'


@dataclass
class Clip:
    """One input and where its outputs go.

    ``video``: a video file, or a folder of numbered frame images (``fps`` frames per second). ``audio``: the file
    whose audio track is used (default: ``video``). With ``windows`` 1, ``face_out`` and ``voice_out`` are the .jpg
    and .npy paths; with more, they are folders that receive ``<k>.jpg`` and ``<k>.npy`` (k = 0, 1, ...).
    """
    video: str
    face_out: str
    voice_out: str
    audio: str = None
    windows: int = 1
    fps: float = 25.0
    voices: tuple = ('mel', 'wav')
    journal_cut: str = 'window'
    hop: float = 0.0

    def __post_init__(self):
        if self.hop > 0:   # windows on a time grid: always the several-window layout, files named by grid index
            self.windows = max(self.windows, 2)

    @property
    def key(self):
        """The name of the clip in the counts and in skipped.csv: its ``video`` path."""
        return self.video

    @property
    def wav_out(self):
        """Where the journal's 16 kHz WAV voice goes: beside the mel (``<clip>.wav``; with windows, ``<k>.wav`` in
        the same folder as ``<k>.npy``)."""
        return self.voice_out if self.windows > 1 else os.path.splitext(self.voice_out)[0] + '.wav'

    def outputs(self):
        """The paths that exist once the clip is done: its voice file(s) and its face (written last)."""
        voices = [self.voice_out] if self.windows > 1 else \
            [path for kind, path in (('mel', self.voice_out), ('wav', self.wav_out)) if kind in self.voices]
        return voices + [self.face_out]

    def done(self):
        """True when every output exists already (a resumed run leaves the clip out)."""
        return all(os.path.exists(path) for path in self.outputs())


def add_arguments(parser, windows=False):
    """The options every preprocessing command shares."""
    parser.add_argument('--out', required=True, help='output dataset folder (created if missing)')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help='worker processes (1 = in this process)')
    parser.add_argument('--trim_leading_silence', action='store_true',
                        help='drop the samples before the first one above --silence_threshold before the 3 s window')
    parser.add_argument('--silence_threshold', type=float, default=5e-4,
                        help='absolute amplitude (full scale 1.0) that ends the leading silence')
    parser.add_argument('--silent_db', type=float, default=SILENT_DB,
                        help='a voice window whose RMS level is below this (dB full scale) is silent: left out, and '
                             'a clip with only silent windows is skipped (a mel of silence is noise scaled to full '
                             'loudness)')
    parser.add_argument('--min_seconds', type=float, default=1.0,
                        help='shortest usable audio in seconds; shorter clips are skipped, longer ones below 3 s '
                             'are padded with silent (-80 dB) columns')
    parser.add_argument('--detector', choices=('dlib', 'none'), default='dlib',
                        help="face detector: dlib's HOG detector, or none (centred square of the whole frame)")
    parser.add_argument('--face_size', type=int, default=224, help='side of the stored face crop in pixels')
    parser.add_argument('--margin', type=float, default=0.25,
                        help='context around the detected box, as a fraction of its side, on each side')
    parser.add_argument('--upsample', type=int, default=0, help='dlib upsampling passes (finds smaller faces, slower)')
    parser.add_argument('--detect_size', type=int, default=640,
                        help='frames are scaled down so that their shorter side is at most this for detection '
                             '(0 = never); a frame with no face is searched again upsampled once, and a window '
                             'whose middle frame has none tries frames 0.5 and 1 s either side')
    parser.add_argument('--jpeg_quality', type=int, default=95, help='JPEG quality of the face crops')
    parser.add_argument('--limit', type=int, default=0, help='process only the first N inputs (0 = all)')
    parser.add_argument('--shard', default='0/1',
                        help='K/N: process only part K of N of the inputs (every N-th from the K-th), so that N '
                             'machines or array jobs share one dataset; each writes skipped-K-of-N.csv')
    parser.add_argument('--voices', default='mel,wav', choices=VOICE_CHOICES,
                        help='voice files written beside each face: mel = the 2022 release\'s mel (.npy), wav = the '
                             '16 kHz audio that journal models read (.wav; data/inputs.py), or both')
    if windows:
        parser.add_argument('--windows', type=int, default=1,
                            help='voice windows and frames per video: 1 writes <video>.jpg/.npy, K > 1 writes '
                                 '<video>/<k>.jpg and audio_feat/<video>/<k>.npy')
    return parser


CONFIG_KEYS = ('trim_leading_silence', 'silence_threshold', 'silent_db', 'min_seconds', 'detector', 'face_size',
               'margin', 'upsample', 'detect_size', 'jpeg_quality', 'voices')
VOICE_CHOICES = ('mel,wav', 'mel', 'wav')
# what a folder prepared before a setting existed was made with (prep_options.json without the key)
LEGACY_SETTINGS = {'voices': 'mel'}


def config_from(args):
    """The picklable settings that workers need (``voices`` as a tuple of kinds)."""
    config = {key: getattr(args, key) for key in CONFIG_KEYS}
    config['voices'] = tuple(config['voices'].split(','))
    return config


# ---------------------------------------------------------------------------------------------------- decoding

def _open(path):
    import av
    if not os.path.isfile(path):
        raise ClipSkipped('missing', f'{path}: no such file')
    try:
        return av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise ClipSkipped('unreadable', f'{path}: {err}') from err


def decode_audio(path, seconds=None, trim_threshold=None):
    """Mono float32 samples of ``path``'s first audio track, its sample rate, and the seconds trimmed off the start.

    ``trim_threshold``: drop the samples before the first whose absolute value exceeds it. ``seconds``: stop
    decoding once that much audio (after trimming) is in hand (None = all).
    """
    import av
    if not os.path.exists(path):
        raise ClipSkipped('missing', f'{path}: no such audio file')
    with _open(path) as container:
        if not container.streams.audio:
            raise ClipSkipped('no_audio', f'{path}: no audio track')
        stream = container.streams.audio[0]
        claimed = _claimed_seconds(container, stream)
        resampler = av.AudioResampler(format='fltp')  # float32 planar, the file's own layout and rate
        chunks, rate, have, trimmed, started = [], None, 0, 0, trim_threshold is None
        stopped_early = False
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    rate = out.sample_rate
                    samples = out.to_ndarray().astype(np.float32, copy=False).mean(axis=0)
                    if not started:
                        loud = np.flatnonzero(np.abs(samples) > trim_threshold)
                        if len(loud) == 0:
                            trimmed += len(samples)
                            continue
                        trimmed += int(loud[0])
                        samples, started = samples[loud[0]:], True
                    chunks.append(samples)
                    have += len(samples)
                if seconds is not None and rate and have >= seconds * rate:
                    stopped_early = True
                    break
        except av.FFmpegError as err:
            got = (have + trimmed) / rate if rate else 0.0
            raise ClipSkipped('unreadable', f'{path}: audio decoding failed after {got:.2f} s ({err})') from err
    got = (have + trimmed) / rate if rate else 0.0
    if not stopped_early and claimed and got < claimed - max(0.5, 0.05 * claimed):
        raise ClipSkipped('truncated', f'{path}: the audio ends after {got:.2f} s of the {claimed:.2f} s its header '
                                       f'announces (a truncated or partly decodable file)')
    if rate is None:
        raise ClipSkipped('no_audio', f'{path}: the audio track holds no samples')
    if not started:
        raise ClipSkipped('silent', f'{path}: no sample above the silence threshold {trim_threshold}')
    return np.concatenate(chunks), rate, trimmed / rate


def _claimed_seconds(container, stream):
    """The duration of ``stream`` that the file's header announces, in seconds (0 when it announces none): the
    stream's own duration (MP4), or its DURATION tag (Matroska). The container's duration is not used: a recording's
    audio may end before its video."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get('DURATION', '')
    try:
        hours, minutes, seconds = tag.split(':')
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def rms_db(samples):
    """The RMS level of ``samples`` in dB full scale (-inf for digital silence)."""
    if len(samples) == 0:
        return float('-inf')
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10 * np.log10(power) if power > 0 else float('-inf')


def decode_frames(path, times):
    """RGB uint8 arrays (H, W, 3) of the frames on screen at each of ``times`` (seconds), in that order.

    A time past the end gets the last frame.
    """
    import av
    order = np.argsort(times)
    found = [None] * len(times)
    with _open(path) as container:
        if not container.streams.video:
            raise ClipSkipped('no_video', f'{path}: no video track')
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        fps = float(stream.average_rate or 25)
        nxt, last, count = 0, None, 0
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else count / fps
                count += 1
                # the frame on screen at time T is the last one that starts at or before T (half a frame of slack)
                while nxt < len(order) and t > times[order[nxt]] + 0.5 / fps:
                    found[order[nxt]] = last if last is not None else frame.to_ndarray(format='rgb24')
                    nxt += 1
                if nxt == len(order):
                    break
                last = frame.to_ndarray(format='rgb24')
        except av.FFmpegError as err:
            if last is None:
                raise ClipSkipped('unreadable', f'{path}: video decoding failed ({err})') from err
        if last is None and nxt == 0:
            raise ClipSkipped('no_video', f'{path}: the video track holds no frames')
    for i in order[nxt:]:
        found[i] = last
    return found


def frames_from_folder(folder, times, fps=25.0):
    """Frames of a video stored as numbered images (VidTIMIT): the image shown at each of ``times``."""
    from data.base_dataset import is_image
    if not os.path.isdir(folder):
        raise ClipSkipped('unreadable', f'{folder}: no such frame folder')
    names = sorted(n for n in os.listdir(folder) if is_image(n) or n.isdigit())
    if not names:
        raise ClipSkipped('no_video', f'{folder}: holds no frame images')
    out = []
    for t in times:
        path = os.path.join(folder, names[min(len(names) - 1, max(0, int(t * fps)))])
        try:
            with Image.open(path) as image:
                out.append(np.asarray(image.convert('RGB')))
        except OSError as err:
            raise ClipSkipped('unreadable', f'{path}: {err}') from err
    return out


# ---------------------------------------------------------------------------------------------------- voices

def grid_starts(seconds, hop, limit=MAX_WINDOWS):
    """Start times (s) of 3 s windows every ``hop`` seconds from 0 while a window fits in ``seconds`` of audio (one
    at 0 when it is short), at most ``limit`` of them; window k starts at k x hop."""
    count = 1 + max(0, int(np.floor((seconds - DURATION) / hop + 1e-9)))
    return [round(k * hop, 6) for k in range(min(count, limit))]


def window_starts(seconds, windows):
    """Start times (s) of ``windows`` 3 s windows spread evenly over ``seconds`` of audio (one if it is short)."""
    span = seconds - DURATION
    if windows <= 1 or span <= 1e-6:
        return [0.0]
    return [float(s) for s in np.linspace(0.0, span, windows)]


def window_mel(y, sr, start=0.0):
    """The stored mel of the 3 s window starting at ``start`` s: float32 (512, 301), short windows padded."""
    y = y[int(round(start * sr)):]
    mel = mel_from_waveform(y, sr)
    if mel.shape[1] < N_FRAMES:
        pad = np.full((mel.shape[0], N_FRAMES - mel.shape[1]), SILENCE_DB, dtype=np.float32)
        mel = np.concatenate([mel, pad], axis=1)
    return np.ascontiguousarray(mel[:, :N_FRAMES], dtype=np.float32)


JOURNAL_SECONDS = 4.0   # audio kept per window for journal models: a 2.56 s input from any of its offsets fits


def to_16k(y, sr):
    """``y`` at 16 kHz (librosa's resampler, as the mel recipe uses)."""
    if sr == SAMPLE_RATE:
        return np.asarray(y, dtype=np.float32)
    import librosa
    return librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=sr, target_sr=SAMPLE_RATE)


def journal_wav(y16, start=0.0, cut='window'):
    """The samples stored for journal models (``data/inputs.py``): ``JOURNAL_SECONDS`` of 16 kHz audio from the
    window's ``start``, or with ``cut='clip'`` the journal's VoxCeleb2 preprocessing (seconds 1 to 4 of the clip,
    the clip played twice first when shorter than 4 s)."""
    if cut == 'clip':
        return journal_clip_cut(y16)
    first = int(round(start * SAMPLE_RATE))
    return np.ascontiguousarray(y16[first:first + int(JOURNAL_SECONDS * SAMPLE_RATE)], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------- faces

class FaceCropper:
    """Detect the largest face in an RGB frame and return its square crop as a PIL image (None if no face)."""

    def __init__(self, detector='dlib', face_size=224, margin=0.25, upsample=0, detect_size=640, **_):
        self.kind, self.size, self.margin = detector, face_size, margin
        self.upsample, self.detect_size = upsample, detect_size
        self._dlib = None
        if detector == 'dlib':
            import dlib
            self._dlib = dlib.get_frontal_face_detector()
        elif detector != 'none':
            raise ValueError(f'unknown detector {detector!r}; use dlib or none')

    def working_scale(self, height, width):
        """The factor frames of this shape are scaled by for detection: their shorter side brought down to
        ``detect_size`` (a 1920x1080 frame, landscape or portrait, to 1138x640), never up; 1 when it is 0."""
        if not self.detect_size or min(height, width) <= self.detect_size:
            return 1.0
        return self.detect_size / min(height, width)

    def boxes(self, rgb):
        """Face boxes (left, top, right, bottom) in frame pixels, largest first. When none is found at
        ``--upsample`` 0, the frame is searched once more upsampled (dlib's HOG window is 80 pixels, so this finds
        faces down to about 40 pixels of the working size)."""
        h, w = rgb.shape[:2]
        scale = self.working_scale(h, w)
        small = rgb
        if scale != 1.0:
            small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                            Image.BILINEAR))
        small = np.ascontiguousarray(small)
        found = self._dlib(small, self.upsample)
        if not len(found) and self.upsample == 0:
            found = self._dlib(small, 1)
        out = [(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale) for r in found]
        return sorted(out, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)

    def crop(self, rgb):
        """The largest face plus margin (detector none: the centred square), resized to face_size; None if no face."""
        h, w = rgb.shape[:2]
        if self.kind == 'none':
            side = min(h, w)
            left, top = (w - side) / 2, (h - side) / 2
        else:
            found = self.boxes(rgb)
            if not found:
                return None
            x0, y0, x1, y1 = found[0]
            side = min(max(x1 - x0, y1 - y0) * (1 + 2 * self.margin), h, w)
            left = min(max((x0 + x1) / 2 - side / 2, 0), w - side)
            top = min(max((y0 + y1) / 2 - side / 2, 0), h - side)
        box = tuple(int(round(v)) for v in (left, top, left + side, top + side))
        return Image.fromarray(rgb).crop(box).resize((self.size, self.size), Image.BICUBIC)


# ---------------------------------------------------------------------------------------------------- one clip

def clip_windows(video, audio=None, windows=1, fps=25.0, cropper=None, config=None, hop=0.0):
    """Decode one clip and cut it into voice/face windows.

    Returns a list of dicts, one per window: ``start`` (s into the audio, after any trimming), ``mel`` (float32
    (512, 301), dB), ``wav`` (float32 16 kHz samples for journal models: ``JOURNAL_SECONDS`` from the window's start,
    or with ``config['journal_cut'] == 'clip'`` the journal's VoxCeleb2 cut, seconds 1 to 4 of the clip), ``face``
    (PIL image or None when no face was found), ``time`` (s into the video of the frame).
    Raises ClipSkipped when the clip gives nothing (no audio, too short, silent, unreadable, no video).
    """
    config = config or {}
    min_seconds = config.get('min_seconds', 1.0)
    threshold = config.get('silence_threshold', 5e-4) if config.get('trim_leading_silence') else None
    audio = audio or video
    # all of it, even for one window: audio decodes fast, and only the whole track shows a truncated file
    y, sr, offset = decode_audio(audio, seconds=None, trim_threshold=threshold)
    seconds = len(y) / sr
    if seconds < min_seconds:
        raise ClipSkipped('too_short', f'{audio}: {seconds:.2f} s of audio, fewer than --min_seconds {min_seconds}')
    starts = grid_starts(seconds, hop) if hop > 0 else window_starts(seconds, windows)
    silent_db = config.get('silent_db', SILENT_DB)
    levels = [rms_db(y[int(round(s * sr)):int(round((s + DURATION) * sr))]) for s in starts]
    if all(level < silent_db for level in levels):
        raise ClipSkipped('silent', f'{audio}: the audio is silent (RMS {max(levels):.0f} dB full scale, below '
                                    f'--silent_db {silent_db:g}); its mel would be noise scaled to full loudness')
    times = [offset + s + min(DURATION, seconds - s) / 2 for s in starts]

    def frames_at(when):
        return frames_from_folder(video, when, fps) if os.path.isdir(video) else decode_frames(video, when)

    cropper = cropper or FaceCropper(**config)
    found = [{'start': s, 'time': t, 'mel': window_mel(y, sr, s), 'silent': level < silent_db, 'index': k,
              'face': None if level < silent_db else cropper.crop(frame)}
             for k, (s, t, frame, level) in enumerate(zip(starts, times, frames_at(times), levels))]
    if 'wav' in config.get('voices', ('mel', 'wav')):
        y16 = to_16k(y, sr)
        for w in found:
            w['wav'] = journal_wav(y16, w['start'], config.get('journal_cut', 'window'))
    # a window whose middle frame shows no face (turned away, blurred, a cut) tries other frames of its 3 s
    retry = [(w, t) for w in found if w['face'] is None and not w['silent'] and cropper.kind != 'none'
             for t in retry_times(offset + w['start'], min(DURATION, seconds - w['start']), w['time'])]
    if retry:
        for (w, t), frame in zip(retry, frames_at([t for _, t in retry])):
            face = cropper.crop(frame) if w['face'] is None else None
            if face is not None:
                w['face'], w['time'] = face, t
    return found


RETRY_OFFSETS = (-0.5, 0.5, -1.0, 1.0)   # seconds from a window's middle frame, tried in this order


def retry_times(start, length, middle):
    """The other frames a window (``start``, ``length`` s of video) tries when its ``middle`` frame has no face."""
    return [middle + d for d in RETRY_OFFSETS if start <= middle + d <= start + length]


def _jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=quality)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _replace_folder(tmp, final):
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.rename(tmp, final)


def process_clip(clip, config, cropper=None):
    """Preprocess one clip and write its outputs; returns a short detail string. Raises ClipSkipped."""
    found = clip_windows(clip.video, clip.audio, clip.windows, clip.fps, cropper,
                         {**config, 'journal_cut': clip.journal_cut}, hop=clip.hop)
    voiced = [w for w in found if not w['silent']]
    usable = [w for w in voiced if w['face'] is not None]
    if not usable:
        raise ClipSkipped('no_face', f'{clip.video}: no face found in {len(voiced)} frame(s)')
    quality = config.get('jpeg_quality', 95)
    voices = config.get('voices', ('mel', 'wav'))
    if clip.windows == 1:
        if 'mel' in voices:
            util.atomic_write_bytes(clip.voice_out, _npy(usable[0]['mel']), durable=False)
        if 'wav' in voices:
            util.atomic_write_bytes(clip.wav_out, wav_bytes(usable[0]['wav']), durable=False)
        util.atomic_write_bytes(clip.face_out, _jpeg(usable[0]['face'], quality), durable=False)
        return ''
    tmp_voice, tmp_face = (os.path.join(os.path.dirname(p), f'.{os.path.basename(p)}.{os.getpid()}.tmp')
                           for p in (clip.voice_out, clip.face_out))
    for tmp in (tmp_voice, tmp_face):
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    for k, w in enumerate(usable):
        k = w['index'] if clip.hop > 0 else k   # grid windows keep their number: window k starts at k x hop
        if 'mel' in voices:
            with open(os.path.join(tmp_voice, f'{k}.npy'), 'wb') as handle:
                handle.write(_npy(w['mel']))
        if 'wav' in voices:
            with open(os.path.join(tmp_voice, f'{k}.wav'), 'wb') as handle:
                handle.write(wav_bytes(w['wav']))
        with open(os.path.join(tmp_face, f'{k}.jpg'), 'wb') as handle:
            handle.write(_jpeg(w['face'], quality))
    _replace_folder(tmp_voice, clip.voice_out)
    _replace_folder(tmp_face, clip.face_out)
    parts = [f'{len(found) - len(voiced)} of {len(found)} windows silent'] if len(voiced) < len(found) else []
    if len(usable) < len(voiced):
        parts.append(f'{len(voiced) - len(usable)} of {len(found)} windows without a face')
    return '; '.join(parts)


# ---------------------------------------------------------------------------------------------------- the runner

_WORKER = {}


def _setup_worker(config):
    """The settings and the face cropper of the process that processes clips."""
    _WORKER['config'] = config
    _WORKER['cropper'] = FaceCropper(**config)


def _init_worker(config, parent_pid):
    """A pool worker: ``util.init_pool_worker``, then ``_setup_worker``."""
    util.init_pool_worker(parent_pid)
    _setup_worker(config)


def _work(clip):
    try:
        detail = process_clip(clip, _WORKER['config'], _WORKER['cropper'])
        return clip.key, 'done', '', detail
    except ClipSkipped as err:
        return clip.key, err.status, err.reason, err.detail
    except Exception as err:  # one bad file never stops the run: it is listed with the error
        return clip.key, 'failed', 'error', f'{type(err).__name__}: {err}'


def run(clips, config, out, workers=1, desc='clips', skipped_name='skipped.csv', shared=False):
    """Process every clip not done yet; write ``<out>/<skipped_name>``; print and return the counts. ``shared``:
    other processes (the other ``--shard`` parts) write into ``out`` too.

    Returns a dict: total, done (this run), already (done before), skipped, failed, rows (the skipped.csv rows).
    """
    util.mkdirs(out)
    # a shard leaves the other shards' writes in progress alone: only temporaries older than any clip's write go
    stale = remove_stale_temporaries(out, min_age=900 if shared else 0)
    if stale:
        print(f'removed {stale} temporary file(s) left by an interrupted run')
    todo = [clip for clip in clips if not clip.done()]
    counts = {'total': len(clips), 'done': 0, 'already': len(clips) - len(todo), 'skipped': 0, 'failed': 0}
    rows = []
    counts['interrupted'] = False
    if todo:
        if workers > 1:
            context = multiprocessing.get_context('spawn')
            pool = context.Pool(min(workers, len(todo)), initializer=_init_worker,
                                initargs=(config, os.getpid()))
            results = pool.imap_unordered(_work, todo, chunksize=max(1, min(16, len(todo) // (workers * 8))))
        else:
            pool = None
            _setup_worker(config)
            results = map(_work, todo)
        try:
            for key, status, reason, detail in util.progress(results, total=len(todo), desc=desc):
                counts[status] += 1
                if status != 'done' or detail:
                    rows.append([key, status, reason, detail])
        except KeyboardInterrupt as err:   # Ctrl-C or SIGTERM: keep what is done and list what was met so far
            counts['interrupted'] = True
            counts['terminated'] = isinstance(err, util.Terminated)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    rows.sort()
    util.atomic_write_csv(os.path.join(out, skipped_name), ['input', 'status', 'reason', 'detail'], rows)
    counts['rows'] = rows
    print(f'{desc}: done {counts["done"]} (+{counts["already"]} already done) / skipped {counts["skipped"]} / '
          f'failed {counts["failed"]}  (list: {os.path.join(out, skipped_name)})')
    if counts['interrupted']:
        print(f'interrupted: {len(todo) - counts["done"] - counts["skipped"] - counts["failed"]} clip(s) not done; '
              f'the same command resumes', file=sys.stderr)
    return counts


def exit_status(counts):
    """130 when interrupted (143 by SIGTERM), else 0 when anything usable exists after the run (new or from before),
    1 otherwise."""
    if counts.get('interrupted'):
        return util.EXIT_TERMINATED if counts.get('terminated') else util.EXIT_INTERRUPTED
    return 0 if counts['done'] + counts['already'] > 0 else 1


OPTIONS_NAME = 'prep_options.json'


def check_options(out, settings):
    """Refuse (ValueError) to add to ``out`` with settings that differ from those it was prepared with (stored in
    ``<out>/prep_options.json`` by its first run), naming each difference; store them on a first run."""
    path = os.path.join(out, OPTIONS_NAME)
    try:
        with open(path) as handle:
            stored = json.load(handle)
    except FileNotFoundError:
        util.mkdirs(out)
        util.atomic_write_text(path, json.dumps(settings, indent=1, sort_keys=True) + '\n')
        return
    except (OSError, ValueError) as err:
        raise ValueError(f'{path} cannot be read ({err}); delete it if {out} holds nothing of value') from err
    changed = [f'--{key} {stored.get(key, LEGACY_SETTINGS.get(key))!r} then, {value!r} now'
               for key, value in sorted(settings.items()) if stored.get(key, LEGACY_SETTINGS.get(key)) != value]
    if changed:
        raise ValueError(f'{out} was prepared with other options ({"; ".join(changed)}); mixing them would give '
                         f'clips of two kinds in one dataset. Use the same options to resume, or a new --out')


def main_for(description, add_arguments_fn, build, argv=None, windows=False, extra_settings=None):
    """The shared entry of the prep scripts.

    ``add_arguments_fn(parser)`` adds the script's own options; ``build(args)`` returns (clips, desc) and raises
    ValueError or OSError, with a message for the user, when the input folders do not fit; ``extra_settings(args)``
    gives the script's own options that change its outputs (kept in prep_options.json). Returns the exit status:
    0 when anything usable exists after the run, 1 when nothing does, 2 for bad arguments or input folders.
    """
    util.handle_sigterm()
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser, windows=windows)
    add_arguments_fn(parser)
    args = parser.parse_args(argv)
    if not 1 <= getattr(args, 'windows', 1) <= MAX_WINDOWS:
        parser.error(f'--windows must lie between 1 and {MAX_WINDOWS}, got {args.windows}')
    if not -0.5 < args.margin <= 4 or args.face_size < 16 or args.detect_size < 0:
        parser.error('--margin must lie in (-0.5, 4] (context on each side, as a fraction of the face box), '
                     '--face_size be at least 16 and --detect_size not negative')
    try:
        part, parts = util.parse_shard(args.shard)
        clips, desc = build(args)
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.limit:
        clips = clips[:args.limit]
    clips = clips[part::parts]
    for clip in clips:
        clip.voices = tuple(args.voices.split(','))
    if not clips:
        print('error: no input clips found', file=sys.stderr)
        return 1
    settings = {**config_from(args), 'voices': args.voices, 'windows': getattr(args, 'windows', 1),
                'script': os.path.basename(build.__code__.co_filename),
                **(extra_settings(args) if extra_settings else {})}
    try:
        check_options(args.out, settings)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    skipped_name = 'skipped.csv' if parts == 1 else f'skipped-{part}-of-{parts}.csv'
    if parts > 1:
        desc = f'{desc} (part {part} of {parts})'
    return exit_status(run(clips, config_from(args), args.out, args.workers, desc, skipped_name, shared=parts > 1))

"""Synthesise the sample datasets: identities whose faces and voices share traits.

    python -m scripts.make_sample_data --out Dataset

Every synthetic identity draws four traits in [-1, 1]; each trait shapes both modalities, so a model that learns
to match voices with faces on some identities can match them on identities it has never seen:

    trait  voice                                         face
    t0     pitch (f0 about 75-300 Hz)                    skin tone (low voice -> darker skin)
    t1     formant scale (vocal-tract length)            face size and jaw (width and height)
    t2     spectral tilt and breathiness                 hair colour (dark, breathy voice -> dark hair)
    t3     a high resonance (about 2.6-4.3 kHz)          eye spacing and mouth width

``--variant b`` draws the same kind of people through another generator, so that a training recipe can be checked on
data it was not tuned on. Each modality reads the traits through its own mapping (a permutation, sign flips and
one fold |t| that no linear map undoes), and the renderers differ (striped backgrounds, ears and a visible neck;
faster syllables, a mains hum and a different vowel set):

    trait  voice (variant b)                             face (variant b)
    t0     spectral tilt and breathiness                 face size and jaw
    t1     a high resonance                              skin tone from |t1| (folded)
    t2     pitch, inverted (high t2 -> low voice)        eye spacing and mouth width
    t3     formant scale                                 hair colour, inverted

Clips of one identity differ in what is said (random vowel-like syllables, pitch contour, noise) and in how the
face is shown (position, scale, rotation, light, background, expression, JPEG quality). Mels follow the released
recipe on the synthesised 16 kHz waveform (data/audio.py: mel_from_waveform); beside each mel, a 16 kHz WAV holds
what journal models read (data/inputs.py), cut as the prep scripts cut real clips.

It writes four sets under ``--out`` (identities never shared between sets):

    Voxceleb2/    face/<id>/<video>/<frame>.jpg, voice/<id>_<video>_<frame>.npy   (training, Vox_image)
    DFDC/         real/, fake/, audio_feat/   (--dfdc_reals real videos per identity and as many fakes: one
                                               identity's face with another identity's voice, the two at least
                                               --min_distance apart in trait space where the group allows),
                                               and videos.csv (video, label, face identity, voice identity)
    FakeAVCeleb/  the same layout, plus categories.csv (video, category, face identity, voice identity):
                  --fakeavceleb_reals real videos per identity and one fake of each category, FakeVideo-RealAudio
                  (face swapped), RealVideo-FakeAudio (cloned voice: traits half-way to another identity's) and
                  FakeVideo-FakeAudio (both); fake audio starts with a short silence, like the leading-silence
                  artefact of the real FakeAVCeleb.
    AV1M_raw/     val/<id>/<video>/<kind>.mp4 and val_metadata.json in AV-Deepfake1M's format (--av1m_ids
                  identities, one real video and one fake each: one to three segments whose face, voice or both
                  come from another identity of its group), for scripts/prep_av1m.py.

The test sets' identities come in groups of --group_size, and a fake's two people belong to one group, so an
identity-disjoint split (scripts/make_splits.py) keeps every fake: with the defaults each set's default split has 12
reals and 12 fakes in validation and 24 of each in test.

A set whose folder holds a ``.complete`` file written with the same parameters is left alone (``--force`` redoes it).
"""
import argparse
import json
import multiprocessing
import os
import shutil
import string
import sys
import typing

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.signal import lfilter

from data.audio import SAMPLE_RATE, mel_from_waveform
from data.inputs import wav_bytes
from prep.video import journal_wav

N_TRAITS = 4
VOWELS = np.array([  # first three formants (Hz) of five vowels for an average adult voice
    [730, 1090, 2440],   # a
    [270, 2290, 3010],   # i
    [300, 870, 2240],    # u
    [530, 1840, 2480],   # e
    [570, 840, 2410],    # o
], dtype=np.float64)
VOWELS_B = np.array([  # variant b: a different inventory (ae, schwa, open o, near-close i, rounded y)
    [660, 1720, 2410],
    [500, 1500, 2500],
    [570, 840, 2410],
    [390, 1990, 2550],
    [250, 1750, 2150],
], dtype=np.float64)
VARIANTS = ('a', 'b')
YT_CHARS = string.ascii_letters + string.digits + '_-'


# ---------------------------------------------------------------------------------------------------------------
# identities
# ---------------------------------------------------------------------------------------------------------------
def identity_traits(seed, number):
    """The four traits of identity ``number`` (a function of the seed and the number only)."""
    return np.random.default_rng([seed, 7, number]).uniform(-1.0, 1.0, size=N_TRAITS)


def modality_traits(traits, variant):
    """(voice traits, face traits) of an identity: the traits as they are (variant a), or each modality's own
    permutation, sign flips and fold (variant b; see the module docstring)."""
    if variant == 'a':
        return traits, traits
    t = np.asarray(traits, dtype=np.float64)
    voice = np.array([-t[2], t[3], t[0], t[1]])            # pitch, formants, tilt, resonance
    face = np.array([2.0 * abs(t[1]) - 1.0, t[0], -t[3], t[2]])  # skin, size, hair, eyes
    return voice, face


def pick_other(rng, seed, number, candidates, min_distance):
    """A random identity from ``candidates`` whose traits lie at least ``min_distance`` from ``number``'s.

    Fakes pair different-looking people: two random identities can land so close in trait space that no detector
    could tell them apart, and such pairs would only measure the luck of the draw.
    """
    own = identity_traits(seed, number)
    far = [c for c in candidates if c != number and np.linalg.norm(identity_traits(seed, c) - own) >= min_distance]
    pool = far or [c for c in candidates if c != number]
    return pool[int(rng.integers(len(pool)))]


def video_name(rng, with_separators=False):
    """An 11-character YouTube-like id; ``with_separators`` forces a '_' and a '-' into it."""
    chars = list(rng.choice(list(YT_CHARS), size=11))
    if with_separators:
        chars[3], chars[7] = '_', '-'
    return ''.join(chars)


# ---------------------------------------------------------------------------------------------------------------
# voices
# ---------------------------------------------------------------------------------------------------------------
def _resonate(x, freq, bandwidth, sr):
    """Second-order resonator (one formant) applied to ``x``, peak gain about 1."""
    r = np.exp(-np.pi * bandwidth / sr)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return lfilter([1.0 - r], a, x)


def synth_voice(traits, rng, duration=3.2, leading_silence=0.0, variant='a'):
    """A float32 mono waveform at 16 kHz: source-filter 'speech' whose pitch and timbre follow ``traits`` (the voice
    traits of ``modality_traits``).

    A band-rich glottal source at the identity's pitch goes through a tilt filter and parallel formant
    resonators, one random vowel per syllable, with gaps, pitch drift, vibrato, breath and background noise.
    Variant b speaks faster, from another vowel set, over a mains hum.
    """
    sr = SAMPLE_RATE
    n = int(duration * sr)
    t = np.arange(n) / sr
    f0_base = 150.0 * 2.0 ** (1.0 * traits[0])
    formant_scale = 1.0 + 0.2 * traits[1]
    tilt = 0.55 + 0.35 * traits[2]            # one-pole low-pass coefficient: higher = darker voice
    breath = 0.03 + 0.1 * (traits[2] + 1.0)
    extra_formant = 3400.0 * (1.0 + 0.25 * traits[3])

    f0 = f0_base * rng.uniform(0.97, 1.03) * (1.0 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t
                                                                     + rng.uniform(0, 2 * np.pi)))
    f0 *= (1.0 - 0.04 * t / duration) * (1.0 + 0.008 * np.sin(2 * np.pi * 5.5 * t))
    cycle = np.cumsum(f0) / sr % 1.0
    source = (1.0 - 2.0 * cycle) + breath * rng.standard_normal(n)        # sawtooth (all harmonics) + breath
    source = lfilter([1.0 - tilt], [1.0, -tilt], source)
    source = np.diff(source, prepend=0.0) * 4.0 + source * 0.2             # pre-emphasis keeps the highs audible

    vowels, syllable = (VOWELS, (0.15, 0.35)) if variant == 'a' else (VOWELS_B, (0.08, 0.2))
    wave = np.zeros(n)
    pos = int(leading_silence * sr) + int(rng.uniform(0.0, 0.1) * sr)
    while pos < n:
        end = min(n, pos + int(rng.uniform(*syllable) * sr))
        formants = vowels[rng.integers(len(vowels))] * formant_scale * rng.uniform(0.97, 1.03)
        segment = source[pos:end]
        voiced = sum(_resonate(segment, f, bw, sr) for f, bw in zip(formants, (80.0, 110.0, 160.0)))
        voiced = voiced + 1.5 * _resonate(segment, extra_formant, 200.0, sr)
        wave[pos:end] = voiced * np.sin(np.linspace(0.0, np.pi, end - pos)) ** 0.6 * rng.uniform(0.6, 1.0)
        pos = end + int(rng.uniform(0.02, 0.12) * sr)
    wave /= np.abs(wave).max() + 1e-9
    wave *= rng.uniform(0.3, 0.9)
    if variant == 'b':   # mains hum (50 or 60 Hz and two harmonics), not tied to the speaker
        hum = rng.choice([50.0, 60.0])
        wave += rng.uniform(0.005, 0.03) * sum(np.sin(2 * np.pi * hum * h * t) / h for h in (1, 2, 3))
        wave[:int(leading_silence * sr)] = 0.0
    wave += rng.standard_normal(n) * 10 ** (-rng.uniform(2.2, 3.0))         # background noise
    return wave.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# faces
# ---------------------------------------------------------------------------------------------------------------
def _mix(a, b, w):
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


def draw_face(traits, rng, size=128, variant='a'):
    """An RGB face crop (``size`` x ``size``) whose geometry and colours follow ``traits`` (the face traits of
    ``modality_traits``). Variant b has a striped background, ears and a neck."""
    ss = 2 * size  # draw at twice the size, then downsample (anti-aliasing)
    grey_a, grey_b = rng.uniform(70, 190, size=2)
    bg_a = np.clip(grey_a + rng.uniform(-25, 25, size=3), 0, 255)
    bg_b = np.clip(grey_b + rng.uniform(-25, 25, size=3), 0, 255)
    ramp = np.linspace(0.0, 1.0, ss)[:, None, None]
    if variant == 'b':   # diagonal stripes of random width and angle
        yy, xx = np.mgrid[0:ss, 0:ss]
        angle = rng.uniform(0, np.pi)
        ramp = ((np.cos(angle) * xx + np.sin(angle) * yy) / rng.uniform(10, 30) % 2 < 1)[:, :, None] * 1.0
        background = (bg_a * (1 - ramp) + bg_b * ramp).astype(np.uint8)
    else:
        background = (bg_a * (1 - ramp) + bg_b * ramp).repeat(ss, axis=1).astype(np.uint8)
    image = Image.fromarray(background, 'RGB')
    draw = ImageDraw.Draw(image)

    c = ss / 2
    skin = _mix((95, 60, 40), (236, 200, 170), (traits[0] + 1) / 2)       # low voice -> darker skin
    face_w = ss * (0.30 + 0.07 * traits[1])                                # long vocal tract -> large face
    face_h = ss * (0.40 + 0.07 * traits[1])
    jaw = 0.5 + 0.25 * traits[1]
    hair = _mix((240, 215, 120), (35, 20, 15), (traits[2] + 1) / 2)       # dark, breathy voice -> dark hair
    eye_gap = ss * (0.09 + 0.035 * traits[3])
    mouth_w = ss * (0.08 + 0.05 * traits[3])

    top, bottom = c - face_h, c + face_h
    if variant == 'b':   # neck and ears, drawn first so that the head covers them
        neck = _mix(skin, (0, 0, 0), 0.15)
        draw.rectangle([c - face_w * 0.45, c + face_h * 0.6, c + face_w * 0.45, ss], fill=neck)
        for side in (-1, 1):
            ex = c + side * face_w * 0.98
            draw.ellipse([ex - face_w * 0.14, c - face_h * 0.2, ex + face_w * 0.14, c + face_h * 0.15], fill=neck)
    draw.ellipse([c - face_w * 1.08, top - face_h * 0.12, c + face_w * 1.08, c + face_h * 0.2], fill=hair)
    draw.ellipse([c - face_w, top, c + face_w, bottom], fill=skin)
    draw.polygon([(c - face_w * 0.95, c + face_h * 0.2), (c + face_w * 0.95, c + face_h * 0.2),
                  (c + face_w * jaw, bottom), (c - face_w * jaw, bottom)], fill=skin)
    draw.chord([c - face_w * 0.95, top - face_h * 0.05, c + face_w * 0.95, c - face_h * 0.15], 180, 360, fill=hair)
    eye_y, eye_r = c - face_h * 0.15, ss * 0.025
    for side in (-1, 1):
        x = c + side * eye_gap
        draw.ellipse([x - eye_r * 1.8, eye_y - eye_r, x + eye_r * 1.8, eye_y + eye_r], fill=(250, 250, 250))
        draw.ellipse([x - eye_r * 0.8, eye_y - eye_r * 0.8, x + eye_r * 0.8, eye_y + eye_r * 0.8], fill=(30, 30, 40))
        draw.line([x - eye_r * 2, eye_y - eye_r * 2.2, x + eye_r * 2, eye_y - eye_r * 2.4], fill=hair, width=4)
    nose = _mix(skin, (0, 0, 0), 0.25)
    draw.line([c, eye_y + eye_r, c - ss * 0.015, c + face_h * 0.2, c + ss * 0.01, c + face_h * 0.22],
              fill=nose, width=3)
    mouth_y, opening = c + face_h * 0.5, ss * rng.uniform(0.0, 0.03)
    draw.ellipse([c - mouth_w, mouth_y - ss * 0.008 - opening, c + mouth_w, mouth_y + ss * 0.008 + opening],
                 fill=(150, 50, 60))

    # per-clip pose and light
    image = image.rotate(rng.uniform(-6, 6), resample=Image.BICUBIC, fillcolor=tuple(int(v) for v in bg_a))
    scale = rng.uniform(0.95, 1.05)
    crop = ss / scale
    dx, dy = rng.uniform(-0.03, 0.03, size=2) * ss
    box = (c - crop / 2 + dx, c - crop / 2 + dy, c + crop / 2 + dx, c + crop / 2 + dy)
    image = image.transform((size, size), Image.EXTENT, box, Image.BICUBIC, fillcolor=tuple(int(v) for v in bg_a))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    array = np.asarray(image, dtype=np.float32) * rng.uniform(0.9, 1.1) + rng.normal(0, 3, size=(size, size, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), 'RGB')


# ---------------------------------------------------------------------------------------------------------------
# writing the sets
# ---------------------------------------------------------------------------------------------------------------
def write_pair(face, wave, face_path, voice_path, rng, wav_cut=None):
    """Save the face as a JPEG of random quality (80-95) and the waveform's mel as .npy, making their folders; with
    ``wav_cut`` ('clip' or 'window', ``prep/video.py: journal_wav``) also the 16 kHz WAV that journal models read,
    beside the mel (no random draw, so the other files do not change)."""
    os.makedirs(os.path.dirname(face_path), exist_ok=True)
    os.makedirs(os.path.dirname(voice_path), exist_ok=True)
    face.save(face_path, quality=int(rng.integers(80, 96)))
    np.save(voice_path, mel_from_waveform(wave, SAMPLE_RATE))
    if wav_cut is not None:
        with open(os.path.splitext(voice_path)[0] + '.wav', 'wb') as handle:
            handle.write(wav_bytes(journal_wav(wave, 0.0, wav_cut)))


def render_pair(face_traits, voice_traits, rng, size, variant, leading_silence=0.0):
    """(face image, waveform) of a clip whose face shows identity traits ``face_traits`` and whose voice speaks with
    identity traits ``voice_traits`` (the two differ in fakes)."""
    face = draw_face(modality_traits(face_traits, variant)[1], rng, size, variant)
    voice = synth_voice(modality_traits(voice_traits, variant)[0], rng, leading_silence=leading_silence,
                        variant=variant)
    return face, voice


def make_vox_identity(root, number, videos, frames, seed, size, variant='a'):
    """The clips of one VoxCeleb2-layout identity (its draws depend on the seed and its number only)."""
    identity = f'id{number:05d}'
    traits = identity_traits(seed, number)
    rng = np.random.default_rng([seed, 1, number])
    for v in range(videos):
        video = video_name(rng, with_separators=(v == 0))
        for _ in range(frames):
            frame = f'{int(rng.integers(0, 100000)):05d}'
            write_pair(*render_pair(traits, traits, rng, size, variant),
                       os.path.join(root, 'face', identity, video, frame + '.jpg'),
                       os.path.join(root, 'voice', f'{identity}_{video}_{frame}.npy'), rng, wav_cut='clip')


def make_vox(root, first_id, n_ids, videos, frames, seed, size, variant='a', workers=1):
    """VoxCeleb2 layout: ``n_ids`` identities, ``videos`` videos each, ``frames`` clips per video; identities are
    independent, so ``workers`` processes (a count or a ``SharedPool``) share them (the files are the same for any
    number of workers)."""
    run_jobs(make_vox_identity, [(root, number, videos, frames, seed, size, variant)
                                 for number in range(first_id, first_id + n_ids)], workers)


class SharedPool:
    """``processes`` worker processes started on first use and shared by every set that ``main`` builds: a worker
    imports torch and librosa when it starts (seconds each), so one pool per set would pay that again per set, and
    a batch of fewer than ``MIN_JOBS`` jobs before the pool exists is rendered in this process instead."""
    MIN_JOBS = 48     # a job (an identity or a video) takes about 0.2 s; starting the workers about 5 s

    def __init__(self, processes):
        self.processes, self.pool = processes, None

    def starmap(self, function, jobs):
        """``function(*job)`` for every job, for its side effects (the files it writes); returns nothing."""
        if self.pool is None and len(jobs) < self.MIN_JOBS:
            for job in jobs:
                function(*job)
            return
        if self.pool is None:
            self.pool = multiprocessing.get_context('spawn').Pool(self.processes)
        self.pool.starmap(function, jobs, chunksize=max(1, len(jobs) // (4 * self.processes)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            if exc[0] is None:
                self.pool.close()     # let the workers finish
            else:
                self.pool.terminate()
            self.pool.join()


def run_jobs(function, jobs, workers):
    """``function(*job)`` for every job: in this process when ``workers`` is 1 or less, in a ``SharedPool`` when it
    is one, else in a pool of ``workers`` processes."""
    if isinstance(workers, SharedPool):
        if workers.processes > 1:
            workers.starmap(function, jobs)
            return
        workers = 1
    if workers <= 1:
        for job in jobs:
            function(*job)
        return
    with SharedPool(workers) as pool:
        pool.starmap(function, jobs)


CATEGORIES = ('FakeVideo-RealAudio', 'RealVideo-FakeAudio', 'FakeVideo-FakeAudio')


class Video(typing.NamedTuple):
    """One video of a test set: its name, folder (real or fake), label or category, the traits its face and voice
    show, the identities behind them and the leading silence of its voice in seconds."""
    name: str
    folder: str
    kind: str
    face: np.ndarray
    voice: np.ndarray
    face_id: int
    voice_id: int
    silence: float = 0.0


def identity_groups(numbers, size):
    """``numbers`` in consecutive groups of ``size`` (a last group of one joins the one before): the people whose
    faces and voices a test set's fakes swap."""
    groups = [numbers[i:i + size] for i in range(0, len(numbers), size)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        groups[-2] += groups.pop()
    return groups


def unique_name(rng, taken):
    """A new 10-letter lowercase name, not in ``taken`` (which it joins)."""
    while True:
        name = ''.join(rng.choice(list(string.ascii_lowercase), size=10))
        if name not in taken:
            taken.add(name)
            return name


def dfdc_plan(first_id, n_ids, reals_per_id, seed, min_distance, group_size):
    """The videos of the DFDC-style set: ``reals_per_id`` real videos per identity and as many fakes, each the
    face of another identity of its group with this identity's voice."""
    numbers = list(range(first_id, first_id + n_ids))
    rng = np.random.default_rng([seed, 2, first_id])
    taken, videos = set(), []
    for group in identity_groups(numbers, group_size):
        for number in group:
            traits = identity_traits(seed, number)
            for _ in range(reals_per_id):
                videos.append(Video(unique_name(rng, taken), 'real', 'real', traits, traits, number, number))
                other = pick_other(rng, seed, number, group, min_distance)
                videos.append(Video(unique_name(rng, taken), 'fake', 'fake', identity_traits(seed, other), traits,
                                    other, number))
    return videos


def fakeavceleb_plan(first_id, n_ids, reals_per_id, seed, min_distance, group_size, silence=0.3):
    """The videos of the FakeAVCeleb-style set: ``reals_per_id`` real videos and one fake of each category per
    identity, its swapped face and its cloned voice's donor taken from the identity's group."""
    numbers = list(range(first_id, first_id + n_ids))
    rng = np.random.default_rng([seed, 3, first_id])
    videos = []
    for group in identity_groups(numbers, group_size):
        for number in group:
            traits = identity_traits(seed, number)
            other = pick_other(rng, seed, number, group, min_distance)
            donor = pick_other(rng, seed, number, group, min_distance)
            cloned = (traits + identity_traits(seed, donor)) / 2
            swapped = identity_traits(seed, other)
            for k in range(reals_per_id):
                suffix = f'_{k}' if reals_per_id > 1 else ''
                videos.append(Video(f'id{number:05d}_realreal{suffix}', 'real', 'RealVideo-RealAudio', traits,
                                    traits, number, number))
            plans = {'FakeVideo-RealAudio': (swapped, traits, 0.0, other, number),
                     'RealVideo-FakeAudio': (traits, cloned, silence, number, donor),
                     'FakeVideo-FakeAudio': (swapped, cloned, silence, other, donor)}
            for category in CATEGORIES:
                face, voice, lead, face_id, voice_id = plans[category]
                name = f'id{number:05d}_{category.split("-")[0][:4].lower()}{category.split("-")[1][:4].lower()}'
                videos.append(Video(name, 'fake', category, face, voice, face_id, voice_id, lead))
    return videos


def render_video(root, index, video, seed, tag, size, variant):
    """Write one planned video (face JPEG and mel); its draws depend on the seed, the set and its place only."""
    rng = np.random.default_rng([seed, tag, index])
    write_pair(*render_pair(video.face, video.voice, rng, size, variant, leading_silence=video.silence),
               os.path.join(root, video.folder, video.name + '.jpg'),
               os.path.join(root, 'audio_feat', video.name + '.npy'), rng, wav_cut='window')


def write_test_set(root, videos, index_file, header, seed, tag, size, variant='a', workers=1):
    """Render the planned ``videos`` under ``root`` (``workers`` processes; the files do not depend on their number)
    and write the side file ``index_file`` whose third column is ``header``."""
    run_jobs(render_video, [(root, i, video, seed, tag, size, variant) for i, video in enumerate(videos)], workers)
    rows = [f'video,{header},face_identity,voice_identity']
    rows += [f'{v.name},{v.kind},id{v.face_id:05d},id{v.voice_id:05d}' for v in videos]
    with open(os.path.join(root, index_file), 'w') as handle:
        handle.write('\n'.join(rows) + '\n')


AV1M_KINDS = {'visual_modified': 'fake_video_real_audio', 'audio_modified': 'real_video_fake_audio',
              'both_modified': 'fake_video_fake_audio'}
AV1M_FPS = 25
AV1M_FACE_EVERY = 1.0   # seconds between two draws of a video's face (pose, light and expression change)


def fake_segments(rng, duration, count, shortest=1.0, longest=2.5, edge=0.5):
    """``count`` disjoint [start, end] segments (seconds, two decimals) inside ``[edge, duration - edge]``, each
    ``shortest`` to ``longest`` long, sorted; fewer when the video has no room for more."""
    out = []
    for _ in range(50 * count):
        if len(out) == count:
            break
        length = float(rng.uniform(shortest, longest))
        start = round(float(rng.uniform(edge, max(edge, duration - edge - length))), 2)
        end = round(min(start + length, duration - edge), 2)
        if end - start >= shortest / 2 and all(end + 0.3 < s or start > e + 0.3 for s, e in out):
            out.append([start, end])
    return sorted(out)


def av1m_plan(first_id, n_ids, seed, min_distance, group_size):
    """The videos of the AV-Deepfake1M-style set: for each identity one real video and one fake made from another
    take of the same person, its modify_type drawn among the three, with one to three fake segments whose face, voice
    or both come from another identity of its group. Returns a list of metadata entries (published field names) with
    the traits their parts show, under the keys starting with an underscore."""
    numbers = list(range(first_id, first_id + n_ids))
    rng = np.random.default_rng([seed, 6, first_id])
    entries = []
    for group in identity_groups(numbers, group_size):
        for number in group:
            video = video_name(rng)
            duration = round(float(rng.uniform(6.0, 9.0)), 2)
            real = f'id{number:05d}/{video}/real.mp4'
            entries.append({'file': real, 'original': None, 'split': 'val', 'modify_type': 'real',
                            'audio_model': '', 'fake_segments': [], 'audio_fake_segments': [],
                            'visual_fake_segments': [], 'video_frames': int(duration * AV1M_FPS),
                            'audio_frames': int(duration * SAMPLE_RATE), '_own': number, '_other': number,
                            '_duration': duration})
            kind = sorted(AV1M_KINDS)[int(rng.integers(3))]
            duration = round(float(rng.uniform(6.0, 9.0)), 2)
            spans = fake_segments(rng, duration, int(rng.integers(1, 4)))
            entries.append({'file': f'id{number:05d}/{video}/{AV1M_KINDS[kind]}.mp4', 'original': real,
                            'split': 'val', 'modify_type': kind, 'audio_model': 'sample' if kind != 'visual_modified'
                            else '', 'fake_segments': spans,
                            'audio_fake_segments': spans if kind != 'visual_modified' else [],
                            'visual_fake_segments': spans if kind != 'audio_modified' else [],
                            'video_frames': int(duration * AV1M_FPS), 'audio_frames': int(duration * SAMPLE_RATE),
                            '_own': number, '_other': pick_other(rng, seed, number, group, min_distance),
                            '_duration': duration})
    return entries


def render_av1m_video(root, index, entry, seed, size, variant):
    """Write one planned AV-Deepfake1M-style video (H.264 + AAC in .mp4, encoded to the same bytes on every run): the
    identity's face and voice, with the other identity's face and/or voice inside the fake segments."""
    from scripts.make_videos import write_video
    rng = np.random.default_rng([seed, 6, index])
    own, other = identity_traits(seed, entry['_own']), identity_traits(seed, entry['_other'])
    duration = entry['_duration']
    voice = synth_voice(modality_traits(own, variant)[0], rng, duration=duration, variant=variant)
    swapped = synth_voice(modality_traits(other, variant)[0], rng, duration=duration, variant=variant)
    for start, end in entry['audio_fake_segments']:
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        voice[a:b] = swapped[a:b] * (np.abs(voice).max() / (np.abs(swapped).max() + 1e-9))
    frames, faces = [], {}
    for i in range(int(duration * AV1M_FPS)):
        t = i / AV1M_FPS
        fake = any(s <= t < e for s, e in entry['visual_fake_segments'])
        key = (fake, int(t // AV1M_FACE_EVERY))
        if key not in faces:
            faces[key] = np.asarray(draw_face(modality_traits(other if fake else own, variant)[1], rng, size, variant))
        frames.append(faces[key])
    path = os.path.join(root, 'val', entry['file'])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path + '.part.mp4', frames, duration, AV1M_FPS, voice, SAMPLE_RATE, video_codec='libx264', exact=True)
    os.replace(path + '.part.mp4', path)


def write_av1m_set(root, entries, seed, size, variant='a', workers=1):
    """Render the planned AV-Deepfake1M-style videos under ``root``/val/ and write ``root``/val_metadata.json."""
    run_jobs(render_av1m_video, [(root, i, e, seed, size, variant) for i, e in enumerate(entries)], workers)
    with open(os.path.join(root, 'val_metadata.json'), 'w') as handle:
        json.dump([{k: v for k, v in e.items() if not k.startswith('_')} for e in entries], handle, indent=1)


def build(name, root, params, force, make):
    """Run ``make`` unless ``root`` already holds a set built with ``params``."""
    marker = os.path.join(root, '.complete')
    if not force and os.path.isfile(marker):
        with open(marker) as handle:
            if json.load(handle) == params:
                print(f'{name}: {root} is up to date')
                return
    if os.path.isdir(root):
        shutil.rmtree(root)
    make()
    with open(marker, 'w') as handle:
        json.dump(params, handle)
    print(f'{name}: wrote {root}')


def plan_test_sets(args):
    """{folder: planned videos} of the DFDC-style and FakeAVCeleb-style sets that ``args`` (parsed options) make;
    identity numbers: training 1.., DFDC 10001.., FakeAVCeleb 20001.. (never shared)."""
    return {'DFDC': dfdc_plan(10001, args.dfdc_ids, args.dfdc_reals, args.seed, args.min_distance, args.group_size),
            'FakeAVCeleb': fakeavceleb_plan(20001, args.fakeavceleb_ids, args.fakeavceleb_reals, args.seed,
                                            args.min_distance, args.group_size)}


def build_parser():
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='Dataset',
                        help='folder that receives Voxceleb2/, DFDC/, FakeAVCeleb/ and AV1M_raw/')
    parser.add_argument('--seed', type=int, default=0, help='seed of every draw (identities, clips, names)')
    parser.add_argument('--image_size', type=int, default=128, help='face crop size in pixels')
    parser.add_argument('--variant', default='a', choices=VARIANTS,
                        help='generator: a, or b with another mapping of traits to face and voice and other renderers '
                             '(for checking that a recipe is not tuned to one generator)')
    parser.add_argument('--vox_ids', type=int, default=500, help='training identities (Voxceleb2 layout)')
    parser.add_argument('--videos', type=int, default=2, help='videos per training identity')
    parser.add_argument('--frames', type=int, default=1, help='clips (frames) per video')
    parser.add_argument('--dfdc_ids', type=int, default=40, help='identities of the DFDC-style test set')
    parser.add_argument('--dfdc_reals', type=int, default=3, help='real (and fake) videos per DFDC-style identity')
    parser.add_argument('--fakeavceleb_ids', type=int, default=40, help='identities of the FakeAVCeleb-style set')
    parser.add_argument('--fakeavceleb_reals', type=int, default=3,
                        help='real videos per FakeAVCeleb-style identity (each identity has one fake per category)')
    parser.add_argument('--av1m_ids', type=int, default=24,
                        help='identities of the AV-Deepfake1M-style set (one real and one partly faked video each)')
    parser.add_argument('--group_size', type=int, default=4,
                        help='the test sets\' identities come in groups of this size, and a fake swaps faces or voices '
                             'within its group (so an identity-disjoint split can keep a fake\'s two people together)')
    parser.add_argument('--min_distance', type=float, default=1.0,
                        help='a fake\'s face and voice come from identities at least this far apart in trait space '
                             '(traits lie in [-1, 1]^4)')
    parser.add_argument('--sets', default='vox,dfdc,fakeavceleb,av1m', help='which sets to build, comma-separated')
    parser.add_argument('--force', action='store_true', help='rebuild sets that are already complete')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='processes that render the sets (the files do not depend on this number)')
    return parser


def main(argv=None):
    """Build the chosen sets under ``--out``, leaving those up to date alone; returns 0 (bad arguments exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.vox_ids, args.dfdc_ids, args.fakeavceleb_ids, args.av1m_ids) < 2:
        parser.error('every set needs at least two identities')
    if args.group_size < 2 or min(args.dfdc_reals, args.fakeavceleb_reals, args.videos, args.frames) < 1:
        parser.error('--group_size must be at least 2; --dfdc_reals, --fakeavceleb_reals, --videos and --frames at '
                     'least 1')
    common = {'seed': args.seed, 'image_size': args.image_size, 'generator': 1, 'voices': 'mel,wav'}
    if args.variant != 'a':   # variant a keeps the parameters of sets made before variants existed
        common['variant'] = args.variant
    sets = {s.strip() for s in args.sets.split(',') if s.strip()}
    unknown = sets - {'vox', 'dfdc', 'fakeavceleb', 'av1m'}
    if unknown:
        parser.error(f'unknown --sets {", ".join(sorted(unknown))}; use vox, dfdc, fakeavceleb, av1m')
    with SharedPool(args.workers) as pool:
        if 'vox' in sets:
            root = os.path.join(args.out, 'Voxceleb2')
            build('Voxceleb2', root, {**common, 'ids': args.vox_ids, 'videos': args.videos, 'frames': args.frames},
                  args.force, lambda: make_vox(root, 1, args.vox_ids, args.videos, args.frames, args.seed,
                                               args.image_size, args.variant, pool))
        plans = plan_test_sets(args)
        for key, folder, ids, reals, index_file, header, tag in (
                ('dfdc', 'DFDC', args.dfdc_ids, args.dfdc_reals, 'videos.csv', 'label', 4),
                ('fakeavceleb', 'FakeAVCeleb', args.fakeavceleb_ids, args.fakeavceleb_reals, 'categories.csv',
                 'category', 5)):
            if key in sets:
                root = os.path.join(args.out, folder)
                build(folder, root, {**common, 'ids': ids, 'reals': reals, 'min': args.min_distance,
                                     'group': args.group_size}, args.force,
                      lambda: write_test_set(root, plans[folder], index_file, header, args.seed, tag,
                                             args.image_size, args.variant, pool))
        if 'av1m' in sets:
            root = os.path.join(args.out, 'AV1M_raw')
            entries = av1m_plan(30001, args.av1m_ids, args.seed, args.min_distance, args.group_size)
            build('AV1M_raw', root, {**common, 'ids': args.av1m_ids, 'min': args.min_distance,
                                     'group': args.group_size},
                  args.force, lambda: write_av1m_set(root, entries, args.seed, args.image_size, args.variant, pool))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Synthesise the sample datasets: identities whose faces and voices share traits.

    python -m scripts.make_sample_data --out Dataset

Every synthetic identity draws four traits in [-1, 1]; each trait shapes both modalities, so a model that learns
to match voices with faces on some identities can match them on identities it has never seen:

    trait  voice                                         face
    t0     pitch (f0 about 75-300 Hz)                    skin tone (low voice -> darker skin)
    t1     formant scale (vocal-tract length)            face size and jaw (width and height)
    t2     spectral tilt and breathiness                 hair colour (dark, breathy voice -> dark hair)
    t3     a high resonance (about 2.6-4.3 kHz)          eye spacing and mouth width

Clips of one identity differ in what is said (random vowel-like syllables, pitch contour, noise) and in how the
face is shown (position, scale, rotation, light, background, expression, JPEG quality). Mels follow the SPEC
recipe on the synthesised 16 kHz waveform (data/audio.py: mel_from_waveform).

It writes three sets under ``--out`` (identities never shared between sets):

    Voxceleb2/    face/<id>/<video>/<frame>.jpg, voice/<id>_<video>_<frame>.npy   (training, Vox_image)
    DFDC/         real/, fake/, audio_feat/   (fake = one identity's face with another identity's voice, the two
                                               at least --min_distance apart in trait space), and videos.csv
                                               (video, label, face identity, voice identity)
    FakeAVCeleb/  the same layout, plus categories.csv (video, category, face identity, voice identity):
                  FakeVideo-RealAudio (face swapped), RealVideo-FakeAudio (cloned voice: traits half-way to another
                  identity's) and FakeVideo-FakeAudio (both); fake audio starts with a short silence, like the
                  leading-silence artefact of the real FakeAVCeleb.

A set whose folder holds a ``.complete`` file written with the same parameters is left alone (``--force`` redoes it).
"""
import argparse
import json
import os
import shutil
import string
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.signal import lfilter

from data.audio import SAMPLE_RATE, mel_from_waveform

N_TRAITS = 4
VOWELS = np.array([  # first three formants (Hz) of five vowels for an average adult voice
    [730, 1090, 2440],   # a
    [270, 2290, 3010],   # i
    [300, 870, 2240],    # u
    [530, 1840, 2480],   # e
    [570, 840, 2410],    # o
], dtype=np.float64)
YT_CHARS = string.ascii_letters + string.digits + '_-'


# ---------------------------------------------------------------------------------------------------------------
# identities
# ---------------------------------------------------------------------------------------------------------------
def identity_traits(seed, number):
    """The four traits of identity ``number`` (a function of the seed and the number only)."""
    return np.random.default_rng([seed, 7, number]).uniform(-1.0, 1.0, size=N_TRAITS)


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


def synth_voice(traits, rng, duration=3.2, leading_silence=0.0):
    """A float32 mono waveform at 16 kHz: source-filter 'speech' whose pitch and timbre follow ``traits``.

    A band-rich glottal source at the identity's pitch goes through a tilt filter and parallel formant
    resonators, one random vowel per syllable, with gaps, pitch drift, vibrato, breath and background noise.
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

    wave = np.zeros(n)
    pos = int(leading_silence * sr) + int(rng.uniform(0.0, 0.1) * sr)
    while pos < n:
        end = min(n, pos + int(rng.uniform(0.15, 0.35) * sr))
        formants = VOWELS[rng.integers(len(VOWELS))] * formant_scale * rng.uniform(0.97, 1.03)
        segment = source[pos:end]
        voiced = sum(_resonate(segment, f, bw, sr) for f, bw in zip(formants, (80.0, 110.0, 160.0)))
        voiced = voiced + 1.5 * _resonate(segment, extra_formant, 200.0, sr)
        wave[pos:end] = voiced * np.sin(np.linspace(0.0, np.pi, end - pos)) ** 0.6 * rng.uniform(0.6, 1.0)
        pos = end + int(rng.uniform(0.02, 0.12) * sr)
    wave /= np.abs(wave).max() + 1e-9
    wave *= rng.uniform(0.3, 0.9)
    wave += rng.standard_normal(n) * 10 ** (-rng.uniform(2.2, 3.0))         # background noise
    return wave.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# faces
# ---------------------------------------------------------------------------------------------------------------
def _mix(a, b, w):
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


def draw_face(traits, rng, size=128):
    """An RGB face crop (``size`` x ``size``) whose geometry and colours follow ``traits``."""
    ss = 2 * size  # draw at twice the size, then downsample (anti-aliasing)
    grey_a, grey_b = rng.uniform(70, 190, size=2)
    bg_a = np.clip(grey_a + rng.uniform(-25, 25, size=3), 0, 255)
    bg_b = np.clip(grey_b + rng.uniform(-25, 25, size=3), 0, 255)
    ramp = np.linspace(0.0, 1.0, ss)[:, None, None]
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
def write_pair(face, wave, face_path, voice_path, rng):
    os.makedirs(os.path.dirname(face_path), exist_ok=True)
    os.makedirs(os.path.dirname(voice_path), exist_ok=True)
    face.save(face_path, quality=int(rng.integers(80, 96)))
    np.save(voice_path, mel_from_waveform(wave, SAMPLE_RATE))


def make_vox(root, first_id, n_ids, videos, frames, seed, size):
    """VoxCeleb2 layout: ``n_ids`` identities, ``videos`` videos each, ``frames`` clips per video."""
    for number in range(first_id, first_id + n_ids):
        identity = f'id{number:05d}'
        traits = identity_traits(seed, number)
        rng = np.random.default_rng([seed, 1, number])
        for v in range(videos):
            video = video_name(rng, with_separators=(v == 0))
            for _ in range(frames):
                frame = f'{int(rng.integers(0, 100000)):05d}'
                write_pair(draw_face(traits, rng, size), synth_voice(traits, rng),
                           os.path.join(root, 'face', identity, video, frame + '.jpg'),
                           os.path.join(root, 'voice', f'{identity}_{video}_{frame}.npy'), rng)


def make_dfdc(root, first_id, n_ids, reals_per_id, seed, size, min_distance):
    """DFDC layout: ``reals_per_id`` real videos per identity and as many fakes (face of one, voice of another)."""
    numbers = list(range(first_id, first_id + n_ids))
    rng = np.random.default_rng([seed, 2, first_id])
    rows = ['video,label,face_identity,voice_identity']
    for i, number in enumerate(numbers):
        traits = identity_traits(seed, number)
        for r in range(reals_per_id):
            name = ''.join(rng.choice(list(string.ascii_lowercase), size=10))
            write_pair(draw_face(traits, rng, size), synth_voice(traits, rng),
                       os.path.join(root, 'real', name + '.jpg'), os.path.join(root, 'audio_feat', name + '.npy'), rng)
            rows.append(f'{name},real,id{number:05d},id{number:05d}')
            other = pick_other(rng, seed, number, numbers, min_distance)
            name = ''.join(rng.choice(list(string.ascii_lowercase), size=10))
            write_pair(draw_face(identity_traits(seed, other), rng, size), synth_voice(traits, rng),
                       os.path.join(root, 'fake', name + '.jpg'), os.path.join(root, 'audio_feat', name + '.npy'), rng)
            rows.append(f'{name},fake,id{other:05d},id{number:05d}')
    with open(os.path.join(root, 'videos.csv'), 'w') as handle:
        handle.write('\n'.join(rows) + '\n')


def make_fakeavceleb(root, first_id, n_ids, seed, size, min_distance, silence=0.3):
    """FakeAVCeleb-like set in the DFDC layout: one real and one fake of each category per identity."""
    numbers = list(range(first_id, first_id + n_ids))
    rng = np.random.default_rng([seed, 3, first_id])
    rows = ['video,category,face_identity,voice_identity']
    for i, number in enumerate(numbers):
        traits = identity_traits(seed, number)
        other = pick_other(rng, seed, number, numbers, min_distance)
        donor = pick_other(rng, seed, number, numbers, min_distance)
        cloned = (traits + identity_traits(seed, donor)) / 2
        swapped_face = identity_traits(seed, other)
        plans = [  # (category, folder, face traits, voice traits, leading silence, face id, voice id)
            ('RealVideo-RealAudio', 'real', traits, traits, 0.0, number, number),
            ('FakeVideo-RealAudio', 'fake', swapped_face, traits, 0.0, other, number),
            ('RealVideo-FakeAudio', 'fake', traits, cloned, silence, number, donor),
            ('FakeVideo-FakeAudio', 'fake', swapped_face, cloned, silence, other, donor),
        ]
        for category, folder, face_traits, voice_traits, lead, face_id, voice_id in plans:
            name = f'id{number:05d}_{category.split("-")[0][:4].lower()}{category.split("-")[1][:4].lower()}'
            write_pair(draw_face(face_traits, rng, size), synth_voice(voice_traits, rng, leading_silence=lead),
                       os.path.join(root, folder, name + '.jpg'), os.path.join(root, 'audio_feat', name + '.npy'), rng)
            rows.append(f'{name},{category},id{face_id:05d},id{voice_id:05d}')
    with open(os.path.join(root, 'categories.csv'), 'w') as handle:
        handle.write('\n'.join(rows) + '\n')


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='Dataset', help='folder that receives Voxceleb2/, DFDC/ and FakeAVCeleb/')
    parser.add_argument('--seed', type=int, default=0, help='seed of every draw (identities, clips, names)')
    parser.add_argument('--image_size', type=int, default=128, help='face crop size in pixels')
    parser.add_argument('--vox_ids', type=int, default=240, help='training identities (Voxceleb2 layout)')
    parser.add_argument('--videos', type=int, default=2, help='videos per training identity')
    parser.add_argument('--frames', type=int, default=1, help='clips (frames) per video')
    parser.add_argument('--dfdc_ids', type=int, default=32, help='identities of the DFDC-style test set')
    parser.add_argument('--dfdc_reals', type=int, default=2, help='real (and fake) videos per DFDC-style identity')
    parser.add_argument('--fakeavceleb_ids', type=int, default=16, help='identities of the FakeAVCeleb-style set')
    parser.add_argument('--min_distance', type=float, default=1.0,
                        help='a fake\'s face and voice come from identities at least this far apart in trait space '
                             '(traits lie in [-1, 1]^4)')
    parser.add_argument('--sets', default='vox,dfdc,fakeavceleb', help='which sets to build, comma-separated')
    parser.add_argument('--force', action='store_true', help='rebuild sets that are already complete')
    args = parser.parse_args(argv)
    if args.vox_ids < 2 or args.dfdc_ids < 2 or args.fakeavceleb_ids < 2:
        parser.error('every set needs at least two identities')
    common = {'seed': args.seed, 'image_size': args.image_size, 'generator': 1}
    sets = {s.strip() for s in args.sets.split(',') if s.strip()}
    unknown = sets - {'vox', 'dfdc', 'fakeavceleb'}
    if unknown:
        parser.error(f'unknown --sets {", ".join(sorted(unknown))}; use vox, dfdc, fakeavceleb')
    # identity numbers: training 1.., DFDC 10001.., FakeAVCeleb 20001.. (never shared)
    if 'vox' in sets:
        root = os.path.join(args.out, 'Voxceleb2')
        build('Voxceleb2', root, {**common, 'ids': args.vox_ids, 'videos': args.videos, 'frames': args.frames},
              args.force, lambda: make_vox(root, 1, args.vox_ids, args.videos, args.frames, args.seed, args.image_size))
    if 'dfdc' in sets:
        root = os.path.join(args.out, 'DFDC')
        build('DFDC', root, {**common, 'ids': args.dfdc_ids, 'reals': args.dfdc_reals, 'min': args.min_distance},
              args.force, lambda: make_dfdc(root, 10001, args.dfdc_ids, args.dfdc_reals, args.seed, args.image_size,
                                            args.min_distance))
    if 'fakeavceleb' in sets:
        root = os.path.join(args.out, 'FakeAVCeleb')
        build('FakeAVCeleb', root, {**common, 'ids': args.fakeavceleb_ids, 'min': args.min_distance}, args.force,
              lambda: make_fakeavceleb(root, 20001, args.fakeavceleb_ids, args.seed, args.image_size,
                                       args.min_distance))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Synthetic talking-head videos shaped like the real sets, for measuring and testing the prep scripts.

    python -m scripts.make_videos --out /tmp/videos --kind vox --count 8      # <out>/<id>/<video>/<clip>.mp4
    python -m scripts.make_videos --out /tmp/videos --kind dfdc --count 4     # <out>/<name>.mp4 + metadata.json

Each video shows one real photograph's face (scikit-image's astronaut, whose face dlib finds in a box about 87
pixels square) on a plain background, scaled so that box is ``--face_height`` pixels, with a voiced tone as its
sound (harmonics of 120-220 Hz and a little noise). The shapes follow the real data: VoxCeleb2 clips are 224x224
face-centred crops at 25 fps, about 8 s, AAC at 16 kHz; DFDC videos are 10 s at 30 fps, 1920x1080 or portrait
1080x1920, AAC at 44.1 kHz, with faces of 100 to 200 pixels. ``--light dark`` and ``bright`` make the frame dim or
washed out (faces in DFDC are filmed indoors and out, day and night). Video is H.264 (libx264), as in both sets.
"""
import argparse
import json
import os
import sys

import numpy as np

from data.perturb import mux_mono_audio

ASTRONAUT_BOX = (179, 83, 266, 170)   # dlib's face box on skimage.data.astronaut() (left, top, right, bottom)
KINDS = {   # width, height, fps, seconds, audio rate
    'vox': (224, 224, 25, 8.0, 16000),
    'dfdc': (1920, 1080, 30, 10.0, 44100),
    'dfdc_portrait': (1080, 1920, 30, 10.0, 44100),
}
LIGHTS = ('normal', 'dark', 'bright')


def tone(seconds, sr=16000, f0=180.0, silence=0.0, seed=0):
    """A voiced test signal (harmonics of ``f0`` plus a little noise), optionally after ``silence`` s of zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
    return np.concatenate([np.zeros(int(silence * sr)), y]).astype(np.float32)


def scene(width, height, face_height=150, light='normal', centre=(0.5, 0.42)):
    """An RGB frame (height, width, 3) with the astronaut's head scaled so that its face box is ``face_height``
    pixels, centred at ``centre`` (fractions of the width and height), on grey; ``light`` dims or washes it out."""
    from PIL import Image
    from skimage import data
    photo = data.astronaut()
    left, top, right, bottom = ASTRONAUT_BOX
    pad = (bottom - top)   # the head with some hair, neck and background around the face box
    region = photo[max(0, top - pad):bottom + pad, max(0, left - pad):right + pad]
    scale = face_height / (bottom - top)
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    head = np.asarray(Image.fromarray(region).resize(size, Image.BICUBIC))
    frame = np.full((height, width, 3), 118, dtype=np.uint8)
    x0 = int(centre[0] * width - size[0] / 2)
    y0 = int(centre[1] * height - size[1] / 2)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(width, x0 + size[0]), min(height, y0 + size[1])
    frame[fy0:fy1, fx0:fx1] = head[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    if light == 'dark':
        frame = (frame.astype(np.float32) * 0.3).astype(np.uint8)
    elif light == 'bright':
        frame = (255 - (255 - frame.astype(np.float32)) * 0.45).astype(np.uint8)
    elif light != 'normal':
        raise ValueError(f'unknown light {light!r}; use {", ".join(LIGHTS)}')
    return frame


# libx264 settings. REAL_X264 is what the real sets were encoded like (B-frames, lookahead, CRF rate control).
# EXACT_X264 writes the same bytes on every run: one thread (more frame threads would follow the core count),
# no lookahead, B-frames or adaptive quantisation, a constant QP. Measured on the four 32x32 AV-Deepfake1M-style
# videos of the sample-data test, rendered over and over while a test run loaded both cores: with REAL_X264, 5 of 124
# renders had one video (always the same one) encoded to other bytes from the same pixels; with EXACT_X264 none of
# 112 differed.
REAL_X264 = {'preset': 'veryfast', 'crf': '23'}
EXACT_X264 = {'preset': 'ultrafast', 'qp': '23'}


def write_video(path, frame, seconds=4.0, fps=25, audio=None, sr=16000, audio_codec=None, video_codec='mpeg4',
                motion=False, exact=False):
    """Encode ``frame`` (an RGB array, or a list of them: one per time step, the last held) for ``seconds`` at
    ``fps``; with ``audio`` (mono float32) an audio track.

    .mkv files get lossless 16-bit PCM audio, other containers AAC (``audio_codec`` overrides). ``video_codec``:
    mpeg4 (fast to write) or libx264 (what real sets hold); ``motion``: sway the frame and add noise; ``exact``: encode
    libx264 with ``EXACT_X264`` on one thread (files that must not change between runs)."""
    import av

    codec = audio_codec or ('pcm_s16le' if str(path).endswith('.mkv') else 'aac')
    sequence = frame if isinstance(frame, (list, tuple)) else None   # one frame per time step
    frame = sequence[0] if sequence else frame
    with av.open(str(path), 'w') as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = frame.shape[1], frame.shape[0], 'yuv420p'
        if video_codec == 'libx264':
            video.options = dict(EXACT_X264 if exact else REAL_X264)
            if exact:
                video.thread_count = 1   # x264's frame threads and the RGB-to-YUV conversion's slices
        sound = None
        if audio is not None:
            sound = out.add_stream(codec, rate=sr)
            sound.layout = 'mono'
        rng = np.random.default_rng(0)
        grain = [rng.integers(-3, 4, frame.shape, dtype=np.int16) for _ in range(4)] if motion else None
        for i in range(int(seconds * fps)):
            moving = sequence[min(i, len(sequence) - 1)] if sequence else frame
            if motion:   # a head that sways a few pixels, and sensor noise: work for the decoder, as in real video
                moving = np.roll(frame, (round(3 * np.sin(i / 7)), round(4 * np.cos(i / 11))), axis=(0, 1))
                moving = np.clip(moving + grain[i % 4], 0, 255).astype(np.uint8)
            picture = av.VideoFrame.from_ndarray(moving, format='rgb24')
            picture.pts = i
            for packet in video.encode(picture):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            fmt = 's16' if codec == 'pcm_s16le' else 'fltp'
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16) if fmt == 's16' else audio
            mux_mono_audio(out, sound, samples, fmt, sr)


def write_audio(path, audio, sr=16000):
    """An audio-only file (AAC in .m4a, as VoxCeleb2's aac tree) holding ``audio`` (mono float32)."""
    import av

    with av.open(str(path), 'w', format='mp4' if str(path).endswith('.m4a') else None) as out:
        sound = out.add_stream('aac', rate=sr)
        sound.layout = 'mono'
        mux_mono_audio(out, sound, np.asarray(audio, dtype=np.float32), 'fltp', sr)


def make(out, kind, count, face_height=None, light='normal'):
    """Write ``count`` videos of ``kind`` under ``out`` (skipping those already there); returns their paths."""
    width, height, fps, seconds, sr = KINDS[kind]
    face_height = face_height or (120 if kind == 'vox' else 150)
    centre = (0.5, 0.5) if kind == 'vox' else (0.5, 0.42)
    frame = scene(width, height, face_height, light, centre)
    paths, metadata = [], {}
    for i in range(count):
        if kind == 'vox':
            path = os.path.join(out, f'id{i // 2:05d}', f'video{i % 2:02d}', '00001.mp4')
        else:
            path = os.path.join(out, f'{kind}_{light}_{i:03d}.mp4')
            metadata[os.path.basename(path)] = {'label': 'REAL' if i % 2 == 0 else 'FAKE'}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.isfile(path):
            write_video(path + '.part.mp4', frame, seconds, fps, tone(seconds, sr, 120 + 100 * i / max(1, count),
                                                                        seed=i), sr, video_codec='libx264', motion=True)
            os.replace(path + '.part.mp4', path)
        paths.append(path)
    if metadata:
        meta_path = os.path.join(out, 'metadata.json')
        old = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
        with open(meta_path, 'w') as handle:
            json.dump({**old, **metadata}, handle, indent=1)
    return paths


def main(argv=None):
    """Write the videos asked for; exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', required=True, help='folder that receives the videos')
    parser.add_argument('--kind', default='vox', choices=sorted(KINDS), help='shape of the videos')
    parser.add_argument('--count', type=int, default=4, help='how many videos')
    parser.add_argument('--face_height', type=int, default=0,
                        help='side of the face box in pixels (0: 120 for vox, 150 for dfdc)')
    parser.add_argument('--light', default='normal', choices=LIGHTS, help='exposure of the frames')
    args = parser.parse_args(argv)
    for path in make(args.out, args.kind, args.count, args.face_height or None, args.light):
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())

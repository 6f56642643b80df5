"""Small video files for the preprocessing tests, encoded with PyAV: frames, optional audio track."""
import numpy as np


def face_frame(size=(288, 352), offset=(30, 80)):
    """An RGB frame (H, W, 3) holding the head of ``skimage.data.astronaut()`` (a real photograph) on grey.

    The face is about 90 pixels wide, at rows 106-196 and columns 155-245 of the default frame.
    """
    from skimage import data

    h, w = size
    frame = np.full((h, w, 3), 128, dtype=np.uint8)
    top, left = offset
    frame[top:top + 220, left:left + 220] = data.astronaut()[:220, 100:320]
    return frame


def blank_frame(size=(288, 352), value=90):
    return np.full((*size, 3), value, dtype=np.uint8)


def tone(seconds, sr=16000, f0=180.0, silence=0.0, seed=0):
    """A voiced test signal (harmonics of ``f0`` plus a little noise), optionally after ``silence`` s of zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
    return np.concatenate([np.zeros(int(silence * sr)), y]).astype(np.float32)


def write_video(path, frame, seconds=4.0, fps=25, audio=None, sr=16000, audio_codec=None):
    """Encode ``frame`` (an RGB array) for ``seconds`` at ``fps``; with ``audio`` (mono float32) an audio track.

    .mkv files get lossless 16-bit PCM audio, other containers AAC (``audio_codec`` overrides).
    """
    import av

    codec = audio_codec or ('pcm_s16le' if str(path).endswith('.mkv') else 'aac')
    with av.open(str(path), 'w') as out:
        video = out.add_stream('mpeg4', rate=fps)
        video.width, video.height, video.pix_fmt = frame.shape[1], frame.shape[0], 'yuv420p'
        sound = None
        if audio is not None:
            sound = out.add_stream(codec, rate=sr)
            sound.layout = 'mono'
        for _ in range(int(seconds * fps)):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            fmt = 's16' if codec == 'pcm_s16le' else 'fltp'
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16) if fmt == 's16' else audio
            step = 1024
            for start in range(0, len(samples), step):
                chunk = np.ascontiguousarray(samples[start:start + step][None])
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout='mono')
                af.sample_rate = sr
                af.pts = start
                for packet in sound.encode(af):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)


def write_audio(path, audio, sr=16000):
    """An audio-only file (AAC in .m4a, as VoxCeleb2's aac tree) holding ``audio`` (mono float32)."""
    import av

    with av.open(str(path), 'w', format='mp4' if str(path).endswith('.m4a') else None) as out:
        sound = out.add_stream('aac', rate=sr)
        sound.layout = 'mono'
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[start:start + 1024][None]), format='fltp',
                                               layout='mono')
            frame.sample_rate, frame.pts = sr, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)

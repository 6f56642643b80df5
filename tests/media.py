"""Small video files for the preprocessing tests, encoded with PyAV: frames, optional audio track (the writers are
those of scripts/make_videos.py)."""
import numpy as np

from scripts.make_videos import tone, write_audio, write_video

__all__ = ["blank_frame", "face_frame", "tone", "write_audio", "write_video"]


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

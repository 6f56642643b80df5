"""Deepfake test data (DFDC, and the FakeAVCeleb sample of the authors): real and fake videos, one pair each."""
import logging
import os

import numpy as np

from .audio import load_voice
from .base_dataset import BaseDataset, DatasetError, is_image, load_face

logger = logging.getLogger(__name__)

LAYOUT = ('<dataroot>/real/<video>.jpg and <dataroot>/fake/<video>.jpg, each with its voice at '
          '<dataroot>/audio_feat/<video>.npy')


class DFDCDataset(BaseDataset):
    """Every real and every fake video as one voice-face pair (``--dataset_mode DFDC``).

    Layout::

        <dataroot>/real/<video>.jpg        face of a real video          (label 1)
        <dataroot>/fake/<video>.jpg        face of a fake video          (label 0)
        <dataroot>/audio_feat/<video>.npy  the video's mel in dB, float (n_mels, frames)

    Items are the real videos in name order, then the fake ones. Each item is a dict
    (S = ``--crop_size``, M = ``--n_mels``, T = ``--n_frames``)::

        face        float32 (3, S, S)   the video's face, values in [-1, 1] (centre crop, never flipped)
        voice       float32 (1, M, T)   the video's normalised mel, values in [-1, 0]
        label       int64   ()          1 = real, 0 = fake
        video       str                 the video name
        face_path   str
        voice_path  str
    """

    def __init__(self, opt):
        BaseDataset.__init__(self, opt)
        audio_dir = os.path.join(self.root, 'audio_feat')
        if not os.path.isdir(audio_dir):
            raise DatasetError(f'{audio_dir} is missing; DFDC expects {LAYOUT}')
        self.items = []  # (video, face path, voice path, label)
        problems, used = [], set()
        for folder, label in (('real', 1), ('fake', 0)):
            face_dir = os.path.join(self.root, folder)
            if not os.path.isdir(face_dir):
                raise DatasetError(f'{face_dir} is missing; DFDC expects {LAYOUT}')
            names = sorted(f for f in os.listdir(face_dir) if is_image(f))
            if not names:
                raise DatasetError(f'{face_dir} holds no face images (an empty folder); DFDC expects {LAYOUT}')
            for name in names:
                video = os.path.splitext(name)[0]
                voice = os.path.join(audio_dir, video + '.npy')
                if not os.path.isfile(voice):
                    problems.append((os.path.join(face_dir, name), f'no voice file {voice}'))
                    continue
                used.add(video + '.npy')
                self.items.append((video, os.path.join(face_dir, name), voice, label))
        for name in sorted(n for n in os.listdir(audio_dir) if n.endswith('.npy') and n not in used):
            problems.append((os.path.join(audio_dir, name), 'no face image in real/ or fake/ for this voice'))
        self.report_problems(problems, LAYOUT)
        if not self.items:
            raise DatasetError(f'no usable voice-face pairs under {self.root}; DFDC expects {LAYOUT}')
        if len(self.items) > opt.max_dataset_size:  # an evenly spaced subset keeps reals and fakes in proportion
            keep = np.linspace(0, len(self.items) - 1, num=max(1, opt.max_dataset_size)).round().astype(int)
            self.items = [self.items[i] for i in np.unique(keep)]
        labels = [item[3] for item in self.items]
        logger.info('DFDC %s: %d real and %d fake pairs', self.root, sum(labels), len(labels) - sum(labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        video, face_path, voice_path, label = self.items[index]
        return {
            'face': load_face(face_path, self.opt),
            'voice': load_voice(voice_path, self.opt.n_mels, self.opt.n_frames),
            'label': np.int64(label),
            'video': video,
            'face_path': face_path,
            'voice_path': voice_path,
        }

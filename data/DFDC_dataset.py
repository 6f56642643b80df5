"""Deepfake data (DFDC, FakeAVCeleb, DeepfakeTIMIT in the DFDC layout): real and fake videos, one or more
voice-face windows each; test pairs, or fine-tuning anchors with fake faces as negatives."""
import csv
import logging
import os

import numpy as np

from .base_dataset import BaseDataset, DatasetError, is_image
from .errors import read_json_file
from . import faces
from . import inputs as data_inputs
from .layouts import DFDC_LABELS
from .layouts import DFDC_LAYOUT as LAYOUT
from .layouts import dfdc_paths, dfdc_window_voice
from .store import LooseStore

logger = logging.getLogger(__name__)
SPLIT_PARTS = {'train': 'train', 'val': 'val', 'test': 'test'}
ORIGINAL_FAKES_PER_REAL = 30


class DFDCDataset(BaseDataset):
    """Real and fake videos as voice-face pairs (``--dataset_mode DFDC``).

    Layout (both forms may be mixed; ``make_splits.py`` and the prep scripts write the side files)::

        <dataroot>/real/<video>.jpg             one window: the face of a real video        (label 1)
        <dataroot>/fake/<video>.jpg             one window of a fake video                   (label 0)
        <dataroot>/audio_feat/<video>.npy       its mel in dB, float (n_mels, frames)
        <dataroot>/real/<video>/<k>.jpg         several windows of one video (k = 0, 1, ...), each with
        <dataroot>/audio_feat/<video>/<k>.npy   the mel of the same window
        <dataroot>/categories.csv               optional: video, category (FakeAVCeleb) for per-category results

    ``--split_file`` (a JSON file of ``scripts/make_splits.py``) keeps the videos of one part: ``train``, ``val``
    or ``test`` after ``--phase``. ``--protocol original`` reproduces the released evaluation: one pair per file
    and, for each real video i of n (sorted), the fakes ``round(s * i)`` to ``round(s * (i + 1))`` (at most 30) of
    the sorted fakes, s = fakes / reals.

    Test and validation items (a window; test_DF.py aggregates windows per video), S = ``--crop_size``,
    M = ``--n_mels``, T = ``--n_frames``::

        face        uint8   (3, S, S)   the window's face (centre crop, never flipped)
        voice       float16 (1, M, T)   the window's normalised mel, values in [-1, 0] (the transport dtype)
        label       int64   ()          1 = real, 0 = fake
        video       str                 the video name
        window      int64   ()          the window number within the video (0 for a single file)
        face_path   str
        voice_path  str

    Training items (fine-tuning, the journal version's second stage): every window of a real video is an anchor
    (its voice) with its positive (its face) and ``--n_negatives`` faces of fake videos (K), drawn per
    ``(--seed, epoch, index)`` (K = the model's ``n_negatives``; fine-tuning needs ``--negatives sampled``); with
    ``--loss fake_pairs`` each fake face comes with its own window's voice (``neg_voices``), and journal inputs start
    every voice at the journal's random offset (``data/inputs.py``)::

        voice           float16 (1, M, T)      (the transport dtype)
        face            uint8   (3, S, S)
        neg_faces       uint8   (K, 3, S, S)   faces of fake windows
        neg_voices      (K, 1, M, T)           only with neg_voices: the voices of the same fake windows
        identity        int64   ()             the real video's index
        neg_identities  int64   (K,)           -1 - index of each fake video (never equal to an identity)
        index           int64   ()
        face_path       str
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """The split file and the protocol; fine-tuning defaults to sampled negatives (the fake faces)."""
        parser.add_argument('--split_file', type=str, default='',
                            help='JSON of scripts/make_splits.py: keep the videos of the part named by --phase '
                                 '(train, val, test); empty = every video')
        parser.add_argument('--protocol', choices=('sound', 'original'), default='sound',
                            help='sound: every window, video-level results; original: the released evaluation '
                                 '(frame-level, its sampling of fakes per real)')
        parser.add_argument('--original_order', choices=('sorted', 'listdir'), default='sorted',
                            help='--protocol original takes each real\'s fakes from a list of all fakes: sorted by '
                                 'name (reproducible), or in os.listdir order of fake/ as the released code did '
                                 '(the file system\'s order: the same pairs only on the same machine and folder)')
        if is_train:
            parser.set_defaults(negatives='sampled')   # fine-tuning draws its negatives from the fake faces
        return parser

    def __init__(self, opt, phase, n_negatives=0, **transport):
        BaseDataset.__init__(self, opt, phase, n_negatives, **transport)
        audio_dir = os.path.join(self.root, 'audio_feat')
        if not self.store.isdir(audio_dir):
            raise DatasetError(f'{audio_dir} is missing; DFDC expects {LAYOUT}')
        self.split = read_split_file(opt.split_file) if opt.split_file else None
        keep = None
        if self.split is not None:
            part = SPLIT_PARTS.get(phase)
            if part is None:
                raise DatasetError(f'--split_file: no part for --phase {phase}; use train, val or test')
            keep = set(self.split.get(part, []))
            if not keep:
                raise DatasetError(f'--split_file {opt.split_file} lists no {part} videos')
            check_split_parts(self.split, opt.split_file, opt.isTrain)
        self.items = []  # (video, face path, voice path, label, window)
        problems, used, forms = [], set(), {}   # forms: video -> the face path of the form seen first
        for folder, label in DFDC_LABELS.items():
            face_dir = os.path.join(self.root, folder)
            if not self.store.isdir(face_dir):
                raise DatasetError(f'{face_dir} is missing; DFDC expects {LAYOUT}')
            entries = sorted(self.store.listdir(face_dir))
            if not any(is_image(e) or self.store.isdir(os.path.join(face_dir, e)) for e in entries):
                raise DatasetError(f'{face_dir} holds no face images (an empty folder); DFDC expects {LAYOUT}')
            for entry in entries:
                path = os.path.join(face_dir, entry)
                if self.store.isdir(path):
                    video = entry
                    if keep is not None and video not in keep:
                        continue
                    windows = sorted((f for f in self.store.listdir(path) if is_image(f)), key=_window_key)
                    if not windows:
                        problems.append((path, 'empty folder: no window images'))
                        continue
                    pairs = [(os.path.join(path, f), dfdc_window_voice(self.root, video, os.path.splitext(f)[0],
                                                                       self.voice_ext),
                              _window_key(f)[0]) for f in windows]
                elif is_image(entry):
                    video = os.path.splitext(entry)[0]
                    pairs = [(path, dfdc_paths(self.root, folder, video, ext=self.voice_ext)[1], 0)]
                else:
                    continue
                if keep is not None and video not in keep:
                    continue
                if video in forms:   # <video>.jpg and <video>/ (or a real and a fake of one name): counted twice
                    problems.append((path, f'video {video} is also {forms[video]}; a folder prepared twice with '
                                           f'different --windows (or labels) holds both: keep one'))
                    continue
                forms[video] = path
                for face, voice, window in pairs:
                    if not self.store.isfile(voice):
                        problems.append((face, f'no voice file {voice}{self.missing_voice_hint()}'))
                        continue
                    used.add(voice)
                    self.items.append((video, face, voice, label, window))
        problems += self._orphans(self.store, audio_dir, used, keep, self.voice_ext)
        if keep is not None:
            absent = sorted(keep - set(forms))
            if absent:
                raise DatasetError(f'--split_file {opt.split_file}: {len(absent)} of the {len(keep)} {part} videos it '
                                   f'names are not in {self.root} (e.g. {absent[0]}); is it the split of another set?',
                                   path=opt.split_file)
        self.report_problems(problems, LAYOUT)
        if not self.items:
            raise DatasetError(f'no usable voice-face pairs under {self.root}; DFDC expects {LAYOUT}')
        if opt.protocol == 'original':
            order = None
            if opt.original_order == 'listdir':   # the released code's order: os.listdir of fake/
                listed = self.store.listdir(os.path.join(self.root, 'fake'))
                order = {os.path.splitext(name)[0] if is_image(name) else name: rank
                         for rank, name in enumerate(listed)}
            self.items = original_sampling(self.items, order)
        if len(self.items) > opt.max_dataset_size:  # an evenly spaced subset keeps reals and fakes in proportion
            pick = np.linspace(0, len(self.items) - 1, num=max(1, opt.max_dataset_size)).round().astype(int)
            self.items = [self.items[i] for i in np.unique(pick)]
        self.training = phase == 'train' and opt.isTrain
        if self.training:
            self._setup_training()
        labels = [item[3] for item in self.items]
        videos = {(item[0], item[3]) for item in self.items}
        logger.info('DFDC %s (%s): %d real and %d fake windows of %d videos', self.root, phase, sum(labels),
                    len(labels) - sum(labels), len(videos))

    @staticmethod
    def _orphans(store, audio_dir, used, keep, ext='.npy'):
        """Voice files (ending in ``ext``, or window folders) with no face; only for the kept videos when a split is
        given."""
        out = []
        for entry in sorted(store.listdir(audio_dir)):
            path = os.path.join(audio_dir, entry)
            video = entry if store.isdir(path) else os.path.splitext(entry)[0]
            if keep is not None and video not in keep:
                continue
            files = ([os.path.join(path, f) for f in sorted(store.listdir(path)) if f.endswith(ext)]
                     if store.isdir(path) else [path] if entry.endswith(ext) else [])
            out += [(f, 'no face image in real/ or fake/ for this voice') for f in files if f not in used]
        return out

    def _setup_training(self):
        """Fine-tuning: real windows are the anchors, fake windows the pool of negatives."""
        if self.n_negatives < 1:
            raise DatasetError('fine-tuning on DFDC takes its negatives from the fake faces: use --negatives sampled')
        self.fakes = [item for item in self.items if item[3] == 0]
        self.reals = [item for item in self.items if item[3] == 1]
        if not self.reals or not self.fakes:
            raise DatasetError(f'fine-tuning needs real and fake videos in the training part of {self.root}')
        self.video_index = {v: i for i, v in enumerate(sorted({item[0] for item in self.items}))}

    def split_lists(self):
        """The videos of each part of the split file (saved with a training run), or nothing."""
        return {part: list(self.split.get(part, [])) for part in ('train', 'val')} if self.split else {}

    def has_validation(self):
        """Fine-tuning validates on the split file's ``val`` part."""
        return bool(self.split and self.split.get('val'))

    def test_facts(self):
        """The part tested (``--phase`` with a ``--split_file``, else ``all``), the protocol and the order the
        released protocol takes its fakes in."""
        opt = self.opt
        return {'part': self.phase if opt.split_file else 'all', 'protocol': opt.protocol,
                'split_file': os.path.abspath(opt.split_file) if opt.split_file else '',
                'original_order': opt.original_order}

    def label_counts(self):
        """(reals, fakes) among the pairs of this phase."""
        return _label_counts(self.items)

    def categories(self):
        """{video: category} from ``<dataroot>/categories.csv`` (FakeAVCeleb), or {} without that file."""
        return read_categories(os.path.join(self.root, 'categories.csv'), self.store)

    def __len__(self):
        """Fine-tuning: the real windows (anchors); otherwise every window."""
        return len(self.reals) if self.training else len(self.items)

    def load(self, index, rng):
        """A fine-tuning anchor or a labelled pair (see the class docstring)."""
        if self.training:
            return self._training_item(index, rng)
        video, face_path, voice_path, label, window = self.items[index]
        return {
            'face': self.load_face(face_path),
            'voice': self.load_voice(voice_path),
            'label': np.int64(label),
            'video': video,
            'window': np.int64(window),
            'face_path': face_path,
            'voice_path': voice_path,
        }

    def _training_item(self, index, rng):
        video, face_path, voice_path, _, _ = self.reals[index]
        k = self.n_negatives
        picks = rng.choice(len(self.fakes), size=k, replace=k > len(self.fakes))
        item = {
            'voice': self.load_voice(voice_path, self._offset(rng)),
            'face': self.load_face(face_path, rng, train=True),
            'neg_faces': faces.stack_faces([self.load_face(self.fakes[j][1], rng, train=True) for j in picks]),
            'identity': np.int64(self.video_index[video]),
            'neg_identities': np.asarray([-1 - self.video_index[self.fakes[j][0]] for j in picks], dtype=np.int64),
            'index': np.int64(index),
            'face_path': face_path,
        }
        if self.neg_voices:   # each fake face with its own voice: the fake pairs of the journal's fine-tuning
            item['neg_voices'] = np.stack([self.load_voice(self.fakes[j][2], self._offset(rng)) for j in picks])
        return item

    def _offset(self, rng):
        """Where a fine-tuning voice starts in its file: the journal's random start (0.1 to 1 s, in steps of 10 ms)
        for journal inputs; the start of the stored window otherwise."""
        if self.inputs.name != 'journal':
            return 0
        return int(rng.choice(data_inputs.DEEPFAKE_OFFSETS))


def _window_key(name):
    """Sort key of a window file: by its number, then its name."""
    stem = os.path.splitext(name)[0]
    # isdecimal, not isdigit: '²' is a digit that int() refuses; decimal digits of any script convert
    return (int(stem), stem) if stem.isdecimal() else (0, stem)


def _label_counts(items):
    """(reals, fakes) of dataset items (label at position 3)."""
    reals = sum(1 for item in items if item[3] == 1)
    return reals, len(items) - reals


def original_sampling(items, order=None):
    """The released evaluation's pairs: every real window, and for real i of n the fakes
    round(s * i) .. round(s * (i + 1)) (at most 30) of the list of fakes, s = number of fakes / number of reals.
    The list is sorted by video name, or with ``order`` ({video: rank}, e.g. ``os.listdir``'s) in that order, as
    the released code took it. The two give different pairs once a real has more than a few fakes."""
    reals = [item for item in items if item[3] == 1]
    rank = (lambda item: (order.get(item[0], len(order)), item[0], item[4])) if order is not None \
        else (lambda item: (item[0], item[4]))
    fakes = sorted((item for item in items if item[3] == 0), key=rank)
    scale = len(fakes) / max(1, len(reals))
    chosen = []
    for i in range(len(reals)):
        start = int(round(scale * i))
        stop = min(int(round(scale * (i + 1))), start + ORIGINAL_FAKES_PER_REAL)
        chosen.extend(fakes[start:stop])
    return reals + chosen


MAX_SPLIT_BYTES = 256 * 2 ** 20   # a split file is a few MB even for DFDC's 120,000 videos


def read_split_file(path):
    """The {'train': [...], 'val': [...], 'test': [...]} video lists of a split file: a regular file (a FIFO or a
    device would hang the read), JSON, each part present a list of video names."""
    split = read_json_file(path, f'--split_file {path}', MAX_SPLIT_BYTES)
    if not isinstance(split, dict) or not any(isinstance(split.get(p), list) for p in SPLIT_PARTS.values()):
        raise DatasetError(f'--split_file {path}: expected {{"train": [videos], "val": [...], "test": [...]}}, as '
                           f'written by scripts/make_splits.py')
    for part in SPLIT_PARTS.values():
        names = split.get(part)
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise DatasetError(f'--split_file {path}: its {part} part must be a list of video names, got '
                               f'{str(names)[:60]}', path=path)
    return split


def check_split_parts(split, path, training):
    """Refuse (DatasetError) a split whose parts share videos when training on it: fine-tuning on the videos it is
    validated or tested on would measure nothing."""
    if not training:
        return
    train = set(split.get('train') or ())
    for part in ('val', 'test'):
        shared = train & set(split.get(part) or ())
        if shared:
            raise DatasetError(f'--split_file {path}: {len(shared)} video(s) are in both train and {part} (e.g. '
                               f'{sorted(shared)[0]}); a model validated or tested on what it was trained on measures '
                               f'nothing. Write the split with scripts/make_splits.py', path=path)


def read_categories(path, store=None):
    """{video: category} from a CSV with the columns video and category; {} when the file does not exist.
    ``store``: where the file lives (``data/store.py``; default: the file system)."""
    store = store or LooseStore(os.path.dirname(path))
    if not store.isfile(path):
        return {}
    with store.open_text(path) as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or 'video' not in reader.fieldnames or 'category' not in reader.fieldnames:
            raise DatasetError(f'{path}: expected the columns video and category')
        return {row['video']: row['category'] for row in reader}

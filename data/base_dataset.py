"""The dataset contract and the batch contract.

A dataset is found by name: ``--dataset_mode Vox_image`` -> ``data/Vox_image_dataset.py::VoxImageDataset``.
It subclasses ``BaseDataset`` and implements:

* ``modify_commandline_options(parser, is_train)``: add its own flags or change defaults;
* ``__init__(opt, phase, n_negatives=0, face_backend=..., voice_dtype=..., inputs=..., face_resample=...,
  neg_voices=False)``: scan ``opt.dataroot`` for ``phase``; raise ``DatasetError`` with the path and the expected
  layout when the data do not fit. The keyword arguments come from the model's config (``data.transport.dataset_args``), not
  from the options: ``n_negatives`` negative faces per training item (0 = none), the face backend of
  ``data/faces.py`` and its resampling filter, the dtype voices travel in, the input recipe of ``data/inputs.py``
  (which voice files to read and how: ``voice_ext``, ``load_voice``) and, for losses that contrast whole fake pairs,
  ``neg_voices`` (each negative face comes with its own voice);
* ``__len__()`` and ``load(index, rng)``: one item, drawing anything random (negatives, crops, flips) from ``rng``,
  the generator of ``(--seed, epoch, index)`` that ``__getitem__`` makes. The loader asks for ``dataset[(epoch,
  index)]``, so the epoch goes straight into the generator and results do not depend on the number of workers.

The batch contract: what a phase yields, collated (B = batch, K = negatives, S = crop size, M = mel bins,
T = frames), as it leaves the workers. Datasets list the same keys in their class docstrings. A loader with a
Transport (``data/transport.py``) then turns ``voice``, ``face``, ``neg_faces`` and ``neg_voices`` into encoder input:
float32 on the model's device, faces normalised by the input recipe (``vfd2022``: [-1, 1]).

* ``train`` (anchors)::

      voice           float16 (B, 1, M, T)     the anchor's normalised mel, values in [-1, 0] (float32 for the
                                               released encoders: see ``voice_dtype``)
      face            uint8   (B, 3, S, S)     the anchor's own face
      identity        int64   (B,)             who the anchor is (negatives never share it)
      index           int64   (B,)             the anchor's index in the dataset
      face_path       list of B str
      neg_faces       uint8   (B, K, 3, S, S)  only when K > 0: faces of other identities
      neg_identities  int64   (B, K)           only when K > 0
      neg_voices      (B, K, 1, M, T)          only when the model asks for them (``neg_voices``): the voice of
                                               each negative face's own clip (a fake pair, for fine-tuning)
      replaced        list of {'path', 'reason'}  only with --skip_bad: unreadable negatives that were replaced

* ``val`` and ``test`` (labelled pairs; validation and testing read them alike)::

      voice           float16 (B, 1, M, T)     (float32 for the released encoders)
      face            uint8   (B, 3, S, S)     centre crop, never flipped
      label           int64   (B,)             1 = the voice's own face (real), 0 = another face (fake)
      video           list of B str            the video (or anchor clip) the pair belongs to
      window          int64   (B,)             the window within the video (Vox validation: the pair's slot)
      face_path       list of B str
      voice_path      list of B str

Files that do not fit are the user's to fix, so a dataset says which and why: problems found while scanning
(a face without its voice, a voice without its face, an empty folder) go through ``report_problems``, which raises
one ``DatasetError`` listing them, or with ``--skip_bad`` leaves those samples out and keeps them in
``self.skipped`` for the run's skip log; a file that cannot be read raises ``DatasetError`` (with its ``path``) from
``load``, which the loader turns into an error in the main process (or a skipped sample with ``--skip_bad``).
"""
import logging
import os

import numpy as np

from . import audio, faces, store
from . import inputs as data_inputs
from .errors import DatasetError
from .perturb import PerturbedReader

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
logger = logging.getLogger(__name__)


class BaseDataset:
    """Base class of the datasets; see the module docstring for the contract."""

    def __init__(self, opt, phase, n_negatives=0, *, face_backend='torchvision', voice_dtype='float16',
                 inputs='vfd2022', face_resample='bicubic', neg_voices=False):
        self.opt = opt
        self.phase = phase
        self.n_negatives = int(n_negatives)
        self.face_backend = face_backend     # data/faces.py: 'torchvision', or 'pil' for the released encoders
        self.face_resample = face_resample
        self.voice_dtype = np.dtype(voice_dtype)
        self.inputs = data_inputs.recipe(inputs)
        self.voice_ext = self.inputs.voice_ext
        self.neg_voices = bool(neg_voices)
        self.augment = getattr(opt, 'augment', 'none') if phase == 'train' and opt.isTrain else 'none'
        self.root = opt.dataroot
        self.skipped = []  # (path, reason) of samples left out while scanning (--skip_bad)
        if not os.path.isdir(self.root):
            raise DatasetError(f'--dataroot {self.root} is not a folder')
        self.store = store.open_store(self.root)   # loose files, or the shards of scripts/pack_dataset.py
        # the media as read for the encoders: as stored, or after test_DF.py --perturb's condition (data/perturb.py)
        condition = getattr(opt, 'perturb_condition', None)
        self.read = PerturbedReader(self.store.read, condition, opt.seed) if condition else self.store.read

    def report_problems(self, problems, layout):
        """``problems``: (path, reason) pairs found while scanning. Raise one DatasetError that lists them (the
        first ten) with the expected ``layout``, or with ``--skip_bad`` keep them in ``self.skipped``."""
        if not problems:
            return
        if self.opt.skip_bad:
            self.skipped.extend(problems)
            logger.warning('%s: %d sample(s) left out (--skip_bad), e.g. %s: %s', self.root, len(problems),
                           *problems[0])
            return
        lines = '\n  '.join(f'{path}: {reason}' for path, reason in problems[:10])
        more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
        raise DatasetError(f'{len(problems)} problem(s) under {self.root}; expected {layout}:\n  {lines}{more}\n'
                           f'(--skip_bad leaves such samples out and lists them in the experiment folder)')

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """Add the dataset's flags to ``parser`` (and change defaults); return it."""
        return parser

    def split_lists(self):
        """Lists to save with a training run (e.g. the identity split): {name: [...]}."""
        return {}

    def has_validation(self):
        """Whether this dataset offers a validation part (``phase='val'``) for training runs."""
        return False

    def load_face(self, path, rng=None, train=False):
        """A face for the encoder, uint8 (3, S, S), prepared by this dataset's backend (``data/faces.py``); training
        faces go through ``--augment`` when it is on."""
        return faces.load_face(path, self.opt, rng, train, self.face_backend, read=self.read,
                               resample=self.face_resample, augment=self.augment if train else 'none')

    def load_voice(self, path, offset=0):
        """A voice for the encoder, (1, M, T), in this dataset's transport dtype: the stored mel normalised to
        [-1, 0] (vfd2022, ``data/audio.py``), or the journal's power mel of the WAV file's 40,960 samples from sample
        ``offset`` (``data/inputs.py``)."""
        if self.inputs.name == 'journal':
            voice = data_inputs.load_journal_voice(path, self.read, offset, self.opt.n_mels, self.opt.n_frames)
        else:
            voice = audio.load_voice(path, self.opt.n_mels, self.opt.n_frames, read=self.read)
        return voice.astype(self.voice_dtype, copy=False)

    def missing_voice_hint(self):
        """What to say when a face has no voice file of this dataset's kind."""
        if self.voice_ext == '.wav':
            return (' (this model reads the journal\'s inputs: 16 kHz WAV voices beside the mels; the prep scripts '
                    'write them with --voices mel,wav, their default, and scripts/make_sample_data.py writes both)')
        return ''

    def test_facts(self):
        """What a test on this dataset is, in the dataset's words (test_DF.py names its results folder and its
        identity by them): ``part`` (the part tested, ``all`` for the whole set), ``protocol`` (how pairs are
        drawn; ``sound`` = every real and fake window as it is) and ``split_file`` (or ''); a dataset with more
        choices adds them."""
        return {'part': 'all', 'protocol': 'sound', 'split_file': ''}

    def label_counts(self):
        """(reals, fakes) among the labelled pairs of a ``val`` or ``test`` phase; None where it is not known."""
        return None

    def categories(self):
        """{video: fake category} for per-category results; {} when the dataset has none."""
        return {}

    def rng(self, epoch, index):
        """The random generator of sample ``index`` in ``epoch``."""
        return np.random.default_rng([int(self.opt.seed) % 2 ** 32, int(epoch), int(index)])

    def __getitem__(self, key):
        """``dataset[(epoch, index)]`` (what the loader asks for) or ``dataset[index]`` (epoch 0)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        return self.load(index, self.rng(epoch, index))

    def __len__(self):
        """Number of items of this phase."""
        raise NotImplementedError

    def load(self, index, rng):
        """Item ``index`` as a dict of the batch contract, random draws from ``rng``."""
        raise NotImplementedError


def is_image(name):
    """Whether a file name has an image extension."""
    return name.lower().endswith(IMAGE_EXTENSIONS)

"""The dataset contract, the batch contract, and the face preprocessing shared by every dataset.

A dataset is found by name: ``--dataset_mode Vox_image`` -> ``data/Vox_image_dataset.py::VoxImageDataset``.
It subclasses ``BaseDataset`` and implements:

* ``modify_commandline_options(parser, is_train)``: add its own flags or change defaults;
* ``__init__(opt, phase, n_negatives=0)``: scan ``opt.dataroot`` for ``phase``; raise ``DatasetError`` with the
  path and the expected layout when the data do not fit. ``n_negatives`` (decided by the model, not read from the
  options) is how many negative faces a training item carries; 0 = none;
* ``__len__()`` and ``load(index, rng)``: one item, drawing anything random (negatives, crops, flips) from ``rng``,
  the generator of ``(--seed, epoch, index)`` that ``__getitem__`` makes. The loader asks for ``dataset[(epoch,
  index)]``, so the epoch goes straight into the generator and results do not depend on the number of workers.

The batch contract: what a phase yields, collated (B = batch, K = negatives, S = crop size, M = mel bins,
T = frames). Datasets list the same keys in their class docstrings.

* ``train`` (anchors)::

      voice           float32 (B, 1, M, T)     the anchor's normalised mel, values in [-1, 0]
      face            float32 (B, 3, S, S)     the anchor's own face, values in [-1, 1]
      identity        int64   (B,)             who the anchor is (negatives never share it)
      index           int64   (B,)             the anchor's index in the dataset
      face_path       list of B str
      neg_faces       float32 (B, K, 3, S, S)  only when K > 0: faces of other identities
      neg_identities  int64   (B, K)           only when K > 0
      replaced        list of {'path', 'reason'}  only with --skip_bad: unreadable negatives that were replaced

* ``val`` and ``test`` (labelled pairs; validation and testing read them alike)::

      voice           float32 (B, 1, M, T)
      face            float32 (B, 3, S, S)     centre crop, never flipped
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
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The data on disk do not fit the layout the dataset expects; the message says where and what. ``path`` names
    the file when the error is about one file."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class BaseDataset:
    """Base class of the datasets; see the module docstring for the contract."""

    def __init__(self, opt, phase, n_negatives=0):
        self.opt = opt
        self.phase = phase
        self.n_negatives = int(n_negatives)
        self.root = opt.dataroot
        self.skipped = []  # (path, reason) of samples left out while scanning (--skip_bad)
        if not os.path.isdir(self.root):
            raise DatasetError(f'--dataroot {self.root} is not a folder')

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


def load_face(path, opt, rng=None, train=False):
    """Read a face image and return the encoder input: float32 (3, crop_size, crop_size) in [-1, 1].

    See ``face_array`` for the preprocessing; errors name the file.
    """
    try:
        with Image.open(path) as image:
            image = image.convert('RGB')
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err
    return face_array(image, opt, rng=rng, train=train, source=path)


def face_array(image, opt, rng=None, train=False, source='image'):
    """The encoder input for an RGB ``PIL.Image``: float32 (3, crop_size, crop_size) in [-1, 1].

    ``--preprocess``: resize_and_crop (resize to load_size, then crop crop_size), crop (crop crop_size from the
    original), resize (resize straight to crop_size), none (the image must already be crop_size). Crops are random
    in training and centred otherwise; training flips horizontally with probability 1/2 unless ``--no_flip``.
    Resizing is bicubic, as torchvision's Resize on PIL images in the released code. ``source`` names the image in
    error messages.
    """
    crop = opt.crop_size
    if opt.preprocess == 'resize_and_crop':
        image = image.resize((opt.load_size, opt.load_size), Image.BICUBIC)
    elif opt.preprocess == 'resize':
        image = image.resize((crop, crop), Image.BICUBIC)
    elif opt.preprocess not in ('crop', 'none'):
        raise DatasetError(f'unknown --preprocess {opt.preprocess!r}; use resize_and_crop, crop, resize or none')
    width, height = image.size
    if opt.preprocess == 'none' and (width, height) != (crop, crop):
        raise DatasetError(f'{source}: --preprocess none needs {crop}x{crop} images, got {width}x{height}',
                           path=source)
    if width < crop or height < crop:
        raise DatasetError(f'{source}: image {width}x{height} is smaller than --crop_size {crop}', path=source)
    if train and rng is not None:
        left, top = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
    else:
        left, top = (width - crop) // 2, (height - crop) // 2
    if (left, top, width, height) != (0, 0, crop, crop):
        image = image.crop((left, top, left + crop, top + crop))
    array = np.asarray(image, dtype=np.float32) / 255.0          # (H, W, 3) in [0, 1]
    if train and rng is not None and not opt.no_flip and rng.random() < 0.5:
        array = array[:, ::-1]
    array = (array - 0.5) / 0.5                                   # mean 0.5, std 0.5 per channel -> [-1, 1]
    return np.ascontiguousarray(array.transpose(2, 0, 1))

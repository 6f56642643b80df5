"""The dataset contract, and the face preprocessing shared by every dataset.

A dataset is found by name: ``--dataset_mode Vox_image`` -> ``data/Vox_image_dataset.py::VoxImageDataset``.
It subclasses ``BaseDataset`` and implements:

* ``modify_commandline_options(parser, is_train)``: add its own flags or change defaults;
* ``__init__(opt)``: scan ``opt.dataroot`` for ``opt.phase``; raise ``DatasetError`` with the path and the expected
  layout when the data do not fit;
* ``__len__()`` and ``__getitem__(index)``: a dict whose keys, shapes and dtypes the class docstring lists;
* ``set_epoch(epoch)`` (optional): draws that change every epoch (negatives, augmentation) depend only on
  ``(opt.seed, epoch, index)``, so results do not depend on the number of loader workers.

Files that do not fit are the user's to fix, so a dataset says which and why: problems found while scanning
(a face without its voice, a voice without its face, an empty folder) go through ``report_problems``, which raises
one ``DatasetError`` listing them, or with ``--skip_bad`` leaves those samples out and keeps them in
``self.skipped`` for the run's skip log; a file that cannot be read raises ``DatasetError`` from ``__getitem__``,
which the loader turns into an error in the main process (or a skipped sample with ``--skip_bad``).
"""
import logging
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The data on disk do not fit the layout the dataset expects; the message says where and what."""


class BaseDataset:
    """Base class of the datasets; see the module docstring for the contract."""

    def __init__(self, opt):
        self.opt = opt
        self.root = opt.dataroot
        self.epoch = 0
        self.skipped = []  # (path, reason) of samples left out while scanning (--skip_bad)
        if not os.path.isdir(self.root):
            raise DatasetError(f'--dataroot {self.root} is not a folder')

    def report_problems(self, problems, layout):
        """``problems``: (path, reason) pairs found while scanning. Raise one DatasetError that lists them (the
        first ten) with the expected ``layout``, or with ``--skip_bad`` keep them in ``self.skipped``."""
        if not problems:
            return
        if getattr(self.opt, 'skip_bad', False):
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
        return parser

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def split_lists(self):
        """Lists to save with a training run (e.g. the identity split): {name: [...]}."""
        return {}

    def has_validation(self):
        """Whether this dataset offers a validation part (``phase='val'``) for training runs."""
        return False

    def rng(self, index):
        """The random generator for sample ``index`` in the current epoch."""
        return np.random.default_rng([int(self.opt.seed) % 2 ** 32, self.epoch, int(index)])

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def load_face(path, opt, rng=None, train=False):
    """Read a face image and return the encoder input: float32 (3, crop_size, crop_size) in [-1, 1].

    See ``face_array`` for the preprocessing; errors name the file.
    """
    try:
        with Image.open(path) as image:
            image = image.convert('RGB')
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})') from err
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
        raise DatasetError(f'{source}: --preprocess none needs {crop}x{crop} images, got {width}x{height}')
    if width < crop or height < crop:
        raise DatasetError(f'{source}: image {width}x{height} is smaller than --crop_size {crop}')
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

"""Face images: reading, scaling, cropping and flipping in the loader workers, and turning them into encoder input
on the model's device.

Faces leave the loader workers as uint8 (3, crop_size, crop_size), a quarter of the bytes of float32; the model
makes them float in [-1, 1] on its device (``models/DFD_model.py: encoder_input``), the one place that does it for
training, validation, test_DF.py and detect.py.

Two backends give the same geometry (``--preprocess``: resize_and_crop, crop, resize or none; a random crop and a
horizontal flip with probability 1/2 in training unless ``--no_flip``, a centred crop otherwise) and draw the same
random numbers in the same order:

* ``torchvision`` (the default encoders): ``torchvision.io.decode_image`` and ``torchvision.transforms.v2``
  (bicubic with antialiasing on uint8 tensors);
* ``pil`` (the released-compatibility encoders): PIL's decoder and bicubic resize, exactly as the released code
  prepared faces, so released weights see the released inputs.

For a stored face that is already ``--load_size`` pixels (what the prep scripts write) neither backend resamples,
and both give the same pixels where their JPEG decoders agree (tests/test_faces.py measures it).
"""
import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

# torchvision is imported where it is used (the loader workers): importing it costs a process a few hundred MB

BACKENDS = ('torchvision', 'pil')
PREPROCESS = ('resize_and_crop', 'crop', 'resize', 'none')


def read_file(path):
    """The bytes of the file ``path``."""
    with open(path, 'rb') as handle:
        return handle.read()


def load_face(path, opt, rng=None, train=False, backend='torchvision', read=read_file):
    """The face image at ``path`` (its bytes from ``read``, e.g. a packed store's) prepared for the encoder: uint8
    (3, crop_size, crop_size); errors name the file."""
    try:
        data = read(path)
    except OSError as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err
    if backend == 'pil':
        try:
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert('RGB')
        except (OSError, UnidentifiedImageError) as err:
            raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err
        return pil_face(image, opt, rng, train, source=path)
    from torchvision.io import ImageReadMode, decode_image
    try:
        with warnings.catch_warnings():   # torchvision 0.29 announces TorchCodec as the successor of its decoders
            warnings.filterwarnings('ignore', category=DeprecationWarning, module='torchvision.io')
            image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (OSError, RuntimeError, ValueError) as err:
        raise DatasetError(f'{path}: cannot read the face image ({str(err).splitlines()[0] if str(err) else err})',
                           path=path) from err
    return tensor_face(image, opt, rng, train, source=path)


def _check(opt, width, height, source):
    """The crop size, after checking the image can give it."""
    crop = opt.crop_size
    if opt.preprocess == 'none' and (width, height) != (crop, crop):
        raise DatasetError(f'{source}: --preprocess none needs {crop}x{crop} images, got {width}x{height}',
                           path=source)
    if width < crop or height < crop:
        raise DatasetError(f'{source}: image {width}x{height} is smaller than --crop_size {crop}', path=source)
    return crop


def _scaled_size(opt, width, height):
    """(width, height) after the resize step of ``--preprocess``."""
    if opt.preprocess == 'resize_and_crop':
        return opt.load_size, opt.load_size
    if opt.preprocess == 'resize':
        return opt.crop_size, opt.crop_size
    if opt.preprocess not in PREPROCESS:
        raise DatasetError(f'unknown --preprocess {opt.preprocess!r}; use {", ".join(PREPROCESS)}')
    return width, height


def _draws(opt, width, height, crop, rng, train):
    """(left, top, flip): a random crop and flip in training, the centred crop otherwise (this order of draws)."""
    if train and rng is not None:
        left, top = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
        flip = not opt.no_flip and rng.random() < 0.5
    else:
        left, top, flip = (width - crop) // 2, (height - crop) // 2, False
    return left, top, flip


def pil_face(image, opt, rng=None, train=False, source='image'):
    """An RGB ``PIL.Image`` prepared as the released code does (PIL bicubic): uint8 (3, crop_size, crop_size)."""
    size = _scaled_size(opt, *image.size)
    if size != image.size:
        image = image.resize(size, Image.BICUBIC)
    width, height = image.size
    crop = _check(opt, width, height, source)
    left, top, flip = _draws(opt, width, height, crop, rng, train)
    if (left, top, width, height) != (0, 0, crop, crop):
        image = image.crop((left, top, left + crop, top + crop))
    array = np.asarray(image, dtype=np.uint8)                   # (H, W, 3)
    if flip:
        array = array[:, ::-1]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def tensor_face(image, opt, rng=None, train=False, source='image'):
    """A uint8 (3, H, W) tensor prepared with torchvision.transforms.v2: uint8 (3, crop_size, crop_size) array."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    height, width = image.shape[-2:]
    new_width, new_height = _scaled_size(opt, width, height)
    if (new_width, new_height) != (width, height):
        image = TF.resize(image, [new_height, new_width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    crop = _check(opt, new_width, new_height, source)
    left, top, flip = _draws(opt, new_width, new_height, crop, rng, train)
    if (left, top, new_width, new_height) != (0, 0, crop, crop):
        image = TF.crop(image, top, left, crop, crop)
    if flip:
        image = TF.horizontal_flip(image)
    return np.ascontiguousarray(image.numpy())


def image_face(image, opt, backend='torchvision'):
    """A decoded RGB ``PIL.Image`` (e.g. a video frame) prepared for scoring with ``backend``: uint8 (3, S, S)."""
    if backend == 'pil':
        return pil_face(image, opt)
    return tensor_face(torch.from_numpy(np.array(image.convert('RGB'))).permute(2, 0, 1), opt)

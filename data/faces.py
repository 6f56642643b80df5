"""Face images: reading, scaling, cropping and flipping in the loader workers, and turning them into encoder input
on the model's device.

Faces leave the loader workers as uint8 (3, crop_size, crop_size), a quarter of the bytes of float32; the loader's
Transport makes them float on the model's device as the input recipe says (``data/transport.py``), the one place that
does it for training, validation, test_DF.py and detect.py.

Two backends give the same geometry (``--preprocess``: resize_and_crop, crop, resize or none; a random crop and a
horizontal flip with probability 1/2 in training unless ``--no_flip``, a centred crop otherwise) and draw the same
random numbers in the same order:

* ``torchvision`` (the default encoders): ``torchvision.io.decode_image`` and ``torchvision.transforms.v2``
  (bicubic with antialiasing on uint8 tensors);
* ``pil`` (the released-compatibility encoders): PIL's decoder and bicubic resize, exactly as the released code
  prepared faces, so released weights see the released inputs.

For a stored face that is already ``--load_size`` pixels (what the prep scripts write) neither backend resamples,
and both give the same pixels where their JPEG decoders agree (tests/test_faces.py measures it).

A third backend, ``jpeg`` (``--face_decode device``, the default on CUDA for the torchvision path), leaves the
decoding to the model's device: a worker reads the JPEG's header, draws the crop and flip as above and ships the
compressed bytes (``EncodedFace``, about a tenth of the decoded pixels); the collated ``FaceBatch`` is decoded in one
``torchvision.io.decode_jpeg`` call (nvjpeg on a GPU, libjpeg on the CPU) and cropped, resized and flipped there
(``decode_batch``). Files that are not JPEG (PNG faces) are decoded in the worker as with ``torchvision``.
"""
import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

# torchvision is imported where it is used (the loader workers): importing it costs a process a few hundred MB

BACKENDS = ('torchvision', 'pil', 'jpeg')
JPEG_MAGIC = b'\xff\xd8\xff'
PREPROCESS = ('resize_and_crop', 'crop', 'resize', 'none')


def read_file(path):
    """The bytes of the file ``path``."""
    with open(path, 'rb') as handle:
        return handle.read()


def load_face(path, opt, rng=None, train=False, backend='torchvision', read=read_file, resample='bicubic',
              augment='none'):
    """The face image at ``path`` (its bytes from ``read``, e.g. a packed store's) prepared for the encoder: uint8
    (3, crop_size, crop_size); errors name the file. ``resample``: the filter that scales it ('bicubic' or
    'bilinear'); ``augment='journal'`` (training faces only) replaces the crop and flip by the journal's
    augmentation (``journal_augment``)."""
    try:
        data = read(path)
    except OSError as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err
    size = image_size(data, path)   # before any decoder allocates what the header claims
    if train and augment == 'journal':
        return journal_augment(_pil_rgb(data, path), opt, rng, source=path)
    if backend == 'jpeg' and data[:3] == JPEG_MAGIC:
        return encoded_face(data, size, opt, rng, train, source=path)
    if backend == 'pil':
        return pil_face(_pil_rgb(data, path), opt, rng, train, source=path, resample=resample)
    from torchvision.io import ImageReadMode, decode_image
    try:
        with warnings.catch_warnings():   # torchvision 0.29 announces TorchCodec as the successor of its decoders
            warnings.filterwarnings('ignore', category=DeprecationWarning, module='torchvision.io')
            image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (OSError, RuntimeError, ValueError) as err:
        raise _decode_error(path, err) from err
    return tensor_face(eight_bit_still(image), opt, rng, train, source=path, resample=resample)


def eight_bit_still(image):
    """A decoded (3, H, W) uint8 image from what torchvision's decoder gives: the first frame of an animation
    ((frames, 3, H, W)), 16-bit samples scaled to 8 bits (a 16-bit PNG)."""
    if image.dim() == 4:
        image = image[0]
    if image.dtype != torch.uint8:
        image = (image.to(torch.int32) >> 8).clamp(0, 255).to(torch.uint8)
    return image


def _pil_rgb(data, path):
    """The image bytes ``data`` decoded by PIL as RGB (an animation's first frame; 16- and 32-bit samples scaled to
    8 bits, where PIL's own conversion would clip them to white); DatasetError naming ``path`` when they do not
    decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            if image.mode.startswith('I'):     # I;16, I;16B, I (32-bit): read as 16-bit samples
                array = np.asarray(image, dtype=np.int64)
                return Image.fromarray(np.clip(array >> 8, 0, 255).astype(np.uint8), 'L').convert('RGB')
            if image.mode == 'F':
                array = np.nan_to_num(np.asarray(image, dtype=np.float64))
                return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), 'L').convert('RGB')
            return image.convert('RGB')
    except (OSError, UnidentifiedImageError, ValueError, EOFError) as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err


MAX_PIXELS = 64 * 2 ** 20   # a face image larger than 64 megapixels (8192 x 8192) is refused before decoding
MIN_SIDE = 16               # ... and one smaller than 16 pixels on a side (no face crop is)


def image_size(data, path):
    """(width, height) from the header of the image bytes ``data``, nothing decoded; DatasetError naming ``path``
    for a file that is no image or claims more than MAX_PIXELS pixels (a decompression bomb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:    # reads the header only
                width, height = image.size
    except Image.DecompressionBombError as err:
        raise DatasetError(f'{path}: refused before decoding, the image is far larger than a face image needs '
                           f'({err})', path=path) from err
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise DatasetError(f'{path}: cannot read the face image ({err})', path=path) from err
    if width * height > MAX_PIXELS:
        raise DatasetError(f'{path}: the image claims {width}x{height} pixels, more than a face image needs (at most '
                           f'{MAX_PIXELS // 2 ** 20} megapixels); refused before decoding', path=path)
    if min(width, height) < MIN_SIDE:
        raise DatasetError(f'{path}: the image is {width}x{height} pixels; a face crop has at least {MIN_SIDE} on each '
                           f'side', path=path)
    return width, height


def _decode_error(path, err):
    """A DatasetError for a face that torchvision could not decode (the first line of its message)."""
    text = str(err).splitlines()[0] if str(err) else repr(err)
    return DatasetError(f'{path}: cannot read the face image ({text})', path=path)


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


PIL_FILTERS = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR}


def pil_face(image, opt, rng=None, train=False, source='image', resample='bicubic'):
    """An RGB ``PIL.Image`` prepared as the authors' code does (PIL's ``resample`` filter: bicubic in the 2022
    release, bilinear in the journal's ``GroupScale``): uint8 (3, crop_size, crop_size)."""
    size = _scaled_size(opt, *image.size)
    if size != image.size:
        image = image.resize(size, PIL_FILTERS[resample])
    width, height = image.size
    crop = _check(opt, width, height, source)
    left, top, flip = _draws(opt, width, height, crop, rng, train)
    if (left, top, width, height) != (0, 0, crop, crop):
        image = image.crop((left, top, left + crop, top + crop))
    array = np.asarray(image, dtype=np.uint8)                   # (H, W, 3)
    if flip:
        array = array[:, ::-1]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def tensor_face(image, opt, rng=None, train=False, source='image', resample='bicubic'):
    """A uint8 (3, H, W) tensor prepared with torchvision.transforms.v2: uint8 (3, crop_size, crop_size) array."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    height, width = image.shape[-2:]
    new_width, new_height = _scaled_size(opt, width, height)
    if (new_width, new_height) != (width, height):
        mode = InterpolationMode.BICUBIC if resample == 'bicubic' else InterpolationMode.BILINEAR
        image = TF.resize(image, [new_height, new_width], interpolation=mode, antialias=True)
    crop = _check(opt, new_width, new_height, source)
    left, top, flip = _draws(opt, new_width, new_height, crop, rng, train)
    if (left, top, new_width, new_height) != (0, 0, crop, crop):
        image = TF.crop(image, top, left, crop, crop)
    if flip:
        image = TF.horizontal_flip(image)
    return np.ascontiguousarray(image.numpy())


def image_face(image, opt, backend='torchvision', resample='bicubic'):
    """A decoded RGB ``PIL.Image`` (e.g. a video frame) prepared for scoring with ``backend``: uint8 (3, S, S)."""
    if backend == 'pil':
        return pil_face(image, opt, resample=resample)
    return tensor_face(torch.from_numpy(np.array(image.convert('RGB'))).permute(2, 0, 1), opt, resample=resample)


# ------------------------------------------------------------------------------- the journal's training augmentation
AUGMENTS = ('none', 'journal')
MULTI_SCALES = (1, .875, .75, .66)


def multi_scale_box(width, height, crop, rng):
    """The journal's multi-scale crop (the TSN recipe): a (left, top, box width, box height) whose sides are two of
    ``MULTI_SCALES`` x the image's shorter side, at most one step apart (sides within 3 px of ``crop`` snap to it),
    at one of 13 fixed positions (corners, centre, edge middles, quarter points)."""
    base = min(width, height)
    sizes = [crop if abs(int(base * scale) - crop) < 3 else int(base * scale) for scale in MULTI_SCALES]
    pairs = [(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1]
    box_w, box_h = pairs[int(rng.integers(len(pairs)))]
    box_w, box_h = min(box_w, width), min(box_h, height)
    w_step, h_step = (width - box_w) // 4, (height - box_h) // 4
    positions = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    i, j = positions[int(rng.integers(len(positions)))]
    return i * w_step, j * h_step, box_w, box_h


def journal_augment(image, opt, rng, source='image'):
    """A training face as the journal's pre-training and fine-tuning augment it, with torchvision.transforms.v2:
    RandAugment (2 operations of magnitude 9) on the whole image, the multi-scale crop (``multi_scale_box``) scaled to
    ``crop_size`` (bilinear), a horizontal flip with probability 1/2 (not with ``--no_flip``), colour jitter
    (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with probability 0.8, and grayscale with probability 0.2.
    Every draw comes from ``rng`` (the sample's generator), so the result does not depend on the loader worker.
    Returns uint8 (3, crop_size, crop_size)."""
    from torchvision.transforms import InterpolationMode, v2
    from torchvision.transforms.v2 import functional as TF
    width, height = image.size
    crop = opt.crop_size
    if min(width, height) < 8:
        raise DatasetError(f'{source}: image {width}x{height} is too small to augment', path=source)
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2 ** 62)))
        tensor = v2.RandAugment(num_ops=2, magnitude=9)(tensor)
        left, top, box_w, box_h = multi_scale_box(width, height, crop, rng)
        tensor = TF.resize(TF.crop(tensor, top, left, box_h, box_w), [crop, crop],
                           interpolation=InterpolationMode.BILINEAR, antialias=True)
        if not opt.no_flip and rng.random() < 0.5:
            tensor = TF.horizontal_flip(tensor)
        tensor = v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8)(tensor)
        tensor = v2.RandomGrayscale(p=0.2)(tensor)
    return np.ascontiguousarray(tensor.numpy())


class EncodedFace:
    """A face still JPEG-compressed, with the geometry drawn for it in the loader worker: ``data`` (uint8 1-D tensor
    of the file's bytes), ``size`` (width, height after the resize step), ``left``, ``top``, ``flip``, ``crop``."""

    __slots__ = ('data', 'size', 'left', 'top', 'flip', 'crop', 'source')

    def __init__(self, data, size, left, top, flip, crop, source):
        self.data, self.size, self.left, self.top, self.flip, self.crop = data, size, left, top, flip, crop
        self.source = source


def encoded_face(data, size, opt, rng=None, train=False, source='image'):
    """JPEG bytes ``data`` of an image of ``size`` (width, height: ``image_size``, from its header) as an
    ``EncodedFace``; the draws are those of ``tensor_face`` in the same order, so both give the same face once
    decoded."""
    width, height = size
    new_width, new_height = _scaled_size(opt, width, height)
    crop = _check(opt, new_width, new_height, source)
    left, top, flip = _draws(opt, new_width, new_height, crop, rng, train)
    return EncodedFace(torch.frombuffer(bytearray(data), dtype=torch.uint8), (new_width, new_height), left, top,
                       flip, crop, source)


def stack_faces(items):
    """The faces of one item (e.g. its negatives) as one value: a uint8 (K, 3, S, S) array, or the list itself
    when they are ``EncodedFace``s (collated into a ``FaceBatch``)."""
    if any(isinstance(item, EncodedFace) for item in items):
        return list(items)
    return np.stack(items)


class FaceBatch:
    """Collated faces of which some are still encoded: ``items`` (flat list of ``EncodedFace`` or uint8 (3, S, S)
    arrays) and ``shape`` (the leading dimensions, (B,) or (B, K)). ``decode_batch`` turns it into a tensor."""

    def __init__(self, items, shape):
        self.items, self.shape = list(items), tuple(shape)

    def __len__(self):
        return self.shape[0]

    @classmethod
    def collate(cls, values):
        """A FaceBatch of the per-item ``values`` (each a face or a list of K faces), or None when no face in them is
        encoded (then the default collation applies)."""
        flat = [face for value in values for face in (value if isinstance(value, (list, tuple)) else [value])]
        if not any(isinstance(face, EncodedFace) for face in flat):
            return None
        if isinstance(values[0], (list, tuple)):
            return cls(flat, (len(values), len(values[0])))
        return cls(flat, (len(values),))


def _decode_jpegs(encoded, device):
    """Decoded RGB uint8 (3, H, W) tensors of ``encoded`` (EncodedFace list), in one decode_jpeg call on
    ``device``; when it fails, each is tried alone so that the error names the file."""
    from torchvision.io import ImageReadMode, decode_jpeg
    datas = [face.data for face in encoded]
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=DeprecationWarning, module='torchvision.io')
        if device.type == 'cuda':
            # torchvision's CUDA decoder writes on its own stream into memory allocated on the current one, which
            # may still be read by queued kernels that freed it; wait for them first
            torch.cuda.current_stream(device).synchronize()
        try:
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
        except (RuntimeError, ValueError):
            pass
        images = []
        for face in encoded:
            try:
                images.append(decode_jpeg(face.data, mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError) as err:
                raise _decode_error(face.source, err) from err
        return images


def decode_batch(batch, device):
    """A ``FaceBatch`` (or a uint8 tensor, returned moved) as uint8 (*shape, 3, S, S) on ``device``: the encoded
    faces decoded together on ``device`` (nvjpeg on CUDA), then resized (bicubic, antialiased), cropped and flipped
    as drawn in the worker; faces the worker decoded are moved as they are."""
    device = torch.device(device)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    encoded = [(i, face) for i, face in enumerate(batch.items) if isinstance(face, EncodedFace)]
    out = [None] * len(batch.items)
    for (i, face), image in zip(encoded, _decode_jpegs([face for _, face in encoded], device)):
        width, height = face.size
        if tuple(image.shape[-2:]) != (height, width):
            image = TF.resize(image, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
        out[i] = image[:, face.top:face.top + face.crop, face.left:face.left + face.crop]
    for i, face in enumerate(batch.items):
        if out[i] is None:
            out[i] = torch.as_tensor(face).to(device, non_blocking=True)
    faces = torch.stack(out)
    flips = [i for i, face in encoded if face.flip]
    if flips:
        index = torch.tensor(flips, device=device)
        faces[index] = faces[index].flip(-1)
    return faces.view(*batch.shape, *faces.shape[1:])

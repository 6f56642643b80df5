"""How faces and voices travel from the loader workers to the encoders, and how they become encoder input.

The one place that decides it. A model config (``models/config.py``: its ``compat``, its input recipe ``inputs``
and whether its loss reads fake voices) and the command line (``--face_decode``, ``--device``, ``--precision``,
``--channels_last``, the negatives) are all it needs, so a dataset can be built before, or without, its model:

    args = transport.dataset_args(config, opt, 'train')    # create_dataset(opt, 'train', **args)

In the workers faces are prepared by a backend of ``data/faces.py`` and travel as uint8 (or as JPEG bytes, a
``FaceBatch``, for the device to decode); voices travel as float16 (stored dB mels) or float32 (the released
encoders, and power mels, which overflow float16). The loader then hands every batch to ``Transport.to_encoder``:
on the model's device, JPEG bytes decoded (nvjpeg on CUDA), uint8 faces normalised as the recipe says, voices made
float, all in the model's dtype, image batches channels-last when asked for. The model only checks that what it
gets is encoder input. ``Transport.to_images`` turns encoder input back into uint8 pictures (the training page).
"""
import dataclasses
import functools
import logging
import warnings

import torch

from . import faces
from . import inputs as data_inputs
from .errors import DatasetError

logger = logging.getLogger(__name__)

FACE_DECODE = ('auto', 'loader', 'device')
ENCODER_KEYS = ('voice', 'face', 'neg_faces', 'neg_voices')   # the batch entries that become encoder input
FACE_KEYS = ('face', 'neg_faces')


class TransportError(DatasetError):
    """A transport that cannot be used for this model (e.g. device decoding of faces PIL must prepare)."""


@functools.lru_cache(maxsize=None)
def device_decodes_jpeg(device):
    """Whether torchvision decodes JPEG on ``device`` (nvjpeg on CUDA): one tiny image is tried, once per device."""
    try:
        from torchvision.io import decode_jpeg, encode_jpeg
        with warnings.catch_warnings():   # torchvision 0.29 announces TorchCodec as the successor of its codecs
            warnings.filterwarnings('ignore', category=DeprecationWarning, module='torchvision.io')
            data = encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8))
            return decode_jpeg(data, device=device).shape == (3, 8, 8)
    except Exception as err:   # noqa: BLE001 -- any failure (no nvjpeg in this build, a driver error) means no
        logger.warning('faces are decoded in the loader workers: torchvision cannot decode JPEG on %s (%s)', device,
                       str(err).splitlines()[0] if str(err) else type(err).__name__)
        return False


def resolve_face_decode(choice, device, compat, inputs):
    """``--face_decode`` made concrete: 'device' or 'loader'. ``auto`` decodes on a CUDA device that can (nvjpeg)
    and in the loader workers otherwise; the released encoders and the journal's inputs always get the workers' PIL
    faces (TransportError for ``device`` there)."""
    device = torch.device(device)
    if compat == 'released' or data_inputs.recipe(inputs).face_backend == 'pil':
        if choice == 'device':
            raise TransportError(f'this model\'s faces are prepared with PIL in the loader workers, exactly as its '
                                 f'authors\' code did (--encoder_compat {compat}, inputs {inputs}); --face_decode '
                                 f'device is for the others')
        return 'loader'
    if choice == 'auto':
        return 'device' if device.type == 'cuda' and device_decodes_jpeg(str(device)) else 'loader'
    if choice not in FACE_DECODE:
        raise TransportError(f'--face_decode must be one of {", ".join(FACE_DECODE)}, got {choice!r}')
    return choice


@dataclasses.dataclass(frozen=True)
class Transport:
    """How one model's inputs travel (the fields the datasets read) and where they arrive (the rest)."""

    inputs: str = 'vfd2022'           # the input recipe of data/inputs.py
    face_backend: str = 'torchvision'  # data/faces.py backend in the workers ('jpeg': bytes for the device)
    face_resample: str = 'bicubic'
    voice_dtype: str = 'float16'
    device: str = 'cpu'
    dtype: str = 'float32'             # the encoders' dtype (float64 under --precision float64)
    channels_last: bool = False

    @classmethod
    def for_model(cls, compat, inputs, face_decode='loader', device='cpu', dtype='float32', channels_last=False):
        """The transport of a model of ``compat`` reading recipe ``inputs``: the released encoders get PIL-prepared
        faces and float32 voices (exactly the released inputs); the journal's inputs PIL-prepared bilinear faces and
        float32 power mels; the others torchvision-prepared faces, or their JPEG bytes with ``face_decode='device'``,
        and float16 voices."""
        spec = data_inputs.recipe(inputs)
        backend, voice_dtype = spec.face_backend, spec.voice_dtype
        if compat == 'released':
            backend, voice_dtype = 'pil', 'float32'
        elif backend == 'auto':
            backend = 'jpeg' if face_decode == 'device' else 'torchvision'
        return cls(spec.name, backend, spec.face_resample, voice_dtype, str(torch.device(device)), dtype,
                   bool(channels_last))

    @property
    def face_decode(self):
        """'device' when the faces arrive as JPEG bytes, 'loader' otherwise."""
        return 'device' if self.face_backend == 'jpeg' else 'loader'

    def dataset_kwargs(self):
        """The keyword arguments every dataset takes (``data/base_dataset.py``)."""
        return {'inputs': self.inputs, 'face_backend': self.face_backend, 'face_resample': self.face_resample,
                'voice_dtype': self.voice_dtype}

    def to_encoder(self, x):
        """One batch entry as the encoders take it, on ``device`` in ``dtype``: a ``FaceBatch`` of JPEG bytes
        decoded there, uint8 faces normalised by the recipe (``data/inputs.py``: x / 255, minus the mean, over the
        std), float16 voices made float; 4-D image batches channels-last when asked for."""
        dtype = getattr(torch, self.dtype)
        if isinstance(x, faces.FaceBatch) or (isinstance(x, torch.Tensor) and x.dtype == torch.uint8):
            x = data_inputs.normalise_faces(faces.decode_batch(x, self.device), self.inputs)
        x = x.to(self.device, dtype=dtype, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batch_to_encoder(self, batch):
        """``batch`` with its voices and faces (``ENCODER_KEYS``) as encoder input; labels, paths and the rest stay
        where they are."""
        return {key: self.to_encoder(value) if key in ENCODER_KEYS and value is not None else value
                for key, value in batch.items()}

    def to_images(self, x):
        """Encoder-input faces (..., 3, S, S) back as uint8 pictures on the CPU (the recipe's normalisation
        undone), e.g. for the training page."""
        mean, std = data_inputs.face_stats(self.inputs)
        pixels = (x.detach().float().cpu() * std + mean) * 255
        return pixels.round().clamp(0, 255).to(torch.uint8).contiguous()


def for_config(config, opt):
    """The Transport of a model ``config`` under the command line ``opt`` (``--face_decode``, ``--device``,
    ``--precision``, ``--channels_last``)."""
    device = getattr(opt, 'device', 'cpu')
    decode = resolve_face_decode(getattr(opt, 'face_decode', 'loader'), device, config.compat, config.inputs)
    dtype = 'float64' if getattr(opt, 'precision', 'float32') == 'float64' else 'float32'
    return Transport.for_model(config.compat, config.inputs, decode, device, dtype,
                               getattr(opt, 'channels_last', 'off') == 'on')


def dataset_args(config, opt, phase):
    """What ``create_dataset(opt, phase, **args)`` needs for a model of ``config``, without the model: the
    negatives per item (none when training with in-batch negatives, where the other anchors' faces serve, and none
    at test time; ``--n_negatives`` otherwise, for validation the mismatched pairs per real pair), whether items
    carry fake voices (losses that read them, ``config.needs_neg_voices``) and the Transport."""
    training = bool(getattr(opt, 'isTrain', False))
    in_batch = getattr(opt, 'negatives', 'sampled') == 'in_batch'
    negatives = 0 if not training or (phase == 'train' and in_batch) else opt.n_negatives
    neg_voices = training and phase == 'train' and bool(getattr(config, 'needs_neg_voices', False))
    return {'n_negatives': negatives, 'neg_voices': neg_voices, 'transport': for_config(config, opt)}

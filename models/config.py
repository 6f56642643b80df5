"""The model config: everything that defines a model's networks and their inputs, stored in every checkpoint.

Like nanoGPT's ``model_args``: a model is built from a ``ModelConfig`` in one place
(``DFDModel.build`` / ``DFDModel.from_checkpoint``), and a checkpoint carries its config, so testing and
fine-tuning never need the sizes retyped. Fields:

* ``voice`` and ``face``: one dict per encoder, ``{'kind': <registered name>, **sizes}``; the sizes are the keyword
  arguments of that encoder class (``models/networks.py``). The data side reads three of them: the face's
  ``image_size`` and the voice's ``n_mels`` and ``n_frames``;
* ``compat``: ``fixed``, ``released`` (the 2022 release's forward pass; the encoders are then the ``*_released``
  kinds) or ``journal`` (the journal version's CLIP-style encoders, the ``*_journal`` kinds of ``models/vit.py``);
* ``loss`` and ``score``: names in ``models/losses.py`` (``LOSSES``, ``SCORES``);
* ``load_size`` and ``preprocess``: how faces are scaled before the crop of ``image_size``;
* ``inputs``: the input recipe of ``data/inputs.py`` (``vfd2022``: stored dB mels, faces in [-1, 1]; ``journal``:
  16 kHz WAV voices turned into power mels, CLIP-normalised faces), which the datasets and detect.py follow.

Version-1 checkpoints stored a flat ``options`` dict instead; ``from_legacy_options`` reads it.
"""
import dataclasses
import inspect
import logging

import torch

from . import losses, networks
from .checkpoint import CheckpointError, check_fit, net_path

logger = logging.getLogger(__name__)

SHARED_SIZES = ('width_mult', 'dim', 'depth', 'heads', 'mlp_dim', 'emb_dim')
# sizes that must be positive wherever an encoder takes them
POSITIVE_SIZES = SHARED_SIZES + ('n_mels', 'n_frames', 'image_size')
INPUT_OPTIONS = ('crop_size', 'n_mels', 'n_frames', 'load_size', 'preprocess')
# The input recipes a model may read (data/inputs.py says how each is made; tests/test_transport.py checks that the
# two name the same recipes), each with its face scale before the crop: --load_size = crop * a // b when not typed
# (the journal scales to 256 and crops 224).
INPUT_RECIPES = {'vfd2022': (1, 1), 'journal': (256, 224)}


def default_inputs(compat):
    """The input recipe of an encoder mode when none is named: the journal's for ``journal``, the 2022 release's
    otherwise."""
    return 'journal' if compat == 'journal' else 'vfd2022'


def default_load_size(inputs, crop_size):
    """The ``--load_size`` of recipe ``inputs`` for faces cropped to ``crop_size`` (the journal's: 256 for 224)."""
    a, b = INPUT_RECIPES[inputs]
    return crop_size * a // b


class ModelConfigError(ValueError):
    """Options that describe a model that cannot be built or trained; the message says why and what to change."""


@dataclasses.dataclass
class ModelConfig:
    """What a checkpoint needs to rebuild its model (see the module docstring)."""

    voice: dict
    face: dict
    compat: str = 'fixed'
    loss: str = 'triplet'
    score: str = 'neg_l2'
    load_size: int = 224
    preprocess: str = 'resize_and_crop'
    inputs: str = 'vfd2022'

    def __post_init__(self):
        if self.compat not in networks.COMPAT_MODES:
            raise ValueError(f'encoder compat must be one of {networks.COMPAT_MODES}, got {self.compat!r}')
        if self.inputs not in INPUT_RECIPES:
            raise ValueError(f'unknown inputs {self.inputs!r}; known: {", ".join(INPUT_RECIPES)}')
        for name, enc in (('voice', self.voice), ('face', self.face)):
            if not isinstance(enc, dict) or not isinstance(enc.get('kind'), str):
                raise ValueError(f'the {name} encoder config must be a dict with a "kind", got {enc!r}')
            if networks.compat_of(enc['kind']) != self.compat:
                raise ValueError(f'{name} encoder {enc["kind"]!r} does not fit compat {self.compat!r}')
            for key, value in enc.items():
                if key in POSITIVE_SIZES and (isinstance(value, bool) or not isinstance(value, (int, float))
                                              or not value > 0):
                    raise ValueError(f'{name} encoder: {key} must be a positive number, got {value!r}')
            if isinstance(enc.get('dim'), int) and isinstance(enc.get('heads'), int) and enc['dim'] % enc['heads']:
                raise ValueError(f'{name} encoder: dim ({enc["dim"]}) must be divisible by heads ({enc["heads"]}): '
                                 f'each head takes dim / heads channels')
        if self.loss not in losses.LOSSES:
            raise ValueError(f'unknown loss {self.loss!r}; known: {", ".join(losses.LOSSES)}')
        if self.score not in losses.SCORES:
            raise ValueError(f'unknown score {self.score!r}; known: {", ".join(losses.SCORES)}')

    # -- building ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_options(cls, opt, compat):
        """The config the command line describes, for ``compat`` (``auto`` already resolved by the caller).

        The shared size flags (``--dim`` ...) and the input sizes (``--n_mels --n_frames --crop_size``) apply to each
        encoder that takes them: typed on the command line, or where the encoder has no default of its own; an
        encoder's own defaults win over flags left at theirs (so ``--encoder_compat journal`` alone builds the
        journal's published sizes). ``--voice_args`` / ``--face_args`` (``key=value,...``) override or add sizes for
        one encoder. Released mode uses the ``<kind>_released`` encoders, journal mode the ``<kind>_journal`` ones.
        ``--inputs auto`` is the journal's recipe in journal mode and the 2022 release's otherwise; ``--load_size``,
        when not typed, follows it (256 for a 224 crop with the journal's).
        """
        suffix = networks.COMPAT_SUFFIX[compat]
        voice_kind, face_kind = opt.voice_encoder + suffix, opt.face_encoder + suffix
        voice = {'kind': voice_kind, **encoder_sizes(opt, voice_kind, 'voice', n_mels='n_mels', n_frames='n_frames'),
                 **parse_encoder_args(opt.voice_args, '--voice_args')}
        face = {'kind': face_kind, **encoder_sizes(opt, face_kind, 'face', image_size='crop_size'),
                **parse_encoder_args(opt.face_args, '--face_args')}
        inputs = getattr(opt, 'inputs', 'auto')
        inputs = default_inputs(compat) if inputs == 'auto' else inputs
        load_size = opt.load_size
        if not typed(opt, 'load_size') and inputs in INPUT_RECIPES and isinstance(face.get('image_size'), int):
            load_size = default_load_size(inputs, face['image_size'])
        return cls(voice=voice, face=face, compat=compat, loss=getattr(opt, 'loss', 'triplet'),  # test: no --loss
                   score=opt.score, load_size=load_size, preprocess=opt.preprocess, inputs=inputs)

    @classmethod
    def from_dict(cls, stored):
        """The config stored in a checkpoint (``to_dict``); unknown keys are an error, missing ones take defaults."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(stored) - fields
        if unknown:
            raise ValueError(f'unknown model config keys {sorted(unknown)}')
        return cls(**stored)

    @classmethod
    def from_legacy_options(cls, options):
        """The config of a version-1 checkpoint, whose ``options`` held encoder_compat, the shared sizes, crop_size,
        n_mels, n_frames, load_size and preprocess."""
        compat = options['encoder_compat']
        suffix = networks.COMPAT_SUFFIX[compat]
        shared = {key: options[key] for key in SHARED_SIZES}
        return cls(voice={'kind': 'voice' + suffix, **shared, 'n_mels': options['n_mels'],
                          'n_frames': options['n_frames']},
                   face={'kind': 'face' + suffix, **shared, 'image_size': options['crop_size']},
                   compat=compat, load_size=options.get('load_size', 224),
                   preprocess=options.get('preprocess', 'resize_and_crop'))

    @property
    def needs_neg_voices(self):
        """Whether the loss reads fake voices beside the fake faces (the journal's fine-tuning): the datasets then
        deliver them."""
        return losses.needs_neg_voices(self.loss)

    def to_dict(self):
        """Plain containers only (stored in checkpoints, loaded with ``weights_only``)."""
        return dataclasses.asdict(self)

    def build_encoders(self):
        """``(voice encoder, face encoder)``, not yet initialised; their embedding sizes must agree."""
        voice = networks.define_encoder(**self.voice)
        face = networks.define_encoder(**self.face)
        for name, net in (('voice', voice), ('face', face)):
            if not isinstance(getattr(net, 'emb_dim', None), int):
                raise ValueError(f'the {name} encoder {type(net).__name__} ({getattr(self, name)["kind"]!r}) has no '
                                 f'integer emb_dim attribute: every encoder says the size of its embeddings')
        if voice.emb_dim != face.emb_dim:
            raise ValueError(f'the voice encoder gives {voice.emb_dim}-d embeddings and the face encoder '
                             f'{face.emb_dim}-d; set emb_dim alike (--emb_dim, or emb_dim= in --voice_args or '
                             f'--face_args)')
        return voice, face

    # -- the data side ----------------------------------------------------------------------------------------------
    def input_options(self):
        """The data options this model needs: {crop_size, n_mels, n_frames, load_size, preprocess, inputs}."""
        return {'crop_size': self.face['image_size'], 'n_mels': self.voice['n_mels'],
                'n_frames': self.voice['n_frames'], 'load_size': self.load_size, 'preprocess': self.preprocess,
                'inputs': self.inputs}

    def option_values(self):
        """(values, per_encoder): the options this model fixes (its input options and the shared sizes both
        encoders have alike) and the shared sizes the encoders hold differently ({key: {'voice': v, 'face': f}},
        a missing size as None)."""
        values, per_encoder = dict(self.input_options()), {}
        for key in SHARED_SIZES:
            voice, face = self.voice.get(key), self.face.get(key)
            if voice == face and key in self.face:
                values[key] = face
            elif voice != face:
                per_encoder[key] = {'voice': voice, 'face': face}
        return values, per_encoder

    def apply_to(self, opt):
        """Set the size and data options of ``opt`` to this model's, so that the datasets and the logs follow the
        checkpoint; a differing value typed on the command line is overridden with a warning (the weights only fit
        the stored one). Sizes the two encoders do not share are left as typed."""
        stored, _ = self.option_values()
        for key, value in stored.items():
            if key in opt.explicit and getattr(opt, key) != value:
                logger.warning('--%s %s ignored: the checkpoint was trained with %s', key, getattr(opt, key), value)
            setattr(opt, key, value)

    def describe(self):
        """One line for logs."""
        def one(enc):
            return enc['kind'] + '(' + ', '.join(f'{k}={v}' for k, v in enc.items() if k != 'kind') + ')'
        return (f'voice {one(self.voice)}; face {one(self.face)}; loss {self.loss}; score {self.score}; '
                f'inputs {self.inputs}')


def typed(opt, key):
    """Whether option ``key`` was typed on the command line (options made without a parser count as typed)."""
    explicit = getattr(opt, 'explicit', None)
    return explicit is None or key in explicit


def encoder_sizes(opt, kind, role='', **data_sizes):
    """The sizes encoder ``kind`` gets from the command line: each shared size flag and each of ``data_sizes``
    (keyword -> option name, e.g. ``image_size='crop_size'``) that its constructor takes, with the option's value
    when it was typed or the constructor has no default for it, else the constructor's default (all the shared
    flags for an unknown kind, which ``define_encoder`` then reports). A flag typed on the command line that the
    constructor does not take is said in a warning (``role``: voice or face), not dropped in silence."""
    options = {**{key: key for key in SHARED_SIZES}, **data_sizes}
    cls = networks.ENCODERS.get(kind)
    if cls is None:
        return {key: getattr(opt, option) for key, option in options.items()}
    params = inspect.signature(cls.__init__).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    sizes = {}
    for key, option in options.items():
        param = params.get(key)
        if param is None and not takes_all:
            if getattr(opt, 'explicit', None) is not None and option in opt.explicit:
                taken = [name for name, p in params.items() if name != 'self' and p.kind is p.KEYWORD_ONLY]
                logger.warning('--%s %s does not reach the %s encoder %r: it takes %s', option,
                               getattr(opt, option), role or 'other', kind, ', '.join(taken) or 'no sizes')
            continue
        has_default = param is not None and param.default is not inspect.Parameter.empty
        sizes[key] = param.default if has_default and not typed(opt, option) else getattr(opt, option)
    return sizes


def parse_encoder_args(text, flag):
    """``'dim=768,depth=12'`` -> {'dim': 768, 'depth': 12} (ints, floats, true/false, else strings)."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or '').split(','))):
        key, sep, value = part.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'{flag}: expected key=value pairs separated by commas, got {part!r}')
        out[key.strip()] = _parse_value(value.strip())
    return out


def _parse_value(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {'true': True, 'false': False}.get(value.lower(), value)


def add_config_options(parser):
    """The flags a ModelConfig is made from (``ModelConfig.from_options``): the encoders, their sizes, the input
    recipe and the score. Every model that builds its networks from a ModelConfig adds them."""
    parser.add_argument('--encoder_compat', type=str, default='auto', choices=('auto',) + networks.COMPAT_MODES,
                        help='released: the 2022 release\'s forward pass with its three quirks (position '
                             'embedding by batch index, attention scale dim**-0.5, batch statistics in the voice '
                             'stem), for its weights; fixed: those encoders with the quirks corrected; journal: '
                             'the journal version\'s CLIP-style ViT-B/32 encoders (models/vit.py), at its sizes '
                             'unless size flags are typed; auto: what the checkpoint was trained with (a plain '
                             'state dict: told by its parameter names and position embedding), fixed for a new '
                             'model')
    parser.add_argument('--inputs', type=str, default='auto', choices=('auto',) + tuple(INPUT_RECIPES),
                        help='what the model reads (data/inputs.py): vfd2022 = the stored dB mels (.npy) and '
                             'faces in [-1, 1]; journal = 16 kHz WAV voices (.wav beside the mels) as power mels '
                             'and CLIP-normalised faces; auto = journal for --encoder_compat journal, vfd2022 '
                             'otherwise; stored with the checkpoints')
    parser.add_argument('--voice_encoder', type=str, default='voice', help='registered voice encoder '
                        '(models/networks.py; released mode adds _released)')
    parser.add_argument('--face_encoder', type=str, default='face', help='registered face encoder '
                        '(models/networks.py; released mode adds _released)')
    parser.add_argument('--voice_args', type=str, default='',
                        help='key=value,... sizes of the voice encoder that differ from the shared flags below')
    parser.add_argument('--face_args', type=str, default='',
                        help='key=value,... sizes of the face encoder that differ from the shared flags below')
    parser.add_argument('--score', type=str, default='neg_l2', choices=tuple(losses.SCORES),
                        help='score of a voice-face pair, higher = more real (models/losses.py): neg_l2 = minus '
                             'the L2 distance of the embeddings (the 2022 release); cosine = their cosine (the '
                             'journal); stored with the checkpoints')
    parser.add_argument('--dim', type=int, default=1024, help='transformer width of both encoders')
    parser.add_argument('--depth', type=int, default=6, help='transformer layers of each encoder')
    parser.add_argument('--heads', type=int, default=8, help='attention heads (must divide --dim)')
    parser.add_argument('--mlp_dim', type=int, default=2048, help='hidden width of the transformer feed-forward')
    parser.add_argument('--emb_dim', type=int, default=2048, help='size of the voice and face embeddings')
    parser.add_argument('--width_mult', type=float, default=1.0,
                        help='multiplier on every convolution channel count of both stems')
    parser.add_argument('--n_mels', type=int, default=512, help='mel bins of the stored voice features')
    parser.add_argument('--n_frames', type=int, default=301,
                        help='mel frames fed to the voice encoder (3 s at hop 160 = 301); longer mels are cut, '
                             'shorter ones padded with silent frames')
    return parser


# -- what a stored checkpoint describes ---------------------------------------------------------------------------
def stored_compat(state_dict):
    """'released' or 'fixed' as told by a state dict's position embedding ((32, 1, dim) or (1, 2, dim)), 'journal'
    for the journal's encoders (a ``positional_embedding`` and a ``class_embedding``); None otherwise."""
    if 'positional_embedding' in state_dict and 'class_embedding' in state_dict:
        return 'journal'
    pos = state_dict.get('pos_embedding')
    if pos is None or pos.dim() != 3:
        return None
    if tuple(pos.shape[:2]) == (networks.RELEASED_MAX_BATCH, 1):
        return 'released'
    return 'fixed' if tuple(pos.shape[:2]) == (1, 2) else None


def config_from_meta(meta, directory, tag):
    """The ModelConfig stored with a project checkpoint (version 2: ``config``; version 1: ``options``)."""
    try:
        if 'config' in meta:
            return ModelConfig.from_dict(meta['config'])
        return ModelConfig.from_legacy_options(meta['options'])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f'{directory}/{tag}_net_*.pth: the stored model config cannot be used '
                                         f'({type(err).__name__}: {err})') from err


def check_fits(config, loaded, directory, tag, names):
    """Refuse (CheckpointError) state dicts that do not fit the networks of ``config`` (``names``: the model's
    network names, in the order of ``build_encoders``), comparing with networks built on the meta device, so that a
    config claiming huge sizes allocates nothing."""
    try:
        with torch.device('meta'):
            nets = dict(zip(names, config.build_encoders()))
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        raise ModelConfigError(f'{directory}/{tag}_net_*.pth: the model config cannot be built ({err})') from err
    for name, net in nets.items():
        state_dict = loaded[name][0]
        check_fit(net, state_dict, net_path(directory, tag, name),
                             mismatch_hint(config.compat, state_dict))


def mismatch_hint(compat, state_dict):
    """Which mode or which size options to try when ``state_dict`` does not fit a model of ``compat``."""
    stored = stored_compat(state_dict)
    if stored is not None and stored != compat:
        told = ('its parameter names' if stored == 'journal' else
                f'pos_embedding {tuple(state_dict["pos_embedding"].shape)}')
        return (f'\nThe file looks like a {stored}-mode checkpoint ({told}) but the model was built with '
                f'--encoder_compat {compat}; try --encoder_compat {stored}.')
    return ('\nCheck the size options (--dim --depth --mlp_dim --emb_dim --width_mult --crop_size --n_mels '
            '--n_frames).')

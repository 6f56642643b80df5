"""The encoders, found by name, and their initialisation, learning rates and schedules.

``define_encoder(kind, **sizes)`` builds the encoder registered as ``kind`` (the CycleGAN ``define_G`` pattern). An
encoder is an ``nn.Module`` that maps a batch (B, C, H, W) to embeddings (B, emb_dim) and has an ``emb_dim``
attribute; ``embed_each(x)`` gives the embeddings each sample would get if encoded on its own (for most encoders
that is the forward pass itself). Register a new one with ``@register_encoder('name')`` and pick it with
``--voice_encoder`` / ``--face_encoder``; docs/overview.md walks through an example.

The built-in encoders (docs/method.md has the method behind them) share one recipe: a convolutional stem turns the
input into a feature map, the whole map is flattened into ONE token, a learned class token is put in front of it,
the two tokens get a position embedding and go through a pre-norm transformer, and the class token is projected
to the embedding by ``Linear -> ReLU``::

    face   (B, 3, S, S)  -> VGG-like stem, 5 poolings -> (B, C, S/32, S/32) -> one token -> ... -> (B, emb_dim)
    voice  (B, 1, M, T)  -> AlexNet-like stem          -> (B, C', h, w)       -> one token -> ... -> (B, emb_dim)

``face_released`` and ``voice_released`` are the same modules with the authors' forward pass, quirks included, so
their weights give their numbers:

1. the position embedding is indexed by the sample's position in the batch (``pos_embedding[:B]``, shape
   (32, 1, dim)): sample b gets vector b on both tokens, and a batch holds at most 32 samples;
2. attention scores are scaled by ``dim ** -0.5`` (the full width) instead of ``head_dim ** -0.5``;
3. the voice stem's BatchNorm layers keep no running statistics, so even in eval mode a voice is normalised with
   the statistics of the batch it arrives in.

Their ``embed_each`` computes for a whole batch what the released code gives for each sample encoded on its own
(position vector 0, per-sample statistics in the voice stem). Parameter names follow the released state dicts
exactly (``features.<i>``, ``patch_to_embedding``, ``cls_token``, ``pos_embedding``,
``transformer.layers.<i>.0.fn.fn.to_qkv``, ``mlp_head.0``; see ``tests/fixtures/released_checkpoint_keys.json``).
The fixed encoders' ``pos_embedding`` is (1, 2, dim) and their voice BatchNorm layers carry running statistics, so
fixed and released state dicts are not interchangeable.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init
from torch.optim import lr_scheduler

COMPAT_MODES = ('fixed', 'released', 'journal')
RELEASED_MAX_BATCH = 32  # rows of the released position embedding
RELEASED_SUFFIX = '_released'
# --encoder_compat -> the suffix of its encoders' registered names (fixed: the plain names)
COMPAT_SUFFIX = {'fixed': '', 'released': RELEASED_SUFFIX, 'journal': '_journal'}

# Channel plan of the face stem: groups of 3x3 conv units, a 2x2 max-pool after each group.
FACE_PLAN = ((32, 32, 32), (64, 64, 64), (128, 128, 128), (256, 256, 256, 256), (512, 512, 512, 512))

ENCODERS = {}


def register_encoder(name):
    """Class decorator: make an encoder class buildable as ``define_encoder(name, ...)``."""
    def register(cls):
        ENCODERS[name] = cls
        return cls
    return register


class EncoderBuildError(ValueError):
    """An encoder that cannot be built with the sizes given: the message names the encoder, the sizes and why."""


def define_encoder(kind, **sizes):
    """Build the encoder registered as ``kind`` with its keyword sizes (see each class for the names). Whatever its
    constructor raises (a size it does not take, an assertion on a size, a shape that does not work out) becomes one
    EncoderBuildError naming the encoder and its sizes."""
    if kind not in ENCODERS:
        raise EncoderBuildError(f'unknown encoder {kind!r}; registered: {", ".join(sorted(ENCODERS))}')
    try:
        return ENCODERS[kind](**sizes)
    except Exception as err:   # noqa: BLE001 -- any failure of a constructor is a config that cannot be built
        told = ', '.join(f'{key}={value}' for key, value in sizes.items())
        reason = str(err).splitlines()[0] if str(err) else ''
        raise EncoderBuildError(f'encoder {kind!r} cannot be built with {told or "its defaults"}: '
                                f'{type(err).__name__}{": " + reason if reason else ""}') from err


def scaled_channels(channels, width_mult):
    """Channel count after ``--width_mult`` (never below 1)."""
    return max(1, int(round(channels * width_mult)))


# ---------------------------------------------------------------------------------------------------------------
# Transformer blocks (module nesting mirrors the released names: layers.<i>.0.fn.norm / layers.<i>.0.fn.fn.to_qkv)
# ---------------------------------------------------------------------------------------------------------------
class Residual(nn.Module):
    """x -> fn(x) + x."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        """Add the block's input to its output."""
        return self.fn(x) + x


class PreNorm(nn.Module):
    """x -> fn(LayerNorm(x))."""

    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        """Normalise, then apply the block."""
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    """(B, N, dim) -> Linear(dim, hidden) -> GELU -> Linear(hidden, dim) -> (B, N, dim)."""

    def __init__(self, *, dim, hidden_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, x):
        """The two-layer MLP applied to every token."""
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention, (B, N, dim) -> (B, N, dim), scores scaled by head_dim ** -0.5.

    ``to_qkv`` lays its output out as [q | k | v], each split into heads as (heads, head_dim).
    """

    def __init__(self, *, dim, heads):
        super().__init__()
        assert dim % heads == 0, f'dim ({dim}) must be divisible by heads ({heads})'
        self.heads = heads
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def attend(self, q, k, v):
        """softmax(q k^T / sqrt(head_dim)) v for (B, heads, N, head_dim) tensors."""
        return F.scaled_dot_product_attention(q, k, v)

    def forward(self, x):
        """Attend over the tokens of each sample."""
        b, n, dim = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (b h n d)
        return self.to_out(self.attend(q, k, v).transpose(1, 2).reshape(b, n, dim))


class ReleasedAttention(Attention):
    """The released attention: scores scaled by dim ** -0.5, the full width (quirk 2), written out as released."""

    def attend(self, q, k, v):
        """softmax(q k^T / sqrt(dim)) v, with dim = heads x head_dim."""
        scale = (q.shape[1] * q.shape[3]) ** -0.5
        return torch.matmul((torch.matmul(q, k.transpose(-1, -2)) * scale).softmax(dim=-1), v)


class Transformer(nn.Module):
    """``depth`` pre-norm residual layers: x += Attention(LN(x)); x += FeedForward(LN(x))."""

    def __init__(self, *, dim, depth, heads, mlp_dim, attention=Attention):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([
                Residual(PreNorm(dim, attention(dim=dim, heads=heads))),
                Residual(PreNorm(dim, FeedForward(dim=dim, hidden_dim=mlp_dim))),
            ])
            for _ in range(depth)
        ])

    def forward(self, x):
        """Run the tokens through every layer."""
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


# ---------------------------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------------------------
def stem_output_shape(features, channels, height, width):
    """Follow (C, H, W) through a Sequential of Conv2d / MaxPool2d / shape-keeping layers, without running it;
    None when the map would vanish."""
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    for layer in features:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
            height = (height + 2 * p[0] - k[0]) // s[0] + 1
            width = (width + 2 * p[1] - k[1]) // s[1] + 1
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            if height < 1 or width < 1:
                return None
    return channels, height, width


class CycleGANInit:
    """The initialisation of this project's encoders (a mixin): Conv/Linear weights by ``init_type`` (bias 0),
    BatchNorm weights N(1, gain), bias 0; LayerNorm keeps its default (weight 1, bias 0). ``cls_token`` and
    ``pos_embedding`` are drawn from N(0, ``token_std``); None or 1 keeps the standard-normal draw the encoder made
    when built, as the released code does."""

    def initialize(self, *, init_type='normal', init_gain=0.02, token_std=None):
        """Initialise every submodule by the recipe above."""
        def init_func(m):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init_type == 'normal':
                    init.normal_(m.weight, 0.0, init_gain)
                elif init_type == 'xavier':
                    init.xavier_normal_(m.weight, gain=init_gain)
                elif init_type == 'kaiming':
                    init.kaiming_normal_(m.weight, a=0, mode='fan_in')
                else:
                    init.orthogonal_(m.weight, gain=init_gain)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.normal_(m.weight, 1.0, init_gain)
                init.zeros_(m.bias)

        self.apply(init_func)
        if token_std is not None and token_std != 1.0:
            for name in ('cls_token', 'pos_embedding'):
                if isinstance(getattr(self, name, None), nn.Parameter):
                    init.normal_(getattr(self, name), 0.0, token_std)


class TokenEncoder(CycleGANInit, nn.Module):
    """stem -> one token -> [cls, token] + position -> transformer -> class token -> Linear -> ReLU.

    ``features`` is the stem, ``in_shape`` its input (C, H, W). Subclasses only build the stem.
    """

    attention = Attention

    def __init__(self, features, in_shape, *, dim, depth, heads, mlp_dim, emb_dim):
        super().__init__()
        self.features = features
        self.stem_shape = stem_output_shape(features, *in_shape)
        if self.stem_shape is None:
            raise ValueError(f'an input of shape {tuple(in_shape)} is too small for the {type(self).__name__} stem')
        c, h, w = self.stem_shape
        self.emb_dim = emb_dim
        self.patch_to_embedding = nn.Linear(c * h * w, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(*self.position_shape(dim)))
        self.transformer = Transformer(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, attention=self.attention)
        self.mlp_head = nn.Sequential(nn.Linear(dim, emb_dim), nn.ReLU())

    @staticmethod
    def position_shape(dim):
        """Shape of ``pos_embedding``: one row per token."""
        return (1, 2, dim)

    def token_pair(self, fmap):
        """(B, C', h, w) stem map -> (B, 2, dim): the class token, then the whole map as one token."""
        assert tuple(fmap.shape[1:]) == self.stem_shape, (
            f'{type(self).__name__}: the stem gives a {tuple(fmap.shape[1:])} map, but the encoder was built for '
            f'{self.stem_shape}; check the input size options')
        b = fmap.shape[0]
        token = fmap.permute(0, 2, 3, 1).reshape(b, 1, -1)                  # (B, 1, h*w*C'), channels innermost
        return torch.cat((self.cls_token.expand(b, -1, -1), self.patch_to_embedding(token)), dim=1)

    def add_position(self, tokens):
        """(B, 2, dim) + the per-token position embedding."""
        return tokens + self.pos_embedding

    def head(self, tokens):
        """(B, 2, dim) -> transformer -> class token -> (B, emb_dim)."""
        return self.mlp_head(self.transformer(tokens)[:, 0])

    def forward(self, x):
        """x: (B, C, H, W) -> (B, emb_dim)."""
        assert x.dim() == 4, f'{type(self).__name__} expects a (B, C, H, W) batch, got shape {tuple(x.shape)}'
        return self.head(self.add_position(self.token_pair(self.features(x))))

    def embed_each(self, x):
        """Embeddings as if each sample were encoded on its own; in eval mode this is the forward pass."""
        return self(x)


class ReleasedTokenEncoder(TokenEncoder):
    """The released forward pass (quirks 1 and 2; the voice variant adds 3): see the module docstring."""

    attention = ReleasedAttention

    @staticmethod
    def position_shape(dim):
        """Shape of the released ``pos_embedding``: one row per batch index."""
        return (RELEASED_MAX_BATCH, 1, dim)

    def add_position(self, tokens):
        """(B, 2, dim) + row b of the position embedding on both tokens of sample b (quirk 1)."""
        b = tokens.shape[0]
        assert b <= RELEASED_MAX_BATCH, (f'released-mode encoders take at most {RELEASED_MAX_BATCH} samples per '
                                         f'batch (position embedding by batch index), got {b}')
        return tokens + self.pos_embedding[:b]

    def stem_each(self, x):
        """The stem as the released code runs it on a batch of one sample."""
        return self.features(x)

    def embed_each(self, x):
        """What the released code gives for each sample encoded on its own: position row 0 for everybody."""
        return self.head(self.token_pair(self.stem_each(x)) + self.pos_embedding[0])


def face_stem(width_mult):
    """Five groups of [Conv3x3(pad 1) -> BatchNorm2d -> ReLU] with the channels of ``FACE_PLAN``, a 2x2 max-pool
    after each group: (B, 3, S, S) -> (B, 512 x width_mult, S/32, S/32)."""
    layers, cin = [], 3
    for group in FACE_PLAN:
        for channels in group:
            cout = scaled_channels(channels, width_mult)
            layers += [nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]  # in place: same values, one activation less to keep
            cin = cout
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def voice_stem(width_mult, track_running_stats=True):
    """No padding anywhere: Conv(1->96, k7, s2) BN ReLU MaxPool2 | Conv(96->256, k5, s2) BN ReLU MaxPool2 |
    3 x [Conv(256->256, k3) BN ReLU] | MaxPool(3, 2), channels times ``width_mult``. (512, 301) -> (256, 8, 5)."""
    c1, c2 = scaled_channels(96, width_mult), scaled_channels(256, width_mult)

    def bn(channels):
        return nn.BatchNorm2d(channels, track_running_stats=track_running_stats)

    return nn.Sequential(
        nn.Conv2d(1, c1, kernel_size=7, stride=2), bn(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, kernel_size=5, stride=2), bn(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
        nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
        nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
        nn.MaxPool2d((3, 2)),
    )


@register_encoder('face')
class FaceEncoder(TokenEncoder):
    """Face encoder (released name ``transformer_video``, class CViT): (B, 3, S, S) -> (B, emb_dim).

    224 px faces give a (512, 7, 7) stem map, one token of 25088 values.
    """

    def __init__(self, *, image_size=224, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048):
        super().__init__(face_stem(width_mult), (3, image_size, image_size), dim=dim, depth=depth, heads=heads,
                         mlp_dim=mlp_dim, emb_dim=emb_dim)


@register_encoder('voice')
class VoiceEncoder(TokenEncoder):
    """Voice encoder (released name ``transformer_audio``, class CAiT): (B, 1, n_mels, n_frames) -> (B, emb_dim).

    A (512, 301) mel gives a (256, 8, 5) stem map, one token of 10240 values.
    """

    def __init__(self, *, n_mels=512, n_frames=301, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048,
                 emb_dim=2048):
        super().__init__(voice_stem(width_mult, self.track_running_stats), (1, n_mels, n_frames), dim=dim,
                         depth=depth, heads=heads, mlp_dim=mlp_dim, emb_dim=emb_dim)

    track_running_stats = True


@register_encoder('face' + RELEASED_SUFFIX)
class ReleasedFaceEncoder(ReleasedTokenEncoder, FaceEncoder):
    """The face encoder with the released forward pass (position by batch index, full-width attention scale)."""


@register_encoder('voice' + RELEASED_SUFFIX)
class ReleasedVoiceEncoder(ReleasedTokenEncoder, VoiceEncoder):
    """The voice encoder with the released forward pass; its BatchNorm layers use batch statistics (quirk 3)."""

    track_running_stats = False

    def stem_each(self, x):
        """The stem with each sample normalised by its own statistics, as in a batch of one."""
        for layer in self.features:
            x = per_sample_batch_norm(layer, x) if isinstance(layer, nn.BatchNorm2d) else layer(x)
        return x


def per_sample_batch_norm(bn, x):
    """BatchNorm with batch statistics computed per sample: folds the batch into channels, (B, C, H, W)."""
    b, c, h, w = x.shape
    weight = bn.weight.repeat(b) if bn.weight is not None else None
    bias = bn.bias.repeat(b) if bn.bias is not None else None
    y = F.batch_norm(x.reshape(1, b * c, h, w), None, None, weight, bias, training=True, momentum=0.0, eps=bn.eps)
    return y.reshape(b, c, h, w)


def is_released(kind):
    """Whether encoder ``kind`` is a released-compatibility variant."""
    return kind.endswith(RELEASED_SUFFIX)


def compat_of(kind):
    """The --encoder_compat mode whose encoders end like ``kind`` (``face_released`` -> released, ``voice_journal``
    -> journal); fixed for every other name."""
    for compat, suffix in COMPAT_SUFFIX.items():
        if suffix and kind.endswith(suffix):
            return compat
    return 'fixed'


# ---------------------------------------------------------------------------------------------------------------
# Initialisation, learning rates, schedules
# ---------------------------------------------------------------------------------------------------------------
INIT_TYPES = ('normal', 'xavier', 'kaiming', 'orthogonal')


def init_weights(net, init_type='normal', init_gain=0.02, token_std=None):
    """Initialise an encoder as its class says: encoders with an ``initialize`` method (this project's, whose
    recipe is ``CycleGANInit``) are initialised by it with ``--init_type``, ``--init_gain`` and
    ``--token_init_std``; any other encoder keeps what its constructor made (the journal's ViTs, a newcomer's
    module with zero tokens)."""
    if init_type not in INIT_TYPES:
        raise ValueError(f'unknown --init_type {init_type!r}; use {", ".join(INIT_TYPES)}')
    initialize = getattr(net, 'initialize', None)
    if callable(initialize):
        initialize(init_type=init_type, init_gain=init_gain, token_std=token_std)


def fan_in_param_groups(nets, lr, fan_in_ref):
    """Optimiser parameter groups in which a weight matrix with fan-in above ``fan_in_ref`` learns at
    ``lr * fan_in_ref / fan_in``; everything else (and every weight when ``fan_in_ref`` is 0) at ``lr``.

    Adam moves each weight by about the learning rate per step whatever its gradient, and early on those moves
    point the same way across a whole row, so a layer's output changes by about lr x fan-in x its input size: at the
    paper's size the face token's projection (fan-in 25088) would change by several times its own size in one
    step (docs/training.md). Scaling by 1 / fan-in keeps that change alike across layers and model sizes.
    """
    by_rate = {}
    for net in nets:
        for module in net.modules():
            for name, param in module.named_parameters(recurse=False):
                fan_in = param[0].numel() if isinstance(module, (nn.Linear, nn.Conv2d)) and name == 'weight' else 0
                rate = lr * fan_in_ref / fan_in if fan_in_ref and fan_in > fan_in_ref else lr
                by_rate.setdefault(rate, []).append(param)
    return [{'params': params, 'lr': rate} for rate, params in sorted(by_rate.items(), reverse=True)]


LR_POLICIES = ('linear', 'step', 'plateau', 'cosine', 'cosine_warmup')


def cosine_warmup_factor(progress, warmup_epochs, total_epochs):
    """The journal's learning-rate factor at ``progress`` epochs into training (a fraction: epoch - 1 + step / steps
    per epoch): ``progress / warmup_epochs`` during the warm-up (0 at the very first step), then a half cosine from
    1 to 0 over the remaining epochs."""
    if progress < warmup_epochs:
        return progress / warmup_epochs
    span = total_epochs - warmup_epochs
    if span <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warmup_epochs) / span)))


def get_scheduler(optimizer, opt):
    """CycleGAN's learning-rate policies; the scheduler steps once per epoch.

    linear:  keep ``lr`` for ``n_epochs`` epochs, then decay linearly over ``n_epochs_decay`` epochs.
    step:    multiply by 0.1 every ``lr_decay_iters`` epochs.
    plateau: multiply by 0.2 when the validation metric stops improving (5 epochs patience).
    cosine:  cosine annealing to 0 over ``n_epochs`` epochs.
    cosine_warmup: the journal's; the per-epoch scheduler keeps the base rate, and the model scales it at every step
             (``BaseModel.apply_warmup`` with ``cosine_warmup_factor``).
    """
    if opt.lr_policy == 'linear':
        def lambda_rule(epoch):
            return 1.0 - max(0, epoch + opt.epoch_count - opt.n_epochs) / float(opt.n_epochs_decay + 1)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda_rule)
    if opt.lr_policy == 'step':
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if opt.lr_policy == 'plateau':
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode='max', factor=0.2, threshold=0.01, patience=5)
    if opt.lr_policy == 'cosine':
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.n_epochs, eta_min=0)
    if opt.lr_policy == 'cosine_warmup':
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=constant_one)
    raise ValueError(f'unknown --lr_policy {opt.lr_policy!r}; use one of {", ".join(LR_POLICIES)}')


def constant_one(_epoch):
    """The factor of a scheduler that keeps the base rate (a module-level function, so its state pickles)."""
    return 1.0


def count_parameters(net):
    """Number of parameters (not buffers)."""
    return sum(p.numel() for p in net.parameters())


def summary(net):
    """One line describing an encoder for logs: its class, token size where it has one, parameter count."""
    stem = getattr(net, 'stem_shape', None)
    token = f'stem map {"x".join(map(str, stem))} -> token of {stem[0] * stem[1] * stem[2]}, ' if stem else ''
    return f'{type(net).__name__}: {token}{count_parameters(net) / 1e6:.1f} M params'


def recalibrate_batch_norm(nets, run, batches):
    """Replace the running statistics of every BatchNorm layer of ``nets`` that keeps them with exact averages over
    ``batches``; ``run(batch)`` does one forward pass. Returns the number of batches used.

    The moving averages kept during training lag behind the weights (momentum 0.1), which makes eval-mode
    embeddings, and so validation numbers, swing from epoch to epoch. This runs the networks in training mode over
    the batches, accumulates each layer's input mean and variance over every sample and position, and writes them
    into the layer's buffers. Weights are untouched.
    """
    layers = [m for net in nets for m in net.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    moments = {layer: [0, 0.0, 0.0] for layer in layers}

    def accumulate(layer, inputs, _output):
        x = inputs[0].detach().double().transpose(0, 1).flatten(1)   # (C, N*H*W)
        entry = moments[layer]
        entry[0] += x.shape[1]
        entry[1] = entry[1] + x.sum(1)
        entry[2] = entry[2] + (x * x).sum(1)

    hooks = [layer.register_forward_hook(accumulate) for layer in layers]
    was_training = [net.training for net in nets]
    used = 0
    try:
        for net in nets:
            net.train()
        with torch.no_grad():
            for batch in batches:
                run(batch)
                used += 1
    finally:
        for hook in hooks:
            hook.remove()
        for net, mode in zip(nets, was_training):
            net.train(mode)
    for layer, (count, total, squares) in moments.items():
        if count > 1:
            mean = total / count
            var = (squares / count - mean * mean).clamp(min=0) * count / (count - 1)
            layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
            layer.running_var.copy_(var.to(layer.running_var.dtype))
    return used


# the journal version's encoders register themselves (face_journal, voice_journal)
from . import vit  # noqa: E402,F401  (after register_encoder exists)

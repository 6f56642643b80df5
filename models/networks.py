"""The two VFD encoders, their building blocks, initialisation and learning-rate schedules.

Both encoders follow the same recipe: a convolutional stem turns the input into a feature map, the whole map
is flattened into ONE token, a learned class token is put in front of it, the two tokens go through a pre-norm
transformer, and the class token is projected to the embedding by ``Linear -> ReLU``.

    FaceEncoder   (B, 3, S, S)  -> VGG-like stem, 5 poolings -> (B, C, S/32, S/32) -> ... -> (B, emb_dim)
    VoiceEncoder  (B, 1, M, T)  -> AlexNet-like stem          -> (B, C', h, w)       -> ... -> (B, emb_dim)

``compat`` selects between two forward passes over the same modules:

* ``'released'`` reproduces the authors' released encoders, quirks included, so their weights give their numbers:
  1. the position embedding is indexed by the sample's position in the batch (``pos_embedding[:B]``, shape
     (32, 1, dim)), so sample b gets vector b on both tokens and a batch holds at most 32 samples;
  2. attention scores are scaled by ``dim ** -0.5`` (the full width) instead of ``head_dim ** -0.5``;
  3. the voice stem's BatchNorm layers keep no running statistics, so even in eval mode a voice is normalised
     with the statistics of the batch it arrives in.
  ``alone=True`` computes, for a whole batch at once, what the released code gives for each sample encoded on its
  own (batch of one): position vector 0 for everybody and per-sample statistics in the voice stem.
* ``'fixed'`` corrects the three quirks: a per-token position embedding of shape (1, 2, dim), per-head scaling
  (through ``scaled_dot_product_attention``) and BatchNorm with running statistics. Embeddings then do not depend
  on the rest of the batch in eval mode.

Parameter names follow the released state dicts exactly (``features.<i>``, ``patch_to_embedding``, ``cls_token``,
``pos_embedding``, ``transformer.layers.<i>.0.fn.fn.to_qkv`` ..., ``mlp_head.0``); see
``tests/fixtures/released_checkpoint_keys.json``. In fixed mode ``pos_embedding`` has shape (1, 2, dim) and the voice
stem's BatchNorm layers carry running statistics, so fixed and released state dicts are not interchangeable.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init
from torch.optim import lr_scheduler

COMPAT_MODES = ('released', 'fixed')
RELEASED_MAX_BATCH = 32  # rows of the released position embedding

# Channel plan of the face stem: groups of 3x3 conv units, a 2x2 max-pool after each group.
FACE_PLAN = ((32, 32, 32), (64, 64, 64), (128, 128, 128), (256, 256, 256, 256), (512, 512, 512, 512))


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
        return self.fn(x) + x


class PreNorm(nn.Module):
    """x -> fn(LayerNorm(x))."""

    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    """(B, N, dim) -> Linear(dim, hidden) -> GELU -> Linear(hidden, dim) -> (B, N, dim)."""

    def __init__(self, *, dim, hidden_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention, (B, N, dim) -> (B, N, dim).

    ``to_qkv`` lays its output out as [q | k | v], each split into heads as (heads, head_dim).
    released: softmax(q k^T * dim**-0.5) v written out as in the released code (quirk 2).
    fixed:    ``F.scaled_dot_product_attention`` with its default head_dim**-0.5 scale.
    """

    def __init__(self, *, dim, heads, compat):
        super().__init__()
        assert compat in COMPAT_MODES, f'compat must be one of {COMPAT_MODES}, got {compat!r}'
        assert dim % heads == 0, f'dim ({dim}) must be divisible by heads ({heads})'
        self.heads = heads
        self.compat = compat
        self.scale = dim ** -0.5 if compat == 'released' else (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, dim = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (b h n d)
        if self.compat == 'released':
            attn = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
            out = torch.matmul(attn, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, dim))


class Transformer(nn.Module):
    """``depth`` pre-norm residual layers: x += Attention(LN(x)); x += FeedForward(LN(x))."""

    def __init__(self, *, dim, depth, heads, mlp_dim, compat):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([
                Residual(PreNorm(dim, Attention(dim=dim, heads=heads, compat=compat))),
                Residual(PreNorm(dim, FeedForward(dim=dim, hidden_dim=mlp_dim))),
            ])
            for _ in range(depth)
        ])

    def forward(self, x):
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


# ---------------------------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------------------------
def _stem_output_shape(features, channels, height, width):
    """Follow (C, H, W) through a Sequential of Conv2d / MaxPool2d / shape-keeping layers, without running it."""
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


class _TokenEncoder(nn.Module):
    """Shared part of both encoders: stem -> one token -> [cls, token] + position -> transformer -> head.

    Subclasses build ``self.features`` and call ``_build_head`` with the stem's output shape.
    """

    voice_stem_batch_stats = False  # True where the stem's BatchNorm layers use batch statistics (released voice)

    def _build_head(self, *, stem_shape, dim, depth, heads, mlp_dim, emb_dim, compat):
        assert compat in COMPAT_MODES, f'compat must be one of {COMPAT_MODES}, got {compat!r}'
        self.compat = compat
        self.stem_shape = stem_shape
        patch_dim = stem_shape[0] * stem_shape[1] * stem_shape[2]
        self.patch_to_embedding = nn.Linear(patch_dim, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        pos_rows = (RELEASED_MAX_BATCH, 1) if compat == 'released' else (1, 2)  # (batch index, 1) vs (1, token)
        self.pos_embedding = nn.Parameter(torch.randn(*pos_rows, dim))
        self.transformer = Transformer(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, compat=compat)
        self.mlp_head = nn.Sequential(nn.Linear(dim, emb_dim), nn.ReLU())

    def _stem(self, x, alone):
        if not (alone and self.voice_stem_batch_stats):
            return self.features(x)
        for layer in self.features:  # released voice stem, each sample with its own statistics (batch of one)
            x = _per_sample_batch_norm(layer, x) if isinstance(layer, nn.BatchNorm2d) else layer(x)
        return x

    def forward(self, x, alone=False):
        """x: (B, C, H, W) -> (B, emb_dim). ``alone`` (released mode): as if every sample were encoded on its own."""
        assert x.dim() == 4, f'{type(self).__name__} expects a (B, C, H, W) batch, got shape {tuple(x.shape)}'
        fmap = self._stem(x, alone)                                   # (B, C', h, w)
        assert tuple(fmap.shape[1:]) == self.stem_shape, (
            f'{type(self).__name__}: input {tuple(x.shape[1:])} gives a feature map {tuple(fmap.shape[1:])}, '
            f'but the encoder was built for {self.stem_shape}; check the input size options')
        b = fmap.shape[0]
        token = fmap.permute(0, 2, 3, 1).reshape(b, 1, -1)            # (B, 1, h*w*C'), channels innermost
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), self.patch_to_embedding(token)), dim=1)  # (B, 2, dim)
        if self.compat == 'released':
            if alone:
                tokens = tokens + self.pos_embedding[0]               # row 0 for everybody: (1, dim)
            else:
                assert b <= self.pos_embedding.shape[0], (
                    f'released-mode encoders take at most {self.pos_embedding.shape[0]} samples per batch '
                    f'(position embedding by batch index), got {b}')
                tokens = tokens + self.pos_embedding[:b]              # (B, 1, dim): row b for sample b
        else:
            tokens = tokens + self.pos_embedding                      # (1, 2, dim): one row per token
        return self.mlp_head(self.transformer(tokens)[:, 0])         # (B, emb_dim)


def _per_sample_batch_norm(bn, x):
    """BatchNorm with batch statistics computed per sample: folds the batch into channels, (B, C, H, W)."""
    b, c, h, w = x.shape
    weight = bn.weight.repeat(b) if bn.weight is not None else None
    bias = bn.bias.repeat(b) if bn.bias is not None else None
    y = F.batch_norm(x.reshape(1, b * c, h, w), None, None, weight, bias, training=True, momentum=0.0, eps=bn.eps)
    return y.reshape(b, c, h, w)


class FaceEncoder(_TokenEncoder):
    """Face encoder (released name ``transformer_video``, class CViT): (B, 3, S, S) -> (B, emb_dim).

    Stem: five groups of [Conv3x3(pad 1) -> BatchNorm2d -> ReLU] with the channels of ``FACE_PLAN`` (times
    ``width_mult``), a MaxPool 2x2/2 after each group: S -> S/32 (224 -> 7). The whole map is one token.
    """

    def __init__(self, *, image_size=224, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048,
                 compat='fixed'):
        super().__init__()
        layers, cin = [], 3
        for group in FACE_PLAN:
            for channels in group:
                cout = scaled_channels(channels, width_mult)
                layers += [nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(cout),
                           nn.ReLU(inplace=True)]  # in place: same values, one activation less to keep
                cin = cout
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        stem_shape = _stem_output_shape(self.features, 3, image_size, image_size)
        if stem_shape is None:
            raise ValueError(f'face size {image_size} is too small for the face encoder (at least 32 px)')
        self._build_head(stem_shape=stem_shape, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim,
                         emb_dim=emb_dim, compat=compat)


class VoiceEncoder(_TokenEncoder):
    """Voice encoder (released name ``transformer_audio``, class CAiT): (B, 1, n_mels, n_frames) -> (B, emb_dim).

    Stem, no padding anywhere (channels times ``width_mult``):
    Conv(1->96, k7, s2) BN ReLU MaxPool2 | Conv(96->256, k5, s2) BN ReLU MaxPool2 | 3 x [Conv(256->256, k3) BN ReLU]
    | MaxPool(3, 2). A (512, 301) mel gives a (256, 8, 5) map, one token of 10240 values.
    In released mode the BatchNorm layers keep no running statistics (quirk 3).
    """

    def __init__(self, *, n_mels=512, n_frames=301, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048,
                 emb_dim=2048, compat='fixed'):
        super().__init__()
        c1, c2 = scaled_channels(96, width_mult), scaled_channels(256, width_mult)
        track = compat == 'fixed'
        self.voice_stem_batch_stats = not track

        def bn(channels):
            return nn.BatchNorm2d(channels, track_running_stats=track)

        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=7, stride=2), bn(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, stride=2), bn(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, kernel_size=3), bn(c2), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 2)),
        )
        stem_shape = _stem_output_shape(self.features, 1, n_mels, n_frames)
        if stem_shape is None:
            raise ValueError(f'a ({n_mels}, {n_frames}) mel spectrogram is too small for the voice encoder')
        self._build_head(stem_shape=stem_shape, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim,
                         emb_dim=emb_dim, compat=compat)


# ---------------------------------------------------------------------------------------------------------------
# Construction, initialisation, schedules
# ---------------------------------------------------------------------------------------------------------------
ARCH_KEYS = ('encoder_compat', 'dim', 'depth', 'heads', 'mlp_dim', 'emb_dim', 'width_mult', 'crop_size',
             'n_mels', 'n_frames')


def arch_args(opt):
    """The options that define both encoders, as a plain dict (stored in every checkpoint)."""
    return {key: getattr(opt, key) for key in ARCH_KEYS}


def define_encoders(arch, init_type='normal', init_gain=0.02, token_std=None):
    """Build ``(voice_encoder, face_encoder)`` from an ``arch_args`` dict and initialise them (see ``init_weights``)."""
    shared = dict(width_mult=arch['width_mult'], dim=arch['dim'], depth=arch['depth'], heads=arch['heads'],
                  mlp_dim=arch['mlp_dim'], emb_dim=arch['emb_dim'], compat=arch['encoder_compat'])
    voice = VoiceEncoder(n_mels=arch['n_mels'], n_frames=arch['n_frames'], **shared)
    face = FaceEncoder(image_size=arch['crop_size'], **shared)
    for net in (voice, face):
        init_weights(net, init_type, init_gain, token_std)
    return voice, face


def init_weights(net, init_type='normal', init_gain=0.02, token_std=None):
    """CycleGAN initialisation: Conv/Linear weights by ``init_type`` (bias 0), BatchNorm weights N(1, gain), bias 0.

    ``cls_token`` and ``pos_embedding`` are drawn from N(0, ``token_std``); None or 1 keeps the standard-normal draw
    the encoders made when built, as the released code does. LayerNorm keeps its default (weight 1, bias 0).
    """
    def init_func(m):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init_type == 'normal':
                init.normal_(m.weight, 0.0, init_gain)
            elif init_type == 'xavier':
                init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == 'kaiming':
                init.kaiming_normal_(m.weight, a=0, mode='fan_in')
            elif init_type == 'orthogonal':
                init.orthogonal_(m.weight, gain=init_gain)
            else:
                raise ValueError(f'unknown --init_type {init_type!r}; use normal, xavier, kaiming or orthogonal')
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            init.normal_(m.weight, 1.0, init_gain)
            init.zeros_(m.bias)

    net.apply(init_func)
    if token_std is not None and token_std != 1.0:
        for param in (net.cls_token, net.pos_embedding):
            init.normal_(param, 0.0, token_std)


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


LR_POLICIES = ('linear', 'step', 'plateau', 'cosine')


def get_scheduler(optimizer, opt):
    """CycleGAN's learning-rate policies; the scheduler steps once per epoch.

    linear:  keep ``lr`` for ``n_epochs`` epochs, then decay linearly over ``n_epochs_decay`` epochs.
    step:    multiply by 0.1 every ``lr_decay_iters`` epochs.
    plateau: multiply by 0.2 when the validation metric stops improving (5 epochs patience).
    cosine:  cosine annealing to 0 over ``n_epochs`` epochs.
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
    raise ValueError(f'unknown --lr_policy {opt.lr_policy!r}; use one of {", ".join(LR_POLICIES)}')


def count_parameters(net):
    """Number of parameters (not buffers)."""
    return sum(p.numel() for p in net.parameters())


def stem_summary(net):
    """One line describing an encoder's token size, for logs."""
    c, h, w = net.stem_shape
    return (f'{type(net).__name__}: stem map {c}x{h}x{w} -> token of {c * h * w}, '
            f'{count_parameters(net) / 1e6:.1f} M params')


__all__ = ['FaceEncoder', 'VoiceEncoder', 'Attention', 'Transformer', 'define_encoders', 'arch_args', 'ARCH_KEYS',
           'COMPAT_MODES', 'init_weights', 'get_scheduler', 'LR_POLICIES', 'count_parameters']

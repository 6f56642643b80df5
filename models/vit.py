"""The encoders of the journal version of VFD (ACM ToMM 2023): CLIP-style vision transformers for faces and voices.

The published VFD replaced the 2022 release's convolution-plus-one-token encoders by two ViT-B/32 encoders in the
style of CLIP's image tower, one over the face and one over a mel spectrogram treated as a one-channel image::

    face   (B, 3, 224, 224)  -> 32 x 32 patches (7 x 7 grid)  -> [class] + 49 tokens -> 12 blocks -> class -> (B, 512)
    voice  (B, 1, 128, 256)  -> 32 x 32 patches (4 x 8 grid)  -> [class] + 32 tokens -> 12 blocks -> class -> (B, 512)

Each encoder: a patch convolution without bias (``conv1``); a learned ``class_embedding`` (dim,) put in front of the
patch tokens; a learned ``positional_embedding`` (tokens, dim) added to all of them; ``ln_pre``; ``depth`` residual
blocks, each ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` with ``nn.MultiheadAttention`` (sequence first) and an
MLP ``c_fc -> QuickGELU -> c_proj``; ``ln_post`` on the class token; then ``@ proj`` (dim, emb_dim). Every LayerNorm
computes in float32 whatever its input's dtype (CLIP's way of running under half precision). The arithmetic, the
order of the operations and the parameter names are those of the journal's code, so its checkpoints load with
``load_state_dict(strict=True)`` once the ``module.`` prefix of its DataParallel wrapper is gone, and give its
embeddings bit for bit (tests/test_journal_reference.py).

The journal's code also has stochastic depth and embedding dropout, both 0 in every configuration it published; they
are left out here. A grid that the patch does not divide is floored, as the journal's strided convolution does: its
voice input is a 128 x 257 mel, whose last frame no patch covers, so ``n_frames`` 256 and 257 give the same
embeddings.

These encoders set themselves up as the journal's do (PyTorch's default initialisation of every layer, the class
and position embeddings and the projection drawn as ``dim ** -0.5`` times a standard normal), so
``networks.init_weights`` leaves them alone (they have no ``initialize`` method).
"""
from collections import OrderedDict

import torch
from torch import nn

from .networks import register_encoder

JOURNAL_SUFFIX = '_journal'


class Float32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, returned in the input's dtype."""

    def forward(self, x):
        """Normalise ``x`` in float32."""
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), CLIP's approximation of GELU."""

    def forward(self, x):
        """Apply the activation."""
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """(N, B, dim) sequence first -> x + attn(ln_1(x)) -> x + mlp(ln_2(x)) -> (N, B, dim)."""

    def __init__(self, *, dim, heads, mlp_dim):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads)
        self.ln_1 = Float32LayerNorm(dim)
        self.mlp = nn.Sequential(OrderedDict([('c_fc', nn.Linear(dim, mlp_dim)), ('gelu', QuickGELU()),
                                              ('c_proj', nn.Linear(mlp_dim, dim))]))
        self.ln_2 = Float32LayerNorm(dim)

    def forward(self, x):
        """One block over the tokens of every sample (no mask: every token attends to every token)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=None)[0]
        return x + self.mlp(self.ln_2(x))


class BlockStack(nn.Module):
    """``depth`` residual attention blocks as ``resblocks.<i>`` (the journal's state-dict names)."""

    def __init__(self, *, dim, depth, heads, mlp_dim):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(dim=dim, heads=heads, mlp_dim=mlp_dim)
                                         for _ in range(depth)])

    def forward(self, x):
        """(N, B, dim) through every block."""
        return self.resblocks(x)


class PatchViT(nn.Module):
    """The journal's ViT over a (B, channels, H, W) input cut into ``patch`` x ``patch`` patches -> (B, emb_dim).

    ``grid`` is (H // patch, W // patch); the position embedding has one row per patch plus the class token.
    """

    def __init__(self, *, channels, grid, patch, dim, depth, heads, mlp_dim, emb_dim):
        super().__init__()
        for name, value in (('patch', patch), ('dim', dim), ('depth', depth), ('heads', heads), ('mlp_dim', mlp_dim),
                            ('emb_dim', emb_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{type(self).__name__}: {name} must be a positive integer, got {value!r}')
        if dim % heads:
            raise ValueError(f'{type(self).__name__}: dim ({dim}) must be divisible by heads ({heads})')
        if min(grid) < 1:
            raise ValueError(f'{type(self).__name__}: the input is smaller than one {patch} x {patch} patch')
        self.emb_dim, self.grid, self.patch, self.in_channels = emb_dim, tuple(grid), patch, channels
        scale = dim ** -0.5
        self.conv1 = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(dim))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid[0] * grid[1] + 1, dim))
        self.ln_pre = Float32LayerNorm(dim)
        self.transformer = BlockStack(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
        self.ln_post = Float32LayerNorm(dim)
        self.proj = nn.Parameter(scale * torch.randn(dim, emb_dim))

    def forward(self, x):
        """x: (B, C, H, W) -> (B, emb_dim)."""
        assert x.dim() == 4 and x.shape[1] == self.in_channels, (
            f'{type(self).__name__} expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}')
        x = self.conv1(x)                                                       # (B, dim, gh, gw)
        assert tuple(x.shape[-2:]) == self.grid, (
            f'{type(self).__name__}: the input gives a {tuple(x.shape[-2:])} grid of patches, but the encoder was built '
            f'for {self.grid}; check the input size options')
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)              # (B, gh*gw, dim)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype,
                                                             device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, 1 + gh*gw, dim)
        x = self.ln_pre(x).permute(1, 0, 2)                                     # sequence first
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj

    def embed_each(self, x):
        """The embeddings of each sample on its own: the forward pass (nothing here mixes the samples of a batch)."""
        return self(x)


def patch_grid(height, width, patch):
    """(height // patch, width // patch): the grid the journal's strided patch convolution gives."""
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f'patch must be a positive integer, got {patch!r}')
    return height // patch, width // patch


@register_encoder('face' + JOURNAL_SUFFIX)
class JournalFaceEncoder(PatchViT):
    """The journal's face encoder (``VisualTransformer``, ViT-B/32 at the published sizes): (B, 3, S, S) -> (B, 512)."""

    def __init__(self, *, image_size=224, patch=32, dim=768, depth=12, heads=12, mlp_dim=3072, emb_dim=512):
        super().__init__(channels=3, grid=patch_grid(image_size, image_size, patch), patch=patch, dim=dim,
                         depth=depth, heads=heads, mlp_dim=mlp_dim, emb_dim=emb_dim)


@register_encoder('voice' + JOURNAL_SUFFIX)
class JournalVoiceEncoder(PatchViT):
    """The journal's voice encoder (``AuditoryTransformer``): (B, 1, n_mels, n_frames) power mel -> (B, 512).

    The published input is 128 mel bands by 256 frames (a 4 x 8 grid of 32 x 32 patches).
    """

    def __init__(self, *, n_mels=128, n_frames=256, patch=32, dim=768, depth=12, heads=12, mlp_dim=3072,
                 emb_dim=512):
        super().__init__(channels=1, grid=patch_grid(n_mels, n_frames, patch), patch=patch, dim=dim, depth=depth,
                         heads=heads, mlp_dim=mlp_dim, emb_dim=emb_dim)

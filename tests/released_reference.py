"""An independent transcription of the authors' released encoders, used only by the tests.

It is written the way the released code is written (vit-pytorch of 2020/2021): ``Residual(PreNorm(dim, fn))``
blocks, attention through ``chunk`` + ``rearrange`` + ``einsum``, the feature map cut into patches with the
``rearrange`` pattern of the released CViT, and the released quirks kept as they are:

* the position embedding has shape (32, 1, dim) and is indexed by the batch index (``pos_embedding[0:B]``);
* attention scores are scaled by ``dim ** -0.5``, the full width, not the width of one head;
* the voice stem's BatchNorm layers keep no running statistics, so they use batch statistics even in eval mode.

It deliberately shares no code with ``models/networks.py``. The module nesting and registration order give the
state-dict keys of the released checkpoints (``tests/fixtures/released_checkpoint_keys.json``), so weights can be
copied in either direction with ``load_state_dict(strict=True)``.

The released code is fixed at the paper's sizes; here the sizes are arguments (``width_mult`` scales the stem's
channel counts), so the tests can run tiny copies. As in the released code the patch covers the whole stem output,
so the encoder sees exactly one image token.
"""
import torch
from torch import nn

try:
    from einops import rearrange
except ImportError:  # the same rearrangements written out; they move values only, no arithmetic
    def rearrange(t, pattern, **axes):
        """The three einops patterns used below, as reshape / permute."""
        if pattern == 'b n (h d) -> b h n d':
            b, n, hd = t.shape
            h = axes['h']
            return t.reshape(b, n, h, hd // h).permute(0, 2, 1, 3)
        if pattern == 'b h n d -> b n (h d)':
            b, h, n, d = t.shape
            return t.permute(0, 2, 1, 3).reshape(b, n, h * d)
        if pattern == 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)':
            b, c, hp, wp = t.shape
            p1, p2 = axes['p1'], axes['p2']
            h, w = hp // p1, wp // p2
            return t.reshape(b, c, h, p1, w, p2).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, p1 * p2 * c)
        raise NotImplementedError(pattern)


MAX_BATCH = 32


def channels(count, width_mult):
    """A released channel count scaled by ``width_mult`` (1.0 keeps the released count)."""
    return max(1, int(round(count * width_mult)))


class Residual(nn.Module):
    """Adds the block's input to its output."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, **kwargs):
        return self.fn(x, **kwargs) + x


class PreNorm(nn.Module):
    """Applies LayerNorm, then the wrapped block."""

    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x, **kwargs):
        return self.fn(self.norm(x), **kwargs)


class FeedForward(nn.Module):
    """Linear, GELU, Linear."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, dim),
        )

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention, scaled by the full width as in the released code."""

    def __init__(self, dim, heads=8):
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        h = self.heads
        qkv = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = map(lambda t: rearrange(t, 'b n (h d) -> b h n d', h=h), qkv)
        dots = torch.einsum('bhid,bhjd->bhij', q, k) * self.scale
        attn = dots.softmax(dim=-1)
        out = torch.einsum('bhij,bhjd->bhid', attn, v)
        out = rearrange(out, 'b h n d -> b n (h d)')
        out = self.to_out(out)
        return out


class Transformer(nn.Module):
    """``depth`` layers of residual pre-norm attention followed by residual pre-norm feed-forward."""

    def __init__(self, dim, depth, heads, mlp_dim):
        super().__init__()
        self.layers = nn.ModuleList([])
        for _ in range(depth):
            self.layers.append(nn.ModuleList([
                Residual(PreNorm(dim, Attention(dim, heads=heads))),
                Residual(PreNorm(dim, FeedForward(dim, mlp_dim))),
            ]))

    def forward(self, x, mask=None):
        for attn, ff in self.layers:
            x = attn(x, mask=mask)
            x = ff(x)
        return x


class _OneTokenViT(nn.Module):
    """What CViT and CAiT share after the stem: one patch, a class token, the transformer and the head.

    The released classes each repeat this code; it is written once here. Parameters are registered in the
    released order (``pos_embedding`` before ``cls_token``), so even the order of the state-dict keys matches.
    """

    def _head(self, channels_out, patch_h, patch_w, dim, depth, heads, mlp_dim, emb_dim):
        self.patch_h, self.patch_w = patch_h, patch_w
        patch_dim = channels_out * patch_h * patch_w
        self.pos_embedding = nn.Parameter(torch.randn(MAX_BATCH, 1, dim))
        self.patch_to_embedding = nn.Linear(patch_dim, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = Transformer(dim, depth, heads, mlp_dim)
        self.to_cls_token = nn.Identity()
        self.mlp_head = nn.Sequential(
            nn.Linear(dim, emb_dim),
            nn.ReLU(),
        )

    def forward(self, img, mask=None):
        x = self.features(img)
        y = rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=self.patch_h, p2=self.patch_w)
        y = self.patch_to_embedding(y)
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, y), 1)
        shape = x.shape[0]
        x += self.pos_embedding[0:shape]
        x = self.transformer(x, mask)
        x = self.to_cls_token(x[:, 0])
        return self.mlp_head(x)


class CViT(_OneTokenViT):
    """The released face encoder: a VGG-like stem (five max-pools), then one token of the whole map."""

    def __init__(self, image_size=224, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048, emb_dim=2048):
        super().__init__()
        c32, c64, c128, c256, c512 = (channels(c, width_mult) for c in (32, 64, 128, 256, 512))
        self.features = nn.Sequential(
            nn.Conv2d(3, c32, kernel_size=3, padding=1), nn.BatchNorm2d(c32), nn.ReLU(),
            nn.Conv2d(c32, c32, kernel_size=3, padding=1), nn.BatchNorm2d(c32), nn.ReLU(),
            nn.Conv2d(c32, c32, kernel_size=3, padding=1), nn.BatchNorm2d(c32), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),

            nn.Conv2d(c32, c64, kernel_size=3, padding=1), nn.BatchNorm2d(c64), nn.ReLU(),
            nn.Conv2d(c64, c64, kernel_size=3, padding=1), nn.BatchNorm2d(c64), nn.ReLU(),
            nn.Conv2d(c64, c64, kernel_size=3, padding=1), nn.BatchNorm2d(c64), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),

            nn.Conv2d(c64, c128, kernel_size=3, padding=1), nn.BatchNorm2d(c128), nn.ReLU(),
            nn.Conv2d(c128, c128, kernel_size=3, padding=1), nn.BatchNorm2d(c128), nn.ReLU(),
            nn.Conv2d(c128, c128, kernel_size=3, padding=1), nn.BatchNorm2d(c128), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),

            nn.Conv2d(c128, c256, kernel_size=3, padding=1), nn.BatchNorm2d(c256), nn.ReLU(),
            nn.Conv2d(c256, c256, kernel_size=3, padding=1), nn.BatchNorm2d(c256), nn.ReLU(),
            nn.Conv2d(c256, c256, kernel_size=3, padding=1), nn.BatchNorm2d(c256), nn.ReLU(),
            nn.Conv2d(c256, c256, kernel_size=3, padding=1), nn.BatchNorm2d(c256), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),

            nn.Conv2d(c256, c512, kernel_size=3, padding=1), nn.BatchNorm2d(c512), nn.ReLU(),
            nn.Conv2d(c512, c512, kernel_size=3, padding=1), nn.BatchNorm2d(c512), nn.ReLU(),
            nn.Conv2d(c512, c512, kernel_size=3, padding=1), nn.BatchNorm2d(c512), nn.ReLU(),
            nn.Conv2d(c512, c512, kernel_size=3, padding=1), nn.BatchNorm2d(c512), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        side = image_size
        for _ in range(5):
            side //= 2
        assert side >= 1, f'image size {image_size} is too small'
        self._head(c512, side, side, dim, depth, heads, mlp_dim, emb_dim)


class CAiT(_OneTokenViT):
    """The released voice encoder: an AlexNet-like stem without padding, BatchNorm on batch statistics only."""

    def __init__(self, n_mels=512, n_frames=301, width_mult=1.0, dim=1024, depth=6, heads=8, mlp_dim=2048,
                 emb_dim=2048):
        super().__init__()
        c96, c256 = channels(96, width_mult), channels(256, width_mult)
        self.features = nn.Sequential(
            nn.Conv2d(1, c96, kernel_size=7, stride=2), nn.BatchNorm2d(c96, track_running_stats=False), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c96, c256, kernel_size=5, stride=2), nn.BatchNorm2d(c256, track_running_stats=False), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c256, c256, kernel_size=3), nn.BatchNorm2d(c256, track_running_stats=False), nn.ReLU(),
            nn.Conv2d(c256, c256, kernel_size=3), nn.BatchNorm2d(c256, track_running_stats=False), nn.ReLU(),
            nn.Conv2d(c256, c256, kernel_size=3), nn.BatchNorm2d(c256, track_running_stats=False), nn.ReLU(),
            nn.MaxPool2d((3, 2)),
        )
        h = ((((n_mels - 7) // 2 + 1) // 2 - 5) // 2 + 1) // 2 - 6
        w = ((((n_frames - 7) // 2 + 1) // 2 - 5) // 2 + 1) // 2 - 6
        h, w = h // 3, w // 2
        assert h >= 1 and w >= 1, f'a ({n_mels}, {n_frames}) mel spectrogram is too small'
        self._head(c256, h, w, dim, depth, heads, mlp_dim, emb_dim)

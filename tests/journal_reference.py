"""An independent transcription of the journal version's encoders (ACM ToMM 2023 VFD), used only by the tests.

Written from the journal's model code as it computes, not from ``models/vit.py`` (nothing is imported from the
project): CLIP's ``VisualTransformer`` pattern for faces and the same pattern on a one-channel mel
(``AuditoryTransformer``). The state-dict names follow the journal's checkpoints (``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.<i>.{attn,ln_1,mlp.c_fc,mlp.c_proj,ln_2}``,
``ln_post``, ``proj``), so weights move between the two with ``load_state_dict(strict=True)``.

It also holds the journal's score (the cosine of the two embeddings), its pre-training loss (InfoNCE with paired
negatives: the voice is the query, its own face the positive key, K faces of other people the negative keys) and its
fine-tuning loss (the real pair's cosine against the cosines of K fake pairs), as the journal's code computes them,
and a checkpoint file in the journal's format.
"""
import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm32(nn.LayerNorm):
    """The journal's LayerNorm: the input is cast to float32, normalised, and cast back."""

    def forward(self, x):
        kind = x.dtype
        out = super().forward(x.type(torch.float32))
        return out.type(kind)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """attn, ln_1, mlp (c_fc, gelu, c_proj), ln_2; sequence-first tensors."""

    def __init__(self, width, n_head):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, n_head)
        self.ln_1 = LayerNorm32(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module('c_fc', nn.Linear(width, width * 4))
        self.mlp.add_module('gelu', QuickGELU())
        self.mlp.add_module('c_proj', nn.Linear(width * 4, width))
        self.ln_2 = LayerNorm32(width)

    def attention(self, x):
        return self.attn(x, x, x, need_weights=False, attn_mask=None)[0]

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Stack(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class Tower(nn.Module):
    """A patch convolution, the class token, positions, ln_pre, the blocks, ln_post of the class token, @ proj."""

    def __init__(self, in_channels, grid_h, grid_w, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=in_channels, out_channels=width, kernel_size=patch_size,
                               stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid_h * grid_w + 1, width))
        self.ln_pre = LayerNorm32(width)
        self.transformer = Stack(width, layers, heads)
        self.ln_post = LayerNorm32(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)                                      # [*, width, grid_h, grid_w]
        x = x.reshape(x.shape[0], x.shape[1], -1)              # [*, width, tokens]
        x = x.permute(0, 2, 1)                                 # [*, tokens, width]
        zeros = torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([self.class_embedding.to(x.dtype) + zeros, x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = x.permute(1, 0, 2)                                 # NLD -> LND
        x = self.transformer(x)
        x = x.permute(1, 0, 2)                                 # LND -> NLD
        x = self.ln_post(x[:, 0, :])
        return x @ self.proj


def VisualTransformer(input_resolution, patch_size, width, layers, heads, output_dim):
    """The face tower: input (B, 3, R, R)."""
    return Tower(3, input_resolution // patch_size, input_resolution // patch_size, patch_size, width, layers, heads,
                 output_dim)


def AuditoryTransformer(input_resolution, patch_size, width, layers, heads, output_dim):
    """The voice tower: input (B, 1, mels, frames), ``input_resolution`` = [mels, frames]."""
    return Tower(1, input_resolution[0] // patch_size, input_resolution[1] // patch_size, patch_size, width, layers,
                 heads, output_dim)


def cosine_score(voice_features, face_features):
    """The journal's test score: both embeddings divided by their norms, then the sum of their products."""
    face_features = face_features / face_features.norm(dim=-1, keepdim=True)
    voice_features = voice_features / voice_features.norm(dim=-1, keepdim=True)
    return torch.sum(voice_features * face_features, dim=1)


def info_nce_paired(query, positive_key, negative_keys, temperature=0.1):
    """InfoNCE with paired negatives: query (N, D), positive_key (N, D), negative_keys (N, M, D)."""
    query = F.normalize(query, dim=-1)
    positive_key = F.normalize(positive_key, dim=-1)
    negative_keys = F.normalize(negative_keys, dim=-1)
    positive_logit = torch.sum(query * positive_key, dim=1, keepdim=True)
    negative_logits = (query.unsqueeze(1) @ negative_keys.transpose(-2, -1)).squeeze(1)
    logits = torch.cat([positive_logit, negative_logits], dim=1)
    labels = torch.zeros(len(logits), dtype=torch.long, device=query.device)
    return F.cross_entropy(logits / temperature, labels)


def fake_pair_nce(voice_real, face_real, voice_fake, face_fake, temperature=0.1):
    """The journal's fine-tuning loss: logits [cos(voice_real, face_real), cos(voice_fake_k, face_fake_k) ...];
    voice_real, face_real (N, D), voice_fake, face_fake (N, K, D)."""
    voice_real, face_real = F.normalize(voice_real, dim=-1), F.normalize(face_real, dim=-1)
    voice_fake, face_fake = F.normalize(voice_fake, dim=-1), F.normalize(face_fake, dim=-1)
    positive = torch.sum(voice_real * face_real, dim=1, keepdim=True)
    negative = torch.sum(voice_fake * face_fake, dim=-1)
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits / temperature, torch.zeros(len(logits), dtype=torch.long))


def save_journal_checkpoint(path, voice, face, epoch=3, module_prefix=True, optimizer=True):
    """A checkpoint as the journal's training scripts save it: one file with the epoch, both towers' state dicts
    (wrapped in DataParallel, so every key starts with ``module.``) and the AdamW state."""
    def state(net):
        return {('module.' if module_prefix else '') + k: v for k, v in net.state_dict().items()}
    content = {'epoch': epoch, 'voice_model_state_dict': state(voice), 'face_model_state_dict': state(face)}
    if optimizer:
        opt = torch.optim.AdamW([{'params': voice.parameters(), 'lr': 5e-6}, {'params': face.parameters(),
                                                                              'lr': 5e-6}],
                                betas=(0.9, 0.98), lr=5e-7, eps=1e-8, weight_decay=0.2)
        loss = sum(p.float().pow(2).sum() for p in [*voice.parameters(), *face.parameters()]) * 1e-6
        loss.backward()
        opt.step()
        opt.zero_grad()
        content['optimizer_state_dict'] = opt.state_dict()
    torch.save(content, path)
    return content

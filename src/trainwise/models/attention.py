"""Multi-head attention on ``F.scaled_dot_product_attention`` and pre-norm transformer encoder/decoder layers.

Written out rather than taken from ``nn.Transformer`` so that rotary positions can be applied to q and k, and so
the fused kernel can be checked against the textbook formula (``reference_attention``) in the tests.

Mask convention (the one SDPA uses for boolean masks): ``True`` = this query may attend to this key. Key padding
masks are the other way round, as in ``nn.MultiheadAttention``: (B, S) bool, ``True`` = padding, ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.positional import RotaryEmbedding


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q Kᵀ / √d + M) V written out: q (B, H, T, d), k and v (B, H, S, d), ``mask`` bool broadcastable to
    (B, H, T, S) with True = attend (M = 0) and False = blocked (M = −∞). Returns (B, H, T, d)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def build_attention_mask(t: int, s: int, causal: bool, key_padding_mask: torch.Tensor | None,
                         device: torch.device) -> torch.Tensor | None:
    """Boolean (B or 1, 1, T, S) mask, True = attend, from a causal flag and a (B, S) key padding mask (True = pad);
    None when nothing is masked. The causal part lets query i see keys j ≤ i."""
    mask = None
    if causal:
        mask = torch.ones(t, s, dtype=torch.bool, device=device).tril()[None, None]  # (1, 1, T, S)
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        mask = keep if mask is None else mask & keep
    return mask


class MultiHeadAttention(nn.Module):
    """(B, T, D) queries attending over (B, S, D) keys/values (the queries themselves for self-attention).

    q, k, v are linear projections split into ``heads`` heads of size D/heads; the heads are computed by SDPA (a fused
    kernel where available) and merged by an output projection. ``rotary`` (self-attention only) rotates q and k by
    their positions before the dot product.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        if heads < 1 or d_model % heads:
            raise TrainwiseError(f"model.d_model={d_model} must be divisible by model.heads={heads} "
                                 f"(each head gets d_model / heads channels)")
        self.d_model, self.heads, self.head_dim, self.dropout = d_model, heads, d_model // heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = rotary

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, H, T, D/H)."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def project(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head q (B, H, T, d) and k, v (B, H, S, d), rotary already applied (what SDPA receives)."""
        kv = x if context is None else context
        q, k, v = self.split_heads(self.q_proj(x)), self.split_heads(self.k_proj(kv)), self.split_heads(self.v_proj(kv))
        if self.rotary is not None and context is None:  # positions only make sense within one sequence
            q, k = self.rotary(q, k)
        return q, k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, causal: bool = False,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.project(x, context)
        t, s = q.shape[-2], k.shape[-2]
        p = self.dropout if self.training else 0.0
        if causal and key_padding_mask is None:  # the kernel's own causal path avoids materialising a mask
            if t != s:
                raise ValueError("causal attention needs as many queries as keys")
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            mask = build_attention_mask(t, s, causal, key_padding_mask, x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, d)
        return self.out_proj(out.transpose(1, 2).flatten(2))  # (B, T, D)


class FeedForward(nn.Sequential):
    """Position-wise D → ff_mult·D → GELU → dropout → D."""

    def __init__(self, d_model: int, ff_mult: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(ff_mult * d_model, d_model))


class TransformerEncoderLayer(nn.Module):
    """Pre-norm: x + Drop(SelfAttn(LN(x))), then x + Drop(FF(LN(x))). Pre-norm keeps an identity path from input to
    output, which trains stably without lr warmup tricks (Xiong et al. 2020). (B, T, D) → (B, T, D)."""

    def __init__(self, d_model: int, heads: int, ff_mult: int, dropout: float,
                 rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, dropout, rotary)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), causal=causal, key_padding_mask=key_padding_mask))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerDecoderLayer(nn.Module):
    """Pre-norm: causal self-attention over the target prefix, cross-attention to the encoder memory, feed-forward.
    x (B, T, D), memory (B, S, D) → (B, T, D)."""

    def __init__(self, d_model: int, heads: int, ff_mult: int, dropout: float,
                 rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads, dropout, rotary)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                memory_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        # Target padding needs no mask: padding sits after EOS and the causal mask already hides later positions.
        x = x + self.drop(self.self_attn(self.norm1(x), causal=True))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory, key_padding_mask=memory_padding_mask))
        return x + self.drop(self.ff(self.norm3(x)))


def check_transformer(d_model: int, heads: int, layers: int, ff_mult: int, dropout: float, max_len: int) -> None:
    """One-line errors for the arguments every transformer model shares."""
    for key, value in (("d_model", d_model), ("heads", heads), ("layers", layers), ("ff_mult", ff_mult),
                       ("max_len", max_len)):
        if value < 1:
            raise TrainwiseError(f"model.{key}={value} must be a positive integer")
    if not 0.0 <= dropout < 1.0:
        raise TrainwiseError(f"model.dropout={dropout} must be in [0, 1)")
    if d_model % heads:
        raise TrainwiseError(f"model.d_model={d_model} must be divisible by model.heads={heads} "
                             f"(each head gets d_model / heads channels)")

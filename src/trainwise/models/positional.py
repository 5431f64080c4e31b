"""Positional encodings for sequence models: sinusoidal, learned, rotary (RoPE) and none.

Self-attention is permutation-equivariant: without positions a transformer cannot tell "A before B" from "B before A".
Sinusoidal and learned encodings are *added* to the token embeddings (B, T, D); rotary rotates the queries and keys
inside attention (``MultiHeadAttention(rotary=...)``), so attention scores depend on relative offsets only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import check_choice

POSITIONALS = ("sinusoidal", "learned", "rotary", "none")


def _check_length(t: int, max_len: int) -> None:
    if t > max_len:
        raise TrainwiseError(f"sequence length {t} exceeds model.max_len={max_len}; set model.max_len={t} or more")


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[:T] with PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D)) (Vaswani et al. 2017).

    The table is a fixed, non-persistent buffer: it is recomputed on construction and never stored in checkpoints.
    """

    pe: torch.Tensor  # buffer (L, D)

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
        freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (⌈D/2⌉,)
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])  # odd D: one cosine column fewer
        self.register_buffer("pe", pe, persistent=False)  # (L, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_length(x.shape[1], self.max_len)
        return x + self.pe[: x.shape[1]].to(x.dtype)  # (B, T, D)


class LearnedPositionalEmbedding(nn.Module):
    """x + E[0..T-1] with a trainable ``nn.Embedding(max_len, D)`` (BERT/GPT-2 style); cannot extrapolate past max_len."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)  # small next to unit-scale token embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_length(x.shape[1], self.max_len)
        return x + self.embedding(torch.arange(x.shape[1], device=x.device))  # (B, T, D) + (T, D)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021) for (B, H, T, Dh) queries and keys.

    Each pair of channels (j, j + Dh/2) is rotated by the angle p·θ_j, θ_j = base^(−2j/Dh), at position p. Because
    rotations compose, ⟨R_p q, R_s k⟩ = ⟨q, R_{s−p} k⟩: scores depend on the offset s − p only. Values are not rotated.
    """

    cos: torch.Tensor  # buffers (L, Dh)
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise TrainwiseError(f"positional=rotary needs an even head size (d_model / heads), got {head_dim}; "
                                 f"change model.d_model or model.heads")
        self.max_len = max_len
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (Dh/2,)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (L, Dh/2)
        angles = torch.cat([angles, angles], dim=1)  # (L, Dh): the same angle for channel j and j + Dh/2
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return torch.cat([-b, a], dim=-1)  # (x_j, x_{j+Dh/2}) → (−x_{j+Dh/2}, x_j)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, Dh) → the same with position p = 0..T−1 applied along T."""
        t = x.shape[-2]
        _check_length(t, self.max_len)
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)  # (T, Dh)
        return x * cos + self._rotate_half(x) * sin

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rotate(q), self.rotate(k)


def additive_positional(kind: str, d_model: int, max_len: int) -> nn.Module:
    """The module added after the token embedding: sinusoidal/learned tables, identity for rotary (applied in
    attention instead) and none."""
    check_choice("positional", kind, POSITIONALS)
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEmbedding(d_model, max_len)
    return nn.Identity()

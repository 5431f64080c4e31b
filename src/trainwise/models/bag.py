"""``embedding_bag``: the bag-of-embeddings text classifier (fastText-style) — the mean of a text's token embeddings,
padding excluded, into a linear (or one-hidden-layer) head. Word order is ignored: the baseline a sequence model has
to beat."""

from __future__ import annotations

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import check_range, token_embedding
from trainwise.models.registry import register


class EmbeddingBag(nn.Module):
    """(B, T) token ids → embeddings (B, T, E) → mean over non-pad positions (B, E) → [Linear → ReLU] → Linear."""

    def __init__(self, vocab_size: int, out_dim: int, embed_dim: int, hidden: int, dropout: float,
                 pad_index: int | None) -> None:
        super().__init__()
        self.pad_index = pad_index
        self.embed = token_embedding(vocab_size, embed_dim, pad_index)
        self.dropout = nn.Dropout(dropout)
        layers: list[nn.Module] = [nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Dropout(dropout)] if hidden else []
        self.head = nn.Sequential(*layers, nn.Linear(hidden or embed_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()  # ids may arrive as floats from generic array pipelines
        h = self.embed(x)  # (B, T, E); pad rows are zero
        if self.pad_index is None:
            z = h.mean(1)
        else:
            valid = (x != self.pad_index).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            z = (h * valid).sum(1) / valid.sum(1).clamp(min=1)
        return self.head(self.dropout(z))  # (B, out_dim)


@register("embedding_bag", "bag of embeddings over token ids: masked mean of embeddings → head (fastText-style "
                           "text baseline)")
def embedding_bag(in_shape: tuple[int, ...], out_dim: int, vocab_size: int = 0, pad_index: int | None = 0,
                  embed_dim: int = 64, hidden: int = 0, dropout: float = 0.0) -> EmbeddingBag:
    """``vocab_size`` is filled in from token data. ``hidden`` > 0 adds one ReLU layer before the output layer."""
    if vocab_size < 2 or len(in_shape) != 1:
        raise TrainwiseError(f"embedding_bag takes (T,) token ids (data.source=text or a token source), got input "
                             f"shape {tuple(in_shape)} with vocab_size={vocab_size}")
    if embed_dim < 1 or hidden < 0:
        raise TrainwiseError(f"model.embed_dim={embed_dim} must be ≥ 1 and model.hidden={hidden} ≥ 0")
    check_range("dropout", dropout, 0.0, 1.0, high_open=True)
    return EmbeddingBag(vocab_size, out_dim, embed_dim, hidden, dropout, pad_index)

"""``transformer``: a pre-norm transformer encoder over token ids or feature sequences, pooled into a prediction."""

from __future__ import annotations

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.attention import TransformerEncoderLayer, check_transformer
from trainwise.models.blocks import check_choice, token_embedding
from trainwise.models.positional import POSITIONALS, RotaryEmbedding, additive_positional
from trainwise.models.registry import register

POOLS = ("mean", "cls", "last")


def sequence_input_kind(in_shape: tuple[int, ...], vocab_size: int) -> int:
    """Validate the input shape against ``vocab_size``; return the feature count F (0 for token ids)."""
    if vocab_size < 0:
        raise TrainwiseError(f"model.vocab_size={vocab_size} must be ≥ 0 (0: float features, > 0: token ids)")
    if vocab_size > 0:
        if len(in_shape) != 1:
            raise TrainwiseError(f"token inputs (model.vocab_size={vocab_size}) must be (T,) id sequences, got "
                                 f"in_shape {tuple(in_shape)}; set model.vocab_size=0 for (T, F) feature sequences")
        return 0
    if len(in_shape) != 2:
        raise TrainwiseError(f"feature sequences must have in_shape (T, F), got {tuple(in_shape)}; "
                             f"for (T,) token ids set model.vocab_size to the vocabulary size")
    return in_shape[1]


class TransformerEncoderModel(nn.Module):
    """(B, T) token ids or (B, T, F) features → embedding (+ positions) → pre-norm encoder layers → final LayerNorm →
    pool over valid positions → dropout → Linear → (B, out_dim).

    Pad tokens (``pad_index``) are masked out of attention and of pooling. ``pool``: ``mean`` over valid positions,
    ``cls`` a learned token prepended at position 0, ``last`` the last valid position (natural with ``causal``).
    """

    def __init__(self, in_features: int, out_dim: int, vocab_size: int, pad_index: int | None,
                 d_model: int, heads: int, layers: int, ff_mult: int, dropout: float, positional: str, pool: str,
                 max_len: int, causal: bool) -> None:
        super().__init__()
        self.tokens = vocab_size > 0
        self.pad_index = pad_index if self.tokens else None
        self.pool, self.causal = pool, causal
        self.embed: nn.Module = (token_embedding(vocab_size, d_model, pad_index) if self.tokens
                                 else nn.Linear(in_features, d_model))
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02) if pool == "cls" else None
        self.pos = additive_positional(positional, d_model, max_len)
        rotary = RotaryEmbedding(d_model // heads, max_len) if positional == "rotary" else None  # shared, no params
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, heads, ff_mult, dropout, rotary)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, out_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-position features (B, T', D) and the padding mask (B, T') (True = pad) or None; T' = T + 1 with cls."""
        pad = None
        if self.tokens:
            x = x.long()  # ids may arrive as floats from generic array pipelines
            pad = x == self.pad_index if self.pad_index is not None else None  # (B, T)
        h = self.embed(x)  # (B, T, D)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], 1)  # (B, T+1, D), cls at position 0
            if pad is not None:
                pad = torch.cat([pad.new_zeros(pad.shape[0], 1), pad], 1)
        h = self.pos(h)
        for layer in self.layers:
            h = layer(h, key_padding_mask=pad, causal=self.causal)
        return self.norm(h), pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, pad = self.encode(x)  # (B, T', D), (B, T') | None
        if self.pool == "cls":
            z = h[:, 0]
        elif self.pool == "mean":
            if pad is None:
                z = h.mean(1)
            else:
                valid = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T', 1)
                z = (h * valid).sum(1) / valid.sum(1).clamp(min=1)
        else:  # last valid position: the largest index that is not padding (works for left or right padding)
            if pad is None:
                z = h[:, -1]
            else:
                idx = (torch.arange(h.shape[1], device=h.device) * (~pad)).argmax(1)  # (B,)
                z = h[torch.arange(h.shape[0], device=h.device), idx]
        return self.head(self.dropout(z))  # (B, out_dim)


@register("transformer", "transformer encoder over token ids (vocab_size>0) or (T, F) features; positional and pool "
                         "selectable")
def transformer(in_shape: tuple[int, ...], out_dim: int, vocab_size: int = 0, pad_index: int | None = 0,
                d_model: int = 64, heads: int = 4, layers: int = 2, ff_mult: int = 4, dropout: float = 0.1,
                positional: str = "sinusoidal", pool: str = "mean", max_len: int = 512,
                causal: bool = False) -> TransformerEncoderModel:
    """``vocab_size`` is filled in from token data; 0 means float features. ``pad_index`` (null: no padding) marks
    pad tokens, which attention and pooling ignore. ``causal``: each position sees only earlier ones (use
    ``pool=last``). ``max_len`` bounds the sequence length (+1 with pool=cls) for the positional tables."""
    features = sequence_input_kind(in_shape, vocab_size)
    check_transformer(d_model, heads, layers, ff_mult, dropout, max_len)
    check_choice("positional", positional, POSITIONALS)
    check_choice("pool", pool, POOLS)
    if causal and pool == "cls":
        raise TrainwiseError("model.causal=true with model.pool=cls: the cls token at position 0 would see only itself; "
                             "use model.pool=last")
    needed = in_shape[0] + (pool == "cls")
    if needed > max_len:
        raise TrainwiseError(f"sequences of length {needed} (incl. cls) exceed model.max_len={max_len}; "
                             f"set model.max_len={needed} or more")
    return TransformerEncoderModel(features, out_dim, vocab_size, pad_index, d_model, heads, layers,
                                   ff_mult, dropout, positional, pool, max_len, causal)

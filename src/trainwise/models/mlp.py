"""``mlp``: a multilayer perceptron for tabular data; categorical code columns go through embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.models.blocks import activation, initialize, norm1d
from trainwise.models.registry import register


class MLP(nn.Module):
    """(B, *in_shape) → flatten → [Linear → norm → act → dropout] × depth → Linear → (B, out_dim).

    When ``cat_cardinalities`` is given, the last ``len(cat_cardinalities)`` input columns are integer category codes
    (stored as floats); each goes through its own ``nn.Embedding`` and the embeddings are concatenated to the
    numeric columns.
    """

    def __init__(self, in_features: int, out_dim: int, hidden: list[int], act: str = "relu", norm: str = "none",
                 dropout: float = 0.0, cat_cardinalities: list[int] | None = None) -> None:
        super().__init__()
        cards = list(cat_cardinalities or [])
        self.num_numeric = in_features - len(cards)
        embeddings = [nn.Embedding(c, min(16, max(2, math.ceil(c ** 0.5) + 1))) for c in cards]
        self.embeddings = nn.ModuleList(embeddings)
        width = self.num_numeric + sum(e.embedding_dim for e in embeddings)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), norm1d(norm, h), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, F)
        if len(self.embeddings):
            codes = x[:, self.num_numeric:].long()  # (B, n_cat)
            embs = [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
            x = torch.cat([x[:, : self.num_numeric], *embs], dim=1)
        return self.head(self.body(x))


@register("mlp", "multilayer perceptron for tabular features (categorical columns through embeddings)")
def mlp(in_shape: tuple[int, ...], out_dim: int, hidden: list[int] = (256, 256), act: str = "relu",  # type: ignore[assignment]
        norm: str = "none", dropout: float = 0.0, init: str = "kaiming",
        cat_cardinalities: list[int] | None = None, bias_init: float = 0.0) -> MLP:
    """``init`` applies to the hidden layers (the head keeps PyTorch's default, which keeps initial logits small).
    ``bias_init`` sets every hidden bias: a large negative value creates dead ReLUs (used by the doctor's suite)."""
    model = MLP(math.prod(in_shape), out_dim, list(hidden), act, norm, dropout, cat_cardinalities)
    initialize(model.body, init, act)
    if bias_init:
        for m in model.body.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, bias_init)
    return model

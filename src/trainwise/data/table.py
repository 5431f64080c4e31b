"""The raw table every data source returns, before splitting and preprocessing (``splits.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Table:
    """Raw features and targets before splitting.

    ``x``: (N, *feature_shape) float32. For CSV data with categorical columns the last ``len(cat_cardinalities)``
    columns hold integer category codes (0 = missing/unseen) stored as floats, so one tensor carries both.
    """

    x: np.ndarray
    y: np.ndarray
    task: str  # classification | regression | multilabel (y: (N, L) 0/1) | seq2seq (y: (N, T) token ids)
    kind: str = "tabular"  # tabular | image | sequence (N, T, F floats) | tokens (N, T int64 ids, not standardised)
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    cat_columns: list[str] = field(default_factory=list)
    cat_categories: list[list[str]] = field(default_factory=list)  # per categorical column, code i+1 -> name
    missing: dict[str, int] = field(default_factory=dict)  # column -> count of missing values found
    description: str = ""
    vocab_size: int = 0  # token data: ids are 0..vocab_size-1

    @property
    def num_numeric(self) -> int:
        return int(np.prod(self.x.shape[1:])) - len(self.cat_columns)

    @property
    def cat_cardinalities(self) -> list[int]:
        return [len(c) + 1 for c in self.cat_categories]  # +1 for the "missing/unseen" code 0

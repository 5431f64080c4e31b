"""Deterministic synthetic tasks for sequence models (no downloads): each is a pure function of its arguments and
seed, named by ``data.source`` with arguments from ``data.options`` (e.g. ``data.options.length=50``).

- ``seq_reverse``: token sequences → the same tokens reversed (seq2seq).
- ``adding``: the adding problem (Hochreiter & Schmidhuber 1997) — (T, 2) inputs of random values and a marker
  channel with two 1s; the target is the sum of the two marked values. Predicting the mean scores MSE 1/6 ≈ 0.167;
  long gaps separate LSTMs from vanilla RNNs.
- ``order``: two marker tokens A and B among filler tokens; the label is whether A comes before B — a task that
  needs positional information (a transformer without it is permutation-invariant and stays at chance).
- ``sine``: windows of a noisy two-frequency series; the target is the next value (forecasting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trainwise.data.table import Table
from trainwise.errors import TrainwiseError

PAD, BOS, EOS, FIRST_SYMBOL = 0, 1, 2, 3  # token ids shared with the seq2seq task and model


def seq_reverse(n: int = 6000, length: int = 10, symbols: int = 12, min_length: int = 4, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    src = np.zeros((n, length), np.int64)  # (N, L) PAD-padded
    tgt = np.zeros((n, length + 1), np.int64)  # (N, L+1): reversed tokens, EOS, PAD
    lengths = rng.integers(min_length, length + 1, n)
    for i, k in enumerate(lengths):
        seq = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + symbols, k)
        src[i, :k] = seq
        tgt[i, :k] = seq[::-1]
        tgt[i, k] = EOS
    return Table(src, tgt, "seq2seq", kind="tokens", vocab_size=FIRST_SYMBOL + symbols,
                 description=f"seq_reverse: {n} sequences of {min_length}–{length} tokens from {symbols} symbols")


def adding(n: int = 5000, length: int = 50, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    values = rng.random((n, length), dtype=np.float32)
    marks = np.zeros((n, length), np.float32)
    half = length // 2
    first, second = rng.integers(0, half, n), rng.integers(half, length, n)  # one mark in each half: long gaps
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    x = np.stack([values, marks], -1)  # (N, T, 2)
    y = (values * marks).sum(1).astype(np.float32)
    return Table(x, y, "regression", kind="sequence", feature_names=["value", "marker"],
                 description=f"adding problem: {n} sequences of length {length} (mean-predictor MSE ≈ 0.167)")


def order(n: int = 4000, length: int = 12, fillers: int = 8, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    a, b = FIRST_SYMBOL + fillers, FIRST_SYMBOL + fillers + 1
    x = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + fillers, (n, length)).astype(np.int64)
    y = np.zeros(n, np.int64)
    for i in range(n):
        i_a, i_b = rng.choice(length, 2, replace=False)
        x[i, i_a], x[i, i_b] = a, b
        y[i] = int(i_a < i_b)
    return Table(x, y, "classification", kind="tokens", vocab_size=b + 1, class_names=["B first", "A first"],
                 description=f"order: {n} sequences of {length} tokens; label = marker A before marker B")


def sine(n: int = 4000, length: int = 32, noise: float = 0.1, seed: int = 0) -> Table:
    """Windows of s(t) = sin(ω₁t + φ₁) + 0.5·sin(ω₂t + φ₂) + noise with random ω, φ per window; target s(T+1)
    without noise. The last-value baseline's MSE is computed on the test split by the presets' results script."""
    rng = np.random.default_rng(seed)
    t = np.arange(length + 1, dtype=np.float64)
    w1, w2 = rng.uniform(0.2, 0.6, (n, 1)), rng.uniform(0.8, 1.6, (n, 1))
    p1, p2 = rng.uniform(0, 2 * np.pi, (n, 1)), rng.uniform(0, 2 * np.pi, (n, 1))
    clean = np.sin(w1 * t + p1) + 0.5 * np.sin(w2 * t + p2)  # (N, T+1)
    x = (clean[:, :length] + noise * rng.standard_normal((n, length)))[..., None].astype(np.float32)  # (N, T, 1)
    y = clean[:, length].astype(np.float32)
    return Table(x, y, "regression", kind="sequence", feature_names=["value"],
                 description=f"sine: {n} windows of length {length}, noise σ={noise}; target = next clean value")


def multilabel(n: int = 2000, features: int = 20, labels: int = 5, seed: int = 0) -> Table:
    """scikit-learn's multi-label generator (a deterministic function of its seed): (N, F) counts, (N, L) 0/1."""
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=n, n_features=features, n_classes=labels, random_state=seed)
    return Table(x.astype(np.float32), y.astype(np.float32), "multilabel", class_names=[str(i) for i in range(labels)],
                 feature_names=[f"f{i}" for i in range(features)],
                 description=f"multilabel: {n} samples, {features} features, {labels} labels")


SYNTHETIC: dict[str, Callable[..., Table]] = {"seq_reverse": seq_reverse, "adding": adding, "order": order,
                                              "sine": sine, "multilabel": multilabel}


def load_synthetic(name: str, options: dict[str, Any]) -> Table:
    fn = SYNTHETIC[name]
    import inspect

    params = inspect.signature(fn).parameters
    bad = [k for k in options if k not in params]
    if bad:
        raise TrainwiseError(f"data.options.{bad[0]} is not an option of data.source={name}; its options are: "
                             f"{', '.join(params)}")
    try:
        return fn(**options)
    except (TypeError, ValueError) as exc:
        raise TrainwiseError(f"bad data.options for {name}: {exc}") from None

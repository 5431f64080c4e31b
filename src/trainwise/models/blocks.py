"""Building blocks shared by the models: activations, normalisation layers, initialisation, stochastic depth,
argument checks and token embeddings (attention and positional encodings live in ``attention.py`` and
``positional.py``)."""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
from torch import nn

from trainwise.errors import TrainwiseError, suggest

LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default negative slope; the init gain must use the same value

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "layer", "group", "instance", "none")
INITS = ("kaiming", "xavier", "orthogonal", "default")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise TrainwiseError(f"unknown activation '{name}'{suggest(name, ACTIVATIONS)}; "
                             f"use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def norm1d(kind: str, features: int) -> nn.Module:
    """Normalisation over features of (B, F) activations."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "group":
        return nn.GroupNorm(_groups(features), features)
    if kind == "instance":  # no spatial axis in (B, F): instance norm degenerates; layer norm is the analogue
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise TrainwiseError(f"unknown norm '{kind}'{suggest(kind, NORMS)}; use one of {', '.join(NORMS)}")


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation of (B, C, H, W) activations; the kinds differ only in the axes of their statistics."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # statistics over (C, H, W) per sample
        return nn.GroupNorm(1, channels)
    if kind == "group":
        return nn.GroupNorm(_groups(channels), channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)  # one group per channel = instance norm with affine params
    if kind == "none":
        return nn.Identity()
    raise TrainwiseError(f"unknown norm '{kind}'{suggest(kind, NORMS)}; use one of {', '.join(NORMS)}")


def _groups(c: int) -> int:
    for g in (32, 16, 8, 4, 2):
        if c % g == 0 and c // g >= 2:
            return g
    return 1


def gain_for(act: str) -> float:
    """Gain of ``nn.init`` for the activation (relu: √2, leaky_relu: √(2/(1+0.01²)), tanh: 5/3, sigmoid: 1).

    gelu and silu are not known to ``nn.init.calculate_gain``; they behave like ReLU for positive inputs and get √2.
    """
    if act in ("gelu", "silu"):
        return math.sqrt(2.0)
    if act == "leaky_relu":
        return nn.init.calculate_gain("leaky_relu", LEAKY_SLOPE)
    if act in ("relu", "tanh", "sigmoid"):
        return nn.init.calculate_gain(cast(Literal["relu", "tanh", "sigmoid"], act))
    return nn.init.calculate_gain("linear")


@torch.no_grad()
def initialize(module: nn.Module, scheme: str, act: str) -> None:
    """Apply ``scheme`` to every Linear/Conv weight (biases to zero); ``default`` keeps PyTorch's init."""
    if scheme not in INITS:
        raise TrainwiseError(f"unknown init '{scheme}'{suggest(scheme, INITS)}; use one of {', '.join(INITS)}")
    if scheme == "default":
        return
    gain = gain_for(act)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
            if scheme == "kaiming" and act == "leaky_relu":  # the slope enters the gain: √(2 / (1 + slope²))
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            elif scheme == "kaiming" and act in ("relu", "gelu", "silu"):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif scheme == "kaiming":  # He init assumes a ReLU-like unit; saturating ones get Xavier with their gain
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero a residual branch for a random subset of samples and
    scale the survivors by 1/(1−p) so the expectation is unchanged; identity in eval or when p = 0.

    Works on any (B, ...) tensor: one Bernoulli draw per sample, broadcast over the other axes.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise TrainwiseError(f"model.drop_path={p} must be in [0, 1); 0 disables stochastic depth")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], *(1,) * (x.ndim - 1), device=x.device) >= self.p  # (B, 1, ..., 1)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def check_choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Raise a one-line TrainwiseError (with a suggestion) unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise TrainwiseError(f"unknown model.{key} '{value}'{suggest(value, choices)}; use one of {', '.join(choices)}")
    return value


def check_range(key: str, value: float, low: float, high: float | None = None, *, high_open: bool = False,
                hint: str = "") -> None:
    """Raise unless low ≤ value ≤ high (or < high when ``high_open``); ``hint`` says what the value means."""
    ok = value >= low and (high is None or (value < high if high_open else value <= high))
    if not ok:
        bound = f"≥ {low}" if high is None else f"in [{low}, {high}{')' if high_open else ']'}"
        raise TrainwiseError(f"model.{key}={value} must be {bound}{'; ' + hint if hint else ''}")


def check_dims(key: str, dims: list[int]) -> None:
    """Layer widths: every entry a positive integer."""
    if any(d < 1 for d in dims):
        raise TrainwiseError(f"model.{key}={list(dims)} must hold positive layer widths, e.g. [128, 64]")


def token_embedding(vocab_size: int, dim: int, pad_index: int | None) -> nn.Embedding:
    """(B, T) token ids → (B, T, dim). The ``pad_index`` row starts at zero and ``nn.Embedding`` never accumulates a
    gradient into it, so padding contributes nothing and stays zero through training (weight decay of 0 is 0)."""
    if vocab_size < 2:
        raise TrainwiseError(f"model.vocab_size={vocab_size} must be ≥ 2 for token inputs (ids are 0..vocab_size-1)")
    if pad_index is not None and not 0 <= pad_index < vocab_size:
        raise TrainwiseError(f"model.pad_index={pad_index} must be in [0, {vocab_size}) (vocab_size={vocab_size}), "
                             f"or null when the data has no padding")
    return nn.Embedding(vocab_size, dim, padding_idx=pad_index)

"""Building blocks shared by the models: activations, normalisation layers and initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.errors import TrainwiseError, suggest

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
    """Gain of ``nn.init`` for the activation (relu: √2, tanh: 5/3, others as torch computes them)."""
    name = {"leaky_relu": "leaky_relu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}.get(act, "linear")
    if act in ("gelu", "silu"):
        return math.sqrt(2.0)  # close to ReLU's for these ReLU-like activations
    return nn.init.calculate_gain(name, 0.01 if name == "leaky_relu" else None)


@torch.no_grad()
def initialize(module: nn.Module, scheme: str, act: str) -> None:
    """Apply ``scheme`` to every Linear/Conv weight (biases to zero); ``default`` keeps PyTorch's init."""
    if scheme not in INITS:
        raise TrainwiseError(f"unknown init '{scheme}'{suggest(scheme, INITS)}; use one of {', '.join(INITS)}")
    if scheme == "default":
        return
    gain = gain_for(act)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "kaiming" and act in ("relu", "leaky_relu", "gelu", "silu"):
                nn.init.kaiming_normal_(m.weight, nonlinearity="leaky_relu" if act == "leaky_relu" else "relu")
            elif scheme == "kaiming":  # He init assumes a ReLU-like unit; saturating ones get Xavier with their gain
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

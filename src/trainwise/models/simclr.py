"""``simclr``: an encoder plus projection head for contrastive self-supervised learning (Chen et al. 2020).

The contrastive loss is applied to the projections; the features *before* the head (``encode``) are what transfer
to downstream tasks (the paper's linear-probe result), so they are the ones the probe reads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import activation, check_choice, check_dims, initialize, norm1d
from trainwise.models.cnn import CNN
from trainwise.models.mlp import MLP
from trainwise.models.registry import register

BACKBONES = ("auto", "cnn", "mlp")


class _GreyToChannels(nn.Module):
    """(B, H, W) or (B, 1, H, W) → (B, 1, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, *x.shape[-2:])


class SimCLR(nn.Module):
    """x → ``encoder`` → features h (B, feature_dim) → ``projection`` (Linear → ReLU → Linear) → z (B, proj_dim)."""

    def __init__(self, encoder: nn.Module, feature_dim: int, proj_dim: int) -> None:
        super().__init__()
        self.encoder, self.feature_dim = encoder, feature_dim
        self.projection = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(),
                                        nn.Linear(feature_dim, proj_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(x))  # (B, proj_dim)


@register("simclr", "contrastive encoder (cnn for images, mlp for vectors) + projection head; encode(x) → features")
def simclr(in_shape: tuple[int, ...], out_dim: int, backbone: str = "auto", width: int = 32, stages: int = 2,
           blocks: int = 1, hidden: list[int] = (256,), feature_dim: int = 128,  # type: ignore[assignment]
           proj_dim: int = 64, norm: str = "batch", act: str = "relu", init: str = "kaiming") -> SimCLR:
    """``backbone``: auto (cnn for (C, H, W) / (H, W) images, else mlp); cnn uses ``width``, ``stages``, ``blocks``
    (the ``cnn`` model with its head mapping pooled features to ``feature_dim``); mlp uses ``hidden``. ``out_dim`` is
    ignored (training is label-free)."""
    hidden = list(hidden)
    check_choice("backbone", backbone, BACKBONES)
    check_dims("hidden", hidden)
    for key, value in (("width", width), ("stages", stages), ("blocks", blocks), ("feature_dim", feature_dim),
                       ("proj_dim", proj_dim)):
        if value < 1:
            raise TrainwiseError(f"model.{key}={value} must be a positive integer")
    activation(act)
    norm1d(norm, 2)  # validates the name
    if backbone == "auto":
        backbone = "cnn" if len(in_shape) in (2, 3) else "mlp"
    if backbone == "cnn":
        if len(in_shape) not in (2, 3):
            raise TrainwiseError(f"model.backbone=cnn needs (C, H, W) or (H, W) images, got in_shape "
                                 f"{tuple(in_shape)}; use model.backbone=mlp")
        channels = in_shape[0] if len(in_shape) == 3 else 1
        encoder: nn.Module = CNN(channels, feature_dim, width, stages, blocks, norm, act, 0.0, 0.0)
        if len(in_shape) == 2:  # (H, W) grey images: add the channel axis
            encoder = nn.Sequential(_GreyToChannels(), encoder)
    else:
        encoder = MLP(math.prod(in_shape), feature_dim, hidden, act, norm)
    initialize(encoder, init, act)
    return SimCLR(encoder, feature_dim, proj_dim)

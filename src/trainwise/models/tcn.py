"""``tcn``: a temporal convolutional network (Bai, Kolter & Koltun 2018) for (T, F) time series."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import activation, check_range, initialize
from trainwise.models.registry import register


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only by (k − 1)·dilation: output t sees inputs ≤ t, and the length is kept."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)))  # (B, C, T) → (B, C', T)


class TemporalBlock(nn.Module):
    """[causal dilated conv → act → dropout] × 2 plus a residual (1×1 conv when the width changes), then act.

    No normalisation: layer/instance/group norm would pool statistics over time and leak the future into the past.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, act: str, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(CausalConv1d(c_in, c_out, kernel_size, dilation), activation(act), nn.Dropout(dropout),
                                 CausalConv1d(c_out, c_out, kernel_size, dilation), activation(act), nn.Dropout(dropout))
        self.shortcut = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.net(x) + self.shortcut(x))  # (B, C_out, T)


class TCN(nn.Module):
    """(B, T, F) → channels-first → temporal blocks with dilation 1, 2, 4, … → features at the last step → Linear.

    The receptive field is 1 + 2·(k − 1)·(2^blocks − 1) steps (``receptive_field``); choose ``blocks`` so it covers
    the history the target depends on.
    """

    def __init__(self, in_features: int, out_dim: int, channels: int, kernel_size: int, blocks: int, act: str,
                 dropout: float) -> None:
        super().__init__()
        layers, c = [], in_features
        for i in range(blocks):
            layers.append(TemporalBlock(c, channels, kernel_size, 2**i, act, dropout))
            c = channels
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(channels, out_dim)
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**blocks - 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) → (B, C, T); the column at t depends only on x[:, :t+1]."""
        return self.blocks(x.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[:, :, -1])  # (B, out_dim)


@register("tcn", "temporal conv net for (T, F) time series: causal dilated residual conv blocks, last-step output")
def tcn(in_shape: tuple[int, ...], out_dim: int, channels: int = 64, kernel_size: int = 3, blocks: int = 4,
        act: str = "relu", dropout: float = 0.1, init: str = "kaiming") -> TCN:
    """Dilation doubles per block (1, 2, 4, …); each block holds two causal convolutions."""
    if len(in_shape) != 2:
        raise TrainwiseError(f"tcn needs (T, F) feature sequences, got in_shape {tuple(in_shape)}")
    for key, value in (("channels", channels), ("blocks", blocks)):
        if value < 1:
            raise TrainwiseError(f"model.{key}={value} must be a positive integer")
    if kernel_size < 2:
        raise TrainwiseError(f"model.kernel_size={kernel_size} must be ≥ 2 (a kernel of 1 never looks back in time)")
    check_range("dropout", dropout, 0.0, 1.0, high_open=True)
    activation(act)  # validates the name before any layer is built
    model = TCN(in_shape[1], out_dim, channels, kernel_size, blocks, act, dropout)
    initialize(model.blocks, init, act)
    return model

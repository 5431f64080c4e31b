"""``cnn``: a small ResNet-style network for (C, H, W) images."""

from __future__ import annotations

import torch
from torch import nn

from trainwise.models.blocks import DropPath, activation, initialize, norm2d
from trainwise.models.registry import register


class ResidualBlock(nn.Module):
    """conv3×3 → norm → act → conv3×3 → norm, plus a (projected) shortcut, then act. Optional stochastic depth."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, act: str, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=norm == "none")
        self.n1 = norm2d(norm, c_out)
        self.a1 = activation(act)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=norm == "none")
        self.n2 = norm2d(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), norm2d(norm, c_out))
        self.a2 = activation(act)
        self.drop_path = DropPath(drop_path)  # stochastic depth on the residual branch, per sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop_path(self.n2(self.conv2(self.a1(self.n1(self.conv1(x))))))  # (B, C_out, H', W')
        return self.a2(h + self.shortcut(x))


class CNN(nn.Module):
    """(B, C, H, W) → stem → stages of residual blocks (each later stage halves H, W and doubles width) → pool → head."""

    def __init__(self, in_channels: int, out_dim: int, width: int, stages: int, blocks: int, norm: str, act: str,
                 dropout: float, drop_path: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=norm == "none"), norm2d(norm, width),
                                  activation(act))
        layers, c = [], width
        for s in range(stages):
            c_out = width * 2**s
            for b in range(blocks):
                layers.append(ResidualBlock(c, c_out, 2 if (s > 0 and b == 0) else 1, norm, act, drop_path))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(c, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))  # (B, C', H', W')
        return self.head(self.dropout(self.pool(h).flatten(1)))


@register("cnn", "small ResNet-style CNN for images; width, stages, blocks and norm configurable")
def cnn(in_shape: tuple[int, ...], out_dim: int, width: int = 32, stages: int = 2, blocks: int = 1,
        norm: str = "batch", act: str = "relu", dropout: float = 0.0, drop_path: float = 0.0,
        init: str = "kaiming") -> CNN:
    if len(in_shape) == 2:  # (H, W) grey images
        in_shape = (1, *in_shape)
    model = CNN(in_shape[0], out_dim, width, stages, blocks, norm, act, dropout, drop_path)
    initialize(model, init, act)
    return model

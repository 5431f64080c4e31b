"""Convolutions: Conv2d blocks and the ResNet-style cnn model (models/cnn.py)."""

from __future__ import annotations

import _common as c
import torch
from torch import nn

import trainwise


def main() -> None:
    c.setup()
    model = trainwise.create_model("cnn", in_shape=(3, 32, 32), out_dim=10, width=64, norm="none")
    conv = model.stem[0]  # trainwise's stem: Conv2d(3, 64, 3, padding=1) (with a bias when norm is none)
    c.say(f"stem conv: {conv}; the whole cnn has {sum(p.numel() for p in model.parameters()):,} parameters")
    x = torch.randn(8, 3, 32, 32)
    y = conv(x)
    n = sum(p.numel() for p in conv.parameters())
    c.check("Conv2d(3,64,3,padding=1) maps (8,3,32,32)→(8,64,32,32) with 1,792 parameters",
            tuple(y.shape) == (8, 64, 32, 32) and n == 1792,
            f"output {tuple(y.shape)}, {n:,} parameters = 64·3·3·3 weights + 64 biases")

    dense = nn.Linear(3 * 32 * 32, 64 * 32 * 32, device="meta")  # meta: shapes only, no 800 MB allocation
    nd = sum(p.numel() for p in dense.parameters())
    c.check("a dense layer doing the same mapping needs ≈603 M parameters", abs(nd - 603e6) / 603e6 < 0.1,
            f"Linear(3·32·32 → 64·32·32) has {nd:,} ≈ {nd / 1e6:.0f} M parameters (3,072 × 65,536 + 65,536), "
            f"{nd / n:,.0f}× the conv's; the claimed 603 M is {603e6 / nd:.1f}× the true count")

    # Equivariance: shifting the input shifts the output; compare away from the zero-padded border.
    k = 3
    shifted_in = torch.roll(x, shifts=(k, k), dims=(2, 3))
    with torch.no_grad():
        a = conv(shifted_in)[..., k + 1:-1, k + 1:-1]
        b = torch.roll(conv(x), shifts=(k, k), dims=(2, 3))[..., k + 1:-1, k + 1:-1]
        full = (conv(shifted_in) - torch.roll(conv(x), shifts=(k, k), dims=(2, 3))).abs().max().item()
    diff = (a - b).abs().max().item()
    c.check("convolution is translation-equivariant", diff < 1e-5,
            f"conv(shift(x)) = shift(conv(x)) for a {k}-pixel shift within {diff:.1e} away from the border; "
            f"including the zero-padded border they differ by up to {full:.2f}")


if __name__ == "__main__":
    main()

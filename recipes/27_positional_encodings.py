"""Positional encodings: sinusoidal, learned and rotary (models/positional.py)."""

from __future__ import annotations

import _common as c
import torch

from trainwise.models.attention import TransformerEncoderLayer
from trainwise.models.positional import SinusoidalPositionalEncoding


def main() -> None:
    c.setup()
    d, t = 32, 12
    layer = TransformerEncoderLayer(d, heads=4, ff_mult=2, dropout=0.0).eval()
    pe = SinusoidalPositionalEncoding(d, max_len=int(c.pick(2048, 512)))
    x = torch.randn(2, t, d)
    perm = torch.randperm(t)
    with torch.no_grad():
        no_pos = (layer(x[:, perm]) - layer(x)[:, perm]).abs().max().item()
        with_pos = (layer(pe(x[:, perm])) - layer(pe(x))[:, perm]).abs().max().item()
    c.check("attention without positions is permutation-equivariant", no_pos < 1e-5 and with_pos > 1e-2,
            f"trainwise encoder layer, tokens permuted: f(Px) vs P f(x) differ by {no_pos:.1e} without positions "
            f"(order is invisible), by {with_pos:.2f} once sinusoidal encodings are added")

    table = pe.pe  # (L, D)
    dist = torch.cdist(table, table)
    dist.fill_diagonal_(float("inf"))
    closest = dist.min().item()
    c.check("each sinusoidal position is unique", closest > 1e-3,
            f"all {len(table)} rows of the d={d} table are distinct: smallest distance between two positions "
            f"{closest:.3f} (nearest pair {divmod(int(dist.argmin()), len(table))})")

    k = 5
    a, b = table[:-k].double(), table[k:].double()  # PE(pos) and PE(pos+k) for every pos
    omega = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-torch.log(torch.tensor(10000.0)) / d))
    rot = torch.zeros(d, d, dtype=torch.float64)  # one 2×2 rotation by k·ω_i per (sin, cos) pair, independent of pos
    cos, sin = torch.cos(k * omega), torch.sin(k * omega)
    rot[0::2, 0::2] = torch.diag(cos)  # sin((p+k)ω) = sin(pω)cos(kω) + cos(pω)sin(kω)
    rot[1::2, 0::2] = torch.diag(sin)
    rot[0::2, 1::2] = torch.diag(-sin)  # cos((p+k)ω) = cos(pω)cos(kω) − sin(pω)sin(kω)
    rot[1::2, 1::2] = torch.diag(cos)
    resid = (a @ rot - b).abs().max().item()
    c.check("PE(pos+k) is a linear function of PE(pos)", resid < 1e-3,
            f"for k={k}, one fixed block-diagonal rotation matrix (angle k·ω_i per sin/cos pair, no dependence on "
            f"pos) maps PE(pos) to PE(pos+k) for all {len(a)} positions of trainwise's table: max residual "
            f"{resid:.1e} (float32 table)")


if __name__ == "__main__":
    main()

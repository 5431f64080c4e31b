"""Dropout: inverted dropout (model.dropout in every model), active in train mode, identity in eval mode."""

from __future__ import annotations

import _common as c
import torch
from torch import nn

import trainwise


def main() -> None:
    c.setup()
    model = trainwise.create_model("mlp", in_shape=(20,), out_dim=3, hidden=[64], dropout=0.5)
    drop = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    c.say(f"model.dropout=0.5 puts {drop} after each hidden activation")

    drop.train()
    ones = torch.ones(int(c.pick(1_000_000, 100_000)))
    out = drop(ones)
    values = sorted(set(out.unique().tolist()))
    kept = (out > 0).float().mean().item()
    c.check("with p=0.5 survivors are scaled to 2.0 in train mode", values == [0.0, 2.0],
            f"Dropout(0.5) on {ones.numel():,} ones gives values {values}, {kept:.4f} of them kept")

    x = torch.randn(16, 20)
    model.train()
    a, b = model(x), model(x)
    model.eval()
    e1, e2 = model(x), model(x)
    c.check("two train-mode forwards differ", not torch.equal(a, b),
            f"max |difference| between two train-mode forwards of the same batch {(a - b).abs().max():.3f}")
    c.check("eval-mode forwards are identical", torch.equal(e1, e2),
            f"two eval-mode forwards are bitwise equal: {torch.equal(e1, e2)} (dropout is the identity in eval)")

    mean = out.mean().item()
    h = torch.relu(torch.randn(4096, 64)) + 0.5
    drop.train()
    avg = torch.stack([drop(h) for _ in range(int(c.pick(400, 100)))]).mean(0)
    rel = ((avg.mean() - h.mean()) / h.mean()).abs().item()
    c.check("expected activation is preserved", abs(mean - 1) < 0.01 and rel < 0.01,
            f"mean of Dropout(0.5)(ones) = {mean:.4f}; averaged over draws, mean activation {avg.mean():.4f} vs "
            f"{h.mean():.4f} without dropout ({rel:.2%} apart)")


if __name__ == "__main__":
    main()

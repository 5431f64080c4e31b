"""Choosing layer types: the model zoo per modality (mlp, cnn, rnn, transformer, …; `trainwise models`)."""

from __future__ import annotations

import _common as c
import torch
from torch import nn

import trainwise


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def main() -> None:
    c.setup()
    conv = nn.Conv2d(1, 32, 3, padding=1)  # the first layer of trainwise's cnn on digits (width 32)
    dense = nn.Linear(8 * 8, 32 * 8 * 8)  # a dense layer with the same (1,8,8) → (32,8,8) shape
    x = torch.randn(4, 1, 8, 8)
    same_shape = conv(x).shape == dense(x.flatten(1)).view(4, 32, 8, 8).shape
    c.say(f"conv 3×3 (1→32 channels) on 8×8: {count(conv):,} parameters; dense 64→2048: {count(dense):,}")

    xs, ys = c.digits()
    epochs = int(c.pick(10, 2))
    res = {}
    for name, kwargs, shape, data in (("cnn", {"width": 16}, (1, 8, 8), (xs.reshape(-1, 1, 8, 8), ys)),
                                      ("mlp", {"hidden": [256, 256]}, (64,), (xs, ys))):
        torch.manual_seed(0)
        model = trainwise.create_model(name, in_shape=shape, out_dim=10, **kwargs)
        acc = trainwise.fit(model, data, epochs=epochs, run_dir=None).summary["test/accuracy"]
        res[name] = (count(model), acc)
        c.say(f"{name}: {count(model):,} parameters, test accuracy {acc:.3f} after {epochs} epochs")
    c.check("a conv layer uses far fewer parameters than a dense layer on images",
            same_shape and count(dense) > 100 * count(conv),
            f"same (1,8,8)→(32,8,8) mapping: conv {count(conv):,} parameters vs dense {count(dense):,} "
            f"({count(dense) / count(conv):,.0f}×, weight sharing across positions); whole models on digits: cnn "
            f"{res['cnn'][0]:,} parameters → {res['cnn'][1]:.3f}, mlp {res['mlp'][0]:,} → {res['mlp'][1]:.3f}")


if __name__ == "__main__":
    main()

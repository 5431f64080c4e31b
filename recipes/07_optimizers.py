"""Optimizers: sgd, momentum, nesterov, rmsprop, adam, adamw with decay only on weights (train/optim.py)."""

from __future__ import annotations

import copy

import _common as c
import torch
import torch.nn.functional as F

import trainwise
from trainwise.train.optim import build_optimizer


def train(model_name: str, shape: tuple, opt: str, lr: float, epochs: int, data: tuple,
          seed: int) -> trainwise.FitResult:
    """One fit; ``seed`` sets the initial weights, the train/val/test split and the batch order."""
    torch.manual_seed(seed)
    model = trainwise.create_model(model_name, in_shape=shape, out_dim=10, **({"width": 16} if model_name == "cnn"
                                                                              else {"hidden": [128, 128]}))
    return trainwise.fit(model, data, epochs=epochs, run_dir=None, record_step_losses=True, seed=seed,
                         **{"optim.name": opt, "optim.lr": lr, "optim.momentum": 0.9})


def main() -> None:
    c.setup()
    x, y = c.digits()

    # One step from identical weights and gradients: Adam with L2 in the gradient vs AdamW's decoupled decay.
    torch.manual_seed(0)
    base = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[32])
    xb, yb = torch.tensor(x[:128]), torch.tensor(y[:128])
    after = {}
    for name, wd in (("adam", 0.1), ("adamw", 0.1), ("adam", 0.0)):
        m = copy.deepcopy(base)
        opt = build_optimizer(m, name, lr=1e-2, weight_decay=wd)
        F.cross_entropy(m(xb), yb).backward()
        opt.step()
        after[name, wd] = m.body[0].weight.detach().clone()
    w0 = base.body[0].weight.detach()
    gap = (after["adam", 0.1] - after["adamw", 0.1]).abs().max().item()
    decoupled = after["adam", 0.0] - 1e-2 * 0.1 * w0  # AdamW = plain Adam step, then w −= lr·wd·w
    c.check("AdamW (decoupled decay) differs from Adam+L2", gap > 1e-4
            and torch.allclose(after["adamw", 0.1], decoupled, atol=1e-6),
            f"one step, lr 1e-2, wd 0.1, same gradients: first-layer weights differ by up to {gap:.2e}; AdamW equals "
            f"the undecayed Adam step minus lr·wd·w (max diff {(after['adamw', 0.1] - decoupled).abs().max():.1e}), "
            f"while Adam's L2 term is divided by √v like the gradient")

    # Early convergence: each optimizer at its best lr from a small grid (per seed), mean training loss over the
    # first steps, compared seed by seed.
    epochs, steps = 2, 30  # digits trains 20 steps per epoch at batch 64
    grids = {"adam": [3e-3, 1e-2], "sgd": [0.1, 0.3]} if c.fast() else {"adam": [1e-3, 3e-3, 1e-2],
                                                                       "sgd": [0.03, 0.1, 0.3]}
    early: dict[str, list[float]] = {opt: [] for opt in grids}
    best_lrs: dict[str, list[float]] = {opt: [] for opt in grids}
    for seed in c.seeds():
        for opt, lrs in grids.items():
            scores = {lr: sum(r.step_losses[:steps]) / steps
                      for lr in lrs for r in [train("mlp", (64,), opt, lr, epochs, (x, y), seed)]}
            best = min(scores, key=scores.get)
            early[opt].append(scores[best])
            best_lrs[opt].append(best)
            c.say(f"seed {seed} {opt:<5} mean loss over the first {steps} steps by lr: "
                  + ", ".join(f"{k:g}: {v:.3f}" for k, v in scores.items()))
    c.compare("Adam converges faster early", early["adam"], early["sgd"], names=("Adam", "SGD"), higher=False,
              fmt=".3f", what="mean training loss over the first 30 steps",
              context=f"digits MLP 64→128→128→10, batch 64, each optimizer at its best lr per seed (Adam from "
                      f"{grids['adam']}, chosen {sorted(set(best_lrs['adam']))}; SGD momentum 0.9 from {grids['sgd']}, "
                      f"chosen {sorted(set(best_lrs['sgd']))})")

    # Generalisation on images: digits CNN, lr picked on validation accuracy, judged on test accuracy, per seed.
    epochs = int(c.pick(8, 2))
    grids = {"adam": [1e-3, 3e-3], "sgd": [0.03, 0.1]} if c.fast() else {"adam": [3e-4, 1e-3, 3e-3],
                                                                        "sgd": [0.01, 0.03, 0.1]}
    test: dict[str, list[float]] = {opt: [] for opt in grids}
    for seed in c.seeds():
        for opt, lrs in grids.items():
            results = {lr: train("cnn", (1, 8, 8), opt, lr, epochs, (x.reshape(-1, 1, 8, 8), y), seed).summary
                       for lr in lrs}
            best = max(results, key=lambda lr: results[lr]["val/accuracy"])
            test[opt].append(results[best]["test/accuracy"])
            c.say(f"seed {seed} {opt:<5} CNN val accuracy by lr: "
                  + ", ".join(f"{lr:g}: {r['val/accuracy']:.3f}" for lr, r in results.items())
                  + f"; test accuracy at lr {best:g}: {results[best]['test/accuracy']:.4f}")
    c.compare("SGD+momentum may generalise better on images", test["sgd"], test["adam"], names=("SGD", "Adam"),
              what="test accuracy",
              context=f"digits CNN (width 16), {epochs} epochs, 360 test images per seed, lr chosen on validation "
                      f"per seed (SGD momentum 0.9 from {grids['sgd']}, Adam from {grids['adam']})")

if __name__ == "__main__":
    main()

"""Optimizers: sgd, momentum, nesterov, rmsprop, adam, adamw with decay only on weights (train/optim.py)."""

from __future__ import annotations

import copy

import _common as c
import torch
import torch.nn.functional as F

import trainwise
from trainwise.train.optim import build_optimizer


def train(model_name: str, shape: tuple, opt: str, lr: float, epochs: int, data: tuple) -> trainwise.FitResult:
    torch.manual_seed(0)
    model = trainwise.create_model(model_name, in_shape=shape, out_dim=10, **({"width": 16} if model_name == "cnn"
                                                                              else {"hidden": [128, 128]}))
    return trainwise.fit(model, data, epochs=epochs, run_dir=None, record_step_losses=True,
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

    # Early convergence: each optimizer at its best lr from a small grid, mean training loss over the first steps.
    epochs, steps = 2, 30  # digits trains 20 steps per epoch at batch 64
    grids = {"adam": [3e-3, 1e-2], "sgd": [0.1, 0.3]} if c.fast() else {"adam": [1e-3, 3e-3, 1e-2],
                                                                       "sgd": [0.03, 0.1, 0.3]}
    early = {}
    for opt, lrs in grids.items():
        scores = {lr: sum(r.step_losses[:steps]) / steps
                  for lr in lrs for r in [train("mlp", (64,), opt, lr, epochs, (x, y))]}
        best = min(scores, key=scores.get)
        early[opt] = (scores[best], best)
        by_lr = ", ".join(f"{k:g}: {v:.3f}" for k, v in scores.items())
        c.say(f"{opt:<5} mean loss over the first {steps} steps by lr: {by_lr}")
    c.check("Adam converges faster early", early["adam"][0] < early["sgd"][0],
            f"digits MLP, each at its best lr: mean training loss over the first {steps} steps {early['adam'][0]:.3f} "
            f"(Adam, lr {early['adam'][1]:g}) vs {early['sgd'][0]:.3f} (SGD momentum 0.9, lr {early['sgd'][1]:g})")

    # Generalisation on images: digits CNN, lr picked on validation accuracy, judged on test accuracy.
    epochs = int(c.pick(8, 2))
    grids = {"adam": [1e-3, 3e-3], "sgd": [0.03, 0.1]} if c.fast() else {"adam": [3e-4, 1e-3, 3e-3],
                                                                        "sgd": [0.01, 0.03, 0.1]}
    chosen = {}
    for opt, lrs in grids.items():
        results = {lr: train("cnn", (1, 8, 8), opt, lr, epochs, (x.reshape(-1, 1, 8, 8), y)).summary for lr in lrs}
        best = max(results, key=lambda lr: results[lr]["val/accuracy"])
        chosen[opt] = (results[best]["test/accuracy"], best)
        by_lr = ", ".join(f"{lr:g}: {r['val/accuracy']:.3f}" for lr, r in results.items())
        c.say(f"{opt:<5} CNN val accuracy by lr: {by_lr}")
    c.check("SGD+momentum may generalise better on images", chosen["sgd"][0] >= chosen["adam"][0],
            f"digits CNN, {epochs} epochs, lr chosen on validation: test accuracy {chosen['sgd'][0]:.4f} (SGD "
            f"momentum, lr {chosen['sgd'][1]:g}) vs {chosen['adam'][0]:.4f} (Adam, lr {chosen['adam'][1]:g}); one "
            f"seed, 360 test images")


if __name__ == "__main__":
    main()

"""Batch normalisation: batch statistics in train mode, running statistics in eval mode (blocks.norm1d/norm2d)."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.models.blocks import norm1d, norm2d


def lr_sweep(norm: str, lrs: list[float], epochs: int, data: tuple, seed: int) -> list[float]:
    """Validation accuracy of a digits MLP trained by trainwise.fit with plain SGD at each lr (``seed``: initial
    weights, split and batch order)."""
    accs = []
    for lr in lrs:
        torch.manual_seed(seed)
        model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[128] * 4, norm=norm)
        result = trainwise.fit(model, data, epochs=epochs, run_dir=None, seed=seed,
                               **{"optim.name": "sgd", "optim.lr": lr, "optim.momentum": 0.0})
        accs.append(result.summary["val/accuracy"])
    return accs


def main() -> None:
    c.setup()
    features = 6
    bn = norm1d("batch", features)
    x = 3 + 2 * torch.randn(64, features)
    bn.train()
    out_train = bn(x)
    batch_norm = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps)
    bn.eval()
    out_eval = bn(x)
    running = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    d_train, d_eval = (out_train - batch_norm).abs().max().item(), (out_eval - running).abs().max().item()
    c.say(f"after one train batch: running_mean {[round(v, 3) for v in bn.running_mean.tolist()]} "
          f"(momentum {bn.momentum}: 0.9·0 + 0.1·batch mean)")
    c.check("train mode uses batch statistics, eval mode running statistics", d_train < 1e-5 and d_eval < 1e-5
            and (out_train - out_eval).abs().max().item() > 0.1,
            f"train output = (x−batch mean)/batch std within {d_train:.1e}; eval output = (x−running_mean)/"
            f"√running_var within {d_eval:.1e}; the two differ by up to {(out_train - out_eval).abs().max():.2f}")

    bn2 = norm2d("batch", 16)
    bn2(torch.randn(8, 16, 5, 5))
    c.check("running_mean has one entry per feature", tuple(bn.running_mean.shape) == (features,)
            and tuple(bn2.running_mean.shape) == (16,),
            f"BatchNorm1d({features}) running_mean shape {tuple(bn.running_mean.shape)}; BatchNorm2d(16) on "
            f"(8,16,5,5): {tuple(bn2.running_mean.shape)} (one per channel, pooled over batch and space)")

    data = c.digits()
    lrs = [0.03, 0.3, 3.0] if c.fast() else [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    epochs = int(c.pick(10, 2))
    # Sensitivity to the lr, per seed: the mean val accuracy over a log-spaced lr grid (the area under the
    # accuracy-vs-log-lr curve: a wider usable range scores higher), and how many grid lrs reach a fixed 90% bar.
    area: dict[str, list[float]] = {"batch": [], "none": []}
    usable: dict[str, list[int]] = {"batch": [], "none": []}
    for seed in c.seeds():
        for norm in area:
            accs = lr_sweep(norm, lrs, epochs, data, seed)
            area[norm].append(sum(accs) / len(accs))
            usable[norm].append(sum(a >= 0.9 for a in accs))
            c.say(f"seed {seed} {'BN' if norm == 'batch' else 'no norm':<7} val accuracy by lr: "
                  + ", ".join(f"{lr:g}: {a:.3f}" for lr, a in zip(lrs, accs)))
    c.compare("BN makes training less sensitive to the learning rate", area["batch"], area["none"],
              names=("BN", "no norm"), what="mean val accuracy over the lr grid",
              context=f"digits MLP 4×128, plain SGD, {epochs} epochs, lrs {lrs}; lrs reaching 90% val accuracy per "
                      f"seed: BN {usable['batch']}, no norm {usable['none']}")

if __name__ == "__main__":
    main()

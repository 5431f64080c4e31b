"""Hyperparameter search: what `trainwise tune` searches (tune.space: loguniform lr, width, dropout, batch size)."""

from __future__ import annotations

import math
import random

import _common as c
import numpy as np
import torch

import trainwise


def trial(params: dict, data: tuple) -> float:
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[params["width"]],
                                   dropout=params["dropout"])
    return trainwise.fit(model, data, epochs=3, run_dir=None,
                         **{"optim.lr": params["lr"], "data.batch_size": params["batch"]}).summary["val/accuracy"]


def explained(values: list, scores: np.ndarray, bins: int = 4) -> float:
    """Share of the score variance explained by one parameter alone (between-bin variance over quantile bins)."""
    v = np.asarray(values, dtype=float)  # quantile bins: the same for lr and log(lr)
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    groups = np.digitize(v, edges)
    means = np.array([scores[groups == g].mean() for g in groups])
    return float(means.var() / scores.var())


def main() -> None:
    c.setup()
    data = c.digits()
    rng = random.Random(0)
    n = int(c.pick(32, 12))
    trials = [{"lr": 10 ** rng.uniform(-5, 0), "width": rng.choice([32, 64, 128, 256]),
               "dropout": rng.uniform(0, 0.5), "batch": rng.choice([32, 64, 128])} for _ in range(n)]
    scores = np.array([trial(p, data) for p in trials])
    share = {k: explained([p[k] for p in trials], scores) for k in trials[0]}
    c.say(f"{n} random trials (fit's default optimizer, 3 epochs): val accuracy {scores.min():.3f}–{scores.max():.3f}")
    c.say("variance explained by each parameter alone: " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))
    top = max(share, key=share.get)
    c.check("learning rate matters most", top == "lr",
            f"digits MLP, {n} random trials over lr ∈ [1e-5, 1] (log), width, dropout, batch size: share of val "
            f"accuracy variance explained by each alone — " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))

    good = [p["lr"] for p, s in zip(trials, scores) if s >= scores.max() - 0.02]
    lo, hi = min(good), max(good)
    draws = 10000
    u = np.random.default_rng(0).uniform(1e-5, 1, draws)
    lu = 10 ** np.random.default_rng(0).uniform(-5, 0, draws)
    in_u, in_lu = ((u >= lo) & (u <= hi)).mean(), ((lu >= lo) & (lu <= hi)).mean()
    c.check("sample it log-uniformly", in_lu > in_u,
            f"the good lrs found (within 2 points of the best) span {lo:.1e}–{hi:.1e} "
            f"({math.log10(hi / lo):.1f} decades); of {draws:,} draws over [1e-5, 1], {in_u:.1%} of uniform and "
            f"{in_lu:.1%} of log-uniform ones land there")


if __name__ == "__main__":
    main()

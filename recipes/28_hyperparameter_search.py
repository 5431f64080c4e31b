"""Hyperparameter search: what `trainwise tune` searches (tune.space: loguniform lr, width, dropout, batch size)."""

from __future__ import annotations

import math
import random

import _common as c
import numpy as np
import torch

import trainwise


def trial(params: dict, data: tuple, seed: int) -> float:
    """Val accuracy of one 3-epoch fit (fit's default optimizer); ``seed``: initial weights, split, batch order."""
    torch.manual_seed(seed)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[params["width"]],
                                   dropout=params["dropout"])
    return trainwise.fit(model, data, epochs=3, run_dir=None, seed=seed,
                         **{"optim.lr": params["lr"], "data.batch_size": params["batch"]}).summary["val/accuracy"]


def explained(values: list, scores: np.ndarray, bins: int = 4) -> float:
    """Share of the score variance explained by one parameter alone (between-bin variance over quantile bins)."""
    v = np.asarray(values, dtype=float)  # quantile bins: the same for lr and log(lr)
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    groups = np.digitize(v, edges)
    means = np.array([scores[groups == g].mean() for g in groups])
    return float(means.var() / scores.var())


def hit_chance(lo: float, hi: float, low: float, high: float, trials: int) -> tuple[float, float]:
    """Chance that a random search of ``trials`` lr draws over [low, high] lands at least once in the good region
    [lo, hi]: (uniform sampling, log-uniform sampling)."""
    a, b = max(lo, low), min(hi, high)
    if a >= b:
        return 0.0, 0.0
    p_u = (b - a) / (high - low)
    p_log = math.log(b / a) / math.log(high / low)
    return 1 - (1 - p_u) ** trials, 1 - (1 - p_log) ** trials


def main() -> None:
    c.setup()
    data = c.digits()
    n = int(c.pick(32, 12))
    lead: list[float] = []
    runner_up: list[float] = []
    for seed in c.seeds():
        rng = random.Random(seed)
        trials = [{"lr": 10 ** rng.uniform(-5, 0), "width": rng.choice([32, 64, 128, 256]),
                   "dropout": rng.uniform(0, 0.5), "batch": rng.choice([32, 64, 128])} for _ in range(n)]
        scores = np.array([trial(p, data, seed) for p in trials])
        share = {k: explained([p[k] for p in trials], scores) for k in trials[0]}
        c.say(f"seed {seed}: {n} random trials, val accuracy {scores.min():.3f}–{scores.max():.3f}; variance explained "
              "by each parameter alone: " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))
        lead.append(share["lr"])
        runner_up.append(max(v for k, v in share.items() if k != "lr"))
    c.compare("learning rate matters most", lead, runner_up, names=("lr", "the next parameter"), fmt=".2f",
              what="share of val accuracy variance explained alone:",
              context=f"digits MLP, 3 epochs, {n} random trials per seed over lr ∈ [1e-5, 1] (log), width, dropout, "
                      f"batch size")

    # Log-uniform vs uniform lr sampling. The accuracy-vs-lr curve is measured on a log grid per seed; its good region
    # (within 2 points of the best) is where a search must land. Where that region sits inside the search range
    # decides which sampler wins (uniform puts 90% of its draws in the top decade), so the claim is judged over
    # ranges of the same width that put it near the top, the middle and the bottom: the chance that a 10-trial
    # search lands in it at least once, averaged over the ranges.
    exps = np.arange(-6, 1.01, 1.0 if c.fast() else 0.5)  # lr = 10^e, from 1e-6 to 10
    ranges = [(1e-6, 1e-1), (1e-5, 1.0), (1e-4, 10.0)]
    draws = 10
    uni: list[float] = []
    log: list[float] = []
    for seed in c.seeds():
        accs = np.array([trial({"lr": 10.0 ** e, "width": 128, "dropout": 0.0, "batch": 64}, data, seed)
                         for e in exps])
        good = 10.0 ** exps[accs >= accs.max() - 0.02]
        lo, hi = float(good.min()), float(good.max())
        chances = [hit_chance(lo, hi, low, high, draws) for low, high in ranges]
        uni.append(float(np.mean([u for u, _ in chances])))
        log.append(float(np.mean([g for _, g in chances])))
        c.say(f"seed {seed}: good lrs {lo:.1e}–{hi:.1e} ({math.log10(hi / lo):.1f} decades); chance a {draws}-trial "
              "search hits them, uniform / log-uniform: " + ", ".join(
                  f"[{low:g}, {high:g}] {u:.2f} / {g:.2f}" for (low, high), (u, g) in zip(ranges, chances)))
    c.compare("sample it log-uniformly", log, uni, names=("log-uniform", "uniform"), fmt=".3f",
              what=f"chance that {draws} draws hit the good lrs, averaged over the ranges,",
              context=f"digits MLP (128 wide, batch 64), 3 epochs; good lrs = within 2 points of the best val "
                      f"accuracy on a grid of {len(exps)} lrs 1e-6…10 per seed; search ranges of 5 decades "
                      f"{', '.join(f'[{lo:g}, {hi:g}]' for lo, hi in ranges)} (good region near the top, middle, "
                      f"bottom); on a range whose top decade holds the good lrs, uniform sampling wins")

if __name__ == "__main__":
    main()

"""``trainwise lr-find``: the learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's lr_find).

Train the config's model from its initialisation while the lr grows exponentially from ``start_lr`` to ``end_lr``,
one optimizer step per batch, and watch the loss. It is flat while the lr is too small to matter, falls once the lr
is useful, and blows up once it is too large. The suggestion is the lr where the (smoothed) loss falls fastest per
decade of lr — large enough to learn quickly, still well below the blow-up.

Data, model, optimizer (with its weight decay, betas, per-group lrs), gradient clipping, precision and the step
itself are the training run's own (``build.load_data``, ``build.build_model``, ``optimizer_from_config``, ``Stepper``):
a suggestion measured on a different step would not transfer. Augmentation, mixup and the config's lr schedule are
left out on purpose: the sweep *is* the schedule, and random input changes would only add noise to the curve.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from trainwise.data.loaders import loader_input, make_loader
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import write_json
from trainwise.runner import setup
from trainwise.safety import check_creatable
from trainwise.tasks import make_task
from trainwise.train.optim import optimizer_from_config
from trainwise.train.precision import autocast, grad_scaler
from trainwise.train.schedule import Schedule
from trainwise.train.step import Stepper

MIN_POINTS = 8  # recorded steps below which a steepest-slope estimate means nothing
HALF_WINDOW_DECADES = 0.25  # the slope is measured across ±0.25 decade of lr, not between adjacent steps


def _rule(smooth: float, skip: int) -> str:
    return (f"lr at the steepest negative slope of the smoothed loss vs log10(lr) (slope across "
            f"±{HALF_WINDOW_DECADES} decade; exponential smoothing beta={smooth}, bias-corrected), searched from "
            f"step {skip + 1} to the loss minimum")


def _suggest(lrs: list[float], losses: list[float], smooth: float) -> tuple[float, float, str]:
    """(suggested lr, lr at the smoothed-loss minimum, rule). Raises when the sweep is too short to tell."""
    n = len(losses)
    if n < MIN_POINTS:
        raise TrainwiseError(f"the lr sweep recorded only {n} step(s) (at least {MIN_POINTS} are needed to suggest an "
                             "lr); give more --steps or a lower --start-lr, since the loss diverged early")
    i_min = int(np.argmin(losses))
    # The first points average very few batches (bias correction divides by a small 1 - beta^t), so their slope is
    # mostly noise: skip the first tenth. Past the minimum the loss only climbs, so search up to it.
    skip = max(1, n // 10)
    if i_min - skip < 2:
        raise TrainwiseError(f"the smoothed loss was lowest at step {i_min + 1} of {n} (lr {lrs[i_min]:.3g}): it never "
                             "fell over the sweep, so no lr can be suggested; lower --start-lr or check the model "
                             "and data ('trainwise doctor overfit-batch')")
    x = np.log10(np.asarray(lrs[:i_min + 1]))
    y = np.asarray(losses[:i_min + 1])
    # Adjacent steps are ~0.08 decade apart: their difference is dominated by batch noise on small data sets, which
    # put the "steepest" point in the flat region. A difference across ±0.25 decade measures the trend instead.
    step_decades = (math.log10(lrs[-1]) - math.log10(lrs[0])) / max(1, n - 1)
    h = max(1, round(HALF_WINDOW_DECADES / step_decades)) if step_decades > 0 else 1
    slopes = []
    for j in range(skip, i_min + 1):
        a, b = max(0, j - h), min(i_min, j + h)
        slopes.append((y[b] - y[a]) / (x[b] - x[a]) if b > a else 0.0)
    i = skip + int(np.argmin(slopes))
    return float(lrs[i]), float(lrs[i_min]), _rule(smooth, skip)


def _plot(lrs: list[float], raw: list[float], losses: list[float], suggested: float, min_loss_lr: float,
          path: Path) -> None:
    from matplotlib.figure import Figure  # Figure, not pyplot: no global backend or figure state

    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    ax.plot(lrs, raw, color="0.75", lw=0.8, label="loss (per step)")
    ax.plot(lrs, losses, color="C0", lw=1.8, label="smoothed loss")
    s_loss = float(np.interp(math.log10(suggested), np.log10(lrs), losses))
    ax.axvline(suggested, color="C3", ls="--", lw=1)
    ax.plot([suggested], [s_loss], "o", color="C3", label=f"suggested {suggested:.2g} (steepest descent)")
    ax.axvline(min_loss_lr / 10, color="C2", ls=":", lw=1, label=f"min-loss lr / 10 = {min_loss_lr / 10:.2g}")
    ax.set_xscale("log")
    # A diverging tail would squash the useful part of the curve: cap the view just above the starting loss.
    lo, hi = min(min(losses), min(raw)), max(losses[0], raw[0])
    ax.set_ylim(lo - 0.05 * (hi - lo + 1e-12), hi + 0.25 * (hi - lo + 1e-12))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("lr range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})


def lr_find(cfg: DictConfig, out_dir: Path, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            smooth: float = 0.98, diverge: float = 4.0) -> dict[str, Any]:
    """Run the lr range test for ``cfg`` and write ``lr_find.png`` and ``lr_find.json`` into ``out_dir``.

    Returns ``{"suggested_lr", "rule", "min_loss_lr", "min_loss_lr_div10", "lrs", "losses", "raw_losses",
    "stopped", "plot", ...}``: ``losses`` are the smoothed losses at each recorded step's lr, ``min_loss_lr`` the lr
    at their minimum (``min_loss_lr_div10`` the common alternative suggestion). The sweep stops early once the
    smoothed loss exceeds ``diverge`` × its minimum or the loss becomes non-finite.
    """
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise TrainwiseError(f"the lr sweep needs 0 < start_lr < end_lr (got {start_lr:g} and {end_lr:g})")
    if steps < MIN_POINTS:
        raise TrainwiseError(f"--steps {steps} is too short to suggest an lr; use at least {MIN_POINTS} (100 is usual)")
    if not 0 <= smooth < 1:
        raise TrainwiseError(f"smooth must be in [0, 1) (got {smooth:g})")
    if diverge <= 1:
        raise TrainwiseError(f"diverge must be > 1 (got {diverge:g}): it is a multiple of the minimum loss")
    out = check_creatable(out_dir, "--out")  # below a file: refused now, not once the sweep is done
    if out.exists() and not out.is_dir():
        raise TrainwiseError(f"--out '{out}' exists and is not a directory")

    if cfg.paradigm.name != "supervised":  # its loss-vs-lr / loss→0 readings assume a supervised loss
        raise TrainwiseError(f"lr-find supports supervised configs; this one is paradigm.name={cfg.paradigm.name}")
    # Exactly runner.train's construction, so the sweep starts from the run's own initialisation and data order.
    splits, model, device, precision = setup(cfg)
    d, t, o = cfg.data, cfg.train, cfg.optim
    task = make_task(splits.task, splits.num_classes, t.label_smoothing, splits.preprocess.y_mean,
                     splits.preprocess.y_std)
    loader = make_loader(loader_input(splits.train), d.batch_size, shuffle=True, drop_last=d.drop_last,
                         seed=cfg.seed, device=device)
    optimizer = optimizer_from_config(model, cfg.optim)
    # The factor multiplies each group's configured lr, so discriminative group lrs keep their ratio to optim.lr
    # while the base lr sweeps start_lr → end_lr geometrically over `steps` optimizer steps.
    growth = (end_lr / start_lr) ** (1.0 / (steps - 1))

    def base_lr(step: int) -> float:
        return start_lr * growth ** step

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: base_lr(step) / o.lr)
    stepper = Stepper(model, optimizer, Schedule(sched, "step"), grad_scaler(precision, device), t.grad_clip, None)

    k = t.accumulate  # one optimizer step = k micro-batches, weighted like the loop's (same effective batch)

    def batches() -> Any:
        epoch = 0
        while True:  # cycle: a small dataset has fewer batches than the sweep has steps
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    stream = batches()
    lrs: list[float] = []
    raw: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    stopped = "completed"
    for step in range(steps):
        group = [next(stream) for _ in range(k)]
        total = sum(x.shape[0] for x, _ in group)
        loss_sum = 0.0
        for x, y in group:
            with autocast(precision, device):
                loss = task.loss(model(x), y)
            w = x.shape[0] / total
            stepper.backward(loss * w if k > 1 else loss)
            loss_sum += float(loss.detach()) * w  # a host sync per step: the sweep needs every loss anyway
        if not math.isfinite(loss_sum):
            stepper.discard()
            stopped = "non_finite"
            break
        lr = base_lr(step)
        stepper.step()
        avg = smooth * avg + (1 - smooth) * loss_sum
        smoothed = avg / (1 - smooth ** (step + 1))  # bias correction: avg starts at 0, not at the first loss
        lrs.append(lr)
        raw.append(loss_sum)
        losses.append(smoothed)
        best = min(best, smoothed)
        if not math.isfinite(smoothed):
            stopped = "non_finite"
            break
        if step > 0 and smoothed > diverge * best:
            stopped = "diverged"
            break

    suggested, min_loss_lr, rule = _suggest(lrs, losses, smooth)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "lr_find.png"
    _plot(lrs, raw, losses, suggested, min_loss_lr, plot)
    result: dict[str, Any] = {
        "suggested_lr": suggested, "rule": rule, "min_loss_lr": min_loss_lr, "min_loss_lr_div10": min_loss_lr / 10,
        "lrs": lrs, "losses": losses, "raw_losses": raw, "stopped": stopped, "steps_run": len(lrs),
        "start_lr": start_lr, "end_lr": end_lr, "steps": steps, "smooth": smooth, "diverge": diverge,
        "optimizer": o.name, "batch_size": d.batch_size, "accumulate": k, "config": cfg.name, "plot": str(plot),
    }
    write_json(out / "lr_find.json", result)
    return result

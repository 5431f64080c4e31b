"""Learning-rate schedules and the granularity at which each must be stepped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch.optim import lr_scheduler


@dataclass
class Schedule:
    """A scheduler plus when to step it: ``step`` (every optimizer step), ``epoch``, or ``metric`` (plateau)."""

    scheduler: lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau | None
    every: str  # step | epoch | metric | never

    def after_step(self) -> None:
        if self.every == "step":  # a scheduler stepped without a metric (never ReduceLROnPlateau)
            cast(lr_scheduler.LRScheduler, self.scheduler).step()

    def after_epoch(self, metric: float | None = None) -> None:
        if self.every == "epoch":
            cast(lr_scheduler.LRScheduler, self.scheduler).step()
        elif self.every == "metric" and metric is not None and math.isfinite(metric):
            cast(lr_scheduler.ReduceLROnPlateau, self.scheduler).step(metric)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def build_schedule(opt: torch.optim.Optimizer, name: str, total_steps: int, steps_per_epoch: int, *,
                   warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0, step_size: int = 10,
                   gamma: float = 0.1, factor: float = 0.5, patience: int = 3, cycle_epochs: int = 4,
                   base_lr_ratio: float = 0.1, mode: Literal["min", "max"] = "min") -> Schedule:
    """``total_steps`` counts optimizer steps (after accumulation)."""
    total_steps = max(1, total_steps)
    if name == "constant":
        return Schedule(None, "never")
    if name == "step":
        return Schedule(lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma), "epoch")
    if name in ("cosine", "warmup_cosine"):
        warm = int(total_steps * warmup_fraction) if name == "warmup_cosine" else 0

        def factor_at(step: int) -> float:
            if step < warm:
                return (step + 1) / warm  # linear warmup from lr/warm to lr
            t = min(1.0, (step - warm) / max(1, total_steps - warm))
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        return Schedule(lr_scheduler.LambdaLR(opt, factor_at), "step")
    if name == "onecycle":
        max_lrs = [g["lr"] for g in opt.param_groups]
        return Schedule(lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps + 1), "step")
    if name == "plateau":
        return Schedule(lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=factor, patience=patience), "metric")
    if name == "cyclic":
        max_lrs = [g["lr"] for g in opt.param_groups]
        return Schedule(lr_scheduler.CyclicLR(opt, base_lr=[m * base_lr_ratio for m in max_lrs], max_lr=max_lrs,
                                              step_size_up=max(1, cycle_epochs * steps_per_epoch),
                                              cycle_momentum=False), "step")
    raise ValueError(f"unknown schedule {name}")


def schedule_from_config(opt: torch.optim.Optimizer, s: Any, total_steps: int, steps_per_epoch: int,
                         mode: Literal["min", "max"] = "min") -> Schedule:
    """The schedule the config's ``schedule`` section describes; ``mode`` is the monitored metric's direction
    (plateau)."""
    return build_schedule(opt, s.name, total_steps, steps_per_epoch, warmup_fraction=s.warmup_fraction,
                          min_lr_ratio=s.min_lr_ratio, step_size=s.step_size, gamma=s.gamma, factor=s.factor,
                          patience=s.patience, cycle_epochs=s.cycle_epochs, base_lr_ratio=s.base_lr_ratio, mode=mode)

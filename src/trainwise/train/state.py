"""The loop's own mutable state: positions, on-device accumulators, best-weights tracking, fault counters.

Everything here (with the modules, optimizer, scheduler, scaler and RNG streams) goes into a checkpoint, which is
what makes a resumed run continue exactly where the interrupted one stopped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from trainwise.errors import TrainingInterrupted  # noqa: F401  (re-exported)


@dataclass
class LoopState:
    epoch: int = 0  # current epoch (0-based)
    pos: int = 0  # batches of this epoch already consumed
    pos_at_start: int = 0
    global_step: int = 0  # optimizer steps applied
    loss_buf: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (steps,) micro-batch losses, device
    valid: list[bool] = field(default_factory=list)  # per micro-batch: False if its group was skipped (non-finite)
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))
    log_start: int = 0  # first micro-batch of this epoch not yet in a train log event
    log_carry: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # unlogged loss sum from past epochs
    log_carry_n: int = 0
    best_value: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_ckpt: str = ""  # name of the checkpoint written at the best epoch (kept when pruning)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "completed"
    bad_steps: int = 0  # non-finite steps skipped, in total
    consecutive_bad: int = 0
    skip: set[tuple[int, int]] = field(default_factory=set)  # (epoch, batch) positions to skip after a rollback
    rollbacks: int = 0
    lr_scale: float = 1.0
    wall_before: float = 0.0  # training seconds spent before the last checkpoint
    log_offset: int | None = None  # bytes of metrics.jsonl covered by the restored checkpoint
    monitor_offset: int | None = None  # likewise for monitors.jsonl
    resumed_from: str | None = None
    # DDP: an in-place all-reduce (sum) over ranks, so logged train means cover every rank's shard. Not checkpointed.
    reducer: Any = None

    def new_epoch(self, device: torch.device, steps: int) -> None:
        self.loss_buf = torch.zeros(steps, device=device)
        self.valid = [True] * steps
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.log_carry = self.log_carry.to(device)  # spans epochs: a log interval need not align with epochs
        self.log_start = 0
        self.pos_at_start = 0

    def take_log_mean(self, end: int) -> float:
        """Mean loss of the (valid) micro-batches since the last train log event, then start a new interval."""
        n = self.log_carry_n + sum(self.valid[self.log_start:end])
        total = self.log_carry + self.loss_buf[self.log_start:end].sum()
        self.log_start, self.log_carry_n = end, 0
        self.log_carry = torch.zeros_like(self.log_carry)
        if self.reducer is not None:  # unweighted by batch size, like the single-process mean of micro-batch losses
            total, n = self.reducer(torch.stack([total, total.new_tensor(n)])).tolist()
            return total / max(1, n)
        return (total / max(1, n)).item()

    def carry_log(self, steps: int) -> None:
        """End of epoch: the unlogged tail of this epoch's losses joins the next log interval."""
        self.log_carry = self.log_carry + self.loss_buf[self.log_start:steps].sum()
        self.log_carry_n += sum(self.valid[self.log_start:steps])
        self.log_start = steps

    def plain(self) -> dict[str, Any]:
        """JSON-able part (tensors travel separately)."""
        return {"epoch": self.epoch, "pos": self.pos, "global_step": self.global_step, "valid": self.valid,
                "log_start": self.log_start, "log_carry_n": self.log_carry_n, "best_value": self.best_value, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "best_ckpt": self.best_ckpt, "history": self.history,
                "stopped": self.stopped, "bad_steps": self.bad_steps, "consecutive_bad": self.consecutive_bad,
                "skip": sorted(self.skip), "rollbacks": self.rollbacks, "lr_scale": self.lr_scale,
                "wall_before": self.wall_before, "has_best": self.best_state is not None}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"acc.loss_buf": self.loss_buf, "acc.correct": self.correct, "acc.log_carry": self.log_carry}
        if self.best_state is not None:
            out.update({f"best.{k}": v for k, v in self.best_state.items()})
        return out

    def load(self, plain: dict[str, Any], tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        for key in ("epoch", "pos", "global_step", "valid", "log_start", "log_carry_n", "best_value", "best_epoch",
                    "bad_epochs",
                    "best_ckpt", "history", "stopped", "bad_steps", "consecutive_bad", "rollbacks", "lr_scale",
                    "wall_before"):
            setattr(self, key, plain[key])
        self.skip = {tuple(p) for p in plain["skip"]}
        self.pos_at_start = self.pos
        self.loss_buf = tensors["acc.loss_buf"].to(device)
        self.correct = tensors["acc.correct"].to(device)
        self.log_carry = tensors["acc.log_carry"].to(device)
        best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
        self.best_state = best if plain["has_best"] else None


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks at step boundaries (a second signal acts as usual)."""

    def __init__(self) -> None:
        self.signum = 0

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum:  # second signal: give up gracefully waiting
            raise KeyboardInterrupt
        self.signum = signum

    @contextmanager
    def installed(self, enabled: bool) -> Iterator[StopFlag]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

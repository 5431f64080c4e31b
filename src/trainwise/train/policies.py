"""The loop's decisions, each a small object with its own state and tests: when a checkpoint is due, what to do
about a non-finite step, when the monitored metric has stopped improving, and why training ends.

They hold no tensors and do no I/O, so each can be tested without a training run (tests/test_policies.py). What
must survive a restart lives in :class:`~trainwise.train.state.LoopState` (checkpointed); these objects read and
write it there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from trainwise.train.state import LoopState, StopFlag

# Why a run ended (summary.json "stopped"; the checkpointed LoopState.stopped).
COMPLETED, EARLY_STOPPING, NON_FINITE, CALLBACK = "completed", "early_stopping", "non_finite_loss", "callback"


@dataclass
class CheckpointSchedule:
    """When the loop writes a checkpoint (``checkpoint.every_steps`` / ``every_seconds`` / ``every_epoch`` /
    ``epoch_min_seconds``). ``clock`` is injectable for tests.

    Under DDP (``shared_clock``) the ranks' clocks differ, so a time-based checkpoint inside an epoch is decided
    together at log steps (:meth:`agree`) and only that agreement is read per step.
    """

    every_steps: int = 0
    every_seconds: float = 0.0
    every_epoch: bool = True
    epoch_min_seconds: float = 0.0
    shared_clock: bool = False
    clock: Callable[[], float] = time.monotonic
    last: float = field(init=False)
    agreed: bool = field(init=False, default=False)  # DDP: a time-based checkpoint all ranks agreed on

    def __post_init__(self) -> None:
        self.last = self.clock()

    def seconds_due(self) -> bool:
        return bool(self.every_seconds) and self.clock() - self.last >= self.every_seconds

    def due_in_epoch(self, global_step: int) -> bool:
        """After an optimizer step that does not end the epoch (the epoch end decides for itself)."""
        if self.every_steps and global_step % self.every_steps == 0:
            return True
        return self.agreed if self.shared_clock else self.seconds_due()

    def due_at_epoch_end(self) -> bool:
        """Every epoch end, unless ``epoch_min_seconds`` have not passed since the last checkpoint (small epochs)."""
        return self.every_epoch and (self.epoch_min_seconds <= 0 or self.clock() - self.last >= self.epoch_min_seconds)

    def agree(self, due: bool) -> None:
        """DDP: the decision the ranks reached together (rank 0's clock) at a log step."""
        self.agreed = due

    def saved(self) -> None:
        self.last, self.agreed = self.clock(), False


@dataclass
class NonFiniteGuard:
    """``faults.nonfinite=skip``: an accumulation group whose loss or gradients are not finite is skipped (no
    update, excluded from the epoch's averages, remembered so a replay skips it too); after ``max_bad`` such groups
    in a row the loop rolls back to the newest checkpoint with the lr times ``faults.lr_factor``, at most
    ``max_rollbacks`` times, and then stops (``non_finite_loss``)."""

    st: LoopState
    max_bad: int
    max_rollbacks: int
    active: bool = True  # False with faults.nonfinite=stop: no per-step check (a host sync on GPUs)

    def bad_group(self, epoch: int, start: int, end: int) -> Literal["skip", "rollback"]:
        """Record the skipped group of micro-batches ``start..end-1`` (the last one, ``end-1``, is the one that
        completed the group and revealed it); ``rollback`` when ``max_bad`` groups in a row were bad."""
        st = self.st
        st.bad_steps += 1
        st.consecutive_bad += 1
        st.skip.add((epoch, end - 1))
        st.loss_buf[start:end] = 0.0  # a skipped group counts in no average
        st.valid[start:end] = [False] * (end - start)
        return "rollback" if st.consecutive_bad >= self.max_bad else "skip"

    def may_roll_back(self) -> bool:
        return self.st.rollbacks < self.max_rollbacks

    def good_step(self) -> None:
        self.st.consecutive_bad = 0


@dataclass
class EarlyStopping:
    """Best-weights selection and patience on the monitored metric (``train.monitor``, ``train.patience``).
    Its state (best value and epoch, epochs without improvement) is the checkpointed LoopState's."""

    st: LoopState
    lower_better: bool
    patience: int
    enabled: bool  # train.early_stopping, and only with a validation split

    def update(self, value: float, epoch: int) -> bool:
        """Record the metric of ``epoch``; True when it improved on the best so far (ties do not)."""
        st = self.st
        if value < st.best_value if self.lower_better else value > st.best_value:
            st.best_value, st.best_epoch, st.bad_epochs = value, epoch, 0
            return True
        st.bad_epochs += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.enabled and self.st.bad_epochs >= self.patience


class Stopping:
    """Every way training ends before ``train.epochs``, read in one place.

    * a signal (SIGINT/SIGTERM): the loop checkpoints and raises ``TrainingInterrupted`` — the run is resumable;
    * a reason recorded in the checkpointed ``LoopState.stopped``: ``early_stopping``, ``non_finite_loss`` or
      ``callback`` (an observer returned True) — the run ends normally (best weights, test split, files).

    Under DDP every rank must stop at the same step: ``signal`` is then the flag the ranks agreed on (updated only at
    log steps and epoch ends, which sync anyway), while ``raw`` is this process's own handler's flag.
    """

    def __init__(self, st: LoopState, distributed: bool) -> None:
        self.st = st
        self.raw = StopFlag()  # set by this process's signal handler
        self._agreed = StopFlag() if distributed else self.raw
        self.callback_asked = False  # set by an observer between epoch ends

    @property
    def signal(self) -> int:
        return self._agreed.signum

    def agree(self, signum: float) -> None:
        self._agreed.signum = int(signum)

    def request(self, reason: str) -> None:
        self.st.stopped = reason

    def callback_reason(self) -> None:
        """At an epoch end: an observer's request becomes the reason, unless another one was recorded already."""
        if self.callback_asked and self.st.stopped == COMPLETED:
            self.st.stopped = CALLBACK

    @property
    def ended(self) -> bool:
        """Leave the epoch loop now (after this epoch's bookkeeping)."""
        return bool(self.signal) or self.st.stopped != COMPLETED

"""The loop's policies as small objects (train/policies.py): each decision is checked here without a training run."""

from __future__ import annotations

import math

import pytest
import torch

from trainwise.train.policies import (
    CALLBACK,
    COMPLETED,
    EARLY_STOPPING,
    NON_FINITE,
    CheckpointSchedule,
    EarlyStopping,
    NonFiniteGuard,
    Stopping,
)
from trainwise.train.state import LoopState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ---- CheckpointSchedule ---------------------------------------------------------------------------------------------


def test_checkpoint_every_steps() -> None:
    s = CheckpointSchedule(every_steps=5, clock=Clock())
    assert [step for step in range(1, 16) if s.due_in_epoch(step)] == [5, 10, 15]


def test_checkpoint_every_seconds_counts_from_the_last_save() -> None:
    clock = Clock()
    s = CheckpointSchedule(every_seconds=30, clock=clock)
    clock.now += 29.9
    assert not s.due_in_epoch(1)
    clock.now += 0.2
    assert s.due_in_epoch(2)
    s.saved()
    assert not s.due_in_epoch(3)
    clock.now += 30
    assert s.due_in_epoch(4)


def test_no_mid_epoch_checkpoints_by_default() -> None:
    clock = Clock()
    s = CheckpointSchedule(clock=clock)
    clock.now += 1e6
    assert not any(s.due_in_epoch(step) for step in range(1, 100))


def test_epoch_end_checkpoint_is_time_gated_by_epoch_min_seconds() -> None:
    clock = Clock()
    s = CheckpointSchedule(every_epoch=True, epoch_min_seconds=10, clock=clock)
    assert not s.due_at_epoch_end()  # a small epoch right after the start: nothing written
    clock.now += 10
    assert s.due_at_epoch_end()
    s.saved()
    assert not s.due_at_epoch_end()
    assert CheckpointSchedule(every_epoch=True, clock=clock).due_at_epoch_end()  # ungated: every epoch
    assert not CheckpointSchedule(every_epoch=False, clock=clock).due_at_epoch_end()


def test_shared_clock_reads_only_the_agreement() -> None:
    """DDP: a rank's own clock never decides a mid-epoch checkpoint; the agreement reached at a log step does."""
    clock = Clock()
    s = CheckpointSchedule(every_seconds=5, shared_clock=True, clock=clock)
    clock.now += 60
    assert s.seconds_due() and not s.due_in_epoch(1)  # what this rank would propose; not acted on alone
    s.agree(True)
    assert s.due_in_epoch(2)
    s.saved()
    assert not s.due_in_epoch(3)


# ---- NonFiniteGuard -------------------------------------------------------------------------------------------------


def _state(steps: int = 6) -> LoopState:
    st = LoopState()
    st.new_epoch(torch.device("cpu"), steps)
    st.loss_buf[:] = 1.0
    return st


def test_bad_group_is_excluded_from_averages_and_remembered() -> None:
    st = _state()
    guard = NonFiniteGuard(st, max_bad=3, max_rollbacks=1)
    assert guard.bad_group(epoch=2, start=2, end=4) == "skip"
    assert st.loss_buf.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert st.valid == [True, True, False, False, True, True]
    assert st.skip == {(2, 3)} and st.bad_steps == 1 and st.consecutive_bad == 1


def test_rollback_after_max_bad_in_a_row_only() -> None:
    st = _state()
    guard = NonFiniteGuard(st, max_bad=2, max_rollbacks=1)
    assert guard.bad_group(0, 0, 1) == "skip"
    guard.good_step()  # a good step in between resets the run of bad ones
    assert guard.bad_group(0, 1, 2) == "skip"
    assert guard.bad_group(0, 2, 3) == "rollback"
    assert st.bad_steps == 3


def test_rollbacks_are_bounded() -> None:
    st = _state()
    guard = NonFiniteGuard(st, max_bad=1, max_rollbacks=2)
    assert guard.may_roll_back()
    st.rollbacks = 2  # the checkpointer counts rollbacks it performed
    assert not guard.may_roll_back()


# ---- EarlyStopping ---------------------------------------------------------------------------------------------------


def test_early_stopping_patience_and_best_epoch() -> None:
    st = LoopState(best_value=math.inf)
    early = EarlyStopping(st, lower_better=True, patience=2, enabled=True)
    assert [early.update(v, e) for e, v in enumerate([1.0, 0.8, 0.8, 0.9])] == [True, True, False, False]
    assert st.best_epoch == 1 and st.best_value == 0.8 and early.exhausted  # a tie is not an improvement


def test_early_stopping_higher_is_better_and_disabled() -> None:
    st = LoopState(best_value=-math.inf)
    early = EarlyStopping(st, lower_better=False, patience=1, enabled=False)
    assert early.update(0.5, 0) and not early.update(0.4, 1)
    assert st.bad_epochs == 1 and not early.exhausted  # counted, but no early stop without train.early_stopping


# ---- Stopping ------------------------------------------------------------------------------------------------------


def test_stopping_reasons() -> None:
    st = LoopState()
    stop = Stopping(st, distributed=False)
    assert not stop.ended and st.stopped == COMPLETED
    stop.callback_asked = True
    stop.callback_reason()
    assert st.stopped == CALLBACK and stop.ended
    stop.request(EARLY_STOPPING)  # a later reason of the same epoch end replaces an observer's request
    assert st.stopped == EARLY_STOPPING
    stop.callback_reason()
    assert st.stopped == EARLY_STOPPING  # ... and not the other way round


def test_signal_stops_without_a_reason() -> None:
    st = LoopState()
    stop = Stopping(st, distributed=False)
    stop.raw.signum = 15
    assert stop.signal == 15 and stop.ended and st.stopped == COMPLETED  # interrupted, resumable: not "stopped"


def test_distributed_signal_counts_only_once_agreed() -> None:
    st = LoopState()
    stop = Stopping(st, distributed=True)
    stop.raw.signum = 2
    assert stop.signal == 0 and not stop.ended  # this rank alone must not leave the step the others are in
    stop.agree(2.0)
    assert stop.signal == 2 and stop.ended


@pytest.mark.parametrize("reason", [NON_FINITE, EARLY_STOPPING])
def test_requested_reason_ends_the_run(reason: str) -> None:
    st = LoopState()
    stop = Stopping(st, distributed=False)
    stop.request(reason)
    assert stop.ended and st.stopped == reason


# ---- train.monitor, checked before any work --------------------------------------------------------------------------


def test_each_task_declares_the_metrics_it_reports() -> None:
    """``Task.metric_names`` is what ``train.monitor`` is checked against: it must cover what ``metrics`` returns."""
    from trainwise.tasks import make_task

    y = torch.arange(30) % 3
    out = torch.randn(30, 3)
    cls = make_task("classification", 3)
    assert set(cls.metrics(out, y)) <= set(cls.metric_names) and cls.main_metric in cls.metric_names
    reg = make_task("regression")
    assert set(reg.metrics(torch.randn(30, 1), torch.randn(30))) <= set(reg.metric_names)
    ml = make_task("multilabel", 4)
    t = (torch.arange(120).reshape(30, 4) % 3 == 0).float()
    assert set(ml.metrics(torch.randn(30, 4), t)) <= set(ml.metric_names)


def test_misspelt_monitor_refused_before_any_work(tmp_path) -> None:  # noqa: ANN001
    import trainwise
    from trainwise.errors import TrainwiseError

    x, y = torch.randn(64, 4), torch.arange(64) % 2
    with pytest.raises(TrainwiseError, match=r"train\.monitor=val/f1 .*val/f1_macro"):
        trainwise.fit(trainwise.create_model("mlp", (4,), 2, hidden=[8]), (x.numpy(), y.numpy()),
                      run_dir=tmp_path / "r", monitor="val/f1")
    assert not (tmp_path / "r").exists()

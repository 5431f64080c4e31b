"""Progress: a rich bar per epoch (steps/s, running loss) and a compact per-epoch table; :func:`task_bar` for work
with a known size outside the loop (decoding an image folder).

Bars only on a terminal; ``quiet`` silences everything. The running loss shown on the bar is read from the device
only at log intervals, never per step.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class Reporter:
    def __init__(self, quiet: bool, main_metric: str, total_epochs: int) -> None:
        self.quiet = quiet
        self.console = Console(file=sys.stdout, highlight=False)
        self.bars = not quiet and self.console.is_terminal
        self.main_metric = main_metric
        self.total_epochs = total_epochs
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._header_done = False

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def start_epoch(self, epoch: int, steps: int) -> None:
        if not self.bars:
            return
        self._progress = Progress(TextColumn(f"epoch {epoch + 1}/{self.total_epochs}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[rate]} it/s"),
                                  TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                                  console=self.console, transient=True)
        self._task = self._progress.add_task("train", total=steps, rate="-", loss="-")
        self._progress.start()

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)  # type: ignore[arg-type]

    def update(self, loss: float, rate: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, loss=f"{loss:.4f}", rate=f"{rate:.0f}")  # type: ignore[arg-type]

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.quiet:
            return
        m = self.main_metric
        cols = [("epoch", f"{row['epoch'] + 1:>3}"), ("train loss", _f(row.get("train/loss"))),
                ("val loss", _f(row.get("val/loss"))), (f"val {m}", _f(row.get(f"val/{m}"))),
                ("lr", f"{row.get('lr', 0):.2e}"), ("sec", f"{row.get('seconds', 0):.2f}")]
        if not self._header_done:
            self.console.print("  ".join(f"{k:>11}" for k, _ in cols), style="bold")
            self._header_done = True
        self.console.print("  ".join(f"{v:>11}" for _, v in cols))

    def summary(self, title: str, values: dict[str, Any]) -> None:
        if self.quiet:
            return
        t = Table(title=title, show_header=False, box=None)
        for k, v in values.items():
            t.add_row(k, _f(v) if isinstance(v, float) else str(v))
        self.console.print(t)


@contextmanager
def task_bar(description: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """``with task_bar("decoding images", n) as advance: ... advance(1)``: a bar with its total, elapsed and remaining
    time on stderr (stdout carries results), shown only when stderr is a terminal (rich's detection: ``TTY_COMPATIBLE``
    and ``FORCE_COLOR`` are honoured) and not ``quiet``; otherwise ``advance`` does nothing."""
    console = Console(file=sys.stderr, highlight=False)
    if quiet or not console.is_terminal or total <= 0:
        yield lambda n: None
        return
    with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield advance


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"

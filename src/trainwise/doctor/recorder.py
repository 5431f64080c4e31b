"""What the training loop wraps its epochs in: on a crash, ``RUN/error.json`` (the site, from
:mod:`trainwise.doctor.crash`) and the run's diagnosis so far (``diagnosis.json``), then the exception re-raised."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from torch import nn

from trainwise.doctor.crash import crash_site
from trainwise.doctor.diagnose import diagnose_run
from trainwise.errors import TrainingInterrupted
from trainwise.run.rundir import write_json


class CrashRecorder:
    """``with CrashRecorder(out_dir, model, state):`` around the epoch loop. An exception leaving the block (not a
    KeyboardInterrupt, not a clean stop) is written to ``out_dir/error.json`` and the run's diagnosis to
    ``diagnosis.json``, then re-raised unchanged."""

    def __init__(self, out_dir: Path | None, model: nn.Module, state: Any, flush: Any = None) -> None:
        self.out_dir, self.model, self.state, self.flush = out_dir, model, state, flush

    def __enter__(self) -> CrashRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if exc is None or self.out_dir is None or not isinstance(exc, Exception):
            return False
        if isinstance(exc, TrainingInterrupted):
            return False
        try:
            record = {"type": type(exc).__name__, "message": str(exc), "where": crash_site(exc, self.model),
                      "step": getattr(self.state, "global_step", None), "epoch": getattr(self.state, "epoch", None),
                      "batch": getattr(self.state, "pos", None)}
            write_json(self.out_dir / "error.json", record)
            if self.flush is not None:
                self.flush()  # metrics and monitors written so far, so the diagnosis reads the whole run
            write_json(self.out_dir / "diagnosis.json", {"findings": [f.to_dict() for f in diagnose_run(self.out_dir)]})
        except Exception:  # noqa: BLE001 - recording must never hide the user's own exception
            pass
        return False

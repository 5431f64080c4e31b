"""Run-directory naming and the never-overwrite rule (no torch import: the CLI checks these before training)."""

from __future__ import annotations

import time
from pathlib import Path

from trainwise.errors import TrainwiseError


def check_new_run_dir(run_dir: str | Path) -> None:
    p = Path(run_dir)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise TrainwiseError(f"run directory '{p}' already exists; pass a new --run-dir (nothing was overwritten)")


def new_run_dir(name: str, run_dir: str | Path | None, root: str | Path = "runs") -> Path:
    """``--run-dir DIR`` must not exist (never overwrite a run); otherwise ``runs/<name>-<YYYYmmdd-HHMMSS>``."""
    if run_dir is not None:
        check_new_run_dir(run_dir)
        p = Path(run_dir)
        p.mkdir(parents=True, exist_ok=True)
        return p
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    p, i = base, 1
    while True:
        try:
            p.mkdir(parents=True, exist_ok=False)
            return p
        except FileExistsError:  # two runs in the same second
            i += 1
            p = base.with_name(f"{base.name}-{i}")

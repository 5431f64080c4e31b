"""Run-directory naming and the never-overwrite rule (no torch import: the CLI checks these before training)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainwise.errors import TrainwiseError
from trainwise.safety import check_creatable


def check_new_run_dir(run_dir: str | Path) -> None:
    p = check_creatable(run_dir, "run directory")
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
    base = check_creatable(Path(root) / f"{name}-{stamp}", "run directory")
    p, i = base, 1
    while True:
        try:
            p.mkdir(parents=True, exist_ok=False)
            return p
        except FileExistsError:  # two runs in the same second
            i += 1
            p = base.with_name(f"{base.name}-{i}")


# What a run writes into its directory before its first step (train/components.py build): all of it is written again by
# rerunning the command, so a run that fails there may take it away with the directory it created.
STARTUP_FILES = ("config.yaml", "preprocess.json", "preflight.json", "status.json", "metrics.jsonl", "monitors.jsonl",
                 "mlflow.json", "checkpoints", "tensorboard")


@contextmanager
def discarded_on_failure(path: Path | None, names: tuple[str, ...] = (), *, remove_dir: bool) -> Iterator[None]:
    """Run the body; if it fails, take away what this command wrote in ``path`` before it got anywhere: the ``names``
    given (a new run's start-up files, written again by rerunning the command), and the directory itself when this
    command created it (``remove_dir``; an empty directory the user made is theirs) and nothing else is left in it.
    Anything not named (a file that appeared meanwhile) stays, and keeps the directory, so nothing the user had is
    ever deleted. Why: a refused run used to leave a half-made directory behind that ``trainwise runs`` lists and a
    rerun with the same ``--run-dir`` refuses."""
    try:
        yield
    except BaseException:
        if path is not None and path.is_dir():
            for name in names:
                p = path / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.is_file() or p.is_symlink():
                    p.unlink(missing_ok=True)
            if remove_dir:
                try:
                    path.rmdir()  # only succeeds when nothing else is there
                except OSError:
                    pass
        raise

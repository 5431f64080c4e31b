"""A self-describing run directory and the files in it. Every file is written atomically (temp file, fsync,
``os.replace``), so a crash never leaves a half-written file under a final name."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from trainwise.errors import TrainwiseError
from trainwise.run.paths import check_new_run_dir, new_run_dir  # noqa: F401  (re-exported)
from trainwise.safety import check_inside


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write via ``write(tmp_path)`` into the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 (and writers may recreate the file); outputs are shareable
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Tensors to safetensors (no pickle). Shared storage is broken up with clone; metadata is plain strings."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    # Serialised in memory, written by Python: a full disk or file-size limit is then an OSError (ENOSPC, EFBIG) that
    # callers handle, not safetensors' own error type carrying the OS error as text.
    blob = save(tensors)
    atomic_write(path, lambda p: p.write_bytes(blob))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from ``.safetensors`` or a plain state-dict ``.pt`` (``weights_only=True``: never runs code)."""
    p = Path(path)
    if not p.is_file():
        raise TrainwiseError(f"weights file '{p}' does not exist")
    if p.suffix == ".safetensors":
        try:
            return {k: v.clone() for k, v in load_file(str(p), device="cpu").items()}  # aligned copies
        except Exception as exc:  # safetensors raises its own error types for torn files
            raise TrainwiseError(f"'{p}' is not a valid safetensors file ({exc}); it may be truncated") from None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for payloads weights_only refuses, others for torn files
        raise TrainwiseError(f"refusing to load '{p}': not a plain state dict loadable with weights_only=True "
                             f"({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict):
        raise TrainwiseError(f"'{p}' does not hold a state dict")
    return state


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    # importlib.metadata scans site-packages (milliseconds per package): read once per process, not per checkpoint.
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("trainwise", "torch", "numpy", "torchmetrics", "safetensors", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return tuple(out.items())


def versions() -> dict[str, str]:
    return dict(_versions())


class MetricsLog:
    """``metrics.jsonl``: one JSON object per event, flushed per line so a crash loses at most the last line."""

    def __init__(self, path: Path | None, truncate_to: int | None = None) -> None:
        self.path = path
        if path is not None:
            check_inside(path, path.parent, "log")  # a link out of the run directory is never truncated or appended to
        if path is not None and truncate_to is not None and path.exists():
            # Resume: drop events written after the restored checkpoint; the resumed run writes them again.
            with open(path, "r+b") as f:
                f.truncate(truncate_to)
        self._f = open(path, "a", buffering=1) if path is not None else None  # noqa: SIM115 - lives for the run

    def tell(self) -> int:
        if self._f is None:
            return 0
        self._f.flush()
        return self._f.tell()

    def write(self, event: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(event) + "\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

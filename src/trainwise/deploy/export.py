"""``trainwise export``: a run's best weights as ONNX, a torch.export program or TorchScript, each followed by a
parity check against the eager model on held-out inputs at two batch sizes."""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwise.deploy.artifacts import (
    EXPORT_DIR,
    EXPORT_FILES,
    Run,
    WithPreprocess,
    eval_inputs,
    ort_forward,
    ort_session,
    quiet_torch,
    read_meta,
    torch_forward,
    torch_prepare,
)
from trainwise.deploy.text import ship_tokenizer
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import write_json
from trainwise.safety import refuse_existing

PARITY_BATCHES = (1, 64)
PARITY_SAMPLES = 256  # samples compared per batch size (batch 1: the first 32 of them)
TOLERANCE = 1e-4  # fp32: max |artefact - eager| on model outputs


def root_cause(exc: BaseException) -> str:
    """The innermost exception's first line, without the exporter's colour codes and generic advice (the ONNX
    exporter wraps the real reason, e.g. an untraceable op, in a page of instructions)."""
    import re

    seen = 0
    while exc.__cause__ is not None and seen < 10:
        exc, seen = exc.__cause__, seen + 1
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def example_batch(raw: np.ndarray) -> torch.Tensor:
    # Batch 2, not 1: torch.export specialises dimensions whose example size is 0 or 1, which would pin the batch.
    x = raw[:2] if len(raw) >= 2 else np.concatenate([raw, raw])[:2]
    return torch.from_numpy(np.ascontiguousarray(x))


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1)


def export_onnx(wrapped: torch.nn.Module, example: torch.Tensor, dest: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise TrainwiseError("ONNX export needs onnx and onnxscript; pip install 'trainwise[deploy]'") from None
    # The exporter reports progress on stdout; stdout belongs to the command's result, so send it to stderr.
    with contextlib.redirect_stdout(sys.stderr), quiet_torch():
        torch.onnx.export(wrapped, (example,), str(dest), dynamo=True, dynamic_shapes=({0: _batch_dim()},),
                          input_names=["input"], output_names=["output"], external_data=False, verbose=False)


def _export_program(wrapped: torch.nn.Module, example: torch.Tensor, dest: Path) -> None:
    with quiet_torch():
        program = torch.export.export(wrapped, (example,), dynamic_shapes=({0: _batch_dim()},))
        torch.export.save(program, str(dest))


def _export_torchscript(wrapped: torch.nn.Module, example: torch.Tensor, dest: Path) -> None:
    with quiet_torch():  # torch.jit is deprecated in torch 2.13 but still the format many C++ servers load
        traced = torch.jit.trace(wrapped, (example,), check_trace=False)
        torch.jit.save(traced, str(dest))


EXPORTERS: dict[str, Callable[[torch.nn.Module, torch.Tensor, Path], None]] = {
    "onnx": export_onnx, "torch-export": _export_program, "torchscript": _export_torchscript}


def load_artifact(fmt: str, path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Raw inputs → outputs through the written file (not the in-memory object), as a user would load it."""
    if fmt == "onnx":
        return ort_forward(ort_session(path, threads))
    with quiet_torch():
        module = torch.export.load(str(path)).module() if fmt == "torch-export" else torch.jit.load(str(path))

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), quiet_torch():
            return module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return forward


def parity(run: Run, artefact: Callable[[np.ndarray], np.ndarray], raw: np.ndarray,
           batches: tuple[int, ...] = PARITY_BATCHES) -> dict[str, Any]:
    """Max |artefact(raw) − eager(preprocess(raw))| per batch size, on held-out inputs."""
    eager = torch_forward(run.model)
    prepare = torch_prepare(run.prep)
    if len(raw) < max(batches):  # tiny test splits: repeat samples so the large batch size is really exercised
        raw = np.concatenate([raw] * (max(batches) // max(len(raw), 1) + 1))
    if run.prep.kind == "tabular" and run.prep.median and run.prep.num_numeric:
        # Held-out rows were imputed when the split was rebuilt; blank every 5th numeric value of every other row
        # so the in-graph median imputation is compared with Preprocess.apply's too.
        raw = raw.copy()
        holes = np.zeros(raw.shape, dtype=bool)
        holes[1::2, : run.prep.num_numeric] = (np.arange(run.prep.num_numeric) % 5 == 0)
        raw[holes] = np.nan
    result: dict[str, Any] = {}
    for b in batches:
        n = min(len(raw), 32 if b == 1 else (len(raw) // b) * b)
        worst = 0.0
        for i in range(0, n, b):
            chunk = raw[i:i + b]
            diff = np.abs(artefact(chunk).astype(np.float64) - eager(prepare(chunk)).astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
            if np.isnan(diff).any():
                worst = float("inf")
        result[str(b)] = {"samples": n, "max_abs_diff": worst}
    return result


def export_run(run: Run, fmt: str, force: bool = False, tolerance: float = TOLERANCE,
               log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Write ``RUN_DIR/export/<file>`` and merge its entry into ``export.json``; returns the metadata.

    The artefact is written under a temporary name first and only moved into place once the parity check has run,
    so an exporter crash never leaves a half-written file under the final name.
    """
    if fmt not in EXPORTERS:
        raise TrainwiseError(f"unknown export format '{fmt}'; choose one of {', '.join(EXPORTERS)}")
    if not (tolerance >= 0 and math.isfinite(tolerance)):  # -1 would fail every export; nan would pass every one
        raise TrainwiseError(f"--tolerance {tolerance} must be a finite number ≥ 0 (default {TOLERANCE:g})")
    out_dir = run.run_dir / EXPORT_DIR
    dest = refuse_existing(out_dir / EXPORT_FILES[fmt], force, "export")
    raw, _, _, split = eval_inputs(run, PARITY_SAMPLES)
    meta_path = out_dir / "export.json"
    meta = read_meta(meta_path) if meta_path.is_file() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped = WithPreprocess(run.model, run.prep).eval()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp_file = Path(tmp) / dest.name
        log(f"exporting {run.model_name} to {fmt} ...")
        t0 = time.perf_counter()
        try:
            EXPORTERS[fmt](wrapped, example_batch(raw), tmp_file)
        except TrainwiseError:
            raise
        except Exception as exc:  # exporters raise many types; the user needs the model, the format and why
            raise TrainwiseError(f"model '{run.model_name}' cannot be exported to {fmt} with a dynamic batch "
                                 f"dimension: {root_cause(exc)}") from None
        seconds = time.perf_counter() - t0
        log(f"checking parity on {split} inputs at batch sizes {', '.join(map(str, PARITY_BATCHES))} ...")
        try:
            checks = parity(run, load_artifact(fmt, tmp_file), raw)
        except Exception as exc:  # the file was written but cannot run: same message family as above
            raise TrainwiseError(f"model '{run.model_name}' exported to {fmt} but the artefact fails to run: "
                                 f"{root_cause(exc)}") from None
        worst = max(c["max_abs_diff"] for c in checks.values())
        if not worst <= tolerance and dest.exists():  # --force must not trade a working artefact for a failed one
            raise TrainwiseError(f"the new {fmt} export fails its parity check (max abs diff {worst:.3g} > tolerance "
                                 f"{tolerance:g}); the existing '{dest}' was kept")
        tmp_file.chmod(0o644)  # exporters may create 0600 files; artefacts are meant to be shipped
        tmp_file.replace(dest)
    shape = ["batch", *map(int, run.prep.input_shape)]
    meta.update({
        "format": fmt,  # the most recent export; every format written so far is under "artifacts"
        "model": run.model_name,
        "task": run.prep.task,
        "class_names": list(run.prep.class_names),
        "input": {"name": "input", "shape": shape, "dtype": "int64" if run.prep.kind == "tokens" else "float32",
                  "dynamic_axes": {"0": "batch"}, "raw_features": True},
        "output": {"name": "output",
                   "meaning": "logits" if run.prep.task == "classification" else "standardised prediction",
                   "y_mean": run.prep.y_mean, "y_std": run.prep.y_std},
        "preprocessing": {"in_graph": True, "kind": run.prep.kind, "mean": run.prep.mean, "std": run.prep.std,
                          "median": run.prep.median, "num_numeric": run.prep.num_numeric,
                          "cat_columns": run.prep.cat_columns, "cat_categories": run.prep.cat_categories,
                          "feature_names": run.prep.feature_names},
    })
    entry = {"file": dest.name, "bytes": dest.stat().st_size, "export_seconds": round(seconds, 3),
             "torch": torch.__version__,
             "parity": {"split": split, "tolerance": tolerance, "max_abs_diff": worst, "passed": worst <= tolerance,
                        "batches": checks}}
    meta.setdefault("artifacts", {})[fmt] = entry
    if run.cfg.data.get("source") == "text":  # the tokenizer ships beside the artefact (deploy/text.py)
        ship_tokenizer(run, out_dir, meta)
    write_json(meta_path, meta)
    return meta

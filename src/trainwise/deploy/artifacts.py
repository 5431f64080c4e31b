"""A finished run opened for inference, the artefacts ``export`` and ``quantize`` leave in it, and one
``Predictor`` interface over eager PyTorch, ONNX Runtime and int8 so predict, serve and bench-infer share code.

Every artefact takes **raw** features: the run's standardisation (and, for tabular data, median imputation of
missing numeric values) is part of the exported graph (:class:`WithPreprocess`). ``export.json`` records the same
statistics for readers that want them, but nothing has to apply them before calling the artefact.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from trainwise import reopen
from trainwise.build import load_data
from trainwise.data.splits import Preprocess
from trainwise.errors import TrainwiseError

EXPORT_DIR = "export"
QUANT_DIR = "quantized"
EXPORT_FILES = {"onnx": "model.onnx", "torch-export": "model.pt2", "torchscript": "model.ts"}
INT8_ONNX = "model.int8.onnx"
INT8_TORCH = "model.int8.safetensors"
FORMATS = ("eager", "onnx", "int8")
# Preprocessing kinds WithPreprocess reproduces exactly (the parity check after each export proves it per run).
KNOWN_KINDS = ("tabular", "image", "sequence", "tokens")


class BadRequest(Exception):
    """A request ``serve`` refuses: answered with ``status`` (4xx) and the message as a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def request_batch(items: Any, key: str, max_batch: int, what: str, noun: str) -> list[Any]:
    """The list under ``key`` of a request body, as every serve route takes it: a non-empty list (422 otherwise, the
    message saying it must be ``what``) of at most ``max_batch`` ``noun`` (413 beyond)."""
    if not isinstance(items, list) or not items:
        raise BadRequest(422, f'"{key}" must be a non-empty list of {what}')
    if len(items) > max_batch:
        raise BadRequest(413, f"{len(items)} {noun} in one request; the limit is {max_batch} (--max-batch)")
    return items


@dataclass
class Run:
    """A finished run: directory, config, preprocessing and the best weights in an eval-mode model."""

    run_dir: Path
    cfg: DictConfig
    prep: Preprocess
    model: nn.Module

    @property
    def model_name(self) -> str:
        return str(self.cfg.model.get("name", "?"))

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.prep.kind == "tokens" else np.dtype(np.float32)


def open_run(run_dir: str | Path) -> Run:
    rd = Path(run_dir)
    if not rd.is_dir():
        raise TrainwiseError(f"run directory '{rd}' does not exist")
    rd, cfg, prep, model = reopen.open_run(rd)
    if prep.kind not in KNOWN_KINDS:
        raise TrainwiseError(f"run '{rd}' uses '{prep.kind}' inputs, which the deploy commands do not support yet")
    return Run(rd, cfg, prep, model.cpu().eval())


def require_supervised(run: Run, what: str) -> None:
    """predict/serve/quantize decode logits into classes or values: only supervised runs produce those."""
    paradigm = str(run.cfg.get("paradigm", {}).get("name", "supervised"))
    if paradigm != "supervised" or run.prep.task not in ("classification", "regression"):
        raise TrainwiseError(f"'{what}' needs a supervised classification or regression run; run '{run.run_dir}' "
                             f"is a {paradigm} run (task {run.prep.task}); 'trainwise export' still works for it")


class WithPreprocess(nn.Module):
    """``model(preprocess(x))`` as one graph, so an exported artefact takes raw features.

    Mirrors :meth:`Preprocess.apply` operation for operation in float32 (same subtraction, then division), which is
    why eager and exported outputs agree to float rounding.
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor
    median: torch.Tensor

    def __init__(self, model: nn.Module, prep: Preprocess) -> None:
        super().__init__()
        self.model = model
        self.kind = prep.kind
        self.num_numeric = prep.num_numeric
        self.has_cat = bool(prep.cat_columns)
        self.standardize = bool(prep.mean)
        self.impute = self.kind == "tabular" and bool(prep.median)
        mean = torch.tensor(prep.mean or [0.0], dtype=torch.float32)
        std = torch.tensor(prep.std or [1.0], dtype=torch.float32)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("median", torch.tensor(prep.median or [0.0], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "tokens":
            return self.model(x)
        if self.kind in ("image", "sequence"):  # scalar (image) or per-last-dim (sequence) statistics
            if self.standardize:
                x = (x - self.mean) / self.std
            return self.model(x)
        num = x[:, : self.num_numeric]
        if self.impute:  # missing numeric values → train median, as in Preprocess.apply
            num = torch.where(torch.isnan(num), self.median, num)
        if self.standardize:
            num = (num - self.mean) / self.std
        if self.has_cat:  # category codes pass through unchanged
            num = torch.cat([num, x[:, self.num_numeric:]], dim=1)
        return self.model(num)


def raw_inputs(x: torch.Tensor, prep: Preprocess) -> np.ndarray:
    """Undo the standardisation of a rebuilt split, giving raw-feature inputs to feed artefacts (which
    standardise in-graph). Imputed values stay imputed: they are valid raw values too."""
    if prep.kind == "tokens":
        return x.numpy().astype(np.int64)
    a = x.numpy().astype(np.float32).copy()
    if not prep.mean:
        return a
    mean, std = np.asarray(prep.mean, np.float32), np.asarray(prep.std, np.float32)
    if prep.kind in ("image", "sequence"):
        return (a * std + mean).astype(np.float32)
    a[:, : prep.num_numeric] = a[:, : prep.num_numeric] * std + mean
    return a


def eval_inputs(run: Run, n: int | None = None, splits: Any = None
                ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, str]:
    """Held-out data rebuilt from the run's config and seed: (raw x, preprocessed x, y, split name).
    The test split when there is one, else validation, else train."""
    splits = splits if splits is not None else load_data(run.cfg)
    for name in ("test", "val", "train"):
        part = getattr(splits, name)
        if part is not None and len(part):
            x, y = part.x[:n], part.y[:n]
            return raw_inputs(x, run.prep), x, y, name
    raise TrainwiseError(f"run '{run.run_dir}' has no data left to check against")


def train_inputs(run: Run, n: int, seed: int, splits: Any = None) -> np.ndarray:
    """A deterministic sample of ``n`` raw train-split inputs (quantization calibration)."""
    x = (splits if splits is not None else load_data(run.cfg)).train.x
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return raw_inputs(x[torch.from_numpy(np.sort(idx))], run.prep)


def read_meta(path: Path) -> dict[str, Any]:
    """export.json / quantize.json: a JSON object, or one error line (the file may be damaged or replaced)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError includes UnicodeDecodeError
        raise TrainwiseError(f"cannot read '{path}' ({str(exc)[:200]}); run the command that writes it again with "
                             "--force") from None
    if not isinstance(meta, dict):
        raise TrainwiseError(f"'{path}' is not a JSON object; run the command that writes it again with --force")
    return meta


def dig(meta: Any, *keys: str) -> Any:
    """``meta[k1][k2]…``, or None where a level is missing or not an object (a damaged metadata file)."""
    for key in keys:
        if not isinstance(meta, dict):
            return None
        meta = meta.get(key)
    return meta


@contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence the deprecation chatter torch.ao / torch.jit / the ONNX exporter print for every call (the user
    cannot act on it; real failures still raise)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def ort_session(path: Path | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (default: torch's count, so comparisons
    between the runtimes use the same cores)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise TrainwiseError("onnxruntime is not installed; pip install 'trainwise[deploy]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: ORT warns about unused initializers on quantized graphs
    # No busy-waiting between calls: ORT's spinning threads otherwise keep the cores after each run and slowed the
    # next torch call 3-45× on this 2-core machine (digits MLP eager batch 1: 0.054 ms alone, 0.145 ms after ORT).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


class Predictor:
    """Raw inputs → model outputs (logits for classification, standardised values for regression).

    ``prepare`` turns raw inputs into what ``forward`` consumes (a preprocessed tensor for torch, the raw array for
    ONNX graphs that standardise themselves), so benchmarks can time ``forward`` alone.
    """

    def __init__(self, fmt: str, backend: str, prepare: Callable[[np.ndarray], Any],
                 forward: Callable[[Any], np.ndarray], source: str) -> None:
        self.format, self.backend, self.source = fmt, backend, source
        self.prepare, self.forward = prepare, forward

    def outputs(self, raw: np.ndarray, chunk: int = 1024) -> np.ndarray:
        parts = [self.forward(self.prepare(raw[i:i + chunk])) for i in range(0, len(raw), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def torch_forward(module: nn.Module) -> Callable[[torch.Tensor], np.ndarray]:
    def forward(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return module(x).float().numpy()

    return forward


def torch_prepare(prep: Preprocess) -> Callable[[np.ndarray], torch.Tensor]:
    return lambda raw: torch.from_numpy(prep.apply(raw))


def ort_forward(session: Any) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    return forward


def ort_prepare(dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    return lambda raw: np.ascontiguousarray(raw, dtype=dtype)


def decode(outputs: np.ndarray, prep: Preprocess) -> tuple[list[Any], np.ndarray | None]:
    """Model outputs → (predictions, class probabilities or None), exactly as ``trainwise predict`` reports them."""
    out = torch.from_numpy(np.ascontiguousarray(outputs, dtype=np.float32))
    if prep.task == "classification":
        probs = out.softmax(1).numpy()
        return [prep.class_names[i] for i in out.argmax(1).tolist()], probs
    return (out.squeeze(1) * prep.y_std + prep.y_mean).tolist(), None


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move a fully written temporary folder into place, replacing ``dest`` (only after --force was checked)."""
    import shutil

    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

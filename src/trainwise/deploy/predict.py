"""``trainwise predict``: a finished run's predictions for raw inputs (CSV, .npz or an image file), from its best
weights or from the artefacts ``export`` / ``quantize`` left in it (:func:`load_predictor`, shared with serve and
bench-infer).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainwise.data.sources import check_npz_members
from trainwise.data.splits import Preprocess
from trainwise.deploy import artifacts, text
from trainwise.deploy.artifacts import (
    EXPORT_DIR,
    EXPORT_FILES,
    FORMATS,
    INT8_ONNX,
    INT8_TORCH,
    QUANT_DIR,
    Predictor,
    Run,
    dig,
    ort_forward,
    ort_prepare,
    ort_session,
    read_meta,
    torch_forward,
    torch_prepare,
)
from trainwise.deploy.images import is_image, read_image
from trainwise.deploy.quantize import load_torch_int8
from trainwise.errors import TrainwiseError
from trainwise.reopen import open_run
from trainwise.run.rundir import atomic_write
from trainwise.safety import refuse_existing, write_error
from trainwise.tasks import make_task


def load_predictor(run: Run, fmt: str, threads: int | None = None) -> Predictor:
    """The model of ``run`` in one of :data:`FORMATS`; onnx/int8 need ``export`` / ``quantize`` to have run."""
    if fmt == "eager":
        return Predictor("eager", "torch", torch_prepare(run.prep), torch_forward(run.model), "best weights")
    if fmt == "onnx":
        meta_path = run.run_dir / EXPORT_DIR / "export.json"
        path = run.run_dir / EXPORT_DIR / EXPORT_FILES["onnx"]
        if not path.is_file() or not meta_path.is_file():
            raise TrainwiseError(f"run '{run.run_dir}' has no ONNX export; run 'trainwise export {run.run_dir}' first")
        if dig(read_meta(meta_path), "artifacts", "onnx", "parity", "passed") is not True:
            sys.stderr.write(f"warning: {path} failed its parity check at export time; outputs may differ from "
                             "the eager model\n")
        session = ort_session(path, threads)
        return Predictor("onnx", "onnxruntime", ort_prepare(run.input_dtype), ort_forward(session), str(path))
    if fmt == "int8":
        qdir = run.run_dir / QUANT_DIR
        if not (qdir / "quantize.json").is_file():
            raise TrainwiseError(f"run '{run.run_dir}' has no int8 model; run 'trainwise quantize {run.run_dir} "
                                 "--method static' (or dynamic / qat) first")
        meta = read_meta(qdir / "quantize.json")
        if meta.get("backend") == "onnxruntime":
            session = ort_session(qdir / INT8_ONNX, threads)
            return Predictor("int8", "onnxruntime", ort_prepare(run.input_dtype), ort_forward(session),
                             str(qdir / INT8_ONNX))
        module = load_torch_int8(run, meta, qdir / INT8_TORCH)
        return Predictor("int8", "torch", torch_prepare(run.prep), torch_forward(module), str(qdir / INT8_TORCH))
    raise TrainwiseError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")


def predict_run(run_dir: str | Path, input_path: str | Path, out: str | Path | None = None,
                force: bool = False, fmt: str = "eager") -> Path:
    """Write predictions for raw inputs (CSV, .npz or an image file) next to the input or to ``out``; never
    overwrites silently. ``fmt``: ``eager`` (best weights), ``onnx`` (export/model.onnx) or ``int8``
    (quantized/), the latter two from ``trainwise export`` / ``trainwise quantize``."""
    if fmt not in FORMATS:
        raise TrainwiseError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    rd, cfg, prep, model = open_run(run_dir)
    if cfg.data.get("source") == "text":  # raw strings through the run's tokenizer (deploy/text.py)
        inp = Path(input_path)
        dest = refuse_existing(Path(out) if out is not None else inp.with_name(f"{inp.stem}.predictions.csv"), force)
        return text.predict_file(rd, cfg, prep, model, inp, dest, fmt, load_predictor)
    if cfg.paradigm.name not in ("supervised", "distill"):
        raise TrainwiseError(f"'{rd}' is a {cfg.paradigm.name} run; predict writes class/value predictions of "
                             "supervised runs (use trainwise evaluate, or load its weights in Python)")
    inp = Path(input_path)
    dest = refuse_existing(Path(out) if out is not None else inp.with_name(f"{inp.stem}.predictions.csv"), force)
    # A missing export/quantized artefact is reported before any input is read.
    predictor = load_predictor(Run(rd, cfg, prep, model), fmt) if fmt != "eager" else None
    if not is_image(inp) and inp.suffix not in (".csv", ".npz"):
        raise TrainwiseError(f"input '{inp}' must be a .csv, .npz or image file (.png, .jpg, ...)")
    x = read_image(inp, prep, cfg) if is_image(inp) else read_inputs(inp, prep, cfg.data.target)[0]
    if len(x) == 0:
        raise TrainwiseError(f"'{inp}' holds no rows to predict")
    if prep.kind == "tabular":
        nan = np.isnan(x[:, prep.num_numeric:]) if prep.cat_columns else None
        if nan is not None and nan.any():
            raise TrainwiseError(f"'{inp}' has missing categorical codes")
    elif not np.isfinite(x).all():
        raise TrainwiseError(f"'{inp}' holds NaN or inf values")
    task = make_task(prep.task, len(prep.class_names), 0.0, prep.y_mean, prep.y_std)
    if predictor is not None:  # the artefact takes raw features: its graph standardises them
        outs = torch.from_numpy(predictor.outputs(x))
    else:
        xt = torch.from_numpy(prep.apply(x))
        with torch.inference_mode():
            outs = torch.cat([model(xt[i:i + 1024]) for i in range(0, len(xt), 1024)])
    pred = task.predict(outs).numpy()
    cols: dict[str, Any] = {}
    if prep.task == "multilabel":
        probs = outs.sigmoid().numpy()
        for j, name in enumerate(prep.class_names):
            cols[f"label_{name}"] = pred[:, j]
            cols[f"prob_{name}"] = probs[:, j]
    elif prep.task == "classification":
        probs = outs.softmax(1).numpy()
        cols["prediction"] = [prep.class_names[i] for i in pred]
        for j, name in enumerate(prep.class_names):
            cols[f"prob_{name}"] = probs[:, j]
    else:
        cols["prediction"] = pred
    try:  # atomic: a full disk never leaves half a CSV in place of the file --force replaces
        atomic_write(dest, lambda p: pd.DataFrame(cols).to_csv(p, index=False))
    except OSError as exc:
        raise write_error(dest, exc) from None
    return dest


def read_inputs(path: Path, prep: Preprocess, target: str | None) -> tuple[np.ndarray, Any]:
    """Raw features from CSV (columns matched by name) or .npz (array ``x``), preprocessed as in training."""
    if not path.is_file():
        raise TrainwiseError(f"input file '{path}' does not exist")
    expected = int(np.prod(prep.input_shape))
    if path.suffix == ".npz":
        try:
            check_npz_members(path, ("x",))  # shape, dtype and size from the headers, before anything is loaded
            with np.load(path, allow_pickle=False) as f:  # allow_pickle=False: an input file must never run code
                if "x" not in f.files:
                    raise TrainwiseError(f"'{path}' must hold an array named 'x'")
                x = f["x"].astype(np.float32)
        except TrainwiseError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise TrainwiseError(f"cannot read .npz '{path}': {str(exc).splitlines()[0]}") from None
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != expected:
            raise TrainwiseError(f"'{path}' array 'x' has shape {x.shape} but the model takes samples of shape "
                                 f"{tuple(prep.input_shape)} ({expected} values each)")
        return x.reshape(len(x), *prep.input_shape), None
    if path.suffix != ".csv":
        raise TrainwiseError(f"input '{path}' must be a .csv or .npz file")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TrainwiseError(f"cannot read CSV '{path}': {str(exc).splitlines()[0]}") from None
    if prep.feature_names and all(c in df.columns for c in prep.feature_names):
        numeric = [c for c in prep.feature_names if c not in prep.cat_columns]
        cols = [_numeric(df[numeric], path)]
        for c, names in zip(prep.cat_columns, prep.cat_categories):
            index = {n: i + 1 for i, n in enumerate(names)}
            cols.append(np.array([index.get(str(v), 0) for v in df[c]], dtype=np.float64)[:, None])
        x = np.column_stack(cols).astype(np.float32)
    else:
        feats = df.drop(columns=[target]) if target and target in df.columns else df
        if feats.shape[1] != expected:
            raise TrainwiseError(f"'{path}' has {feats.shape[1]} feature columns but the model takes {expected}")
        x = _numeric(feats, path).astype(np.float32)
    return x.reshape(len(x), *prep.input_shape), df


def _numeric(df: Any, path: Path) -> np.ndarray:
    """The numeric feature columns as float64, naming the first cell that is not a number (``abc``)."""
    out = df.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & df.notna()
    if bad.to_numpy().any():
        col = bad.any().idxmax()
        row = int(bad[col].to_numpy().argmax())
        raise TrainwiseError(f"'{path}' column '{col}' row {row + 1} holds {df[col].iloc[row]!r}, not a number; "
                             "numeric feature columns must hold numbers")
    return out.to_numpy(dtype=np.float64)


def predict_texts(run_dir: str | Path, texts: list[str], fmt: str = "eager") -> dict[str, Any]:
    """Python API for a text run: raw strings → the columns ``trainwise predict`` would write (``prediction``,
    ``prob_<class>``), through the run's own tokenizer."""
    run = artifacts.open_run(run_dir)
    ids = text.encode_texts(run.run_dir, run.cfg, list(texts))
    if str(run.cfg.paradigm.name) == "seq2seq":
        return {"prediction": text.generate(run.run_dir, run.cfg, run.model, ids)}
    return text.prediction_columns(run.prep, load_predictor(run, fmt).outputs(ids))

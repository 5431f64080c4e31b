"""A config end to end: data → model → ``fit``; and re-using a finished run (evaluate, predict).

The CLI is a thin layer over these functions.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from trainwise.config import compose
from trainwise.data.sources import load_source
from trainwise.data.splits import Preprocess, Splits, split_table
from trainwise.errors import TrainwiseError
from trainwise.models import create_model, get_spec
from trainwise.run.rundir import load_weights
from trainwise.safety import refuse_existing, write_error
from trainwise.tasks.base import make_task
from trainwise.train.loop import FitResult, evaluate, fit, seed_everything
from trainwise.train.precision import resolve_device, resolve_precision


def load_data(cfg: DictConfig) -> Splits:
    d = cfg.data
    if d.source == "npy":  # larger than memory: Dataset splits over a memory map (data/npy.py)
        from trainwise.data.npy import load_npy

        if d.classes is not None or d.holdout_class is not None or d.label_fraction < 1.0:
            raise TrainwiseError("data.classes, data.holdout_class and data.label_fraction are not supported with "
                                 "data.source=npy; select the samples when writing x.npy/y.npy")
        return load_npy(str(d.path), d.task, cfg.seed, d.val_fraction, d.test_fraction, d.standardize)
    if d.source == "images":  # decoded once into a uint8 memory-mapped cache (data/images.py)
        import sys

        from trainwise.data.images import load_images

        if d.classes is not None or d.holdout_class is not None or d.label_fraction < 1.0:
            raise TrainwiseError("data.classes, data.holdout_class and data.label_fraction are not supported with "
                                 "data.source=images; arrange the class folders instead")
        splits, report = load_images(str(d.path), cfg.seed, d.val_fraction, d.test_fraction, d.standardize,
                                     d.image_size, d.channels, d.on_bad_file, d.cache_dir,
                                     quiet=not sys.stderr.isatty())
        splits.report = report.to_dict()
        return splits
    if d.source == "text":  # tokenized once into a cached id matrix, batches padded to their longest (data/text.py)
        from trainwise.data.text import load_text

        return load_text(cfg)
    table = load_source(d.source, d.path, d.target, d.task, OmegaConf.to_container(d.options, resolve=True))
    # A GAN's generator ends in tanh: its real images are scaled to [-1, 1] instead of standardised.
    scale: bool | str = "range" if (cfg.paradigm.name == "gan" and d.standardize and table.kind == "image") \
        else d.standardize
    if d.classes is not None:
        table = select_classes(table, list(d.classes))
    splits = split_table(table, cfg.seed, d.val_fraction, d.test_fraction, scale, d.holdout_class)
    if d.label_fraction < 1.0:
        splits.train = subsample(splits.train, d.label_fraction, cfg.seed, stratify=splits.task == "classification")
    return splits


def select_classes(table: Any, classes: list[int]) -> Any:
    """Keep the samples of ``classes`` and relabel them 0..k-1 in the given order (e.g. digits 5–9 → 0–4)."""
    from dataclasses import replace

    if table.task != "classification":
        raise TrainwiseError("data.classes only applies to classification data")
    present = set(np.unique(table.y).tolist())
    missing = [c for c in classes if c not in present]
    if missing or len(set(classes)) != len(classes) or len(classes) < 2:
        raise TrainwiseError(f"data.classes={classes} must list ≥ 2 distinct labels of this dataset "
                             f"(it has {sorted(present)})")
    keep = np.isin(table.y, classes)
    relabel = np.zeros(max(present) + 1, np.int64)
    relabel[classes] = np.arange(len(classes))
    names = [table.class_names[c] if c < len(table.class_names) else str(c) for c in classes]
    return replace(table, x=table.x[keep], y=relabel[table.y[keep]], class_names=names,
                   description=table.description + f"; classes {classes} only")


def subsample(split: Any, fraction: float, seed: int, stratify: bool) -> Any:
    """A deterministic (stratified) fraction of a split: the few-label regime of transfer learning."""
    from sklearn.model_selection import train_test_split

    from trainwise.data.splits import Split

    idx = np.arange(len(split))
    y = split.y.numpy()
    try:
        keep, _ = train_test_split(idx, train_size=fraction, random_state=seed, stratify=y if stratify else None)
    except ValueError as exc:
        raise TrainwiseError(f"data.label_fraction={fraction} leaves too few samples ({exc})") from None
    keep = np.sort(keep)
    return Split(split.x[keep], split.y[keep])


def build_model(cfg: DictConfig, prep: Preprocess, num_classes: int) -> torch.nn.Module:
    args: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    name = args.pop("name")
    args.pop("init_from", None)  # applied by train() after construction (see init_weights)
    args.pop("init_strict", None)
    args.pop("init_prefix", None)
    if name == "mlp" and prep.cat_categories and "cat_cardinalities" not in args:
        args["cat_cardinalities"] = [len(c) + 1 for c in prep.cat_categories]
    spec_args = get_spec(name).arguments()
    if prep.vocab_size and "vocab_size" in spec_args and "vocab_size" not in args:  # token inputs: ids 0..V-1
        args["vocab_size"] = prep.vocab_size
    out_dim = {"classification": num_classes, "multilabel": len(prep.class_names),
               "seq2seq": prep.vocab_size}.get(prep.task, 1)
    if cfg.data.holdout_class is not None:
        out_dim = 1  # anomaly runs reconstruct inputs; the class count is not an output width
    return create_model(name, prep.input_shape, out_dim, **args)


def setup(cfg: DictConfig) -> tuple[Splits, torch.nn.Module, torch.device, str]:
    """Data, model (initialised from the seed, on its device, in train mode), device and precision for a config —
    the construction every entry point shares (train, lr-find, overfit-batch)."""
    splits = load_data(cfg)
    seed_everything(cfg.seed)  # model init is part of the run's randomness
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    device = resolve_device(cfg.device)
    model.to(device).train()
    return splits, model, device, resolve_precision(cfg.precision, device)


def train(cfg: DictConfig, run_dir: str | Path | None = "auto", quiet: bool = False) -> FitResult:
    """Train the model a config describes on the data it names (``model.init_from``: start from other weights)."""
    splits = load_data(cfg)
    seed_everything(cfg.seed)  # model init is part of the run's randomness
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    report = None
    if cfg.model.get("init_from"):
        source = str(cfg.model.init_from)
        if source.startswith("preset:"):  # pretrain first, as an ordinary run beside this one
            source = str(_pretrain(source[len("preset:"):], cfg, run_dir, quiet))
        report = init_weights(model, source, bool(cfg.model.get("init_strict", False)),
                              str(cfg.model.get("init_prefix") or ""))
        import sys

        sys.stderr.write(f"initialised from {source}: {report['loaded']} tensors loaded, {len(report['missing'])} "
                         f"missing, {len(report['unexpected'])} unexpected, {len(report['mismatched'])} shape "
                         "mismatches\n")
    result = fit(model, splits, config=cfg, run_dir=run_dir, quiet=quiet)
    _write_data_report(splits, result)
    if report is not None and result.run_dir is not None:
        from trainwise.run.rundir import write_json

        write_json(result.run_dir / "init.json", report)
    return result


def _pretrain(preset: str, cfg: DictConfig, run_dir: str | Path | None, quiet: bool) -> Path:
    pre_cfg = compose(preset=preset, overrides=[f"seed={cfg.seed}", f"device={cfg.device}"])
    where = None if run_dir in (None, "auto") else f"{run_dir}-pretrain"
    r = train(pre_cfg, run_dir=where or "auto", quiet=quiet)
    assert r.run_dir is not None
    return r.run_dir


def init_weights(model: torch.nn.Module, source: str | Path, strict: bool = False, prefix: str = "") -> dict[str, Any]:
    """Load a backbone into ``model`` from a run directory (its best weights) or a weights file (.safetensors, or a
    plain state-dict .pt read with ``weights_only=True``). Partial by default: tensors whose name and shape match are
    loaded; the rest are reported (``strict``: any mismatch is an error). ``prefix`` (``model.init_prefix``) takes
    only the source tensors under that name, with it stripped: ``encoder.`` loads a SimCLR encoder into a classifier."""
    src = Path(source)
    if src.is_dir():
        files = [src / "best.safetensors", src / "final.safetensors"]
        found = [f for f in files if f.is_file()]
        if not found:
            raise TrainwiseError(f"model.init_from='{src}' holds no best.safetensors / final.safetensors")
        src = found[0]
    elif not src.is_file():
        raise TrainwiseError(f"model.init_from='{src}' does not exist; give a run directory or a weights file")
    weights = load_weights(src)
    if prefix:
        weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    own = model.state_dict()
    matched = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    report = {"source": str(src), "loaded": len(matched),
              "missing": sorted(k for k in own if k not in matched),
              "unexpected": sorted(k for k in weights if k not in own),
              "mismatched": sorted(k for k in weights if k in own and own[k].shape != weights[k].shape)}
    if strict and (report["missing"] or report["unexpected"] or report["mismatched"]):
        raise TrainwiseError(f"model.init_strict=true but '{src}' does not match the model: missing "
                             f"{report['missing'][:3]}, unexpected {report['unexpected'][:3]}, shape mismatches "
                             f"{report['mismatched'][:3]}")
    if not matched:
        raise TrainwiseError(f"no tensor of '{src}' matches the model (names or shapes differ); is it the same "
                             "architecture?")
    model.load_state_dict(matched, strict=False)
    return report


def resume(run_dir: str | Path, quiet: bool = False) -> FitResult:
    """Continue a run from its newest valid checkpoint (torn or corrupted ones are reported and skipped)."""
    rd = Path(run_dir)
    if not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    if (rd / "summary.json").is_file():  # the run ended (all epochs, early stopping, a callback, …)
        try:
            done = json.loads((rd / "summary.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise TrainwiseError(f"'{rd / 'summary.json'}' is damaged, but its presence says the run finished; "
                                 "nothing to resume (delete summary.json to resume from the newest checkpoint)") \
                from None
        done = done if isinstance(done, dict) else {}
        raise TrainwiseError(f"'{rd}' already finished ({done.get('epochs')} epochs, stopped: "
                             f"{done.get('stopped')}); nothing to resume. To train further, start a new run from its "
                             f"weights: trainwise train … model.init_from={rd}")
    cfg = compose(rd / "config.yaml")
    splits = load_data(cfg)
    seed_everything(cfg.seed)
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    result = fit(model, splits, config=cfg, resume=rd, quiet=quiet)
    _write_data_report(splits, result)
    return result


def _write_data_report(splits: Splits, result: FitResult) -> None:
    """RUN_DIR/data_report.json: what an image folder or text file held (skipped files / rows and why, cache), and
    the files a source ships with the run (text: tokenizer.json)."""
    if splits.report and result.run_dir is not None:
        from trainwise.run.rundir import write_json, write_text

        write_json(Path(result.run_dir) / "data_report.json", splits.report)
        for name, text in splits.files.items():
            write_text(Path(result.run_dir) / name, text)


def checkpoint_table(run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per checkpoint: step, epoch, batch, monitored metric, size, verified (or why not)."""
    from trainwise.train.checkpoint import list_checkpoints, verify

    rd = Path(run_dir)
    if not rd.is_dir():
        raise TrainwiseError(f"run directory '{rd}' does not exist")
    rows = []
    for folder in list_checkpoints(rd / "checkpoints"):
        reason = verify(folder)
        row: dict[str, Any] = {"name": folder.name, "step": int(folder.name.split("-")[1]),
                               "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
                               "verified": reason is None, "problem": reason or ""}
        if reason is None:
            try:
                state = json.loads((folder / "state.json").read_text())
                row.update({"epoch": state["loop"]["epoch"], "batch": state["loop"]["pos"],
                            "monitor": state["monitor"]["name"], "value": state["monitor"]["value"]})
                if not isinstance(row["value"], (int, float)) or isinstance(row["value"], bool):
                    row["value"] = None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, RecursionError):
                row.update({"verified": False, "problem": "state.json malformed"})
        rows.append(row)
    return rows


def _open_run(run_dir: str | Path) -> tuple[Path, DictConfig, Preprocess, torch.nn.Module]:
    rd = Path(run_dir)
    if not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    raw = (rd / "config.yaml").read_text()
    if "name: python" in raw:
        import yaml

        model = (yaml.safe_load(raw) or {}).get("model", {})
        if model.get("name") == "python":
            raise TrainwiseError(f"run '{rd}' trained a model object passed to trainwise.fit "
                                 f"({model.get('class', '?')}); rebuild it in Python and load best.safetensors with "
                                 "trainwise.run.rundir.load_weights")
    cfg = compose(rd / "config.yaml")
    pp = rd / "preprocess.json"
    if not pp.is_file():
        raise TrainwiseError(f"'{rd}' has no preprocess.json; it was not trained from a config")
    prep = _read_preprocess(pp)
    weights = rd / "best.safetensors"
    if not weights.is_file():
        weights = rd / "final.safetensors"
    if not weights.is_file():
        raise TrainwiseError(f"'{rd}' holds no weights (best.safetensors / final.safetensors); the run did not finish")
    num_classes = len(prep.class_names) if prep.task in ("classification", "multilabel") else 0
    model = build_model(cfg, prep, num_classes)
    try:
        model.load_state_dict(load_weights(weights))
    except RuntimeError as exc:  # missing/unexpected keys or shapes: weights of another model
        raise TrainwiseError(f"'{weights}' does not fit the model config.yaml describes "
                             f"({str(exc).splitlines()[1].strip()[:200] if len(str(exc).splitlines()) > 1 else exc}); "
                             "were the weights replaced?") from None
    model.eval()
    return rd, cfg, prep, model


def _read_preprocess(path: Path) -> Preprocess:
    """``preprocess.json`` checked against the fields of :class:`Preprocess` and their types (the file may have been
    edited or downloaded), so a wrong file is one error line, not a TypeError deep in predict or serve."""
    import dataclasses

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TrainwiseError(f"cannot read '{path}': {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(data, dict):
        raise TrainwiseError(f"'{path}' must hold a JSON object")
    fields = {f.name: f for f in dataclasses.fields(Preprocess)}
    extra = sorted(set(data) - set(fields))
    if extra:
        raise TrainwiseError(f"'{path}' has unknown key '{extra[0]}'; it was not written by this trainwise (or was "
                             "edited): remove the key")
    for name, value in data.items():
        want = {int: (int,), float: (int, float), str: (str,)}.get(type(fields[name].default), (list,))
        if isinstance(value, bool) or not isinstance(value, want):
            raise TrainwiseError(f"'{path}' key '{name}' has the wrong type ({type(value).__name__})")
    try:
        prep = Preprocess(**data)
        shape = [int(v) for v in prep.input_shape]
    except (TypeError, ValueError) as exc:
        raise TrainwiseError(f"'{path}' is malformed: {exc}") from None
    if not shape or any(v < 1 for v in shape):
        raise TrainwiseError(f"'{path}' has input_shape {prep.input_shape}; every size must be ≥ 1")
    return prep


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, float]:
    """Re-evaluate a run's saved (best) weights on one of its splits, rebuilt deterministically from its seed."""
    from trainwise.data.loaders import make_loader

    rd, cfg, prep, model = _open_run(run_dir)
    splits = load_data(cfg)
    part = getattr(splits, split)
    if part is None:
        raise TrainwiseError(f"run '{rd}' has no {split} split (its fraction was 0)")
    device = resolve_device(cfg.device)
    model.to(device)
    task = make_task(prep.task, splits.num_classes, 0.0, prep.y_mean, prep.y_std, cfg=cfg)  # the run's paradigm
    data = part if isinstance(part, torch.utils.data.Dataset) else (part.x, part.y)  # npy/images: memory-mapped
    loader = make_loader(data, cfg.data.eval_batch_size, shuffle=False, drop_last=False, seed=cfg.seed, device=device)
    return evaluate(model, loader, task, resolve_precision(cfg.precision, device), device)


def _read_inputs(path: Path, prep: Preprocess, target: str | None) -> tuple[np.ndarray, Any]:
    """Raw features from CSV (columns matched by name) or .npz (array ``x``), preprocessed as in training."""
    if not path.is_file():
        raise TrainwiseError(f"input file '{path}' does not exist")
    expected = int(np.prod(prep.input_shape))
    if path.suffix == ".npz":
        try:
            from trainwise.data.sources import check_npz_members

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
    import pandas as pd

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
    import pandas as pd

    out = df.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & df.notna()
    if bad.to_numpy().any():
        col = bad.any().idxmax()
        row = int(bad[col].to_numpy().argmax())
        raise TrainwiseError(f"'{path}' column '{col}' row {row + 1} holds {df[col].iloc[row]!r}, not a number; "
                             "numeric feature columns must hold numbers")
    return out.to_numpy(dtype=np.float64)


def predict_run(run_dir: str | Path, input_path: str | Path, out: str | Path | None = None,
                force: bool = False, fmt: str = "eager") -> Path:
    """Write predictions for raw inputs (CSV, .npz or an image file) next to the input or to ``out``; never
    overwrites silently. ``fmt``: ``eager`` (best weights), ``onnx`` (export/model.onnx) or ``int8``
    (quantized/), the latter two from ``trainwise export`` / ``trainwise quantize``."""
    from trainwise.deploy.artifacts import FORMATS, Run, load_predictor
    from trainwise.deploy.images import is_image, read_image

    if fmt not in FORMATS:
        raise TrainwiseError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    rd, cfg, prep, model = _open_run(run_dir)
    if cfg.data.get("source") == "text":  # raw strings through the run's tokenizer (deploy/text.py)
        from trainwise.deploy.text import predict_file

        inp = Path(input_path)
        dest = refuse_existing(Path(out) if out is not None else inp.with_name(f"{inp.stem}.predictions.csv"), force)
        return predict_file(rd, cfg, prep, model, inp, dest, fmt)
    if cfg.paradigm.name not in ("supervised", "distill"):
        raise TrainwiseError(f"'{rd}' is a {cfg.paradigm.name} run; predict writes class/value predictions of "
                             "supervised runs (use trainwise evaluate, or load its weights in Python)")
    inp = Path(input_path)
    dest = refuse_existing(Path(out) if out is not None else inp.with_name(f"{inp.stem}.predictions.csv"), force)
    # A missing export/quantized artefact is reported before any input is read.
    predictor = load_predictor(Run(rd, cfg, prep, model), fmt) if fmt != "eager" else None
    if not is_image(inp) and inp.suffix not in (".csv", ".npz"):
        raise TrainwiseError(f"input '{inp}' must be a .csv, .npz or image file (.png, .jpg, ...)")
    x = read_image(inp, prep, cfg) if is_image(inp) else _read_inputs(inp, prep, cfg.data.target)[0]
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
    import pandas as pd

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
    from trainwise.run.rundir import atomic_write

    try:  # atomic: a full disk never leaves half a CSV in place of the file --force replaces
        atomic_write(dest, lambda p: pd.DataFrame(cols).to_csv(p, index=False))
    except OSError as exc:
        raise write_error(dest, exc) from None
    return dest


open_run = _open_run  # public name (distillation loads its teacher through it)

"""Where data comes from: embedded datasets, CSV, .npz, or a user's ``module:function``.

Every source returns a :class:`Table` of raw arrays. Splitting and preprocessing happen afterwards
(``splits.py``) so that statistics are computed on the training split only.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.data.synthetic import SYNTHETIC, load_synthetic
from trainwise.data.table import Table
from trainwise.errors import TrainwiseError, suggest
from trainwise.safety import check_memory, gb, require_code_allowed

EMBEDDED = ("digits", "breast_cancer", "wine", "iris", "diabetes")


def _embedded(name: str) -> Table:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "diabetes":
        return Table(x, np.asarray(bunch.target, dtype=np.float32), "regression",
                     feature_names=list(bunch.feature_names), description="scikit-learn diabetes (regression)")
    y = np.asarray(bunch.target, dtype=np.int64)
    classes = [str(c) for c in getattr(bunch, "target_names", range(int(y.max()) + 1))]
    if name == "digits":  # 8×8 grey images, values 0..16, as (N, 1, 8, 8)
        return Table(x.reshape(-1, 1, 8, 8), y, "classification", kind="image", class_names=classes,
                     description="scikit-learn digits: 1797 8×8 images, 10 classes")
    return Table(x, y, "classification", feature_names=[str(f) for f in bunch.feature_names], class_names=classes,
                 description=f"scikit-learn {name}")


def _check_finite(x: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise TrainwiseError(f"{where} holds NaN or inf ({int(bad.sum())} values, first at row {int(idx[0])}); "
                             "clean or impute them before training")


def classification_target(y: np.ndarray, task: str, where: str) -> tuple[np.ndarray, str, list[str]]:
    """Decide the task and encode labels. Integer labels ≥ 0 with gaps ({3, 7, 12}) become 0..K-1 with the original
    values as class names; negative labels and a single class are refused."""
    if task == "auto":
        if y.dtype.kind in "OUSb":
            task = "classification"
        elif y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y[np.isfinite(y)], 1) == 0)
                                      and len(np.unique(y)) <= 50):
            task = "classification"
        else:
            task = "regression"
    if task == "regression":
        try:
            yf = y.astype(np.float32)
        except (TypeError, ValueError):
            raise TrainwiseError(f"{where}: regression targets must be numbers") from None
        _check_finite(yf, f"{where} target")
        return yf, task, []
    if y.dtype.kind in "OUSb":
        names = sorted({str(v) for v in y})
        if len(names) < 2:
            raise TrainwiseError(f"{where}: every label is '{names[0]}' — one class only, nothing to learn; add "
                                 "samples of the other classes")
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[str(v)] for v in y], dtype=np.int64), task, names
    if y.dtype.kind == "f":
        _check_finite(y, f"{where} target")
        if not np.all(np.mod(y, 1) == 0):
            raise TrainwiseError(f"{where}: classification labels must be integers 0..C-1; "
                                 "use data.task=regression for continuous targets")
    yi = y.astype(np.int64)
    if yi.min() < 0:  # often a "missing/ignore" sentinel (-1), which must not silently become a class
        raise TrainwiseError(f"{where}: labels must be ≥ 0 but found {int(yi.min())}; drop the unlabelled rows or "
                             "renumber the classes from 0")
    values = np.unique(yi)
    if len(values) < 2:
        raise TrainwiseError(f"{where}: every label is {int(values[0])} — one class only, nothing to learn; "
                             "add samples of the other classes (or use data.task=regression for numeric targets)")
    if values[0] == 0 and values[-1] == len(values) - 1:
        return yi, task, [str(i) for i in range(len(values))]
    # Labels such as {3, 7, 12}: renumbered 0..K-1 in sorted order, the original values kept as the class
    # names, which predict/serve/export print — so outputs speak the user's labels, and the model has K outputs
    # rather than max+1 with never-seen classes.
    return np.searchsorted(values, yi).astype(np.int64), task, [str(int(v)) for v in values]


def _csv(path: str, target: str, task: str) -> Table:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise TrainwiseError(f"data file '{p}' does not exist (set data.path=FILE)")
    try:
        df = pd.read_csv(p)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TrainwiseError(f"cannot read CSV '{p}': {str(exc).splitlines()[0]}") from None
    if len(df) == 0:
        raise TrainwiseError(f"CSV '{p}' has no rows; the dataset is empty")
    if target not in df.columns:
        raise TrainwiseError(f"CSV '{p}' has no column '{target}'{suggest(target, map(str, df.columns))}; "
                             f"columns are: {', '.join(map(str, df.columns))}")
    if df[target].isna().any():
        raise TrainwiseError(f"target column '{target}' has {int(df[target].isna().sum())} missing values; "
                             "drop those rows first")
    y, task, class_names = classification_target(df[target].to_numpy(), task, f"CSV '{p}'")
    feats = df.drop(columns=[target])
    if feats.shape[1] == 0:
        raise TrainwiseError(f"CSV '{p}' has no feature columns besides '{target}'")
    numeric = [c for c in feats.columns if pd.api.types.is_numeric_dtype(feats[c]) and not pd.api.types.is_bool_dtype(feats[c])]
    categorical = [c for c in feats.columns if c not in numeric]
    missing = {str(c): int(n) for c, n in feats.isna().sum().items() if n}
    num = feats[numeric].to_numpy(dtype=np.float64)
    if np.isinf(num).any():
        raise TrainwiseError(f"CSV '{p}' holds inf values in numeric columns; replace them before training")
    # Missing numeric values stay NaN here and are imputed with the *train-split* median in splits.py.
    cats, categories = [], []
    for c in categorical:
        col = feats[c]
        names = sorted({str(v) for v in col.dropna()})
        index = {n: i + 1 for i, n in enumerate(names)}  # 0 = missing/unseen
        cats.append(np.array([0 if v is None or (isinstance(v, float) and np.isnan(v)) else index[str(v)]
                              for v in col], dtype=np.float64))
        categories.append(names)
    x = np.column_stack([num] + cats) if cats else num
    return Table(x.astype(np.float32), y, task, feature_names=[str(c) for c in numeric + categorical],
                 class_names=class_names, cat_columns=[str(c) for c in categorical], cat_categories=categories,
                 missing=missing, description=f"CSV {p.name}: {len(df)} rows, {len(numeric)} numeric and "
                                                   f"{len(categorical)} categorical features")


def check_npz_members(path: str | Path, names: tuple[str, ...]) -> None:
    """Check the headers of ``names`` in a .npz before anything is loaded: a zip file at all, a real (not complex)
    dtype, at least 1-d (``x``: at least 2-d, samples × features), and a declared size that the member's bytes hold
    and memory can take — a few-KB file may declare a 10⁶ × 10⁶ array. Members that are absent are left to the
    caller's own message."""
    import zipfile

    from numpy.lib import format as npformat

    p = Path(path)
    if not zipfile.is_zipfile(p):
        raise TrainwiseError(f"'{p}' is not a .npz file (not a zip archive); save it with numpy.savez")
    total = 0
    try:
        with zipfile.ZipFile(p) as z:
            for name in names:
                try:
                    info = z.getinfo(f"{name}.npy")
                except KeyError:
                    continue
                with z.open(info) as f:
                    version = npformat.read_magic(f)
                    read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                    shape, _, dtype = read(f, max_header_size=10_000)
                    header = f.tell() if f.seekable() else None
                where = f"'{p}' array '{name}'"
                if dtype.hasobject:  # pickled Python objects: never loaded (it could run code)
                    raise TrainwiseError(f"'{p}' holds an object (pickled) array '{name}', which trainwise never "
                                         "loads (it could run code); save numeric arrays, e.g. np.savez(path, "
                                         "x=x.astype('float32'), y=y.astype('int64'))")
                if dtype.kind == "c":
                    raise TrainwiseError(f"{where} is complex ({dtype}); features must be real numbers (split real "
                                         "and imaginary parts into separate features)")
                if dtype.kind == "V":  # raw bytes or a record array: no number or label can be read from it
                    raise TrainwiseError(f"{where} is raw bytes or records ({dtype}); save numbers (or string "
                                         "labels), e.g. np.savez(path, x=x.astype('float32'), y=y)")
                if len(shape) == 0 or (name == "x" and len(shape) < 2):
                    raise TrainwiseError(f"{where} has shape {shape}; '{name}' must be "
                                         + ("(samples, features...)" if name == "x" else "one value per sample"))
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if header is not None and declared > info.file_size - header:
                    raise TrainwiseError(f"{where} declares shape {shape} ({gb(declared)}) but holds only "
                                         f"{info.file_size - header:,} bytes; the file is damaged")
                total += declared
    except TrainwiseError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise TrainwiseError(f"cannot read .npz '{p}': {str(exc).splitlines()[0]}") from None
    check_memory(2 * total, f"loading '{p}' (arrays and their float32 copies)", "use a smaller file")


def _npz(path: str, task: str) -> Table:
    p = Path(path)
    if not p.is_file():
        raise TrainwiseError(f"data file '{p}' does not exist (set data.path=FILE)")
    check_npz_members(p, ("x", "y"))
    try:
        with np.load(p, allow_pickle=False) as f:  # allow_pickle=False: a .npz must never run code
            if "x" not in f.files or "y" not in f.files:
                raise TrainwiseError(f"'{p}' must hold arrays named 'x' and 'y' (found: {', '.join(f.files)})")
            x, y = f["x"], f["y"]
    except TrainwiseError:
        raise
    except (OSError, ValueError) as exc:
        if "allow_pickle" in str(exc):  # numpy's refusal to unpickle an object array: say what to do instead
            raise TrainwiseError(f"'{p}' holds an object (pickled) array, which trainwise never loads (it could run "
                                 "code); save numeric arrays, e.g. np.savez(path, x=x.astype('float32'), "
                                 "y=y.astype('int64'))") from None
        raise TrainwiseError(f"cannot read .npz '{p}': {str(exc).splitlines()[0]}") from None
    return from_arrays(x, y, task, where=f"'{p}'")


def from_arrays(x: Any, y: Any, task: str = "auto", where: str = "arrays") -> Table:
    """Wrap user arrays (numpy or torch) as a Table, checking them."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if len(x) == 0:
        raise TrainwiseError(f"{where}: the dataset is empty")
    if len(x) != len(y):
        raise TrainwiseError(f"{where}: x has {len(x)} rows but y has {len(y)}; they must match")
    try:
        x = x.astype(np.float32)
    except (TypeError, ValueError):
        raise TrainwiseError(f"{where}: features must be numeric") from None
    _check_finite(x, f"{where} features")
    if y.ndim == 2 and y.shape[1] > 1 and task in ("auto", "multilabel"):  # (N, L) indicator matrix
        if not np.isin(y, (0, 1)).all():
            raise TrainwiseError(f"{where}: a 2-D target must be a 0/1 indicator matrix (multi-label)")
        kind = "image" if x.ndim == 4 else "tabular"
        return Table(x, y.astype(np.float32), "multilabel", kind=kind, class_names=[str(i) for i in range(y.shape[1])],
                     description=f"{where}: {len(x)} samples, {y.shape[1]} labels")
    y, task, class_names = classification_target(y.reshape(len(y)) if y.ndim > 1 and y.shape[1] == 1 else y,
                                                  task, where)
    kind = "image" if x.ndim == 4 else "tabular"
    return Table(x, y, task, kind=kind, class_names=class_names, description=f"{where}: {len(x)} samples")


def _module_function(spec: str, task: str) -> Table:
    mod_name, _, fn_name = spec.partition(":")
    require_code_allowed(f"data.source={spec}")  # before the import: importing a module already runs its code
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise TrainwiseError(f"cannot load data.source={spec}: {exc}; give an importable module:function") from None
    out = fn()
    if isinstance(out, Table):
        return out
    if isinstance(out, tuple) and len(out) == 2:
        return from_arrays(out[0], out[1], task, where=spec)
    raise TrainwiseError(f"data.source={spec} must return (x, y) arrays or a trainwise Table")


def load_source(source: str, path: str | None = None, target: str | None = None, task: str = "auto",
                options: dict[str, Any] | None = None) -> Table:
    """Load the raw table named by ``data.source`` (``options``: a synthetic source's arguments)."""
    if options and source not in SYNTHETIC:
        raise TrainwiseError(f"data.options only apply to the synthetic sources ({', '.join(SYNTHETIC)}), "
                             f"not data.source={source}")
    if source in SYNTHETIC:
        table = load_synthetic(source, dict(options or {}))
    elif source in EMBEDDED:
        table = _embedded(source)
    elif source == "csv":
        table = _csv(str(path), str(target), task)
    elif source == "npz":
        table = _npz(str(path), task)
    elif ":" in source:
        table = _module_function(source, task)
    else:
        known = EMBEDDED + tuple(SYNTHETIC) + ("csv", "npz")
        raise TrainwiseError(f"unknown data.source '{source}'{suggest(source, known)}; "
                             f"use one of {', '.join(known[:-2])}, csv, npz or module:function")
    if task != "auto" and table.task != task:
        if task == "regression":
            table.y, table.task, table.class_names = table.y.astype(np.float32), "regression", []
        else:
            raise TrainwiseError(f"data.task={task} but the targets of {source} are continuous")
    if len(table.x) == 0:
        raise TrainwiseError(f"data.source={source}: the dataset is empty")
    return table

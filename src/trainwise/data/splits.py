"""Deterministic (stratified) train/val/test splits and preprocessing fitted on the train split only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from trainwise.data.table import Table
from trainwise.errors import TrainwiseError


@dataclass
class Preprocess:
    """What is applied to raw features before the model; saved as ``preprocess.json`` in the run directory.

    Tabular: per-feature mean/std over numeric columns, NaNs imputed with the train median.
    Images: one scalar mean/std (per-pixel statistics would break translation equivariance).
    Categorical code columns pass through unchanged.
    """

    kind: str = "tabular"
    num_numeric: int = 0
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    median: list[float] = field(default_factory=list)
    task: str = "classification"
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    cat_columns: list[str] = field(default_factory=list)
    cat_categories: list[list[str]] = field(default_factory=list)
    input_shape: list[int] = field(default_factory=list)
    y_mean: float = 0.0  # regression targets are standardised with train statistics
    y_std: float = 1.0
    vocab_size: int = 0  # token inputs: ids 0..vocab_size-1 (never standardised)

    @classmethod
    def fit(cls, table: Table, x_train: np.ndarray, y_train: np.ndarray, standardize: bool | str) -> Preprocess:
        """``standardize``: True (zero mean, unit variance), False, or ``"range"`` (images: train min..max →
        [-1, 1], what a tanh generator produces)."""
        p = cls(kind=table.kind, num_numeric=table.num_numeric, task=table.task, class_names=table.class_names,
                feature_names=table.feature_names, cat_columns=table.cat_columns,
                cat_categories=table.cat_categories, input_shape=list(x_train.shape[1:]), vocab_size=table.vocab_size)
        if table.task == "regression" and standardize and len(y_train):
            p.y_mean, p.y_std = float(y_train.mean()), float(y_train.std()) or 1.0
        if table.kind == "tokens":
            return p
        if table.kind == "image":
            if standardize == "range":
                lo, hi = float(x_train.min()), float(x_train.max())
                p.mean, p.std = [(lo + hi) / 2], [(hi - lo) / 2 or 1.0]
            elif standardize:
                p.mean, p.std = [float(x_train.mean())], [float(x_train.std()) or 1.0]
            return p
        if table.kind == "sequence":  # per feature over all samples and timesteps of (N, T, F)
            if standardize:
                flat = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
                std = flat.std(0)
                p.mean, p.std = flat.mean(0).tolist(), np.where(std > 0, std, 1.0).tolist()
            return p
        num = x_train[:, : p.num_numeric].astype(np.float64)
        p.median = np.nan_to_num(np.nanmedian(num, axis=0) if len(num) else np.zeros(p.num_numeric)).tolist()
        if standardize:
            filled = np.where(np.isnan(num), np.asarray(p.median), num)
            std = filled.std(axis=0)
            p.mean, p.std = filled.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()
        return p

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "tokens":
            return np.asarray(x, dtype=np.int64)
        x = np.asarray(x, dtype=np.float32).copy()
        if self.kind == "sequence":
            if self.mean:
                x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
            return x.astype(np.float32)
        if self.kind == "image":
            if self.mean:
                x = (x - self.mean[0]) / self.std[0]
            return x.astype(np.float32)
        num: np.ndarray = x[:, : self.num_numeric]
        if self.median:
            nan = np.isnan(num)
            if nan.any():
                num[nan] = np.take(np.asarray(self.median, dtype=np.float32), np.nonzero(nan)[1])
        if self.mean:
            num = (num - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        x[:, : self.num_numeric] = num
        return x

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Split:
    """One split as tensors: ``x`` (N, *feature_shape) float32, ``y`` (N,) int64 or (N,) float32."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Splits:
    train: Split
    val: Split | None
    test: Split | None
    preprocess: Preprocess
    num_classes: int = 0  # 0 for regression
    missing: dict[str, int] = field(default_factory=dict)
    description: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # data.source=images: written as RUN_DIR/data_report.json
    files: dict[str, str] = field(default_factory=dict)  # more files for RUN_DIR (data.source=text: tokenizer.json)

    @property
    def task(self) -> str:
        return self.preprocess.task


def stratify_labels(y: np.ndarray, task: str) -> np.ndarray | None:
    if task != "classification":
        return None
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 else None  # a class with one sample cannot be stratified


def split_table(table: Table, seed: int, val_fraction: float, test_fraction: float,
                standardize: bool | str = True, holdout_class: int | None = None) -> Splits:
    """Deterministic split from ``seed``: first test off the whole set, then val off the rest (stratified).

    ``holdout_class``: anomaly detection — that class is removed before splitting (preprocessing never sees it),
    all of its samples join the test split, and every split's labels become the anomaly flag (1 = held out).
    """
    if holdout_class is not None:
        return _split_with_holdout(table, seed, val_fraction, test_fraction, standardize, holdout_class)
    n = len(table.x)
    idx = np.arange(n)
    test_idx = np.array([], dtype=np.int64)
    val_idx = np.array([], dtype=np.int64)
    try:
        if test_fraction > 0:
            idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                             stratify=stratify_labels(table.y, table.task))
        if val_fraction > 0:
            idx, val_idx = train_test_split(idx, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                            stratify=stratify_labels(table.y[idx], table.task))
    except ValueError as exc:
        raise TrainwiseError(f"cannot split {n} samples into train/val/test ({exc}); "
                             "use more data or smaller data.val_fraction / data.test_fraction") from None
    prep = Preprocess.fit(table, table.x[idx], table.y[idx], standardize)

    def make(ix: np.ndarray) -> Split | None:
        if len(ix) == 0:
            return None
        x = torch.from_numpy(prep.apply(table.x[ix]))
        y = torch.from_numpy(table.y[ix])
        if prep.task == "regression":
            y = (y - prep.y_mean) / prep.y_std
        return Split(x, y)

    train = make(idx)
    assert train is not None
    num_classes = int(table.y.max()) + 1 if table.task == "classification" else table.vocab_size
    if table.task == "multilabel":
        num_classes = table.y.shape[1]
    if table.task == "classification":
        num_classes = max(num_classes, len(table.class_names))
    return Splits(train, make(val_idx), make(test_idx), prep, num_classes, table.missing, table.description)


def _split_with_holdout(table: Table, seed: int, val_fraction: float, test_fraction: float,
                        standardize: bool | str, k: int) -> Splits:
    from dataclasses import replace

    check_holdout(table.y, k, table.task)
    normal = table.y != k
    base = split_table(replace(table, x=table.x[normal], y=table.y[normal]), seed, val_fraction, test_fraction,
                       standardize)
    anomalies = torch.from_numpy(base.preprocess.apply(table.x[~normal]))

    def flag(split: Split | None, extra: torch.Tensor | None = None) -> Split | None:
        if split is None:
            return None
        x, y = split.x, torch.zeros(len(split), dtype=torch.int64)
        if extra is not None:
            x, y = torch.cat([x, extra]), torch.cat([y, torch.ones(len(extra), dtype=torch.int64)])
        return Split(x, y)

    if base.test is None:
        raise TrainwiseError(HOLDOUT_TEST_ERROR)
    base.preprocess.class_names = ["normal", f"class {k} (held out)"]
    return Splits(cast(Split, flag(base.train)), flag(base.val), flag(base.test, anomalies), base.preprocess, 2, base.missing,
                  base.description + f"; class {k} held out as anomalies ({int((~normal).sum())} in test)")


# ---- row selection: data.classes / data.holdout_class / data.label_fraction ---------------------------------------
# One implementation on label arrays and row indices, used by the in-memory sources (build.select_classes,
# build.subsample, _split_with_holdout) and by the memory-mapped ones (npy, images), which select rows by index and
# never load the samples themselves.


def class_selection(y: np.ndarray, classes: list[int], names: list[str], task: str
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``data.classes``: (mask of the samples kept, old label → new label lookup (−1: dropped), the kept classes'
    names in the given order). Labels are class indices 0..K−1 (positions in the sorted label names)."""
    if task != "classification":
        raise TrainwiseError("data.classes only applies to classification data")
    present = set(np.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing or len(set(classes)) != len(classes) or len(classes) < 2:
        listed = ", ".join(f"{c}={names[c]}" if c < len(names) and names[c] != str(c) else str(c)
                           for c in sorted(present))
        raise TrainwiseError(f"data.classes={classes} must list ≥ 2 distinct labels of this dataset "
                             f"(it has {listed})")
    relabel = np.full(max(present) + 1, -1, np.int64)
    relabel[classes] = np.arange(len(classes))
    return np.isin(y, classes), relabel, [names[c] if c < len(names) else str(c) for c in classes]


def check_holdout(y: np.ndarray, k: int, task: str) -> None:
    if task != "classification" or k not in set(np.unique(y).tolist()):
        raise TrainwiseError(f"data.holdout_class={k} is not a class of this dataset; pick one of its labels")


HOLDOUT_TEST_ERROR = "data.holdout_class needs a test split (data.test_fraction > 0) to hold the anomalies"


def fraction_positions(y: np.ndarray, fraction: float, seed: int, stratify: bool) -> np.ndarray:
    """``data.label_fraction``: sorted positions of a deterministic (stratified) ``fraction`` of a split's labels."""
    try:
        keep, _ = train_test_split(np.arange(len(y)), train_size=fraction, random_state=seed,
                                   stratify=y if stratify else None)
    except ValueError as exc:
        raise TrainwiseError(f"data.label_fraction={fraction} leaves too few samples ({exc})") from None
    return np.sort(keep)


@dataclass
class RowSelection:
    """``data.classes`` then ``data.holdout_class`` as a mapping of labels, for datasets selected by row index."""

    names: list[str]
    classes: list[int] | None = None
    holdout: int | None = None

    @classmethod
    def make(cls, y: np.ndarray, names: list[str], task: str, classes: list[int] | None,
             holdout: int | None) -> RowSelection:
        """Checked against the training labels ``y`` (original class indices)."""
        sel = cls(list(names), list(classes) if classes is not None else None, holdout)
        if classes is not None:
            _, relabel, sel.names = class_selection(y, sel.classes, names, task)  # type: ignore[arg-type]
            y = relabel[y[np.isin(y, classes)]]
        if holdout is not None:
            check_holdout(y, holdout, task)
            sel.names = ["normal", f"class {holdout} (held out)"]
        return sel

    def apply(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Labels ``y`` (original class indices) → (mask of the normal rows kept, mask of the held-out rows, new
        labels: relabelled 0..k−1, or with a held-out class the anomaly flag (1 = held out), and the relabelled
        classes before flagging, which splits are stratified by as for in-memory data)."""
        keep = np.ones(len(y), bool)
        if self.classes is not None:
            keep = np.isin(y, self.classes)
            relabel = np.full(max(int(y.max(initial=0)), *self.classes) + 1, -1, np.int64)
            relabel[self.classes] = np.arange(len(self.classes))
            y = relabel[y]
        held = np.zeros(len(y), bool)
        classes = y
        if self.holdout is not None:
            held = keep & (y == self.holdout)
            keep &= ~held
            y = held.astype(np.int64)
        return keep, held, y, classes

    @property
    def active(self) -> bool:
        return self.classes is not None or self.holdout is not None

    def describe(self, anomalies: int) -> str:
        parts = [f"classes {self.classes} only"] if self.classes is not None else []
        if self.holdout is not None:
            parts.append(f"class {self.holdout} held out as anomalies ({anomalies} in test)")
        return "".join(f"; {p}" for p in parts)


def cut_rows(idx: np.ndarray, y: np.ndarray, task: str, seed: int, val_fraction: float, test_fraction: float,
             cut_val: bool, cut_test: bool, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``idx`` (labels ``y`` indexed by row) → (train, val, test) rows, as :func:`split_table` cuts in-memory
    data: test off the whole set first, then val off the rest, stratified, from ``seed``. ``cut_val``/``cut_test``
    False: that split is given elsewhere (its own files or folder) and nothing is cut for it."""
    val_idx = test_idx = np.array([], np.int64)
    try:
        if test_fraction > 0 and cut_test:
            idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                             stratify=stratify_labels(y[idx], task))
        if val_fraction > 0 and cut_val:
            frac = val_fraction / (1 - (test_fraction if cut_test else 0))
            idx, val_idx = train_test_split(idx, test_size=frac, random_state=seed,
                                            stratify=stratify_labels(y[idx], task))
    except ValueError as exc:
        raise TrainwiseError(f"cannot split {what} into train/val/test ({exc}); use more data or smaller "
                             "data.val_fraction / data.test_fraction") from None
    return idx, val_idx, test_idx

"""``data.source=npy``: arrays larger than memory, read from ``.npy`` files through a memory map.

``data.path=DIR`` holds ``x.npy`` (N, *feature_shape) and ``y.npy`` (N,); optionally ``x_val.npy``/``y_val.npy`` and
``x_test.npy``/``y_test.npy`` as given splits (otherwise val/test are cut from ``x.npy`` exactly as for in-memory
data: stratified, from the seed). ``x`` is opened with ``mmap_mode="r"`` and never read whole: normalisation
statistics come from one chunked pass over the training rows, and each batch is gathered from the map with its
indices sorted (reads in file order; the order of samples inside a batch does not change the mean loss). Labels are
small (8 bytes a sample) and live in memory.

Every process opens the file itself (the map is re-opened lazily in each DataLoader worker): pickling an
``np.memmap`` to a worker would copy the whole array.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainwise.data.loaders import Collated
from trainwise.data.sources import classification_target
from trainwise.data.splits import (
    HOLDOUT_TEST_ERROR,
    Preprocess,
    RowSelection,
    Splits,
    cut_rows,
    fraction_positions,
)
from trainwise.errors import TrainwiseError
from trainwise.safety import check_memory

CHUNK_BYTES = 2 << 20  # raw bytes read per step of the statistics pass (≈5× that at peak, in float64)


def _open(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise TrainwiseError(f"'{path}' does not exist; data.source=npy needs DIR/x.npy and DIR/y.npy")
    try:  # allow_pickle=False: an object array is refused, never unpickled
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise TrainwiseError(f"'{path}' holds an object (pickled) array, which trainwise never loads; save a "
                                 "numeric array (np.save(path, x.astype('float32')))") from None
        raise TrainwiseError(f"cannot read '{path}': {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise TrainwiseError(f"cannot read '{path}': {str(exc).splitlines()[0]}") from None


class _Rows:
    """``split.x[key]`` for code that reads a split as a tensor (reports, export parity, quantize calibration):
    ``key`` a slice or integer positions; preprocessed float32 rows in the order asked for, so they line up with
    ``split.y[key]``. Refused before reading when the rows would not fit in the memory available."""

    def __init__(self, split: MemmapSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: slice | Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(key, slice):
            positions = np.arange(len(self.split))[key]
        else:
            positions = np.asarray(key, dtype=np.int64).reshape(-1)
        x = self.split._map()
        need = 2 * len(positions) * int(np.prod(x.shape[1:])) * max(x.itemsize, 4)  # rows as read + as float32
        check_memory(need, f"reading {len(positions):,} rows of '{self.split.path}' into memory",
                     "this command reads the split whole; use fewer samples or a machine with more memory")
        return torch.from_numpy(self.split.read(positions))


class MemmapSplit(Dataset):
    """Rows ``rows`` of ``x.npy`` (memory-mapped) with their labels; batches are preprocessed on the fly."""

    def __init__(self, path: Path, rows: np.ndarray, y: np.ndarray, prep: Preprocess) -> None:
        self.path, self.rows, self.y_all, self.prep = path, np.asarray(rows, np.int64), y, prep
        self._x: np.ndarray | None = None  # opened on first use in each process
        self.y = torch.from_numpy(y[self.rows])  # (n,) for code that reads labels (doctor, reports)
        self.x = _Rows(self)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_x"] = None  # a worker re-opens the map instead of receiving a copy of the array
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def _map(self) -> np.ndarray:
        if self._x is None:
            self._x = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._x

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Preprocessed rows at ``positions``, in that order (read from the map in file order, then put back)."""
        rows = self.rows[positions]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self._map().shape[1:]), np.float32)
        out[order] = self.prep.apply(self._map()[rows[order]])
        return out

    def __getitems__(self, positions: list[int]) -> Collated:
        rows = np.sort(self.rows[positions])  # file order: sequential reads from the map
        x = self.prep.apply(self._map()[rows])  # (B, *feature_shape) float32, a copy of B rows only
        return Collated((torch.from_numpy(x), torch.from_numpy(self.y_all[rows])))

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([position])
        return x[0], y[0]


def train_stats(x: np.ndarray, rows: np.ndarray, image: bool, where: Path) -> tuple[list[float], list[float]]:
    """Mean and std of the training rows (one scalar for images, per feature otherwise), in float64, chunk by chunk;
    also refuses NaN/inf anywhere in those rows."""
    row_bytes = max(1, int(np.prod(x.shape[1:])) * x.itemsize)
    step = max(1, CHUNK_BYTES // row_bytes)
    rows = np.sort(rows)
    width = 1 if image else int(np.prod(x.shape[1:]))
    s1, s2, count = np.zeros(width), np.zeros(width), 0
    for i in range(0, len(rows), step):
        chunk = np.asarray(x[rows[i:i + step]], dtype=np.float64).reshape(len(rows[i:i + step]), -1)
        if not np.isfinite(chunk).all():
            raise TrainwiseError(f"'{where}' holds NaN or inf (in rows {int(rows[i])}..{int(rows[i:i + step][-1])}); "
                                 "clean them before training")
        if image:
            chunk = chunk.reshape(-1, 1)
        s1 += chunk.sum(0)
        s2 += np.einsum("ij,ij->j", chunk, chunk)  # no (rows, width) temporary
        count += len(chunk)
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def _labels(path: Path, n: int, task: str, where: Path) -> tuple[np.ndarray, str, list[str]]:
    y = _open(path, mmap=False)
    if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise TrainwiseError(f"'{path}' must be a 1-D array of labels or targets (shape {y.shape})")
    y = y.reshape(len(y))
    if len(y) != n:
        raise TrainwiseError(f"'{where}' has {n} rows but '{path}' has {len(y)}; they must match")
    return classification_target(y, task, f"'{path}'")


def load_npy(path: str, task: str, seed: int, val_fraction: float, test_fraction: float,
             standardize: bool | str = True, classes: list[int] | None = None, holdout_class: int | None = None,
             label_fraction: float = 1.0) -> Splits:
    """Splits whose parts are :class:`MemmapSplit` Datasets (the DataLoader path) over ``DIR/x.npy``.

    ``classes`` / ``holdout_class`` / ``label_fraction``: as for in-memory data (``build.load_data``), applied to the
    row indices. A given ``x_val.npy`` / ``x_test.npy`` is selected the same way; with a held-out class, the test
    split's anomalies are the held-out class's rows of the test file when it is given (``x.npy``'s own rows of that
    class are then left out), else those of ``x.npy``.
    """
    d = Path(path)
    if not d.is_dir():
        raise TrainwiseError(f"data.source=npy needs data.path=DIR holding x.npy and y.npy; '{d}' is not a directory")
    xp = d / "x.npy"
    x = _open(xp, mmap=True)
    if x.dtype.kind not in "fiub" or x.ndim < 2:
        raise TrainwiseError(f"'{xp}' must be a numeric array of shape (N, features…), not {x.dtype} {x.shape}")
    if len(x) == 0:
        raise TrainwiseError(f"'{xp}' is empty")
    if x.ndim == 3:
        raise TrainwiseError(f"'{xp}' has shape {x.shape}: give (N, features) or images (N, C, H, W)")
    y, task, names = _labels(d / "y.npy", len(x), task, xp)
    sel = RowSelection.make(y, names, task, classes, holdout_class)
    keep, held, y, strat = sel.apply(y) if sel.active else (np.ones(len(y), bool), np.zeros(len(y), bool), y, y)
    given: dict[str, tuple[Path, np.ndarray, np.ndarray]] = {}  # part → (file, rows used, labels of every row)
    for part in ("val", "test"):
        px, py = d / f"x_{part}.npy", d / f"y_{part}.npy"
        if px.exists() or py.exists():
            xs = _open(px, mmap=True)
            if xs.shape[1:] != x.shape[1:]:
                raise TrainwiseError(f"'{px}' has samples of shape {xs.shape[1:]} but x.npy has {x.shape[1:]}")
            ys = _open(py, mmap=False).reshape(-1)
            if len(ys) != len(xs):
                raise TrainwiseError(f"'{px}' has {len(xs)} rows but '{py}' has {len(ys)}; they must match")
            rows = np.arange(len(ys))
            if task == "classification":  # the same label → index mapping as the training labels
                known = {n: i for i, n in enumerate(names)}
                unknown = sorted({str(v) for v in ys.tolist()} - set(known))
                if unknown:
                    raise TrainwiseError(f"'{py}' has labels {unknown[:5]} that y.npy never uses; every class must "
                                         "appear in training")
                ys = np.array([known[str(v)] for v in ys.tolist()], np.int64)
                if sel.active:
                    k, h, ys, _ = sel.apply(ys)
                    rows = np.flatnonzero(k | h if part == "test" else k)
            given[part] = (px, rows, ys.astype(y.dtype))
    if holdout_class is not None and "test" not in given and test_fraction <= 0:
        raise TrainwiseError(HOLDOUT_TEST_ERROR)
    idx, val_idx, test_idx = cut_rows(np.flatnonzero(keep), strat, task, seed, val_fraction, test_fraction,
                                      "val" not in given, "test" not in given, f"the {int(keep.sum())} samples of '{xp}'")
    if "test" not in given:
        test_idx = np.concatenate([test_idx, np.flatnonzero(held)])  # the held-out class: all of it in test
    image = x.ndim == 4  # (N, C, H, W): one scalar mean/std, as for in-memory images
    prep = Preprocess(kind="image" if image else "tabular", num_numeric=0 if image else int(np.prod(x.shape[1:])),
                      task=task, class_names=sel.names, input_shape=list(x.shape[1:]))
    if standardize:
        prep.mean, prep.std = train_stats(x, idx, image, xp)
    if task == "regression":
        prep.y_mean, prep.y_std = float(y[idx].mean()), float(y[idx].std()) or 1.0
        y = ((y - prep.y_mean) / prep.y_std).astype(np.float32)
    if label_fraction < 1.0:  # after the statistics, as for in-memory data: they come from the whole train split
        idx = idx[fraction_positions(y[idx], label_fraction, seed, stratify=task == "classification")]

    def memmap_part(name: str, rows: np.ndarray) -> MemmapSplit | None:
        if name in given:
            px, rows, ys = given[name]
            if task == "regression":
                ys = ((ys - prep.y_mean) / prep.y_std).astype(np.float32)
            return MemmapSplit(px, rows, ys, prep) if len(rows) else None
        return MemmapSplit(xp, rows, y, prep) if len(rows) else None

    num_classes = len(sel.names) if task == "classification" else 0
    return Splits(memmap_part("train", idx), memmap_part("val", val_idx), memmap_part("test", test_idx),  # type: ignore[arg-type]
                  prep, num_classes, {}, f"npy {d}: {len(x)} samples of shape {tuple(x.shape[1:])} (memory-mapped)"
                  + sel.describe(int(held.sum())))

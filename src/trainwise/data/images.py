"""``data.source=images``: a folder of image files, decoded once into a memory-mapped uint8 cache.

Layout (torchvision's ImageFolder convention): ``DIR/<class>/<file>``, class names sorted and recorded as label names;
or ``DIR/train/<class>/…`` with optional ``DIR/val/…`` and ``DIR/test/…`` used as the given splits. PNG, JPEG, BMP,
WebP and GIF (first frame) are decoded by Pillow; other files are ignored and counted.

Decode: converted to ``L`` (``data.channels=1``) or ``RGB`` (3; RGBA and palette images are converted), then the
shorter side resized to ``data.image_size`` and the centre cropped to a square (nothing is stretched; an image that
is already ``S×S`` is untouched). Without ``data.image_size`` the first image's size is used (it must be square, or
give the size). Pixels stay uint8 0..255 in the cache; normalisation (one scalar mean/std from the training split)
is applied per batch, as for any image data.

Cache: ``<cache_dir>/<key>.npy`` (uint8, (N, C, S, S), memory-mapped) plus ``<key>.json`` (labels, files, bad files).
The key hashes every file's relative path, size and mtime plus the decode parameters, so changing, adding or removing
a file or a parameter builds a new cache. It is written to a temporary name and renamed into place, the ``.json``
last: a cache killed mid-decode has no ``.json`` and is never used. ``cache_dir``: ``data.cache_dir``, else
``$TRAINWISE_CACHE/images``, else ``~/.cache/trainwise/images``; delete the folder to clear it.

Unreadable files (corrupt, truncated, zero bytes): ``data.on_bad_file=skip`` (default) counts and lists them (they end
up in ``RUN_DIR/data_report.json``) and warns in one line; ``error`` refuses the dataset naming the first one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.data.npy import MemmapSplit, train_stats
from trainwise.data.splits import (
    HOLDOUT_TEST_ERROR,
    Preprocess,
    RowSelection,
    Splits,
    cut_rows,
    fraction_positions,
)
from trainwise.errors import TrainwiseError
from trainwise.progress import task_bar

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
CACHE_VERSION = 1  # bump when decoding changes: old caches then miss instead of being reused


@dataclass
class Report:
    """What the folder held: written to ``RUN_DIR/data_report.json``."""

    root: str
    classes: list[str]
    images: int = 0
    ignored_files: int = 0  # not an image suffix
    bad_files: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}
    per_split: dict[str, int] = field(default_factory=dict)
    cache: str = ""
    cache_hit: bool = False
    image_size: int = 0
    channels: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("TRAINWISE_CACHE")
    return Path(env) / "images" if env else Path.home() / ".cache" / "trainwise" / "images"


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One file → (C, S, S) uint8: convert, resize the shorter side to ``size``, centre crop. Raises on bad files."""
    from PIL import Image

    with Image.open(path) as img:
        return decode_image(img, size, channels)


def decode_image(img: Any, size: int, channels: int) -> np.ndarray:
    """An opened Pillow image → (C, S, S) uint8, the decode of training (``predict``/``serve`` call it on images
    they opened themselves, after checking the header)."""
    from PIL import Image

    img.seek(0)  # GIF: the first frame
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if channels == 1 else a.transpose(2, 0, 1)  # (C, S, S)


def _scan(root: Path) -> tuple[dict[str, list[tuple[Path, str]]], list[str], int]:
    """Files per split ("all" when there are no train/val/test folders), sorted class names, ignored-file count."""
    if not root.is_dir():
        raise TrainwiseError(f"data.source=images needs data.path=DIR (DIR/<class>/<image>); '{root}' is not a "
                             "directory (the digits-images preset's files: trainwise data digits-png DIR)")
    split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    layout = split_dirs if "train" in split_dirs else {"all": root}
    classes = sorted(p.name for p in layout.get("train", root).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrainwiseError(f"'{layout.get('train', root)}' has no class folders; lay images out as "
                             "DIR/<class>/<image>")
    files: dict[str, list[tuple[Path, str]]] = {}
    ignored = 0
    for split, d in layout.items():
        files[split] = []
        for c in classes:
            cdir = d / c
            found = [p for p in sorted(cdir.rglob("*")) if p.is_file()] if cdir.is_dir() else []
            imgs = [p for p in found if p.suffix.lower() in SUFFIXES]
            ignored += len(found) - len(imgs)
            if split in ("all", "train") and not imgs:
                raise TrainwiseError(f"class folder '{cdir}' holds no images ({', '.join(SUFFIXES)}); remove it or "
                                     "add images")
            files[split] += [(p, c) for p in imgs]
    if len(classes) < 2:
        raise TrainwiseError(f"'{root}' has one class only ('{classes[0]}'): nothing to learn; add a folder per class")
    return files, classes, ignored


def _key(root: Path, files: dict[str, list[tuple[Path, str]]], size: int, channels: int) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size, channels]).encode())
    for split in sorted(files):
        for p, c in files[split]:
            st = p.stat()
            h.update(f"{split}\0{p.relative_to(root).as_posix()}\0{c}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _first_size(files: dict[str, list[tuple[Path, str]]], size_given: bool) -> tuple[int, int]:
    """(size, channels) of the first readable image: the defaults when data.image_size/channels are not given."""
    from PIL import Image

    for items in files.values():
        for p, _ in items:
            try:
                with Image.open(p) as img:
                    w, h = img.size
                    grey = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            except Exception:  # noqa: BLE001 - a bad file is reported by the decode pass
                continue
            if w != h and not size_given:
                raise TrainwiseError(f"'{p}' is {w}×{h}; set data.image_size=S (images are resized to S×S, "
                                     "centre-cropped)")
            return w, 1 if grey else 3
    raise TrainwiseError("no image in the folder can be read")


def _build(root: Path, files: dict[str, list[tuple[Path, str]]], classes: list[str], size: int, channels: int,
           dest: Path, on_bad_file: str, quiet: bool) -> dict[str, Any]:
    """Decode every file into ``dest`` (.npy, uint8) atomically; returns the metadata written beside it."""
    from numpy.lib.format import open_memmap

    items = [(split, p, c) for split in files for p, c in files[split]]
    tmp = dest.with_name(f"{dest.stem}.tmp-{os.getpid()}.npy")
    out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), channels, size, size))
    ok = np.zeros(len(items), bool)
    bad: list[dict[str, str]] = []

    def one(i: int) -> None:
        try:
            out[i] = decode(items[i][1], size, channels)
            ok[i] = True
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt data
            bad.append({"file": str(items[i][1]), "reason": f"{type(exc).__name__}: {str(exc)[:200]}"})

    try:
        # Pillow releases the GIL while decoding: threads use the cores without copying pixels between processes.
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool, \
                task_bar(f"decoding {len(items):,} images", len(items), quiet) as advance:
            for _ in pool.map(one, range(len(items))):
                advance(1)
        bad.sort(key=lambda b: b["file"])
        if bad and on_bad_file == "error":
            raise TrainwiseError(f"cannot decode image '{bad[0]['file']}' ({bad[0]['reason']}); fix or remove it, or "
                                 "set data.on_bad_file=skip")
        keep = np.flatnonzero(ok)
        if len(keep) < len(items):  # a compacted copy: the good images only, in order
            ctmp = dest.with_name(f"{dest.stem}.tmp2-{os.getpid()}.npy")
            small = open_memmap(ctmp, mode="w+", dtype=np.uint8, shape=(len(keep), channels, size, size))
            for s in range(0, len(keep), 4096):
                small[s:s + 4096] = out[keep[s:s + 4096]]
            small.flush()
            os.replace(ctmp, tmp)
        else:
            out.flush()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    index = {c: i for i, c in enumerate(classes)}
    meta = {"version": CACHE_VERSION, "size": size, "channels": channels,
            "split": [items[i][0] for i in keep], "label": [index[items[i][2]] for i in keep],
            "files": [str(items[i][1].relative_to(root)) for i in keep], "bad_files": bad}
    mtmp = dest.with_suffix(f".json.tmp-{os.getpid()}")
    mtmp.write_text(json.dumps(meta))
    os.replace(mtmp, dest.with_suffix(".json"))  # last: its presence marks a complete cache
    return meta


def load_images(path: str, seed: int, val_fraction: float, test_fraction: float, standardize: bool | str = True,
                image_size: int | None = None, channels: int | None = None, on_bad_file: str = "skip",
                cache_dir: str | None = None, quiet: bool = True, classes: list[int] | None = None,
                holdout_class: int | None = None, label_fraction: float = 1.0) -> tuple[Splits, Report]:
    """Splits of :class:`MemmapSplit` Datasets over the decoded cache, and the report of what the folder held.

    ``classes`` / ``holdout_class`` / ``label_fraction``: as for in-memory data (``build.load_data``), applied to the
    row indices of the cache; labels are class indices (positions in the sorted folder names). With train/val/test
    folders, a held-out class's images of every folder go to the test split.
    """
    root = Path(path)
    files, folders, ignored = _scan(root)
    if image_size is None or channels is None:
        size0, ch0 = _first_size(files, image_size is not None)
        image_size, channels = image_size or size0, channels or ch0
    if channels not in (1, 3):
        raise TrainwiseError(f"data.channels={channels} must be 1 or 3")
    key = _key(root, files, image_size, channels)
    cdir = cache_root(cache_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    dest = cdir / f"{key}.npy"
    hit = dest.is_file() and dest.with_suffix(".json").is_file()
    if hit:
        meta = json.loads(dest.with_suffix(".json").read_text())
        if meta["bad_files"] and on_bad_file == "error":
            b = meta["bad_files"][0]
            raise TrainwiseError(f"cannot decode image '{b['file']}' ({b['reason']}); fix or remove it, or set "
                                 "data.on_bad_file=skip")
    else:
        meta = _build(root, files, folders, image_size, channels, dest, on_bad_file, quiet)
    report = Report(str(root), folders, images=len(meta["label"]), ignored_files=ignored, bad_files=meta["bad_files"],
                    cache=str(dest), cache_hit=hit, image_size=image_size, channels=channels)
    if report.bad_files:
        print(f"warning: skipped {len(report.bad_files)} unreadable image file(s) of '{root}' (first: "
              f"{report.bad_files[0]['file']}); listed in the run's data_report.json", file=sys.stderr)
    split = np.asarray(meta["split"])
    y = np.asarray(meta["label"], np.int64)
    sel = RowSelection.make(y, folders, "classification", classes, holdout_class)
    keep, held, y, strat = sel.apply(y) if sel.active else (np.ones(len(y), bool), np.zeros(len(y), bool), y, y)
    rows = {s: np.flatnonzero((split == s) & keep) for s in ("all", "train", "val", "test")}
    if "all" not in meta["split"]:
        idx, val_idx, test_idx = rows["train"], rows["val"], rows["test"]
        if holdout_class is not None and not (split == "test").any():
            raise TrainwiseError(f"data.holdout_class needs a test split to hold the anomalies: add '{root}/test' "
                                 "(or lay the folder out without train/val/test)")
    else:
        if holdout_class is not None and test_fraction <= 0:
            raise TrainwiseError(HOLDOUT_TEST_ERROR)
        idx, val_idx, test_idx = cut_rows(rows["all"], strat, "classification", seed, val_fraction, test_fraction,
                                          True, True, f"the {len(rows['all'])} images of '{root}'")
    test_idx = np.concatenate([test_idx, np.flatnonzero(held)])  # a held-out class: all of it in test
    if len(np.unique(strat[idx])) < 2:
        raise TrainwiseError(f"the training images of '{root}' are all of one class; every class needs images")
    prep = Preprocess(kind="image", task="classification", class_names=sel.names,
                      input_shape=[channels, image_size, image_size])
    x = np.load(dest, mmap_mode="r")
    if standardize:
        prep.mean, prep.std = train_stats(x, idx, True, dest)
    if label_fraction < 1.0:  # after the statistics, as for in-memory data: they come from the whole train split
        idx = idx[fraction_positions(y[idx], label_fraction, seed, stratify=True)]
    report.per_split = {"train": len(idx), "val": len(val_idx), "test": len(test_idx)}

    def part(r: np.ndarray) -> MemmapSplit | None:
        return MemmapSplit(dest, r, y, prep) if len(r) else None

    splits = Splits(part(idx), part(val_idx), part(test_idx), prep, len(sel.names), {},  # type: ignore[arg-type]
                    f"images {root}: {len(y)} images of {len(folders)} classes, {channels}×{image_size}×{image_size}"
                    + sel.describe(int(held.sum())))
    return splits, report

"""Which source a ``data.path`` holds, when the config names a built-in dataset instead.

A preset names its own dataset (``data.source=digits``); a user who adds ``data.path=mine.npz`` means *their* data.
Training on the preset's data while the given path goes unused was the silent failure of issue 18, so a path given
with a built-in source is either recognised (``.csv``, ``.npz``, a directory of ``.npy`` arrays, a directory of
images) and the source set from it, or refused — never ignored.
"""

from __future__ import annotations

from pathlib import Path

from trainwise.errors import TrainwiseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


def _has_images(d: Path) -> bool:
    """``d/<class>/<image>`` or ``d/train/<class>/<image>`` (checks a few entries, not the whole tree)."""
    for sub in sorted(d.iterdir())[:50]:
        if not sub.is_dir():
            continue
        for f in sorted(sub.iterdir())[:50]:
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                return True
            if f.is_dir() and any(g.suffix.lower() in IMAGE_SUFFIXES for g in sorted(f.iterdir())[:50]):
                return True
    return False


def infer_source(path: str) -> str:
    """``csv`` | ``npz`` | ``npy`` | ``images`` for what ``path`` holds; a :class:`TrainwiseError` otherwise."""
    p = Path(path)
    if not p.exists():
        raise TrainwiseError(f"data.path '{p}' does not exist; give an existing .csv, .npz, a directory holding "
                             "x.npy and y.npy, or an image folder")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".csv", ".npz"):
            return suffix[1:]
        raise TrainwiseError(f"data.path '{p}' is neither .csv nor .npz, so its format is unknown; set data.source "
                             "to csv or npz (or module:function for anything else)")
    if (p / "x.npy").is_file():
        return "npy"
    if _has_images(p):
        return "images"
    raise TrainwiseError(f"directory '{p}' holds neither x.npy/y.npy nor class folders of images; set data.source "
                         "(npy: x.npy and y.npy; images: DIR/<class>/<image>)")


def resolve_source(source: str, path: str | None, builtin: tuple[str, ...]) -> str:
    """The source to load: ``source`` itself, or the one ``path`` holds when ``source`` is a built-in dataset."""
    if not path or source not in builtin:
        return source
    return infer_source(path)

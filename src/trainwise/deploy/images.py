"""Image files (PNG/JPEG/…) as raw inputs for image runs: ``trainwise predict RUN_DIR digit.png``.

The image is converted to greyscale (or RGB for 3-channel runs), resized to the run's input height × width, and
its 0..255 pixel values are mapped linearly onto the value range of the run's training images (digits: 0..16), so
it arrives on the same raw scale as the training data; the run's standardisation is applied afterwards as usual.
Like the training images, the subject must be bright on a dark background (sklearn digits: ink = high values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainwise.build import load_data
from trainwise.data.images import decode
from trainwise.deploy.artifacts import raw_inputs
from trainwise.errors import TrainwiseError

# Pixels an input image may declare in its header: ample for any photo (a 50-megapixel camera), and checked before
# decoding, so a small file declaring 100,000 × 100,000 pixels (10 GB decoded) is refused instead of allocated.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def training_range(cfg: Any, prep: Any) -> tuple[float, float]:
    """Min and max raw pixel value of the run's training split (rebuilt from its config and seed)."""
    x = raw_inputs(load_data(cfg).train.x, prep)
    return float(x.min()), float(x.max())


def read_image(path: Path, prep: Any, cfg: Any) -> np.ndarray:
    """One image file → raw inputs of shape (1, *input_shape)."""
    if not path.is_file():
        raise TrainwiseError(f"input file '{path}' does not exist")
    if prep.kind != "image":
        raise TrainwiseError(f"this run was trained on {prep.kind} inputs; an image file only works with an image "
                             "run (give a .csv or .npz)")
    shape = list(prep.input_shape)
    channels, (height, width) = (shape[0], shape[1:]) if len(shape) == 3 else (1, shape)
    if channels not in (1, 3):
        raise TrainwiseError(f"the run's images have {channels} channels; image files work for 1 or 3")
    from PIL import Image, UnidentifiedImageError  # deferred: Pillow loads only when an image is read

    if cfg.data.source == "images":  # the exact decode of training (data/images.py); raw 0..255 like its cache
        try:
            return decode(path, height, channels).astype(np.float32)[None]  # (1, C, S, S)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise TrainwiseError(f"cannot read image '{path}': {exc}") from None
    img: Image.Image  # opened as an ImageFile, rebound to converted/resized copies
    try:
        with Image.open(path) as img:  # reads the header only; pixels are decoded by convert() below
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise TrainwiseError(f"image '{path}' declares {w:,} × {h:,} pixels, more than the limit of "
                                     f"{MAX_PIXELS:,}; resize it first")
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.LANCZOS)
            pixels = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise TrainwiseError(f"cannot read image '{path}': {exc}") from None
    lo, hi = training_range(cfg, prep)
    x = lo + pixels / 255.0 * (hi - lo)
    x = x[None] if channels == 1 else x.transpose(2, 0, 1)  # (C, H, W)
    return x.reshape(1, *shape).astype(np.float32)

"""Image files (PNG/JPEG/…) as raw inputs for image runs: ``trainwise predict RUN_DIR digit.png`` and ``serve``'s
image requests (:class:`ImageReader`).

A run trained on an image folder (``data.source=images``) gets exactly the decode of training (``data/images.py``:
convert, resize the shorter side, centre crop; raw 0..255 like its cache). Any other image run: the image is
converted to greyscale (or RGB for 3-channel runs), resized to the run's input height × width, and its 0..255 pixel
values are mapped linearly onto the value range of the run's training images (digits: 0..16), so it arrives on the
same raw scale as the training data. Either way the run's standardisation is applied afterwards as usual. Like the
training images, the subject must be bright on a dark background (sklearn digits: ink = high values).

Every image is untrusted: only the formats below are opened (Pillow would otherwise also try EPS, which runs
Ghostscript, and a dozen rarer decoders), and the pixel count its header declares is checked before any pixel is
decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import IO, Any

import numpy as np

from trainwise.build import load_data
from trainwise.data.images import decode_image
from trainwise.deploy.artifacts import BadRequest, raw_inputs, request_batch
from trainwise.errors import TrainwiseError

# Pixels an input image may declare in its header: ample for any photo (a 50-megapixel camera), and checked before
# decoding, so a small file declaring 100,000 × 100,000 pixels (10 GB decoded) is refused instead of allocated.
MAX_PIXELS = 64_000_000
# serve: pixels one request may declare in all (a compressed image of zeros is ~1000× smaller than its pixels, so the
# body limit alone would let one request make the server decode hundreds of 64-megapixel images).
MAX_REQUEST_PIXELS = 4 * MAX_PIXELS
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # the decoders Pillow may use on an input


class TooManyPixels(TrainwiseError):
    """An image whose header declares more than :data:`MAX_PIXELS` pixels (``serve`` answers 413)."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def training_range(cfg: Any, prep: Any) -> tuple[float, float]:
    """Min and max raw pixel value of the run's training split (rebuilt from its config and seed)."""
    x = raw_inputs(load_data(cfg).train.x[:], prep)  # [:]: a memory-mapped split (npy) is read as a tensor
    return float(x.min()), float(x.max())


def _geometry(prep: Any) -> tuple[int, int, int]:
    """(channels, height, width) of the run's image inputs; refuses runs whose inputs are not 1- or 3-channel images."""
    if prep.kind != "image":
        raise TrainwiseError(f"this run was trained on {prep.kind} inputs; an image file only works with an image "
                             "run (give a .csv or .npz)")
    shape = list(prep.input_shape)
    channels, (height, width) = (shape[0], shape[1:]) if len(shape) == 3 else (1, shape)
    if channels not in (1, 3):
        raise TrainwiseError(f"the run's images have {channels} channels; image files work for 1 or 3")
    return channels, height, width


def _open(src: Path | IO[bytes], name: str) -> Any:
    """The image opened (header read, no pixels decoded yet), its declared size checked."""
    from PIL import Image  # deferred: Pillow loads only when an image is read

    try:
        img = Image.open(src, formats=FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own, higher limit: refused in the same words
        raise TooManyPixels(f"image '{name}' declares more pixels than the limit of {MAX_PIXELS:,} ({exc}); resize "
                            "it first") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise TooManyPixels(f"image '{name}' declares {w:,} × {h:,} pixels, more than the limit of {MAX_PIXELS:,}; "
                            "resize it first")
    return img


def declared_pixels(src: Path | IO[bytes], name: str) -> int:
    """Pixels the header of ``src`` declares (nothing decoded); :class:`TrainwiseError` when it is not an image."""
    try:
        with _open(src, name) as img:
            return int(img.size[0] * img.size[1])
    except TrainwiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bytes that are not an image
        raise TrainwiseError(f"cannot read image '{name}': {_reason(exc)}") from None


def image_inputs(src: Path | IO[bytes], name: str, prep: Any, cfg: Any,
                 value_range: tuple[float, float] | None = None) -> np.ndarray:
    """One image (a file, or the bytes of one in a file object) → raw inputs of shape (1, *input_shape).
    ``value_range``: the training images' range (:func:`training_range`) when the caller has it already."""
    channels, height, width = _geometry(prep)
    from PIL import Image

    try:
        with _open(src, name) as img:
            if cfg.data.source == "images":  # the exact decode of training (data/images.py); raw 0..255 like its cache
                return decode_image(img, height, channels).astype(np.float32)[None]  # (1, C, S, S)
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.LANCZOS)
            pixels = np.asarray(img, dtype=np.float32)
    except TrainwiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt or truncated data
        raise TrainwiseError(f"cannot read image '{name}': {_reason(exc)}") from None
    lo, hi = value_range if value_range is not None else training_range(cfg, prep)
    x = lo + pixels / 255.0 * (hi - lo)
    x = x[None] if channels == 1 else x.transpose(2, 0, 1)  # (C, H, W)
    return x.reshape(1, *prep.input_shape).astype(np.float32)


def _reason(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):  # its text names a Python object, not the problem
        return f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image"
    return f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__


def read_image(path: Path, prep: Any, cfg: Any) -> np.ndarray:
    """One image file → raw inputs of shape (1, *input_shape)."""
    if not path.is_file():
        raise TrainwiseError(f"input file '{path}' does not exist")
    return image_inputs(path, str(path), prep, cfg)


class ImageReader:
    """``serve``'s image requests for one run: ``{"images": ["<base64>", …]}`` in a JSON body, or one raw image file
    as the body (``Content-Type: image/…``) → raw inputs (N, *input_shape), decoded as :func:`read_image` decodes
    ``predict``'s files. Problems are :class:`BadRequest`: 413 for too many images or pixels, 422 otherwise."""

    def __init__(self, run: Any, max_batch: int) -> None:
        self.run, self.max_batch = run, max_batch
        self._range: tuple[float, float] | None = None  # training value range: rebuilt once, on first need

    def _check_run(self) -> None:
        kind = self.run.prep.kind
        if kind != "image":
            raise BadRequest(422, f"this run was trained on {kind} inputs; images only work with an image run "
                                  '(send {"inputs": [...]})')
        try:
            _geometry(self.run.prep)
        except TrainwiseError as exc:
            raise BadRequest(422, str(exc)) from None

    def from_json(self, payload: dict[str, Any]) -> np.ndarray:
        self._check_run()
        items = request_batch(payload["images"], "images", self.max_batch, "base64-encoded image files", "images")
        blobs = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise BadRequest(422, f"images[{i}] is {type(item).__name__}; give the image file's bytes as a "
                                      "base64 string")
            if item.startswith("data:") and "," in item:  # a data URL: data:image/png;base64,<data>
                item = item.split(",", 1)[1]
            try:
                blobs.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError):
                raise BadRequest(422, f"images[{i}] is not valid base64") from None
        return self.decode(blobs, [f"images[{i}]" for i in range(len(blobs))])

    def from_body(self, body: bytes) -> np.ndarray:
        self._check_run()
        if not body:
            raise BadRequest(422, "the request body is empty; send the bytes of one image file")
        return self.decode([body], ["request body"])

    def decode(self, blobs: list[bytes], names: list[str]) -> np.ndarray:
        """Headers of every image first (declared pixels, per image and in all), then the pixels."""
        try:
            total = sum(declared_pixels(io.BytesIO(b), n) for b, n in zip(blobs, names))
            if total > MAX_REQUEST_PIXELS:
                raise BadRequest(413, f"the images of this request declare {total:,} pixels in all; the limit is "
                                      f"{MAX_REQUEST_PIXELS:,} (send fewer or smaller images per request)")
            cfg, prep = self.run.cfg, self.run.prep
            if cfg.data.source != "images" and self._range is None:
                self._range = training_range(cfg, prep)
            return np.concatenate([image_inputs(io.BytesIO(b), n, prep, cfg, self._range)
                                   for b, n in zip(blobs, names)])
        except TooManyPixels as exc:
            raise BadRequest(413, str(exc)) from None
        except TrainwiseError as exc:
            raise BadRequest(422, str(exc)) from None

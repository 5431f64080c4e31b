"""``curves.png``: loss and main metric per epoch for train and val, and the lr schedule; image grids for the
generative paradigms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# curves.png is drawn with Pillow (matplotlib's own raster dependency), not matplotlib: it is written at the end of
# every fit() with a run directory, and the matplotlib figure of these three panels cost 147 ms per call (tight_layout
# + draw + PNG; 80 ms without tight_layout, 53 ms reusing one figure), nearly all of it Python-side artist
# bookkeeping, against 9 ms here (benchmarks/RESULTS.md, "Loop overhead: reading").
_W, _H, _SS = 1040, 288, 2  # final size in pixels; drawn at _SS× and reduced, which anti-aliases lines and text
_COLOURS = {"train": (31, 119, 180), "val": (255, 127, 14)}  # matplotlib's C0 / C1
_INK, _GRID = (0, 0, 0), (235, 235, 235)
_fonts: dict[int, Any] = {}

Series = tuple[str, bool, list[tuple[float, float]]]  # (train | val, dashed, finite (epoch, value) points)


def _font(size: int) -> Any:
    from PIL import ImageFont

    if size not in _fonts:
        try:  # the DejaVu Sans that matplotlib ships (and renders its figures with)
            import matplotlib

            _fonts[size] = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf"
                                                  / "DejaVuSans.ttf"), size)
        except (ImportError, OSError):
            _fonts[size] = ImageFont.load_default(size)
    return _fonts[size]


def _ticks(lo: float, hi: float, target: int) -> tuple[list[float], float]:
    """Round tick positions inside [lo, hi] in steps of 1, 2, 2.5 or 5 × 10^k, and the step."""
    raw = (hi - lo) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)], step


def _labels(ticks: list[float], step: float) -> list[str]:
    """One format for the whole axis, with as many digits as the step needs."""
    exp = math.floor(math.log10(step) + 1e-9)
    extra = 1 if round(step / 10.0 ** exp, 6) == 2.5 else 0
    big = max((abs(t) for t in ticks), default=0.0)
    if -exp + extra <= 5 and big < 1e6:
        return [f"{t:.{max(0, -exp + extra)}f}" for t in ticks]
    digits = min(6, max(0, (math.floor(math.log10(big)) if big else exp) - exp + extra))
    return [f"{t:.{digits}e}" for t in ticks]


def _range(values: list[float]) -> tuple[float, float]:
    """Data limits plus a 5% margin (matplotlib's default); a constant series gets ±5% of its value."""
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 if hi > lo else (abs(lo) * 0.05 or 0.05)
    lo, hi = lo - pad, hi + pad
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)  # a margin lost to rounding (huge or tiny values)


def _line(draw: Any, xy: list[tuple[float, float]], colour: Any, dashed: bool) -> None:
    s = _SS
    if not dashed:
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2 * s, joint="curve")
        return
    on, off = 6 * s, 3 * s
    for a, b in zip(xy, xy[1:]):
        length = math.hypot(b[0] - a[0], b[1] - a[1])
        if length == 0:
            continue
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        d = 0.0
        while d < length:
            e = min(d + on, length)
            draw.line([(a[0] + ux * d, a[1] + uy * d), (a[0] + ux * e, a[1] + uy * e)], fill=colour, width=2 * s)
            d = e + off


def _dots(draw: Any, xy: list[tuple[float, float]], colour: Any) -> None:
    r = 3 * _SS
    for x, y in xy:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def _panel(draw: Any, box: tuple[int, int, int, int], title: str, series: list[Series], legend: bool) -> None:
    s = _SS
    x0, y0, x1, y1 = box
    points = [p for _, _, ps in series for p in ps]
    xlo, xhi = _range([p[0] for p in points])
    ylo, yhi = _range([p[1] for p in points])

    def px(x: float) -> float:
        return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)

    small = _font(10 * s)
    xt = [t for t in _ticks(xlo, xhi, 6)[0] if float(t).is_integer()]  # epochs are whole numbers
    for t in xt:
        draw.line([(px(t), y0), (px(t), y1)], fill=_GRID, width=s)
        draw.line([(px(t), y1), (px(t), y1 + 4 * s)], fill=_INK, width=s)
        draw.text((px(t), y1 + 6 * s), str(int(t)), fill=_INK, font=small, anchor="mt")
    yt, ystep = _ticks(ylo, yhi, 5)
    for t, text in zip(yt, _labels(yt, ystep)):
        draw.line([(x0, py(t)), (x1, py(t))], fill=_GRID, width=s)
        draw.line([(x0 - 4 * s, py(t)), (x0, py(t))], fill=_INK, width=s)
        draw.text((x0 - 6 * s, py(t)), text, fill=_INK, font=small, anchor="rm")
    draw.rectangle(box, outline=_INK, width=s)
    draw.text(((x0 + x1) / 2, y0 - 5 * s), title, fill=_INK, font=_font(12 * s), anchor="md")
    draw.text(((x0 + x1) / 2, y1 + 20 * s), "epoch", fill=_INK, font=small, anchor="mt")
    for name, dashed, ps in series:
        xy = [(px(x), py(y)) for x, y in ps]
        _line(draw, xy, _COLOURS[name], dashed)
        _dots(draw, xy, _COLOURS[name])
    if legend and series:
        lx1, ly0 = x1 - 8 * s, y0 + 8 * s
        lx0, ly1 = lx1 - 70 * s, ly0 + (8 + 16 * len(series)) * s
        draw.rectangle((lx0, ly0, lx1, ly1), fill=(255, 255, 255), outline=(204, 204, 204), width=s)
        for k, (name, dashed, _) in enumerate(series):
            yy = ly0 + (12 + 16 * k) * s
            _line(draw, [(lx0 + 6 * s, yy), (lx0 + 30 * s, yy)], _COLOURS[name], dashed)
            _dots(draw, [(lx0 + 18 * s, yy)], _COLOURS[name])
            draw.text((lx0 + 36 * s, yy), name, fill=_INK, font=small, anchor="lm")


def _finite(epochs: list[Any], values: list[Any]) -> list[tuple[float, float]]:
    """(epoch, value) pairs that can be drawn: a missing or non-finite value (a diverged epoch) leaves a gap."""
    return [(float(e), float(v)) for e, v in zip(epochs, values)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def plot_curves(history: list[dict[str, Any]], main_metric: str, path: Path) -> None:
    """Three panels: loss (train solid, val dashed), ``main_metric`` likewise, and the lr at each epoch's end."""
    from PIL import Image, ImageDraw

    s = _SS
    img = Image.new("RGB", (_W * s, _H * s), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    epochs = [h["epoch"] for h in history]
    left, gap, right, top, bottom = 62 * s, 72 * s, 12 * s, 26 * s, 44 * s
    width = (_W * s - left - right - 2 * gap) // 3
    boxes = [(left + k * (width + gap), top, left + k * (width + gap) + width, _H * s - bottom) for k in range(3)]
    for box, key in ((boxes[0], "loss"), (boxes[1], main_metric)):
        series = [(split, split == "val", _finite(epochs, [h.get(f"{split}/{key}") for h in history]))
                  for split in ("train", "val")]
        _panel(draw, box, key, [sr for sr in series if sr[2]], legend=True)
    _panel(draw, boxes[2], "learning rate (end of epoch)",
           [("train", False, _finite(epochs, [h.get("lr") for h in history]))], legend=False)
    img.reduce(s).save(path, format="PNG", compress_level=1)


def save_image_grid(images: Any, path: Path, title: str = "", ncol: int = 8) -> None:
    """(N, C, H, W) tensor or array → one PNG grid, each image min–max scaled for display (torchvision's
    ``save_image`` does this, but trainwise does not depend on torchvision)."""
    import numpy as np
    from matplotlib.figure import Figure  # Figure, not pyplot: no global backend or figure state

    arr = np.asarray(images.detach().float().cpu() if hasattr(images, "detach") else images, dtype=np.float32)
    n = len(arr)
    nrow = max(1, -(-n // ncol))
    fig = Figure(figsize=(ncol * 0.9, nrow * 0.9 + (0.3 if title else 0)))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = arr[i]
        img = img.transpose(1, 2, 0) if img.ndim == 3 and img.shape[0] in (3, 4) else img.reshape(img.shape[-2:]) \
            if img.ndim == 3 else img.reshape(1, -1) if img.ndim == 1 else img
        lo, hi = float(img.min()), float(img.max())
        ax.imshow((img - lo) / (hi - lo + 1e-8), cmap="gray", interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)

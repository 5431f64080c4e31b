"""``curves.png``: loss and main metric per epoch for train and val, and the lr schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history: list[dict[str, Any]], main_metric: str, path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for split, style in (("train", "-"), ("val", "--")):
        for ax, key in ((axes[0], "loss"), (axes[1], main_metric)):
            vals = [h.get(f"{split}/{key}") for h in history]
            pts = [(e, v) for e, v in zip(epochs, vals) if v is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=split)
    axes[0].set_title("loss")
    axes[1].set_title(main_metric)
    axes[2].plot(epochs, [h.get("lr") for h in history], marker="o", ms=3)
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_image_grid(images: Any, path: Path, title: str = "", ncol: int = 8) -> None:
    """(N, C, H, W) tensor or array → one PNG grid, each image min–max scaled for display (torchvision's
    ``save_image`` does this, but trainwise does not depend on torchvision)."""
    import numpy as np

    arr = np.asarray(images.detach().float().cpu() if hasattr(images, "detach") else images, dtype=np.float32)
    n = len(arr)
    nrow = max(1, -(-n // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.9, nrow * 0.9 + (0.3 if title else 0)), squeeze=False)
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
    plt.close(fig)

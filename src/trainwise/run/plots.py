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

"""``trainwise data …`` (a top-level module, not inside ``trainwise.data``, whose package imports torch: ``--help``
must not): write example datasets as real files, so the file-based sources can be tried anywhere.

``trainwise data digits-png DIR`` writes scikit-learn's 1,797 digits as 8×8 greyscale PNG files in the ImageFolder
layout ``DIR/<digit>/<index>.png`` (ink bright on dark, 0..16 scaled to 0..255): the data of the ``digits-images``
preset, which trains from those files through ``data.source=images``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trainwise.errors import TrainwiseError


def write_digits_png(dest: str | Path) -> int:
    """Write the digits as PNG files under ``dest``; returns the number written. ``dest`` must not exist or be
    empty (nothing is overwritten)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(dest)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise TrainwiseError(f"'{root}' already exists and is not an empty directory; give a new DIR")
    d = load_digits()
    pixels = np.round(d.images * (255 / 16)).astype(np.uint8)  # (N, 8, 8), 0..16 → 0..255
    for i, (img, y) in enumerate(zip(pixels, d.target)):
        folder = root / str(int(y))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(folder / f"{i:04d}.png")
    return len(pixels)


def cmd_digits_png(args: argparse.Namespace) -> int:
    n = write_digits_png(args.dir)
    print(f"wrote {n} PNG files to {args.dir}/<digit>/; train on them with: trainwise train --preset digits-images "
          f"data.path={args.dir}")
    return 0


def cmd_docstrings(args: argparse.Namespace) -> int:
    from trainwise.docstrings import build, versions

    counts = build(args.file, args.per_library)
    print(f"wrote {sum(counts.values())} docstring summaries to {args.file} ("
          + ", ".join(f"{lib} {n}" for lib, n in counts.items()) + "); versions: "
          + ", ".join(f"{lib} {v}" for lib, v in versions().items())
          + f"\ntrain on them with: trainwise train --preset docstrings-transformer data.path={args.file}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="write example datasets as files (digits as PNG images)",
                       description="Write example datasets as real files for the file-based data sources.")
    dsub = p.add_subparsers(dest="data_command", metavar="WHAT", required=True)
    dp = dsub.add_parser("digits-png", help="scikit-learn digits as DIR/<digit>/<index>.png (8×8 greyscale)")
    dp.add_argument("dir", metavar="DIR", help="directory to create (must not exist or be empty)")
    dp.set_defaults(func=cmd_digits_png)
    ds = dsub.add_parser("docstrings", help="docstring summaries of the installed numpy, scipy, torch, pandas, "
                         "sklearn, matplotlib as FILE.csv (text, library, name): a real text-classification corpus")
    ds.add_argument("file", metavar="FILE.csv", help="CSV file to create (must not exist)")
    ds.add_argument("--per-library", type=int, default=1500, help="rows kept per library (default 1500)")
    ds.set_defaults(func=cmd_docstrings)

"""Shared plumbing for the recipes: ``--fast``, verdict lines, and JSON-lines rows for ``trainwise recipes run``.

A recipe prints ``== NN topic ==``, indented demonstration lines (``say``), and exactly one verdict line per claim:
``HOLDS: …``, ``HOLDS ON GPU ONLY: …``, ``NOT ON THIS CPU: …`` or ``DOES NOT HOLD: …``, each ``<claim> — <evidence>``.
Verdicts come from ``check(claim, ok, evidence, kind)`` where ``ok`` is computed in the run, never written in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HOLDS, GPU_ONLY, NOT_CPU, FAILS = "HOLDS", "HOLDS ON GPU ONLY", "NOT ON THIS CPU", "DOES NOT HOLD"
VERDICTS = (GPU_ONLY, HOLDS, NOT_CPU, FAILS)  # longest prefix first so parsing is unambiguous
JSONL_ENV = "TRAINWISE_RECIPES_JSONL"  # set by `trainwise recipes run` to collect rows from each subprocess

_state: dict = {"topic": 0, "subject": "", "file": "", "fast": False, "jsonl": None, "rows": [], "t0": 0.0}


def setup(description: str | None = None) -> argparse.Namespace:
    """Parse ``--fast`` / ``--jsonl PATH``, seed torch, print the header. The topic number and subject come from
    the calling script's file name ``NN_subject.py`` so they cannot drift from the listing."""
    import __main__

    path = Path(__main__.__file__)
    number, _, subject = path.stem.partition("_")
    p = argparse.ArgumentParser(description=description or (__main__.__doc__ or "").strip().splitlines()[0])
    p.add_argument("--fast", action="store_true", help="a seconds-long version (smaller sizes, fewer steps)")
    p.add_argument("--jsonl", metavar="PATH", help=f"append one JSON row per claim to PATH (default ${JSONL_ENV})")
    args = p.parse_args()
    _state.update(topic=int(number), subject=subject.replace("_", " "), file=path.name, fast=args.fast,
                  jsonl=args.jsonl or os.environ.get(JSONL_ENV), t0=time.perf_counter())
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        # One intra-op thread: on a small shared CPU, thread contention made a recipe 7× slower and timings noisy.
        torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"== {int(number):02d} {_state['subject']}{' (--fast)' if args.fast else ''} ==")
    return args


def say(text: str) -> None:
    """A demonstration line (indented, so it can never be mistaken for a verdict)."""
    for line in str(text).splitlines() or [""]:
        print(f"  {line}")


def fast() -> bool:
    return bool(_state["fast"])


def pick(full: int | float, quick: int | float) -> int | float:
    """The full-run size, or the ``--fast`` one."""
    return quick if _state["fast"] else full


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check(claim: str, ok: bool, evidence: str, kind: str = "fact") -> str:
    """Print and record one verdict line for ``claim``; return the verdict.

    ``kind``: ``fact`` (ok → HOLDS, else DOES NOT HOLD); ``cpu-speed`` (a speed claim measured on this CPU: not ok →
    NOT ON THIS CPU, since the claim may still hold elsewhere); ``gpu`` (a claim about GPUs: not ok with no GPU here →
    HOLDS ON GPU ONLY, the evidence saying what was measured instead; with a GPU, not ok → DOES NOT HOLD).
    """
    if kind not in ("fact", "cpu-speed", "gpu"):
        raise ValueError(f"unknown check kind {kind!r}")
    if ok:
        verdict = HOLDS
    elif kind == "cpu-speed":
        verdict = NOT_CPU
    elif kind == "gpu" and not gpu_available():
        verdict = GPU_ONLY
    else:
        verdict = FAILS
    claim, evidence = " ".join(claim.split()), " ".join(evidence.split())  # one line each, whatever was passed
    print(f"{verdict}: {claim} — {evidence}")
    row = {"topic": _state["topic"], "subject": _state["subject"], "claim": claim, "verdict": verdict,
           "evidence": evidence, "command": f"python recipes/{_state['file']}{' --fast' if _state['fast'] else ''}"}
    _state["rows"].append(row)
    if _state["jsonl"]:
        with open(_state["jsonl"], "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return verdict


def rows() -> list[dict]:
    return list(_state["rows"])


def timeit(fn, repeats: int = 5, number: int = 1) -> float:  # noqa: ANN001 - any zero-argument callable
    """Median seconds per call of ``fn`` over ``repeats`` timings of ``number`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    times.sort()
    return times[len(times) // 2]


def digits(n: int | None = None) -> tuple:
    """The scikit-learn digits (1,797 8×8 images, shipped with the package): float32 x (N, 64) in [0, 1], int64 y."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), y.astype(np.int64)
    return (x[:n], y[:n]) if n else (x, y)

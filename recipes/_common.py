"""Shared plumbing for the recipes: ``--fast``, verdict lines, and JSON-lines rows for ``trainwise recipes run``.

A recipe prints ``== NN topic ==``, indented demonstration lines (``say``), and exactly one verdict line per claim:
``HOLDS: …``, ``HOLDS ON GPU ONLY: …``, ``NOT ON THIS CPU: …``, ``DOES NOT HOLD: …`` or ``INCONCLUSIVE: …``, each
``<claim> — <evidence>``. Verdicts come from ``check(claim, ok, evidence, kind)`` where ``ok`` is computed in the run,
never written in, or — for a comparison (A better or faster than B) — from ``compare(claim, a, b, …)`` over several
seeds or interleaved timing rounds, which says INCONCLUSIVE when the difference is within the noise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOLDS, GPU_ONLY, NOT_CPU, FAILS = "HOLDS", "HOLDS ON GPU ONLY", "NOT ON THIS CPU", "DOES NOT HOLD"
INCONCLUSIVE = "INCONCLUSIVE"
VERDICTS = (GPU_ONLY, HOLDS, NOT_CPU, FAILS, INCONCLUSIVE)  # longest prefix first so parsing is unambiguous
SEEDS, FAST_SEEDS = 5, 2  # a comparison of trained models is judged over this many seeds (--fast: fewer, and says so)
ROUNDS, FAST_ROUNDS = 7, 3  # a timing comparison: this many interleaved rounds
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


def check(claim: str, ok: bool, evidence: str, kind: str = "fact", runs: str = "1 run") -> str:
    """Print and record one verdict line for ``claim``; return the verdict.

    ``kind``: ``fact`` (ok → HOLDS, else DOES NOT HOLD); ``cpu-speed`` (a speed claim measured on this CPU: not ok →
    NOT ON THIS CPU, since the claim may still hold elsewhere); ``gpu`` (a claim about GPUs: not ok with no GPU here →
    HOLDS ON GPU ONLY, the evidence saying what was measured instead; with a GPU, not ok → DOES NOT HOLD).
    ``runs`` says what the verdict rests on (``1 run``, ``5 seeds``, ``7 rounds``) and goes in the table's own column.
    """
    return _record(claim, _verdict(ok, kind), evidence, runs)


def _verdict(ok: bool, kind: str) -> str:
    if kind not in ("fact", "cpu-speed", "gpu"):
        raise ValueError(f"unknown check kind {kind!r}")
    if ok:
        return HOLDS
    if kind == "cpu-speed":
        return NOT_CPU
    if kind == "gpu" and not gpu_available():
        return GPU_ONLY
    return FAILS


def _record(claim: str, verdict: str, evidence: str, runs: str) -> str:
    claim, evidence = " ".join(claim.split()), " ".join(evidence.split())  # one line each, whatever was passed
    print(f"{verdict}: {claim} — {evidence}")
    row = {"topic": _state["topic"], "subject": _state["subject"], "claim": claim, "verdict": verdict,
           "evidence": evidence, "runs": runs + (" (--fast)" if _state["fast"] else ""),
           "command": f"python recipes/{_state['file']}{' --fast' if _state['fast'] else ''}"}
    _state["rows"].append(row)
    if _state["jsonl"]:
        with open(_state["jsonl"], "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return verdict


def seeds() -> list[int]:
    """The seeds a comparison of trained models runs over: 0…4 (--fast: 0, 1)."""
    return list(range(FAST_SEEDS if _state["fast"] else SEEDS))


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of A against B over n seeds or rounds: ``diff`` is A's advantage per pair (A − B, or B − A
    when lower is better; log(B/A) or log(A/B) for ratios), and [lo, hi] its two-sided 95% t interval."""

    a: list[float]
    b: list[float]
    diff: list[float]
    mean: float
    lo: float
    hi: float


def paired(a: list[float], b: list[float], higher: bool = True, ratio: bool = False) -> Comparison:
    """Paired differences of A over B with a 95% Student-t interval (scipy's t quantile; n ≥ 2)."""
    import numpy as np
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"a paired comparison needs the same n ≥ 2 values on both sides, got {len(a)} and {len(b)}")
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = np.log(av / bv) if ratio else av - bv
    d = d if higher else -d
    mean, half = float(d.mean()), 0.0
    if d.std(ddof=1) > 0:
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return Comparison(list(map(float, a)), list(map(float, b)), d.tolist(), mean, mean - half, mean + half)


def side(cmp: Comparison, margin: float = 0.0, ratio: bool = False) -> int:
    """+1 when A's advantage clears ``margin`` (the whole 95% interval above it), −1 when the whole interval is
    below it, 0 when it straddles the bar (within the noise)."""
    edge = math.log1p(margin) if ratio else margin
    return 1 if cmp.lo > edge else -1 if cmp.hi < edge else 0


def combined(sides: list[int], kind: str = "fact") -> str:
    """The verdict of a claim made of several comparisons: HOLDS when every one clears its bar, the ``kind``'s
    negative verdict when any one is clearly below it, INCONCLUSIVE otherwise."""
    if all(s > 0 for s in sides):
        return HOLDS
    return _verdict(False, kind) if any(s < 0 for s in sides) else INCONCLUSIVE


def record(claim: str, verdict: str, evidence: str, runs: str) -> str:
    """Record a verdict computed from ``combined`` (a claim with several parts); ``runs`` as in ``check``."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    return _record(claim, verdict, evidence, runs)


def ratio_text(cmp: Comparison) -> str:
    """A ratio comparison's geometric-mean advantage and its 95% interval, e.g. ``1.93× (95% CI 1.85–2.01×)``."""
    return f"{math.exp(cmp.mean):.3g}× (95% CI {math.exp(cmp.lo):.3g}–{math.exp(cmp.hi):.3g}×)"


def spread(values: list[float], fmt: str) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    sd = f" ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else ""
    return f"{v.mean():{fmt}}{sd} ({v.min():{fmt}}–{v.max():{fmt}})"


def compare(claim: str, a: list[float], b: list[float], *, names: tuple[str, str], what: str, context: str,
            higher: bool = True, ratio: bool = False, margin: float = 0.0, over: str = "seeds",
            kind: str = "fact", fmt: str = ".4f") -> str:
    """Judge "A is better than B (by more than ``margin``)" from paired measurements, and record it.

    HOLDS when the whole 95% interval of A's advantage lies above ``margin``; the claim's ``kind`` verdict (DOES NOT
    HOLD, NOT ON THIS CPU, HOLDS ON GPU ONLY) when it lies below; INCONCLUSIVE when it straddles it — the difference
    is within the noise of this many seeds or rounds. ``ratio``: compare log(B/A) (times, lower is better) or
    log(A/B), with ``margin`` a fraction (0.1 = 10% faster). The evidence gives each side's mean ± sd (min–max) and
    the interval, after ``context`` (what was measured: data, model, range — the verdict does not go past it).
    """
    cmp = paired(a, b, higher=higher, ratio=ratio)
    verdict = combined([side(cmp, margin, ratio)], kind)
    n = f"{len(a)} {over}"
    if ratio:
        sides = f"{names[0]}/{names[1]}" if higher else f"{names[1]}/{names[0]}"
        gap = f"advantage of {names[0]} ({sides}) {ratio_text(cmp)}"
    else:
        sides = f"{names[0]} − {names[1]}" if higher else f"{names[1]} − {names[0]}"
        f = "+" + fmt
        gap = f"advantage of {names[0]} ({sides}) {cmp.mean:{f}} (95% CI {cmp.lo:{f}} to {cmp.hi:{f}})"
    bar = (f", needed > {1 + margin:g}×" if ratio else f", needed > {margin:g}") if margin else ""
    evidence = (f"{context}: {what} {names[0]} {spread(a, fmt)} vs {names[1]} {spread(b, fmt)}; {gap}{bar}; "
                f"over {n}")
    return _record(claim, verdict, evidence, n)


def rounds(fns: dict[str, Callable[[], object]], n: int | None = None, number: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function in ``n`` interleaved rounds (each round times every function once, in an
    order that rotates per round, after one warm-up call each), so drift in machine load hits all of them alike."""
    n = n or (FAST_ROUNDS if _state["fast"] else ROUNDS)
    names = list(fns)
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(n):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            for _ in range(number):
                fns[k]()
            out[k].append((time.perf_counter() - t) / number)
    return out


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

"""Interleaved timing with medians: every candidate is timed once per round, in a rotating order, so machine load
that drifts during a benchmark hits all candidates alike instead of whichever happened to run last."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(fns: dict[str, Callable[[], Any]], repeats: int = 15, target_s: float = 0.02,
            warmup: int = 3) -> dict[str, dict[str, float]]:
    """Seconds per call of each zero-argument callable: median, 25th/75th percentile and min over ``repeats``
    rounds. Each sample times ``n`` back-to-back calls (``n`` chosen so one sample lasts about ``target_s``), which
    keeps timer resolution out of microsecond-scale calls."""
    calls: dict[str, int] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        calls[name] = max(1, min(10_000, math.ceil(target_s / once)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(max(1, repeats)):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn, n = fns[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    out = {}
    for name, s in samples.items():
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
        out[name] = {"median_s": statistics.median(s), "p25_s": q[0], "p75_s": q[2], "min_s": min(s),
                     "rounds": len(s), "calls_per_round": calls[name]}
    return out

"""``torch.profiler`` labels the loop puts on its phases, so ``profile=true`` (train/profile.py) can split a step's
time into data / forward / backward / optimizer / epoch end without patching any function.

Per-epoch phases (evaluation, checkpoint writes) are always labelled: a ``record_function`` costs microseconds, once
per epoch. Per-step phases (the batch fetch, unscale + clip) are labelled only while a profiled run is active
(``Training.labels``); otherwise the loop iterates the loader itself and pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from torch.autograd.profiler import record_function

DATA, FORWARD, EVAL_FORWARD = "trainwise::data", "trainwise::forward", "trainwise::eval_forward"
CLIP, EVALUATE, CHECKPOINT = "trainwise::unscale_clip", "trainwise::evaluate", "trainwise::checkpoint"

ACTIVE = False  # set by train/profile.py's StepProfiler while it records; read once per fit, when it builds

T = TypeVar("T")


def labelled(batches: Iterable[T], label: str = DATA) -> Iterator[T]:
    """``batches`` with every ``next`` (the fetch) recorded under ``label``."""
    it = iter(batches)
    while True:
        with record_function(label):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch


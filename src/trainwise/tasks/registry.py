"""Task registry: which :class:`Task` a run trains, ``make_task(kind, …, cfg=cfg)``.

Supervised tasks register under the data kind they score (``classification``, ``multilabel``, ``regression``) with
:func:`register_task`; the other paradigms register under their ``paradigm.name`` (``autoencoder``, ``vae``,
``contrastive``, ``seq2seq``, ``gan``, ``distill``) with :func:`register_paradigm`. Like the model registry, tasks
register through explicit imports in ``trainwise/tasks/__init__.py``, so a name never goes missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainwise.errors import TrainwiseError
from trainwise.tasks.base import Task


@dataclass(frozen=True)
class TaskArgs:
    """What a task builder gets: the data's kind and label statistics, the loss options and, inside a run, the
    resolved config (``None`` when a supervised task is rebuilt for predictions)."""

    kind: str
    num_classes: int = 0
    label_smoothing: float = 0.0
    y_mean: float = 0.0
    y_std: float = 1.0
    cfg: Any = None


Builder = Callable[[TaskArgs], Task]
_SUPERVISED: dict[str, Builder] = {}
_PARADIGMS: dict[str, Builder] = {}


def _register(table: dict[str, Builder], name: str, what: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if name in table:
            raise ValueError(f"{what} '{name}' registered twice")
        table[name] = fn
        return fn

    return deco


def register_task(kind: str) -> Callable[[Builder], Builder]:
    """Register the supervised task for a data kind (``Table.task``: classification, multilabel, regression)."""
    return _register(_SUPERVISED, kind, "task")


def register_paradigm(name: str) -> Callable[[Builder], Builder]:
    """Register the task of a ``paradigm.name`` other than ``supervised``."""
    return _register(_PARADIGMS, name, "paradigm")


def make_task(kind: str, num_classes: int = 0, label_smoothing: float = 0.0, y_mean: float = 0.0,
              y_std: float = 1.0, cfg: Any = None) -> Task:
    """The task for a data kind and, when ``cfg`` is given, its ``paradigm.name``."""
    args = TaskArgs(kind, num_classes, label_smoothing, y_mean, y_std, cfg)
    paradigm = cfg.paradigm.name if cfg is not None else "supervised"
    if paradigm != "supervised":
        if paradigm not in _PARADIGMS:
            raise ValueError(f"unknown paradigm {paradigm}")  # config validation lists the choices before this
        return _PARADIGMS[paradigm](args)
    if kind == "seq2seq":
        raise TrainwiseError("sequence-to-sequence data needs paradigm.name=seq2seq")
    return _SUPERVISED.get(kind, _SUPERVISED["regression"])(args)  # every other kind is scored as regression

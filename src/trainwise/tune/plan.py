"""A validated tune invocation (:class:`Plan`), shared by the study (``tune/study.py``) and its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig

from trainwise.config import compose, to_dict
from trainwise.tune.space import Dim

# Keys that may differ between invocations of one study (other machines, other loaders) without changing results.
MAY_DIFFER = ("tune.", "device", "data.num_workers", "data.pin_memory", "data.persistent_workers",
               "data.prefetch_factor", "checkpoint.", "doctor.", "train.log_every")


@dataclass
class Plan:
    """Everything a tune invocation needs, validated before any side effect."""

    config: str | None
    preset: str | None
    overrides: list[str]
    cfg: DictConfig
    dims: list[Dim]
    default_space: bool
    metric: str
    direction: Literal["minimize", "maximize"]
    study_name: str
    out: Path
    storage_url: str
    trials: int
    workers: int

    def compose(self, extra: list[str]) -> DictConfig:
        return compose(self.config, self.preset, [*self.overrides, *extra])

    def record(self) -> dict[str, Any]:
        """What a study must keep across resumes: its space, metric and the config it tunes."""
        base = flat(to_dict(self.cfg))
        return {"space": {d.key: d.text for d in self.dims}, "metric": self.metric,
                "config": {k: v for k, v in base.items() if not k.startswith(MAY_DIFFER)}}


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "group_lr":
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out

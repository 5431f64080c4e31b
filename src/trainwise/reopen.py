"""Reopen a finished run: its resolved config, its preprocessing (``preprocess.json``) and its model with the best
weights, in eval mode. Evaluate, predict, the deploy commands, the doctor's report and a distillation teacher all
start here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig

from trainwise.build import build_model
from trainwise.config import compose
from trainwise.data.splits import Preprocess
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import load_weights


def open_run(run_dir: str | Path) -> tuple[Path, DictConfig, Preprocess, torch.nn.Module]:
    """A finished run back in memory: (directory, config, preprocessing, model with its best weights, eval mode)."""
    rd = Path(run_dir)
    if not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    try:
        raw = (rd / "config.yaml").read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainwiseError(f"cannot read '{rd / 'config.yaml'}' ({str(exc)[:200]}); it is not the config "
                             "'trainwise train' wrote") from None
    if "name: python" in raw:
        model = (yaml.safe_load(raw) or {}).get("model", {})
        if model.get("name") == "python":
            raise TrainwiseError(f"run '{rd}' trained a model object passed to trainwise.fit "
                                 f"({model.get('class', '?')}); rebuild it in Python and load best.safetensors with "
                                 "trainwise.run.rundir.load_weights")
    cfg = compose(rd / "config.yaml")
    pp = rd / "preprocess.json"
    if not pp.is_file():
        raise TrainwiseError(f"'{rd}' has no preprocess.json; it was not trained from a config")
    prep = read_preprocess(pp)
    weights = rd / "best.safetensors"
    if not weights.is_file():
        weights = rd / "final.safetensors"
    if not weights.is_file():
        raise TrainwiseError(f"'{rd}' holds no weights (best.safetensors / final.safetensors); the run did not finish")
    num_classes = len(prep.class_names) if prep.task in ("classification", "multilabel") else 0
    model = build_model(cfg, prep, num_classes)
    try:
        model.load_state_dict(load_weights(weights))
    except RuntimeError as exc:  # missing/unexpected keys or shapes: weights of another model
        raise TrainwiseError(f"'{weights}' does not fit the model config.yaml describes "
                             f"({str(exc).splitlines()[1].strip()[:200] if len(str(exc).splitlines()) > 1 else exc}); "
                             "were the weights replaced?") from None
    model.eval()
    return rd, cfg, prep, model


def read_preprocess(path: Path) -> Preprocess:
    """``preprocess.json`` checked against the fields of :class:`Preprocess` and their types (the file may have been
    edited or downloaded), so a wrong file is one error line, not a TypeError deep in predict or serve."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TrainwiseError(f"cannot read '{path}': {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(data, dict):
        raise TrainwiseError(f"'{path}' must hold a JSON object")
    fields = {f.name: f for f in dataclasses.fields(Preprocess)}
    extra = sorted(set(data) - set(fields))
    if extra:
        raise TrainwiseError(f"'{path}' has unknown key '{extra[0]}'; it was not written by this trainwise (or was "
                             "edited): remove the key")
    for name, value in data.items():
        want = {int: (int,), float: (int, float), str: (str,)}.get(type(fields[name].default), (list,))
        if isinstance(value, bool) or not isinstance(value, want):
            raise TrainwiseError(f"'{path}' key '{name}' has the wrong type ({type(value).__name__})")
    try:
        prep = Preprocess(**data)
        shape = [int(v) for v in prep.input_shape]
    except (TypeError, ValueError) as exc:
        raise TrainwiseError(f"'{path}' is malformed: {exc}") from None
    if not shape or any(v < 1 for v in shape):
        raise TrainwiseError(f"'{path}' has input_shape {prep.input_shape}; every size must be ≥ 1")
    return prep

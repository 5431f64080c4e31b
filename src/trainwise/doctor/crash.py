"""Crashes, diagnosed: where an exception left the user's model, recorded in ``RUN/error.json``, and the fixes for the
common ones.

Nothing here runs until something raises: the site is read from the exception's traceback (the innermost frame whose
``self`` is a module of the model, and the innermost frame outside torch), so the training loop pays nothing for it.
``error.json``: ``{"type", "message", "where": {"module", "module_type", "input_shape", "file", "line", "code"},
"step", "epoch", "batch"}``.
"""

from __future__ import annotations

import json
import re
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

_TORCH_DIR = str(Path(torch.__file__).parent)


def crash_site(exc: BaseException, model: nn.Module) -> dict[str, Any]:
    """The module of ``model`` (by name) and the source line where ``exc`` was raised, with that module's input
    shape when the frame still holds it."""
    names = {id(m): n for n, m in model.named_modules()}
    where: dict[str, Any] = {}
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in names:
            where["module"] = names[id(owner)] or "(the model itself)"
            where["module_type"] = type(owner).__name__
            shapes = [tuple(v.shape) for k, v in frame.f_locals.items() if k != "self" and isinstance(v, torch.Tensor)]
            if shapes:
                where["input_shape"] = list(shapes[0])
        if not frame.f_code.co_filename.startswith(_TORCH_DIR):  # the user's (or trainwise's) own code
            summary = traceback.extract_tb(exc.__traceback__)
            where.update({"file": frame.f_code.co_filename, "line": lineno})
            for fs in summary:
                if fs.filename == frame.f_code.co_filename and fs.lineno == lineno and fs.line:
                    where["code"] = fs.line.strip()
    return where


def _layer(where: dict[str, Any]) -> str:
    if not where.get("module"):
        return "the model"
    return f"layer '{where['module']}' ({where.get('module_type', '?')})"


def crash_fixes(kind: str, message: str, where: dict[str, Any]) -> tuple[str, list[str]]:
    """(one-line explanation, fixes in order of payoff) for an exception type and message raised at ``where``."""
    layer = _layer(where)
    shape = where.get("input_shape")
    if "Expected more than 1 value per channel when training" in message:
        return (f"{layer} received a batch of one sample in training mode: batch norm cannot compute a variance",
                ["drop the incomplete last batch (data.drop_last=true)",
                 "or choose data.batch_size so that the training split does not leave a single sample over",
                 "or use a normalisation that does not depend on the batch (nn.LayerNorm / nn.GroupNorm)"])
    m = re.search(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", message)
    if m:
        got, want = int(m.group(2)), int(m.group(3))
        return (f"{layer} expects {want} input features but receives {got}",
                [f"set in_features={got} on {layer} (or fix the flatten/reshape before it)",
                 "print the shape entering that layer for one batch to check the arithmetic"])
    m = re.search(r"shape '\[(.*?)\]' is invalid for input of size (\d+)", message)
    if m:
        return (f"a reshape to [{m.group(1)}] does not fit a tensor of {m.group(2)} elements"
                + (f" (input {tuple(shape)})" if shape else "")
                + (f" at `{where['code']}`" if where.get("code") else ""),
                ["reshape with the batch size of the tensor itself (x.view(x.size(0), -1)): a hard-coded batch size "
                 "breaks on the smaller last batch",
                 "or drop the incomplete last batch (data.drop_last=true)"])
    if "out of memory" in message.lower():
        return ("the device ran out of memory",
                ["lower data.batch_size and raise train.accumulate to keep the effective batch",
                 "use precision=bf16-mixed (halves activation memory)", "use a smaller model"])
    m = re.search(r"Target (-?\d+) is out of bounds", message)
    if m:
        return (f"a label ({m.group(1)}) is outside the model's output classes",
                ["make the last layer output as many values as there are classes",
                 "renumber the labels from 0"])
    return (f"{kind}: {message.splitlines()[0] if message else ''}" + (f" in {layer}" if where.get("module") else ""),
            [f"fix the exception raised at {where.get('file', '?')}:{where.get('line', '?')}"
             + (f" (`{where['code']}`)" if where.get("code") else "")])


def read_error(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "error.json"
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):  # torn or damaged: read as absent
        return None
    return obj if isinstance(obj, dict) else None

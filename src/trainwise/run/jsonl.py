"""Reading a run's JSON-lines logs (``metrics.jsonl``, ``monitors.jsonl``). Torch-free: ``trainwise runs``,
``report`` and the doctor's diagnosis of a finished run all read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, in order; a torn last line (a kill mid-write) and non-objects are skipped."""
    try:
        text = path.read_text(errors="replace")
    except OSError:  # missing, a directory, unreadable: no records
        return []
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:  # a torn last line after a kill (also numbers too large for Python's int parser)
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out

"""``trainwise runs [DIR]``: one row per run directory, read from the files each run wrote.

No torch import and no model loading: a table of a hundred runs answers in well under a second. What a row says
comes from ``config.yaml`` (name, model, paradigm), ``summary.json`` (status, best epoch, metrics, wall time;
written last, so its presence means the run ended), ``diagnosis.json`` (finding codes) and, for a run that has not
ended, ``history.json``/``metrics.jsonl`` and ``checkpoints/``. A directory that is not a run is left out; one that
looks like a run but cannot be read is listed as ``unreadable`` instead of stopping the listing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from trainwise.errors import TrainwiseError, suggest
from trainwise.run.jsonl import read_jsonl

# A run without summary.json and without a status.json this machine can check (one trained elsewhere, or before
# status.json existed) is taken to be training still when its files changed this recently (a run writes
# metrics.jsonl at every log interval and epoch end); older ones crashed.
RUNNING_WINDOW_S = 300.0
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "history.json")
SORT_KEYS = ("name", "model", "paradigm", "status", "best_epoch", "metric", "wall", "started")
STATUS_ENDED = {"completed": "completed", "early_stopping": "stopped early", "callback": "stopped early",
                "non_finite_loss": "failed: non-finite loss"}


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is absent or unreadable (a crash can leave a file out, never half)."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def history_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch rows (``train/loss``, ``val/accuracy``, …) rebuilt from metrics.jsonl, for a run that has not
    written history.json (running or crashed)."""
    rows: dict[int, dict[str, Any]] = {}
    for e in events:
        if not isinstance(e.get("epoch"), int):
            continue
        if e.get("split") == "train" and e.get("epoch_end"):
            row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
            row.update({f"train/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split", "epoch_end",
                                                                               "lr")})
            row["step"], row["lr"] = e.get("step"), e.get("lr")
        elif e.get("split") == "val":
            row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
            row.update({f"val/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split")})
    return [rows[k] for k in sorted(rows)]


def load_history(rd: Path) -> list[dict[str, Any]]:
    history = read_json(rd / "history.json")
    if not isinstance(history, list):
        history = history_from_events(read_jsonl(rd / "metrics.jsonl"))
    return [h for h in history if isinstance(h, dict) and isinstance(h.get("epoch"), int)]


def read_config(rd: Path) -> dict[str, Any] | None:
    import yaml

    try:
        cfg = yaml.safe_load((rd / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return cfg if isinstance(cfg, dict) else None


PROCESS_FILE = "status.json"  # present only while a run is training or after a signal stopped it


def mark_process(rd: Path, state: str, **extra: Any) -> None:
    """Record in ``RUN_DIR/status.json`` that this process is training the run (``state="running"``) or that a
    signal stopped it (``"interrupted"``); ``trainwise runs`` tells running, interrupted and crashed runs apart by
    it (a SIGKILL or a crash leaves ``running`` with a process id that no longer exists)."""
    import os
    import socket

    from trainwise.run.rundir import (
        write_json,  # deferred: rundir imports torch; `trainwise runs` stays torch-free
    )

    write_json(rd / PROCESS_FILE, {"state": state, "pid": os.getpid(), "host": socket.gethostname(), **extra})


def clear_process(rd: Path) -> None:
    """The run ended (summary.json is written): the process record is no longer needed."""
    (rd / PROCESS_FILE).unlink(missing_ok=True)


def _alive(pid: Any) -> bool | None:
    """Whether process ``pid`` exists on this machine (None: cannot tell)."""
    import os

    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def _unfinished_status(rd: Path, now: float) -> str:
    """running | interrupted (resumable) | crashed (resumable) | crashed, for a run without summary.json."""
    import socket

    resumable = _resumable(rd)
    proc = read_json(rd / PROCESS_FILE)
    if isinstance(proc, dict):
        if proc.get("state") == "interrupted":
            return "interrupted (resumable)" if resumable else "interrupted"
        if proc.get("host") == socket.gethostname():
            alive = _alive(proc.get("pid"))
            if alive is not None:
                if alive:
                    return "running"
                return "crashed (resumable)" if resumable else "crashed"
    # another machine's run, or one written before status.json existed: judge by how recently files changed
    newest = max((p.stat().st_mtime for p in rd.iterdir()), default=0.0)
    if now - newest < RUNNING_WINDOW_S:
        return "running"
    return "crashed (resumable)" if resumable else "crashed"


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _resumable(rd: Path) -> bool:
    # a checkpoint is complete once its manifest is in place (train/checkpoint.py writes it last); full
    # verification is `trainwise checkpoints RUN_DIR`
    return any((rd / "checkpoints").glob("step-*/manifest.json"))


def _main_metric(summary: dict[str, Any], history: list[dict[str, Any]]) -> tuple[str | None, float | None]:
    """The run's headline number: test/<main metric> when tested, else the best (or last) val/…, else train/…."""
    main = summary.get("main_metric")
    if not isinstance(main, str):
        keys = {k for h in history for k in h}
        main = "accuracy" if "val/accuracy" in keys or "train/accuracy" in keys else "loss"
    for key in (f"test/{main}", f"val/{main}", f"train/{main}"):
        if _number(summary.get(key)) is not None:
            return key, _number(summary[key])
    for key in (f"val/{main}", f"train/{main}"):  # no summary yet: the latest epoch's
        values = [_number(h.get(key)) for h in history]
        values = [v for v in values if v is not None]
        if values:
            return key, values[-1]
    return None, None


def describe(rd: Path, now: float | None = None) -> dict[str, Any] | None:
    """One run directory as a row; None when ``rd`` is not a run directory. Never raises for a damaged run."""
    if not rd.is_dir() or not any((rd / f).is_file() for f in RUN_FILES):
        return None
    now = time.time() if now is None else now
    row: dict[str, Any] = {"name": rd.name, "path": str(rd), "model": None, "paradigm": None, "status": "unreadable",
                           "epochs": None, "best_epoch": None, "metric": None, "metric_value": None, "wall": None,
                           "findings": [], "started": None}
    try:
        cfg = read_config(rd)
        if cfg is None:
            row["problem"] = "config.yaml is missing or not valid YAML"
            return row
        model = cfg["model"] if isinstance(cfg.get("model"), dict) else {}
        paradigm = cfg["paradigm"] if isinstance(cfg.get("paradigm"), dict) else {}
        row["model"] = model.get("name")
        row["paradigm"] = paradigm.get("name", "supervised")
        row["started"] = (rd / "config.yaml").stat().st_mtime
        summary = read_json(rd / "summary.json")
        history = load_history(rd)
        if isinstance(summary, dict):
            stopped = summary.get("stopped")
            row["status"] = STATUS_ENDED.get(str(stopped), str(stopped))
            row["epochs"] = summary.get("epochs")
            row["best_epoch"] = summary.get("best_epoch")
            row["wall"] = _number(summary.get("wall_seconds"))
        else:
            row["status"] = _unfinished_status(rd, now)
            row["epochs"] = len(history)
            summary = {}
            # epochs so far: history.json's seconds, or the monitors' per-epoch timing lines (metrics.jsonl has none)
            secs = [_number(h.get("seconds")) for h in history if _number(h.get("seconds")) is not None]
            if not secs:
                secs = [_number(m.get("epoch_s")) for m in read_jsonl(rd / "monitors.jsonl")
                        if m.get("kind") == "timing" and _number(m.get("epoch_s")) is not None]
            row["wall"] = sum(secs) if secs else None
        row["metric"], row["metric_value"] = _main_metric(summary, history)
        diagnosis = read_json(rd / "diagnosis.json")
        if isinstance(diagnosis, dict) and isinstance(diagnosis.get("findings"), list):
            row["findings"] = [str(f.get("code")) for f in diagnosis["findings"] if isinstance(f, dict)]
        elif isinstance(summary.get("findings"), list):
            row["findings"] = [str(c) for c in summary["findings"]]
    except OSError as exc:  # permissions, a file vanishing mid-read
        row["status"] = "unreadable"
        row["problem"] = str(exc)
    return row


def list_runs(root: str | Path = "runs", sort: str = "started", reverse: bool = False) -> list[dict[str, Any]]:
    """Rows for the run directories directly under ``root`` (or ``root`` itself when it is one run)."""
    base = Path(root)
    if not base.exists():
        raise TrainwiseError(f"'{base}' does not exist; give the folder that holds run directories (default runs/)")
    if not base.is_dir():
        raise TrainwiseError(f"'{base}' is not a directory; give the folder that holds run directories")
    if sort not in SORT_KEYS:
        raise TrainwiseError(f"--sort {sort} is not one of {', '.join(SORT_KEYS)}{suggest(sort, SORT_KEYS)}")
    own = describe(base)
    if own is not None:
        rows = [own]
    else:
        try:
            children = sorted(base.iterdir())
        except OSError as exc:
            raise TrainwiseError(f"cannot list '{base}': {exc}") from None
        rows = [r for r in map(describe, children) if r is not None]
    field = "metric_value" if sort == "metric" else sort
    # missing values sort last whichever the direction
    present = [r for r in rows if r.get(field) is not None]
    missing = [r for r in rows if r.get(field) is None]
    present.sort(key=lambda r: (r[field], r["name"]) if not isinstance(r[field], str) else (r[field].lower(),
                                                                                               r["name"]),
                 reverse=reverse)
    return present + missing


def _fmt_wall(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def rich_console() -> Any:
    """A rich console; written to a file or pipe, 160 columns unless COLUMNS says otherwise (rich would fold
    every table to 80)."""
    import os
    import sys

    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    return Console(width=width)


def print_runs(rows: list[dict[str, Any]], root: str | Path) -> None:
    """The rows as a rich table on stdout."""
    from rich.table import Table

    console = rich_console()
    if not rows:
        console.print(f"no runs in {root}")
        return
    colour = {"completed": "green", "stopped early": "green", "running": "cyan", "crashed (resumable)": "yellow"}
    table = Table(title=f"runs in {root}", title_justify="left")
    # on a narrow terminal the run name folds first; the short columns keep their width
    for col, justify, wrap, min_width in (("run", "left", True, 12), ("model", "left", True, 5),
                                          ("paradigm", "left", True, 10), ("status", "left", True, 11),
                                          ("best", "right", False, None), ("metric", "left", False, None),
                                          ("value", "right", False, None), ("wall", "right", False, None),
                                          ("findings", "left", True, 8)):
        table.add_column(col, justify=justify, no_wrap=not wrap, overflow="fold",  # type: ignore[arg-type]
                         min_width=min_width)
    for r in rows:
        best = f"{r['best_epoch']}/{r['epochs']}" if r["best_epoch"] is not None else (
            f"-/{r['epochs']}" if r["epochs"] else "-")
        st = r["status"]
        table.add_row(r["name"], r["model"] or "-", r["paradigm"] or "-",
                      f"[{colour.get(st, 'red')}]{st}[/]", best, r["metric"] or "-",
                      f"{r['metric_value']:.4f}" if r["metric_value"] is not None else "-", _fmt_wall(r["wall"]),
                      ", ".join(r["findings"]) or "-")
    console.print(table)

"""``trainwise compare RUN_A RUN_B [...]``: what differs between runs and what it did to them.

Three parts, in the terminal and as one self-contained HTML page: the config keys whose values differ (dotted,
from each run's ``config.yaml``), the final metrics side by side (``summary.json``; the last epoch for a run that
has not finished), and the loss/metric curves of all runs overlaid (``history.json``, or ``metrics.jsonl`` for an
unfinished run). Like ``trainwise report``, the page embeds its plots as base64 PNG and a Content-Security-Policy
forbids it from fetching anything.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwise.checkup.report import CSP, SCRIPT, STYLE, embed_png
from trainwise.errors import TrainwiseError
from trainwise.run.runs import describe, load_history, read_config, read_json, rich_console
from trainwise.run.tracking import flatten

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPARK = "▁▂▃▄▅▆▇█"
MISSING = "—"


@dataclass
class Run:
    path: Path
    label: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


def load_run(path: str | Path) -> Run:
    rd = Path(path)
    if not rd.is_dir():
        raise TrainwiseError(f"run directory '{rd}' does not exist")
    cfg = read_config(rd)
    if cfg is None:
        raise TrainwiseError(f"'{rd}' is not a run directory (no readable config.yaml); give directories made by "
                             "'trainwise train'")
    summary = read_json(rd / "summary.json")
    row = describe(rd) or {}
    return Run(rd, rd.name, cfg, summary if isinstance(summary, dict) else {}, load_history(rd),
               str(row.get("status", "")))


def load_runs(paths: list[str | Path]) -> list[Run]:
    if len(paths) < 2:
        raise TrainwiseError("compare needs at least two run directories")
    runs = [load_run(p) for p in paths]
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):  # two runs with the same folder name (runs/a/x, runs/b/x): show the parent too
        if labels.count(r.label) > 1:
            r.label = f"{r.path.parent.name}/{r.path.name}" if r.path.parent.name else f"{r.label}#{i + 1}"
    return runs


def config_diff(runs: list[Run]) -> list[tuple[str, list[Any]]]:
    """Dotted config keys whose values are not all equal (a key one run lacks counts as different)."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat))
    absent = object()
    out = []
    for k in keys:
        values = [f.get(k, absent) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out.append((k, [MISSING if v is absent else v for v in values]))
    return out


def final_metrics(runs: list[Run]) -> list[tuple[str, list[Any]]]:
    """Metric rows (``test/…``, ``val/…``, ``train/…``, then epochs, best epoch, wall time, status)."""
    per_run: list[dict[str, Any]] = []
    for r in runs:
        m = {k: v for k, v in r.summary.items() if "/" in k}
        if not m and r.history:  # unfinished: its latest epoch
            m = {k: v for k, v in r.history[-1].items() if "/" in k}
        m["epochs"] = r.summary.get("epochs", len(r.history))
        m["best epoch"] = r.summary.get("best_epoch")
        wall = r.summary.get("wall_seconds")
        m["wall seconds"] = f"{wall:.1f}" if _finite(wall) else None
        m["status"] = r.status
        per_run.append(m)
    order = {"test": 0, "val": 1, "train": 2}
    metric_keys = sorted({k for m in per_run for k in m if "/" in k},
                         key=lambda k: (order.get(k.split("/")[0], 3), k))
    keys = metric_keys + ["epochs", "best epoch", "wall seconds", "status"]
    return [(k, [m.get(k) for m in per_run]) for k in keys]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curve_keys(runs: list[Run]) -> list[str]:
    """Curves worth overlaying: losses first, then the main metric; only those at least one run recorded."""
    mains = {str(r.summary.get("main_metric")) for r in runs if r.summary.get("main_metric")} or {"accuracy"}
    wanted = ["train/loss", "val/loss", *[f"val/{m}" for m in sorted(mains) if m != "loss"],
              *[f"train/{m}" for m in sorted(mains) if m != "loss"]]
    have = {k for r in runs for h in r.history for k in h if _finite(h.get(k))}
    return [k for k in wanted if k in have]


def curve(run: Run, key: str) -> list[tuple[int, float]]:
    """(epoch, value) points, epochs counted from 1."""
    return [(int(h["epoch"]) + 1, float(h[key])) for h in run.history if _finite(h.get(key))]


def sparkline(values: list[float], lo: float, hi: float) -> str:
    """Values as block characters on a shared [lo, hi] scale, so lines of different runs compare by eye."""
    if not values:
        return MISSING
    span = hi - lo
    return "".join(SPARK[0 if span <= 0 else min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))]
                   for v in values)


def _fmt(v: Any) -> str:
    if v is None:
        return MISSING
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    if isinstance(v, (list, dict)):
        import json

        return json.dumps(v)
    return str(v)


def print_comparison(runs: list[Run]) -> None:
    from rich.table import Table

    console = rich_console()
    labels = [r.label for r in runs]

    diff = config_diff(runs)
    t = Table(title="config keys that differ", title_justify="left")
    t.add_column("key")
    for lb in labels:
        t.add_column(lb, overflow="fold")
    for k, values in diff:
        t.add_row(k, *[_fmt(v) for v in values])
    if diff:
        console.print(t)
    else:
        console.print("config: identical (same keys and values)")

    t = Table(title="final metrics", title_justify="left")
    t.add_column("metric")
    for lb in labels:
        t.add_column(lb, justify="right")
    for k, values in final_metrics(runs):
        nums = [v for v in values if _finite(v)]
        best = None
        if len(nums) > 1 and "/" in k and len(set(nums)) > 1:  # mark the best run per metric
            best = min(nums) if ("loss" in k or "error" in k or "mse" in k or "mae" in k) else max(nums)
        t.add_row(k, *[f"[bold]{_fmt(v)}[/bold]" if best is not None and v == best else _fmt(v) for v in values])
    console.print(t)

    keys = curve_keys(runs)
    if keys:
        t = Table(title="curves per epoch (shared scale per row group: low ▁ … high █)", title_justify="left")
        t.add_column("curve")
        t.add_column("run")
        t.add_column("per epoch", no_wrap=True)
        t.add_column("first → last", justify="right")
        for k in keys:
            lines = [curve(r, k) for r in runs]
            vals = [v for ln in lines for _, v in ln]
            lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
            for i, (r, ln) in enumerate(zip(runs, lines)):
                ends = f"{ln[0][1]:.4f} → {ln[-1][1]:.4f}" if ln else MISSING
                t.add_row(k if i == 0 else "", r.label, sparkline([v for _, v in ln], lo, hi), ends,
                          end_section=i == len(runs) - 1)
        console.print(t)


# ---- HTML --------------------------------------------------------------------------------------------------------

def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _plot(runs: list[Run], key: str) -> Figure:
    from matplotlib.figure import Figure  # here: `trainwise compare` without --html never loads matplotlib
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for r in runs:
        pts = curve(r, key)
        if pts:
            ax.plot([e for e, _ in pts], [v for _, v in pts], marker="o" if len(pts) < 30 else None, ms=3,
                    label=r.label)
    ax.set_title(key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def compare_html(runs: list[Run]) -> str:
    """The comparison as one self-contained HTML page."""
    labels = [r.label for r in runs]
    head = "".join(f"<th>{_e(lb)}</th>" for lb in labels)

    def table(rows: list[tuple[str, list[Any]]], numeric: bool) -> str:
        body = "".join(f"<tr><td><code>{_e(k)}</code></td>"
                       + "".join(f'<td class="{"num" if numeric and _finite(v) else ""}">{_e(_fmt(v))}</td>'
                                 for v in values) + "</tr>" for k, values in rows)
        return f"<table><tr><th>key</th>{head}</tr>{body}</table>"

    diff = config_diff(runs)
    runs_rows = "".join(f"<tr><td>{_e(r.label)}</td><td><code>{_e(r.path.resolve())}</code></td>"
                        f"<td>{_e(r.status)}</td></tr>" for r in runs)
    parts = [f"<h1>trainwise compare: {len(runs)} runs</h1>",
             f'<section id="runs"><h2>Runs</h2><table><tr><th>run</th><th>directory</th><th>status</th></tr>'
             f"{runs_rows}</table></section>",
             '<section id="config-diff"><h2>Config keys that differ</h2>'
             + (table(diff, False) if diff else '<p class="note">identical (same keys and values)</p>')
             + "</section>",
             f'<section id="metrics"><h2>Final metrics</h2>{table(final_metrics(runs), True)}</section>']
    keys = curve_keys(runs)
    imgs = "".join(embed_png(_plot(runs, k), f"{k} per epoch, all runs") for k in keys)
    parts.append(f'<section id="curves"><h2>Curves</h2>{imgs or "<p class=note>no per-epoch curves recorded</p>"}'
                 "</section>")
    title = "trainwise compare: " + " vs ".join(labels)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts)
            + f'\n<p class="muted">written {_e(datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"))}'
            " by trainwise compare</p>\n" + f"<script>{SCRIPT}</script>\n</body></html>\n")


def write_compare_html(runs: list[Run], dest: str | Path, force: bool = False) -> Path:
    """Write the page to ``dest``; an existing file is replaced only with ``force``."""
    out = Path(dest)
    if out.is_dir():
        raise TrainwiseError(f"--html '{out}' is a directory; give a file name such as {out / 'compare.html'}")
    if out.exists() and not force:
        raise TrainwiseError(f"'{out}' already exists; pass --force to replace it (nothing was written)")
    # atomic: never half a page under the final name. deferred: run.rundir imports torch; compare stays torch-free
    from trainwise.run.rundir import write_text

    write_text(out, compare_html(runs))
    return out

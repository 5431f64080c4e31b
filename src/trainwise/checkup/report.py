"""``trainwise report RUN_DIR``: one self-contained HTML page about a run.

Everything is embedded — plots as base64 PNG, styles and one tiny script inline — so the file can be mailed,
attached to an issue or opened offline, and a Content-Security-Policy forbids the page from fetching anything.
Every section reads only files the run wrote (the confusion matrix re-runs the best weights on the test split,
rebuilt deterministically from the run's seed); a file that is missing (a crashed run, or one trained before the
monitors existed) turns its section into a "not recorded" note instead of an error.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from trainwise.errors import TrainwiseError
from trainwise.run.jsonl import read_jsonl
from trainwise.safety import refuse_existing, write_error

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# default-src 'none': a report that tried to load anything (a font, a CDN script, a tracking pixel) would show it
# as broken instead of silently phoning out. Inline style/script and data: images are all the page needs.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 16px 28px 48px; color: #1d232b; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
section { border-top: 1px solid #d8dde3; padding: 18px 0 8px; }
nav a { margin-right: 12px; color: #2457a6; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 12px; }
td, th { border: 1px solid #d8dde3; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
pre { background: #f6f8fa; border: 1px solid #d8dde3; padding: 10px; overflow-x: auto; font-size: 12.5px; }
.muted { color: #66707c; } .note { color: #66707c; font-style: italic; }
.finding { border-left: 5px solid #999; padding: 6px 12px; margin: 10px 0; background: #fafbfc; }
.finding.error { border-color: #c62828; } .finding.warning { border-color: #e69500; }
.finding.info { border-color: #2e7d32; }
.sev { display: inline-block; padding: 1px 7px; border-radius: 3px; color: #fff; font-size: 12px;
       font-weight: 600; text-transform: uppercase; margin-right: 6px; }
.sev.error { background: #c62828; } .sev.warning { background: #b87400; } .sev.info { background: #2e7d32; }
code { font-size: 13px; }
"""

# After the load event, count images that actually decoded: a headless browser (tests, CI) reads the result from
# <body data-images-ok=…> in the dumped DOM, which proves every embedded PNG is valid — not merely present.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }
  document.body.setAttribute("data-images-ok", String(ok));
  document.body.setAttribute("data-images-total", String(imgs.length));
});
"""

NOT_RECORDED = "not recorded"


# ---- reading the run directory ----------------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is absent or unreadable (a crash can leave a file out, never half)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _history_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch rows rebuilt from metrics.jsonl, for a run that died before writing history.json."""
    rows: dict[int, dict[str, Any]] = {}
    for e in events:
        if "epoch" not in e:
            continue
        if e.get("split") == "train" and e.get("epoch_end"):
            row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
            row.update({f"train/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split", "epoch_end", "lr")})
            row["lr"] = e.get("lr")
        elif e.get("split") == "val":
            row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
            row.update({f"val/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split")})
    return [rows[k] for k in sorted(rows)]


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _stamp(path: Path) -> str | None:
    """A file's modification time, local, to the second. The run directory records no dates itself: config.yaml is
    written before the first step and summary.json after the last, so their times bracket the run."""
    if not path.is_file():
        return None
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(sep=" ", timespec="seconds")


# ---- HTML helpers ---------------------------------------------------------------------------------------------

def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any, depth: int = 0) -> str:
    """Numbers to 4 significant digits, nested evidence (per-layer dicts, lists) compact and bounded in length."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, dict) and depth < 3:
        items = [f"{k}: {_fmt(x, depth + 1)}" for k, x in list(v.items())[:24]]
        return "{" + ", ".join(items) + (", …" if len(v) > 24 else "") + "}"
    if isinstance(v, (list, tuple)) and depth < 3:
        items = [_fmt(x, depth + 1) for x in v[:24]]
        return "[" + ", ".join(items) + (", …" if len(v) > 24 else "") + "]"
    return str(v)[:600]


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None) -> str:
    parts = ["<table>"]
    if header:
        parts.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for v in row:
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{_e(sid)}"><h2>{_e(title)}</h2>{body}</section>'


def embed_png(fig: Figure, alt: str) -> str:
    """Render a Figure to an inline <img>. Figure objects (not pyplot) keep no global state and need no backend
    switch, so writing a report cannot disturb a caller's own matplotlib session."""
    buf = io.BytesIO()
    # metadata Software=None: matplotlib would otherwise stamp its home-page URL into every PNG
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


# ---- sections -----------------------------------------------------------------------------------------------

def _header(rd: Path, summary: dict[str, Any], cfg: dict[str, Any]) -> str:
    name = cfg.get("name") or rd.name
    rows: list[tuple[Any, ...]] = [
        ("run directory", str(rd.resolve())),
        ("name", name),
        ("started (config.yaml written)", _stamp(rd / "config.yaml") or NOT_RECORDED),
        ("finished (summary.json written)", _stamp(rd / "summary.json") or "not finished (no summary.json)"),
        ("device", summary.get("device") or f"{cfg.get('device', '?')} (configured; run did not finish)"),
    ]
    for key in ("precision", "seed", "task", "epochs", "steps", "best_epoch", "monitor", "stopped", "wall_seconds",
                "resumed_from", "nonfinite_skipped_steps", "rollbacks", "checkpoint_failures"):
        if key in summary:
            rows.append((key, summary[key]))
    body = _table(rows)
    metrics = sorted((k, v) for k, v in summary.items() if "/" in k and _finite(v))
    if metrics:
        splits = sorted({k.split("/", 1)[0] for k, _ in metrics}, key=lambda s: ("train", "val", "test").index(s)
                        if s in ("train", "val", "test") else 9)
        names = sorted({k.split("/", 1)[1] for k, _ in metrics})
        table_rows = [(m, *[summary.get(f"{s}/{m}", "") for s in splits]) for m in names]
        body += "<h3>Final metrics</h3>" + _table(table_rows, ("metric", *splits))
    else:
        body += _note(f"final metrics {NOT_RECORDED} (no summary.json: the run did not finish)")
    if isinstance(summary.get("versions"), dict):
        body += '<p class="muted">' + _e(", ".join(f"{k} {v}" for k, v in summary["versions"].items())) + "</p>"
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in SECTIONS)
    title = f"trainwise report: {name}"
    return f'<section id="header"><h1>{_e(title)}</h1><nav>{nav}</nav>{body}</section>'


def _findings_html(findings: list[dict[str, Any]]) -> str:
    parts = []
    for f in findings:
        if not isinstance(f, dict):
            continue
        sev = str(f.get("severity", "info"))
        sev_cls = sev if sev in ("info", "warning", "error") else "info"
        parts.append(f'<div class="finding {sev_cls}"><p><span class="sev {sev_cls}">{_e(sev)}</span>'
                     f'<code>{_e(f.get("code", "?"))}</code> — {_e(f.get("message", ""))}</p>')
        ev = f.get("evidence") or {}
        if isinstance(ev, dict) and ev:
            parts.append("<h3>Evidence</h3>" + _table([(k, v) for k, v in ev.items()]))
        fixes = f.get("fixes") or []
        fixes = [fixes] if isinstance(fixes, str) else fixes
        if isinstance(fixes, list) and fixes:
            parts.append("<h3>Fixes, in order of payoff</h3><ol>" + "".join(f"<li>{_e(x)}</li>" for x in fixes)
                         + "</ol>")
        parts.append("</div>")
    return "".join(parts)


def _findings(rd: Path, name: str, what: str) -> str:
    data = _read_json(rd / name)
    if data is None:
        return _note(f"{what} {NOT_RECORDED} ({name} is missing)")
    findings = data.get("findings", []) if isinstance(data, dict) else []
    body = _findings_html(findings) if isinstance(findings, list) and findings else _note(f"{what}: no findings")
    # preflight.json also records the loss at initialisation next to its expectation (ln C for classification)
    extra = [(k, data[k]) for k in ("init_loss", "expected_init_loss") if isinstance(data, dict) and k in data]
    if extra:
        body += _table(extra, ("measured at initialisation", "value"))
    return body


def _figure(**kw: Any) -> Figure:
    # imported here, not at module level: `trainwise report` answers a wrong path without loading matplotlib
    from matplotlib.figure import Figure

    return Figure(**kw)


def _curves(history: list[dict[str, Any]], events: list[dict[str, Any]], main_metric: str) -> str:
    from matplotlib.ticker import MaxNLocator

    if not history:
        return _note(f"per-epoch curves {NOT_RECORDED} (no epoch finished: history.json is empty or missing and "
                     "metrics.jsonl holds no epoch-end events)")
    fig = _figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 2)
    for ax, key in ((axes[0], "loss"), (axes[1], main_metric)):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(h["epoch"] + 1, h[f"{split}/{key}"]) for h in history if _finite(h.get(f"{split}/{key}"))]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=split)
        ax.set_title(f"{key} per epoch")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    body = embed_png(fig, f"loss and {main_metric} per epoch, train and val")
    steps = [(e["step"], e["loss"]) for e in events if e.get("split") == "train" and not e.get("epoch_end")
             and _finite(e.get("loss")) and "step" in e]
    if len(steps) >= 2:
        fig = _figure(figsize=(12, 3.2))
        ax = fig.subplots()
        ax.plot(*zip(*steps), lw=1)
        ax.set_title("training loss at log intervals (mean since the previous log)")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        body += embed_png(fig, "training loss per log interval")
    else:
        body += _note(f"per-step training loss {NOT_RECORDED} (fewer than 2 log intervals; lower train.log_every)")
    return body


def _lr(history: list[dict[str, Any]], events: list[dict[str, Any]]) -> str:
    # Train events (log intervals and epoch ends) carry the lr at an optimizer step: a finer trace than per epoch.
    pts = sorted({e["step"]: e["lr"] for e in events
                  if e.get("split") == "train" and _finite(e.get("lr")) and _finite(e.get("step"))}.items())
    xlabel = "optimizer step"
    if len(pts) < 2:
        pts = [(h["epoch"] + 1, h["lr"]) for h in history if _finite(h.get("lr"))]
        xlabel = "epoch (end)"
    if not pts:
        return _note(f"learning rate {NOT_RECORDED}")
    fig = _figure(figsize=(12, 3.0))
    ax = fig.subplots()
    ax.plot(*zip(*pts), marker="o", ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("lr")
    ax.set_title("learning-rate schedule")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return embed_png(fig, "learning rate over training")


def _layer_lines(records: list[dict[str, Any]], group: str, key: str) -> dict[str, list[tuple[int, float]]]:
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for name, vals in (r.get(group) or {}).items():
            if isinstance(vals, dict) and _finite(vals.get(key)) and _finite(r.get("step")):
                lines.setdefault(name, []).append((r["step"], vals[key]))
    return lines


def _plot_lines(lines: dict[str, list[tuple[int, float]]], title: str, ylabel: str, log: bool,
                extra: Callable[[Any], None] | None = None) -> str:
    fig = _figure(figsize=(12, 3.8))
    ax = fig.subplots()
    for name, pts in lines.items():
        pts = [(s, v) for s, v in pts if v > 0] if log else pts  # log axes cannot show 0 (a layer with no grad)
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=2, lw=1, label=name)
    if log and ax.lines:
        ax.set_yscale("log")
    if extra is not None:
        extra(ax)
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, ncol=max(1, len(lines) // 8), loc="best")
    fig.tight_layout()
    return embed_png(fig, title)


def _grad_norms(records: list[dict[str, Any]], have_file: bool) -> str:
    if not records:
        why = "monitors.jsonl is missing" if not have_file else \
            "no sampled steps: the run had fewer optimizer steps than doctor.monitor_every"
        return _note(f"per-layer gradient norms {NOT_RECORDED} ({why})")
    body = _plot_lines(_layer_lines(records, "layers", "grad_norm"),
                       "per-layer gradient norm (weights, before clipping)", "‖grad‖", log=True)

    def rule_of_thumb(ax: Any) -> None:
        ax.axhline(1e-3, color="k", ls=":", lw=1)  # Karpathy's ~1e-3 update/weight heuristic, for orientation

    ratios = _layer_lines(records, "layers", "update_ratio")
    if ratios:
        body += _plot_lines(ratios, "update-to-weight ratio per layer (dotted: 1e-3)", "‖Δw‖ / ‖w‖", log=True,
                            extra=rule_of_thumb)
    last = records[-1]
    rows = [(n, v.get("grad_norm"), v.get("update_ratio"), v.get("weight_norm"))
            for n, v in (last.get("layers") or {}).items() if isinstance(v, dict)]
    if rows:
        body += f"<h3>Last sample (step {_e(last.get('step'))})</h3>"
        body += _table(rows, ("layer", "grad norm", "update ratio", "weight norm"))
    return body


def _activations(records: list[dict[str, Any]], have_file: bool) -> str:
    if not records:
        why = "monitors.jsonl is missing" if not have_file else "no sampled steps"
        return _note(f"activation statistics {NOT_RECORDED} ({why})")
    body = ""
    dead = _layer_lines(records, "activations", "dead_frac")
    sat = _layer_lines(records, "activations", "sat_frac")

    def unit_range(ax: Any) -> None:
        ax.set_ylim(-0.03, 1.03)

    if dead:
        body += _plot_lines(dead, "dead units per ReLU layer (never positive on the sampled batch)",
                            "fraction dead", log=False, extra=unit_range)
    if sat:
        body += _plot_lines(sat, "saturated outputs per sigmoid/tanh layer", "fraction saturated", log=False,
                            extra=unit_range)
    if not dead and not sat:
        body += _note("no ReLU, sigmoid or tanh layers were monitored: dead / saturated fractions do not apply")
    std = _layer_lines(records, "activations", "std")
    last = {n: pts[-1][1] for n, pts in std.items()}
    blank: list[tuple[int, Any]] = [(0, "")]  # a layer without that measure: an empty cell
    rows = [(n, last.get(n), (dead.get(n) or blank)[-1][1], (sat.get(n) or blank)[-1][1]) for n in std]
    if rows:
        body += "<h3>Last sample</h3>" + _table(rows, ("activation module", "std", "dead fraction",
                                                       "saturated fraction"))
    return body


def _timing(timing: list[dict[str, Any]], nonfinite: list[dict[str, Any]]) -> str:
    if not timing and not nonfinite:
        return _note(f"epoch timing {NOT_RECORDED}")
    body = ""
    if timing:
        rows = []
        for t in timing:
            wait, total = t.get("data_wait_s"), t.get("epoch_s")
            share = wait / total if _finite(wait) and _finite(total) and total > 0 else ""
            rows.append(((t.get("epoch") or 0) + 1, total, wait, share))
        body += _table(rows, ("epoch", "epoch seconds", "waiting for data (s)", "share waiting"))
    if nonfinite:
        body += "<h3>Non-finite steps</h3>" + _table(
            [(n.get("step"), (n.get("epoch") or 0) + 1, n.get("batch"), n.get("layer") or "") for n in nonfinite],
            ("step", "epoch", "batch", "first non-finite layer"))
    return body


def _predictions(rd: Path) -> tuple[str, str, str]:
    """(section id, title, body): a confusion matrix of the best weights on the test split for classification,
    predicted vs true for regression. Re-runs inference because the run stores metrics, not predictions."""
    # deferred: torch and the modules below load only for this section (run.compare imports this module's page
    # styles and stays torch-free)
    import torch
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    from trainwise.build import load_data
    from trainwise.data.loaders import loader_input, make_loader
    from trainwise.reopen import open_run
    from trainwise.tasks import make_task
    from trainwise.train.precision import autocast, resolve_device, resolve_precision

    try:
        _, cfg, prep, model = open_run(rd)  # best weights (final when no best), eval mode
        splits = load_data(cfg)
        device = resolve_device(cfg.device)
    except TrainwiseError as exc:
        return "confusion", "Confusion matrix", _note(f"predictions not available: {exc}")
    except RuntimeError as exc:  # weights that do not fit the model config.yaml describes
        return "confusion", "Confusion matrix", _note(
            "predictions not available: the saved weights do not match the model in config.yaml (a run made by "
            f"fit() with a model object records only the default model section): {str(exc).splitlines()[0]}")
    if cfg.paradigm.name not in ("supervised", "distill") or prep.task not in ("classification", "regression"):
        return "confusion", "Predictions", _note(
            f"no prediction plot for a {cfg.paradigm.name} run ({prep.task} data): its metrics are in the curves "
            "and the summary above")
    split_name, part = ("test", splits.test) if splits.test is not None else ("val", splits.val)
    if part is None:
        return "confusion", "Confusion matrix", _note("predictions not available: the run has no test or val split")
    precision = resolve_precision(cfg.precision, device)
    model.to(device)
    loader = make_loader(loader_input(part), cfg.data.eval_batch_size, shuffle=False, drop_last=False, seed=cfg.seed,
                         device=device)
    outs, ys = [], []
    with torch.inference_mode(), autocast(precision, device):
        for x, y in loader:
            outs.append(model(x).float().cpu())
            ys.append(y.cpu())
    out, y = torch.cat(outs), torch.cat(ys)
    weights = "best.safetensors" if (rd / "best.safetensors").is_file() else "final.safetensors"
    where = f"{weights} on the {split_name} split ({len(y)} samples, rebuilt from the run's seed)"

    if prep.task != "classification":
        task = make_task(prep.task, 0, 0.0, prep.y_mean, prep.y_std)
        pred = task.predict(out).numpy()
        true = (y * prep.y_std + prep.y_mean).numpy()
        fig = _figure(figsize=(5.5, 5.2))
        ax = fig.subplots()
        ax.scatter(true, pred, s=10, alpha=0.6)
        lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.set_title(f"predicted vs true ({split_name})")
        fig.tight_layout()
        return "predictions", "Predicted vs true", f"<p>{_e(where)}</p>" + embed_png(fig, "predicted vs true")

    names = [str(c) for c in prep.class_names] or [str(i) for i in range(out.shape[1])]
    k = out.shape[1]
    cm = multiclass_confusion_matrix(out.argmax(1), y, num_classes=k).numpy()
    acc = float(cm.trace() / max(1, cm.sum()))
    fig = _figure(figsize=(min(11, 2.5 + 0.55 * k), min(10, 2.2 + 0.5 * k)))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    short = [n if len(n) <= 12 else n[:11] + "…" for n in names]
    tilt = k > 6 and max(len(n) for n in short) > 2  # long names overlap when upright
    ax.set_xticks(range(k), short, rotation=45 if tilt else 0, ha="right" if tilt else "center")
    ax.set_yticks(range(k), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:  # annotate counts while they still fit in a cell
        top = cm.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.6 * top else "black")
    ax.set_title(f"confusion matrix ({split_name}), accuracy {acc:.4f}")
    fig.tight_layout()
    body = (f"<p>{_e(where)}; accuracy from the matrix <b>{acc:.4f}</b>. Rows: true class; columns: predicted.</p>"
            + embed_png(fig, f"confusion matrix on the {split_name} split"))
    if k <= 30:
        rows = [(names[i], *[int(v) for v in cm[i]], int(cm[i].sum()),
                 float(cm[i, i] / cm[i].sum()) if cm[i].sum() else "") for i in range(k)]
        body += _table(rows, ("true \\ predicted", *names, "total", "recall"))
    return "confusion", "Confusion matrix", body


def _config(rd: Path) -> str:
    text = (rd / "config.yaml").read_text(errors="replace")
    return ("<p>The fully resolved config — itself a valid input: <code>trainwise train "
            f"{_e(rd / 'config.yaml')}</code></p><pre>{_e(text)}</pre>")


SECTIONS = [("findings", "Findings"), ("curves", "Curves"), ("lr-schedule", "Learning rate"),
            ("grad-norms", "Gradient norms"), ("activations", "Dead / saturated units"),
            ("confusion", "Predictions"), ("preflight", "Preflight"), ("timing", "Timing"), ("config", "Config")]


def write_report(run_dir: str | Path, out: str | Path | None = None, force: bool = False) -> Path:
    """Write a self-contained ``report.html`` for a run directory (default ``RUN_DIR/report.html``) and return its
    path. Raises :class:`TrainwiseError` when ``run_dir`` is not a run directory or ``out`` is a directory."""
    rd = Path(run_dir)
    if not rd.exists():
        raise TrainwiseError(f"run directory '{rd}' does not exist")
    if not rd.is_dir() or not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    dest = Path(out) if out is not None else rd / "report.html"
    if dest.is_dir():
        raise TrainwiseError(f"--out '{dest}' is a directory; give a file name such as {dest / 'report.html'}")
    if out is not None:  # a named output is the user's file: replaced only with --force (RUN_DIR/report.html is ours)
        refuse_existing(dest, force, "--out")

    import yaml

    try:
        cfg = yaml.safe_load((rd / "config.yaml").read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrainwiseError(f"'{rd / 'config.yaml'}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise TrainwiseError(f"'{rd / 'config.yaml'}' does not hold a config mapping")
    summary = _read_json(rd / "summary.json")
    summary = summary if isinstance(summary, dict) else {}
    events = read_jsonl(rd / "metrics.jsonl")
    history = _read_json(rd / "history.json")
    if not isinstance(history, list):
        history = _history_from_events(events)
    history = [h for h in history if isinstance(h, dict) and _finite(h.get("epoch"))]
    mon_path = rd / "monitors.jsonl"
    mon = read_jsonl(mon_path)
    records = [m for m in mon if "kind" not in m]
    timing = [m for m in mon if m.get("kind") == "timing"]
    nonfinite = [m for m in mon if m.get("kind") == "nonfinite"]
    main_metric = str(summary.get("main_metric") or ("accuracy" if any("train/accuracy" in h for h in history)
                                                     else "loss"))

    pred_id, pred_title, pred_body = _predictions(rd)
    sections = [
        _header(rd, summary, cfg),
        _section("findings", "Findings (diagnosis)", _findings(rd, "diagnosis.json", "diagnosis")),
        _section("curves", "Loss and " + main_metric, _curves(history, events, main_metric)),
        _section("lr-schedule", "Learning rate", _lr(history, events)),
        _section("grad-norms", "Gradient norms per layer", _grad_norms(records, mon_path.is_file())),
        _section("activations", "Dead and saturated units", _activations(records, mon_path.is_file())),
        _section(pred_id, pred_title, pred_body),
        _section("preflight", "Preflight checks", _findings(rd, "preflight.json", "preflight")),
        _section("timing", "Epoch timing", _timing(timing, nonfinite)),
        _section("config", "Resolved config", _config(rd)),
    ]
    if pred_id != "confusion":  # keep the nav link pointing at the section that exists
        sections[0] = sections[0].replace('href="#confusion"', f'href="#{pred_id}"')
    title = f"trainwise report: {cfg.get('name') or rd.name}"
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(sections)
            + f'\n<p class="muted">written {_e(datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"))}'
            " by trainwise report</p>\n"
            + f"<script>{SCRIPT}</script>\n</body></html>\n")
    # atomic: a crash never leaves half a report under the final name
    from trainwise.run.rundir import write_text  # deferred: imports torch (see _predictions)

    try:
        write_text(dest, page)
    except OSError as exc:  # read-only or immutable run directory, full disk
        raise write_error(dest, exc) from None
    return dest

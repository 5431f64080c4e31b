"""What a study leaves in ``--out``: leaderboard.csv (+ printed table), best.yaml, importances.json, history.png.

All of them are rebuilt from the storage after every invocation, so they describe every worker's and every
machine's trials, not only this process's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from trainwise.config import to_yaml
from trainwise.run.rundir import write_text
from trainwise.tune.plan import Plan
from trainwise.tune.space import overrides_for

SHOWN = 20  # rows of the printed leaderboard; the CSV has all


def _order(p: Plan, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials best first, then pruned ones (by their last reported value), then the rest by number."""
    sign = 1.0 if p.direction == "minimize" else -1.0

    def last(t: FrozenTrial) -> float:
        return t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else math.inf * sign

    def key(t: FrozenTrial) -> tuple[int, float, int]:
        if t.state == TrialState.COMPLETE and t.value is not None:
            return 0, sign * t.value, t.number
        if t.state == TrialState.PRUNED:
            v = sign * last(t)
            return 1, v if math.isfinite(v) else math.inf, t.number
        return 2, 0.0, t.number

    return sorted(trials, key=key)


def _note(t: FrozenTrial) -> str:
    notes = []
    if t.user_attrs.get("baseline"):
        notes.append("baseline config")
    if "failed_trial" in t.system_attrs:
        notes.append(f"retry of trial {t.system_attrs['failed_trial']}")
    if t.state == TrialState.PRUNED and t.intermediate_values:
        notes.append(f"pruned after epoch {max(t.intermediate_values)}")
    stopped = t.user_attrs.get("stopped")
    if stopped and stopped not in ("completed", "callback"):
        notes.append(str(stopped))
    return "; ".join(notes)


def leaderboard(p: Plan, study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    keys = [d.key for d in p.dims]
    for rank, t in enumerate(_order(p, study.get_trials(deepcopy=False)), 1):
        value = t.value if t.state == TrialState.COMPLETE else None
        row: dict[str, Any] = {"rank": rank, "trial": t.number, "state": t.state.name, "value": value}
        row.update({k: t.params.get(k, "") for k in keys})
        row.update({"epochs": t.user_attrs.get("epochs", ""), "run_dir": t.user_attrs.get("run_dir", ""),
                    "note": _note(t)})
        rows.append(row)
    return rows


def write_outputs(p: Plan, study: optuna.Study, console: Console) -> dict[str, Path]:
    rows = leaderboard(p, study)
    written: dict[str, Path] = {}
    buf = io.StringIO()
    fields = ["rank", "trial", "state", "value", *[d.key for d in p.dims], "epochs", "run_dir", "note"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    written["leaderboard"] = p.out / "leaderboard.csv"
    write_text(written["leaderboard"], buf.getvalue())

    table = Table(title=f"study {p.study_name}: {p.direction} {p.metric}", title_justify="left")
    for col in ("trial", "value", "state", "params", "run dir"):
        table.add_column(col, overflow="fold")
    labels = _labels([d.key for d in p.dims])
    for r in rows[:SHOWN]:
        params = " ".join(f"{labels[d.key]}={_fmt(r[d.key])}" for d in p.dims if r[d.key] != "")
        table.add_row(str(r["trial"]), "-" if r["value"] is None else f"{r['value']:.4f}", r["state"].lower(),
                      params, r["run_dir"])
    console.print(table)
    if len(rows) > SHOWN:
        console.print(f"… {len(rows) - SHOWN} more in {written['leaderboard']}", markup=False)

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        values = {d.key: d.decode(best.params[d.key]) for d in p.dims if d.key in best.params}
        cfg = p.compose(overrides_for(values))  # the trial's exact config, also when its run is on another machine
        header = (f"# best trial {best.number} of study '{p.study_name}': {p.metric}={best.value:.6g} "
                  f"(run {best.user_attrs.get('run_dir', '?')})\n# train it with: trainwise train best.yaml\n")
        written["best"] = p.out / "best.yaml"
        write_text(written["best"], header + to_yaml(cfg))
        console.print(f"best: trial {best.number}, {p.metric}={best.value:.4f}; config: {written['best']}",
                      markup=False)
    else:
        console.print("no completed trial yet: no best.yaml", markup=False)

    varied = {k for k in {k for t in complete for k in t.params}
              if len({json.dumps(t.params.get(k)) for t in complete}) > 1}
    if len(complete) >= 2 and varied:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few distinct trials for the evaluator
            console.print(f"importances: not computed ({str(exc).splitlines()[0]})", markup=False)
        else:
            written["importances"] = p.out / "importances.json"
            write_text(written["importances"], json.dumps(
                {"metric": p.metric, "direction": p.direction, "completed_trials": len(complete),
                 "evaluator": "optuna.importance.get_param_importances (default: PED-ANOVA)",
                 "importances": {k: float(v) for k, v in imp.items()}}, indent=2) + "\n")
    if complete:
        written["history"] = p.out / "history.png"
        _plot_history(study, p.metric, written["history"])
    console.print(f"outputs in {p.out}: " + ", ".join(path.name for path in written.values()), markup=False)
    return written


def _labels(keys: list[str]) -> dict[str, str]:
    """Short column labels for the printed table: the key's last part (``lr``), the full key where ambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v).replace(" ", "")


def _plot_history(study: optuna.Study, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # rc_context: optuna switches matplotlib's global style; later plots in this process keep theirs.
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)  # optuna's matplotlib backend is "experimental"
        ax = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=metric)
        fig = ax.figure
        assert isinstance(fig, Figure)  # a plot's own figure, never a subfigure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        tmp = path.with_name(path.name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
    tmp.replace(path)  # readers never see a half-written plot

"""Turn a run's signals into findings: named problems with evidence and fixes in order of payoff.

Every rule reads only what the run recorded (``history.json`` or the epoch events of ``metrics.jsonl``,
``monitors.jsonl``, ``preflight.json``, ``summary.json``, ``config.yaml``), so ``trainwise diagnose RUN_DIR``
re-analyses a finished or crashed run the same way the end of ``trainwise train`` does.
Thresholds are deliberately conservative: a healthy preset must raise no warning.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainwise.doctor.findings import Finding
from trainwise.errors import TrainwiseError


@dataclass
class RunRecord:
    history: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    train_events: list[dict[str, Any]] = field(default_factory=list)  # log-interval train events
    monitors: list[dict[str, Any]] = field(default_factory=list)  # sampled-step records
    timing: list[dict[str, Any]] = field(default_factory=list)
    nonfinite: list[dict[str, Any]] = field(default_factory=list)
    preflight: list[dict[str, Any]] = field(default_factory=list)
    init_loss: float | None = None
    expected_init_loss: float | None = None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line after a crash
            continue
    return out


def load_record(run_dir: str | Path) -> RunRecord:
    rd = Path(run_dir)
    if not rd.is_dir() or not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    events = _read_jsonl(rd / "metrics.jsonl")
    history: list[dict[str, Any]] = []
    by_epoch: dict[int, dict[str, Any]] = {}
    for e in events:  # rebuild per-epoch rows from the log, so a crashed run (no history.json) is readable
        if e.get("split") == "train" and e.get("epoch_end"):
            row = by_epoch.setdefault(e["epoch"], {"epoch": e["epoch"], "step": e["step"]})
            row.update({f"train/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split", "epoch_end", "lr")})
            row["lr"] = e.get("lr")
        elif e.get("split") == "val":
            row = by_epoch.setdefault(e["epoch"], {"epoch": e["epoch"], "step": e["step"]})
            row.update({f"val/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split")})
    history = [by_epoch[k] for k in sorted(by_epoch)]
    mon = _read_jsonl(rd / "monitors.jsonl")
    pre = json.loads((rd / "preflight.json").read_text()) if (rd / "preflight.json").is_file() else {}
    summary = json.loads((rd / "summary.json").read_text()) if (rd / "summary.json").is_file() else {}
    return RunRecord(
        history=history, summary=summary, config=yaml.safe_load((rd / "config.yaml").read_text()) or {},
        train_events=[e for e in events if e.get("split") == "train" and not e.get("epoch_end") and "loss" in e],
        monitors=[m for m in mon if "kind" not in m], timing=[m for m in mon if m.get("kind") == "timing"],
        nonfinite=[m for m in mon if m.get("kind") == "nonfinite"] + [
            e for e in events if e.get("event") == "nonfinite_skipped"],
        preflight=pre.get("findings", []), init_loss=pre.get("init_loss"),
        expected_init_loss=pre.get("expected_init_loss"))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _lr(rec: RunRecord) -> float:
    return float(rec.config.get("optim", {}).get("lr", 1e-3))


def diagnose(rec: RunRecord) -> list[Finding]:
    """All findings for a run; ``healthy`` (info) when no warning or error applies."""
    findings: list[Finding] = []
    for f in rec.preflight:
        findings.append(Finding(f["code"], f["severity"], f["message"], f.get("evidence", {}), f.get("fixes", [])))
    h = rec.history
    train = [r.get("train/loss") for r in h]
    val = [r.get("val/loss") for r in h]
    lr = _lr(rec)
    task = rec.summary.get("task") or ("classification" if any("train/accuracy" in r for r in h) else "regression")
    epochs = len(h)
    stopped = rec.summary.get("stopped")
    bad_steps = rec.summary.get("nonfinite_skipped_steps", 0) or 0

    # ---- non-finite --------------------------------------------------------------------------------------------
    nonfinite_epochs = [r["epoch"] for r in h if not _finite(r.get("train/loss"))]
    if stopped == "non_finite_loss" or nonfinite_epochs or bad_steps or rec.nonfinite:
        first = rec.nonfinite[0] if rec.nonfinite else {}
        layer = next((n.get("layer") for n in rec.nonfinite if n.get("layer")), None)
        recovered = stopped != "non_finite_loss" and not nonfinite_epochs
        ev: dict[str, Any] = {"first_step": first.get("step"), "first_epoch": (first.get("epoch", 0) or 0) + 1,
                              "skipped_steps": bad_steps, "rollbacks": rec.summary.get("rollbacks", 0)}
        if layer:
            ev["first_nonfinite_layer"] = layer
        fixes = [f"lower optim.lr by 10× (to ~{lr / 10:.0e})",
                 "keep gradient clipping on (train.grad_clip=1.0)",
                 "standardise inputs (data.standardize=true) and check them for extreme values",
                 "add warmup (schedule.name=warmup_cosine)"]
        if rec.config.get("precision") == "16-mixed":
            fixes.insert(1, "use precision=bf16-mixed or 32: fp16 overflows above 65504")
        findings.append(Finding("nan_loss", "warning" if recovered else "error",
                                "non-finite loss or gradients" + (f" first seen in layer '{layer}'" if layer else "")
                                + (" (skipped and recovered)" if recovered else ""), ev, fixes))
        finite_train = [v for v in train if _finite(v)]
        if not recovered and len(finite_train) < 2:
            return _finish(findings, rec)

    if (rec.config.get("paradigm") or {}).get("name") == "gan":
        # A generator's loss is adversarial: it rises whenever the discriminator improves, so the loss-curve rules
        # (diverging, not learning, plateaus) do not apply; non-finite values above and the monitors still do.
        return _finish(findings, rec)

    finite_train = [v for v in train if _finite(v)]
    init = rec.init_loss if _finite(rec.init_loss) else (finite_train[0] if finite_train else None)
    expected = rec.expected_init_loss

    # ---- diverging / not learning / lr too low ---------------------------------------------------------------
    if finite_train and init:
        last, best = finite_train[-1], min(finite_train)
        grew = last > init * 1.2 or (expected is not None and last > 1.5 * expected)
        if grew and last > best * 1.2:
            findings.append(Finding("diverging", "error",
                                    f"training loss rose from {init:.4g} at initialisation to {last:.4g}",
                                    {"init_loss": init, "final_train_loss": last, "best_train_loss": best, "lr": lr},
                                    [f"lower optim.lr by 10× (to ~{lr / 10:.0e}); 'trainwise lr-find' suggests one",
                                     "add warmup (schedule.name=warmup_cosine)",
                                     "keep gradient clipping on (train.grad_clip=1.0)"]))
        drop = (init - best) / abs(init) if init else 0.0
        if not grew and drop < 0.05:
            findings.append(Finding("not_learning", "error",
                                    f"training loss barely moved: {init:.4g} → {best:.4g} ({100 * drop:.1f}%)",
                                    {"init_loss": init, "best_train_loss": best, "relative_drop": drop, "lr": lr},
                                    [f"raise optim.lr (now {lr:.0e}); run 'trainwise lr-find' to pick one",
                                     "check that the labels match the inputs (shuffle bug, wrong target column)",
                                     "check gradients reach early layers (vanishing_gradients)"]))
        falling = len(finite_train) >= 3 and all(b < a for a, b in zip(finite_train[-4:], finite_train[-3:]))
        if lr <= 1e-5 or (0.05 <= drop < 0.5 and falling and not grew and lr <= 1e-4):
            findings.append(Finding("lr_too_low", "warning",
                                    f"optim.lr={lr:.0e} is very small: the loss falls {100 * drop:.1f}% over "
                                    f"{epochs} epochs" + (" and is still falling" if falling else ""),
                                    {"lr": lr, "relative_drop": drop, "epochs": epochs},
                                    [f"raise optim.lr to ~{min(lr * 100, 3e-3):.0e} (or use 'trainwise lr-find')",
                                     "use schedule.name=onecycle for a short budget"]))

    codes = {f.code for f in findings}
    # ---- oscillation (before overfitting/underfitting: a swinging loss mimics both) ------------------------------
    steps = [e["loss"] for e in rec.train_events if _finite(e.get("loss"))]
    swing: dict[str, float] = {}
    if len(steps) >= 8:
        half = steps[len(steps) // 2:]
        rel = statistics.mean(abs(b - a) for a, b in zip(half, half[1:])) / max(1e-12, statistics.mean(half))
        ups = sum(1 for a, b in zip(half, half[1:]) if b > a) / max(1, len(half) - 1)
        if rel > 0.5 and ups > 0.3:
            swing = {"relative_swing_train_steps": rel}
    vv = [v for v in val if _finite(v)]
    if len(vv) >= 10:  # judge the second half: the first epochs' descent is progress, not a swing (it made the
        vv = vv[len(vv) // 2:]  # adding-lstm preset, 1.07 → 0.0011 with ±0.0003 wiggles at the floor, look unstable)
    if len(vv) >= 5:
        d = [b - a for a, b in zip(vv, vv[1:])]
        flips = sum(1 for a, b in zip(d, d[1:]) if a * b < 0) / max(1, len(d) - 1)
        rel_v = statistics.mean(abs(x) for x in d) / max(1e-12, statistics.mean(vv))
        if flips >= 0.6 and rel_v > 0.25:
            swing.update({"relative_swing_val_epochs": rel_v, "direction_changes": flips})
    if swing and not codes & {"diverging", "nan_loss"}:
        findings.append(Finding("oscillating", "warning",
                                "the loss swings up and down instead of settling", {**swing, "lr": lr},
                                [f"lower optim.lr by 3–10× (to ~{lr / 5:.0e})",
                                 "use a larger batch or gradient accumulation (train.accumulate)",
                                 "decay the lr (schedule.name=cosine)"]))
        codes.add("oscillating")

    # ---- overfitting --------------------------------------------------------------------------------------------
    vf = [(i, v) for i, v in enumerate(val) if _finite(v)]
    if len(vf) >= 4 and not codes & {"diverging", "oscillating"}:
        i_best, v_best = min(vf, key=lambda t: t[1])
        v_last = vf[-1][1]
        t_best, t_last = train[i_best], finite_train[-1] if finite_train else None
        if (i_best <= vf[-1][0] - 2 and v_last > v_best * 1.15 and v_last - v_best > 0.03
                and _finite(t_best) and t_last is not None and t_last < t_best):
            patience = int(rec.config.get("train", {}).get("patience", 10))
            findings.append(Finding(
                "overfitting", "warning",
                f"validation loss turned upward after epoch {i_best + 1} ({v_best:.4g} → {v_last:.4g}) while "
                f"training loss kept falling ({t_best:.4g} → {t_last:.4g})",
                {"turned_at_epoch": i_best + 1, "best_val_loss": v_best, "final_val_loss": v_last,
                 "train_loss_at_turn": t_best, "final_train_loss": t_last},
                [f"add weight decay (optim.weight_decay=1e-2 or more; now "
                 f"{rec.config.get('optim', {}).get('weight_decay', 0)})",
                 "add dropout (model.dropout=0.2) or augmentation (data.augment / train.mixup_alpha)",
                 f"early stopping with patience {patience} would have stopped at epoch "
                 f"{min(epochs, i_best + 1 + patience)} (train.early_stopping=true)",
                 "use fewer epochs or a smaller model"]))

    # ---- underfitting / early plateau --------------------------------------------------------------------------
    acc = [r.get("train/accuracy") for r in h]
    if len(finite_train) >= 8 and not codes & {"not_learning", "diverging", "nan_loss", "oscillating"}:
        third = max(1, len(finite_train) // 3)
        early, late = finite_train[third - 1], finite_train[-1]
        high = (task == "classification" and acc and _finite(acc[-1]) and acc[-1] < 0.95)
        if high and (early - late) / abs(early) < 0.02:
            findings.append(Finding("early_plateau", "warning",
                                    f"training loss stopped improving after epoch {third} at {early:.4g}",
                                    {"plateau_from_epoch": third, "loss_then": early, "final_loss": late},
                                    ["lower the lr once the loss stalls (schedule.name=plateau or cosine)",
                                     "check for saturated or dead units (see monitors)",
                                     "use a bigger model"]))
            codes.add("early_plateau")

    if task == "classification" and acc and _finite(acc[-1]) and not codes & {
            "not_learning", "diverging", "nan_loss", "oscillating", "early_plateau"}:
        val_acc = h[-1].get("val/accuracy")
        if acc[-1] < 0.9 and (val_acc is None or abs(val_acc - acc[-1]) < 0.1):
            findings.append(Finding("underfitting", "warning",
                                    f"the model fits only {100 * acc[-1]:.1f}% of the training data",
                                    {"train_accuracy": acc[-1], "val_accuracy": val_acc,
                                     "final_train_loss": finite_train[-1] if finite_train else None},
                                    ["use a bigger model (model.hidden=[256, 256] / model.width=64)",
                                     "train longer (train.epochs) or raise optim.lr",
                                     "reduce regularisation (weight decay, dropout, label smoothing)"]))
    # ---- gradients and activations (monitors) ------------------------------------------------------------------
    if rec.monitors:
        layer_names = list(rec.monitors[-1].get("layers", {}))
        med = {n: statistics.median([m["layers"][n]["grad_norm"] for m in rec.monitors
                                     if n in m.get("layers", {}) and _finite(m["layers"][n]["grad_norm"])] or [0.0])
               for n in layer_names}
        top = max(med.values(), default=0.0)
        if top > 0 and len(med) >= 3:
            tiny = [n for n in layer_names if med[n] < 1e-3 * top]
            if tiny:
                findings.append(Finding("vanishing_gradients", "warning",
                                        f"gradients in {len(tiny)} layer(s) are below 1/1000 of the largest layer's",
                                        {"layers": tiny, "median_grad_norms": {n: med[n] for n in layer_names}},
                                        ["use relu/gelu instead of sigmoid/tanh (model.act=relu)",
                                         "use He init (model.init=kaiming)",
                                         "add normalisation (model.norm=batch or layer) or residual connections"]))
        norms = [m["grad_norm"] for m in rec.monitors if _finite(m.get("grad_norm"))]
        norms += [e["grad_norm"] for e in rec.train_events if _finite(e.get("grad_norm"))]
        if len(norms) >= 3:
            gmed, gmax = statistics.median(norms), max(norms)
            if gmax > 1e3 or (gmed > 0 and gmax > 50 * gmed and gmax > 10):
                findings.append(Finding("exploding_gradients", "warning",
                                        f"gradient norm reached {gmax:.3g} (median {gmed:.3g})",
                                        {"max_grad_norm": gmax, "median_grad_norm": gmed},
                                        ["clip gradients (train.grad_clip=1.0)", f"lower optim.lr (now {lr:.0e})",
                                         "add normalisation layers (model.norm=batch)"]))
        recent = rec.monitors[len(rec.monitors) // 2:]
        dead: dict[str, float] = {}
        for n in recent[-1].get("activations", {}):
            vals = [m["activations"][n]["dead_frac"] for m in recent if "dead_frac" in m["activations"].get(n, {})]
            if vals and statistics.median(vals) > 0.5:
                dead[n] = round(statistics.median(vals), 3)
        if dead:
            findings.append(Finding("dead_relu", "warning",
                                    f"{len(dead)} ReLU layer(s) have most units dead (never positive on a batch)",
                                    {"dead_fraction": dead},
                                    [f"lower optim.lr (now {lr:.0e}): large updates kill units",
                                     "use leaky_relu or gelu (model.act=gelu)",
                                     "use He init and zero biases (model.init=kaiming)"]))

    # ---- data bound ----------------------------------------------------------------------------------------------
    if rec.timing:
        wait = sum(t.get("data_wait_s", 0) for t in rec.timing)
        total = sum(t.get("epoch_s", 0) for t in rec.timing)
        if total > 1.0 and wait / total > 0.3:
            findings.append(Finding("data_bound", "warning",
                                    f"{100 * wait / total:.0f}% of training time was spent waiting for batches",
                                    {"data_wait_s": wait, "train_s": total},
                                    ["use the in-memory path for data that fits (data.loader=memory)",
                                     "raise data.num_workers (and keep persistent_workers)",
                                     "move augmentation to the device in batches"]))
    return _finish(findings, rec)


def _finish(findings: list[Finding], rec: RunRecord) -> list[Finding]:
    if not any(f.severity in ("warning", "error") for f in findings):
        s = rec.summary
        ev = {k: v for k, v in s.items() if k.startswith(("test/", "val/")) and _finite(v)}
        findings.append(Finding("healthy", "info", "no problems found in this run", ev, []))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def diagnose_run(run_dir: str | Path) -> list[Finding]:
    return diagnose(load_record(run_dir))

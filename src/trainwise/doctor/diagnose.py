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
from typing import Any, TypeGuard, cast

import yaml

from trainwise.doctor.crash import crash_fixes, read_error
from trainwise.doctor.findings import TIER, Finding
from trainwise.errors import TrainwiseError
from trainwise.run.jsonl import read_jsonl


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
    pre_info: dict[str, Any] = field(default_factory=dict)  # preflight.json besides findings (class counts, model facts)
    error: dict[str, Any] | None = None  # error.json of a crashed run


def _read_json_object(path: Path) -> dict[str, Any]:
    """A run's JSON file as a dict; missing, torn or damaged reads as absent (a crashed run is still diagnosed from
    what survives)."""
    try:
        obj = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def load_record(run_dir: str | Path) -> RunRecord:
    rd = Path(run_dir)
    if not rd.is_dir() or not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    events = read_jsonl(rd / "metrics.jsonl")
    history: list[dict[str, Any]] = []
    by_epoch: dict[int, dict[str, Any]] = {}
    for e in events:  # rebuild per-epoch rows from the log, so a crashed run (no history.json) is readable
        if not isinstance(e.get("epoch"), int) or isinstance(e.get("epoch"), bool):
            continue  # not an epoch row this version wrote (a damaged or foreign line)
        if e.get("split") == "train" and e.get("epoch_end"):
            row = by_epoch.setdefault(e["epoch"], {"epoch": e["epoch"], "step": e.get("step")})
            row.update({f"train/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split", "epoch_end", "lr")})
            row["lr"] = e.get("lr")
        elif e.get("split") == "val":
            row = by_epoch.setdefault(e["epoch"], {"epoch": e["epoch"], "step": e.get("step")})
            row.update({f"val/{k}": v for k, v in e.items() if k not in ("step", "epoch", "split")})
    history = [by_epoch[k] for k in sorted(by_epoch)]
    mon = read_jsonl(rd / "monitors.jsonl")
    pre = _read_json_object(rd / "preflight.json")
    summary = _read_json_object(rd / "summary.json")
    try:
        config = yaml.safe_load((rd / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TrainwiseError(f"'{rd / 'config.yaml'}' cannot be read ({str(exc).splitlines()[0]}); it is not the "
                             "file trainwise wrote") from None
    return RunRecord(
        history=history, summary=summary, config=config if isinstance(config, dict) else {},
        train_events=[e for e in events if e.get("split") == "train" and not e.get("epoch_end") and "loss" in e],
        monitors=[m for m in mon if "kind" not in m], timing=[m for m in mon if m.get("kind") == "timing"],
        nonfinite=[m for m in mon if m.get("kind") == "nonfinite"] + [
            e for e in events if e.get("event") == "nonfinite_skipped"],
        preflight=pre.get("findings", []), init_loss=pre.get("init_loss"),
        expected_init_loss=pre.get("expected_init_loss"),
        pre_info={k: v for k, v in pre.items() if k != "findings"}, error=read_error(rd))


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _lr(rec: RunRecord) -> float:
    return float(rec.config.get("optim", {}).get("lr", 1e-3))


def _optim(rec: RunRecord) -> str:
    return str(rec.config.get("optim", {}).get("name", "adamw"))


# Learning rates far outside where each optimizer trains (an order of magnitude and more above the usual range):
# the threshold for blaming symptoms on the lr, and the value a fix suggests instead.
LR_LARGE = {"sgd": 1.0, "adam": 0.05, "adamw": 0.05, "rmsprop": 0.05}
LR_TYPICAL = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
LR_SMALL = {"sgd": 1e-4, "adam": 1e-5, "adamw": 1e-5, "rmsprop": 1e-5}


def _lr_large(rec: RunRecord) -> bool:
    return _lr(rec) >= LR_LARGE.get(_optim(rec), 0.05)


def _lr_small(rec: RunRecord) -> bool:
    return _lr(rec) <= LR_SMALL.get(_optim(rec), 1e-5)


def diagnose(rec: RunRecord) -> list[Finding]:
    """All findings for a run; ``healthy`` (info) when no warning or error applies."""
    findings: list[Finding] = []
    for f in rec.preflight:
        findings.append(Finding(f["code"], f["severity"], f["message"], f.get("evidence", {}), f.get("fixes", [])))
    if rec.error:
        e = rec.error
        where = e.get("where") or {}
        what, fixes = crash_fixes(str(e.get("type", "")), str(e.get("message", "")), where)
        findings.append(Finding("crash", "error", f"the run crashed at step {e.get('step')} (epoch "
                                f"{(e.get('epoch') or 0) + 1}, batch {e.get('batch')}): {what}",
                                {"type": e.get("type"), "message": str(e.get("message", ""))[:300],
                                 **{k: v for k, v in where.items() if k in ("module", "module_type", "input_shape",
                                                                            "line", "code")}}, fixes))
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
        if _clip(rec) is None:  # gradients went unbounded with clipping off: turning it on is the direct fix
            fixes.remove("keep gradient clipping on (train.grad_clip=1.0)")
            fixes.insert(0 if rec.pre_info.get("recurrent") else 1,
                         "turn gradient clipping on (train.grad_clip=1.0): it is off"
                         + (" and recurrent networks need it" if rec.pre_info.get("recurrent") else ""))
        findings.append(Finding("nan_loss", "warning" if recovered else "error",
                                "non-finite loss or gradients" + (f" first seen in layer '{layer}'" if layer else "")
                                + (" (skipped and recovered)" if recovered else ""), ev, fixes))
        finite_train = [v for v in train if _finite(v)]
        if not recovered and len(finite_train) < 2:
            return _finish(_group_lr_too_high(findings, rec), rec)

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
            fixes = ["check that the labels match the inputs (shuffle bug, wrong target column)",
                     "check gradients reach early layers (vanishing_gradients)"]
            if _lr_large(rec):
                fixes.insert(0, f"lower optim.lr (now {lr:.0e}; {_optim(rec)} usually trains near "
                                f"{LR_TYPICAL.get(_optim(rec), 1e-3):.0e})")
            elif not _dead_units(rec):  # raising the lr cannot revive dead units; it is a fix only when the lr is small
                fixes.insert(0 if _lr_small(rec) else 1,
                             f"raise optim.lr (now {lr:.0e}); run 'trainwise lr-find' to pick one")
            findings.append(Finding("not_learning", "error",
                                    f"training loss barely moved: {init:.4g} → {best:.4g} ({100 * drop:.1f}%)",
                                    {"init_loss": init, "best_train_loss": best, "relative_drop": drop, "lr": lr},
                                    fixes))
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
    span = max(vv) - min(vv) if vv else 0.0  # how far the whole run moved the val loss
    if len(vv) >= 10:  # judge the second half: the first epochs' descent is progress, not a swing (it made the
        vv = vv[len(vv) // 2:]  # adding-lstm preset, 1.07 → 0.0011 with ±0.0003 wiggles at the floor, look unstable)
    if len(vv) >= 5:
        d = [b - a for a, b in zip(vv, vv[1:])]
        flips = sum(1 for a, b in zip(d, d[1:]) if a * b < 0) / max(1, len(d) - 1)
        rel_v = statistics.mean(abs(x) for x in d) / max(1e-12, statistics.mean(vv))
        # A swing must also be large against the run's own progress: ±0.003 wiggles at a 0.005 floor after a
        # descent from 0.65 are convergence, however large they look relative to the floor.
        of_span = statistics.mean(abs(x) for x in d) / max(1e-12, span)
        if flips >= 0.6 and rel_v > 0.25 and of_span > 0.05:
            swing.update({"relative_swing_val_epochs": rel_v, "direction_changes": flips,
                          "swing_of_run_range": of_span})
    if swing and not codes & {"diverging", "nan_loss"}:
        findings.append(Finding("oscillating", "warning",
                                "the loss swings up and down instead of settling", {**swing, "lr": lr},
                                [f"lower optim.lr by 3–10× (to ~{lr / 5:.0e})",
                                 "use a larger batch or gradient accumulation (train.accumulate)",
                                 "decay the lr (schedule.name=cosine)"]))
        codes.add("oscillating")

    # ---- overfitting --------------------------------------------------------------------------------------------
    chance = _val_at_chance(rec)
    if chance:
        findings.append(chance)
        codes.add("val_at_chance")
    vf = [(i, v) for i, v in enumerate(val) if _finite(v)]
    if len(vf) >= 4 and not codes & {"diverging", "oscillating", "val_at_chance"}:
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
                                     "train longer (train.epochs)" + ("" if _lr_large(rec) else " or raise optim.lr"),
                                     "reduce regularisation (weight decay, dropout, label smoothing)"]))
    # ---- gradients and activations (monitors) ------------------------------------------------------------------
    if rec.monitors:
        sampled = {n: [m["layers"][n]["grad_norm"] for m in rec.monitors
                       if n in m.get("layers", {}) and _finite(m["layers"][n]["grad_norm"])]
                   for n in rec.monitors[-1].get("layers", {})}
        layer_names = [n for n, v in sampled.items() if v]  # a layer never given a gradient is frozen, not vanishing
        med = {n: statistics.median(sampled[n]) for n in layer_names}
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
    # (epoch, pre-clip global norm) from sampled steps, log steps and per-epoch maxima
    pts = [(m.get("epoch", 0), m["grad_norm"]) for m in rec.monitors if _finite(m.get("grad_norm"))]
    pts += [(e.get("epoch", 0), e["grad_norm"]) for e in rec.train_events if _finite(e.get("grad_norm"))]
    pts += [(t.get("epoch", 0), t["grad_norm_max"]) for t in rec.timing if _finite(t.get("grad_norm_max"))]
    norms = [v for _, v in pts]
    # Gradients shrink by orders of magnitude as a healthy run converges, so a spike is judged after the first epoch
    # only; an absolute norm above 1e3 counts anywhere.
    late_norms = [v for e, v in pts if e >= 1]
    if rec.monitors or norms:
        if len(norms) >= 3:
            gmed, gmax = statistics.median(norms), max(norms)
            spike = len(late_norms) >= 3 and max(late_norms) > 50 * statistics.median(late_norms) and max(late_norms) > 10
            if gmax > 1e3 or spike:
                clip = _clip(rec)
                # with clipping on and a run that otherwise went well, clipping did its job: information only
                harmed = clip is None or bool(codes & {"nan_loss", "diverging", "oscillating", "not_learning"})
                fixes = [f"lower optim.lr (now {lr:.0e})", "add normalisation layers (model.norm=batch)"]
                fixes.insert(0 if clip is None else 1, "clip gradients (train.grad_clip=1.0)" if clip is None else
                             f"keep clipping on (train.grad_clip={clip}): it bounded these steps")
                findings.append(Finding("exploding_gradients", "warning" if harmed else "info",
                                        f"gradient norm reached {gmax:.3g} (median {gmed:.3g})"
                                        + (" with clipping off" if clip is None else " before clipping"),
                                        {"max_grad_norm": gmax, "median_grad_norm": gmed, "grad_clip": clip}, fixes))
    if rec.monitors:
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

    # ---- data bound: whose time is it? ----------------------------------------------------------------------------
    if rec.timing:
        wait = sum(t.get("data_wait_s", 0) for t in rec.timing)
        total = sum(t.get("epoch_s", 0) for t in rec.timing)
        if total > 1.0 and wait / total > 0.3:
            fetch = rec.pre_info.get("fetch_s_per_sample")  # the user's Dataset.__getitem__, timed before step 1
            samples = (rec.pre_info.get("train_samples") or 0) * len(rec.timing)
            workers = max(1, int(rec.config.get("data", {}).get("num_workers", 0) or 0))
            user = fetch * samples / workers if _finite(fetch) and samples else None
            ev = {"data_wait_s": wait, "train_s": total}
            if user is not None:
                ev["dataset_getitem_s"] = user
            if user is not None and user < 0.5 * wait:
                # The user's __getitem__ is cheap: the wait is the DataLoader's own per-sample collation and copies,
                # i.e. trainwise's side. Reported as information, not as a fault of the user's data.
                findings.append(Finding("data_bound", "info",
                                        f"{100 * wait / total:.0f}% of training time went to batching: your "
                                        f"Dataset's __getitem__ accounts for {user:.2f} s of {wait:.2f} s, the rest "
                                        "is the DataLoader's per-sample collation (trainwise's side)", ev,
                                        ["raise data.num_workers to overlap batching with compute",
                                         "hand fit (x, y) tensors instead of a Dataset when the data fits in memory"]))
            else:
                fixes = ["raise data.num_workers (and keep persistent_workers)",
                         "move augmentation to the device in batches"]
                if user is not None:
                    assert fetch is not None  # user is set only from a finite fetch
                    fixes.insert(0, f"make __getitem__ cheaper: it takes {1000 * fetch:.2f} ms per sample "
                                    "(cache decoded data, precompute transforms)")
                elif rec.pre_info.get("train_input") != "dataset":
                    fixes.insert(0, "use the in-memory path for data that fits (data.loader=memory)")
                findings.append(Finding("data_bound", "warning",
                                        f"{100 * wait / total:.0f}% of training time was spent waiting for batches"
                                        + (", most of it in your Dataset's __getitem__" if user is not None else ""),
                                        ev, fixes))

    findings += _run_level(rec, train, lr, task, codes | {f.code for f in findings})
    return _finish(_group_lr_too_high(findings, rec), rec)


def _clip(rec: RunRecord) -> float | None:
    return (rec.config.get("train") or {}).get("grad_clip", 1.0)


def _dead_units(rec: RunRecord) -> bool:
    recent = rec.monitors[len(rec.monitors) // 2:]
    return any(v.get("dead_frac", 0) > 0.5 for m in recent for v in m.get("activations", {}).values())


def _chance_share(rec: RunRecord, split: str) -> float | None:
    counts = (rec.pre_info.get("class_counts") or {}).get(split)
    if counts and sum(counts):
        return max(counts) / sum(counts)
    k = round(math.exp(rec.expected_init_loss)) if _finite(rec.expected_init_loss) else 0
    return 1 / k if k >= 2 else None


def _val_at_chance(rec: RunRecord) -> Finding | None:
    """Validation accuracy sits at chance while either training accuracy climbs (what the model learns from train
    does not transfer) or the labels carry no trace of the inputs (a sample's nearest neighbour shares its label no
    more often than random pairs do): labels that no longer line up with their inputs."""
    h = rec.history
    tr = [r["train/accuracy"] for r in h if _finite(r.get("train/accuracy"))]
    va = [r["val/accuracy"] for r in h if _finite(r.get("val/accuracy"))]
    chance_t, chance_v = _chance_share(rec, "train"), _chance_share(rec, "val")
    if len(tr) < 4 or len(va) < 4 or chance_t is None or chance_v is None:
        return None
    n_val = sum((rec.pre_info.get("class_counts") or {}).get("val") or []) or 100
    margin = max(0.1, 3 * math.sqrt(chance_v * (1 - chance_v) / n_val))  # three standard errors of a guesser
    val_gap = statistics.mean(va[len(va) // 2:]) - chance_v  # second half: one lucky epoch is not learning
    train_gap = tr[-1] - chance_t
    if val_gap > margin:
        return None
    agree, rand = rec.pre_info.get("nn_label_agreement"), rec.pre_info.get("nn_label_chance")
    n_nn = rec.pre_info.get("nn_samples") or 0
    unrelated = _finite(agree) and _finite(rand) and n_nn and \
        agree - rand <= max(0.05, 3 * math.sqrt(rand * (1 - rand) / n_nn))
    val_agree = rec.pre_info.get("nn_val_agreement")
    # train and val labels both follow their inputs (neighbours agree far above random pairs): a val at chance is
    # then a model that has not learned yet, not misaligned labels
    related = _finite(agree) and _finite(rand) and _finite(val_agree) and agree - rand > 0.2 and val_agree - rand > 0.2
    no_transfer = train_gap >= 0.1 and val_gap < 0.5 * train_gap and not related
    if not (unrelated or no_transfer):
        return None
    ev = {"final_train_accuracy": tr[-1], "val_accuracy_second_half": val_gap + chance_v, "train_chance": chance_t,
          "val_chance": chance_v}
    if unrelated:
        ev.update({"nn_label_agreement": agree, "random_pair_agreement": rand})
    return Finding("val_at_chance", "error",
                   f"validation accuracy stays at chance ({val_gap + chance_v:.3f}, chance {chance_v:.3f})"
                   + (f" while training accuracy rose to {tr[-1]:.3f}" if no_transfer else "")
                   + (f"; training samples share their nearest neighbour's label {100 * cast(float, agree):.0f}% of the time, "
                      f"random pairs {100 * cast(float, rand):.0f}%: the labels look unrelated to the inputs" if unrelated else ""),
                   ev,
                   ["check that the training labels line up with their inputs: x and y shuffled or sorted "
                    "separately, or a label column from another table, give exactly this",
                    "train on a small subset and check that a few predictions match their labels by eye"])


def _run_level(rec: RunRecord, train: list[Any], lr: float, task: str, codes: set[str]) -> list[Finding]:
    """Rules on the run as a whole: loss parked at chance or above its start, a schedule that ended the run early,
    weight decay too strong to fit."""
    out: list[Finding] = []
    h = rec.history
    finite = [v for v in train if _finite(v)]
    init = rec.init_loss if _finite(rec.init_loss) else (finite[0] if finite else None)
    acc = [r["train/accuracy"] for r in h if _finite(r.get("train/accuracy"))]
    ln_k = rec.expected_init_loss
    if task == "classification" and _finite(ln_k) and len(finite) >= 3 and ln_k > 0:
        k = math.exp(ln_k)
        if all(abs(v - ln_k) < 0.1 * ln_k for v in finite) and (not acc or acc[-1] <= 1.5 / k):
            out.append(Finding("at_chance", "error",
                               f"the training loss stayed at the chance level ln {k:.0f} = {ln_k:.3g} for all "
                               f"{len(finite)} epochs: the model predicts the class prior and nothing else",
                               {"train_losses": finite, "chance_loss": ln_k, "final_train_accuracy":
                                acc[-1] if acc else None, "lr": lr},
                               ([f"lower optim.lr (now {lr:.0e})"] if _lr_large(rec) else [])
                               + ["check that the labels match the inputs",
                                  "check that gradients reach the weights (frozen or unregistered layers)"]))
    if init and len(finite) >= 2:
        late = finite[len(finite) // 2:]
        if min(late) > init * 1.05 and "diverging" not in codes:
            out.append(Finding("loss_above_start", "warning",
                               f"the training loss stayed above its starting value {init:.4g} for the second half "
                               f"of the run (best there {min(late):.4g})",
                               {"init_loss": init, "best_late_loss": min(late), "lr": lr},
                               [f"lower optim.lr by 10× (to ~{lr / 10:.0e})", "add warmup (schedule.name=warmup_cosine)"]))
    lrs = [r["lr"] for r in h if _finite(r.get("lr"))]
    if len(lrs) >= 4 and lr > 0 and lrs[-1] < 1e-3 * lr:
        low_from = next(i for i, v in enumerate(lrs) if v < 1e-2 * lr)
        later = finite[low_from:]
        stalled = len(later) >= 2 and (later[0] - later[-1]) / max(1e-12, abs(later[0])) < 0.02
        unfit = (acc and acc[-1] < 0.95) or task != "classification"
        if low_from + 1 <= len(lrs) / 2 and stalled and unfit:
            out.append(Finding("lr_decayed_early", "warning",
                               f"the schedule cut the lr below 1/100 of optim.lr by epoch {low_from + 1} of "
                               f"{len(lrs)} and the loss stopped moving from then on",
                               {"lr_start": lr, "lr_at_epoch": {i + 1: v for i, v in enumerate(lrs)},
                                "loss_from_then": later},
                               ["use a schedule that decays over the whole run (schedule.name=cosine), or raise "
                                "schedule.gamma / schedule.step_size",
                                f"the run trained at a useful lr for only {low_from + 1} epoch(s)"]))
    o = rec.config.get("optim", {})
    wd, name = float(o.get("weight_decay", 0) or 0), str(o.get("name", "adamw"))
    coupled = name != "adamw"  # sgd/adam/rmsprop add wd·w to the gradient; AdamW decays the weights directly
    if (wd >= 0.1 if coupled else wd * lr >= 1e-3) and acc and acc[-1] < 0.9:
        out.append(Finding("weight_decay_high", "warning",
                           f"optim.weight_decay={wd:g} with {name} is strong enough to hold the weights near zero: "
                           f"the model fits only {100 * acc[-1]:.1f}% of the training data",
                           {"weight_decay": wd, "optimizer": name, "train_accuracy": acc[-1]},
                           [f"lower optim.weight_decay (now {wd:g}) to ~{1e-4 if coupled else 1e-2:g}",
                            "use optim.name=adamw, whose decay does not fight the adaptive step"]))
    return out


# Symptoms a far-too-large learning rate produces; grouped under lr_too_high when the lr is in that range.
LR_SYMPTOMS = ("diverging", "loss_above_start", "at_chance", "not_learning", "dead_relu", "oscillating", "nan_loss",
               "exploding_gradients", "underfitting", "early_plateau")


def _group_lr_too_high(findings: list[Finding], rec: RunRecord) -> list[Finding]:
    """One root cause instead of five symptoms: with an lr far above the optimizer's range, collapse to chance, dead
    units, oscillation and a loss above its start are all the lr's doing."""
    if not _lr_large(rec):
        return findings
    symptoms = [f for f in findings if f.code in LR_SYMPTOMS and f.severity != "info"]
    if not symptoms:
        return findings
    # nan_loss stays a finding of its own (the run's terminal event, with the layer it started in); it is listed
    # after the root cause. The other symptoms live on in the root's evidence.
    kept = [f for f in symptoms if f.code == "nan_loss"]
    lr, name = _lr(rec), _optim(rec)
    root = Finding("lr_too_high", "error",
                   f"optim.lr={lr:g} is far above where {name} trains (~{LR_TYPICAL.get(name, 1e-3):g}); it explains "
                   + ", ".join(f.code for f in symptoms),
                   {"lr": lr, "optimizer": name, "symptoms": {f.code: f.message for f in symptoms}},
                   [f"lower optim.lr to ~{LR_TYPICAL.get(name, 1e-3):g} ('trainwise lr-find' suggests one)",
                    "add warmup (schedule.name=warmup_cosine)",
                    "keep gradient clipping on (train.grad_clip=1.0)"])
    return [root] + [f for f in findings if f not in symptoms or f in kept]


def _gate_fixes(f: Finding, rec: RunRecord) -> Finding:
    """Drop or reword fixes naming a config key that would not act on this run as configured."""
    source = rec.pre_info.get("train_input")
    standardized = (rec.config.get("data") or {}).get("standardize", True)
    fixes = []
    for fix in f.fixes:
        if "data.standardize" in fix:
            if source in ("splits", "dataset"):
                fix = "standardise the inputs yourself (ready-made splits are used as given) and check them for " \
                      "extreme values"
            elif standardized:
                continue  # fit already standardised these arrays
        if "data.loader=memory" in fix and source == "dataset":
            continue  # the in-memory path takes tensors, not a Dataset
        fixes.append(fix)
    f.fixes = fixes or f.fixes
    return f


def _finish(findings: list[Finding], rec: RunRecord) -> list[Finding]:
    if not any(f.severity in ("warning", "error") for f in findings):
        s = rec.summary
        ev = {k: v for k, v in s.items() if k.startswith(("test/", "val/")) and _finite(v)}
        findings.append(Finding("healthy", "info", "no problems found in this run", ev, []))
    order = {"error": 0, "warning": 1, "info": 2}
    findings = [_gate_fixes(f, rec) for f in findings]
    # root causes before symptoms (findings.TIER), then errors before warnings; info always last
    return sorted(findings, key=lambda f: (f.severity == "info", TIER.get(f.code, 3), order[f.severity]))


def diagnose_run(run_dir: str | Path) -> list[Finding]:
    return diagnose(load_record(run_dir))

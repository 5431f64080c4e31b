"""The doctor's evaluation suite: deliberately broken configurations (one or more per finding code) and the healthy
presets, with the doctor's precision and recall over them.

    python -m trainwise.checkup.suite [--out docs/doctor-presets.md]

A broken case is *recalled* when at least one of its ``expected`` codes is raised (warning or error). Precision
counts every warning/error code raised across the suite: it is a true positive when the case lists it as expected or
acceptable (a symptom that genuinely co-occurs, e.g. ``not_learning`` beside ``dead_relu``), a false positive
otherwise — and any warning on a healthy preset is a false positive.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from trainwise.config import compose, preset_names
from trainwise.data_cmd import write_digits_png
from trainwise.models import create_model
from trainwise.runner import train
from trainwise.train.loop import fit


@dataclass
class Case:
    name: str
    preset: str
    overrides: list[str]
    expected: set[str]
    acceptable: set[str] = field(default_factory=set)
    note: str = ""


DEEP = "[" + ",".join(["64"] * 12) + "]"
CASES = [
    Case("sgd-lr10", "digits-mlp", ["optim.name=sgd", "optim.lr=10", "train.grad_clip=null", "train.epochs=5"],
         {"nan_loss", "diverging", "lr_too_high"}, {"exploding_gradients"}, "SGD with lr=10 and no clipping"),
    Case("deep-sigmoid", "digits-mlp", [f"model.hidden={DEEP}", "model.act=sigmoid", "model.init=xavier",
                                        "model.dropout=0", "train.epochs=6", "doctor.monitor_every=5"],
         {"vanishing_gradients"}, {"not_learning", "activation_scale", "saturated_units", "underfitting",
                                   "early_plateau", "lr_too_low", "at_chance"}, "12-layer sigmoid MLP"),
    Case("width-2", "digits-mlp", ["model.hidden=[2]", "model.dropout=0", "train.epochs=15"],
         {"underfitting"}, {"early_plateau"}, "MLP with 2 hidden units"),
    # Overfitting on a noisy regression table: the val loss climbs 35-46% above its best on seeds 0-4 (the earlier
    # digits setting rose only 13% on seed 2, under the rule's 15%: a case whose verdict flipped with the seed).
    Case("overfit", "diabetes-regression", ["model.hidden=[512,512]", "model.dropout=0", "optim.weight_decay=0",
                                            "optim.lr=0.001", "train.epochs=100", "train.early_stopping=false",
                                            "schedule.name=constant"],
         {"overfitting"}, set(), "512×512 MLP on the 309-sample diabetes train split, no regularisation, 100 epochs"),
    Case("dead-relu", "digits-mlp", ["model.bias_init=-5", "model.dropout=0", "train.epochs=5",
                                     "doctor.monitor_every=5"],
         {"dead_relu"}, {"not_learning", "underfitting", "vanishing_gradients", "activation_scale",
                         "init_loss_off", "early_plateau", "at_chance"}, "hidden biases initialised to -5"),
    Case("lr-1e-7", "digits-mlp", ["optim.lr=1e-7", "train.epochs=5"], {"not_learning", "lr_too_low"},
         {"underfitting", "early_plateau", "at_chance"}, "lr = 1e-7"),
    # An lr far too high for plain SGD: the loss swings, and the doctor names the lr as the root cause. 5 of 5 seeds;
    # the earlier setting (momentum 0.9 at lr 0.5) read as early_plateau on 2 of seeds 0-4 (a seed-dependent case).
    Case("sgd-lr2", "digits-mlp", ["optim.name=sgd", "optim.lr=2.0", "optim.momentum=0", "train.epochs=8",
                                   "train.log_every=5", "schedule.name=constant"],
         {"oscillating", "lr_too_high"}, {"exploding_gradients", "diverging", "nan_loss"},
         "plain SGD at lr 2"),
    Case("lr-collapse", "digits-mlp", ["schedule.name=step", "schedule.step_size=1", "schedule.gamma=0.001",
                                       "optim.lr=0.0003", "train.epochs=10"],
         {"early_plateau", "lr_decayed_early"}, {"underfitting", "lr_too_low"},
         "lr divided by 1000 after the first epoch"),
]

# Presets whose outcome is not a property of the configuration but of last-bit numerics, so they are neither a broken
# case (the doctor cannot be required to flag them) nor a healthy control (it cannot be required to stay silent).
# adding-rnn: the vanilla RNN on the adding problem at T=100, seeds 0-4 on the 2-core CPU gave test r² -0.00, -0.00,
# 0.91, -0.00, 0.09 (and T=200 gave -0.01, 0.43, -0.00): whether it learns flips with the seed and the machine's
# kernels, so a case expecting `not_learning` there was a flaky test (issue 16).
MARGINAL_PRESETS = {"adding-rnn": "vanilla RNN on the adding problem: whether it learns flips with the seed "
                                  "and last-bit numerics (r² from -0.00 to 0.91 over seeds 0-4)"}
# Presets the suite does not train, and why (listed in docs/doctor-presets.md with the marginal ones).
UNTRAINED_PRESETS = {"docstrings-transformer": "a transformer over the 8,520-text docstrings corpus that must first be "
                                               "built from the installed libraries; its full budget is ~25 min of CPU "
                                               "here, out of proportion for this suite (the text pipeline's own tests "
                                               "are tests/test_text.py)"}


class _SlowDigits(Dataset):
    """Digits served one sample at a time with an artificial 2 ms delay: a loop that waits on its data."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        self.x = torch.tensor(x / 16.0, dtype=torch.float32)
        self.y = torch.tensor(y)

    def __len__(self) -> int:
        return 600

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(0.002)
        return self.x[i], self.y[i]


def _data_bound() -> tuple[list[str], dict[str, Any]]:
    model = create_model("mlp", (64,), 10, hidden=[64])
    options: dict[str, Any] = {"data.batch_size": 32, "optim.lr": 0.01}
    r = fit(model, {"train": _SlowDigits()}, run_dir=None, epochs=3, **options)
    return [f["code"] for f in r.findings if f["severity"] != "info"], r.summary


def run_suite(fast: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Run every case and healthy preset; returns rows plus precision and recall.

    ``seed`` overrides every case's and preset's seed: the verdicts must not depend on it (checked with several)."""
    seeded = [] if seed is None else [f"seed={seed}"]
    rows: list[dict[str, Any]] = []
    for case in CASES:
        t = time.perf_counter()
        r = train(compose(None, case.preset, [*case.overrides, *seeded]), run_dir=None, quiet=True)
        codes = [f["code"] for f in r.findings if f["severity"] != "info"]
        rows.append({"case": case.name, "note": case.note, "expected": sorted(case.expected), "raised": codes,
                     "recalled": bool(case.expected & set(codes)),
                     "false_positives": [c for c in codes if c not in case.expected | case.acceptable],
                     "seconds": round(time.perf_counter() - t, 1)})
    t = time.perf_counter()
    codes, _ = _data_bound()
    rows.append({"case": "slow-dataset", "note": "Dataset with a 2 ms __getitem__, no workers",
                 "expected": ["data_bound"], "raised": codes, "recalled": "data_bound" in codes,
                 "false_positives": [c for c in codes if c != "data_bound"],
                 "seconds": round(time.perf_counter() - t, 1)})
    healthy: list[dict[str, Any]] = []
    files = tempfile.TemporaryDirectory(prefix="trainwise-suite-")  # the image preset's PNG files and cache
    for name in preset_names():
        if name in MARGINAL_PRESETS or name in UNTRAINED_PRESETS:
            continue
        t = time.perf_counter()
        overrides = (["train.epochs=5"] if fast else []) + seeded
        if compose(None, name).data.source == "images":  # digits-images: its files, as `trainwise data digits-png`
            png = Path(files.name) / "png"
            if not png.exists():
                write_digits_png(png)
            overrides += [f"data.path={png}", f"data.cache_dir={Path(files.name) / 'cache'}"]
        r = train(compose(None, name, overrides), run_dir=None, quiet=True)
        warn = [f["code"] for f in r.findings if f["severity"] != "info"]
        healthy.append({"preset": name, "raised": warn, "main": r.summary.get(f"test/{r.summary['main_metric']}"),
                        "seconds": round(time.perf_counter() - t, 1)})
    files.cleanup()
    tp = sum(len(r["raised"]) - len(r["false_positives"]) for r in rows)
    fp = sum(len(r["false_positives"]) for r in rows) + sum(len(h["raised"]) for h in healthy)
    return {"cases": rows, "healthy": healthy, "recall": sum(r["recalled"] for r in rows) / len(rows),
            "precision": tp / max(1, tp + fp), "true_positives": tp, "false_positives": fp}


def to_markdown(res: dict[str, Any], command: str) -> str:
    lines = ["# The doctor's evaluation suite", "",
             f"Generated by `{command}` (see `src/trainwise/checkup/suite.py`).", "",
             f"**Recall {res['recall']:.2f}** (broken cases whose expected finding was raised), "
             f"**precision {res['precision']:.2f}** ({res['true_positives']} expected or co-occurring warnings, "
             f"{res['false_positives']} false alarms, healthy presets included).", "",
             "| case | what is broken | expected | raised (warning/error) | recalled | false alarms |",
             "|---|---|---|---|---|---|"]
    for r in res["cases"]:
        lines.append(f"| {r['case']} | {r['note']} | {', '.join(r['expected'])} | {', '.join(r['raised']) or '-'} | "
                     f"{'yes' if r['recalled'] else 'NO'} | {', '.join(r['false_positives']) or '-'} |")
    lines += ["", "Healthy presets (must raise no warning or error):", "",
              "| preset | test main metric | warnings/errors |", "|---|---|---|"]
    for h in res["healthy"]:
        main = f"{h['main']:.4f}" if isinstance(h["main"], float) else "-"
        lines.append(f"| {h['preset']} | {main} | {', '.join(h['raised']) or 'none'} |")
    lines += ["", "Left out of both lists (their outcome depends on the seed and last-bit numerics, not on the "
              "configuration):", ""]
    lines += [f"- `{name}`: {why}" for name, why in MARGINAL_PRESETS.items()]
    lines += ["", "Not trained by the suite:", ""]
    lines += [f"- `{name}`: {why}" for name, why in UNTRAINED_PRESETS.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description="Run the doctor's evaluation suite")
    p.add_argument("--out", help="write the markdown table here (e.g. docs/doctor-presets.md)")
    p.add_argument("--fast", action="store_true", help="healthy presets for 5 epochs only")
    p.add_argument("--seed", type=int, help="override every case's seed (verdicts must not depend on it)")
    args = p.parse_args()
    res = run_suite(fast=args.fast, seed=args.seed)
    md = to_markdown(res, "python -m trainwise.checkup.suite" + (" --fast" if args.fast else "")
                     + (f" --seed {args.seed}" if args.seed is not None else "")
                     + (f" --out {args.out}" if args.out else ""))
    print(md)
    if args.out:
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()

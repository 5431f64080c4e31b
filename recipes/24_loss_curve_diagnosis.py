"""Loss-curve diagnosis: the doctor's findings on deliberately broken runs (doctor/diagnose.py, checkup/suite.py)."""

from __future__ import annotations

import math

import _common as c
import torch
from torch import nn

import trainwise
from trainwise.checkup.suite import CASES
from trainwise.doctor.monitors import activation_stats

# claim → (suite case that induces the cause, finding codes that name the symptom)
CLAIMS = [
    ("NaN → exploding/bad init", "sgd-lr10", {"nan_loss", "diverging", "exploding_gradients"}),
    ("flat → vanishing/too-low lr", "lr-1e-7", {"not_learning", "lr_too_low"}),
    ("early plateau", "lr-collapse", {"early_plateau"}),
    ("train≪val → overfitting", "overfit", {"overfitting"}),
    ("both high → underfitting", "width-2", {"underfitting"}),
    ("wild oscillation → lr too high", "sgd-lr2", {"oscillating", "lr_too_high"}),
]


def run_case(name: str) -> tuple[list[str], list[dict]]:
    case = next(k for k in CASES if k.name == name)
    # The suite's own epochs even under --fast: a symptom like overfitting needs its epochs to appear at all.
    result = trainwise.runner.train(trainwise.compose(preset=case.preset, overrides=list(case.overrides)),
                                    run_dir=None, quiet=True)
    codes = [f["code"] for f in result.findings if f.get("severity") in ("warning", "error")]
    return codes, result.history


def curve(history: list[dict], key: str) -> str:
    vals = [h[key] for h in history if key in h]
    if not vals:
        return f"no {key}"
    show = [f"{v:.3g}" if math.isfinite(v) else str(v) for v in vals]
    return f"{key} {show[0]} → {show[-1]}" if len(show) > 2 else f"{key} {' → '.join(show)}"


def main() -> None:
    c.setup()
    for claim, case, codes in CLAIMS:
        found, history = run_case(case)
        note = next(k.note for k in CASES if k.name == case)
        c.say(f"{case}: findings {found}")
        c.check(f"{claim}", bool(set(found) & codes),
                f"{note}: {curve(history, 'train/loss')}, {curve(history, 'val/loss')}; the doctor reported "
                f"{found or 'nothing'} (expected one of {sorted(codes)})")

    # Dead ReLUs with forward hooks: the same statistics the doctor's monitor collects.
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[128, 128], bias_init=-5.0)
    dead: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, _i, out, n=n: dead.__setitem__(n, activation_stats(mod, out)
                                                                                  ["dead_frac"].item()))
             for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    x, _ = c.digits(512)
    model(torch.tensor(x))
    for h in hooks:
        h.remove()
    healthy = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[128, 128])
    hd: list[float] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: hd.append(activation_stats(mod, out)["dead_frac"].item()))
             for m in healthy.modules() if isinstance(m, nn.ReLU)]
    healthy(torch.tensor(x))
    c.check("dead ReLUs can be counted with forward hooks", min(dead.values()) > 0.5 and max(hd) < 0.1,
            f"forward hooks on each ReLU over 512 digits: fraction of units never positive "
            f"{ {k: round(v, 3) for k, v in dead.items()} } with hidden biases −5, {[round(v, 3) for v in hd]} "
            f"with the default init")


if __name__ == "__main__":
    main()

"""Checks before the first step (about a second): the data, the loss at initialisation, activation scale through
depth. Runs in ``eval()`` + ``inference_mode`` on a copy of nothing: no weights, statistics or RNG change, so a run
with preflight is bit-identical to one without."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainwise.doctor.findings import Finding
from trainwise.doctor.monitors import ACTIVATIONS, SATURATING, activation_stats


def check_data(x: torch.Tensor, y: torch.Tensor, task: str, feature_names: list[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    if x.ndim == 2 and len(x) > 1:  # tabular: per-feature variance (images legitimately have constant borders)
        const = (x.float().std(dim=0) == 0).nonzero().flatten().tolist()
        if const:
            names = [feature_names[i] if feature_names and i < len(feature_names) else str(i) for i in const]
            out.append(Finding("constant_features", "warning",
                               f"{len(const)} feature(s) never vary in the training split and carry no information",
                               {"features": names[:20]}, ["drop these columns", "check the CSV parsing / join"]))
    if task == "classification":
        counts = torch.bincount(y.long())
        present = counts[counts > 0]
        ratio = float(present.max() / present.min()) if len(present) > 1 else 1.0
        if ratio >= 5:
            out.append(Finding("class_imbalance", "warning",
                               f"the largest class is {ratio:.1f}× the smallest; accuracy will flatter the model",
                               {"ratio": ratio, "counts": counts.tolist()},
                               ["judge by val/f1_macro or val/auroc (reported), not accuracy",
                                "monitor train.monitor=val/f1_macro for early stopping",
                                "weight the loss by inverse class frequency or resample"]))
    return out


@torch.inference_mode()
def check_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any) -> tuple[list[Finding], dict]:
    """Loss at init against its expectation, and activation statistics layer by layer on one batch."""
    out: list[Finding] = []
    info: dict[str, Any] = {}
    was = model.training
    model.eval()
    acts = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    stats: dict[str, dict[str, float]] = {}
    handles = [m.register_forward_hook(lambda mod, _i, o, n=n: stats.__setitem__(
        n, {k: float(v) for k, v in activation_stats(mod, o).items()})) for n, m in acts]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    loss = float(task.eval_loss_sum(logits, y) / len(y))
    info["init_loss"] = loss
    info["activations"] = stats
    if task.name == "classification":
        expected = math.log(task.num_classes)
        info["expected_init_loss"] = expected
        if math.isfinite(loss) and (loss > 3 * expected or loss < 0.3 * expected):
            out.append(Finding("init_loss_off", "warning",
                               f"loss at initialisation is {loss:.3g}, expected ≈ ln C = {expected:.3g}",
                               {"init_loss": loss, "expected": expected},
                               ["scale down or zero-initialise the last layer so initial logits are small",
                                "check the labels match the model's outputs",
                                "standardise the inputs (data.standardize=true)"]))
    stds = [(n, s["std"]) for n, s in stats.items() if s.get("std", 0) > 0]
    if len(stds) >= 4:
        first, last = stds[0][1], stds[-1][1]
        ratio = last / first if first > 0 else float("inf")
        if ratio < 0.1 or ratio > 10:
            out.append(Finding("activation_scale", "warning",
                               f"activation std {'shrinks' if ratio < 1 else 'grows'} {1 / ratio if ratio < 1 else ratio:.3g}× "
                               f"from '{stds[0][0]}' to '{stds[-1][0]}' at initialisation",
                               {"std_first": first, "std_last": last, "layers": len(stds)},
                               ["use He (kaiming) init with ReLU-like activations (model.init=kaiming)",
                                "add normalisation (model.norm=batch or layer)",
                                "prefer relu/gelu over sigmoid/tanh in deep stacks"]))
    sat = {n: s["sat_frac"] for n, s in stats.items() if "sat_frac" in s and s["sat_frac"] > 0.5}
    if sat and any(isinstance(m, SATURATING) for _, m in acts):
        out.append(Finding("saturated_units", "warning",
                           f"{len(sat)} sigmoid/tanh layer(s) have most outputs saturated at initialisation",
                           {"layers": {k: round(v, 3) for k, v in sat.items()}},
                           ["use xavier init with the activation's gain (model.init=xavier)",
                            "standardise the inputs", "use relu/gelu"]))
    return out, info

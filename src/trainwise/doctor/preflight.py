"""Checks before the first step (about a second): the data, the loss at initialisation, activation scale through
depth. Runs in ``eval()`` + ``inference_mode`` on a copy of nothing: no weights, statistics or RNG change, so a run
with preflight is bit-identical to one without."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.doctor.findings import Finding
from trainwise.doctor.monitors import ACTIVATIONS, SATURATING, activation_stats

AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _image_like(x: torch.Tensor, const: list[int]) -> bool:
    """Images (N, C, H, W) or flattened square images whose constant features all lie on the image border — the
    blank margins every digit or MNIST-like image has. Those pixels are constant by nature, not by a parsing bug."""
    if x.ndim >= 3:
        return True
    side = math.isqrt(x.shape[1])
    if x.ndim != 2 or side < 4 or side * side != x.shape[1] or not const:
        return False
    return all(r in (0, side - 1) or c in (0, side - 1) for r, c in (divmod(i, side) for i in const))


def check_data(x: torch.Tensor, y: torch.Tensor, task: str, feature_names: list[str] | None = None,
               ready_made: bool = False) -> list[Finding]:
    """Checks on the training split. ``ready_made``: the data reached fit as given splits (or a Dataset), so fit
    neither standardised nor imputed it — fixes must then name what the user does, not a config key."""
    out: list[Finding] = []
    xf = x.float()
    bad = ~torch.isfinite(xf)
    if bool(bad.any()):
        cols = bad.reshape(len(x), -1).any(0).nonzero().flatten().tolist()
        out.append(Finding("nonfinite_inputs", "error",
                           f"{int(bad.reshape(len(x), -1).any(1).sum())} training sample(s) contain NaN or inf",
                           {"samples": int(bad.reshape(len(x), -1).any(1).sum()), "features": cols[:20]},
                           ["replace the NaN/inf values before fit (impute the column median, or drop those rows)"
                            + (": ready-made splits are used as given" if ready_made else ""),
                            "pass (x, y) arrays instead: fit then imputes missing values with train medians"]))
        xf = torch.nan_to_num(xf, nan=0.0, posinf=0.0, neginf=0.0)
    if x.ndim == 2 and len(x) > 1:  # per-feature variance
        const = (xf.std(dim=0) == 0).nonzero().flatten().tolist()
        if const:
            names = [feature_names[i] if feature_names and i < len(feature_names) else str(i) for i in const]
            image = _image_like(x, const)
            out.append(Finding("constant_features", "info" if image else "warning",
                               f"{len(const)} feature(s) never vary in the training split and carry no information"
                               + (" (border pixels of square images: normal)" if image else ""),
                               {"features": names[:20], "of": x.shape[1]},
                               ["nothing to do: blank image borders are constant in every image"] if image else
                               [f"check the column(s) {', '.join(names[:5])}: a failed join or parse leaves them constant;"
                                " drop them if they are truly constant"]))
    if ready_made and x.ndim >= 2 and len(x) > 1:
        flat = xf.reshape(len(x), -1)
        scale = flat.abs().quantile(0.99, dim=0) if flat.shape[0] * flat.shape[1] < 2**24 else flat.abs().amax(0)
        top, spread = float(scale.max()), float(scale.max() / scale[scale > 0].min()) if bool((scale > 0).any()) else 1.0
        if top > 50 or (spread > 1000 and top > 5):
            out.append(Finding("unscaled_inputs", "warning",
                               f"input features are not standardised: magnitudes reach {top:.3g}"
                               + (f" and differ {spread:.3g}× between features" if spread > 100 else ""),
                               {"max_feature_magnitude": top, "feature_scale_ratio": spread},
                               ["standardise the features yourself (subtract the train mean, divide by the train "
                                "std): ready-made splits are used as given",
                                "or pass (x, y) arrays: fit then standardises with train statistics"]))
    if task == "classification":
        counts = torch.bincount(y.long())
        present = counts[counts > 0]
        if len(present) == 1:
            cls = int(counts.argmax())
            out.append(Finding("single_class", "error", f"every training label is {cls}: there is one class",
                               {"counts": counts.tolist()},
                               [f"the labels hold a single class ({cls}): check the filter or join that built them",
                                "a classifier needs examples of at least two classes"]))
        ratio = float(present.max() / present.min()) if len(present) > 1 else 1.0
        if ratio >= 5:
            # Info: an imbalance is a fact about the data, not a bug; the diagnosis raises it when the run shows harm.
            out.append(Finding("class_imbalance", "info",
                               f"the largest class is {ratio:.1f}× the smallest; accuracy will flatter the model",
                               {"ratio": ratio, "counts": counts.tolist()},
                               ["judge by val/f1_macro or val/auroc (reported), not accuracy",
                                "monitor train.monitor=val/f1_macro for early stopping",
                                "weight the loss by inverse class frequency or resample"]))
    return out


def _rows(x: torch.Tensor) -> set[bytes]:
    a = np.ascontiguousarray(x.detach().cpu().float().reshape(len(x), -1).numpy())
    return {r.tobytes() for r in a}


def check_splits(parts: dict[str, Any], task: str) -> tuple[list[Finding], dict[str, Any]]:
    """Splits against each other (ready-made (x, y) splits only): classes present in one split but not in another,
    and samples that appear in both train and val/test."""
    out: list[Finding] = []
    info: dict[str, Any] = {}
    given = {k: v for k, v in parts.items() if isinstance(v, tuple)}
    if "train" not in given or len(given) < 2:
        return out, info
    xt, yt = given["train"]
    if task == "classification":
        k = int(max(int(v[1].max()) for v in given.values())) + 1
        counts = {name: torch.bincount(v[1].long(), minlength=k).tolist() for name, v in given.items()}
        info["class_counts"] = counts
        train_share = torch.tensor(counts["train"], dtype=torch.float) / max(1, len(yt))
        problems: dict[str, dict[str, list[int]]] = {}
        for name, c in counts.items():
            if name == "train":
                continue
            n = sum(c)
            unseen = [i for i in range(k) if c[i] > 0 and counts["train"][i] == 0]
            # a class is "missing" from a split only where chance alone would almost never leave it out (≥ 5 expected)
            missing = [i for i in range(k) if c[i] == 0 and float(train_share[i]) * n >= 5]
            if unseen or missing:
                problems[name] = {"classes_not_in_train": unseen, "train_classes_missing": missing}
        if problems:
            ordered = bool((yt[1:] >= yt[:-1]).all()) or any(
                bool((v[1][1:] >= v[1][:-1]).all()) for v in given.values())
            out.append(Finding("split_mismatch", "error",
                               "the splits do not hold the same classes: "
                               + "; ".join(f"{n} has classes {p['classes_not_in_train']} that train lacks"
                                           if p["classes_not_in_train"] else f"{n} lacks classes "
                                           f"{p['train_classes_missing']}" for n, p in problems.items()),
                               {**{f"{n}_{key}": v for n, p in problems.items() for key, v in p.items()},
                                "class_counts": counts, "labels_sorted": ordered},
                               ["shuffle before splitting, stratified by label (sklearn train_test_split(..., "
                                "stratify=y))" + (": the labels arrive sorted" if ordered else ""),
                                "or pass (x, y) arrays and let fit split them stratified"]))
    train_rows = _rows(xt)
    for name, (x, _) in given.items():
        if name == "train" or len(x) == 0:
            continue
        dup = sum(r in train_rows for r in _rows(x))
        if dup / len(x) >= 0.05:
            info[f"{name}_duplicates_of_train"] = dup
            out.append(Finding("split_leak", "error",
                               f"{dup} of the {len(x)} {name} samples ({100 * dup / len(x):.0f}%) also appear in train: "
                               f"{name} metrics measure memory, not generalisation",
                               {"split": name, "duplicates": dup, "of": len(x)},
                               [f"remove the duplicate rows from {name} (deduplicate before splitting, then split "
                                "once)", "build train and val from disjoint indices of one shuffled permutation"]))
    return out, info


def label_agreement(x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor] | None = None,
                    limit: int = 2000) -> dict[str, float]:
    """How often a sample's nearest training neighbour (standardised features, leave-one-out) has the same label,
    against the rate for random pairs (Σ p_k²). Real labels agree far above that rate; labels shuffled apart from
    their inputs agree at it. ``val``: the same for validation samples against train."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(x), generator=g)[:limit]
    xt = x[idx].float().reshape(len(idx), -1)
    yt = y[idx].long()
    if len(xt) < 20 or not bool(torch.isfinite(xt).all()):
        return {}
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-8)
    proj = None
    if xt.shape[1] > 256:  # wide inputs (images): a fixed random projection keeps distances and the cost small
        proj = torch.randn(xt.shape[1], 256, generator=g) / 16.0
    z = (xt - mu) / sd
    z = z @ proj if proj is not None else z
    d = torch.cdist(z, z)
    d.fill_diagonal_(float("inf"))
    share = torch.bincount(yt).float() / len(yt)
    out = {"nn_label_agreement": float((yt[d.argmin(1)] == yt).float().mean()),
           "nn_label_chance": float((share ** 2).sum()), "nn_samples": len(yt)}
    if val is not None and len(val[0]) >= 20 and bool(torch.isfinite(val[0].float()).all()):
        zv = (val[0][:limit].float().reshape(min(limit, len(val[0])), -1) - mu) / sd
        zv = zv @ proj if proj is not None else zv
        out["nn_val_agreement"] = float((yt[torch.cdist(zv, z).argmin(1)] == val[1][:limit].long()).float().mean())
    return out


def check_structure(model: nn.Module, batch_size: int, freeze_epochs: int = 0) -> tuple[list[Finding], dict]:
    """Mistakes visible in the module tree: layers kept in plain Python containers (never registered, so never
    trained), parameters left frozen, batch norm with tiny batches."""
    out: list[Finding] = []
    info: dict[str, Any] = {"recurrent": any(isinstance(m, nn.RNNBase) for m in model.modules()),
                            "batchnorm": any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())}  # noqa: SLF001
    hidden = []
    for name, m in model.named_modules():
        for attr, val in vars(m).items():
            if attr.startswith("_"):
                continue
            items = val.values() if isinstance(val, dict) else val if isinstance(val, (list, tuple)) else ()
            if any(isinstance(v, (nn.Module, nn.Parameter)) for v in items):
                hidden.append(f"{name}.{attr}" if name else attr)
    if hidden:
        out.append(Finding("unregistered_modules", "error",
                           f"layers held in plain Python containers ({', '.join(hidden)}) are not registered: the "
                           "optimizer never sees their parameters and they are not moved to the device",
                           {"attributes": hidden},
                           [f"wrap {hidden[0]} in nn.ModuleList (nn.ModuleDict for a dict, nn.ParameterList for "
                            "parameters)"]))
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen and not freeze_epochs:
        total = sum(1 for _ in model.parameters())
        out.append(Finding("frozen_params", "warning",
                           f"{len(frozen)} of {total} parameter tensors have requires_grad=False and will not train",
                           {"frozen": frozen[:20], "of": total},
                           [f"if unintended, call requires_grad_(True) on {', '.join(frozen[:3])}"
                            + ("…" if len(frozen) > 3 else ""),
                            "to freeze a pretrained body for a few epochs, use train.freeze_epochs instead"]))
    if info["batchnorm"] and batch_size < 8:
        out.append(Finding("batchnorm_small_batch", "warning",
                           f"batch norm with data.batch_size={batch_size}: statistics of {batch_size} samples are "
                           "noise, and evaluation (running statistics) will not match training",
                           {"batch_size": batch_size},
                           ["raise data.batch_size to 16 or more (train.accumulate keeps the optimizer batch if "
                            "memory is short)", "or use nn.GroupNorm / nn.LayerNorm, which do not depend on the batch"]))
    return out, info


def time_fetch(dataset: torch.utils.data.Dataset, samples: int = 32) -> float:
    """Seconds per ``dataset[i]`` — the user's own loading code — over the first few samples, under a forked RNG so
    a random augmentation inside ``__getitem__`` does not shift the run's random stream."""
    n = min(samples, len(dataset))  # type: ignore[arg-type]
    if n == 0:
        return 0.0
    with torch.random.fork_rng():
        t = time.perf_counter()
        for i in range(n):
            dataset[i]
        return (time.perf_counter() - t) / n


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
    # (name, input, output) of every linear/conv call in execution order: whether the next one receives exactly what
    # the previous one produced is a test for a missing nonlinearity that also sees functional activations.
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def record(_m: nn.Module, i: tuple, o: Any, n: str) -> None:
        if i and isinstance(i[0], torch.Tensor) and isinstance(o, torch.Tensor):
            calls.append((n, i[0], o))

    handles += [m.register_forward_hook(lambda mod, i, o, n=n: record(mod, i, o, n))
                for n, m in model.named_modules() if isinstance(m, AFFINE)]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    pairs = [(a[0], b[0]) for a, b in zip(calls, calls[1:])
             if a[2].numel() == b[1].numel() and torch.equal(a[2].reshape(-1), b[1].reshape(-1))]
    if pairs and task.name in ("classification", "regression", "multilabel"):  # an autoencoder's bottleneck may be linear
        out.append(Finding("linear_stack", "warning",
                           f"{len(pairs)} pair(s) of linear layers with nothing nonlinear between them: "
                           + ", ".join(f"'{a}' → '{b}'" for a, b in pairs)
                           + "; stacked linear maps collapse into one linear map",
                           {"pairs": [list(p) for p in pairs]},
                           [f"add a nonlinearity (e.g. nn.ReLU()) between '{pairs[0][0]}' and '{pairs[0][1]}'",
                            "dropout and normalisation are not nonlinearities"]))
    if task.name in ("classification", "multilabel") and isinstance(logits, torch.Tensor) and logits.ndim == 2 \
            and logits.shape[1] >= 2 and bool(((logits >= 0) & (logits <= 1)).all()):
        softmax = bool(torch.allclose(logits.float().sum(1), torch.ones(len(logits)), atol=1e-4))
        what = "softmax" if softmax else "sigmoid"
        out.append(Finding("probability_outputs", "error",
                           f"the model's outputs are already probabilities ({what}: every value in [0, 1]"
                           + (", rows sum to 1" if softmax else "") + ") but the loss expects raw logits and applies "
                           "(log-)softmax itself: gradients shrink and the loss cannot go below a floor",
                           {"min": float(logits.min()), "max": float(logits.max()), "looks_like": what},
                           [f"remove the final {what} from the model: return the last layer's raw outputs (logits)",
                            "apply softmax/sigmoid only when you need probabilities at prediction time"]))
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

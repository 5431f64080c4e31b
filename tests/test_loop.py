"""The training loop's production details: accumulation, schedules, optimizer groups, early stopping, EMA, label
smoothing, mixing, augmentation, precision, evaluation and logging."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.datasets import load_diabetes, load_digits
from torch import nn
from torch.optim import lr_scheduler
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

import trainwise
from trainwise.data.loaders import InMemoryLoader
from trainwise.data.sources import from_arrays
from trainwise.data.splits import split_table
from trainwise.errors import TrainwiseError
from trainwise.tasks import Classification
from trainwise.train.augment import random_shift
from trainwise.train.components import group_weights as _group_weights
from trainwise.train.optim import build_optimizer, param_groups, scale_lr
from trainwise.train.precision import grad_scaler, resolve_precision
from trainwise.train.schedule import build_schedule

CPU = torch.device("cpu")
BASE = {"device": "cpu", "precision": "32", "seed": 0}


# ---- data and model helpers ------------------------------------------------------------------------------------------

_DIGITS = load_digits()


def digits(n_train: int = 512, n_val: int = 256, images: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pre-split digits (dict form: used by fit as given). Flat (N, 64) or images (N, 1, 8, 8), scaled to [0, 1]."""
    x = (_DIGITS.data / 16.0).astype(np.float32)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    y = _DIGITS.target.astype(np.int64)
    return {"train": (x[:n_train], y[:n_train]), "val": (x[n_train:n_train + n_val], y[n_train:n_train + n_val])}


def mlp(hidden: tuple[int, ...] = (32,), seed: int = 7, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return trainwise.create_model("mlp", (64,), 10, hidden=list(hidden), **kwargs)


def tiny_cnn(seed: int = 7) -> nn.Module:
    torch.manual_seed(seed)
    return trainwise.create_model("cnn", (1, 8, 8), 10, width=8, stages=1, blocks=1)


def fit(model: nn.Module, data, **options) -> trainwise.FitResult:
    opts = {**BASE, "early_stopping": False, "epochs": 1, **options}
    return trainwise.fit(model, data, run_dir=opts.pop("run_dir", None), quiet=True, record_step_losses=True, **opts)


class EventLog:
    """A ``callbacks=[…]`` observer that keeps every metrics event."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def train_steps(self) -> list[dict]:
        return [e for e in self.events if e["split"] == "train" and not e.get("epoch_end")]


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- gradient accumulation ------------------------------------------------------------------------------------------

def test_group_weights_full_groups_are_uniform():
    assert _group_weights([16, 16, 16, 16, 16, 16, 16, 16], 4) == [0.25] * 8


def test_group_weights_ragged_batch_and_partial_last_group():
    sizes = [64, 64, 64, 64, 64, 40]  # 6 micro-batches, k=4: one full group, then a partial group of 2 (64 + 40)
    w = _group_weights(sizes, 4)
    assert len(w) == len(sizes)
    assert w[:4] == [0.25] * 4
    assert w[4:] == pytest.approx([64 / 104, 40 / 104])
    for start in range(0, len(sizes), 4):  # each group's weights sum to 1: every group gives a mean-loss gradient
        assert sum(w[start:start + 4]) == pytest.approx(1.0)
    # k=1: every micro-batch is its own group
    assert _group_weights([64, 64, 10], 1) == [1.0, 1.0, 1.0]
    # a single partial group
    assert _group_weights([8, 2], 4) == pytest.approx([0.8, 0.2])


@pytest.mark.parametrize("sizes", [[16, 16, 16, 16], [16, 16, 16, 10], [20, 7]])
def test_weighted_micro_batches_give_the_gradient_of_the_union(sizes):
    torch.manual_seed(0)
    n = sum(sizes)
    x, y = torch.randn(n, 64), torch.randint(0, 10, (n,))
    model = mlp((32,))
    weights = _group_weights(sizes, len(sizes))

    start = 0
    for b, w in zip(sizes, weights):
        (F.cross_entropy(model(x[start:start + b]), y[start:start + b]) * w).backward()
        start += b
    accumulated = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    for g_acc, p in zip(accumulated, model.parameters()):
        torch.testing.assert_close(g_acc, p.grad, atol=1e-6, rtol=0)


def test_accumulate_4x16_trains_like_one_batch_of_64(tmp_path):
    """With the same seed the epoch permutation does not depend on the batch size, so 4 consecutive micro-batches of
    16 hold exactly the samples of one batch of 64 (the ragged tail too: 1000 = 15·64 + 40 = 15·4·16 + 16 + 16 + 8).
    With plain SGD and no clipping the two runs take the same optimizer steps up to float rounding."""
    data = digits(n_train=1000, n_val=200)
    common = {"epochs": 2, "grad_clip": None, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0,
                                                        "weight_decay": 0.0}}
    model = mlp((32,))
    small = fit(copy.deepcopy(model), data, run_dir=tmp_path / "small", accumulate=4, **{"data.batch_size": 16},
                **common)
    big = fit(copy.deepcopy(model), data, run_dir=tmp_path / "big", accumulate=1, **{"data.batch_size": 64}, **common)

    assert small.summary["steps"] == big.summary["steps"] == 2 * 16  # optimizer steps, not micro-batches
    assert len(small.step_losses) == 2 * 63 and len(big.step_losses) == 2 * 16
    w_small = load_file(str(tmp_path / "small" / "final.safetensors"))
    w_big = load_file(str(tmp_path / "big" / "final.safetensors"))
    assert not states_equal(w_big, {k: v for k, v in model.state_dict().items()})  # it did train
    for k in w_big:
        torch.testing.assert_close(w_small[k], w_big[k], atol=2e-5, rtol=1e-4)
    for a, b in zip(small.history, big.history):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)
        assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-4)


# ---- schedules ------------------------------------------------------------------------------------------------------

def _reference_lrs(make_scheduler, lr: float, steps: int) -> list[float]:
    """lr after each of ``steps`` scheduler steps for a torch scheduler on a dummy optimizer."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


# 256 train samples, batch 32, accumulate 2 → 8 micro-batches and 4 optimizer steps per epoch; 3 epochs → 12 steps.
SCHED_RUN = {"epochs": 3, "accumulate": 2, "log_every": 1, "data.batch_size": 32,
             "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}}


def _run_schedule(**schedule) -> tuple[EventLog, trainwise.FitResult]:
    log = EventLog()
    result = fit(mlp((16,)), digits(256, 64), callbacks=[log], schedule=schedule, **SCHED_RUN)
    return log, result


def test_warmup_cosine_steps_once_per_optimizer_step():
    log, result = _run_schedule(name="warmup_cosine", warmup_fraction=0.25, min_lr_ratio=0.1)
    steps = log.train_steps()
    assert [e["step"] for e in steps] == list(range(1, 13))  # one train event per optimizer step (log_every=1)
    total, warm = 12, 3

    def factor(s: int) -> float:  # the lr multiplier after s scheduler steps
        if s < warm:
            return (s + 1) / warm
        t = min(1.0, (s - warm) / (total - warm))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    assert [e["lr"] for e in steps] == pytest.approx([0.1 * factor(s) for s in range(1, 13)])
    assert steps[-1]["lr"] == pytest.approx(0.1 * 0.1)  # reached the floor exactly at the last optimizer step
    assert [r["lr"] for r in result.history] == pytest.approx([0.1 * factor(4 * (e + 1)) for e in range(3)])


def test_onecycle_steps_per_optimizer_step_and_never_overruns():
    log, _ = _run_schedule(name="onecycle")
    lrs = [e["lr"] for e in log.train_steps()]
    # OneCycleLR raises if stepped past total_steps: stepping per micro-batch (24 here) would have crashed.
    expected = _reference_lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=13), 0.1, 12)
    assert lrs == pytest.approx(expected)
    assert max(lrs) == pytest.approx(0.1, rel=0.05)


def test_cyclic_steps_per_optimizer_step():
    log, _ = _run_schedule(name="cyclic", cycle_epochs=1, base_lr_ratio=0.1)
    lrs = [e["lr"] for e in log.train_steps()]
    expected = _reference_lrs(lambda o: lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4,
                                                              cycle_momentum=False), 0.1, 12)
    assert lrs == pytest.approx(expected)
    assert min(lrs) == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)  # half-cycle = 4 optimizer steps


def test_step_schedule_steps_once_per_epoch():
    log, result = _run_schedule(name="step", step_size=1, gamma=0.5)
    # history's lr is the lr the epoch trained with; it halves per epoch, constant within one
    assert [r["lr"] for r in result.history] == pytest.approx([0.1, 0.05, 0.025])
    for e in log.train_steps():
        assert e["lr"] == pytest.approx(0.1 * 0.5 ** e["epoch"])


class ConstantLogits(nn.Module):
    """Logits that ignore the input and every trainable parameter: the loss never changes, so a plateau is certain."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :10] + 0.0 * self.w


def test_plateau_steps_on_the_monitored_metric():
    log = EventLog()
    result = fit(ConstantLogits(), digits(256, 64), callbacks=[log], epochs=4, monitor="val/loss",
                 schedule={"name": "plateau", "factor": 0.5, "patience": 0}, optim={"name": "sgd", "lr": 0.1})
    # epoch 0 sets the best val/loss; every later epoch is no better and (patience 0) halves the lr at its end
    assert [r["lr"] for r in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    val_losses = [r["val/loss"] for r in result.history]
    assert max(val_losses) == min(val_losses)


def test_plateau_keeps_lr_while_the_metric_improves():
    result = fit(mlp((32,)), digits(512, 256), epochs=3, schedule={"name": "plateau", "factor": 0.5, "patience": 0},
                 optim={"name": "adamw", "lr": 3e-3})
    vals = [r["val/loss"] for r in result.history]
    assert vals[0] > vals[1] > vals[2]  # improving: the plateau schedule must leave the lr alone
    assert [r["lr"] for r in result.history] == pytest.approx([3e-3] * 3)


def test_build_schedule_granularity():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert build_schedule(opt, "constant", 10, 2).every == "never"
    assert build_schedule(opt, "step", 10, 2).every == "epoch"
    assert build_schedule(opt, "plateau", 10, 2).every == "metric"
    for name in ("cosine", "warmup_cosine", "onecycle", "cyclic"):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        assert build_schedule(opt, name, 10, 2).every == "step", name


# ---- optimizer groups -----------------------------------------------------------------------------------------------

def test_weight_decay_only_on_weights_never_biases_or_norm_params():
    model = mlp((32, 32), norm="layer")
    groups = param_groups(model, 1e-3, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = [names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    undecayed = [names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert all(g["weight_decay"] in (0.0, 0.05) for g in groups)
    assert sorted(decayed) == ["body.0.weight", "body.3.weight", "head.weight"]
    assert sorted(undecayed) == ["body.0.bias", "body.1.bias", "body.1.weight", "body.3.bias", "body.4.bias",
                                 "body.4.weight", "head.bias"]
    assert isinstance(model.body[1], nn.LayerNorm)
    # every trainable parameter exactly once
    assert sorted(decayed + undecayed) == sorted(n for n, _ in model.named_parameters())


def test_weight_decay_groups_for_cnn_norms():
    torch.manual_seed(0)
    model = trainwise.create_model("cnn", (1, 8, 8), 10, width=8, norm="batch")
    opt = build_optimizer(model, "adamw", 1e-3, 0.05)
    for g in opt.param_groups:
        assert all((p.ndim >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][0]
    for g in opt.param_groups:
        if any(p is bn.weight for p in g["params"]):
            assert g["weight_decay"] == 0.0


def test_group_lr_gives_a_prefix_its_own_lr():
    model = mlp((32,))
    groups = param_groups(model, 1e-3, 0.01, {"head": 0.1})
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        for p in g["params"]:
            assert g["lr"] == (0.1 if names[id(p)].startswith("head") else 1e-3)
            assert g["weight_decay"] == (0.01 if p.ndim >= 2 else 0.0)
    assert len(groups) == 4  # (lr, decayed) pairs: body/head × weight/bias


def test_group_lr_applies_in_fit():
    """A near-zero lr for the body leaves it (almost) untouched while the head trains."""
    model = mlp((32,))
    before = copy.deepcopy(model.state_dict())
    result = fit(model, digits(256, 64), optim={"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0,
                                                "group_lr": {"body": 1e-12}})
    after = result.model.state_dict()
    assert (after["body.0.weight"] - before["body.0.weight"]).abs().max() < 1e-9
    assert (after["head.weight"] - before["head.weight"]).abs().max() > 1e-4


def test_group_lr_bad_prefix_raises():
    with pytest.raises(TrainwiseError, match="nope"):
        fit(mlp((32,)), digits(128, 64), optim={"group_lr": {"nope": 0.1}})
    with pytest.raises(TrainwiseError, match="matches no trainable parameter"):
        param_groups(mlp((32,)), 1e-3, 0.0, {"bodyy": 0.1})


def test_scale_lr_linear_rule():
    assert scale_lr(1e-3, 64, 256, accumulate=8) == pytest.approx(2e-3)
    assert scale_lr(0.1, 256, 256) == pytest.approx(0.1)
    assert scale_lr(0.1, 32, 256) == pytest.approx(0.0125)
    assert trainwise.scale_lr is scale_lr


# ---- early stopping and best weights --------------------------------------------------------------------------------

def test_early_stopping_restores_the_best_epoch(tmp_path):
    """Random labels: a wide MLP memorises the train set and the val loss climbs, so early stopping must fire."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=128)
    data = {"train": (x[:64], y[:64]), "val": (x[64:], y[64:])}
    patience = 3
    result = trainwise.fit(mlp((256,)), data, run_dir=tmp_path / "run", quiet=True, **BASE, epochs=40,
                           early_stopping=True, patience=patience, monitor="val/loss",
                           optim={"name": "adamw", "lr": 1e-2}, **{"data.batch_size": 16})
    s = result.summary
    assert s["stopped"] == "early_stopping"
    best = s["best_epoch"]  # 1-based
    val = [r["val/loss"] for r in result.history]
    assert len(result.history) == best + patience < 40  # stopped after exactly `patience` epochs without improvement
    assert val[best - 1] == min(val)
    assert all(v >= val[best - 1] for v in val[best:])
    assert s["val/loss"] == val[best - 1]  # summary reports the best epoch's validation metrics
    saved = load_file(str(tmp_path / "run" / "best.safetensors"))
    assert states_equal(result.model.state_dict(), saved)
    final = load_file(str(tmp_path / "run" / "final.safetensors"))
    assert not states_equal(final, saved)  # the last epoch's weights are not what was returned


def test_no_early_stopping_runs_all_epochs():
    result = fit(mlp((16,)), digits(128, 64), epochs=3, early_stopping=False)
    assert result.summary["stopped"] == "completed" and len(result.history) == 3


# ---- EMA, label smoothing, mixing, augmentation ---------------------------------------------------------------------

def test_ema_changes_eval_weights_but_not_training():
    data = digits(256, 128)
    model = mlp((32,))
    plain = fit(copy.deepcopy(model), data, epochs=2)
    ema = fit(copy.deepcopy(model), data, epochs=2, ema_decay=0.9)
    assert plain.step_losses == ema.step_losses  # the live weights train identically
    assert [r["val/loss"] for r in plain.history] != [r["val/loss"] for r in ema.history]
    assert not states_equal(plain.model.state_dict(), ema.model.state_dict())


def test_label_smoothing_loss_matches_cross_entropy():
    torch.manual_seed(0)
    out, y = torch.randn(32, 10), torch.randint(0, 10, (32,))
    task = Classification(10, label_smoothing=0.1)
    assert torch.equal(task.loss(out, y), F.cross_entropy(out, y, label_smoothing=0.1))
    assert not torch.allclose(task.loss(out, y), F.cross_entropy(out, y))
    # soft targets (mixup) go through the same loss
    soft = F.one_hot(y, 10).float()
    torch.testing.assert_close(task.loss(out, soft), F.cross_entropy(out, soft, label_smoothing=0.1))


def test_label_smoothing_is_used_in_training():
    from trainwise.data.loaders import epoch_seed

    data = digits(256, 64)
    model = mlp((32,))
    reference = copy.deepcopy(model)
    result = fit(model, data, label_smoothing=0.2, **{"data.batch_size": 64})
    idx = torch.randperm(256, generator=torch.Generator().manual_seed(epoch_seed(0, 0)))[:64]
    x, y = torch.from_numpy(data["train"][0])[idx], torch.from_numpy(data["train"][1])[idx]
    with torch.no_grad():
        first = F.cross_entropy(reference(x), y, label_smoothing=0.2).item()
    assert result.step_losses[0] == pytest.approx(first, rel=1e-6)


@pytest.mark.parametrize("alphas", [{"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.2,
                                                                                    "cutmix_alpha": 1.0}])
def test_mixup_cutmix_run_and_are_deterministic(alphas):
    data = digits(128, 64, images=True)
    runs = [fit(tiny_cnn(), data, **alphas, **{"data.batch_size": 32}) for _ in range(2)]
    plain = fit(tiny_cnn(), data, **{"data.batch_size": 32})
    assert all(math.isfinite(v) for v in runs[0].step_losses)
    assert runs[0].step_losses == runs[1].step_losses
    assert states_equal(runs[0].model.state_dict(), runs[1].model.state_dict())
    assert runs[0].step_losses != plain.step_losses


def test_mixup_on_tabular_data_runs():
    result = fit(mlp((16,)), digits(128, 64), mixup_alpha=0.4, **{"data.batch_size": 32})
    assert all(math.isfinite(v) for v in result.step_losses)


def test_cutmix_only_on_tabular_data_does_not_crash():
    """CutMix is images-only; asking for it on tabular data must either do nothing or raise a TrainwiseError — not a
    raw numpy ``ValueError: a <= 0`` from ``rng.beta(0, 0)`` halfway into the first step."""
    try:
        result = fit(mlp((16,)), digits(128, 64), cutmix_alpha=1.0, **{"data.batch_size": 32})
    except TrainwiseError:
        return
    assert all(math.isfinite(v) for v in result.step_losses)


def test_random_shift_is_an_integer_translation():
    torch.manual_seed(0)
    x = torch.rand(16, 2, 6, 5) + 1.0  # strictly positive: a zero in the output can only be fill
    g = torch.Generator().manual_seed(3)
    out = random_shift(x, g)
    assert out.shape == x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    shifts = set()
    for b in range(len(x)):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if torch.equal(out[b], padded[b, :, 1 + dy:1 + dy + 6, 1 + dx:1 + dx + 5])]
        assert len(matches) == 1, f"image {b} is not a ±1 integer shift of its input"
        shifts.add(matches[0])
    assert len(shifts) > 1  # offsets are drawn per image
    again = random_shift(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert not torch.equal(out, random_shift(x, torch.Generator().manual_seed(4)))


def test_shift_augmentation_in_fit_is_deterministic():
    data = digits(128, 64, images=True)
    a = fit(tiny_cnn(), data, **{"data.augment": "shift", "data.batch_size": 32})
    b = fit(tiny_cnn(), data, **{"data.augment": "shift", "data.batch_size": 32})
    plain = fit(tiny_cnn(), data, **{"data.batch_size": 32})
    assert a.step_losses == b.step_losses
    assert a.step_losses != plain.step_losses


# ---- precision ------------------------------------------------------------------------------------------------------

def test_resolve_precision_and_scaler():
    assert resolve_precision("auto", CPU) == "32"
    assert resolve_precision("bf16-mixed", CPU) == "bf16-mixed"
    assert isinstance(grad_scaler("16-mixed", CPU), torch.amp.GradScaler)
    assert grad_scaler("bf16-mixed", CPU) is None
    assert grad_scaler("32", CPU) is None


def test_auto_precision_on_cpu_fit_is_fp32():
    result = trainwise.fit(mlp((16,)), digits(128, 64), run_dir=None, quiet=True, device="cpu", epochs=1)
    assert result.summary["precision"] == "32"


def test_bf16_mixed_on_cpu_runs():
    result = fit(mlp((32,)), digits(256, 64), precision="bf16-mixed", epochs=2)
    assert result.summary["precision"] == "bf16-mixed"
    assert all(math.isfinite(v) for v in result.step_losses)
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"] + 0.5
    assert "skipped_steps" not in result.summary  # no GradScaler for bf16


def test_fp16_mixed_creates_a_scaler_in_fit():
    result = fit(mlp((32,)), digits(256, 64), precision="16-mixed")
    assert result.summary["skipped_steps"] >= 0  # reported only when a GradScaler exists
    assert "skipped_steps" in result.history[0]


# ---- evaluation -----------------------------------------------------------------------------------------------------

def test_evaluate_runs_in_eval_mode_under_inference_mode():
    model = mlp((64,), dropout=0.5)
    model.train()
    seen = []
    model.body[0].register_forward_hook(
        lambda m, i, o: seen.append((m.training, torch.is_inference_mode_enabled(), o.requires_grad)))
    data = digits(128, 200)
    loader = InMemoryLoader(torch.from_numpy(data["val"][0]), torch.from_numpy(data["val"][1]), 64, shuffle=False,
                            drop_last=False, seed=0, device=CPU)
    task = Classification(10)
    first = trainwise.evaluate(model, loader, task, "32", CPU)
    second = trainwise.evaluate(model, loader, task, "32", CPU)
    assert first == second  # dropout is off: identical metrics
    assert seen and all(s == (False, True, False) for s in seen)
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        out = model(loader.x)
    assert first["loss"] == pytest.approx(F.cross_entropy(out, loader.y).item(), rel=1e-5)


class Lookup(nn.Module):
    """Returns a fixed row of logits per sample, addressed by the sample id in column 0."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def test_metrics_are_over_the_whole_split_not_a_mean_of_batches():
    # 5 samples, 3 classes, eval batches of 4 and 1.
    y = torch.tensor([0, 1, 2, 0, 1])
    pred = torch.tensor([0, 2, 1, 0, 1])  # batch 1: 2/4 correct; batch 2: 1/1 correct
    logits = F.one_hot(pred, 3).float() * 5.0
    x = torch.arange(5, dtype=torch.float32)[:, None]
    loader = InMemoryLoader(x, y, 4, shuffle=False, drop_last=False, seed=0, device=CPU)
    task = Classification(3)
    metrics = trainwise.evaluate(Lookup(logits), loader, task, "32", CPU)

    whole_acc = multiclass_accuracy(logits, y, num_classes=3, average="micro").item()
    whole_f1 = multiclass_f1_score(logits, y, num_classes=3, average="macro").item()
    batch_acc = np.mean([multiclass_accuracy(logits[s], y[s], num_classes=3, average="micro").item()
                         for s in (slice(0, 4), slice(4, 5))])
    batch_f1 = np.mean([multiclass_f1_score(logits[s], y[s], num_classes=3, average="macro").item()
                        for s in (slice(0, 4), slice(4, 5))])
    assert whole_acc == pytest.approx(0.6) and batch_acc == pytest.approx(0.75)
    assert abs(whole_f1 - batch_f1) > 0.05
    assert metrics["accuracy"] == pytest.approx(whole_acc)
    assert metrics["f1_macro"] == pytest.approx(whole_f1)
    # the loss is the mean over samples (summed per batch), not the mean of batch means
    per_sample = F.cross_entropy(logits, y, reduction="none")
    assert metrics["loss"] == pytest.approx(per_sample.mean().item(), rel=1e-6)
    assert metrics["loss"] != pytest.approx((per_sample[:4].mean().item() + per_sample[4].item()) / 2, rel=1e-3)


# ---- logging --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("log_every", [1, 3, 100])
def test_log_every_controls_train_events(log_every):
    log = EventLog()
    result = fit(mlp((16,)), digits(256, 64), callbacks=[log], epochs=2, log_every=log_every,
                 **{"data.batch_size": 32})
    total = result.summary["steps"]
    assert total == 16
    steps = log.train_steps()
    assert [e["step"] for e in steps] == list(range(log_every, total + 1, log_every))
    for e in steps:
        assert {"loss", "lr", "epoch", "grad_norm"} <= e.keys()
    ends = [e for e in log.events if e.get("epoch_end")]
    vals = [e for e in log.events if e["split"] == "val"]
    assert len(ends) == len(vals) == 2  # epoch-level events regardless of log_every


@pytest.mark.parametrize("log_every", [1, 3, 5])
def test_logged_train_loss_is_the_mean_since_the_previous_event(log_every):
    """Each train event's loss averages every optimizer step since the previous event — including steps at the end of
    the previous epoch when the interval straddles an epoch boundary (8 steps per epoch here)."""
    log = EventLog()
    result = fit(mlp((16,)), digits(256, 64), callbacks=[log], epochs=2, log_every=log_every,
                 **{"data.batch_size": 32})
    steps = log.train_steps()
    for prev, e in zip([{"step": 0}] + steps, steps):
        window = result.step_losses[prev["step"]:e["step"]]  # accumulate=1: one loss per optimizer step
        assert e["loss"] == pytest.approx(float(np.mean(window)), rel=1e-5), f"event at step {e['step']}"


def test_logged_train_loss_with_accumulation_covers_every_micro_batch():
    """With accumulation an optimizer step's loss is the (size-weighted) mean over its micro-batches, not just the
    last micro-batch's loss."""
    log = EventLog()
    result = fit(mlp((16,)), digits(256, 64), callbacks=[log], accumulate=2, log_every=1, **{"data.batch_size": 32})
    steps = log.train_steps()
    assert len(steps) == 4 and len(result.step_losses) == 8
    for j, e in enumerate(steps):
        group = result.step_losses[2 * j:2 * j + 2]
        assert e["loss"] == pytest.approx(float(np.mean(group)), rel=1e-5)


# ---- regression -----------------------------------------------------------------------------------------------------

def test_regression_metrics_in_original_units():
    d = load_diabetes()
    x, y = d.data.astype(np.float32), d.target.astype(np.float32)
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", (10,), 1, hidden=[32])
    result = trainwise.fit(model, (x, y), run_dir=None, quiet=True, **BASE, epochs=3, early_stopping=False,
                           optim={"lr": 1e-2})
    s = result.summary
    assert s["task"] == "regression" and s["main_metric"] == "r2"
    for split in ("val", "test"):
        assert {f"{split}/mae", f"{split}/rmse", f"{split}/r2", f"{split}/loss"} <= s.keys()
    # recompute the test metrics by hand in the original units (targets range 25..346)
    splits = split_table(from_arrays(x, y, "auto"), 0, 0.1, 0.2, True)
    p = splits.preprocess
    with torch.no_grad():
        pred = result.model.eval()(splits.test.x).squeeze(1) * p.y_std + p.y_mean
    target = splits.test.y * p.y_std + p.y_mean
    assert target.min() >= y.min() - 1e-3 and target.max() <= y.max() + 1e-3
    mae = (pred - target).abs().mean().item()
    rmse = ((pred - target) ** 2).mean().sqrt().item()
    r2 = 1 - ((pred - target) ** 2).sum().item() / ((target - target.mean()) ** 2).sum().item()
    assert s["test/mae"] == pytest.approx(mae, rel=1e-4)
    assert s["test/rmse"] == pytest.approx(rmse, rel=1e-4)
    assert s["test/r2"] == pytest.approx(r2, rel=1e-3, abs=1e-4)
    assert s["test/mae"] > 10  # original units, not standardised ones (≈ 0.5–1 there)
    assert "train/accuracy" not in result.history[0]


# ---- config plumbing ------------------------------------------------------------------------------------------------

def test_fit_with_config_and_options_keeps_the_config():
    """``fit(..., config=cfg, epochs=2)``: the options override only the keys they name; every other value comes
    from ``cfg`` (not from the schema defaults)."""
    from trainwise.config import from_kwargs

    def config(epochs: int):
        return from_kwargs(**BASE, optim={"name": "sgd", "lr": 0.05, "momentum": 0.0}, early_stopping=False,
                           epochs=epochs, **{"data.batch_size": 32})

    data = digits(128, 64)
    result = trainwise.fit(mlp((16,)), data, config=config(5), run_dir=None, quiet=True, record_step_losses=True,
                           epochs=2)
    assert len(result.history) == 2  # the option applied
    assert result.history[0]["lr"] == pytest.approx(0.05)  # the config's optimizer kept
    assert len(result.step_losses) == 2 * 4  # the config's batch size (128 / 32) kept
    direct = trainwise.fit(mlp((16,)), data, config=config(2), run_dir=None, quiet=True, record_step_losses=True)
    assert result.step_losses == direct.step_losses


def test_a_callback_returning_true_stops_after_that_epoch():
    seen: list[int] = []

    def stop_at_second_val(event: dict) -> bool:
        if event["split"] == "val":
            seen.append(event["epoch"])
            return event["epoch"] == 1
        return False

    r = fit(mlp(), digits(), epochs=5, callbacks=[stop_at_second_val])
    assert seen == [0, 1]
    assert r.summary["stopped"] == "callback" and r.summary["epochs"] == 2


def test_adam_kernels_fused_by_default_where_torch_has_them():
    from trainwise.train.optim import build_optimizer

    model = torch.nn.Linear(4, 2)
    assert build_optimizer(model, "adamw", 1e-3).defaults["fused"] is True  # auto (optim.fused: null) on CPU
    assert not build_optimizer(model, "adamw", 1e-3, fused=False).defaults["fused"]
    assert "fused" not in build_optimizer(model, "sgd", 1e-3).defaults or \
        not build_optimizer(model, "sgd", 1e-3).defaults["fused"]

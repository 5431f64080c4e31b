"""The doctor on reproduced real-world bugs (src/trainwise/checkup/bugsuite.py) and the mechanisms behind it: gradient
norms without clipping, crash records, checks before step 1, root causes before symptoms, fixes that act."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from trainwise.checkup import bugsuite
from trainwise.doctor.diagnose import RunRecord, diagnose, diagnose_run
from trainwise.doctor.preflight import check_model, check_splits, check_structure
from trainwise.errors import TrainwiseError
from trainwise.tasks import Classification
from trainwise.train.schedule import build_schedule
from trainwise.train.step import Stepper


def _warnings(findings: list[dict]) -> list[str]:
    return [f["code"] for f in findings if f["severity"] != "info"]


def _run(name: str, tmp_path: Path, seed: int = 0) -> list[dict]:
    case = next(c for c in [*bugsuite.CASES, *bugsuite.CONTROLS] if c.name == name)
    findings, _, _ = bugsuite.run_one(case.build, seed, tmp_path, name)
    return findings


# ---- mechanisms -------------------------------------------------------------------------------------------------

def test_grad_norm_is_kept_without_clipping_with_a_running_max() -> None:
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stepper = Stepper(model, opt, build_schedule(opt, "constant", 10, 1), None, grad_clip=None, ema_decay=None)
    norms = []
    for scale in (1.0, 100.0, 1.0):
        (model(torch.ones(3, 4)).sum() * scale).backward()
        stepper.step()
        assert stepper.grad_norm is not None
        norms.append(float(stepper.grad_norm))
    assert norms[1] > 50 * norms[0]
    assert stepper.take_grad_norm_max() == pytest.approx(max(norms))
    assert stepper.take_grad_norm_max() is None  # reset by reading
    (model(torch.ones(3, 4)).sum()).backward()
    stepper.step()
    finite = float(stepper.grad_norm)
    (model(torch.ones(3, 4)).sum() * float("nan")).backward()
    stepper.prepare()
    stepper.discard()  # a skipped non-finite step does not erase the finite maximum
    assert stepper.take_grad_norm_max() == pytest.approx(finite)


def test_unclipped_run_logs_grad_norms_and_epoch_maxima(tmp_path: Path) -> None:
    x, y = bugsuite._digits()
    trainwise.fit(bugsuite._mlp(64, 10), (x, y), run_dir=tmp_path / "r", epochs=2,
                  **{"train.grad_clip": None, "train.log_every": 5})
    events = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("grad_norm" in e for e in events if e.get("split") == "train" and not e.get("epoch_end"))
    timing = [json.loads(line) for line in (tmp_path / "r" / "monitors.jsonl").read_text().splitlines()
              if '"timing"' in line]
    assert len(timing) == 2 and all(t["grad_norm_max"] > 0 for t in timing)


def test_batchnorm_crash_is_recorded_and_diagnosed(tmp_path: Path) -> None:
    model, data, opts = bugsuite._bn_last_one(0)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        trainwise.fit(model, data, run_dir=tmp_path / "r", **opts)
    err = json.loads((tmp_path / "r" / "error.json").read_text())
    assert err["type"] == "ValueError" and err["where"]["module"] == "1"  # the BatchNorm1d
    assert err["where"]["input_shape"][0] == 1 and err["step"] == 20  # 20 full batches, then the batch of one
    first = diagnose_run(tmp_path / "r")[0]
    assert first.code == "crash" and "data.drop_last=true" in first.fixes[0]
    assert json.loads((tmp_path / "r" / "diagnosis.json").read_text())["findings"][0]["code"] == "crash"


def test_shape_mismatch_names_the_layer_and_the_sizes(tmp_path: Path) -> None:
    model, data, opts = bugsuite._flatten_mismatch(0)
    with pytest.raises(TrainwiseError, match=r"layer 'fc' \(Linear\) expects 1024 input features but receives 256"):
        trainwise.fit(model, data, run_dir=None, **opts)


def test_linear_stack_check_sees_functional_activations() -> None:
    x = torch.randn(64, 8)
    y = torch.randint(0, 3, (64,))
    stacked = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 3))
    found, _ = check_model(stacked, x, y, Classification(3))
    assert "linear_stack" in {f.code for f in found}

    class Functional(nn.Module):  # relu applied in forward, invisible to a module scan
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 3)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(t)))

    found, _ = check_model(Functional(), x, y, Classification(3))
    assert "linear_stack" not in {f.code for f in found}


def test_probability_outputs_are_caught_before_step_one() -> None:
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for last, what in ((nn.Softmax(dim=1), "softmax"), (nn.Sigmoid(), "sigmoid")):
        found, _ = check_model(nn.Sequential(nn.Linear(8, 3), last), x, y, Classification(3))
        f = next(f for f in found if f.code == "probability_outputs")
        assert f.evidence["looks_like"] == what and what in f.fixes[0]
    found, _ = check_model(nn.Linear(8, 3), x, y, Classification(3))
    assert "probability_outputs" not in {f.code for f in found}


def test_split_checks_find_missing_classes_and_duplicates() -> None:
    x = torch.randn(300, 5)
    y = torch.arange(300) % 3
    order = torch.argsort(y, stable=True)
    xs, ys = x[order], y[order]
    found, _ = check_splits({"train": (xs[:200], ys[:200]), "val": (xs[200:], ys[200:])}, "classification")
    assert "split_mismatch" in {f.code for f in found}
    found, _ = check_splits({"train": (x[:200], y[:200]), "val": (x[150:250], y[150:250])}, "classification")
    leak = next(f for f in found if f.code == "split_leak")
    assert leak.evidence["duplicates"] == 50
    found, info = check_splits({"train": (x[:200], y[:200]), "val": (x[200:], y[200:])}, "classification")
    assert not found and info["class_counts"]["val"] == [33, 33, 34]


def test_structure_checks_unregistered_and_frozen() -> None:
    found, info = check_structure(bugsuite.ListMLP(4, 2), batch_size=32)
    assert [f.code for f in found] == ["unregistered_modules"] and "nn.ModuleList" in found[0].fixes[0]
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    m[0].weight.requires_grad_(False)
    found, info = check_structure(m, batch_size=2)
    assert {f.code for f in found} == {"frozen_params", "batchnorm_small_batch"} and info["batchnorm"]
    found, _ = check_structure(m, batch_size=32, freeze_epochs=2)  # freezing on purpose, through the config
    assert found == []


def test_fixes_never_name_a_key_that_would_not_act() -> None:
    rows = [{"epoch": i, "train/loss": float("nan") if i else 2.3} for i in range(3)]
    base = {"history": rows, "summary": {"task": "classification", "stopped": "non_finite_loss"},
            "config": {"optim": {"lr": 1e-3}, "data": {"standardize": True}}, "init_loss": 2.3}
    for source in ("splits", "dataset", "arrays"):
        f = next(f for f in diagnose(RunRecord(**base, pre_info={"train_input": source})) if f.code == "nan_loss")
        assert not any("data.standardize" in x for x in f.fixes), (source, f.fixes)
    timing = [{"epoch": 0, "data_wait_s": 2.0, "epoch_s": 3.0}]
    ds = RunRecord(history=[], config={"data": {}}, timing=timing, pre_info={"train_input": "dataset"})
    assert not any("data.loader=memory" in x for f in diagnose(ds) for x in f.fixes)


def test_data_bound_names_whose_time_it_is() -> None:
    timing = [{"epoch": 0, "data_wait_s": 2.0, "epoch_s": 3.0}]
    ours = RunRecord(history=[], config={"data": {}}, timing=timing,
                     pre_info={"train_input": "dataset", "fetch_s_per_sample": 1e-5, "train_samples": 1000})
    f = next(f for f in diagnose(ours) if f.code == "data_bound")
    assert f.severity == "info" and "trainwise" in f.message
    theirs = RunRecord(history=[], config={"data": {}}, timing=timing,
                       pre_info={"train_input": "dataset", "fetch_s_per_sample": 2e-3, "train_samples": 1000})
    f = next(f for f in diagnose(theirs) if f.code == "data_bound")
    assert f.severity == "warning" and "__getitem__" in f.fixes[0]


def test_lr_too_high_groups_its_symptoms() -> None:
    rows = [{"epoch": i, "train/loss": 2.30, "train/accuracy": 0.1, "lr": 5.0} for i in range(6)]
    mons = [{"step": s, "grad_norm": 1.0, "layers": {}, "activations": {"1": {"dead_frac": 1.0}}} for s in range(4)]
    rec = RunRecord(history=rows, summary={"task": "classification"}, config={"optim": {"name": "adam", "lr": 5.0}},
                    monitors=mons, init_loss=2.30, expected_init_loss=float(np.log(10)))
    fs = diagnose(rec)
    assert fs[0].code == "lr_too_high" and "lower optim.lr" in fs[0].fixes[0]
    assert {"at_chance", "dead_relu", "not_learning"} <= set(fs[0].evidence["symptoms"])
    assert not any("raise optim.lr" in x for f in fs for x in f.fixes)


# ---- end to end: the named cases, and the two healthy runs that used to raise warnings -------------------

@pytest.mark.parametrize("name,code,fix", [
    ("adam-lr-5", "lr_too_high", "lower optim.lr"),
    ("batchnorm-last-batch-1", "crash", "data.drop_last=true"),
    ("rnn-no-clip", "exploding_gradients", "grad_clip"),
])
def test_named_bug_gets_the_right_first_finding_and_fix(name: str, code: str, fix: str, tmp_path: Path) -> None:
    first = next(f for f in _run(name, tmp_path) if f["severity"] != "info")
    assert first["code"] == code and fix in first["fixes"][0]


@pytest.mark.parametrize("name", ["readme-quickstart", "tensor-dataset", "flattened-images"])
def test_healthy_runs_raise_no_warning(name: str, tmp_path: Path) -> None:
    assert _warnings(_run(name, tmp_path)) == []


@pytest.mark.slow
def test_bug_suite_meets_the_targets(capsys: pytest.CaptureFixture) -> None:
    res = bugsuite.run_suite(seed=0)
    with capsys.disabled():
        print("\n" + bugsuite.to_markdown(res, "pytest tests/test_doctor_bugs.py::test_bug_suite_meets_the_targets"))
    missed = [r["case"] for r in res["cases"] if not r["recalled"]]
    assert res["n"] >= 30 and res["n_heldout"] >= 10 and len(res["controls"]) >= 10
    assert res["recall"] >= 0.90, missed
    assert res["recall_heldout"] >= 0.85, missed
    assert res["false_alarms"] == 0, [c for c in res["controls"] if c["raised"]]
    wrong_fix = [(r["case"], r["first_fix"]) for r in res["cases"] if r["recalled"] and not r["first_fix_ok"]]
    assert not wrong_fix
    assert not [(r["case"], r["bad_fixes"]) for r in res["cases"] if r["bad_fixes"]]

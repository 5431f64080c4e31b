"""The doctor: preflight, monitors, diagnosis rules, CLI, and the broken-configuration suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import trainwise
from trainwise.doctor.diagnose import RunRecord, diagnose
from trainwise.doctor.findings import CODES
from trainwise.doctor.monitors import activation_stats
from trainwise.doctor.preflight import check_data, check_model
from trainwise.tasks import Classification


def _codes(findings) -> set[str]:  # noqa: ANN001
    return {f.code for f in findings if f.severity != "info"}


def _rows(train: list[float], val: list[float] | None = None, acc: list[float] | None = None) -> list[dict]:
    rows = []
    for i, t in enumerate(train):
        r = {"epoch": i, "train/loss": t}
        if val is not None:
            r["val/loss"] = val[i]
        if acc is not None:
            r["train/accuracy"] = acc[i]
        rows.append(r)
    return rows


def test_every_finding_has_code_severity_message_evidence_fixes(tmp_path: Path) -> None:
    rec = RunRecord(history=_rows([2.3, 2.3, 2.3, 2.3], acc=[0.1] * 4), summary={"task": "classification"},
                    config={"optim": {"lr": 1e-7}}, init_loss=2.3, expected_init_loss=2.3)
    for f in diagnose(rec):
        d = f.to_dict()
        assert set(d) == {"code", "severity", "message", "evidence", "fixes"}
        assert d["code"] in CODES and d["severity"] in ("info", "warning", "error")
        assert d["message"] and d["evidence"] and d["fixes"]


def test_overfitting_rule_names_the_turning_epoch() -> None:
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02]
    val = [1.0, 0.7, 0.5, 0.45, 0.5, 0.6, 0.7, 0.8]
    rec = RunRecord(history=_rows(train, val, [0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0, 1.0]),
                    summary={"task": "classification"}, config={"optim": {"lr": 1e-3}, "train": {"patience": 3}})
    f = next(f for f in diagnose(rec) if f.code == "overfitting")
    assert f.evidence["turned_at_epoch"] == 4
    assert any("would have stopped at epoch 7" in x for x in f.fixes)


def test_healthy_run_is_reported_healthy() -> None:
    train = [1.0, 0.5, 0.3, 0.2, 0.15, 0.12]
    rec = RunRecord(history=_rows(train, [1.0, 0.55, 0.35, 0.28, 0.26, 0.25], [0.7, 0.9, 0.95, 0.97, 0.98, 0.99]),
                    summary={"task": "classification", "test/accuracy": 0.97}, config={"optim": {"lr": 1e-3}},
                    init_loss=2.3, expected_init_loss=2.3)
    findings = diagnose(rec)
    assert [f.code for f in findings] == ["healthy"]


def test_vanishing_and_dead_relu_rules_read_monitors() -> None:
    mons = [{"step": s, "grad_norm": 1.0,
             "layers": {"body.0": {"grad_norm": 1e-7}, "body.2": {"grad_norm": 1e-5}, "head": {"grad_norm": 0.5}},
             "activations": {"body.1": {"dead_frac": 0.9, "std": 0.1}, "body.3": {"dead_frac": 0.1, "std": 1.0}}}
            for s in range(1, 6)]
    rec = RunRecord(history=_rows([2.0, 1.5, 1.2], acc=[0.5, 0.95, 0.97]), summary={"task": "classification"},
                    config={"optim": {"lr": 1e-3}}, monitors=mons, init_loss=2.3)
    fs = {f.code: f for f in diagnose(rec)}
    assert fs["vanishing_gradients"].evidence["layers"] == ["body.0", "body.2"]
    assert fs["dead_relu"].evidence["dead_fraction"] == {"body.1": 0.9}


def test_activation_stats_counts_dead_units_per_channel() -> None:
    out = torch.zeros(4, 3, 2, 2)
    out[:, 0] = 1.0  # channel 0 alive, channels 1-2 dead
    s = activation_stats(nn.ReLU(), out)
    assert float(s["dead_frac"]) == pytest.approx(2 / 3)
    s = activation_stats(nn.Sigmoid(), torch.tensor([[0.001, 0.5, 0.999, 0.6]]))
    assert float(s["sat_frac"]) == pytest.approx(0.5)


def test_preflight_flags_imbalance_constant_features_and_bad_init() -> None:
    x = torch.randn(120, 4)
    x[:, 2] = 3.0
    y = torch.tensor([0] * 110 + [1] * 10)
    codes = {f.code for f in check_data(x, y, "classification", ["a", "b", "c", "d"])}
    assert codes == {"constant_features", "class_imbalance"}
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[2].weight.mul_(300.0)  # huge initial logits
    found, info = check_model(model, x, y, Classification(2))
    assert "init_loss_off" in {f.code for f in found}
    assert info["init_loss"] > 3 * info["expected_init_loss"]


def test_preflight_sees_shrinking_activations_in_a_deep_sigmoid_stack() -> None:
    model = trainwise.create_model("mlp", (64,), 10, hidden=[64] * 12, act="sigmoid", init="xavier")
    x = torch.randn(64, 64)
    found, info = check_model(model, x, torch.randint(0, 10, (64,)), Classification(10))
    assert len(info["activations"]) == 12


def test_preflight_and_monitors_leave_training_bit_identical() -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    weights = []
    for doctor in (True, False):
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", (64,), 10, hidden=[32], dropout=0.2)
        r = trainwise.fit(model, (x, y), run_dir=None, epochs=2, **{"doctor.preflight": doctor,
                                                                    "doctor.monitor_every": 3 if doctor else 0})
        weights.append([p.detach().clone() for p in r.model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_run_writes_diagnosis_monitors_and_preflight(tmp_path: Path) -> None:
    cfg = trainwise.compose(None, "digits-mlp", ["train.epochs=3", "doctor.monitor_every=10"])
    trainwise.runner.train(cfg, run_dir=tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    diag = json.loads((run / "diagnosis.json").read_text())
    assert diag["findings"] and all(f["code"] in CODES for f in diag["findings"])
    pre = json.loads((run / "preflight.json").read_text())
    assert "init_loss" in pre and "findings" in pre
    mons = [json.loads(line) for line in (run / "monitors.jsonl").read_text().splitlines()]
    sampled = [m for m in mons if "kind" not in m]
    # every 10 steps, plus the dense early samples (steps 1, 2, 4, 8) where most blow-ups happen
    assert [m["step"] for m in sampled] == [1, 2, 4, 8, 10, 20, 30, 40, 50, 60]
    assert {"grad_norm", "update_ratio", "weight_norm"} <= set(sampled[0]["layers"]["head"])
    assert "dead_frac" in sampled[0]["activations"]["body.2"]
    assert len([m for m in mons if m.get("kind") == "timing"]) == 3
    # diagnose CLI re-analyses the same run and agrees with what training printed
    p = subprocess.run([sys.executable, "-m", "trainwise", "diagnose", str(run), "--json"], capture_output=True,
                       text=True, check=True)
    assert [f["code"] for f in json.loads(p.stdout)["findings"]] == [f["code"] for f in diag["findings"]]


def test_diagnose_reads_a_crashed_run_without_summary(tmp_path: Path) -> None:
    cfg = trainwise.compose(None, "digits-mlp", ["train.epochs=2"])
    trainwise.runner.train(cfg, run_dir=tmp_path / "run", quiet=True)
    for name in ("summary.json", "history.json", "diagnosis.json"):
        (tmp_path / "run" / name).unlink()
    from trainwise.doctor.diagnose import diagnose_run

    assert diagnose_run(tmp_path / "run")


def test_nan_finding_names_the_first_non_finite_layer(tmp_path: Path) -> None:
    cfg = trainwise.compose(None, "digits-mlp", ["optim.name=sgd", "optim.lr=10", "train.grad_clip=null",
                                                 "train.epochs=3", "faults.nonfinite=skip"])
    r = trainwise.runner.train(cfg, run_dir=tmp_path / "run", quiet=True)
    nan = next(f for f in r.findings if f["code"] == "nan_loss")
    assert nan["severity"] == "error"
    assert nan["evidence"].get("first_nonfinite_layer", "").startswith(("body", "head"))


def test_overfit_batch_cli(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "trainwise", "doctor", "overfit-batch", "--preset", "digits-mlp",
                         "--json"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(ok.stdout)["passed"] is True
    bad = subprocess.run([sys.executable, "-m", "trainwise", "doctor", "overfit-batch", "--preset", "digits-mlp",
                          "model.hidden=[2]", "--steps", "60", "--json"], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert json.loads(bad.stdout)["passed"] is False


@pytest.mark.slow
def test_broken_configuration_suite(capsys: pytest.CaptureFixture) -> None:
    from trainwise.checkup.suite import run_suite, to_markdown

    res = run_suite()
    with capsys.disabled():
        print("\n" + to_markdown(res, "pytest tests/test_doctor.py::test_broken_configuration_suite"))
        print(f"doctor suite: precision={res['precision']:.2f} recall={res['recall']:.2f}")
    assert all(r["recalled"] for r in res["cases"]), [r for r in res["cases"] if not r["recalled"]]
    assert all(not h["raised"] for h in res["healthy"]), res["healthy"]
    assert res["precision"] >= 0.9

"""The ``trainwise`` command line end to end, through ``python -m trainwise`` in a temporary directory."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

PRESETS = ("digits-cnn", "digits-mlp", "breast-cancer-mlp", "wine-mlp", "diabetes-regression")
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "best.safetensors", "final.safetensors", "curves.png")


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data[:n].astype(np.float64), d.target[:n]


def _write_table_csv(path: Path, n: int, seed: int, with_label: bool = True) -> None:
    """Numeric columns (f1 with missing values), a categorical string column and a string target."""
    rng = np.random.default_rng(seed)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    label = np.where(f2 + (color == "red") > 0.3, "dog", "cat")
    f1[rng.choice(n, max(1, n // 10), replace=False)] = np.nan
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f1", "f2", "color", "label"] if with_label else ["f1", "f2", "color"])
        for i in range(n):
            row = ["" if math.isnan(f1[i]) else f"{f1[i]:.6f}", f"{f2[i]:.6f}", color[i]]
            w.writerow([*row, label[i]] if with_label else row)


# ---- help, version, listings -------------------------------------------------------------------------------------

def test_top_level_help_lists_commands(cli):
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("train", "presets", "models", "evaluate", "predict", "--version"):
        assert word in proc.stdout


@pytest.mark.parametrize(("command", "options"), [
    ("train", ("--preset", "--run-dir", "--quiet", "key=value", "CONFIG.yaml")),
    ("presets", ("usage:",)),
    ("models", ("pattern",)),
    ("evaluate", ("RUN_DIR", "--split", "--json")),
    ("predict", ("RUN_DIR", "INPUT", "--out", "--force")),
])
def test_command_help(cli, command, options):
    proc = cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")
    for opt in options:
        assert opt in proc.stdout, f"'{opt}' missing from 'trainwise {command} --help'"


def test_version_and_console_script(tmp_path):
    import trainwise

    proc = subprocess.run([sys.executable, "-m", "trainwise", "--version"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"trainwise {trainwise.__version__}"
    script = Path(sys.executable).with_name("trainwise")
    assert script.is_file(), "the 'trainwise' console script is not installed next to the interpreter"
    proc = subprocess.run([str(script), "presets"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "digits-cnn" in proc.stdout


def test_presets_lists_builtin_presets(cli):
    proc = cli("presets")
    assert proc.returncode == 0, proc.stderr
    listed = {}
    for line in proc.stdout.splitlines():
        name, _, description = line.partition(" ")
        listed[name] = description.strip()
    for name in PRESETS:
        assert name in listed, f"preset {name} not listed"
        assert listed[name], f"preset {name} has no description"


def test_models_lists_models_with_arguments(cli):
    proc = cli("models")
    assert proc.returncode == 0, proc.stderr
    blocks: dict[str, list[str]] = {}
    current = None
    for line in proc.stdout.splitlines():
        if line and not line[0].isspace():
            current = line.split(":", 1)[0]
            blocks[current] = []
        elif line.strip():
            assert current is not None
            blocks[current].append(line.strip())
    assert {"mlp", "cnn"} <= set(blocks)
    cnn_args = {a.split(":", 1)[0] for a in blocks["cnn"]}
    mlp_args = {a.split(":", 1)[0] for a in blocks["mlp"]}
    assert {"width", "stages", "blocks", "norm", "dropout"} <= cnn_args
    assert {"hidden", "dropout"} <= mlp_args
    assert any(re.fullmatch(r"width: int = 32", a) for a in blocks["cnn"])
    only_cnn = cli("models", "c*")
    assert only_cnn.returncode == 0 and "cnn:" in only_cnn.stdout and "mlp:" not in only_cnn.stdout


# ---- train: the run directory --------------------------------------------------------------------------------------

def test_train_writes_run_directory(digits_run):
    for name in RUN_FILES:
        assert (digits_run / name).is_file(), f"{name} missing from the run directory"
        assert (digits_run / name).stat().st_size > 0, f"{name} is empty"

    cfg = yaml.safe_load((digits_run / "config.yaml").read_text())
    assert cfg["name"] == "digits-mlp" and cfg["train"]["epochs"] == 2 and cfg["model"]["name"] == "mlp"

    events = [json.loads(line) for line in (digits_run / "metrics.jsonl").read_text().splitlines()]
    assert events
    for e in events:
        assert isinstance(e, dict)
        assert isinstance(e["step"], int) and isinstance(e["epoch"], int)
        assert e["split"] in ("train", "val", "test")
    assert {e["split"] for e in events} == {"train", "val", "test"}
    assert max(e["epoch"] for e in events) == 1

    s = _summary(digits_run)
    for key in ("test/accuracy", "test/loss", "val/loss", "val/accuracy", "epochs", "steps", "wall_seconds", "seed",
                "versions"):
        assert key in s, f"summary.json lacks {key}"
    assert s["epochs"] == 2 and s["seed"] == 0 and s["steps"] > 0
    assert 0.0 <= s["test/accuracy"] <= 1.0 and s["test/accuracy"] > 0.5
    assert s["wall_seconds"] >= 0
    assert "torch" in s["versions"] and "trainwise" in s["versions"]

    for name in ("best.safetensors", "final.safetensors"):
        tensors = load_file(str(digits_run / name))
        assert tensors and all(np.isfinite(t).all() for t in tensors.values())
    assert (digits_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_config_reproduces_the_run(cli, tmp_path, digits_run):
    proc = cli("train", digits_run / "config.yaml", "--run-dir", "R2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    r2 = tmp_path / "R2"
    a, b = _summary(digits_run), _summary(r2)
    metrics = [k for k in a if k.startswith(("test/", "val/"))]
    assert metrics
    for key in metrics:
        assert a[key] == b[key], f"{key}: {a[key]} != {b[key]}"
    assert (a["epochs"], a["steps"], a["seed"]) == (b["epochs"], b["steps"], b["seed"])
    assert (r2 / "config.yaml").read_text() == (digits_run / "config.yaml").read_text()
    wa, wb = load_file(str(digits_run / "best.safetensors")), load_file(str(r2 / "best.safetensors"))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    # The result lines name the run directory and the main metric.
    assert "run directory: R2" in proc.stdout
    shown = re.search(r"test/accuracy: ([0-9.]+)", proc.stdout)
    assert shown and abs(float(shown.group(1)) - b["test/accuracy"]) < 1e-4


def test_default_run_dir_is_under_cwd_runs(cli, tmp_path):
    proc = cli("train", "--preset", "digits-mlp", "train.epochs=1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    m = re.fullmatch(r"digits-mlp-(\d{8}-\d{6})", runs[0].name)
    assert m, runs[0].name
    stamp = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S")
    assert abs((datetime.now() - stamp).total_seconds()) < 3600
    assert (runs[0] / "summary.json").is_file()
    assert f"run directory: runs/{runs[0].name}" in proc.stdout


# ---- evaluate ----------------------------------------------------------------------------------------------------

def test_evaluate_matches_summary(cli, digits_run):
    s = _summary(digits_run)
    text = cli("evaluate", digits_run)
    assert text.returncode == 0, text.stderr
    shown = dict(line.split(": ", 1) for line in text.stdout.splitlines() if line.startswith("test/"))
    assert abs(float(shown["test/accuracy"]) - s["test/accuracy"]) < 5e-5 + 1e-6

    js = cli("evaluate", digits_run, "--json")
    assert js.returncode == 0, js.stderr
    metrics = json.loads(js.stdout)
    assert set(metrics) >= {"test/accuracy", "test/loss"}
    for key, value in metrics.items():
        assert key.startswith("test/")
        assert abs(value - s[key]) <= 1e-6, f"{key}: evaluate {value} vs summary {s[key]}"


def test_evaluate_val_split(cli, digits_run):
    s = _summary(digits_run)
    proc = cli("evaluate", digits_run, "--split", "val", "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics and all(k.startswith("val/") for k in metrics)
    # summary.json's val metrics are those of the best epoch, whose weights evaluate loads.
    assert abs(metrics["val/accuracy"] - s["val/accuracy"]) <= 1e-6
    assert abs(metrics["val/loss"] - s["val/loss"]) <= 1e-6


# ---- predict -----------------------------------------------------------------------------------------------------

def test_predict_npz_flat_and_image_shapes(cli, tmp_path, digits_run):
    x, y = _digits(50)
    np.savez(tmp_path / "flat.npz", x=x)  # (N, 64)
    np.savez(tmp_path / "image.npz", x=x.reshape(-1, 1, 8, 8))  # (N, 1, 8, 8)
    preds = {}
    for name in ("flat", "image"):
        proc = cli("predict", digits_run, f"{name}.npz")
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / f"{name}.predictions.csv"
        assert out.is_file(), proc.stdout
        rows = _read_csv(out)
        assert len(rows) == len(x)
        assert "prediction" in rows[0]
        preds[name] = [r["prediction"] for r in rows]
        probs = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    assert preds["flat"] == preds["image"]
    accuracy = np.mean([int(p) == t for p, t in zip(preds["flat"], y)])
    assert accuracy >= 0.8, accuracy


def test_predict_flat_npz_with_cnn_run(cli, tmp_path):
    """A CNN run takes raw digits given flat (N, 64) too: predict reshapes to the training input shape."""
    proc = cli("train", "train.epochs=1", "model.width=4", "model.stages=1", "data.augment=none", "--run-dir", "C",
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    x, _ = _digits(5)
    np.savez(tmp_path / "flat.npz", x=x)
    proc = cli("predict", "C", "flat.npz")
    assert proc.returncode == 0, proc.stderr
    assert len(_read_csv(tmp_path / "flat.predictions.csv")) == 5


# ---- CSV and regression --------------------------------------------------------------------------------------------

def test_csv_train_and_predict(cli, tmp_path):
    _write_table_csv(tmp_path / "data.csv", 200, seed=0)
    proc = cli("train", "--preset", "wine-mlp", "data.source=csv", "data.path=data.csv", "data.target=label",
               "train.epochs=2", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "R")
    assert 0.0 <= s["test/accuracy"] <= 1.0 and s["task"] == "classification"
    prep = json.loads((tmp_path / "R" / "preprocess.json").read_text())
    assert prep["cat_columns"] == ["color"] and prep["class_names"] == ["cat", "dog"]

    # New rows with the same feature columns (no target), a missing number and an unseen category.
    _write_table_csv(tmp_path / "new.csv", 9, seed=1, with_label=False)
    lines = (tmp_path / "new.csv").read_text().splitlines()
    lines[1] = ",0.5,purple"
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    proc = cli("predict", "R", "new.csv")
    assert proc.returncode == 0, proc.stderr
    rows = _read_csv(tmp_path / "new.predictions.csv")
    assert len(rows) == 9
    assert {r["prediction"] for r in rows} <= {"cat", "dog"}
    for r in rows:
        assert abs(float(r["prob_cat"]) + float(r["prob_dog"]) - 1.0) < 1e-4


def test_help_epilog_csv_example_runs(cli, tmp_path):
    """The CSV example from 'trainwise train --help', verbatim (plus a short run): it starts from the default
    digits-cnn preset and switches to the mlp model."""
    _write_table_csv(tmp_path / "data.csv", 200, seed=0)
    proc = cli("train", "data.source=csv", "data.path=data.csv", "data.target=label", "model.name=mlp",
               "train.epochs=2", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "test/accuracy" in _summary(tmp_path / "R")


def test_regression_run_reports_regression_metrics(cli, tmp_path):
    proc = cli("train", "--preset", "diabetes-regression", "train.epochs=2", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "R")
    for key in ("test/r2", "test/mae", "test/rmse"):
        assert isinstance(s[key], float) and math.isfinite(s[key]), key
    assert 0 < s["test/mae"] <= s["test/rmse"]
    assert s["task"] == "regression" and "test/accuracy" not in s
    assert re.search(r"^test/r2: -?[0-9.]+$", proc.stdout, re.M), proc.stdout


# ---- the default main job ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_default_main_job_reaches_target_accuracy(cli, tmp_path):
    proc = cli("train", timeout=900)  # exactly 'make run': preset digits-cnn, 30 epochs
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("digits-cnn-")
    s = _summary(runs[0])
    assert s["epochs"] == 30
    assert s["test/accuracy"] >= 0.985, s["test/accuracy"]


def test_positionals_may_follow_options(cli, tmp_path):
    (tmp_path / "my.yaml").write_text("train:\n  epochs: 1\n")
    proc = cli("train", "my.yaml", "--preset", "iris-mlp", "optim.lr=0.01", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    cfg = (tmp_path / "R" / "config.yaml").read_text()
    assert "name: iris-mlp" in cfg and "lr: 0.01" in cfg and "epochs: 1" in cfg

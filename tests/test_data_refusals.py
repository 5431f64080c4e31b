"""Data that must be refused, not trained on (issue 18 §4), and a data.path that must not be ignored.

Each refusal: exit 2, one ``error:`` line naming the file and what to do, nothing written in the working directory.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

NPZ = ("--preset", "wine-mlp", "data.source=npz", "data.path=d.npz")


def refused(cli, tmp_path: Path, snap, *args: str, needles: tuple[str, ...]) -> str:
    before = snap(tmp_path)
    proc: subprocess.CompletedProcess = cli("train", *args, "train.epochs=1", "--run-dir", "R", "--quiet")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snap(tmp_path) == before  # no run directory, no cache, nothing
    return lines[0]


def _xy(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_one_class_only(cli, tmp_path, snap):
    x, _ = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=np.full(len(x), 2))
    refused(cli, tmp_path, snap, *NPZ, needles=("d.npz", "one class"))


def test_one_class_only_with_string_labels(cli, tmp_path, snap):
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "label"])
        w.writerows([[i, i * 2, "cat"] for i in range(20)])
    refused(cli, tmp_path, snap, "--preset", "wine-mlp", "data.source=csv", "data.path=d.csv", "data.target=label",
            needles=("d.csv", "one class"))


def test_non_integer_labels_for_classification(cli, tmp_path, snap):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y + 0.5)
    refused(cli, tmp_path, snap, *NPZ, "data.task=classification", needles=("d.npz", "integers", "regression"))


def test_x_y_length_mismatch(cli, tmp_path, snap):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y[:-3])
    refused(cli, tmp_path, snap, *NPZ, needles=("d.npz", "60", "57"))


def test_object_array_in_npz_is_never_unpickled(cli, tmp_path, snap):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=np.array([str(v) for v in y], dtype=object))  # needs pickle to load
    refused(cli, tmp_path, snap, *NPZ, needles=("d.npz", "object", "numeric"))


def test_negative_labels_are_refused_not_renumbered(cli, tmp_path, snap):
    x, y = _xy()
    y[5] = -1
    np.savez(tmp_path / "d.npz", x=x, y=y)
    refused(cli, tmp_path, snap, *NPZ, needles=("d.npz", "-1"))


@pytest.mark.parametrize("path, needles", [
    ("missing.npz", ("missing.npz", "does not exist")),
    ("notes.txt", ("notes.txt", "data.source")),
    ("emptydir", ("emptydir", "data.source")),
])
def test_a_path_with_a_builtin_source_is_inferred_or_refused(cli, tmp_path, snap, path, needles):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "emptydir").mkdir()
    refused(cli, tmp_path, snap, "--preset", "digits-mlp", f"data.path={path}", needles=needles)


def test_a_path_given_to_a_preset_trains_on_that_file(cli, tmp_path):
    """digits-mlp names data.source=digits; data.path=d.npz must train on d.npz (4 features), not on digits."""
    x, y = _xy(90)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = cli("train", "--preset", "digits-mlp", "data.path=d.npz", "train.epochs=1", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    config = (tmp_path / "R" / "config.yaml").read_text()
    assert "source: npz" in config
    summary = json.loads((tmp_path / "R" / "summary.json").read_text())
    assert summary  # the run finished
    np.savez(tmp_path / "in.npz", x=x[:5])
    pred = cli("predict", "R", "in.npz")
    assert pred.returncode == 0, pred.stderr  # 4-feature inputs fit the model: it was built for d.npz


def test_gapped_labels_are_renumbered_and_predict_prints_the_originals(cli, tmp_path):
    """Labels {3, 7, 12}: the model has 3 outputs; predictions are spelled 3, 7 and 12 (documented in docs/data.md)."""
    rng = np.random.default_rng(1)
    centers = {3: -4.0, 7: 0.0, 12: 4.0}
    y = rng.choice([3, 7, 12], size=150)
    x = (np.array([centers[v] for v in y])[:, None] + rng.normal(scale=0.3, size=(150, 4))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = cli("train", *NPZ, "train.epochs=30", "--run-dir", "R", "--quiet")
    assert proc.returncode == 0, proc.stderr
    np.savez(tmp_path / "in.npz", x=x[:30])
    pred = cli("predict", "R", "in.npz", "--out", "p.csv")
    assert pred.returncode == 0, pred.stderr
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"prediction", "prob_3", "prob_7", "prob_12"}  # 3 outputs, not 13
    predicted = [int(r["prediction"]) for r in rows]
    assert set(predicted) <= {3, 7, 12}
    assert np.mean(np.array(predicted) == y[:30]) > 0.9  # well-separated clusters: the labels mean what they said

"""trainwise distill: the student learns from a finished teacher and is compared with its no-teacher twin."""

from __future__ import annotations

import json
from pathlib import Path


def test_distillation_beats_the_no_teacher_twin_on_a_fixed_seed(cli, tmp_path: Path):
    p = cli("train", "--preset", "digits-mlp", "train.epochs=10", "--run-dir", "T", "--quiet")
    assert p.returncode == 0, p.stderr
    p = cli("distill", "--teacher", "T", "model.hidden=[16]", "train.epochs=30", "optim.lr=0.003",
            "distill.alpha=0.5", "distill.temperature=2", "--run-dir", "D", "--quiet")
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "D" / "distill.json").read_text())
    assert r["student"]["params"] == r["no_teacher"]["params"] < r["teacher"]["params"] / 50
    assert r["student"]["value"] > r["no_teacher"]["value"], r  # same seed, same code path, alpha 0 vs 0.5
    assert r["gain"] == r["student"]["value"] - r["no_teacher"]["value"]
    for part in ("student", "no-teacher"):
        cfg = (tmp_path / "D" / part / "config.yaml").read_text()
        assert "name: distill" in cfg and "source: digits" in cfg
    assert "distillation gain" in p.stdout


def test_distill_without_a_teacher_run_is_one_clear_error(cli, tmp_path: Path):
    p = cli("distill", "--teacher", "nope", "--run-dir", "D")
    assert p.returncode == 2 and p.stderr.startswith("error: --teacher 'nope' is not a run directory")
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "D").exists()

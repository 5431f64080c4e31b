"""``profile=true``: a step-time breakdown written into the run directory; nothing at all with ``profile=false``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trainwise
from trainwise.data import loaders
from trainwise.train import checkpoint, loop, profile, step

N_TRAIN, BATCH = 1600, 64  # 25 optimizer steps per epoch


def _data() -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + 200, 64, generator=g)
    y = (x[:, :10]).argmax(1)
    return {"train": (x[:N_TRAIN], y[:N_TRAIN]), "val": (x[N_TRAIN:], y[N_TRAIN:])}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return trainwise.create_model("mlp", (64,), 10, hidden=[64, 64])


def _fit(tmp_path: Path, epochs: int, **options) -> trainwise.FitResult:
    return trainwise.fit(_model(), _data(), run_dir=tmp_path / "run", quiet=True, epochs=epochs,
                         **{"data.batch_size": BATCH, **options})


def test_profile_writes_breakdown(tmp_path: Path) -> None:
    result = _fit(tmp_path, 2, profile=True)  # 50 steps: 7 skipped, 20 recorded (one of them ends epoch 1)
    rd = result.run_dir
    report = json.loads((rd / "profile.json").read_text())
    assert (rd / "profile-trace.json").stat().st_size > 0 and report["trace"] == "profile-trace.json"
    assert report["steps_profiled"] == profile.ACTIVE_STEPS
    assert len(report["per_step_ms"]) == profile.ACTIVE_STEPS
    cats = report["categories"]
    assert set(cats) == set(profile.CATEGORIES)
    for c in ("data", "forward", "backward", "optimizer", "overhead"):
        assert cats[c]["median_ms"] > 0, c  # every phase of an ordinary step is seen
    # The categories partition each step: they sum to its wall time, and shares to 1.
    for row in report["per_step_ms"]:
        parts = sum(row[c] for c in profile.CATEGORIES)
        assert parts == pytest.approx(row["step"], rel=1e-3, abs=2e-3)
    assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0, abs=1e-3)
    assert report["step_ms"]["min"] <= report["step_ms"]["median"] <= report["step_ms"]["max"]
    # Step 25 ends epoch 1 inside the window: its evaluation and checkpoint are classified as epoch-end work.
    assert max(row["epoch_end"] for row in report["per_step_ms"]) > 0
    assert "profile: true" in (rd / "config.yaml").read_text()
    assert len(result.history) == 2 and result.summary["stopped"] == "completed"


def test_profile_leaves_nothing_installed(tmp_path: Path) -> None:
    """Profiling patches no function; its global hooks and the loop's label switch are gone afterwards."""
    from torch.nn.modules import module as module_mod
    from torch.optim import optimizer as optim_mod

    from trainwise.train import labels

    before = (loaders.InMemoryLoader.__iter__, loaders.DeviceDataLoader.__iter__, loop.evaluate,
              checkpoint.Checkpointer.save, step.Stepper.prepare,
              len(optim_mod._global_optimizer_post_hooks), len(module_mod._global_forward_hooks),
              len(module_mod._global_forward_pre_hooks))
    model = _model()
    result = trainwise.fit(model, _data(), run_dir=None, quiet=True, epochs=2, profile=True,
                           **{"data.batch_size": BATCH})
    after = (loaders.InMemoryLoader.__iter__, loaders.DeviceDataLoader.__iter__, loop.evaluate,
             checkpoint.Checkpointer.save, step.Stepper.prepare,
             len(optim_mod._global_optimizer_post_hooks), len(module_mod._global_forward_hooks),
             len(module_mod._global_forward_pre_hooks))
    assert after == before
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert not labels.ACTIVE
    assert result.summary["stopped"] == "completed"


def test_profile_same_training(tmp_path: Path) -> None:
    """Profiling observes; it changes no result."""
    a = trainwise.fit(_model(), _data(), run_dir=None, quiet=True, epochs=2, **{"data.batch_size": BATCH})
    b = trainwise.fit(_model(), _data(), run_dir=None, quiet=True, epochs=2, profile=True,
                      **{"data.batch_size": BATCH})
    assert [h["train/loss"] for h in a.history] == [h["train/loss"] for h in b.history]


def test_profile_too_few_steps(tmp_path: Path) -> None:
    result = _fit(tmp_path, 1, profile=True, **{"data.batch_size": 400})  # 4 steps: fewer than the skipped ones
    report = json.loads((result.run_dir / "profile.json").read_text())
    assert report["steps_profiled"] == 0 and "too few" in report["note"]


def test_profile_off_writes_nothing(tmp_path: Path) -> None:
    result = _fit(tmp_path, 1)
    assert not (result.run_dir / "profile.json").exists()
    assert not (result.run_dir / "profile-trace.json").exists()
    assert "profile: false" in (result.run_dir / "config.yaml").read_text()


def test_profile_off_imports_nothing() -> None:
    """Zero cost when off: the profiling module is not even imported by a default fit."""
    code = ("import sys, torch, trainwise\n"
            "x = torch.randn(200, 8); y = (x[:, 0] > 0).long()\n"
            "trainwise.fit(trainwise.create_model('mlp', (8,), 2, hidden=[8]), {'train': (x, y)}, run_dir=None, "
            "epochs=1)\n"
            "print('trainwise.train.profile' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_step_profiler_around_a_plain_loop() -> None:
    """The profiler works around any loop: module hooks, autograd events and Optimizer.step are enough."""
    model = _model()
    opt = torch.optim.AdamW(model.parameters())
    x, y = _data()["train"]
    with profile.StepProfiler(skip=2, warmup=1, active=5) as p:
        for s in range(0, 10 * BATCH, BATCH):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[s:s + BATCH]), y[s:s + BATCH]).backward()
            opt.step()
    report = p.report()
    assert report["steps_profiled"] == 5
    cats = report["categories"]
    assert cats["forward"]["mean_ms"] > 0 and cats["backward"]["mean_ms"] > 0 and cats["optimizer"]["mean_ms"] > 0
    assert "step-time breakdown" in profile.render(report)


def test_cli_profile(cli, tmp_path: Path) -> None:  # noqa: ANN001 - the conftest fixture
    out = cli("train", "--preset", "digits-mlp", "train.epochs=2", "profile=true", "--run-dir", "run")
    assert out.returncode == 0, out.stderr
    assert "step-time breakdown" in out.stdout and "backward" in out.stdout
    report = json.loads((tmp_path / "run" / "profile.json").read_text())
    assert report["steps_profiled"] > 0

"""Tracking backends: TensorBoard event files read back with TensorBoard's own reader, an MLflow SQLite store queried
with MlflowClient from a fresh process, a resumed run continuing the same MLflow run, and failing backends that
warn once and never stop training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainwise.config import compose
from trainwise.errors import TrainingInterrupted, TrainwiseError
from trainwise.run.tracking import Backend, Tracker, event_scalars

BOTH = "tracking.backends=[tensorboard,mlflow]"
# Short runs that still produce log-interval events and monitor samples (digits: 20 steps per epoch).
SHORT = ["train.log_every=5", "doctor.monitor_every=5", "train.early_stopping=false"]


def _accumulator(run: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # size_guidance 0: keep every event (the default samples scalars down to 10 000, histograms to 500)
    ea = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


def _query_store(uri: str, experiment: str = "trainwise") -> dict[str, Any]:
    """Everything about the experiment's runs, read by MlflowClient in a fresh interpreter (nothing cached here)."""
    script = """
import json, sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
exp = c.get_experiment_by_name(sys.argv[2])
out = []
for r in c.search_runs([exp.experiment_id]):
    rid = r.info.run_id
    metrics = {k: [(m.step, m.value) for m in c.get_metric_history(rid, k)] for k in r.data.metrics}
    out.append({"run_id": rid, "status": r.info.status, "params": r.data.params, "tags": r.data.tags,
                "metrics": metrics, "artifacts": sorted(a.path for a in c.list_artifacts(rid))})
print(json.dumps(out))
"""
    p = subprocess.run([sys.executable, "-c", script, uri, experiment], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return {r["run_id"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])}


def _train(tmp_path: Path, *overrides: str, callbacks: tuple = ()) -> Any:
    from trainwise.runner import setup
    from trainwise.train.loop import fit

    cfg = compose(preset="digits-mlp", overrides=["train.epochs=3", *SHORT, *overrides])
    splits, model, _, _ = setup(cfg)
    return fit(model, splits, config=cfg, run_dir=tmp_path / "run", callbacks=callbacks)


def test_tensorboard_events_read_back(tmp_path: Path) -> None:
    # Off by default (its per-epoch cost is not within noise: RESULTS.md "Tracking backends"); one key turns it on.
    assert list(compose(preset="digits-mlp").tracking.backends) == []
    assert not (_train(tmp_path / "off").run_dir / "tensorboard").exists()
    result = _train(tmp_path, "tracking.backends=[tensorboard]")
    ea = _accumulator(result.run_dir)
    tags = ea.Tags()
    scalars = set(tags["scalars"])
    assert {"train/loss", "epoch/train/loss", "epoch/train/accuracy", "val/loss", "val/accuracy", "lr",
            "test/accuracy"} <= scalars
    # epoch-end values equal the history the loop returned, one per epoch at the epoch's last step
    val = ea.Scalars("val/accuracy")
    assert [e.step for e in val] == [row["step"] for row in result.history]
    assert [e.value for e in val] == pytest.approx([row["val/accuracy"] for row in result.history], rel=1e-6)
    # log-interval train loss: one point per log_every optimizer steps
    assert [e.step for e in ea.Scalars("train/loss")] == list(range(5, result.summary["steps"] + 1, 5))
    # per-layer gradient norms from the live monitors: a scalar per layer and a histogram over layers
    layer_tags = [t for t in scalars if t.startswith("grad_norm/")]
    assert len(layer_tags) == 3  # mlp 64→256→256→10: three Linear layers
    hist = ea.Histograms("grad_norm/layers")
    assert hist and all(h.histogram_value.num == 3 for h in hist)
    assert ea.Scalars("final/test/accuracy")[0].value == pytest.approx(result.summary["test/accuracy"], rel=1e-6)
    # the diagnosis as text, the hparams with final metrics
    text = ea.Tensors("diagnosis/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "status" in text and "completed" in text
    for code in result.summary["findings"]:
        assert code in text
    hp = ea.PluginTagToContent("hparams")
    assert hp, "no hparams summary"
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"])
    assert data.session_start_info.hparams["optim.lr"].number_value == pytest.approx(1e-3)
    assert data.session_start_info.hparams["model.name"].string_value == "mlp"


def test_mlflow_store_holds_params_metrics_tags_artifacts(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    result = _train(tmp_path, BOTH, f"tracking.mlflow_uri={uri}", "tracking.experiment=exp1")
    saved = json.loads((result.run_dir / "mlflow.json").read_text())
    runs = _query_store(uri, "exp1")
    assert list(runs) == [saved["run_id"]]
    r = runs[saved["run_id"]]
    assert r["status"] == "FINISHED"
    assert r["params"]["optim.lr"] == "0.001" and r["params"]["model.hidden"] == "[256, 256]"
    assert r["params"]["train.epochs"] == "3"
    assert r["tags"]["trainwise.preset"] == "digits-mlp" and r["tags"]["trainwise.model"] == "mlp"
    assert r["tags"]["trainwise.status"] == "completed"
    assert r["tags"]["trainwise.findings"] == ",".join(result.summary["findings"])
    hist = sorted(r["metrics"]["val/loss"])
    assert [s for s, _ in hist] == [row["step"] for row in result.history]
    assert [v for _, v in hist] == pytest.approx([row["val/loss"] for row in result.history], rel=1e-6)
    assert len(r["metrics"]["train/loss"]) == result.summary["steps"] // 5
    assert r["metrics"]["final/test/accuracy"][0][1] == pytest.approx(result.summary["test/accuracy"], rel=1e-6)
    assert {"curves.png", "diagnosis.json", "best.safetensors", "summary.json"} <= set(r["artifacts"])
    assert (tmp_path / "artifacts").is_dir()  # a user's own SQLite store keeps artifacts beside it ...
    assert not (Path.cwd() / "mlruns").exists()  # ... never in ./mlruns of the directory the command ran from


def test_crash_mid_run_marks_the_mlflow_run_failed(tmp_path: Path) -> None:
    """An exception escaping the loop (here: a callback raising in epoch 2) leaves the MLflow run FAILED with the
    error as a tag, not RUNNING forever (issue 16)."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"

    def boom(event: dict) -> None:
        if event.get("epoch") == 1 and event.get("split") == "val":
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        _train(tmp_path, BOTH, f"tracking.mlflow_uri={uri}", callbacks=(boom,))
    (r,) = _query_store(uri).values()
    assert r["status"] == "FAILED"
    assert r["tags"]["trainwise.status"] == "failed" and "disk on fire" in r["tags"]["trainwise.error"]
    assert (tmp_path / "run" / "error.json").is_file()


def test_default_mlflow_store_is_sqlite_beside_the_runs(tmp_path: Path) -> None:
    result = _train(tmp_path, "tracking.backends=[mlflow]")
    db = tmp_path / "mlflow" / "mlflow.db"
    assert db.is_file()
    assert not (result.run_dir / "tensorboard").exists()
    runs = _query_store(f"sqlite:///{db}")
    assert len(runs) == 1
    r = next(iter(runs.values()))
    assert r["status"] == "FINISHED" and "curves.png" in r["artifacts"]
    assert (tmp_path / "mlflow" / "artifacts").is_dir()  # artifacts beside the store, not in ./mlruns of the cwd


def test_resumed_run_continues_the_same_mlflow_run_and_tensorboard_log(tmp_path: Path) -> None:
    from trainwise.runner import resume

    uri = f"sqlite:///{tmp_path / 'store.db'}"

    def interrupt_after_first_epoch(event: dict[str, Any]) -> None:
        if event.get("split") == "val" and event["epoch"] == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler: checkpoint, then TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        _train(tmp_path, BOTH, f"tracking.mlflow_uri={uri}", "checkpoint.epoch_min_seconds=0",
               callbacks=(interrupt_after_first_epoch,))
    run = tmp_path / "run"
    from trainwise.run.runs import describe

    assert describe(run)["status"] == "interrupted (resumable)"
    first = json.loads((run / "mlflow.json").read_text())["run_id"]
    before = _query_store(uri)[first]
    assert before["status"] == "KILLED" and before["tags"]["trainwise.status"] == "interrupted"
    assert len(before["metrics"]["val/loss"]) == 1

    # what a SIGKILLed process would leave: events logged after the checkpoint it resumes from (step 20)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run / "tensorboard")) as w:
        w.add_scalar("val/loss", 999.0, 30)

    result = resume(run, quiet=True)
    assert describe(run)["status"] == "completed" and not (run / "status.json").exists()
    runs = _query_store(uri)
    assert list(runs) == [first]  # no second MLflow run
    r = runs[first]
    assert r["status"] == "FINISHED" and r["tags"]["trainwise.status"] == "completed"
    assert sorted(s for s, _ in r["metrics"]["val/loss"]) == [row["step"] for row in result.history]
    ea = _accumulator(run)
    val = ea.Scalars("val/loss")  # the stale step-30 point is purged; each epoch appears once
    assert [e.step for e in val] == [row["step"] for row in result.history]
    assert [e.value for e in val] == pytest.approx([row["val/loss"] for row in result.history], rel=1e-6)


def test_unreachable_store_warns_once_and_training_completes(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    bad = tmp_path / "not-a-dir"
    bad.write_text("a file where the store's folder should be")
    result = _train(tmp_path, BOTH, f"tracking.mlflow_uri=sqlite:///{bad / 'store.db'}")
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: tracking backend")]
    assert len(warnings) == 1 and "mlflow" in warnings[0], err
    assert result.summary["stopped"] == "completed" and (result.run_dir / "summary.json").is_file()
    assert "val/loss" in _accumulator(result.run_dir).Tags()["scalars"]  # the other backend kept working


def test_missing_tensorboard_package_warns_and_trains(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    result = _train(tmp_path, "train.epochs=1", "tracking.backends=[tensorboard]")
    err = capfd.readouterr().err
    assert sum(line.startswith("warning: tracking backend tensorboard") for line in err.splitlines()) == 1, err
    assert result.summary["stopped"] == "completed"


class _Flaky(Backend):
    name = "flaky"

    def __init__(self, fail_at: int) -> None:
        self.calls, self.fail_at, self.closed = 0, fail_at, 0

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise OSError(28, "No space left on device")

    def finish(self, summary: dict[str, Any], findings: list[dict[str, Any]], run_dir: Path, status: str) -> None:
        raise AssertionError("a failed backend must not be called again")

    def close(self) -> None:
        self.closed += 1


def test_backend_failing_mid_run_is_reported_once_and_dropped(tmp_path: Path) -> None:
    warned: list[str] = []
    flaky, healthy = _Flaky(fail_at=2), _Flaky(fail_at=10**9)
    healthy.finish = lambda *a: None  # type: ignore[method-assign]
    tracker = Tracker([flaky, healthy], warn=warned.append)
    for step in range(1, 6):
        tracker({"step": step, "epoch": 0, "split": "train", "loss": 1.0 / step, "lr": 0.1})
    tracker.finish({"stopped": "completed"}, [], tmp_path)
    assert len(warned) == 1 and "flaky" in warned[0] and "No space left" in warned[0]
    assert flaky.calls == 2 and flaky.closed == 1
    assert healthy.calls == 5 and healthy.closed == 1


def test_event_scalars_names() -> None:
    assert event_scalars({"step": 5, "epoch": 0, "split": "train", "loss": 0.5, "lr": 0.1, "grad_norm": 2.0}) == {
        "train/loss": 0.5, "train/grad_norm": 2.0}
    assert event_scalars({"step": 20, "epoch": 0, "split": "train", "epoch_end": True, "loss": 0.4,
                          "accuracy": 0.9, "lr": 0.1}) == {"epoch/train/loss": 0.4, "epoch/train/accuracy": 0.9,
                                                            "lr": 0.1}
    assert event_scalars({"step": 3, "epoch": 0, "split": "train", "event": "nonfinite_skipped", "batch": 2}) == {}


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(TrainwiseError, match="did you mean 'mlflow'"):
        compose(preset="digits-mlp", overrides=["tracking.backends=[mlfow]"])


@pytest.mark.slow
def test_under_ddp_only_rank_0_logs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainwise",
           "train", "--preset", "digits-mlp", "train.epochs=2", BOTH, f"tracking.mlflow_uri={uri}", "--run-dir",
           "ddp", "--quiet"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "warning: tracking" not in p.stderr
    assert len(list((tmp_path / "ddp" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    steps = [e.step for e in _accumulator(tmp_path / "ddp").Scalars("val/loss")]
    assert steps == [row["step"] for row in history] and len(steps) == 2  # no second copy from rank 1
    runs = _query_store(uri)
    assert len(runs) == 1 and len(next(iter(runs.values()))["metrics"]["val/loss"]) == 2

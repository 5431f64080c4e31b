"""Exact resume after real SIGKILLs, transactional checkpoints, safe loading, and fault handling."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainwise
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import load_weights
from trainwise.train.checkpoint import (
    flatten_optimizer,
    latest_valid,
    list_checkpoints,
    unflatten_optimizer,
    verify,
)

PY = sys.executable


def _cmd(*args: str) -> list[str]:
    return [PY, "-m", "trainwise", *args]


def _run(args: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def _newest(run: Path) -> str:
    ckpts = list_checkpoints(run / "checkpoints")
    return ckpts[-1].name if ckpts else ""


def _kill_and_resume(cwd: Path, train_args: list[str], run: Path, kills: int, rng: random.Random,
                     env: dict | None = None, during_write: int = 0) -> int:
    """Start training, SIGKILL it at random moments after progress, resume each time; returns kills done.

    The first ``during_write`` kills land while a checkpoint is being written (a temporary folder exists).
    """
    proc = subprocess.Popen(_cmd("train", *train_args, "--run-dir", str(run), "--quiet"), cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = 0
    while done < kills:
        seen = _newest(run)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:  # wait for fresh progress
            if during_write > done:  # once a valid checkpoint exists, kill while the next one is half-written
                root = run / "checkpoints"
                if root.is_dir() and list(root.glob(".tmp-*")) and latest_valid(root) is not None:
                    break
            elif _newest(run) != seen:
                time.sleep(rng.uniform(0.0, 0.25))
                break
            time.sleep(0.01)
        if proc.poll() is not None:  # the run finished before we could kill it
            break
        proc.kill()
        proc.wait()
        done += 1
        assert not (run / "summary.json").exists()
        proc = subprocess.Popen(_cmd("resume", str(run), "--quiet"), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    return done


def _assert_identical(a: Path, b: Path) -> None:
    la = (a / "metrics.jsonl").read_text().splitlines()
    lb = (b / "metrics.jsonl").read_text().splitlines()
    first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), None)
    assert first is None, f"metrics.jsonl differs from line {first}:\n{la[first]}\n{lb[first]}"
    assert len(la) == len(lb)  # same values for every step, no duplicated or missing steps
    assert (a / "final.safetensors").read_bytes() == (b / "final.safetensors").read_bytes()
    assert (a / "best.safetensors").read_bytes() == (b / "best.safetensors").read_bytes()
    sa, sb = json.loads((a / "summary.json").read_text()), json.loads((b / "summary.json").read_text())
    assert sa["test/accuracy"] == sb["test/accuracy"]


@pytest.mark.slow
def test_sigkill_resume_fast_path_bit_exact(tmp_path: Path) -> None:
    # dropout + in-loop random augmentation (shift) + mid-epoch checkpoints every 7 steps
    args = ["--preset", "digits-mlp", "train.epochs=30", "train.patience=100", "checkpoint.every_steps=7",
            "data.augment=shift", "model.name=cnn", "model.width=8", "model.dropout=0.2"]
    _run(_cmd("train", *args, "--run-dir", "ref", "--quiet"), tmp_path)
    env = dict(os.environ, TRAINWISE_TEST_CHECKPOINT_DELAY="0.3")
    kills = _kill_and_resume(tmp_path, args, tmp_path / "killed", kills=10, rng=random.Random(0), env=env,
                             during_write=2)
    assert kills >= 10
    _assert_identical(tmp_path / "ref", tmp_path / "killed")


@pytest.mark.slow
def test_sigkill_resume_dataloader_workers_bit_exact(tmp_path: Path) -> None:
    args = ["--preset", "digits-mlp", "train.epochs=25", "train.patience=100", "checkpoint.every_steps=5",
            "data.loader=dataloader", "data.num_workers=2", "model.dropout=0.3", "schedule.name=onecycle"]
    # Known limitation (README, issue note): with 2 workers competing for this 2-core machine, a multi-threaded CPU
    # kernel occasionally rounds differently even between two *uninterrupted* runs (seen in 1 of 3 repeats of this
    # test; root cause not yet found). One intra-op thread removes that; resume itself is what this test checks.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _run(_cmd("train", *args, "--run-dir", "ref", "--quiet"), tmp_path, env=env)
    kills = _kill_and_resume(tmp_path, args, tmp_path / "killed", kills=10, rng=random.Random(1), env=env)
    assert kills >= 10
    _assert_identical(tmp_path / "ref", tmp_path / "killed")


def test_sigterm_saves_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    args = ["--preset", "digits-mlp", "train.epochs=200", "train.early_stopping=false",
            "checkpoint.epoch_min_seconds=0"]  # a checkpoint per epoch end: the cue that training is under way
    proc = subprocess.Popen(_cmd("train", *args, "--run-dir", "run", "--quiet"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _newest(tmp_path / "run") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "trainwise resume" in err
    assert latest_valid(tmp_path / "run" / "checkpoints") is not None
    assert not (tmp_path / "run" / "summary.json").exists()


def _short_run(tmp_path: Path, name: str = "run", **extra: object) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    torch.manual_seed(0)  # the initial weights must not depend on which tests ran before in this process
    model = trainwise.create_model("mlp", (64,), 10, hidden=[32])
    opts = {"epochs": 3, "checkpoint.every_steps": 5, "checkpoint.keep": 10, **extra}
    trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / name, **opts)
    return tmp_path / name


def test_corrupted_checkpoints_are_skipped(tmp_path: Path) -> None:
    run = _short_run(tmp_path)
    ckpts = list_checkpoints(run / "checkpoints")
    assert len(ckpts) >= 4 and all(verify(c) is None for c in ckpts)
    newest, second, third = ckpts[-1], ckpts[-2], ckpts[-3]
    # truncated file
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    assert "truncated" in (verify(newest) or "")
    # bit flip (same size)
    g = second / "optimizer.safetensors"
    raw = bytearray(g.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    g.write_bytes(bytes(raw))
    assert "sha256" in (verify(second) or "")
    report: list[str] = []
    assert latest_valid(run / "checkpoints", report) == third
    assert len(report) == 2
    # missing manifest
    (third / "manifest.json").unlink()
    assert "no manifest" in (verify(third) or "")
    assert latest_valid(run / "checkpoints") == ckpts[-4]


def test_resume_skips_torn_newest_checkpoint(tmp_path: Path) -> None:
    # One intra-op thread: the same low-bit run-to-run variation documented for the workers test was seen once here
    # on a fresh-clone CI run with 2 threads; this test is about skipping the torn checkpoint.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _run(_cmd("train", "--preset", "digits-mlp", "train.epochs=3", "checkpoint.every_steps=5",
              "checkpoint.keep=5", "--run-dir", "run", "--quiet"), tmp_path, env=env)
    run = tmp_path / "run"
    ref_final = (run / "final.safetensors").read_bytes()
    ckpts = list_checkpoints(run / "checkpoints")
    (ckpts[-1] / "manifest.json").unlink()  # the newest is torn
    (run / "summary.json").unlink()
    p = _run(_cmd("resume", "run"), tmp_path, env=env)
    assert f"skipped checkpoint {ckpts[-1].name}: no manifest" in p.stdout
    assert (run / "final.safetensors").read_bytes() == ref_final


def test_resuming_a_finished_run_is_refused(digits_run: Path, snap) -> None:
    before = snap(digits_run)
    p = _run(_cmd("resume", str(digits_run)), digits_run.parent, check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and "already finished" in p.stderr and "init_from" in p.stderr
    assert snap(digits_run) == before  # nothing rewritten


def test_resume_without_valid_checkpoint_exits_2(tmp_path: Path) -> None:
    _run(_cmd("train", "--preset", "digits-mlp", "train.epochs=1", "--run-dir", "run", "--quiet"), tmp_path)
    for c in list_checkpoints(tmp_path / "run" / "checkpoints"):
        (c / "manifest.json").unlink()
    (tmp_path / "run" / "summary.json").unlink()  # as if killed before the end: a finished run is refused earlier
    p = _run(_cmd("train", "--resume", "run"), tmp_path, check=False)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: no valid checkpoint")
    assert len(p.stderr.strip().splitlines()) == 1


def test_checkpoints_command_lists_and_flags(tmp_path: Path) -> None:
    run = _short_run(tmp_path)
    ckpts = list_checkpoints(run / "checkpoints")
    (ckpts[0] / "manifest.json").unlink()
    p = _run(_cmd("checkpoints", str(run), "--json"), tmp_path)
    rows = json.loads(p.stdout)
    assert [r["name"] for r in rows] == [c.name for c in ckpts]
    assert rows[0]["verified"] is False and all(r["verified"] for r in rows[1:])
    assert all(r["epoch"] >= 0 for r in rows[1:])
    p = _run(_cmd("checkpoints", str(run)), tmp_path)
    assert "NO: no manifest" in p.stdout


def test_epoch_min_seconds_skips_epoch_end_checkpoints_but_not_the_last(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from trainwise.config import compose
    from trainwise.runner import train

    def run(name: str, *gap: str) -> list[str]:
        cfg = compose(preset="wine-mlp", overrides=["train.epochs=4", "checkpoint.keep=100", *gap])
        r = train(cfg, run_dir=tmp_path / name, quiet=True)
        assert (tmp_path / name / "best.safetensors").is_file() and r.summary["epochs"] == 4
        return [c.name for c in list_checkpoints(tmp_path / name / "checkpoints")]

    every = run("every", "checkpoint.epoch_min_seconds=0")
    gated = run("gated", "checkpoint.epoch_min_seconds=3600")
    default = run("default")  # 30 s: a run this short checkpoints once
    assert len(every) == 4  # one per epoch end
    assert gated == every[-1:] and default == every[-1:]  # only the end of training
    # best.safetensors is written with the checkpoints, not at every improved epoch: same weights either way
    best = {name: load_file(tmp_path / name / "best.safetensors") for name in ("every", "gated", "default")}
    for other in ("gated", "default"):
        assert best[other].keys() == best["every"].keys()
        assert all(torch.equal(best[other][k], best["every"][k]) for k in best["every"])


@pytest.mark.parametrize("ema", [False, True], ids=["model", "ema"])
def test_best_weights_taken_at_the_checkpoint_are_stored_once_and_resume_exactly(tmp_path: Path, ema: bool) -> None:
    """An epoch-end checkpoint right after the best epoch stores the best weights as an alias of the model's (or the
    EMA's) tensors; a crash after it resumes to the same final, best weights and metrics."""
    import shutil

    from trainwise.config import compose
    from trainwise.runner import resume, train

    cfg = compose(preset="wine-mlp", overrides=["train.epochs=4", "checkpoint.keep=100",
                                                "checkpoint.epoch_min_seconds=0",
                                                *(["train.ema_decay=0.9"] if ema else [])])
    run = tmp_path / "run"
    train(cfg, run_dir=run, quiet=True)
    ref = {f: (run / f).read_bytes() for f in ("final.safetensors", "best.safetensors", "metrics.jsonl")}
    ckpts = list_checkpoints(run / "checkpoints")
    states = [json.loads((c / "state.json").read_text()) for c in ckpts]
    aliased = [i for i, st in enumerate(states) if st.get("best_alias")]
    assert aliased and all(st["best_alias"] == ("ema" if ema else "model") for st in map(states.__getitem__, aliased))
    for i in aliased:  # no second copy of the best weights in the file
        names = json.loads((ckpts[i] / "manifest.json").read_text())["files"]
        assert "extra.safetensors" in names
        from safetensors import safe_open

        with safe_open(ckpts[i] / "extra.safetensors", "pt") as f:
            assert not [k for k in f.keys() if k.startswith("best.")]
    first = aliased[0]
    assert first < len(ckpts) - 1, "want a crash after an aliased checkpoint that is not the last one"
    for c in ckpts[first + 1:]:
        shutil.rmtree(c)
    for f in ("final.safetensors", "summary.json", "best.safetensors"):
        (run / f).unlink(missing_ok=True)
    resume(run, quiet=True)
    for f, data in ref.items():
        assert (run / f).read_bytes() == data, f


def test_keep_prunes_old_checkpoints_but_keeps_best(tmp_path: Path) -> None:
    # A checkpoint every epoch end and every 5 steps, the newest 2 kept, val loss bottoming out before the last epoch
    # (lr 0.01 overfits the 32-unit MLP): the best epoch's checkpoint must survive the pruning.
    run = _short_run(tmp_path, **{"checkpoint.keep": 2, "checkpoint.epoch_min_seconds": 0, "epochs": 8,
                                  "early_stopping": False, "optim.lr": 0.01, "monitor": "val/loss"})
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] < 8, "precondition: the best epoch is not the last one"
    names = [c.name for c in list_checkpoints(run / "checkpoints")]
    state = json.loads((run / "checkpoints" / names[-1] / "state.json").read_text())
    best = state["loop"]["best_ckpt"]
    assert best in names and best not in names[-2:]
    assert len(names) == 3
    best_state = json.loads((run / "checkpoints" / best / "state.json").read_text())
    assert best_state["loop"]["epoch"] == summary["best_epoch"] and best_state["loop"]["pos"] == 0


def test_nothing_written_is_a_pickle(tmp_path: Path) -> None:
    run = _short_run(tmp_path)
    for path in run.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert head != b"\x80\x04" and head != b"\x80\x02", f"{path} looks like a pickle"
            assert not path.name.endswith((".pt", ".pth", ".pkl", ".ckpt"))


class _Payload:
    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_rejected_and_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "weights.pt"
    with open(bad, "wb") as f:
        pickle.dump({"w": _Payload()}, f)
    with pytest.raises(TrainwiseError, match="refusing to load"):
        load_weights(bad)
    assert not (tmp_path / "PWNED").exists()
    # a checkpoint whose safetensors file was replaced by a pickle payload is rejected by its hash, never parsed
    run = _short_run(tmp_path)
    newest = list_checkpoints(run / "checkpoints")[-1]
    with open(newest / "model.safetensors", "wb") as f:
        pickle.dump(_Payload(), f)
    assert verify(newest) is not None
    assert not (tmp_path / "PWNED").exists()
    # a plain state dict .pt loads (weights_only)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_weights(good)["w"], torch.ones(2))


def test_optimizer_state_round_trips_without_pickle() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, plain = flatten_optimizer(opt.state_dict())
    json.dumps(plain)
    restored = unflatten_optimizer(tensors, json.loads(json.dumps(plain)))
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(restored)
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(v, opt2.state_dict()["state"][0][k])


def test_failed_checkpoint_write_keeps_previous_and_continues(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import trainwise.train.checkpoint as ck

    real = ck.save_file
    calls = {"n": 0}

    def flaky(tensors, path):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] in (4, 5, 6):  # the second checkpoint's three files
            raise OSError(28, "No space left on device")
        return real(tensors, path)

    monkeypatch.setattr(ck, "save_file", flaky)
    from sklearn.datasets import load_digits

    d = load_digits()
    model = trainwise.create_model("mlp", (64,), 10, hidden=[32])
    res = trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / "run", epochs=2, **{"checkpoint.every_steps": 5})
    assert res.summary["checkpoint_failures"] >= 1
    assert res.summary["stopped"] == "completed"
    assert all(verify(c) is None for c in list_checkpoints(tmp_path / "run" / "checkpoints"))
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))


def test_failed_checkpoint_write_can_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainwise.train.checkpoint as ck

    def full(tensors, path):  # noqa: ANN001, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_file", full)
    from sklearn.datasets import load_digits

    d = load_digits()
    model = trainwise.create_model("mlp", (64,), 10, hidden=[32])
    with pytest.raises(TrainwiseError, match="No space left"):
        trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / "run", epochs=2,
                      **{"checkpoint.on_error": "stop"})


class _NaNAt(torch.nn.Module):
    """Wraps a model; forward calls numbered in ``bad`` return NaN (a fault injected from outside the loop)."""

    def __init__(self, inner: torch.nn.Module, bad: set[int]) -> None:
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls in self.bad:
                return out * float("nan")
        return out


def test_nan_steps_are_skipped_then_rolled_back(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    torch.manual_seed(0)
    # 20 steps per epoch; calls 25..27 are three bad steps in a row in epoch 2 → rollback to the step-20 checkpoint
    model = _NaNAt(trainwise.create_model("mlp", (64,), 10, hidden=[32]), bad={12, 25, 26, 27})
    events: list[dict] = []
    res = trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / "run", epochs=3, callbacks=[events.append],
                        **{"checkpoint.every_steps": 10, "faults.nonfinite": "skip", "faults.max_bad_steps": 3,
                           "optim.lr": 0.01})
    assert res.summary["nonfinite_skipped_steps"] == 4
    assert res.summary["rollbacks"] == 1
    assert res.summary["stopped"] == "completed"
    assert res.summary["test/accuracy"] > 0.8
    assert any(e.get("event") == "rollback" for e in events)
    skipped = [e for e in events if e.get("event") == "nonfinite_skipped"]
    assert len(skipped) == 4 and all("batch" in e for e in skipped)
    for p in res.model.parameters():
        assert torch.isfinite(p).all()


def test_rollback_before_the_first_checkpoint_restarts_from_the_start_of_the_run(tmp_path: Path) -> None:
    """Epoch-end checkpoints are time-gated (30 s by default), so a short run has none when its first fault streak
    comes: the rollback target is then the state before step 1, kept in memory."""
    from sklearn.datasets import load_digits

    d = load_digits()
    torch.manual_seed(0)
    model = _NaNAt(trainwise.create_model("mlp", (64,), 10, hidden=[32]), bad={25, 26, 27})  # epoch 2
    events: list[dict] = []
    res = trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / "run", epochs=3, callbacks=[events.append],
                        **{"faults.nonfinite": "skip", "faults.max_bad_steps": 3, "optim.lr": 0.01})
    assert not list_checkpoints(tmp_path / "run" / "checkpoints")[:-1]  # only the end-of-training one
    assert res.summary["rollbacks"] == 1 and res.summary["stopped"] == "completed"
    rollback = [e for e in events if e.get("event") == "rollback"]
    assert len(rollback) == 1 and rollback[0]["step"] == 0 and rollback[0]["lr_scale"] == 0.5
    assert res.summary["epochs"] == 3 and res.summary["test/accuracy"] > 0.8


def test_a_non_finite_stop_still_writes_the_best_weights(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    torch.manual_seed(0)
    model = _NaNAt(trainwise.create_model("mlp", (64,), 10, hidden=[32]), bad={25})  # epoch 2, after epoch 1 improved
    res = trainwise.fit(model, (d.data, d.target), run_dir=tmp_path / "run", epochs=3,
                        **{"faults.nonfinite": "stop"})
    assert res.summary["stopped"] == "non_finite_loss" and res.summary["best_epoch"] == 1
    best = load_weights(tmp_path / "run" / "best.safetensors")
    assert all(torch.isfinite(v).all() for v in best.values())


def test_a_mid_epoch_checkpoint_writes_the_unsaved_best_weights(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 improves without a checkpoint (gated); a signal in epoch 2 saves one mid-epoch: best.safetensors must
    be written with it, holding the checkpoint's best weights."""
    from sklearn.datasets import load_digits

    from trainwise.errors import TrainingInterrupted
    from trainwise.train import step as step_mod
    from trainwise.train.checkpoint import read_checkpoint

    real, calls = step_mod.Stepper.step, {"n": 0}

    def step(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 30:  # epoch 2 (≈ 20 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(step_mod.Stepper, "step", step)
    d = load_digits()
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted):
        trainwise.fit(trainwise.create_model("mlp", (64,), 10, hidden=[32]), (d.data, d.target),
                      run_dir=tmp_path / "run", epochs=3)
    (ckpt,) = list_checkpoints(tmp_path / "run" / "checkpoints")
    data = read_checkpoint(ckpt)
    assert data.state["loop"]["pos"] > 0 and data.state["loop"]["best_epoch"] == 0  # mid-epoch 2; best = epoch 1
    best = load_weights(tmp_path / "run" / "best.safetensors")
    stored = {k[len("best."):]: v for k, v in data.tensors["extra"].items() if k.startswith("best.")}
    assert stored.keys() == best.keys() and all(torch.equal(stored[k], best[k]) for k in best)


def test_identical_tells_signed_zeros_apart() -> None:
    from trainwise.train.checkpoint import _identical, _same_tensors

    z, nz = torch.zeros(3), torch.tensor([0.0, -0.0, 0.0])
    assert torch.equal(z, nz) and not _identical(z, nz)
    assert _same_tensors({"w": z}, "model", {"w": z.clone()}) == "model"
    assert _same_tensors({"w": z}, "model", {"w": nz}) is None
    assert _same_tensors({"w": torch.tensor([float("nan")])}, "model", {"w": torch.tensor([float("nan")])}) is None


def test_the_hashing_thread_survives_a_fork(tmp_path: Path) -> None:
    from trainwise.train.checkpoint import _write_bytes

    blob = os.urandom(5 << 20)  # over the threshold: hashed on the helper thread
    want = _write_bytes(tmp_path / "a", blob)["sha256"]
    pid = os.fork()
    if pid == 0:  # the child inherits the pool object but not its thread
        try:
            ok = _write_bytes(tmp_path / "b", blob)["sha256"] == want
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung hashing a blob")


def test_nan_without_checkpoint_stops_cleanly(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    model = _NaNAt(trainwise.create_model("mlp", (64,), 10, hidden=[32]), bad=set(range(3, 1000)))
    res = trainwise.fit(model, (d.data, d.target), run_dir=None, epochs=3, **{"faults.nonfinite": "skip"})
    assert res.summary["stopped"] == "non_finite_loss"
    for p in res.model.parameters():
        assert torch.isfinite(p).all()

"""data.source=npy: x.npy read through a memory map, never whole (issue 18 §3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trainwise.train.checkpoint import list_checkpoints

PY = sys.executable
# Runs the CLI under a cap on the process's *anonymous* memory (RLIMIT_DATA: heap and private writable mappings; a
# read-only file mapping is not counted). A warm-up run on a tiny dataset first, so every import and allocator arena
# training needs exists before the cap is measured: the cap is then "what training needed already" + CAP bytes.
CAPPED = """
import os, resource, sys
import trainwise.cli
warm = ["train", "--preset", "wine-mlp", "data.path=" + sys.argv[2], "train.epochs=1", "--run-dir",
        f"warm-{os.getpid()}", "--quiet"]
if trainwise.cli.main(warm):
    sys.exit(3)
vmdata = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmData:"))
cap = vmdata + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
sys.exit(trainwise.cli.main(sys.argv[3:]))
"""
CAP = 24 << 20
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
ARGS = ["--preset", "wine-mlp", "data.path=big", "train.epochs=2", "data.batch_size=512", "checkpoint.every_steps=20",
        "train.early_stopping=false"]


def _write(d: Path, n: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int64)
    x = rng.normal(size=(n, features)).astype(np.float32)
    x[:, :4] += y[:, None].astype(np.float32)  # learnable from the first features
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return x, y


def _capped(cwd: Path, *args: str) -> list[str]:
    return [PY, "-c", CAPPED, str(CAP), "warm_data", *args]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.mark.slow
def test_npy_larger_than_the_memory_cap_trains_is_killed_and_resumes_bit_exactly(tmp_path: Path) -> None:
    x, y = _write(tmp_path / "big", 52_000, 256)  # x.npy: 53 MB, over twice the cap
    assert x.nbytes > 2 * CAP
    _write(tmp_path / "warm_data", 300, 256, seed=1)
    np.savez(tmp_path / "big.npz", x=x, y=y)
    del x

    # The cap is real: the same array loaded into memory (data.source=npz) does not fit under it.
    control = _run(_capped(tmp_path, "train", *ARGS, "data.path=big.npz", "--run-dir", "npz", "--quiet"), tmp_path)
    assert control.returncode != 0 and "MemoryError" in control.stderr + control.stdout

    ref = _run([PY, "-m", "trainwise", "train", *ARGS, "--run-dir", "ref", "--quiet"], tmp_path)
    assert ref.returncode == 0, ref.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(_capped(tmp_path, "train", *ARGS, "--run-dir", "killed", "--quiet"), cwd=tmp_path,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and \
            len(list_checkpoints(run / "checkpoints") if (run / "checkpoints").is_dir() else []) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1].decode()  # still training, under the cap
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    resumed = _run(_capped(tmp_path, "resume", "killed", "--quiet"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    assert (tmp_path / "ref" / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert (tmp_path / "ref" / "final.safetensors").read_bytes() == (run / "final.safetensors").read_bytes()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] and summary["test/accuracy"] > 0.5  # it learned from the map (chance: 0.25)


def test_npy_given_splits_workers_and_predict(cli, tmp_path: Path) -> None:
    """x_val.npy/y_val.npy are used as the val split; 0 and 2 workers train identically; labels {3, 7, 12} keep their
    names; predict takes raw feature arrays."""
    x, y = _write(tmp_path / "d", 900, 8)
    y = np.array([3, 7, 12, 12])[y]
    np.save(tmp_path / "d" / "y.npy", y)
    np.save(tmp_path / "d" / "x_val.npy", x[:100])
    np.save(tmp_path / "d" / "y_val.npy", y[:100])
    runs = {}
    for w in (0, 2):
        proc = cli("train", "--preset", "wine-mlp", "data.source=npy", "data.path=d", "train.epochs=2",
                   f"data.num_workers={w}", "--run-dir", f"w{w}", "--quiet")
        assert proc.returncode == 0, proc.stderr
        runs[w] = [json.loads(line) for line in (tmp_path / f"w{w}" / "metrics.jsonl").read_text().splitlines()]
    strip = [{k: v for k, v in r.items() if "time" not in k and "second" not in k and k != "samples_per_s"}
             for r in runs[0]]
    assert strip == [{k: v for k, v in r.items() if "time" not in k and "second" not in k and k != "samples_per_s"}
                     for r in runs[2]]
    prep = json.loads((tmp_path / "w0" / "preprocess.json").read_text())
    assert prep["class_names"] == ["3", "7", "12"]
    np.savez(tmp_path / "in.npz", x=x[:5])
    pred = cli("predict", "w0", "in.npz", "--out", "p.csv")
    assert pred.returncode == 0, pred.stderr
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("prediction")

"""Data-parallel training through torchrun on CPU/gloo: sharding, equivalence with one process, exact DDP resume.

The multi-process tests launch ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m trainwise …``
— the command users run — and compare run directories. FSDP2 runs on CPU/gloo too and is checked for the same
equivalence (its GPU path is checked by benchmarks/gpu_distributed.py where a GPU exists).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainwise.data.loaders import DeviceDataLoader, InMemoryLoader, shard
from trainwise.train.checkpoint import list_checkpoints

PY = sys.executable


def _torchrun(*args: str, n: int = 2) -> list[str]:
    return [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "trainwise", *args]


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


# ---- sharding (in-process) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 11, 64, 97])
def test_shards_cover_the_global_order_once_padded(n: int) -> None:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    parts = [shard(order, r, 3) for r in range(3)]
    assert len({len(p) for p in parts}) == 1  # every rank runs the same number of steps
    joined = torch.cat(parts)
    assert set(joined.tolist()) == set(order.tolist())
    assert len(joined) - n == -n % 3  # padding repeats at most world-1 samples


@pytest.mark.parametrize("drop_last", [False, True])
def test_w_ranks_of_batch_b_see_one_batch_of_w_times_b(drop_last: bool) -> None:
    n, b, w = 100, 8, 2  # 100 samples: 50 per rank, a ragged last batch of 2 per rank (4 for one process)
    x, y = torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n)
    dev = torch.device("cpu")
    one = InMemoryLoader(x, y, w * b, shuffle=True, drop_last=drop_last, seed=3, device=dev)
    ranks = [InMemoryLoader(x, y, b, shuffle=True, drop_last=drop_last, seed=3, device=dev, rank=r, world=w)
             for r in range(w)]
    for loader in (one, *ranks):
        loader.set_epoch(4)
    batches = list(one)
    per_rank = [list(r) for r in ranks]
    assert all(len(p) == len(batches) for p in per_rank)
    for i, (xb, _) in enumerate(batches):
        union = torch.cat([p[i][0] for p in per_rank])
        assert sorted(union.flatten().tolist()) == sorted(xb.flatten().tolist())


def test_dataloader_path_shards_the_same_way() -> None:
    n, b = 30, 4
    ds = torch.utils.data.TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n))
    dev = torch.device("cpu")
    mem = [InMemoryLoader(ds.tensors[0], ds.tensors[1], b, shuffle=True, drop_last=False, seed=1, device=dev,
                          rank=r, world=2) for r in range(2)]
    dl = [DeviceDataLoader(ds, b, shuffle=True, drop_last=False, seed=1, device=dev, rank=r, world=2)
          for r in range(2)]
    for m, d in zip(mem, dl):
        m.set_epoch(2)
        d.set_epoch(2)
        assert len(m) == len(d)
        assert [xb.flatten().tolist() for xb, _ in m] == [xb.flatten().tolist() for xb, _ in d]


# ---- bad input -----------------------------------------------------------------------------------------------------


def test_strategy_none_under_a_launcher_is_one_line(cli, tmp_path: Path) -> None:
    p = cli("train", "--preset", "digits-mlp", "train.epochs=1", "strategy=none", "--run-dir", "r",
            env={"WORLD_SIZE": "2", "RANK": "0"})
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and "strategy=none" in p.stderr and "Traceback" not in p.stderr


def test_unknown_strategy_suggests(cli) -> None:
    p = cli("train", "--preset", "digits-mlp", "strategy=dpp")
    assert p.returncode == 2 and "strategy=dpp" in p.stderr and "ddp" in p.stderr


# ---- multi-process (torchrun, gloo) ---------------------------------------------------------------------------------

EQUIV = ["--preset", "digits-mlp", "train.epochs=3", "model.dropout=0", "data.drop_last=true", "--quiet"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_batch_b_equal_one_process_batch_2b(tmp_path: Path, strategy: str) -> None:
    # drop_last: digits' train split is odd, and the padding sample of a sharded epoch then falls in the dropped tail
    _run(_torchrun("train", *EQUIV, "data.batch_size=32", f"strategy={strategy}", "--run-dir", "two"), tmp_path)
    _run([PY, "-m", "trainwise", "train", *EQUIV, "data.batch_size=64", "--run-dir", "one"], tmp_path)
    assert _max_diff(tmp_path / "one" / "final.safetensors", tmp_path / "two" / "final.safetensors") < 1e-5
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):  # train metrics are reduced over both ranks' shards
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)
        assert a["train/accuracy"] == pytest.approx(b["train/accuracy"], abs=1e-9)
        assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-5)
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["world_size"] == 2 and s2["strategy"] == strategy
    # only rank 0 wrote: one line per event, no second copy interleaved
    events = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for e in events if e.get("split") == "val") == 3


RESUME = ["--preset", "digits-mlp", "train.epochs=30", "train.patience=100", "train.log_every=5",
          "checkpoint.every_steps=7", "model.dropout=0.2", "train.mixup_alpha=0.2", "--quiet"]


@pytest.mark.slow
def test_ddp_run_stopped_by_sigterm_resumes_bit_exactly(tmp_path: Path) -> None:
    # dropout and mixup draw from per-rank RNG streams, which the checkpoint must carry for both ranks
    _run(_torchrun("train", *RESUME, "--run-dir", "ref"), tmp_path)
    proc = subprocess.Popen(_torchrun("train", *RESUME, "--run-dir", "cut"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = tmp_path / "cut" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (root.is_dir() and list_checkpoints(root)):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to both workers; they agree on a step and save
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "torchrun --nproc_per_node=2 -m trainwise resume" in err
    assert err.count("interrupted by signal") == 1  # rank 0 speaks for the job
    assert not (tmp_path / "cut" / "summary.json").exists()
    _run(_torchrun("resume", "cut", "--quiet"), tmp_path)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert (ref / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()
    assert (ref / "final.safetensors").read_bytes() == (cut / "final.safetensors").read_bytes()
    assert (ref / "best.safetensors").read_bytes() == (cut / "best.safetensors").read_bytes()
    # …and a DDP checkpoint refuses to continue in a different number of processes
    (ref / "summary.json").unlink()  # as if killed after its last checkpoint (a finished run is refused earlier)
    p = _run([PY, "-m", "trainwise", "resume", "ref"], tmp_path, check=False)
    assert p.returncode == 2 and "--nproc_per_node=2" in p.stderr


@pytest.mark.slow
def test_ddp_resume_from_a_mid_epoch_checkpoint_is_bit_exact(tmp_path: Path) -> None:
    """A crash right after any checkpoint: delete everything newer, resume, compare with the uninterrupted run."""
    _run(_torchrun("train", *RESUME, "train.epochs=6", "checkpoint.keep=100", "--run-dir", "ref"), tmp_path)
    _run(_torchrun("train", *RESUME, "train.epochs=6", "checkpoint.keep=100", "--run-dir", "cut"), tmp_path)
    cut = tmp_path / "cut"
    ckpts = list_checkpoints(cut / "checkpoints")
    per_epoch = json.loads((tmp_path / "ref" / "history.json").read_text())[0]["step"]
    mid = next(c for c in ckpts[1:] if int(c.name.split("-")[1]) % per_epoch)  # inside an epoch, not the first
    keep = ckpts.index(mid)
    import shutil

    for c in ckpts[keep + 1:]:
        shutil.rmtree(c)
    for name in ("final.safetensors", "summary.json", "history.json", "diagnosis.json"):
        (cut / name).unlink()
    _run(_torchrun("resume", "cut", "--quiet"), tmp_path)
    ref = tmp_path / "ref"
    assert (ref / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()
    assert (ref / "final.safetensors").read_bytes() == (cut / "final.safetensors").read_bytes()
    assert json.loads((cut / "summary.json").read_text())["resumed_from"] == mid.name


@pytest.mark.slow
def test_unsupported_paradigm_under_ddp_is_one_line(tmp_path: Path) -> None:
    p = _run(_torchrun("train", "--preset", "digits-gan", "train.epochs=1", "--run-dir", "g"), tmp_path, check=False)
    assert p.returncode != 0
    assert "error: paradigm.name=gan is not supported with strategy=ddp" in p.stderr
    assert not (tmp_path / "g" / "final.safetensors").exists()

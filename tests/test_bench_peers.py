"""The benchmark scripts without timing anything: plan, help, CPU skip of the GPU section, and parity of the loops
being compared (the same training, so the ratios compare the same work)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_gpu  # noqa: E402
import bench_peers  # noqa: E402


def test_dry_run_lists_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_peers.main(["--quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name, _ in bench_peers.VARIANTS:
        assert name in out
    assert "workloads: mlp, cnn, compute" in out


def test_help_and_bad_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        bench_peers.main(["--help"])
    assert e.value.code == 0 and "--quick" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bench_peers.main(["--sections", "train,nope", "--dry-run"])
    assert e.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip path on machines without CUDA")
def test_gpu_section_skips_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert bench_gpu.main(["--dry-run", "--quick"]) == 0


def test_gpu_section_code_paths_run_on_the_cpu(tmp_path: Path) -> None:
    """bench_gpu's whole pipeline (matmul peaks, flop counting, trainwise.fit in fp32 / bf16-mixed / 16-mixed, the
    plain bf16 loop, the table and JSON) on a tiny transformer on the CPU, so the GPU run cannot fail on a typo."""
    out = tmp_path / "bench_gpu.json"
    md = tmp_path / "R.md"
    md.write_text("# results\n")
    assert bench_gpu.main(["--device", "cpu", "--no-compile", "--json", str(out), "--md", str(md)]) == 0
    info = json.loads(out.read_text())
    rows = info["rows"]
    assert [(r["loop"], r["precision"]) for r in rows] == [("trainwise.fit", "32"), ("trainwise.fit", "bf16-mixed"),
                                                         ("trainwise.fit", "16-mixed"), ("plain", "bf16-mixed")]
    assert all("error" not in r and r["steps_per_s"] > 0 and r["tflops"] > 0 and math.isfinite(r["final_loss"])
               for r in rows[:3]), rows
    assert info["flops_per_step"] > 0 and info["params"] > 0
    assert "| trainwise.fit | bf16-mixed | off |" in md.read_text()


def test_plain_and_trainwise_do_the_same_training() -> None:
    """On identical seeds the hand-written loop and trainwise.fit reach the same loss: the same initial weights,
    batches, AdamW groups and clipping (tiny float differences only from summing the epoch loss differently)."""
    ws = bench_peers.make_workloads(quick=True, only=["mlp"])
    w = ws[0]
    plain = bench_peers.run_plain(w, 2)
    tw = bench_peers.run_trainwise(w, 2, files=False)
    assert tw.epochs == 2
    assert tw.train_loss == pytest.approx(plain.train_loss, rel=1e-5)


def test_flop_count_of_an_mlp() -> None:
    """FLOPs per training epoch, counted: 2 per multiply-accumulate forward, 4 backward (input and weight
    gradients), except the first layer, whose input needs no gradient (2)."""
    ws = bench_peers.make_workloads(quick=True, only=["mlp"])
    w = ws[0]
    bench_peers.count_flops(w)
    macs = 64 * 256 + 256 * 256 + 256 * 10
    assert w.train_flops == pytest.approx((6 * macs - 2 * 64 * 256) * len(w.data.x), rel=0.01)
    assert w.val_flops == pytest.approx(2 * macs * len(w.data.xv), rel=0.01)

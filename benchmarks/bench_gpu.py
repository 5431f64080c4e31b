"""GPU section of the benchmark suite: precision and torch.compile on a transformer, and model FLOP utilisation.

Runs only where CUDA exists; elsewhere it prints why and exits 0 (so ``make bench`` can always call it).

1. The card (name, capability, memory) and its measured dense matmul peak in fp32 (TF32 off, torch's default),
   TF32, bf16 and fp16 (best of square GEMMs).
2. Steps/s of the real ``trainwise.fit`` loop on a transformer encoder classifier over token sequences (default
   d_model 1024, 8 layers, 16 heads, sequence 512, batch 16: ≈ 110 M parameters) in fp32, bf16-mixed and 16-mixed
   autocast, each with torch.compile off and on, plus a hand-written bf16 loop for scale. Steps/s are medians of the
   epochs after the first (which pays warm-up and compilation; its time is reported separately).
3. Model FLOP utilisation (MFU): model FLOPs per step, counted once with ``torch.utils.flop_counter`` (forward +
   backward, attention included), × steps/s, ÷ the measured matmul peak of the precision's compute dtype (fp32 rows
   against the fp32 peak, TF32 being off) and ÷ the card's datasheet dense peak where the card is known.

    python benchmarks/bench_gpu.py                               # full (≈ 5–8 min on an H100)
    python benchmarks/bench_gpu.py --quick                       # smaller model, no compile (≈ 1 min)
    python benchmarks/bench_gpu.py --json OUT/bench_gpu.json --md OUT/RESULTS-gpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
MARK = "bench_gpu"
# Datasheet dense (no sparsity) peaks in TFLOP/s: fp32, tf32, bf16, fp16. Only used for a second MFU column.
SPEC = {
    "H100 80GB HBM3": (67, 494.5, 989.5, 989.5),  # SXM5
    "H100 PCIe": (51, 378, 756, 756),
    "H200": (67, 494.5, 989.5, 989.5),
    "A100-SXM4-80GB": (19.5, 156, 312, 312),
    "A100-SXM4-40GB": (19.5, 156, 312, 312),
    "A100-PCIE-40GB": (19.5, 156, 312, 312),
    "A100 80GB PCIe": (19.5, 156, 312, 312),
    "L4": (30.3, 60, 121, 121),
    "A10G": (31.2, 62.5, 125, 125),
}
DTYPE_OF = {"32": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


def spec_peak(name: str, dtype: str) -> float | None:
    for key, vals in SPEC.items():
        if key in name:
            return vals[("fp32", "tf32", "bf16", "fp16").index(dtype)] * 1e12
    return None


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peaks(sizes: tuple[int, ...], repeats: int = 10, device: str = "cuda") -> dict[str, float]:
    """Best dense GEMM FLOP/s per dtype on ``device`` (CUDA events on a GPU, the wall clock on the CPU)."""
    if device != "cuda":
        out = {}
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            best = 0.0
            for n in sizes:
                a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
                a @ b
                t0 = time.perf_counter()
                for _ in range(repeats):
                    a @ b
                best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t0))
            out[label] = best
        out["tf32"] = out["fp32"]
        return out
    out = {}
    prev = torch.backends.cuda.matmul.allow_tf32
    try:
        for label, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                                   ("bf16", torch.bfloat16, False), ("fp16", torch.float16, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            best = 0.0
            for n in sizes:
                a = torch.randn(n, n, device="cuda", dtype=dtype)
                b = torch.randn(n, n, device="cuda", dtype=dtype)
                for _ in range(3):
                    a @ b
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(repeats):
                    a @ b
                end.record()
                torch.cuda.synchronize()
                secs = start.elapsed_time(end) / 1e3 / repeats
                best = max(best, 2 * n**3 / secs)
                del a, b
            out[label] = best
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return out


def workload(quick: bool | str) -> dict[str, Any]:
    if quick == "tiny":  # the --device cpu smoke run: every code path in seconds
        return {"d_model": 32, "layers": 1, "heads": 2, "seq": 16, "batch": 4, "vocab": 64, "steps": 3, "epochs": 2}
    if quick:
        return {"d_model": 512, "layers": 4, "heads": 8, "seq": 256, "batch": 16, "vocab": 4096, "steps": 20,
                "epochs": 3}
    return {"d_model": 1024, "layers": 8, "heads": 16, "seq": 512, "batch": 16, "vocab": 8192, "steps": 30,
            "epochs": 3}


def make_model(w: dict[str, Any]) -> torch.nn.Module:
    import trainwise

    torch.manual_seed(0)
    # pad_index=None: no padding mask, so SDPA may take its fused (flash) kernel.
    return trainwise.create_model("transformer", (w["seq"],), 10, vocab_size=w["vocab"], pad_index=None,
                                  d_model=w["d_model"], heads=w["heads"], layers=w["layers"], ff_mult=4, dropout=0.0,
                                  max_len=w["seq"], pool="mean")


def data(w: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = w["batch"] * w["steps"]
    x = torch.randint(1, w["vocab"], (n, w["seq"]), generator=g)
    y = (x[:, 0] % 10)  # learnable from the first token
    return x, y


def _free(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


def flops_per_step(w: dict[str, Any], device: str = "cuda") -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model(w).to(device)
    x, y = data(w)
    xb, yb = x[:w["batch"]].to(device), y[:w["batch"]].to(device)
    with FlopCounterMode(display=False) as fc, torch.autocast(device, dtype=torch.bfloat16):
        F.cross_entropy(model(xb), yb).backward()
    del model
    _free(device)
    return float(fc.get_total_flops())


def run_fit(w: dict[str, Any], precision: str, compile_: bool, device: str = "cuda") -> dict[str, Any]:
    import trainwise

    model = make_model(w)
    x, y = data(w)
    _sync(device)
    t0 = time.perf_counter()
    r = trainwise.fit(model, {"train": (x, y)}, run_dir=None, epochs=w["epochs"], device=device, precision=precision,
                      compile=compile_, early_stopping=False,
                      **{"data.batch_size": w["batch"], "train.log_every": 10_000})
    _sync(device)
    wall = time.perf_counter() - t0
    secs = [h["seconds"] for h in r.history[1:]]
    del model
    _free(device)
    return {"steps_per_s": w["steps"] / statistics.median(secs), "first_epoch_s": r.history[0]["seconds"],
            "wall_s": wall, "final_loss": r.history[-1]["train/loss"]}


def run_plain_bf16(w: dict[str, Any], device: str = "cuda") -> dict[str, Any]:
    """The hand-written loop for scale: bf16 autocast, AdamW, clip 1.0, batches from a device-resident tensor."""
    from trainwise.train.optim import param_groups

    model = make_model(w).to(device)
    x, y = (t.to(device) for t in data(w))
    opt = torch.optim.AdamW(param_groups(model, 1e-3, 0.01), lr=1e-3)
    params = [p for p in model.parameters() if p.requires_grad]
    secs = []
    for epoch in range(w["epochs"]):
        _sync(device)
        t0 = time.perf_counter()
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, len(x), w["batch"]):
            j = idx[s:s + w["batch"]]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x[j]), y[j])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += loss.detach()
        total.item()
        _sync(device)
        secs.append(time.perf_counter() - t0)
    del model, opt
    _free(device)
    return {"steps_per_s": w["steps"] / statistics.median(secs[1:]), "first_epoch_s": secs[0]}


def replace_section(path: Path, name: str, body: str) -> None:
    """This script's marked section of a results file (bench_loop's writer, imported only when writing)."""
    sys.path.insert(0, str(HERE))
    from bench_loop import replace_section as write

    write(path, name, body, mark=MARK)


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(prog="bench_gpu.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=doc.rsplit("\n\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="d_model 512, 4 layers, sequence 256, no compile rows")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--precisions", default="32,bf16-mixed,16-mixed", help="comma-separated subset")
    ap.add_argument("--json", default=None, help="write all numbers here (default: print only)")
    ap.add_argument("--md", default=None, help="markdown file whose bench_gpu section is replaced (e.g. "
                    "benchmarks/RESULTS.md; default: print only)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a smoke run of every code path "
                    "on a tiny transformer (numbers are not GPU numbers; the test suite runs it)")
    args = ap.parse_args(argv)
    dev = args.device
    w = workload("tiny" if dev == "cpu" else args.quick)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [p for p in precisions if p not in DTYPE_OF]
    if bad:
        ap.error(f"unknown precision {bad[0]}; choose from {', '.join(DTYPE_OF)}")
    compiles = (False,) if (args.quick or args.no_compile) else (False, True)
    if args.dry_run:
        print(f"workload: {w}\nrows: {[(p, c) for p in precisions for c in compiles]} + plain bf16 loop")
        return 0
    if dev == "cuda" and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA device here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}); skipped. Run it on a CUDA machine: "
              "python benchmarks/bench_gpu.py --json OUT/bench_gpu.json --md OUT/RESULTS-gpu.md")
        return 0
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], HERE.parent),
                                                              *(sys.argv[1:] if argv is None else argv)])
    if dev == "cuda":
        props = torch.cuda.get_device_properties(0)
        info = {"device": torch.cuda.get_device_name(0), "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1)}
    else:
        info = {"device": f"CPU smoke run ({os.cpu_count()} cores; not GPU numbers)"}
    info.update(torch=torch.__version__, cuda=torch.version.cuda, workload=w)
    print(json.dumps(info), flush=True)
    peaks = matmul_peaks((256,) if dev == "cpu" else (2048, 4096) if args.quick else (4096, 8192), device=dev)
    info["matmul_peak_tflops"] = {k: round(v / 1e12, 1) for k, v in peaks.items()}
    print("matmul peaks (TFLOP/s):", info["matmul_peak_tflops"], flush=True)
    flops = flops_per_step(w, dev)
    params = sum(p.numel() for p in make_model(w).parameters())
    info.update(flops_per_step=flops, params=params)
    rows: list[dict[str, Any]] = []
    for prec in precisions:
        for comp in compiles:
            try:
                r = run_fit(w, prec, comp, dev)
            except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others
                r = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            r.update(precision=prec, compile=comp, loop="trainwise.fit")
            rows.append(r)
            print(json.dumps(r), flush=True)
    r = run_plain_bf16(w, dev)
    r.update(precision="bf16-mixed", compile=False, loop="plain")
    rows.append(r)
    print(json.dumps(r), flush=True)
    name = info["device"]
    lines = ["| loop | precision | compile | steps/s | achieved TFLOP/s | MFU vs measured peak | MFU vs datasheet | "
             "first epoch s |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['loop']} | {r['precision']} | {'on' if r['compile'] else 'off'} | – | – | – | – | "
                         f"{r['error']} |")
            continue
        dt = DTYPE_OF[r["precision"]]
        achieved = r["steps_per_s"] * flops
        spec = spec_peak(name, dt)
        r.update(tflops=achieved / 1e12, mfu_measured=achieved / peaks[dt], mfu_spec=achieved / spec if spec else None)
        lines.append(f"| {r['loop']} | {r['precision']} | {'on' if r['compile'] else 'off'} | {r['steps_per_s']:.2f} | "
                     f"{achieved / 1e12:.1f} | {r['mfu_measured'] * 100:.0f}% ({dt} {peaks[dt] / 1e12:.0f}) | "
                     + (f"{r['mfu_spec'] * 100:.0f}%" if spec else "–") + f" | {r['first_epoch_s']:.2f} |")
    info["rows"] = rows
    body = (f"## GPU: precision, torch.compile and MFU on a transformer ({name}, torch {torch.__version__})\n\n"
            f"Command: `{command}`  \nRun: {time.strftime('%Y-%m-%d %H:%M:%S')}. Transformer encoder classifier, "
            f"d_model {w['d_model']}, {w['layers']} layers, {w['heads']} heads, sequence {w['seq']}, batch "
            f"{w['batch']}, {params / 1e6:.0f} M parameters; {flops / 1e12:.2f} TFLOP per step (flop_counter, "
            f"forward + backward); {w['steps']} steps per epoch, {w['epochs']} epochs, medians after the first. "
            "Measured dense matmul peaks (TFLOP/s): "
            + ", ".join(f"{k} {v}" for k, v in info["matmul_peak_tflops"].items()) + ".\n\n" + "\n".join(lines) + "\n")
    print("\n" + body, flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(info, indent=2, default=str) + "\n")
    if args.md:
        replace_section(Path(args.md), "transformer", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU-only checks and timings (never part of CI): run on a CUDA machine with ``PYTHONPATH=src``.

    python benchmarks/gpu_check.py --out OUT_DIR

1. ``precision=auto`` resolves to bf16-mixed on a GPU with native bf16.
2. digits-cnn trained end to end in fp32, bf16-mixed and 16-mixed (GradScaler; skipped steps reported).
3. Steps/s of the real ``fit`` loop on a compute-bound MLP in fp32 / bf16 / fp16, with torch.compile off and on,
   and achieved TFLOP/s.
4. Exact resume on CUDA: crash in-process mid-epoch, resume, compare final weights bit for bit (fp32 and bf16).
5. The DataLoader path with pinned memory and 4 workers on CUDA.
6. Loop overhead on an overhead-bound workload (digits MLP): trainwise.fit vs a plain loop, interleaved.
Results go to OUT_DIR/gpu_results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import trainwise
from trainwise.build import build_model, load_data
from trainwise.config import compose
from trainwise.train.loop import fit, seed_everything
from trainwise.train.precision import resolve_precision


def section_precision(res: dict) -> None:
    res["device_name"] = torch.cuda.get_device_name(0)
    res["torch"] = torch.__version__
    res["auto_precision"] = resolve_precision("auto", torch.device("cuda"))


def section_digits(res: dict, tmp: Path) -> None:
    out = {}
    for prec in ("32", "bf16-mixed", "16-mixed"):
        cfg = compose(None, "digits-cnn", [f"precision={prec}", "device=cuda"])
        r = trainwise.runner.train(cfg, run_dir=tmp / f"digits-{prec}", quiet=True)
        s = r.summary
        out[prec] = {"test/accuracy": s["test/accuracy"], "wall_seconds": s["wall_seconds"],
                     "skipped_steps": s.get("skipped_steps"), "precision": s["precision"]}
    res["digits_cnn"] = out


def section_throughput(res: dict) -> None:
    g = torch.Generator().manual_seed(0)
    n, d, width, depth, bs = 65536, 1024, 4096, 4, 1024
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    flops_per_sample = 6 * (d * width + (depth - 1) * width * width + width * 10)  # fwd+bwd ≈ 3× fwd (2·MAC)
    out = {}
    for prec in ("32", "bf16-mixed", "16-mixed"):
        for comp in (False, True):
            torch.manual_seed(0)
            model = trainwise.create_model("mlp", (d,), 10, hidden=[width] * depth)
            r = fit(model, {"train": (x, y)}, run_dir=None, epochs=3, device="cuda", precision=prec,
                    compile=comp, **{"data.batch_size": bs, "train.log_every": 1000})
            secs = [h["seconds"] for h in r.history[1:]]  # epoch 1 pays warm-up / compilation
            sps = (n / bs) / statistics.median(secs)
            out[f"{prec}{'+compile' if comp else ''}"] = {
                "steps_per_s": round(sps, 1), "tflops": round(sps * bs * flops_per_sample / 1e12, 1),
                "first_epoch_s": round(r.history[0]["seconds"], 2)}
    res["throughput_mlp_4x4096"] = out


def _crash_resume(tmp: Path, overrides: list[str], tag: str) -> bool:
    def run(name: str, crash_at: int | None = None, resume: bool = False) -> None:
        cfg = compose(None, "digits-cnn", ["device=cuda", "checkpoint.every_steps=7", "train.epochs=6",
                                           *overrides])
        splits = load_data(cfg)
        seed_everything(cfg.seed)
        model = build_model(cfg, splits.preprocess, splits.num_classes)

        def cb(e: dict) -> None:
            if crash_at is not None and e.get("step", 0) >= crash_at:
                raise KeyboardInterrupt

        try:
            fit(model, splits, config=cfg, run_dir=None if resume else tmp / name,
                resume=tmp / name if resume else None, callbacks=[cb], quiet=True)
        except KeyboardInterrupt:
            pass

    run(f"ref-{tag}")
    run(f"crash-{tag}", crash_at=50)
    run(f"crash-{tag}", resume=True)
    a = (tmp / f"ref-{tag}" / "final.safetensors").read_bytes()
    b = (tmp / f"crash-{tag}" / "final.safetensors").read_bytes()
    m = (tmp / f"ref-{tag}" / "metrics.jsonl").read_text() == (tmp / f"crash-{tag}" / "metrics.jsonl").read_text()
    return a == b and m


def section_resume(res: dict, tmp: Path) -> None:
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    res["resume_bit_exact"] = {"fp32": _crash_resume(tmp, ["precision=32", "train.log_every=5"], "fp32"),
                               "bf16": _crash_resume(tmp, ["precision=bf16-mixed", "train.log_every=5"], "bf16")}


def section_dataloader(res: dict, tmp: Path) -> None:
    cfg = compose(None, "digits-cnn", ["device=cuda", "data.loader=dataloader", "data.num_workers=4",
                                       "train.epochs=5"])
    r = trainwise.runner.train(cfg, run_dir=tmp / "dl", quiet=True)
    res["dataloader_pinned_workers"] = {"test/accuracy": r.summary["test/accuracy"],
                                        "wall_seconds": r.summary["wall_seconds"]}


def section_overhead(res: dict) -> None:
    from sklearn.datasets import load_digits

    xd, yd = load_digits(return_X_y=True)
    x = torch.tensor((xd - xd.mean()) / xd.std(), dtype=torch.float32)
    y = torch.tensor(yd)
    epochs, bs = 10, 64

    def plain() -> float:
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", (64,), 10, hidden=[256, 256]).cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        xg, yg = x.cuda(), y.cuda()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for e in range(epochs):
            perm = torch.randperm(len(xg), generator=torch.Generator().manual_seed(e)).cuda()
            total = torch.zeros((), device="cuda")
            for i in range(0, len(xg), bs):
                idx = perm[i:i + bs]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xg[idx]), yg[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                total += loss.detach()
            total.item()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / epochs

    def tw() -> float:
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", (64,), 10, hidden=[256, 256])
        t = time.perf_counter()
        fit(model, {"train": (x, y)}, run_dir=None, epochs=epochs, device="cuda", precision="32",
            **{"data.batch_size": bs})
        return (time.perf_counter() - t) / epochs

    plain(), tw()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "trainwise": []}
    for _ in range(5):
        times["plain"].append(plain())
        times["trainwise"].append(tw())
    med = {k: statistics.median(v) for k, v in times.items()}
    res["overhead_digits_mlp_gpu"] = {"plain_s_per_epoch": med["plain"], "trainwise_s_per_epoch": med["trainwise"],
                                      "ratio": med["trainwise"] / med["plain"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=".")
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    res: dict = {}
    sections = {"precision": lambda: section_precision(res), "digits": lambda: section_digits(res, tmp),
                "resume": lambda: section_resume(res, tmp), "dataloader": lambda: section_dataloader(res, tmp),
                "overhead": lambda: section_overhead(res), "throughput": lambda: section_throughput(res)}
    for name, fn in sections.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # keep going: one broken section must not lose the others' numbers
            res[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        res.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
        (out / "gpu_results.json").write_text(json.dumps(res, indent=2))
        print(name, json.dumps({k: v for k, v in res.items() if k.startswith(name) or name in k}, default=str),
              flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""GPU checks for the paradigms (never part of CI): run on a CUDA machine with ``PYTHONPATH=src``.

    python benchmarks/gpu_paradigms.py --out OUT_DIR

1. Every paradigm preset trains on CUDA under bf16-mixed and 16-mixed (GradScaler; a GAN has two): loss finite,
   main metric, seconds per epoch, fp16 steps skipped.
2. A GAN resumed from a mid-epoch checkpoint on CUDA ends bit-identical to the uninterrupted run (the second
   optimizer, the CUDA RNG and the evaluation's forked generator included).
3. torch.compile on the order transformer: seconds per epoch eager vs compiled (bf16).
Results: OUT_DIR/gpu_paradigms.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from trainwise.config import compose
from trainwise.runner import resume, train
from trainwise.train.checkpoint import list_checkpoints

PRESETS = ["digits-autoencoder", "digits-vae", "digits-gan", "digits-simclr", "seq-reverse", "adding-lstm",
           "order-transformer", "sine-forecast"]


def run(preset: str, *overrides: str) -> dict:
    cfg = compose(preset=preset, overrides=["device=cuda", *overrides])
    d = Path(tempfile.mkdtemp()) / "run"
    t0 = time.perf_counter()
    r = train(cfg, run_dir=d, quiet=True)
    wall = time.perf_counter() - t0
    s = r.summary
    main = f"test/{s['main_metric']}"
    last = r.history[-1]
    out = {"preset": preset, "overrides": list(overrides), "main": main, "value": s.get(main),
           "train_loss": last["train/loss"], "finite": math.isfinite(last["train/loss"]),
           "epoch_s": [round(h["seconds"], 3) for h in r.history], "wall_s": round(wall, 2),
           "skipped_steps": s.get("skipped_steps")}
    shutil.rmtree(d.parent, ignore_errors=True)
    return out


def gan_resume() -> dict:
    cfg = compose(preset="digits-gan", overrides=["device=cuda", "precision=32", "train.epochs=2",
                                                   "checkpoint.every_steps=5", "checkpoint.keep=100"])
    run_dir = Path(tempfile.mkdtemp()) / "run"
    train(cfg, run_dir=run_dir, quiet=True)
    ref = (run_dir / "final.safetensors").read_bytes()
    ckpts = list_checkpoints(run_dir / "checkpoints")
    for c in ckpts[3:]:
        shutil.rmtree(c)
    for f in ("final.safetensors", "summary.json", "best.safetensors"):
        (run_dir / f).unlink(missing_ok=True)
    resume(run_dir, quiet=True)
    same = (run_dir / "final.safetensors").read_bytes() == ref
    return {"resumed_from": ckpts[2].name, "checkpoints": len(ckpts), "bit_identical": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    out = Path(args.out)
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    for preset in PRESETS:
        for precision in ("bf16-mixed", "16-mixed"):
            try:
                r = run(preset, f"precision={precision}", f"train.epochs={args.epochs}")
            except Exception as exc:  # a failure is a result here, not a crash of the whole check
                r = {"preset": preset, "overrides": [precision], "error": f"{type(exc).__name__}: {exc}"[:400]}
            res["runs"].append(r)
            print(json.dumps(r), flush=True)
    try:
        res["gan_resume_cuda"] = gan_resume()
    except Exception as exc:
        res["gan_resume_cuda"] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    print(json.dumps(res["gan_resume_cuda"]), flush=True)
    for compiled in ("false", "true"):
        try:
            r = run("order-transformer", "precision=bf16-mixed", f"compile={compiled}", "train.epochs=4")
        except Exception as exc:
            r = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        res[f"order_transformer_compile_{compiled}"] = r
        print(json.dumps(r), flush=True)
    (out / "gpu_paradigms.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

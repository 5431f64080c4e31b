"""Is a GAN run on CUDA reproducible, and does it resume bit-exactly? (GPU only, never part of CI.)

    PYTHONPATH=src python3 benchmarks/gpu_gan_determinism.py nondet
    CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONPATH=src python3 benchmarks/gpu_gan_determinism.py det

Trains digits-gan (fp32, 2 epochs) twice, then deletes the first run's newer checkpoints and resumes it; prints
whether the two runs and the resumed run end with identical final weights.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from trainwise.config import compose
from trainwise.runner import resume, train
from trainwise.train.checkpoint import list_checkpoints


def once() -> Path:
    cfg = compose(preset="digits-gan", overrides=["device=cuda", "precision=32", "train.epochs=2",
                                                   "checkpoint.every_steps=5", "checkpoint.keep=100"])
    d = Path(tempfile.mkdtemp()) / "run"
    train(cfg, run_dir=d, quiet=True)
    return d


def main() -> None:
    det = len(sys.argv) > 1 and sys.argv[1] == "det"
    if det:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    a, b = once(), once()
    ref = (a / "final.safetensors").read_bytes()
    same_runs = ref == (b / "final.safetensors").read_bytes()
    for c in list_checkpoints(a / "checkpoints")[3:]:
        shutil.rmtree(c)
    for f in ("final.safetensors", "summary.json", "best.safetensors"):
        (a / f).unlink(missing_ok=True)
    resume(a, quiet=True)
    print(json.dumps({"deterministic": det, "two_runs_identical": same_runs,
                      "resume_identical": (a / "final.safetensors").read_bytes() == ref}))


if __name__ == "__main__":
    main()

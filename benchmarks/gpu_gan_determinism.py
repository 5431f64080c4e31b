import json, shutil, sys, tempfile, os
from pathlib import Path
import torch
from trainwise.config import compose
from trainwise.runner import resume, train
from trainwise.train.checkpoint import list_checkpoints
det = sys.argv[1] == "det"
if det:
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
def once():
    cfg = compose(preset="digits-gan", overrides=["device=cuda", "precision=32", "train.epochs=2", "checkpoint.every_steps=5", "checkpoint.keep=100"])
    d = Path(tempfile.mkdtemp()) / "run"; train(cfg, run_dir=d, quiet=True); return d
a, b = once(), once()
same_runs = (a / "final.safetensors").read_bytes() == (b / "final.safetensors").read_bytes()
ref = (a / "final.safetensors").read_bytes()
ck = list_checkpoints(a / "checkpoints")
for c in ck[3:]: shutil.rmtree(c)
for f in ("final.safetensors", "summary.json", "best.safetensors"): (a / f).unlink(missing_ok=True)
resume(a, quiet=True)
print(json.dumps({"deterministic": det, "two_runs_identical": same_runs, "resume_identical": (a / "final.safetensors").read_bytes() == ref}))

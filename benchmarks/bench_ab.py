"""Loop time of two revisions of trainwise, interleaved: did a change to the loop cost anything?

Each revision is checked out into a temporary git worktree (``git worktree add --detach``) and imported from its own
``src`` by a fresh interpreter of this environment (so both use the same torch and libraries). Rounds alternate the
order A, B / B, A; every measurement is one subprocess that trains ``bench_loop.py``'s workload (digits, MLP
64→256→256→10, batch 64, AdamW, clip 1.0, fp32) and reports ``fit()``'s own ``wall_seconds`` (the epoch loop with
its evaluation and saves, without start-up). Reported: per-revision median ms/epoch and min–max, and the median of
the per-round ratios B/A with its min–max (rounds share the machine's load, so pairing cancels part of it).

    python benchmarks/bench_ab.py d62bbf0 HEAD                  # before/after of a loop change
    python benchmarks/bench_ab.py d62bbf0 HEAD --rounds 9 --epochs 10 --files
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One measurement: the workload of bench_loop.py's "trainwise" rows, run on the revision on sys.path.
SNIPPET = r"""
import json, sys, tempfile, numpy as np, torch
from sklearn.datasets import load_digits
import trainwise
torch.set_num_threads(int(sys.argv[3]))
d = load_digits()
x, y = d.data.astype(np.float32), d.target.astype(np.int64)
perm = np.random.default_rng(0).permutation(len(x))
val, train = perm[:359], perm[359:]
mean, std = x[train].mean(0), x[train].std(0)
std[std == 0] = 1.0
x = (x - mean) / std
parts = {"train": (x[train], y[train]), "val": (x[val], y[val])}
torch.manual_seed(0)
model = trainwise.create_model("mlp", (64,), 10, hidden=[256, 256])
epochs, files = int(sys.argv[1]), sys.argv[2] == "1"
with tempfile.TemporaryDirectory() as tmp:
    r = trainwise.fit(model, parts, run_dir=f"{tmp}/run" if files else None, quiet=True, epochs=epochs,
                      **{"data.batch_size": 64, "optim.lr": 1e-3, "schedule.name": "constant", "train.grad_clip": 1.0,
                         "doctor.preflight": False, "doctor.diagnose": False, "tracking.backends": []})
print(json.dumps({"wall": r.summary["wall_seconds"], "loss": r.history[-1]["train/loss"]}))
"""


def checkout(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    return where


def measure(src: Path, epochs: int, files: bool, threads: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", SNIPPET, str(epochs), "1" if files else "0", str(threads)],
                         env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                         capture_output=True, text=True, check=True, cwd=src.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="baseline revision (e.g. a commit before the change)")
    ap.add_argument("b", help="revision to compare (e.g. HEAD)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    ap.add_argument("--files", action="store_true", help="with a run directory (logs, checkpoints, plot)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        try:
            for name, rev in (("A", args.a), ("B", args.b)):
                trees[name] = checkout(rev, Path(tmp) / name)
            times: dict[str, list[float]] = {"A": [], "B": []}
            losses: dict[str, float] = {}
            for name in ("A", "B"):  # warm-up: imports compiled, caches filled
                measure(trees[name] / "src", 2, args.files, args.threads)
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    m = measure(trees[name] / "src", args.epochs, args.files, args.threads)
                    times[name].append(1000 * m["wall"] / args.epochs)
                    losses[name] = m["loss"]
                print(f"round {r + 1}/{args.rounds}: A {times['A'][-1]:.1f} ms/epoch, B {times['B'][-1]:.1f}",
                      flush=True)
        finally:
            for where in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False)
    ratios = [b / a for a, b in zip(times["A"], times["B"])]
    print(f"\nA = {args.a}: median {statistics.median(times['A']):.1f} ms/epoch "
          f"({min(times['A']):.1f}–{max(times['A']):.1f}), final train loss {losses['A']:.6f}")
    print(f"B = {args.b}: median {statistics.median(times['B']):.1f} ms/epoch "
          f"({min(times['B']):.1f}–{max(times['B']):.1f}), final train loss {losses['B']:.6f}")
    print(f"B/A: median {statistics.median(ratios):.3f}× (per-round {min(ratios):.3f}–{max(ratios):.3f}), "
          f"{args.rounds} rounds × {args.epochs} epochs, {args.threads} thread(s), files={'on' if args.files else 'off'}")


if __name__ == "__main__":
    main()

"""trainwise against the plain loop, the textbook DataLoader loop, Lightning, Accelerate and the hardware limit.

Sections (all on this machine, in one process, interleaved, with bench_loop.py's noise control):

* ``train``: seconds per epoch of every variant on three workloads — digits MLP 64→256→256→10, batch 64
  (overhead-bound); the registry CNN on digits 1×8×8, batch 64; and a compute-bound MLP 1024→2048→2048→10,
  batch 256, on synthetic data, whose achieved FLOP/s is compared with this machine's fp32 matmul peak (measured
  here too). Same model init, data order, AdamW (trainwise's decay groups), gradient clipping at 1.0 in every
  variant; every variant except ``plain`` and ``dataloader`` evaluates val loss + accuracy after each epoch.
* ``data``: batches per second of the in-memory fast path vs a per-sample DataLoader (workers 0 and 2).
* ``tta``: time to accuracy on digits — trainwise's default preset (and digits-mlp) vs scikit-learn's SVC and
  MLPClassifier on the same split.
* ``infer``: inference latency/throughput of a trained run in eager, inference_mode, torch.compile, ONNX Runtime
  and int8 (``trainwise bench-infer``'s code).

    python benchmarks/bench_peers.py                 # full run (about 15–25 min), updates benchmarks/RESULTS.md
    python benchmarks/bench_peers.py --quick         # about 1–2 min, prints only
    python benchmarks/bench_peers.py --dry-run       # the plan, nothing run

Needs the benchmark environment (``make bench-venv``: lightning and accelerate); without them those rows say so.
See benchmarks/README.md for what each variant does.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_loop as bl  # noqa: E402  (the noise control, machine info and data path are bench_loop's)

import trainwise  # noqa: E402
from trainwise.data.loaders import epoch_seed  # noqa: E402
from trainwise.train.optim import param_groups  # noqa: E402

REPO = HERE.parent
SEED, LR, WEIGHT_DECAY, CLIP, EVAL_BATCH = 0, 1e-3, 0.01, 1.0, 1024
TARGET_OVERHEAD, TARGET_PEAK = 1.05, 0.60
MARK = "bench_peers"


# ---- workloads -----------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    title: str
    data: bl.Data
    make_model: Callable[[], torch.nn.Module]
    batch: int
    epochs: int
    repeats: int
    train_flops: float = 0.0  # forward + backward FLOPs of one training epoch (counted, not estimated)
    val_flops: float = 0.0  # forward FLOPs of one pass over the val split


def _digits_mlp() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return trainwise.create_model("mlp", (64,), 10, hidden=[256, 256])


def _digits_cnn() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return trainwise.create_model("cnn", (1, 8, 8), 10, width=32, stages=2, blocks=1, norm="batch")


def _compute_mlp(d: int, width: int) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        torch.manual_seed(SEED)
        return trainwise.create_model("mlp", (d,), 10, hidden=[width, width])

    return make


def synthetic(n: int, n_val: int, d: int) -> bl.Data:
    """A learnable 10-class problem: labels from a fixed random linear map of Gaussian inputs."""
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(n + n_val, d, generator=g)
    y = (x @ torch.randn(d, 10, generator=g)).argmax(1)
    return bl.Data(x[:n].contiguous(), y[:n].contiguous(), x[n:].contiguous(), y[n:].contiguous())


def count_flops(w: Workload) -> None:
    """FLOPs of one training step and one eval forward (torch.utils.flop_counter), scaled to an epoch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = w.make_model()
    d = w.data
    xb, yb = d.x[:w.batch], d.y[:w.batch]
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(xb), yb).backward()
    per_step = fc.get_total_flops()
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(d.xv[:EVAL_BATCH])
    per_eval = fc.get_total_flops()
    w.train_flops = per_step * len(d.x) / w.batch  # the ragged last batch counted pro rata
    w.val_flops = per_eval * len(d.xv) / min(EVAL_BATCH, len(d.xv))


def make_workloads(quick: bool, only: list[str] | None) -> list[Workload]:
    digits = bl.load_data()
    cnn_data = bl.Data(digits.x.reshape(-1, 1, 8, 8), digits.y, digits.xv.reshape(-1, 1, 8, 8), digits.yv)
    d, width = 1024, 2048
    n = 512 if quick else 2048
    ws = [
        Workload("mlp", "digits MLP 64→256→256→10, batch 64 (overhead-bound)", digits, _digits_mlp, 64,
                 3 if quick else 10, 2 if quick else 7),
        Workload("cnn", "digits CNN (registry `cnn`, width 32, 2 stages, BatchNorm) on 1×8×8, batch 64", cnn_data,
                 _digits_cnn, 64, 2 if quick else 5, 1 if quick else 5),
        # 10 epochs (≈ 4 s per call): at 3 a call was ≈ 1.2 s and measured trainwise's one-off costs (the
        # end-of-training checkpoint of 75 MB of weights + AdamW moments, best/final weights) more than training.
        Workload("compute", f"compute-bound MLP {d}→{width}→{width}→10, batch 256, synthetic {n} train / 512 val",
                 synthetic(n, 512, d), _compute_mlp(d, width), 256, 1 if quick else 10, 1 if quick else 5),
    ]
    return [w for w in ws if not only or w.name in only]


# ---- shared pieces of the hand-written variants --------------------------------------------------------------------


def order(n: int, epoch: int) -> torch.Tensor:
    """trainwise's epoch order (InMemoryLoader): every variant sees the same batches in the same order."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(SEED, epoch)))


class Batches:
    """The plain loop's batching as an iterable, for frameworks that take one (Lightning, Accelerate):
    one permutation per epoch (trainwise's), ``x[idx]`` gathers, no per-sample ``__getitem__``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, shuffle: bool) -> None:
        self.x, self.y, self.batch, self.shuffle, self.epoch = x, y, batch, shuffle, 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch)

    def __iter__(self):  # noqa: ANN204
        n, b = len(self.x), self.batch
        if not self.shuffle:
            for s in range(0, n, b):
                yield self.x[s:s + b], self.y[s:s + b]
            return
        idx = order(n, self.epoch)
        self.epoch += 1
        for s in range(0, n, b):
            j = idx[s:s + b]
            yield self.x[j], self.y[j]


def new_optimizer(model: torch.nn.Module, fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW with trainwise's parameter groups; torch's default implementation (foreach) unless ``fused``."""
    return torch.optim.AdamW(param_groups(model, LR, WEIGHT_DECAY), lr=LR, fused=fused)


# The hand-written evaluation and training step are bench_loop's own (same constants), so both scripts time the
# same "plain" loop.
evaluate_by_hand = bl._evaluate  # noqa: SLF001
_step = bl._train_step  # noqa: SLF001


# ---- variants ------------------------------------------------------------------------------------------------------


def run_plain(w: Workload, epochs: int, evaluate: bool = False, fused: bool | None = None) -> bl.Timing:
    model = w.make_model()
    t0 = time.perf_counter()
    opt = new_optimizer(model, fused)
    params = [p for p in model.parameters() if p.requires_grad]
    x, y, n, b = w.data.x, w.data.y, len(w.data.x), w.batch
    model.train()
    for epoch in range(epochs):
        idx = order(n, epoch)
        loss_sum = torch.zeros(())
        for s in range(0, n, b):
            j = idx[s:s + b]
            _step(model, opt, params, x[j], y[j], loss_sum)
        train_loss = loss_sum.item() / n
        if evaluate:
            evaluate_by_hand(model, w.data.xv, w.data.yv)
    dt = time.perf_counter() - t0
    return bl.Timing(dt, dt, epochs, train_loss)


def run_dataloader(w: Workload, epochs: int) -> bl.Timing:
    from torch.utils.data import DataLoader, TensorDataset

    model = w.make_model()
    t0 = time.perf_counter()
    opt = new_optimizer(model)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = DataLoader(TensorDataset(w.data.x, w.data.y), batch_size=w.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    model.train()
    for _ in range(epochs):
        loss_sum = torch.zeros(())
        for xb, yb in loader:
            _step(model, opt, params, xb, yb, loss_sum)
        train_loss = loss_sum.item() / len(w.data.x)
    dt = time.perf_counter() - t0
    return bl.Timing(dt, dt, epochs, train_loss)


def fit_kwargs(w: Workload, epochs: int) -> dict[str, Any]:
    # The workload spelled out (lr, decay, clip and batch are trainwise's defaults anyway); early stopping off only so
    # that every call runs exactly `epochs` epochs.
    return {"epochs": epochs, "seed": SEED, "grad_clip": CLIP, "early_stopping": False, "device": "cpu",
            "precision": "32", "data.batch_size": w.batch, "data.eval_batch_size": EVAL_BATCH,
            "optim": {"name": "adamw", "lr": LR, "weight_decay": WEIGHT_DECAY}, "schedule": {"name": "constant"}}


def run_trainwise(w: Workload, epochs: int, files: bool = True, extra: dict[str, Any] | None = None) -> bl.Timing:
    model = w.make_model()
    d = w.data
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers-"))
    try:
        t0 = time.perf_counter()
        r = trainwise.fit(model, {"train": (d.x, d.y), "val": (d.xv, d.yv)}, run_dir=tmp / "run" if files else None,
                          quiet=True, **fit_kwargs(w, epochs), **(extra or {}))
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bl.Timing(dt, float(r.summary.get("wall_seconds", dt)), len(r.history), float(r.history[-1]["train/loss"]))


_LIGHTNING: dict[str, Any] = {}


def _lightning() -> Any:
    """The LightningModule (defined on first use: lightning is only in the benchmark environment)."""
    if "module" in _LIGHTNING:
        return _LIGHTNING["module"]
    import lightning as L  # noqa: N812 - Lightning's own convention

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(L.LightningModule):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Any, _i: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
            return loss

        def validation_step(self, batch: Any, _i: int) -> None:
            x, y = batch
            out = self.model(x)
            self.log("val_loss", F.cross_entropy(out, y), batch_size=len(y))
            self.log("val_acc", (out.argmax(1) == y).float().mean(), batch_size=len(y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return new_optimizer(self.model)

    class LoopTimer(L.Callback):
        """Wall time from the first training batch's epoch to the end of training (epochs with validation and
        checkpoints; without Trainer construction, setup and the sanity check)."""

        def on_train_start(self, trainer: Any, module: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_end(self, trainer: Any, module: Any) -> None:
            self.seconds = time.perf_counter() - self.t0

    _LIGHTNING.update(module=Module, timer=LoopTimer, L=L)
    return Module


def run_lightning(w: Workload, epochs: int, defaults: bool) -> bl.Timing:
    _lightning()
    L, Module, LoopTimer = _LIGHTNING["L"], _LIGHTNING["module"], _LIGHTNING["timer"]
    model = w.make_model()
    d = w.data
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers-pl-"))
    timer = LoopTimer()
    common = {"max_epochs": epochs, "accelerator": "cpu", "devices": 1, "gradient_clip_val": CLIP,
              "gradient_clip_algorithm": "norm", "callbacks": [timer], "default_root_dir": str(tmp)}
    lean = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0}
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            trainer = L.Trainer(**common, **({} if defaults else lean))
            module = Module(model)
            trainer.fit(module, Batches(d.x, d.y, w.batch, True), Batches(d.xv, d.yv, EVAL_BATCH, False))
            dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bl.Timing(dt, getattr(timer, "seconds", dt), trainer.current_epoch,
                     float(trainer.callback_metrics["train_loss"]))


def run_accelerate(w: Workload, epochs: int) -> bl.Timing:
    from accelerate import Accelerator

    model = w.make_model()
    d = w.data
    t0 = time.perf_counter()
    acc = Accelerator(cpu=True)
    opt = new_optimizer(model)
    model, opt = acc.prepare(model, opt)
    params = [p for p in model.parameters() if p.requires_grad]
    batches = Batches(d.x, d.y, w.batch, True)
    model.train()
    for _ in range(epochs):
        loss_sum = torch.zeros(())
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            acc.backward(loss)
            acc.clip_grad_norm_(params, CLIP)
            opt.step()
            loss_sum += loss.detach() * len(yb)
        train_loss = loss_sum.item() / len(d.x)
        evaluate_by_hand(model, d.xv, d.yv)
    dt = time.perf_counter() - t0
    return bl.Timing(dt, dt, epochs, train_loss)


VARIANTS: list[tuple[str, str]] = [
    ("plain", "hand-written loop, batched indexing `x[idx]`, no evaluation: the floor"),
    ("plain+eval", "plain + val loss/accuracy after every epoch: the matched baseline for every row below"),
    ("dataloader", "textbook loop over `DataLoader(TensorDataset, batch, shuffle=True)`, per-sample, workers=0, no eval"),
    ("trainwise", "`trainwise.fit` defaults with a run dir (val metrics, best/final weights, epoch-end checkpoints at "
                  "most every 30 s and one at the end, JSON, curves.png, preflight, diagnosis)"),
    ("trainwise ckpt every epoch", "trainwise + `checkpoint.epoch_min_seconds=0`: a checkpoint at every epoch end, "
                                   "like Lightning's defaults"),
    ("trainwise run_dir=None", "`trainwise.fit` defaults writing no files"),
    ("trainwise all monitors", "trainwise + `doctor.monitor_every=1` (per-layer grad/update/activation monitors every "
                               "step) + `train.log_every=1` (a metrics line every step)"),
    ("lightning lean", "Lightning Trainer: logger, checkpointing, progress bar, model summary and sanity check off"),
    ("lightning defaults", "Lightning Trainer defaults (CSV logger, a checkpoint per epoch, progress bar, summary, "
                           "sanity check)"),
    ("accelerate", "Accelerate: `prepare(model, optimizer)`, `accelerator.backward`, `clip_grad_norm_`, val per epoch"),
    ("plain, fused AdamW (reference)", "compute workload only: `plain` with `AdamW(fused=True)` instead of torch's "
                                       "default (foreach) implementation — not a peer: it shows what the optimizer "
                                       "step costs the compute-bound loop"),
]
REFERENCE = "plain, fused AdamW (reference)"
PEERS = ("lightning lean", "lightning defaults", "accelerate")


def make_variants(w: Workload, skip_peers: dict[str, str]) -> list[bl.Variant]:
    runs: dict[str, Callable[[Any, int], bl.Timing]] = {
        "plain": lambda _d, e: run_plain(w, e),
        "plain+eval": lambda _d, e: run_plain(w, e, evaluate=True),
        "dataloader": lambda _d, e: run_dataloader(w, e),
        "trainwise": lambda _d, e: run_trainwise(w, e),
        "trainwise ckpt every epoch": lambda _d, e: run_trainwise(w, e, extra={"checkpoint.epoch_min_seconds": 0}),
        "trainwise run_dir=None": lambda _d, e: run_trainwise(w, e, files=False),
        "trainwise all monitors": lambda _d, e: run_trainwise(w, e, extra={"doctor.monitor_every": 1,
                                                                           "train.log_every": 1}),
        "lightning lean": lambda _d, e: run_lightning(w, e, defaults=False),
        "lightning defaults": lambda _d, e: run_lightning(w, e, defaults=True),
        "accelerate": lambda _d, e: run_accelerate(w, e),
        REFERENCE: lambda _d, e: run_plain(w, e, fused=True),
    }
    return [bl.Variant(name, runs[name], what) for name, what in VARIANTS
            if name not in skip_peers and (name != REFERENCE or w.name == "compute")]


def missing_peers() -> dict[str, str]:
    """Variants whose package is not installed (the test environment has neither): name → reason."""
    import importlib.util

    out = {}
    if importlib.util.find_spec("lightning") is None:
        out.update({"lightning lean": "lightning not installed", "lightning defaults": "lightning not installed"})
    if importlib.util.find_spec("accelerate") is None:
        out["accelerate"] = "accelerate not installed"
    return out


# ---- hardware peak -------------------------------------------------------------------------------------------------


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 5) -> dict[str, Any]:
    """Best fp32 GEMM rate (FLOP/s) over square sizes, with torch's thread setting: this machine's practical peak."""
    rows = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        rows[n] = 2 * n**3 / best
    n_best = max(rows, key=rows.__getitem__)
    return {"flops": rows[n_best], "size": n_best, "by_size": rows}


# ---- train section -------------------------------------------------------------------------------------------------


def _pm(xs: list[float]) -> str:
    return f"{min(xs) * 1e3:.1f}–{max(xs) * 1e3:.1f}"


def train_table(w: Workload, variants: list[bl.Variant], peak: float | None) -> tuple[list[str], dict[str, Any]]:
    by = {v.name: v for v in variants}
    plain = by["plain"].times

    def per(ts: list[bl.Timing], loop: bool) -> list[float]:
        return [(t.loop if loop else t.total) / t.epochs for t in ts]

    def ratio(ts: list[bl.Timing], loop: bool) -> list[float]:
        return [a / b for a, b in zip(per(ts, loop), per(plain, False))]

    head = ["| variant | ms/epoch, whole call (median) | min–max | × plain | ms/epoch, training loop | × plain "
            "(loop) | final train loss |" + (" GFLOP/s (loop) | % of peak |" if peak else ""),
            "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if peak else "")]
    rows, stats = [], {}
    for v in variants:
        whole, loop = per(v.times, False), per(v.times, True)
        evaluates = v.name not in ("plain", "dataloader", REFERENCE)
        flops = w.train_flops + (w.val_flops if evaluates else 0.0)
        s = {"whole_ms": statistics.median(whole) * 1e3, "whole_min_ms": min(whole) * 1e3,
             "whole_max_ms": max(whole) * 1e3, "ratio": statistics.median(ratio(v.times, False)),
             "ratio_cell": bl.ratio_cell(ratio(v.times, False)), "loop_ms": statistics.median(loop) * 1e3,
             "loop_ratio": statistics.median(ratio(v.times, True)),
             "loop_ratio_cell": bl.ratio_cell(ratio(v.times, True)),
             "train_loss": statistics.median(t.train_loss for t in v.times),
             "rounds": len(v.times), "flops_per_s": flops / statistics.median(loop) if flops else None,
             "whole_ms_per_round": [x * 1e3 for x in whole], "loop_ms_per_round": [x * 1e3 for x in loop]}
        stats[v.name] = s
        extra = ""
        if peak:
            extra = f" {s['flops_per_s'] / 1e9:.1f} | {s['flops_per_s'] / peak * 100:.0f}% |"
        same = all(t.total == t.loop for t in v.times)
        loop_ms = "=" if same else f"{s['loop_ms']:.1f}"
        loop_ratio = "=" if same else s["loop_ratio_cell"]
        rows.append(f"| {v.name} | {s['whole_ms']:.1f} | {_pm(whole)} | {s['ratio_cell']} | {loop_ms} | {loop_ratio} "
                    f"| {s['train_loss']:.4f} |{extra}")
    return head + rows, stats


def verdicts(results: dict[str, dict[str, Any]], peak: float | None, flops: dict[str, float]) -> list[str]:
    out = []
    if "mlp" in results and "trainwise" in results["mlp"]:
        r = results["mlp"]["trainwise"]
        ok = r["ratio"] <= TARGET_OVERHEAD
        out.append(f"trainwise defaults ≤ {TARGET_OVERHEAD:.2f}× plain on the overhead-bound digits MLP: "
                   f"**{'MET' if ok else 'NOT MET'}** — {r['ratio_cell']} for the whole `fit()` call, "
                   f"{r['loop_ratio_cell']} for its epoch loop (plain+eval: "
                   f"{results['mlp']['plain+eval']['ratio_cell']}; trainwise run_dir=None "
                   f"{results['mlp']['trainwise run_dir=None']['ratio_cell']}; median of per-round ratios with "
                   "their min–max).")
    for name, res in results.items():
        tw = res.get("trainwise")
        peers = {p: res[p] for p in PEERS if p in res}
        if tw is None or not peers:
            continue
        # Rounds share noise: the verdict uses the median of per-round ratios trainwise ÷ peer (as × plain does).
        per_round = {p: [a / b for a, b in zip(tw["whole_ms_per_round"], r["whole_ms_per_round"])]
                     for p, r in peers.items()}
        paired = {p: statistics.median(v) for p, v in per_round.items()}
        detail = ", ".join(f"{p} {r['whole_ms']:.1f} ms ({bl.ratio_cell(per_round[p])})" for p, r in peers.items())
        out.append(f"{name}: trainwise defaults faster than Lightning and Accelerate: "
                   f"**{'MET' if all(x < 1 for x in paired.values()) else 'NOT MET'}** — trainwise "
                   f"{tw['whole_ms']:.1f} ms/epoch vs {detail} (whole call, medians; in brackets the median of "
                   "per-round ratios trainwise ÷ peer with their min–max, < 1 = trainwise faster).")
    if peak and "compute" in results:
        res = results["compute"]
        for name in ("plain", "trainwise", REFERENCE):
            if name in res and res[name]["flops_per_s"]:
                frac = res[name]["flops_per_s"] / peak
                mark = ("for reference, not a target" if name == REFERENCE else
                        f"**{'MET' if frac >= TARGET_PEAK else 'NOT MET'}** (target ≥ {TARGET_PEAK * 100:.0f}%)")
                out.append(f"compute-bound MLP, {name}: {res[name]['flops_per_s'] / 1e9:.1f} GFLOP/s = {frac * 100:.0f}% "
                           f"of the measured fp32 matmul peak ({peak / 1e9:.1f} GFLOP/s): {mark}.")
    return out


# ---- time to accuracy ----------------------------------------------------------------------------------------------


def tta_section(repeats: int, quick: bool, tmp: Path, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any],
                                                                                          dict[str, Path]]:
    """trainwise presets vs scikit-learn on the same split: test accuracy and seconds (medians, interleaved)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    from trainwise.build import load_data
    from trainwise.config import compose
    from trainwise.runner import train

    overrides = ["device=cpu"] + (["train.epochs=5"] if quick else [])
    presets = ["digits-mlp"] if quick else ["digits-cnn", "digits-mlp"]
    splits = load_data(compose(preset="digits-cnn", overrides=["device=cpu"]))  # same split for both presets
    xtr = splits.train.x.reshape(len(splits.train.x), -1).numpy()
    xte = splits.test.x.reshape(len(splits.test.x), -1).numpy()
    ytr, yte = splits.train.y.numpy(), splits.test.y.numpy()
    runs: dict[str, Path] = {}
    results: dict[str, dict[str, list[float]]] = {}

    def tw(preset: str, r: int) -> tuple[float, float, dict[str, Any]]:
        rd = tmp / f"tta-{preset}-{r}"
        t0 = time.perf_counter()
        res = train(compose(preset=preset, overrides=overrides), run_dir=rd, quiet=True)
        dt = time.perf_counter() - t0
        runs.setdefault(preset, rd)
        return res.summary["test/accuracy"], dt, {"epochs": len(res.history), "train_seconds":
                                                  res.summary["wall_seconds"], "to97": _time_to(res.history, 0.97)}

    def sk(make: Callable[[], Any]) -> tuple[float, float, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLPClassifier's convergence warning at its default max_iter
            t0 = time.perf_counter()
            clf = make().fit(xtr, ytr)
            dt = time.perf_counter() - t0
        return float((clf.predict(xte) == yte).mean()), dt, {}

    cands: dict[str, Callable[[int], tuple[float, float, dict[str, Any]]]] = {
        **{f"trainwise {p} preset{' (default)' if p == 'digits-cnn' else ''}": (lambda r, p=p: tw(p, r))
           for p in presets},
        "scikit-learn SVC() (rbf, C=1)": lambda r: sk(SVC),
        "scikit-learn MLPClassifier(random_state=0)": lambda r: sk(lambda: MLPClassifier(random_state=0)),
    }
    extras: dict[str, dict[str, Any]] = {}
    names = list(cands)
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            gc.collect()
            acc, dt, extra = cands[name](r)
            results.setdefault(name, {"acc": [], "s": []})
            results[name]["acc"].append(acc)
            results[name]["s"].append(dt)
            extras.setdefault(name, extra)
            log(f"  {name}: test accuracy {acc:.4f} in {dt:.2f} s")
    lines = ["| method | test accuracy (median) | seconds to train (median) | min–max s | note |",
             "|---|---:|---:|---:|---|"]
    stats = {}
    for name in names:
        acc, s = results[name]["acc"], results[name]["s"]
        e = extras[name]
        note = ""
        if e:
            note = (f"{e['epochs']} epochs; {e['train_seconds']:.1f} s in the epoch loop"
                    + (f"; val accuracy ≥ 0.97 after {e['to97'][1]:.1f} s (epoch {e['to97'][0]})" if e["to97"] else ""))
        lines.append(f"| {name} | {statistics.median(acc):.4f} | {statistics.median(s):.2f} | {min(s):.2f}–"
                     f"{max(s):.2f} | {note} |")
        stats[name] = {"accuracy": statistics.median(acc), "seconds": statistics.median(s), **e}
    header = (f"Split: trainwise's digits split (seed 0: {len(xtr)} train / {len(splits.val.x)} val / {len(xte)} test, "
              "stratified, standardised with train statistics); scikit-learn fits the train split and is scored on "
              "the same test split. trainwise seconds are the whole `trainwise.runner.train(compose(preset=…))` call "
              "(data loading, preflight, run directory, early stopping as configured); scikit-learn's are `fit()`.")
    return [header, "", *lines], stats, runs


def _time_to(history: list[dict[str, Any]], acc: float) -> tuple[int, float] | None:
    total = 0.0
    for h in history:
        total += h.get("seconds", 0.0)
        if h.get("val/accuracy", 0.0) >= acc:
            return h["epoch"] + 1, total
    return None


# ---- inference -----------------------------------------------------------------------------------------------------


def infer_section(runs: dict[str, Path], repeats: int, quick: bool, log: Callable[[str], None]
                  ) -> tuple[list[str], dict[str, Any]]:
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.bench import ROWS, bench_infer
    from trainwise.deploy.quantize import quantize_run

    lines, stats = [], {}
    for preset, rd in runs.items():
        try:
            log(f"  quantizing {preset} (static int8) ...")
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_run(open_run(rd), "static", repeats=3)
        except Exception as exc:  # noqa: BLE001 - the int8 row then says why
            log(f"  quantize failed: {type(exc).__name__}: {exc}")
        # Three separate interleaved groups: torch modes, ONNX Runtime fp32, int8. In one rotation, ONNX Runtime's
        # intra-op threads keep spinning after each call and slow whichever torch mode runs next on a 2-core machine
        # (measured: eager batch-1 latency 3× with the fp32 session in the rotation, 40× with the int8 one as well).
        groups = [("eager", "no_grad", "inference_mode") + (() if quick else ("compile",)), ("onnxruntime",), ("int8",)]
        rows_by_mode: dict[str, dict[str, Any]] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for keep in groups:
                for r in bench_infer(rd, repeats=repeats, skip=[m for m in ROWS if m not in keep], log=log):
                    if r["mode"] in keep or r["mode"] not in rows_by_mode:
                        rows_by_mode[r["mode"]] = r
        rows = [rows_by_mode[m] for m in ROWS]
        eager = rows_by_mode["eager"]
        for r in rows:  # speed-ups against the torch group's eager row
            if r["status"] == "ok" and eager["status"] == "ok":
                r["speedup_b256_vs_eager"] = eager["latency_ms_b256"] / r["latency_ms_b256"]
        stats[preset] = rows
        lines += [f"**{preset}** ({rows[0]['threads']} threads, medians of {repeats} interleaved rounds):", "",
                  "| mode | batch-1 latency ms | batch-256 samples/s | × eager (batch 256) | note |",
                  "|---|---:|---:|---:|---|"]
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"| {r['mode']} | – | – | – | {r['status']} |")
                continue
            sp = r.get("speedup_b256_vs_eager")
            lines.append(f"| {r['mode']} | {r['latency_ms_b1']:.3f} | {r['throughput_b256']:,.0f} | "
                         f"{f'{sp:.2f}×' if sp else '–'} | {r.get('note', '')} |")
        lines.append("")
    return lines, stats


# ---- report --------------------------------------------------------------------------------------------------------


def replace_section(path: Path, name: str, body: str) -> None:
    """Replace this script's marked section ``name`` in ``path`` (appended when missing); nothing else changes."""
    bl.replace_section(path, name, body, mark=MARK)


def machine() -> dict[str, str]:
    """bench_loop's machine details, with the list of uncommitted trainwise files read from `git status -z`."""
    import subprocess

    info = bl.machine()
    try:
        raw = subprocess.run(["git", "status", "--porcelain", "-z", "--", "src"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return info
    dirty = sorted(e[3:].removeprefix("src/trainwise/") for e in raw.split("\0") if len(e) > 3)
    info["trainwise"] = f"{trainwise.__version__} @ {head or '?'}" + (
        f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")
    return info


def plan(args: argparse.Namespace, workloads: list[str]) -> str:
    missing = missing_peers()
    lines = [f"sections: {', '.join(args.sections)}", f"workloads: {', '.join(workloads)}", "variants:"]
    for name, what in VARIANTS:
        lines.append(f"  {name:<24} {what}" + (f"  [skipped: {missing[name]}]" if name in missing else ""))
    lines.append(f"mode: {'quick' if args.quick else 'full'}; noise control: wait ≤ {args.max_wait:.0f} s for other "
                 f"processes < {args.quiet_threshold} cores, ≤ {args.max_retries} reruns")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench_peers.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="short run (about 1–2 min): fewer epochs and rounds, smaller "
                    "compute workload, no torch.compile row, no waiting for a quiet machine; prints only unless "
                    "--out is given")
    ap.add_argument("--dry-run", action="store_true", help="print the plan (sections, workloads, variants) and exit")
    ap.add_argument("--sections", default="train,data,tta,infer",
                    help="comma-separated subset of train,data,tta,infer (default: all)")
    ap.add_argument("--workloads", default="mlp,cnn,compute", help="comma-separated subset of mlp,cnn,compute")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per workload (default: mlp 7, cnn 5, "
                    "compute 5; quick: 2, 1, 1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per measurement (default: mlp 10, cnn 5, "
                    "compute 10; quick: 3, 2, 1)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds per workload")
    ap.add_argument("--tta-repeats", type=int, default=None, help="rounds of the time-to-accuracy section "
                    "(default 3; quick 1)")
    ap.add_argument("--infer-repeats", type=int, default=None, help="rounds of the inference section "
                    "(default 15; quick 5)")
    bl.add_machine_options(ap, max_wait=120.0, max_retries=10)  # --max-retries counts per workload here
    ap.add_argument("--out", default=None, help="markdown file whose bench_peers sections are replaced (default "
                    "benchmarks/RESULTS.md; '-' writes nothing; --quick writes nothing unless given)")
    ap.add_argument("--json", default=None, help="also write all numbers as JSON here (default with a full run: "
                    "benchmarks/results/bench_peers_cpu.json)")
    args = ap.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in args.sections if s not in ("train", "data", "tta", "infer")]
    wl_names = [s.strip() for s in args.workloads.split(",") if s.strip()]
    bad += [s for s in wl_names if s not in ("mlp", "cnn", "compute")]
    if bad:
        ap.error(f"unknown section/workload: {', '.join(bad)}")
    if args.quick:
        args.max_wait, args.max_retries = 0.0, 0
    if args.dry_run:
        print(plan(args, wl_names))
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = None if args.out == "-" else Path(args.out) if args.out else (None if args.quick else HERE / "RESULTS.md")
    json_path = Path(args.json) if args.json else (None if args.quick or args.out == "-"
                                                    else HERE / "results" / "bench_peers_cpu.json")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]) \
        if argv is None else "bench_peers.main(" + repr(argv) + ")"
    t_start = time.perf_counter()
    info = machine()
    for k, v in info.items():
        print(f"{k:>14}: {v}")
    env = "\n".join(f"- {k}: {v}" for k, v in info.items())
    missing = missing_peers()
    for name, why in missing.items():
        print(f"  {name}: skipped ({why}); run in the benchmark environment (make bench-venv)")
    sections: dict[str, str] = {}
    everything: dict[str, Any] = {"machine": info, "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    meter = bl.CpuMeter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers-"))

    def log(s: str) -> None:
        print(s, flush=True)

    try:
        if "train" in args.sections:
            if args.max_wait > 0:
                bl.wait_for_quiet(meter, args.quiet_threshold, args.max_wait)
            peak = matmul_peak()
            log(f"fp32 matmul peak: {peak['flops'] / 1e9:.1f} GFLOP/s (n={peak['size']}; "
                + ", ".join(f"{n}: {f / 1e9:.1f}" for n, f in peak["by_size"].items()) + ")")
            everything["matmul_peak"] = peak
            results: dict[str, dict[str, Any]] = {}
            parts = []
            for w in make_workloads(args.quick, wl_names):
                w.epochs = args.epochs or w.epochs
                w.repeats = args.repeats or w.repeats
                count_flops(w)
                log(f"\n{w.title}: {w.epochs} epochs × {w.repeats} rounds; {w.train_flops / 1e9:.2f} GFLOP per "
                    f"training epoch")
                variants = make_variants(w, missing)
                others, discarded = bl.run_rounds(variants, w.data, w.epochs, w.repeats, args.warmup,
                                                  args.quiet_threshold, args.max_wait, args.max_retries)
                is_compute = w.name == "compute"
                lines, stats = train_table(w, variants, peak["flops"] if is_compute else None)
                results[w.name] = stats
                noise = (f"other processes' CPU use during the timed runs: median {statistics.median(others):.2f}, "
                         f"max {max(others):.2f} cores; {discarded} round(s) discarded and rerun"
                         if others else "other processes' CPU use: not measured")
                log("\n".join(lines) + "\n" + noise)
                parts.append(f"### {w.title}\n\n{w.epochs} epochs per measurement, {len(variants[0].times)} "
                             f"interleaved rounds; {len(w.data.x)} train / {len(w.data.xv)} val samples; "
                             f"{w.train_flops / 1e9:.2f} GFLOP per training epoch (counted by "
                             f"`torch.utils.flop_counter`). {noise}.\n\n" + "\n".join(lines) + "\n")
                everything.setdefault("train", {})[w.name] = {"title": w.title, "epochs": w.epochs, "stats": stats,
                                                              "discarded": discarded, "others_cores": others}
            vs = verdicts(results, peak["flops"], {})
            for v in vs:
                log(v)
            everything["verdicts"] = vs
            what = "\n".join(f"| {name} | {desc} |" for name, desc in VARIANTS)
            sections["train"] = (
                f"## trainwise vs the plain loop, Lightning and Accelerate (seconds per epoch, CPU)\n\n"
                f"Command: `{command}`  \nRun: {everything['started']}; fp32 matmul peak measured in the same run: "
                f"**{peak['flops'] / 1e9:.1f} GFLOP/s** (best of square GEMMs "
                + ", ".join(f"{n}: {f / 1e9:.1f}" for n, f in peak["by_size"].items()) + ").\n\n" + env + "\n\n"
                "Targets:\n\n" + "\n".join(f"- {v}" for v in vs) + "\n\n"
                "| variant | what runs |\n|---|---|\n" + what + "\n\n"
                "Every variant starts from the same initial weights and sees the same batches in the same order "
                "(trainwise's per-epoch permutation; the DataLoader row shuffles with its own generator). "
                "\"whole call\" is the wall time of everything from building the optimizer / Trainer to the "
                "return, ÷ epochs; \"training loop\" is fit()'s `wall_seconds` (trainwise), on_train_start → "
                "on_train_end (Lightning), or the same as the whole call (hand-written loops, marked =). "
                "Ratios are medians of per-round ratios to `plain`'s whole time (rounds share noise), with their "
                "min–max over the rounds in brackets. "
                "Lightning and Accelerate get the same in-memory batches as `plain` (an iterable of `x[idx]` "
                "gathers), so their rows measure the framework, not a DataLoader.\n\n" + "\n".join(parts))
        if "data" in args.sections:
            log("\ndata path (batches of 64 per second, iteration only):")
            rows = []
            wl = {w.name: w for w in make_workloads(args.quick, ["mlp", "compute"])}
            for name in ("mlp", "compute"):
                dp = bl.data_path_rounds(wl[name].data, 2 if args.quick else 10, 2 if args.quick else 5,
                                         args.quiet_threshold, args.max_wait)
                for loader, xs, rel in dp:
                    rows.append(f"| {tuple(wl[name].data.x.shape[1:])} × {len(wl[name].data.x)} | {loader} | "
                                f"{statistics.median(xs):,.0f} | {min(xs):,.0f}–{max(xs):,.0f} | {rel:.3f}× |")
                everything.setdefault("data", {})[name] = [{"loader": a, "batches_per_s": b, "rel": c}
                                                          for a, b, c in dp]
            table = ["| samples | loader | median batches/s | min–max | × in-memory |", "|---|---|---:|---:|---:|", *rows]
            log("\n".join(table))
            sections["data"] = ("## Data path (batches of 64 per second, iteration only)\n\nCommand: "
                                f"`{command}` (bench_loop.py's `data_path_rounds`; persistent workers are already up "
                                "when timed, non-persistent ones respawn every epoch).\n\n" + "\n".join(table) + "\n")
        runs: dict[str, Path] = {}
        if "tta" in args.sections or "infer" in args.sections:
            log("\ntime to accuracy on digits:")
            if args.max_wait > 0:
                bl.wait_for_quiet(meter, args.quiet_threshold, args.max_wait)
            reps = args.tta_repeats or (1 if args.quick else 3)
            lines, stats, runs = tta_section(reps if "tta" in args.sections else 1, args.quick, tmp, log)
            if "tta" in args.sections:
                everything["tta"] = stats
                log("\n".join(lines))
                sections["tta"] = (f"## Time to accuracy on digits\n\nCommand: `{command}` ({reps} interleaved "
                                   f"round(s){'; quick: presets shortened to 5 epochs' if args.quick else ''}).\n\n"
                                   + "\n".join(lines) + "\n")
        if "infer" in args.sections:
            log("\ninference (trainwise bench-infer on the runs above):")
            reps = args.infer_repeats or (5 if args.quick else 15)
            lines, stats = infer_section(runs, reps, args.quick, log)
            everything["infer"] = stats
            log("\n".join(lines))
            sections["infer"] = (f"## Inference\n\nCommand: `{command}` (`trainwise.deploy.bench.bench_infer`, the code "
                                 "of `trainwise bench-infer RUN_DIR`, on the time-to-accuracy runs; int8 = "
                                 "`trainwise quantize RUN_DIR --method static` first). Timed in three separate "
                                 "interleaved groups — the torch modes, ONNX Runtime fp32, int8 — because ONNX "
                                 "Runtime's spinning intra-op threads slow the call after theirs on this 2-core "
                                 "machine; × eager is against the torch group's eager row.\n\n"
                                 + "\n".join(lines) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t_start
    log(f"\nbenchmark wall time {wall:.0f} s")
    everything["wall_seconds"] = wall
    if out is not None:
        for name, body in sections.items():
            replace_section(out, name, body)
        log(f"wrote {', '.join(sections)} section(s) of {out}")
    if json_path is not None:  # sections not run this time keep their earlier numbers
        json_path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(json_path.read_text()) if json_path.is_file() else {}
        for key in ("train", "data", "tta", "infer"):
            if key in everything:
                everything.setdefault("commands", {})[key] = command
        everything["commands"] = {**old.get("commands", {}), **everything.get("commands", {})}
        json_path.write_text(json.dumps({**old, **everything}, indent=2, default=str) + "\n")
        log(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

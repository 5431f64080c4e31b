"""A config end to end: data → model → ``fit`` (train, resume), and re-evaluating or listing a finished run.

The CLI is a thin layer over these functions. Building the data and model lives in :mod:`trainwise.build`, reopening
a finished run in :mod:`trainwise.reopen`, predictions in :mod:`trainwise.deploy.predict`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from trainwise.build import build_model, load_data
from trainwise.config import compose
from trainwise.data.loaders import make_loader
from trainwise.data.splits import Splits
from trainwise.errors import TrainwiseError
from trainwise.reopen import open_run
from trainwise.run.rundir import load_weights, write_json
from trainwise.safety import check_inside, check_writable
from trainwise.tasks import make_task
from trainwise.train.checkpoint import list_checkpoints, verify
from trainwise.train.loop import FitResult, evaluate, fit, seed_everything
from trainwise.train.precision import resolve_device, resolve_precision


def setup(cfg: DictConfig) -> tuple[Splits, torch.nn.Module, torch.device, str]:
    """Data, model (initialised from the seed, on its device, in train mode), device and precision for a config —
    the construction every entry point shares (train, lr-find, overfit-batch)."""
    splits = load_data(cfg)
    seed_everything(cfg.seed)  # model init is part of the run's randomness
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    device = resolve_device(cfg.device)
    model.to(device).train()
    return splits, model, device, resolve_precision(cfg.precision, device)


def train(cfg: DictConfig, run_dir: str | Path | None = "auto", quiet: bool = False) -> FitResult:
    """Train the model a config describes on the data it names (``model.init_from``: start from other weights)."""
    splits = load_data(cfg, quiet=quiet)
    seed_everything(cfg.seed)  # model init is part of the run's randomness
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    report = None
    if cfg.model.get("init_from"):
        source = str(cfg.model.init_from)
        if source.startswith("preset:"):  # pretrain first, as an ordinary run beside this one
            source = str(_pretrain(source[len("preset:"):], cfg, run_dir, quiet))
        report = init_weights(model, source, bool(cfg.model.get("init_strict", False)),
                              str(cfg.model.get("init_prefix") or ""))
        sys.stderr.write(f"initialised from {source}: {report['loaded']} tensors loaded, {len(report['missing'])} "
                         f"missing, {len(report['unexpected'])} unexpected, {len(report['mismatched'])} shape "
                         "mismatches\n")
    result = fit(model, splits, config=cfg, run_dir=run_dir, quiet=quiet)
    _write_data_report(splits, result)
    if report is not None and result.run_dir is not None:
        write_json(result.run_dir / "init.json", report)
    return result


def _pretrain(preset: str, cfg: DictConfig, run_dir: str | Path | None, quiet: bool) -> Path:
    pre_cfg = compose(preset=preset, overrides=[f"seed={cfg.seed}", f"device={cfg.device}"])
    where = None if run_dir in (None, "auto") else f"{run_dir}-pretrain"
    r = train(pre_cfg, run_dir=where or "auto", quiet=quiet)
    assert r.run_dir is not None
    return r.run_dir


def init_weights(model: torch.nn.Module, source: str | Path, strict: bool = False, prefix: str = "") -> dict[str, Any]:
    """Load a backbone into ``model`` from a run directory (its best weights) or a weights file (.safetensors, or a
    plain state-dict .pt read with ``weights_only=True``). Partial by default: tensors whose name and shape match are
    loaded; the rest are reported (``strict``: any mismatch is an error). ``prefix`` (``model.init_prefix``) takes
    only the source tensors under that name, with it stripped: ``encoder.`` loads a SimCLR encoder into a classifier."""
    src = Path(source)
    if src.is_dir():
        files = [src / "best.safetensors", src / "final.safetensors"]
        found = [f for f in files if f.is_file()]
        if not found:
            raise TrainwiseError(f"model.init_from='{src}' holds no best.safetensors / final.safetensors")
        src = found[0]
    elif not src.is_file():
        raise TrainwiseError(f"model.init_from='{src}' does not exist; give a run directory or a weights file")
    weights = load_weights(src)
    if prefix:
        weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    own = model.state_dict()
    matched = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    report: dict[str, Any] = {"source": str(src), "loaded": len(matched),
              "missing": sorted(k for k in own if k not in matched),
              "unexpected": sorted(k for k in weights if k not in own),
              "mismatched": sorted(k for k in weights if k in own and own[k].shape != weights[k].shape)}
    if strict and (report["missing"] or report["unexpected"] or report["mismatched"]):
        raise TrainwiseError(f"model.init_strict=true but '{src}' does not match the model: missing "
                             f"{report['missing'][:3]}, unexpected {report['unexpected'][:3]}, shape mismatches "
                             f"{report['mismatched'][:3]}")
    if not matched:
        raise TrainwiseError(f"no tensor of '{src}' matches the model (names or shapes differ); is it the same "
                             "architecture?")
    model.load_state_dict(matched, strict=False)
    return report


def resume(run_dir: str | Path, quiet: bool = False) -> FitResult:
    """Continue a run from its newest valid checkpoint (torn or corrupted ones are reported and skipped)."""
    rd = Path(run_dir)
    if not (rd / "config.yaml").is_file():
        raise TrainwiseError(f"'{rd}' is not a run directory (no config.yaml); give a directory made by "
                             "'trainwise train'")
    if (rd / "summary.json").is_file():  # the run ended (all epochs, early stopping, a callback, …)
        try:
            done = json.loads((rd / "summary.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise TrainwiseError(f"'{rd / 'summary.json'}' is damaged, but its presence says the run finished; "
                                 "nothing to resume (delete summary.json to resume from the newest checkpoint)") \
                from None
        done = done if isinstance(done, dict) else {}
        raise TrainwiseError(f"'{rd}' already finished ({done.get('epochs')} epochs, stopped: "
                             f"{done.get('stopped')}); nothing to resume. To train further, start a new run from its "
                             f"weights: trainwise train … model.init_from={rd}")
    cfg = compose(rd / "config.yaml")
    check_resumable_writes(rd)
    splits = load_data(cfg, quiet=quiet)
    seed_everything(cfg.seed)
    model = build_model(cfg, splits.preprocess, splits.num_classes)
    result = fit(model, splits, config=cfg, resume=rd, quiet=quiet)
    _write_data_report(splits, result)
    return result


def check_resumable_writes(rd: Path) -> None:
    """Everything resume will write, checked before any data is loaded or any step is taken: a read-only or immutable
    run directory used to be found only by the final save, after the whole remaining training."""
    logs = ("metrics.jsonl", "monitors.jsonl")  # truncated to the checkpoint's offset, then appended to
    for name in (*logs, "checkpoints"):
        check_inside(rd / name, rd, name)
    check_writable(rd, logs)
    ckpts = rd / "checkpoints"
    if ckpts.exists() and not ckpts.is_dir():
        raise TrainwiseError(f"'{ckpts}' is a file where the run's checkpoint folder belongs; nothing can be resumed "
                             "from it (move it away to see what it is)")
    if ckpts.is_dir():  # new checkpoint folders go here, and old ones are pruned
        check_writable(ckpts, what="checkpoint folder")


def _write_data_report(splits: Splits, result: FitResult) -> None:
    """RUN_DIR/data_report.json: what an image folder or text file held (skipped files / rows and why, cache), and
    the files a source ships with the run (text: tokenizer.json)."""
    if splits.report and result.run_dir is not None:
        from trainwise.run.rundir import write_text

        write_json(Path(result.run_dir) / "data_report.json", splits.report)
        for name, text in splits.files.items():
            write_text(Path(result.run_dir) / name, text)


def checkpoint_table(run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per checkpoint: step, epoch, batch, monitored metric, size, verified (or why not)."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise TrainwiseError(f"run directory '{rd}' does not exist")
    rows = []
    for folder in list_checkpoints(rd / "checkpoints"):
        reason = verify(folder)
        row: dict[str, Any] = {"name": folder.name, "step": int(folder.name.split("-")[1]),
                               "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
                               "verified": reason is None, "problem": reason or ""}
        if reason is None:
            try:
                state = json.loads((folder / "state.json").read_text())
                row.update({"epoch": state["loop"]["epoch"], "batch": state["loop"]["pos"],
                            "monitor": state["monitor"]["name"], "value": state["monitor"]["value"]})
                if not isinstance(row["value"], (int, float)) or isinstance(row["value"], bool):
                    row["value"] = None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, RecursionError):
                row.update({"verified": False, "problem": "state.json malformed"})
        rows.append(row)
    return rows


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, float]:
    """Re-evaluate a run's saved (best) weights on one of its splits, rebuilt deterministically from its seed."""
    rd, cfg, prep, model = open_run(run_dir)
    splits = load_data(cfg)
    part = getattr(splits, split)
    if part is None:
        raise TrainwiseError(f"run '{rd}' has no {split} split (its fraction was 0)")
    device = resolve_device(cfg.device)
    model.to(device)
    task = make_task(prep.task, splits.num_classes, 0.0, prep.y_mean, prep.y_std, cfg=cfg)  # the run's paradigm
    data = part if isinstance(part, torch.utils.data.Dataset) else (part.x, part.y)  # npy/images: memory-mapped
    loader = make_loader(data, cfg.data.eval_batch_size, shuffle=False, drop_last=False, seed=cfg.seed, device=device)
    return evaluate(model, loader, task, resolve_precision(cfg.precision, device), device)

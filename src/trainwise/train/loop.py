"""The supervised training loop — the textbook loop, with the production details filled in.

Read top to bottom: ``fit`` resolves options, builds loaders/optimizer/schedule, then runs ``train_epoch`` and
``evaluate`` per epoch, keeps the best weights, and writes the run directory. The per-step path does no host sync:
loss and correct-count accumulate on the device and are read at log intervals and at the end of each epoch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from trainwise.config import from_kwargs, to_dict, to_yaml
from trainwise.data.loaders import DeviceDataLoader, InMemoryLoader, epoch_seed, make_loader
from trainwise.data.sources import from_arrays
from trainwise.data.splits import Splits, split_table
from trainwise.doctor.crash import crash_fixes, crash_site
from trainwise.doctor.diagnose import RunRecord, diagnose
from trainwise.doctor.findings import render
from trainwise.doctor.monitors import Monitor
from trainwise.doctor.preflight import (
    check_data,
    check_model,
    check_splits,
    check_structure,
    label_agreement,
    time_fetch,
)
from trainwise.doctor.recorder import CrashRecorder
from trainwise.errors import TrainwiseError
from trainwise.progress import Reporter
from trainwise.run.rundir import MetricsLog, new_run_dir, save_weights, versions, write_json, write_text
from trainwise.tasks import Task, make_task, minimize
from trainwise.train.augment import mix, random_shift
from trainwise.train.checkpoint import Checkpointer
from trainwise.train.distributed import (
    from_env,
    full_state_dict,
    load_full_state_dict,
    local_device,
    rank_seed,
    wrap,
)
from trainwise.train.optim import build_optimizer
from trainwise.train.precision import autocast, grad_scaler, resolve_device, resolve_precision
from trainwise.train.schedule import build_schedule
from trainwise.train.state import LoopState, StopFlag, TrainingInterrupted
from trainwise.train.step import Stepper

Loader = InMemoryLoader | DeviceDataLoader


@dataclass
class FitResult:
    """What ``fit`` returns: per-epoch history, final metrics (``summary``), the model (best weights), paths."""

    model: nn.Module
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None
    step_losses: list[float] = field(default_factory=list)  # per micro-batch, only with record_step_losses
    findings: list[dict[str, Any]] = field(default_factory=list)  # the doctor's diagnosis


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _as_splits(data: Any, cfg: DictConfig) -> Splits | dict[str, Any]:
    """Accept a Splits, (x, y) arrays to split, or a dict of pre-split ``{"train": (x, y) | Dataset, ...}``."""
    if isinstance(data, Splits):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        table = from_arrays(data[0], data[1], cfg.data.task)
        return split_table(table, cfg.seed, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.standardize)
    if isinstance(data, dict) and "train" in data:
        return data
    if isinstance(data, torch.utils.data.Dataset):
        return {"train": data}
    raise TrainwiseError("data must be (x, y) arrays, a dict {'train': …, 'val': …, 'test': …} of (x, y) or "
                         "Datasets, a torch Dataset, or trainwise Splits")


def _to_tensors(part: Any) -> tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset | None:
    if part is None or isinstance(part, torch.utils.data.Dataset):
        return part
    x, y = part
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x), \
        torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)


def _first_batch(loader: Loader) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(loader, InMemoryLoader):
        return loader.x[: loader.batch_size], loader.y[: loader.batch_size]
    return loader.peek(2)


def set_frozen(model: nn.Module, frozen: bool) -> None:
    """Transfer learning's first phase: only the head (the last ``nn.Linear``) trains. Frozen parameters get no
    gradient, so the optimizer skips them (no update, no weight decay) without being rebuilt. Batch-norm layers of a
    frozen body also keep their running statistics (eval mode): those are buffers, which ``requires_grad`` does not
    protect, and a few head-only epochs on new data would otherwise shift what the pretrained body normalises by.
    Call after ``model.train()``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = {id(p) for p in linears[-1].parameters()} if linears else set()
    for p in model.parameters():
        p.requires_grad_(not frozen or id(p) in head)
    if frozen:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):  # noqa: SLF001 - BatchNorm1d/2d/3d and SyncBatchNorm
                m.eval()


def check_model_fits(model: nn.Module, task: Task, loader: Loader, precision: str, device: torch.device) -> None:
    """One forward in eval mode on a few samples: the model accepts the input and its output matches the task.
    Eval + inference_mode change no state (BN statistics, RNG), so training is unaffected."""
    x, y = _first_batch(loader)
    x, y = x[:2], y[:2]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(precision, device):
            task.check_model(model, x, y)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        what, fixes = crash_fixes(type(exc).__name__, str(exc), crash_site(exc, model))  # names the failing layer
        raise TrainwiseError(f"the model cannot take inputs of shape {tuple(x.shape[1:])} ({x.dtype}): {what}; "
                             f"{fixes[0]}") from None
    finally:
        model.train(was_training)


def _sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def evaluate(model: nn.Module, loader: Loader, task: Task, precision: str, device: torch.device) -> dict[str, float]:
    """Loss and metrics over a whole split under ``eval()`` (dropout off, BN running stats) and ``inference_mode``
    (no autograd graph): both are needed, neither implies the other."""
    was_training = model.training
    model.eval()
    outs, ys = [], []
    loss_sum = torch.zeros((), device=device)
    # FSDP2 reuses its all-gather buffers for training, and tensors created under inference_mode cannot be updated
    # in place later: a sharded model evaluates under no_grad (same numbers, a little more bookkeeping).
    grad_off = torch.no_grad() if _sharded(model) else torch.inference_mode()
    with grad_off, autocast(precision, device):
        for x, y in loader:
            batch_loss, out, target = task.eval_batch(model, x, y)
            loss_sum += batch_loss
            outs.append(out)
            ys.append(target)
    model.train(was_training)
    out, y = torch.cat(outs), torch.cat(ys)
    metrics = {"loss": (loss_sum / len(out)).item()}
    metrics.update(task.metrics(out, y))
    return metrics


def _group_weights(batch_sizes: list[int], k: int) -> list[float]:
    """Weight of each micro-batch's mean loss so that K micro-batches give the gradient of their union's mean loss
    (a ragged last batch and a partial last group included)."""
    weights = []
    for start in range(0, len(batch_sizes), k):
        group = batch_sizes[start:start + k]
        total = sum(group)
        weights += [b / total for b in group]
    return weights


def _batch_sizes(loader: Loader, n: int) -> list[int]:
    bs = loader.batch_size
    steps = len(loader)
    return [min(bs, n - i * bs) for i in range(steps)]


def fit(model: nn.Module, data: Any, *, config: DictConfig | None = None, run_dir: str | Path | None = "auto",
        quiet: bool = True, callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
        record_step_losses: bool = False, resume: str | Path | None = None, **options: Any) -> FitResult:
    """Train ``model`` on ``data`` with the production loop and return history, metrics and paths.

    ``data``: ``(x, y)`` arrays (split and standardised here, stratified, from the seed), a dict
    ``{"train": (x, y), "val": …, "test": …}`` used as given, a ``Dataset`` (DataLoader path), or ``Splits``.
    ``options`` override config keys: ``epochs=5``, ``optim={"lr": 1e-3}``, ``**{"optim.lr": 1e-3}``.
    ``run_dir``: ``"auto"`` → ``runs/<name>-<stamp>``; a path (must not exist); ``None`` → write nothing.
    ``callbacks``: observers called with a copy of every metrics event; one returning ``True`` asks the loop to stop
    after the current epoch (``summary["stopped"] == "callback"``; best weights, checkpoint and test still happen).
    ``resume``: a run directory to continue from its newest valid checkpoint (``config`` must be that run's).

    Raises :class:`TrainingInterrupted` after saving a checkpoint when SIGINT/SIGTERM arrives.
    """
    cfg = from_kwargs(config, **options) if (options or config is None) else config
    if config is None:  # a model object, not one built from cfg.model: record what it was, honestly
        from omegaconf import OmegaConf

        OmegaConf.update(cfg, "model", {"name": "python", "class": f"{type(model).__module__}."
                                                                  f"{type(model).__qualname__}"}, merge=False)
        if not isinstance(data, Splits):
            cfg.data.source = "python"  # data handed over in memory, not loaded by name
    # ---- profile=true (train/profile.py): this call re-enters itself once under torch.profiler; nothing per step --
    if cfg.profile:
        from trainwise.train import profile as _profile

        if not _profile.ACTIVE:
            return _profile.profiled_fit(fit, model, data, cfg, run_dir=run_dir, quiet=quiet, callbacks=callbacks,
                                         record_step_losses=record_step_losses, resume=resume)
    # ---- end profile ---------------------------------------------------------------------------------------------
    d, t, o, s = cfg.data, cfg.train, cfg.optim, cfg.schedule
    if cfg.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's requirement for reproducible GEMMs
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    device = resolve_device(cfg.device)
    dctx = from_env(cfg.strategy, device)  # torchrun's environment → DDP / FSDP; a no-op in a single process
    device = local_device(dctx, device)
    distributed, writer = dctx.enabled, dctx.main  # only rank 0 writes the run directory
    if distributed and cfg.paradigm.name in ("gan", "contrastive"):
        raise TrainwiseError(f"paradigm.name={cfg.paradigm.name} is not supported with strategy={dctx.strategy} yet "
                             "(its step runs several forwards or optimizers outside the wrapper); run it in one "
                             "process")
    if dctx.strategy == "fsdp" and t.ema_decay:
        raise TrainwiseError("train.ema_decay is not supported with strategy=fsdp (the EMA copy would not be "
                             "sharded); set train.ema_decay=null or use strategy=ddp")
    seed_everything(rank_seed(cfg.seed, dctx.rank))  # dropout differs per rank; rank 0 = the single-process run
    precision = resolve_precision(cfg.precision, device)

    splits = _as_splits(data, cfg)
    if isinstance(splits, Splits):
        # A split is tensors (the in-memory path) or a Dataset (data.source=npy|images: memory-mapped, DataLoader path)
        parts = {k: s if s is None or isinstance(s, torch.utils.data.Dataset) else (s.x, s.y)
                 for k, s in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
        kind, num_classes = splits.task, splits.num_classes
        y_mean, y_std = splits.preprocess.y_mean, splits.preprocess.y_std
    else:
        parts = {k: _to_tensors(splits.get(k)) for k in ("train", "val", "test")}
        train_y = parts["train"][1] if isinstance(parts["train"], tuple) else None
        kind = d.task if d.task != "auto" else ("regression" if train_y is not None and train_y.is_floating_point()
                                                else "classification")
        # every given split's labels count: a split that holds classes train lacks is the doctor's to report
        # (split_mismatch), not a reason to refuse a model whose output covers them
        num_classes = max(int(v[1].max()) + 1 for v in parts.values() if isinstance(v, tuple)) \
            if (kind == "classification" and train_y is not None) else 0
        if kind == "multilabel" and train_y is not None:
            num_classes = train_y.shape[1]  # (N, L) indicator targets
        y_mean, y_std = 0.0, 1.0
    if kind == "classification" and num_classes == 0:  # Dataset input: the model's width decides
        num_classes = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
    task = make_task(kind, num_classes, t.label_smoothing, y_mean, y_std, cfg=cfg)

    def loader(part: Any, train: bool) -> Loader | None:
        if part is None:
            return None
        # Only the training split is sharded: every rank evaluates whole splits, so validation and test metrics are
        # identical on all ranks without any reduction (and early stopping decides the same everywhere).
        return make_loader(part, d.batch_size if train else d.eval_batch_size, shuffle=train,
                           drop_last=d.drop_last and train, seed=cfg.seed, device=device, mode=d.loader,
                           num_workers=d.num_workers, pin_memory=d.pin_memory, persistent_workers=d.persistent_workers,
                           prefetch_factor=d.prefetch_factor, rank=dctx.rank if train else 0,
                           world=dctx.world if train else 1)

    train_loader = loader(parts["train"], True)
    val_loader, test_loader = loader(parts["val"], False), loader(parts["test"], False)
    assert train_loader is not None
    n_train = train_loader.num_samples  # this rank's share of the training split
    if kind == "classification" and isinstance(parts["train"], tuple):
        for name, part in parts.items():
            if isinstance(part, tuple) and (int(part[1].min()) < 0 or int(part[1].max()) >= num_classes):
                raise TrainwiseError(f"{name} labels must be in 0..{num_classes - 1} but range "
                                     f"{int(part[1].min())}..{int(part[1].max())}; renumber the classes from 0")

    model.to(device)
    check_model_fits(model, task, train_loader, precision, device)
    images = _first_batch(train_loader)[0].ndim == 4  # (B, C, H, W)
    if t.cutmix_alpha > 0 and not images:
        raise TrainwiseError("train.cutmix_alpha needs image inputs (N, C, H, W); use train.mixup_alpha for "
                             "tabular data")
    preflight = None
    if cfg.doctor.preflight and resume is None and task.supervised:  # eval + inference_mode: changes no weights,
        # statistics or RNG; before wrapping, so FSDP never sees tensors made under inference_mode
        xb, yb = _first_batch(train_loader) if not isinstance(parts["train"], tuple) else \
            (parts["train"][0][:256].to(device), parts["train"][1][:256].to(device))
        ready_made = not isinstance(splits, Splits)  # given as splits or a Dataset: fit neither imputed nor scaled it
        found = check_data(parts["train"][0], parts["train"][1], kind,
                           splits.preprocess.feature_names if isinstance(splits, Splits) else None, ready_made) \
            if isinstance(parts["train"], tuple) else []
        split_found, split_info = check_splits(parts, kind) if ready_made else ([], {})
        struct_found, struct_info = check_structure(model, d.batch_size, t.freeze_epochs)
        more, model_info = check_model(model, xb, yb, task)
        facts = {**split_info, **struct_info, "train_samples": n_train,
                 "train_input": "dataset" if not isinstance(parts["train"], tuple) else
                 ("splits" if ready_made else "arrays")}
        if not isinstance(parts["train"], tuple):  # the user's own __getitem__, timed apart from trainwise's batching
            facts["fetch_s_per_sample"] = time_fetch(parts["train"])
        elif kind == "classification":  # do labels follow their inputs? (nearest neighbours, ≤ 2000 samples)
            facts.update(label_agreement(*parts["train"], parts["val"] if isinstance(parts["val"], tuple) else None))
        preflight = (found + split_found + struct_found, more, {**model_info, **facts})
    wrapped = wrap(model, dctx, device)  # DDP wrapper, or the model itself sharded in place by FSDP2
    train_model = torch.compile(wrapped) if cfg.compile else wrapped

    steps_per_epoch = len(train_loader)
    k = t.accumulate
    weights = _group_weights(_batch_sizes(train_loader, n_train), k)
    boundaries = {i for i in range(steps_per_epoch) if (i + 1) % k == 0 or i == steps_per_epoch - 1}
    opt_steps_per_epoch = len(boundaries)
    stepped = task.parameters_module(model)  # the whole model, or the part the main optimizer owns
    optimizer = build_optimizer(stepped, o.name, o.lr, o.weight_decay, o.momentum, o.nesterov, (o.beta1, o.beta2),
                                o.eps, dict(o.group_lr), fused=o.fused)
    has_val = val_loader is not None
    monitor = t.monitor if has_val or not t.monitor.startswith("val/") else t.monitor.replace("val/", "train/", 1)
    if not has_val and monitor not in {"train/loss", *(["train/accuracy"] if task.counts_correct else [])}:
        monitor = "train/loss"  # without a val split only the train loss (and accuracy) exist to select weights by
    lower_better = minimize(monitor)
    schedule = build_schedule(optimizer, s.name, opt_steps_per_epoch * t.epochs, opt_steps_per_epoch,
                              warmup_fraction=s.warmup_fraction, min_lr_ratio=s.min_lr_ratio, step_size=s.step_size,
                              gamma=s.gamma, factor=s.factor, patience=s.patience, cycle_epochs=s.cycle_epochs,
                              base_lr_ratio=s.base_lr_ratio, mode="min" if lower_better else "max")
    stepper = Stepper(model, optimizer, schedule, grad_scaler(precision, device), t.grad_clip, t.ema_decay,
                      params=None if stepped is model else [p for p in stepped.parameters() if p.requires_grad])
    stepper.check_loss = not distributed  # DDP: judge a step by the all-reduced gradients, identical on every rank

    def build_stepper(module: nn.Module, lr_ratio: float = 1.0) -> Stepper:
        """A second optimizer configured like the main one, for paradigms that step two parts (GAN)."""
        opt2 = build_optimizer(module, o.name, o.lr * lr_ratio, o.weight_decay, o.momentum, o.nesterov,
                               (o.beta1, o.beta2), o.eps, {}, fused=o.fused)
        sched2 = build_schedule(opt2, s.name, opt_steps_per_epoch * t.epochs, opt_steps_per_epoch,
                                warmup_fraction=s.warmup_fraction, min_lr_ratio=s.min_lr_ratio,
                                step_size=s.step_size, gamma=s.gamma, factor=s.factor, patience=s.patience,
                                cycle_epochs=s.cycle_epochs, base_lr_ratio=s.base_lr_ratio,
                                mode="min" if lower_better else "max")
        return Stepper(module, opt2, sched2, grad_scaler(precision, device), t.grad_clip, None)

    task.setup(model, build_stepper)
    nonfinite = cfg.faults.nonfinite if cfg.faults.nonfinite != "auto" else (
        "stop" if device.type == "cuda" else "skip")  # a per-step finiteness check is free on CPU, a sync on GPU

    # ---- run directory ------------------------------------------------------------------------------------------
    if resume is not None:
        out_dir: Path | None = Path(resume)
    elif writer:
        out_dir = None if run_dir is None else new_run_dir(cfg.name, None if run_dir == "auto" else run_dir)
    else:
        out_dir = None
    out_dir = dctx.broadcast(out_dir)  # every rank reads checkpoints from rank 0's run directory
    if out_dir is not None and resume is None and writer:
        write_text(out_dir / "config.yaml", to_yaml(cfg))
        if isinstance(splits, Splits):
            write_json(out_dir / "preprocess.json", splits.preprocess.to_dict())
    reporter = Reporter(quiet or not writer, task.main_metric, t.epochs)
    if isinstance(splits, Splits) and splits.missing:
        reporter.info(f"missing values imputed with train medians: {splits.missing}")
    doc = cfg.doctor
    pre_findings: list[dict[str, Any]] = []
    pre_info: dict[str, Any] = {}
    if preflight is not None:
        found, more, pre_info = preflight
        pre_findings = [f.to_dict() for f in found + more]
        if out_dir is not None and writer:
            write_json(out_dir / "preflight.json", {"findings": pre_findings, **pre_info})
        for f in found + more:
            reporter.info(f"[yellow]preflight: {f.message}[/yellow]")
    elif resume is not None and (Path(resume) / "preflight.json").is_file():
        import json as _json

        pre = _json.loads((Path(resume) / "preflight.json").read_text())
        pre_findings = pre.get("findings", [])
        pre_info = {k: v for k, v in pre.items() if k != "findings"}

    # ---- mutable loop state (everything a checkpoint must hold besides module/optimizer state) ---------------------
    st = LoopState(best_value=math.inf if lower_better else -math.inf)
    augment = d.augment == "shift" and images  # a pixel shift means nothing to tabular features
    if d.augment == "kornia" and not images:
        raise TrainwiseError("data.augment=kornia needs image inputs (N, C, H, W)")
    kornia_aug = None
    if d.augment == "kornia":
        from trainwise.train.augment import kornia_pipeline

        xb = _first_batch(train_loader)[0]
        kornia_aug = kornia_pipeline(xb.shape[-2], xb.shape[-1], "light").to(device)
    mixing = (t.mixup_alpha > 0 or t.cutmix_alpha > 0) and kind == "classification"
    aug_g = torch.Generator()
    mix_rng = np.random.default_rng(0)
    sharded = dctx.strategy == "fsdp" and distributed
    if sharded and out_dir is not None:
        reporter.info("[yellow]strategy=fsdp: no training checkpoints (exact resume is DDP/single-process only for "
                      "now); best and final weights are gathered and saved[/yellow]")
    ckpt = Checkpointer(out_dir, cfg, model, stepper, st, {"augment": aug_g}, reporter, task, dctx) \
        if out_dir is not None and not sharded else None

    if resume is not None:
        assert ckpt is not None
        folder = ckpt.restore_latest()
        mix_rng = ckpt.mix_rng_restored or mix_rng
        reporter.info(f"resumed from {folder.name}: epoch {st.epoch + 1}, batch {st.pos}, step {st.global_step}")
        st.resumed_from = folder.name
    files = out_dir if writer else None  # where this rank writes logs (rank 0 only)
    if files is not None:  # RUN_DIR/status.json: this process is training the run (`trainwise runs` reads it)
        from trainwise.run.runs import clear_process, mark_process

        mark_process(files, "running")
    log = MetricsLog(files / "metrics.jsonl" if files is not None else None, truncate_to=st.log_offset)
    monitors = Monitor(model, doc.monitor_every, files / "monitors.jsonl" if files is not None else None,
                      hooks=not cfg.compile, truncate_to=st.monitor_offset)
    if ckpt is not None:
        ckpt.log, ckpt.monitor = log, monitors
    tracker = None  # TensorBoard / MLflow mirror of the events below (run/tracking.py); rank 0 with a run dir only
    if files is not None and cfg.tracking.backends:
        from trainwise.run.tracking import make_tracker

        tracker = make_tracker(list(cfg.tracking.backends), files, to_dict(cfg), uri=cfg.tracking.mlflow_uri,
                               experiment=cfg.tracking.experiment,
                               resume_step=st.global_step if resume is not None else None,
                               monitor_records=monitors.records)
    train_events: list[dict[str, Any]] = []

    stop_requested = False

    def emit(event: dict[str, Any]) -> None:
        nonlocal stop_requested
        log.write(event)
        if tracker is not None:
            tracker(event)  # host values only, as written to metrics.jsonl: no device sync added
        if event.get("split") == "train" and not event.get("epoch_end"):
            train_events.append(event)
        for cb in callbacks:
            if cb(dict(event)) is True:  # a request to stop after this epoch (e.g. a tuner pruning the trial)
                stop_requested = True

    step_losses: list[float] = []
    raw_stop = StopFlag()  # set by this process's signal handler
    # Under DDP every rank must stop at the same step: the loop reads ``stop``, which then changes only where the
    # ranks agree (log steps and epoch ends, which sync anyway). In one process the two are the same object.
    stop = StopFlag() if distributed else raw_stop
    agreed_due = False  # DDP: a time-based checkpoint all ranks agreed on at the last log step
    # Plain Python copies of per-step settings: attribute access on an OmegaConf node costs microseconds.
    log_every, every_steps, every_seconds = t.log_every, cfg.checkpoint.every_steps, cfg.checkpoint.every_seconds
    seconds_between = every_seconds
    epoch_gap = cfg.checkpoint.epoch_min_seconds
    if distributed:  # ranks' clocks differ: decide time-based checkpoints together at log steps
        every_seconds = 0
        st.reducer = dctx.all_reduce
    max_bad, lr_factor, max_rollbacks = cfg.faults.max_bad_steps, cfg.faults.lr_factor, cfg.faults.max_rollbacks
    mixup_alpha, cutmix_alpha = t.mixup_alpha, t.cutmix_alpha
    sizes = _batch_sizes(train_loader, n_train)
    sizes_t = torch.tensor(sizes, dtype=torch.float32, device=device)  # (steps,) samples per micro-batch
    classify = task.counts_correct
    if ckpt is not None and resume is None and nonfinite == "skip":  # rollback target until a checkpoint exists
        ckpt.remember_start(mix_rng)
    t_start = time.perf_counter() - st.wall_before
    last_ckpt_time = time.monotonic()
    # CrashRecorder: an exception escaping the epoch loop is written to RUN/error.json and diagnosed, then re-raised
    with raw_stop.installed(out_dir is not None), CrashRecorder(files, model, st):
        while st.epoch < t.epochs:
            epoch = st.epoch
            t_epoch = time.perf_counter()
            if st.pos == 0:  # fresh epoch: reset accumulators and per-epoch generators
                st.new_epoch(device, steps_per_epoch)
                aug_g.manual_seed(epoch_seed(rank_seed(cfg.seed, dctx.rank) + 1, epoch))
                mix_rng = np.random.default_rng(epoch_seed(rank_seed(cfg.seed, dctx.rank) + 2, epoch))
            train_loader.set_epoch(epoch, st.pos)
            model.train()
            if t.freeze_epochs:  # a pure function of the epoch, so a resumed run freezes exactly the same way
                set_frozen(model, epoch < t.freeze_epochs)
            reporter.start_epoch(epoch, steps_per_epoch)
            reporter.advance(st.pos)
            group_start = st.pos  # first micro-batch of the current accumulation group
            rolled_back = False
            data_wait = 0.0
            t_prev = time.perf_counter()
            sampled = False
            for i, (x, y) in enumerate(train_loader, start=st.pos):
                t_now = time.perf_counter()  # time since the previous step ended = waiting for this batch
                data_wait += t_now - t_prev
                if st.skip and (epoch, i) in st.skip:  # batches that produced non-finite values before a rollback
                    st.pos = i + 1
                    continue
                if augment:
                    x = random_shift(x, aug_g)
                elif kornia_aug is not None:
                    x = kornia_aug(x)  # batched on the device; global torch RNG (checkpointed)
                if mixing:
                    x, y = mix(x, y, num_classes, mixup_alpha, cutmix_alpha, mix_rng, aug_g)
                if not sampled and monitors.wants(st.global_step + 1):
                    monitors.arm()  # hooks for this step's forward only
                    sampled = True
                with autocast(precision, device):
                    loss, out = task.train_loss(train_model, x, y)  # supervised: out = model(x), (B, out_dim)
                stepper.backward(loss * weights[i] if k > 1 else loss)
                loss_detached = loss.detach()
                st.loss_buf[i] = loss_detached  # one device copy; sums happen at log points and epoch end
                if classify:
                    st.correct += task.correct(out.detach(), y)
                if record_step_losses:
                    step_losses.append(loss_detached.item())  # a host sync: for tests and parity checks only
                reporter.advance()
                st.pos = i + 1
                if i not in boundaries:
                    t_prev = time.perf_counter()
                    continue
                if sampled:
                    monitors.before_update()
                # ---- optimizer step (end of an accumulation group) ----------------------------------------------
                if nonfinite == "skip" and not stepper.finite(loss_detached):  # CPU: no device stall
                    monitors.locate_nonfinite(x, st.global_step, epoch, i)  # reads the gradients: before discard
                    stepper.discard()
                    sampled = False
                    st.bad_steps += 1
                    st.consecutive_bad += 1
                    st.skip.add((epoch, i))
                    st.loss_buf[group_start:i + 1] = 0.0  # a skipped group counts in no average
                    st.valid[group_start:i + 1] = [False] * (i + 1 - group_start)
                    emit({"step": st.global_step, "epoch": epoch, "split": "train", "event": "nonfinite_skipped",
                          "batch": i})
                    if st.consecutive_bad >= max_bad:
                        if ckpt is None or st.rollbacks >= max_rollbacks or not ckpt.rollback(lr_factor):
                            st.stopped = "non_finite_loss"
                            break
                        mix_rng = ckpt.mix_rng_restored or mix_rng
                        emit({"step": st.global_step, "epoch": st.epoch, "split": "train", "event": "rollback",
                              "lr_scale": st.lr_scale})
                        reporter.info(f"[yellow]{max_bad} non-finite steps in a row: rolled back "
                                      f"to step {st.global_step}, lr ×{lr_factor}[/yellow]")
                        rolled_back = True
                        break
                    group_start = i + 1
                    t_prev = time.perf_counter()
                    continue
                stepper.step()
                if sampled:
                    monitors.after_update(st.global_step + 1, epoch, loss_detached, stepper.grad_norm)
                    sampled = False
                st.consecutive_bad = 0
                st.global_step += 1
                group_start = i + 1
                if st.global_step % log_every == 0:  # the only per-interval sync in the loop
                    mean = st.take_log_mean(i + 1)
                    event = {"step": st.global_step, "epoch": epoch, "split": "train", "loss": mean, "lr": stepper.lr}
                    if stepper.grad_norm is not None:
                        event["grad_norm"] = stepper.grad_norm.item()
                    emit(event)
                    reporter.update(mean, (i + 1 - st.pos_at_start) / max(1e-9, time.perf_counter() - t_epoch))
                    if distributed:
                        sig, due = dctx.agree(raw_stop.signum, bool(seconds_between) and
                                              time.monotonic() - last_ckpt_time >= seconds_between)
                        stop.signum, agreed_due = int(sig), bool(due)
                if ckpt is not None and i + 1 < steps_per_epoch and (
                        (every_steps and st.global_step % every_steps == 0)
                        or (every_seconds and time.monotonic() - last_ckpt_time >= every_seconds)
                        or stop.signum or agreed_due):
                    st.wall_before = time.perf_counter() - t_start
                    ckpt.save(mix_rng)
                    last_ckpt_time, agreed_due = time.monotonic(), False
                if stop.signum:
                    break
                t_prev = time.perf_counter()
            if rolled_back:
                continue
            if stop.signum and st.pos < steps_per_epoch:
                break
            if st.stopped == "non_finite_loss":
                reporter.end_epoch({"epoch": epoch})
                break

            # ---- end of epoch: one sync, evaluation, best weights, early stopping, schedule -----------------------
            seen = sum(b_ for b_, ok in zip(sizes, st.valid) if ok)
            st.carry_log(steps_per_epoch)
            if distributed:  # train metrics over every rank's shard: one all-reduce per epoch
                tot = dctx.all_reduce(torch.stack([(st.loss_buf * sizes_t).sum(), sizes_t.new_tensor(seen),
                                                   st.correct.to(sizes_t.dtype)]))
                loss_sum, seen_all, correct_all = tot.tolist()
                stop.signum = int(dctx.agree(raw_stop.signum)[0])
            else:
                loss_sum, seen_all = (st.loss_buf * sizes_t).sum(), seen
                correct_all = st.correct
            row: dict[str, Any] = {"epoch": epoch, "step": st.global_step,
                                   "train/loss": float(loss_sum / max(1, seen_all))}
            if classify:
                row["train/accuracy"] = float(correct_all) / max(1, seen_all)
            eval_model = stepper.eval_model()
            if has_val:
                row.update({f"val/{m}": v for m, v in evaluate(eval_model, val_loader, task, precision,
                                                                device).items()})
            row["lr"] = stepper.lr
            if stepper.scaler is not None:
                row["skipped_steps"] = stepper.skipped_steps()
            if monitor not in row:  # checked once, at the first epoch end: a misspelt metric must not select weights
                raise TrainwiseError(f"train.monitor={t.monitor} is not a metric this run reports; choose one of "
                                     f"{', '.join(k for k in row if '/' in k)}")
            value = row[monitor]
            schedule.after_epoch(value)
            row["seconds"] = time.perf_counter() - t_epoch
            timing = {"epoch": epoch, "data_wait_s": data_wait, "epoch_s": row["seconds"],
                      "grad_norm_max": stepper.take_grad_norm_max()}  # largest pre-clip norm this epoch (one sync)
            monitors.write({"kind": "timing", **timing})
            monitors.timing.append(timing)
            st.history.append(row)
            emit({"step": st.global_step, "epoch": epoch, "split": "train", "epoch_end": True,
                  **{k_.split("/", 1)[1]: v for k_, v in row.items() if k_.startswith("train/")}, "lr": row["lr"]})
            if has_val:
                emit({"step": st.global_step, "epoch": epoch, "split": "val",
                      **{k_.split("/", 1)[1]: v for k_, v in row.items() if k_.startswith("val/")}})
            reporter.end_epoch(row)
            st.epoch, st.pos = epoch + 1, 0
            if stop_requested and st.stopped == "completed":
                st.stopped = "callback"
            if not math.isfinite(row["train/loss"]):
                st.stopped = "non_finite_loss"
                reporter.info(f"[red]training stopped: the loss became non-finite in epoch {epoch + 1}; "
                              "lower optim.lr or set train.grad_clip[/red]")
                break
            improved = value < st.best_value if lower_better else value > st.best_value
            if improved:
                st.best_value, st.best_epoch, st.bad_epochs = value, epoch, 0
                st.best_state = {n: v_.detach().clone() for n, v_ in full_state_dict(eval_model, dctx).items()}
                if ckpt is not None:
                    ckpt.best_improved()
            else:
                st.bad_epochs += 1
                if t.early_stopping and has_val and st.bad_epochs >= t.patience:
                    st.stopped = "early_stopping"
                    reporter.info(f"early stopping: {monitor} has not improved for {t.patience} epochs "
                                  f"(best {st.best_value:.4f} at epoch {st.best_epoch + 1})")
            epoch_due = cfg.checkpoint.every_epoch and (
                epoch_gap <= 0 or time.monotonic() - last_ckpt_time >= epoch_gap)
            if distributed and epoch_gap > 0:  # ranks' clocks differ: rank 0's decision for all (one small reduce)
                epoch_due = bool(dctx.agree(float(epoch_due and writer))[0])
            if ckpt is not None and (epoch_due or stop.signum or st.stopped != "completed" or st.epoch == t.epochs):
                st.wall_before = time.perf_counter() - t_start
                # best.safetensors advances with the checkpoints (which hold the best weights too), so a crash
                # leaves the two consistent and a time-gated epoch end writes nothing at all
                ckpt.save(mix_rng, best=improved)
                last_ckpt_time = time.monotonic()
            elif sharded and improved and files is not None:  # FSDP writes no checkpoints: best weights at once
                save_weights(files / "best.safetensors", st.best_state)  # type: ignore[arg-type]
            if stop.signum or st.stopped != "completed":
                break

    if ckpt is not None:
        ckpt.flush_best()  # the last checkpoint and best.safetensors are on disk before anything reports success
    if stop.signum:
        log.close()
        monitors.close()
        if tracker is not None:
            tracker.interrupted()
        if files is not None:
            mark_process(files, "interrupted", signal=stop.signum)
        where = (f"torchrun --nproc_per_node={dctx.world} -m trainwise resume {out_dir}" if distributed
                 else f"trainwise resume {out_dir}")
        raise TrainingInterrupted(stop.signum, f"interrupted by signal {stop.signum}: checkpoint saved at step "
                                  f"{st.global_step}; resume with: {where}")

    # ---- end of training: final weights, restore best, test once ---------------------------------------------------
    wall = time.perf_counter() - t_start
    final_model = stepper.eval_model()
    final_weights = full_state_dict(final_model, dctx)  # FSDP: gathered from the shards (a collective)
    if out_dir is not None and writer:
        try:
            save_weights(out_dir / "final.safetensors", final_weights)
        except OSError as exc:  # disk full, read-only: the checkpoints written so far are intact and resumable
            log.close()
            monitors.close()
            last_good = ckpt.latest() if ckpt is not None else None
            resumable = (f"the last good checkpoint ({last_good}) is intact: resume with 'trainwise resume "
                         f"{out_dir}' once the disk has space and the folder is writable") if last_good else "no checkpoint was written"
            if ckpt is not None and ckpt.failures:
                resumable += f" ({ckpt.failures} checkpoint write(s) failed too)"
            raise TrainwiseError(f"could not write '{out_dir / 'final.safetensors'}' ({exc.strerror or exc}); "
                                 f"{resumable}") from None
    if st.best_state is not None and task.keep_best:
        load_full_state_dict(model, st.best_state, dctx)
    summary: dict[str, Any] = {}
    last = st.history[-1] if st.history else {"epoch": st.epoch}
    for key, v in last.items():
        if "/" in key:
            summary[key] = v
    if st.best_epoch >= 0 and has_val:
        summary.update({k_: v for k_, v in st.history[st.best_epoch].items() if k_.startswith("val/")})
    if test_loader is not None:
        test = evaluate(model, test_loader, task, precision, device)
        summary.update({f"test/{m}": v for m, v in test.items()})
        emit({"step": st.global_step, "epoch": last["epoch"], "split": "test", **test})
    summary.update(task.finish(model, parts, files, device))
    summary.update({"epochs": len(st.history), "steps": st.global_step,
                    "best_epoch": st.best_epoch + 1 if st.best_epoch >= 0 else None,
                    "monitor": monitor, "stopped": st.stopped, "wall_seconds": round(wall, 3), "seed": cfg.seed,
                    "device": str(device), "precision": precision, "task": kind, "main_metric": task.main_metric,
                    "nonfinite_skipped_steps": st.bad_steps, "rollbacks": st.rollbacks,
                    "checkpoint_failures": ckpt.failures if ckpt is not None else 0,
                    "resumed_from": st.resumed_from, "versions": versions()})
    if distributed:
        summary.update({"strategy": dctx.strategy, "world_size": dctx.world})
    if stepper.scaler is not None:
        summary["skipped_steps"] = stepper.skipped_steps()
    log.close()
    monitors.close()
    if doc.diagnose:
        record = RunRecord(history=st.history, summary=summary, config=to_dict(cfg), train_events=train_events,
                           monitors=monitors.records, timing=monitors.timing, nonfinite=monitors.nonfinite,
                           preflight=pre_findings, init_loss=pre_info.get("init_loss"),
                           expected_init_loss=pre_info.get("expected_init_loss"), pre_info=pre_info)
        if resume is not None and out_dir is not None:  # the interrupted part of the run is on disk only
            from trainwise.doctor.diagnose import load_record

            disk = load_record(out_dir)
            record.monitors, record.timing, record.nonfinite = disk.monitors, disk.timing, disk.nonfinite
            record.train_events = disk.train_events
        findings = diagnose(record)
        summary["findings"] = [f.code for f in findings]
        findings_out = [f.to_dict() for f in findings]
        if files is not None:
            write_json(files / "diagnosis.json", {"findings": [f.to_dict() for f in findings]})
        if not quiet and writer:
            reporter.console.print("[bold]diagnosis[/bold]")
            reporter.console.print(render(findings), markup=False)
    if files is not None:
        write_json(files / "summary.json", summary)
        write_json(files / "history.json", st.history)
        from trainwise.run.plots import plot_curves

        plot_curves(st.history, task.main_metric, out_dir / "curves.png")
        if tracker is not None:  # last: the artifacts it uploads (curves, diagnosis, weights) are on disk now
            tracker.finish(summary, findings_out if doc.diagnose else [], out_dir)
        clear_process(files)  # summary.json now says the run ended
    dctx.close()
    return FitResult(model, st.history, summary, out_dir, step_losses,
                     findings_out if doc.diagnose else [])

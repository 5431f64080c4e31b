"""``fit``'s first phase: everything a training run is made of, built from the config before the first batch.

:func:`build` returns a :class:`Training` — the components (loaders, task, stepper, checkpointer, logs) and the
policies (checkpoint schedule, non-finite guard, early stopping, stopping) that ``train/loop.py`` runs. The order
of the steps below is part of the contract: seeding, splitting, model checks and the preflight consume random
numbers in this order, and exact resume and the parity tests compare against it.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from trainwise.config import Config, to_dict, to_yaml
from trainwise.data.loaders import DeviceDataLoader, InMemoryLoader, make_loader
from trainwise.data.sources import from_arrays
from trainwise.data.splits import Splits, split_table
from trainwise.doctor.crash import crash_fixes, crash_site
from trainwise.doctor.monitors import Monitor
from trainwise.doctor.preflight import (
    check_data,
    check_model,
    check_splits,
    check_structure,
    label_agreement,
    time_fetch,
)
from trainwise.errors import TrainwiseError, suggest
from trainwise.progress import Reporter
from trainwise.run.paths import STARTUP_FILES, discarded_on_failure
from trainwise.run.rundir import MetricsLog, new_run_dir, write_json, write_text
from trainwise.run.runs import mark_process
from trainwise.run.tracking import make_tracker
from trainwise.tasks import Task, make_task, minimize
from trainwise.train.augment import BatchAugment, kornia_pipeline
from trainwise.train.checkpoint import Checkpointer
from trainwise.train.distributed import DistContext, from_env, local_device, rank_seed, wrap
from trainwise.train.optim import optimizer_from_config
from trainwise.train.policies import CheckpointSchedule, EarlyStopping, NonFiniteGuard, Stopping
from trainwise.train.precision import autocast, grad_scaler, resolve_device, resolve_precision
from trainwise.train.schedule import schedule_from_config
from trainwise.train.state import LoopState
from trainwise.train.step import Stepper

Loader = InMemoryLoader | DeviceDataLoader


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def first_batch(loader: Loader) -> tuple[torch.Tensor, torch.Tensor]:
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
    x, y = first_batch(loader)
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


def group_weights(batch_sizes: list[int], k: int) -> list[float]:
    """Weight of each micro-batch's mean loss so that K micro-batches give the gradient of their union's mean loss
    (a ragged last batch and a partial last group included)."""
    weights = []
    for start in range(0, len(batch_sizes), k):
        group = batch_sizes[start:start + k]
        total = sum(group)
        weights += [b / total for b in group]
    return weights


def batch_sizes(loader: Loader, n: int) -> list[int]:
    bs = loader.batch_size
    return [min(bs, n - i * bs) for i in range(len(loader))]


class Events:
    """Where every metrics event goes: ``metrics.jsonl``, the tracker (TensorBoard / MLflow), the doctor's list of
    train events, and the user's observers (``callbacks``). An observer returning ``True`` asks the loop to stop
    after the current epoch. Events hold host values only: emitting one adds no device sync."""

    def __init__(self, log: MetricsLog, tracker: Any, callbacks: Sequence[Callable[[dict[str, Any]], Any]],
                 stopping: Stopping) -> None:
        self.log, self.tracker, self.callbacks, self.stopping = log, tracker, callbacks, stopping
        self.train: list[dict[str, Any]] = []  # within-epoch train events, for the diagnosis

    def __call__(self, event: dict[str, Any]) -> None:
        self.log.write(event)
        if self.tracker is not None:
            self.tracker(event)
        if event.get("split") == "train" and not event.get("epoch_end"):
            self.train.append(event)
        for cb in self.callbacks:
            if cb(dict(event)) is True:  # e.g. a tuner pruning the trial
                self.stopping.callback_asked = True


@dataclass
class Parts:
    """The splits as the loop sees them: tensors ``(x, y)`` (the in-memory path) or a ``Dataset`` (DataLoader path)
    per split, and what the task needs to know about the labels."""

    splits: Splits | dict[str, Any]
    parts: dict[str, Any]  # "train" / "val" / "test" → (x, y) | Dataset | None
    kind: str  # classification | regression | multilabel
    num_classes: int
    y_mean: float = 0.0
    y_std: float = 1.0

    @property
    def prepared(self) -> bool:
        """Split, imputed and scaled here (from arrays or a named source) rather than handed over ready-made."""
        return isinstance(self.splits, Splits)


@dataclass
class Training:
    """One training run's components and policies, as ``build`` made them (read by train/loop.py)."""

    cfg: Config
    dctx: DistContext
    device: torch.device
    precision: str
    model: nn.Module
    train_model: nn.Module  # the model as the step calls it: DDP-wrapped and/or compiled
    task: Task
    data: Parts
    train_loader: Loader
    val_loader: Loader | None
    test_loader: Loader | None
    stepper: Stepper
    st: LoopState
    augment: BatchAugment
    reporter: Reporter
    out_dir: Path | None  # the run directory (every rank knows it)
    files: Path | None  # where this process writes logs: the run directory on rank 0, None elsewhere
    ckpt: Checkpointer | None
    ckpt_schedule: CheckpointSchedule
    guard: NonFiniteGuard  # active with faults.nonfinite=skip; otherwise a non-finite epoch loss ends the run
    early: EarlyStopping
    stopping: Stopping
    monitors: Monitor
    log: MetricsLog
    events: Events
    tracker: Any
    monitor: str  # the metric that selects weights (train.monitor, or its train/ stand-in without a val split)
    # accumulation: micro-batch loss weights, which micro-batches end a group, samples per micro-batch
    weights: list[float]
    accumulate: int
    boundaries: frozenset[int]
    sizes: list[int]
    sizes_t: torch.Tensor  # (steps,) float, on the device
    pre_findings: list[dict[str, Any]]
    pre_info: dict[str, Any]
    resume: Path | None
    step_losses: list[float] | None  # per micro-batch (record_step_losses): a host sync per step, tests only
    labels: bool = False  # profile=true: label per-step phases for torch.profiler
    t_start: float = 0.0
    # Copies of what the step reads, named for the loop (the config is plain dataclasses: cheap to read anyway).
    steps_per_epoch: int = field(init=False)
    log_every: int = field(init=False)
    counts_correct: bool = field(init=False)  # classification: train accuracy is accumulated on the device
    distributed: bool = field(init=False)
    sharded: bool = field(init=False)  # FSDP: no training checkpoints; best weights written as they improve

    def __post_init__(self) -> None:
        self.steps_per_epoch = len(self.train_loader)
        self.log_every = int(self.cfg.train.log_every)
        self.counts_correct = self.task.counts_correct
        self.distributed = self.dctx.enabled
        self.sharded = self.dctx.strategy == "fsdp" and self.dctx.enabled


# ---- the steps of build --------------------------------------------------------------------------------------------


def runtime(cfg: Config) -> tuple[torch.device, DistContext, str]:
    """Device, process group (torchrun's environment → DDP / FSDP; a no-op in one process), seeds and precision."""
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's requirement for reproducible GEMMs
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    device = resolve_device(cfg.device)
    dctx = from_env(cfg.strategy, device)
    device = local_device(dctx, device)
    if dctx.enabled and cfg.paradigm.name in ("gan", "contrastive"):
        raise TrainwiseError(f"paradigm.name={cfg.paradigm.name} is not supported with strategy={dctx.strategy} yet "
                             "(its step runs several forwards or optimizers outside the wrapper); run it in one "
                             "process")
    if dctx.strategy == "fsdp" and cfg.train.ema_decay:
        raise TrainwiseError("train.ema_decay is not supported with strategy=fsdp (the EMA copy would not be "
                             "sharded); set train.ema_decay=null or use strategy=ddp")
    seed_everything(rank_seed(cfg.seed, dctx.rank))  # dropout differs per rank; rank 0 = the single-process run
    return device, dctx, resolve_precision(cfg.precision, device)


def _as_splits(data: Any, cfg: Config) -> Splits | dict[str, Any]:
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


def prepare_parts(data: Any, cfg: Config, model: nn.Module) -> Parts:
    """Split (or take as given) the data and work out the task's kind and number of classes."""
    splits = _as_splits(data, cfg)
    if isinstance(splits, Splits):
        # A split is tensors (the in-memory path) or a Dataset (data.source=npy|images: memory-mapped, DataLoader path)
        parts: dict[str, Any] = {k: s if s is None or isinstance(s, torch.utils.data.Dataset) else (s.x, s.y)
                                 for k, s in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
        out = Parts(splits, parts, splits.task, splits.num_classes, splits.preprocess.y_mean,
                    splits.preprocess.y_std)
    else:
        parts = {k: _to_tensors(splits.get(k)) for k in ("train", "val", "test")}
        train_y = parts["train"][1] if isinstance(parts["train"], tuple) else None
        d = cfg.data
        kind = d.task if d.task != "auto" else ("regression" if train_y is not None and train_y.is_floating_point()
                                                else "classification")
        # every given split's labels count: a split that holds classes train lacks is the doctor's to report
        # (split_mismatch), not a reason to refuse a model whose output covers them
        num_classes = max(int(v[1].max()) + 1 for v in parts.values() if isinstance(v, tuple)) \
            if (kind == "classification" and train_y is not None) else 0
        if kind == "multilabel" and train_y is not None:
            num_classes = train_y.shape[1]  # (N, L) indicator targets
        out = Parts(splits, parts, kind, num_classes)
    if out.kind == "classification" and out.num_classes == 0:  # Dataset input: the model's width decides
        out.num_classes = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
    return out


def make_loaders(p: Parts, cfg: Config, device: torch.device,
                 dctx: DistContext) -> tuple[Loader, Loader | None, Loader | None]:
    d = cfg.data

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

    train_loader = loader(p.parts["train"], True)
    assert train_loader is not None
    if p.kind == "classification" and isinstance(p.parts["train"], tuple):
        for name, part in p.parts.items():
            if isinstance(part, tuple) and (int(part[1].min()) < 0 or int(part[1].max()) >= p.num_classes):
                raise TrainwiseError(f"{name} labels must be in 0..{p.num_classes - 1} but range "
                                     f"{int(part[1].min())}..{int(part[1].max())}; renumber the classes from 0")
    return train_loader, loader(p.parts["val"], False), loader(p.parts["test"], False)


def run_preflight(model: nn.Module, task: Task, p: Parts, loader: Loader, cfg: Config,
                  device: torch.device) -> tuple[list[Any], dict[str, Any]]:
    """The doctor's checks before the first step (doctor/preflight.py): data, splits, structure, the model at
    initialisation. Eval + inference_mode: changes no weights, statistics or RNG."""
    train = p.parts["train"]
    xb, yb = first_batch(loader) if not isinstance(train, tuple) else (train[0][:256].to(device),
                                                                       train[1][:256].to(device))
    ready_made = not p.prepared  # given as splits or a Dataset: fit neither imputed nor scaled it
    found = check_data(train[0], train[1], p.kind,
                       p.splits.preprocess.feature_names if isinstance(p.splits, Splits) else None, ready_made) \
        if isinstance(train, tuple) else []
    split_found, split_info = check_splits(p.parts, p.kind) if ready_made else ([], {})
    struct_found, struct_info = check_structure(model, cfg.data.batch_size, cfg.train.freeze_epochs)
    more, model_info = check_model(model, xb, yb, task)
    facts = {**split_info, **struct_info, "train_samples": loader.num_samples,
             "train_input": "dataset" if not isinstance(train, tuple) else ("splits" if ready_made else "arrays")}
    if not isinstance(train, tuple):  # the user's own __getitem__, timed apart from trainwise's batching
        facts["fetch_s_per_sample"] = time_fetch(train)
    elif p.kind == "classification":  # do labels follow their inputs? (nearest neighbours, ≤ 2000 samples)
        facts.update(label_agreement(train[0], train[1], p.parts["val"] if isinstance(p.parts["val"], tuple) else None))
    return found + split_found + struct_found + more, {**model_info, **facts}


def check_monitor(cfg: Config, task: Task) -> None:
    """``train.monitor`` must name a metric this task reports (as ``val/<metric>``, or ``train/loss`` /
    ``train/accuracy`` / ``lr``): refused before any work, not after the first epoch."""
    names = ["train/loss", *(["train/accuracy"] if task.counts_correct else []), "val/loss",
             *(f"val/{m}" for m in task.metric_names), "lr"]
    monitor = cfg.train.monitor
    if monitor not in names:
        raise TrainwiseError(f"train.monitor={monitor} is not a metric this run reports{suggest(monitor, names)}; "
                             f"choose one of {', '.join(names)}")


def selection_metric(cfg: Config, has_val: bool, task: Task) -> str:
    """``train.monitor``, or its train/ stand-in when there is no validation split."""
    t = cfg.train
    monitor = t.monitor if has_val or not t.monitor.startswith("val/") else t.monitor.replace("val/", "train/", 1)
    if not has_val and monitor not in {"train/loss", *(["train/accuracy"] if task.counts_correct else [])}:
        monitor = "train/loss"  # without a val split only the train loss (and accuracy) exist to select weights by
    return monitor


def make_stepper(model: nn.Module, task: Task, cfg: Config, opt_steps_per_epoch: int, lower_better: bool,
                 precision: str, device: torch.device, distributed: bool) -> Stepper:
    """Optimizer + schedule + step machinery for the main model; paradigms that step a second part (a GAN's
    discriminator) get one configured the same way through ``task.setup``."""
    t = cfg.train
    total = opt_steps_per_epoch * t.epochs
    mode: Literal["min", "max"] = "min" if lower_better else "max"
    stepped = task.parameters_module(model)  # the whole model, or the part the main optimizer owns
    optimizer = optimizer_from_config(stepped, cfg.optim)
    schedule = schedule_from_config(optimizer, cfg.schedule, total, opt_steps_per_epoch, mode)
    stepper = Stepper(model, optimizer, schedule, grad_scaler(precision, device), t.grad_clip, t.ema_decay,
                      params=None if stepped is model else [p for p in stepped.parameters() if p.requires_grad])
    stepper.check_loss = not distributed  # DDP: judge a step by the all-reduced gradients, identical on every rank

    def second_stepper(module: nn.Module, lr_ratio: float = 1.0) -> Stepper:
        opt2 = optimizer_from_config(module, cfg.optim, lr_ratio=lr_ratio, group_lr=False)
        return Stepper(module, opt2, schedule_from_config(opt2, cfg.schedule, total, opt_steps_per_epoch, mode),
                       grad_scaler(precision, device), t.grad_clip, None)

    task.setup(model, second_stepper)
    return stepper


def open_run_dir(cfg: Config, run_dir: str | Path | None, resume: str | Path | None, dctx: DistContext,
                 p: Parts) -> tuple[Path | None, bool]:
    """A new run directory (``runs/<name>-<stamp>`` or the given path, which must not exist) with config.yaml and
    preprocess.json, or the one being resumed, and whether this call created it. Only rank 0 creates it; every rank
    learns its path."""
    created = False  # by this call: only then may a failure before the first step take it away again
    if resume is not None:
        out_dir: Path | None = Path(resume)
    elif dctx.main:
        given = None if run_dir in (None, "auto") else Path(run_dir)
        created = run_dir is not None and not (given is not None and given.exists())
        out_dir = None if run_dir is None else new_run_dir(cfg.name, given)
    else:
        out_dir = None
    out_dir = dctx.broadcast(out_dir)  # every rank reads checkpoints from rank 0's run directory
    if out_dir is not None and resume is None and dctx.main:
        with discarded_on_failure(out_dir, STARTUP_FILES, remove_dir=created):
            write_text(out_dir / "config.yaml", to_yaml(cfg))
            if isinstance(p.splits, Splits):
                write_json(out_dir / "preprocess.json", p.splits.preprocess.to_dict())
    return out_dir, created


def make_augment(cfg: Config, p: Parts, loader: Loader, device: torch.device) -> BatchAugment:
    d, t = cfg.data, cfg.train
    xb = first_batch(loader)[0]
    images = xb.ndim == 4  # (B, C, H, W)
    if t.cutmix_alpha > 0 and not images:
        raise TrainwiseError("train.cutmix_alpha needs image inputs (N, C, H, W); use train.mixup_alpha for "
                             "tabular data")
    kornia = None
    if d.augment == "kornia" and images:  # like shift: an image augmentation means nothing to tabular features
        kornia = kornia_pipeline(xb.shape[-2], xb.shape[-1], "light").to(device)
    mixing = (t.mixup_alpha > 0 or t.cutmix_alpha > 0) and p.kind == "classification"
    return BatchAugment(d.augment == "shift" and images, kornia, mixing, p.num_classes, t.mixup_alpha,
                        t.cutmix_alpha)


def build(model: nn.Module, data: Any, cfg: Config, *, run_dir: str | Path | None, quiet: bool,
          callbacks: Sequence[Callable[[dict[str, Any]], Any]], resume: str | Path | None,
          record_step_losses: bool, labels: bool = False) -> Training:
    """Everything before the first batch, in this order: runtime → data and task → model checks and preflight →
    wrapping → optimizer/schedule → run directory → state, checkpointer (restoring on resume) → logs."""
    t = cfg.train
    device, dctx, precision = runtime(cfg)
    p = prepare_parts(data, cfg, model)
    task = make_task(p.kind, p.num_classes, t.label_smoothing, p.y_mean, p.y_std, cfg=cfg)
    check_monitor(cfg, task)
    train_loader, val_loader, test_loader = make_loaders(p, cfg, device, dctx)

    model.to(device)
    check_model_fits(model, task, train_loader, precision, device)
    augment = make_augment(cfg, p, train_loader, device)
    # before wrapping, so FSDP never sees tensors made under inference_mode
    preflight = run_preflight(model, task, p, train_loader, cfg, device) \
        if cfg.doctor.preflight and resume is None and task.supervised else None
    wrapped = wrap(model, dctx, device)  # DDP wrapper, or the model itself sharded in place by FSDP2
    # torch.compile of a Module returns a Module (OptimizedModule); its stubs type the result as a bare callable
    train_model = cast(nn.Module, torch.compile(wrapped)) if cfg.compile else wrapped

    # ---- accumulation and optimization ----------------------------------------------------------------------------
    steps_per_epoch, k = len(train_loader), t.accumulate
    sizes = batch_sizes(train_loader, train_loader.num_samples)  # this rank's share of the training split
    boundaries = frozenset(i for i in range(steps_per_epoch) if (i + 1) % k == 0 or i == steps_per_epoch - 1)
    monitor = selection_metric(cfg, val_loader is not None, task)
    lower_better = minimize(monitor)
    stepper = make_stepper(model, task, cfg, len(boundaries), lower_better, precision, device, dctx.enabled)
    stepper.labels = labels

    # ---- run directory, state, checkpointer ---------------------------------------------------------------------
    out_dir, created = open_run_dir(cfg, run_dir, resume, dctx, p)
    # A refusal from here to the first step (a write refused, say) leaves no half-made run behind: a new run's
    # directory holds nothing yet that rerunning the command would not write again. A resumed one is left alone.
    new_run = out_dir if resume is None and dctx.main else None
    with discarded_on_failure(new_run, STARTUP_FILES, remove_dir=created):
        reporter = Reporter(quiet or not dctx.main, task.main_metric, t.epochs)
        if isinstance(p.splits, Splits) and p.splits.missing:
            reporter.info(f"missing values imputed with train medians: {p.splits.missing}")
        pre_findings, pre_info = _preflight_record(preflight, resume, out_dir, dctx, reporter)
        st = LoopState(best_value=math.inf if lower_better else -math.inf)
        sharded = dctx.strategy == "fsdp" and dctx.enabled
        if sharded and out_dir is not None:
            reporter.info("[yellow]strategy=fsdp: no training checkpoints (exact resume is DDP/single-process only for "
                          "now); best and final weights are gathered and saved[/yellow]")
        ckpt = Checkpointer(out_dir, cfg, model, stepper, st, {"augment": augment.generator}, reporter, task, dctx) \
            if out_dir is not None and not sharded else None
        if resume is not None:
            assert ckpt is not None
            folder = ckpt.restore_latest()
            augment.mix_rng = ckpt.mix_rng_restored or augment.mix_rng
            reporter.info(f"resumed from {folder.name}: epoch {st.epoch + 1}, batch {st.pos}, step {st.global_step}")
            st.resumed_from = folder.name
        files = out_dir if dctx.main else None
        if files is not None:  # RUN_DIR/status.json: this process is training the run (`trainwise runs` reads it)
            mark_process(files, "running")

        # ---- logs and policies ------------------------------------------------------------------------------------------
        log = MetricsLog(files / "metrics.jsonl" if files is not None else None, truncate_to=st.log_offset)
        monitors = Monitor(model, cfg.doctor.monitor_every, files / "monitors.jsonl" if files is not None else None,
                           hooks=not cfg.compile, truncate_to=st.monitor_offset)
        if ckpt is not None:
            ckpt.log, ckpt.monitor = log, monitors
        tracker = None  # TensorBoard / MLflow mirror of the events (run/tracking.py); rank 0 with a run dir only
        if files is not None and cfg.tracking.backends:
            tracker = make_tracker(list(cfg.tracking.backends), files, to_dict(cfg), uri=cfg.tracking.mlflow_uri,
                                   experiment=cfg.tracking.experiment,
                                   resume_step=st.global_step if resume is not None else None,
                                   monitor_records=monitors.records)
        stopping = Stopping(st, dctx.enabled)
        c, f = cfg.checkpoint, cfg.faults
        nonfinite = f.nonfinite if f.nonfinite != "auto" else (
            "stop" if device.type == "cuda" else "skip")  # a per-step finiteness check is free on CPU, a sync on GPU
        guard = NonFiniteGuard(st, f.max_bad_steps, f.max_rollbacks, active=nonfinite == "skip")
        if ckpt is not None and resume is None and guard.active:  # rollback target until a checkpoint exists
            ckpt.remember_start(augment.mix_rng)
        return Training(
            cfg=cfg, dctx=dctx, device=device, precision=precision, model=model, train_model=train_model, task=task,
            data=p, train_loader=train_loader, val_loader=val_loader, test_loader=test_loader, stepper=stepper, st=st,
            augment=augment, reporter=reporter, out_dir=out_dir, files=files, ckpt=ckpt,
            ckpt_schedule=CheckpointSchedule(c.every_steps, c.every_seconds, c.every_epoch, c.epoch_min_seconds,
                                             shared_clock=dctx.enabled),
            guard=guard, early=EarlyStopping(st, lower_better, t.patience, t.early_stopping and val_loader is not None),
            stopping=stopping, monitors=monitors, log=log, events=Events(log, tracker, callbacks, stopping),
            tracker=tracker, monitor=monitor, weights=group_weights(sizes, k), accumulate=k, boundaries=boundaries,
            sizes=sizes, sizes_t=torch.tensor(sizes, dtype=torch.float32, device=device),
            pre_findings=pre_findings, pre_info=pre_info, resume=Path(resume) if resume is not None else None,
            step_losses=[] if record_step_losses else None, labels=labels,
            t_start=time.perf_counter() - st.wall_before)


def _preflight_record(preflight: tuple[list[Any], dict[str, Any]] | None, resume: str | Path | None,
                      out_dir: Path | None, dctx: DistContext,
                      reporter: Reporter) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The preflight's findings and facts: reported and written to preflight.json, or read back on resume."""
    if preflight is not None:
        found, info = preflight
        findings = [f.to_dict() for f in found]
        if out_dir is not None and dctx.main:
            write_json(out_dir / "preflight.json", {"findings": findings, **info})
        for f in found:
            reporter.info(f"[yellow]preflight: {f.message}[/yellow]")
        return findings, info
    if resume is not None and (Path(resume) / "preflight.json").is_file():
        pre = json.loads((Path(resume) / "preflight.json").read_text())
        return pre.get("findings", []), {k: v for k, v in pre.items() if k != "findings"}
    return [], {}

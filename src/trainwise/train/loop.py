"""The supervised training loop — the textbook loop, with the production details filled in.

Read it as a recipe in four phases:

1. **build** (train/components.py): components from the config — splits, loaders, task, model checks and the doctor's
   preflight, optimizer + schedule (:class:`~trainwise.train.step.Stepper`), run directory, checkpointer, logs and
   the loop's policies (train/policies.py). Everything that can be refused is refused here, before any step.
2. **train_epoch**: the production step for every batch — augment, forward under autocast, weighted backward and,
   at the end of each accumulation group, the optimizer step (or a non-finite group skipped), logging and
   mid-epoch checkpoints. No host sync per step: loss and correct-count accumulate on the device and are read at
   log steps and epoch ends.
3. **end_of_epoch**: train metrics (one sync), evaluation, the schedule, best weights, early stopping, the
   checkpoint decision.
4. **finish**: final weights, best weights restored, the test split once, summary and the doctor's diagnosis.

Every paradigm (GAN, contrastive, seq2seq, distillation, ...) runs through this loop: a paradigm is a
:class:`~trainwise.tasks.base.Task` whose ``train_loss`` computes the loss of a batch; the Stepper does the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.autograd.profiler import record_function

from trainwise.config import Config, from_kwargs, to_dict, typed
from trainwise.data.loaders import epoch_seed
from trainwise.data.splits import Splits
from trainwise.doctor.diagnose import RunRecord, diagnose, load_record
from trainwise.doctor.findings import render
from trainwise.doctor.recorder import CrashRecorder
from trainwise.errors import TrainwiseError
from trainwise.run.plots import plot_curves
from trainwise.run.rundir import save_weights, versions, write_json
from trainwise.run.runs import clear_process, mark_process
from trainwise.tasks import Task
from trainwise.train import labels
from trainwise.train.components import Loader, Training, build, seed_everything, set_frozen
from trainwise.train.distributed import full_state_dict, load_full_state_dict, rank_seed
from trainwise.train.policies import EARLY_STOPPING, NON_FINITE
from trainwise.train.precision import autocast
from trainwise.train.state import TrainingInterrupted

__all__ = ["FitResult", "evaluate", "fit", "seed_everything", "set_frozen", "train_epoch"]


@dataclass
class FitResult:
    """What ``fit`` returns: per-epoch history, final metrics (``summary``), the model (best weights), paths."""

    model: nn.Module
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None
    step_losses: list[float] = field(default_factory=list)  # per micro-batch, only with record_step_losses
    findings: list[dict[str, Any]] = field(default_factory=list)  # the doctor's diagnosis


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
        OmegaConf.update(cfg, "model", {"name": "python", "class": f"{type(model).__module__}."
                                                                  f"{type(model).__qualname__}"}, merge=False)
        if not isinstance(data, Splits):
            cfg.data.source = "python"  # data handed over in memory, not loaded by name
    if not cfg.profile:
        return _fit(model, data, cfg, run_dir, quiet, callbacks, record_step_losses, resume)
    from trainwise.train import profile  # deferred: profile=false imports none of the profiler's analysis

    # Under torch.compile, hooks would break the graph; its CompiledFunction events mark the forward instead.
    with profile.StepProfiler(forward_hooks=not cfg.compile) as profiler:
        result = _fit(model, data, cfg, run_dir, quiet, callbacks, record_step_losses, resume)
    profile.write_report(profiler, result.run_dir, quiet)
    return result


def _fit(model: nn.Module, data: Any, cfg: DictConfig | Config, run_dir: str | Path | None, quiet: bool,
         callbacks: Sequence[Callable[[dict[str, Any]], Any]], record_step_losses: bool,
         resume: str | Path | None) -> FitResult:
    tr = build(model, data, typed(cfg), run_dir=run_dir, quiet=quiet, callbacks=callbacks, resume=resume,
               record_step_losses=record_step_losses, labels=labels.ACTIVE)
    try:
        return _train(tr)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise  # a signal: the run is resumable (TrainingInterrupted already marked it interrupted)
    except BaseException as exc:
        if tr.tracker is not None:  # a crash mid-run: the MLflow run is marked FAILED, not left RUNNING
            tr.tracker.failed(exc)
        raise


def _train(tr: Training) -> FitResult:
    """The epochs, then the end of training (or the interruption)."""
    st, cfg, model = tr.st, tr.cfg, tr.model
    # CrashRecorder: an exception escaping the epoch loop is written to RUN/error.json and diagnosed, then re-raised
    with tr.stopping.raw.installed(tr.out_dir is not None), CrashRecorder(tr.files, model, st):
        while st.epoch < cfg.train.epochs:
            epoch = st.epoch
            rolled_back, data_wait, t_epoch = train_epoch(tr, epoch)
            if rolled_back:  # back to the newest checkpoint (st was restored): replay from there
                continue
            if tr.stopping.signal and st.pos < tr.steps_per_epoch:
                break
            if st.stopped == NON_FINITE:
                tr.reporter.end_epoch({"epoch": epoch})
                break
            end_of_epoch(tr, epoch, data_wait, t_epoch)
            if tr.stopping.ended:
                break
    if tr.ckpt is not None:
        tr.ckpt.flush_best()  # the last checkpoint and best.safetensors are on disk before anything reports success
    if tr.stopping.signal:
        _interrupted(tr)
    return finish(tr)


# ---- 2. the epoch --------------------------------------------------------------------------------------------------


def start_epoch(tr: Training, epoch: int) -> None:
    """Reset the epoch's accumulators and reseed its random streams (a fresh epoch only: a resumed one restored
    them), position the loader, and set train mode (and the frozen body of transfer learning)."""
    st = tr.st
    if st.pos == 0:
        st.new_epoch(tr.device, tr.steps_per_epoch)
        seed = rank_seed(tr.cfg.seed, tr.dctx.rank)
        tr.augment.new_epoch(epoch_seed(seed + 1, epoch), epoch_seed(seed + 2, epoch))
    tr.train_loader.set_epoch(epoch, st.pos)
    tr.model.train()
    if tr.cfg.train.freeze_epochs:  # a pure function of the epoch, so a resumed run freezes exactly the same way
        set_frozen(tr.model, epoch < tr.cfg.train.freeze_epochs)
    tr.reporter.start_epoch(epoch, tr.steps_per_epoch)
    tr.reporter.advance(st.pos)


def train_epoch(tr: Training, epoch: int) -> tuple[bool, float, float]:
    """One pass over the training split from ``st.pos`` (non-zero when resuming mid-epoch). Returns whether it ended
    in a rollback, the seconds spent waiting for batches, and when it started."""
    st, task, stepper, monitors = tr.st, tr.task, tr.stepper, tr.monitors
    start_epoch(tr, epoch)
    t_epoch = t_prev = time.perf_counter()
    data_wait, group_start, sampled = 0.0, st.pos, False
    for i, (x, y) in enumerate(labels.labelled(tr.train_loader) if tr.labels else tr.train_loader, start=st.pos):
        data_wait += time.perf_counter() - t_prev  # since the previous step ended: waiting for this batch
        if st.skip and (epoch, i) in st.skip:  # a batch that produced non-finite values before a rollback
            st.pos = i + 1
            continue
        if tr.augment.active:
            x, y = tr.augment(x, y)  # shift / kornia / mixup / cutmix, on the device
        if not sampled and monitors.wants(st.global_step + 1):
            monitors.arm()  # the doctor's activation/gradient hooks, for this step's forward only
            sampled = True
        with autocast(tr.precision, tr.device):
            loss, out = task.train_loss(tr.train_model, x, y)  # supervised: out = model(x), (B, out_dim)
        stepper.backward(loss * tr.weights[i] if tr.accumulate > 1 else loss)
        loss = loss.detach()
        st.loss_buf[i] = loss  # one device copy; sums happen at log steps and epoch end
        if tr.counts_correct:
            st.correct += task.correct(out.detach(), y)
        if tr.step_losses is not None:
            tr.step_losses.append(loss.item())  # a host sync: for tests and parity checks only
        tr.reporter.advance()
        st.pos = i + 1
        if i in tr.boundaries:  # the last micro-batch of an accumulation group: update (or skip) the weights
            if sampled:
                monitors.before_update()
            if tr.guard.active and not stepper.finite(loss):  # a free host read on CPU (faults.nonfinite=auto)
                action = skip_group(tr, x, epoch, group_start, i)
                if action == "rollback":
                    return True, data_wait, t_epoch
                if action == "stop":
                    break
            else:
                optimizer_step(tr, epoch, i, loss, t_epoch, monitored=sampled)
                if tr.stopping.signal:
                    break
            sampled, group_start = False, i + 1
        t_prev = time.perf_counter()
    return False, data_wait, t_epoch


def optimizer_step(tr: Training, epoch: int, i: int, loss: torch.Tensor, t_epoch: float, monitored: bool) -> None:
    """Apply the group's gradients, then what follows a step: the doctor's reading of it, the train log every
    ``train.log_every`` steps (the only per-interval host sync) and a mid-epoch checkpoint when one is due."""
    st, stepper = tr.st, tr.stepper
    stepper.step()
    if monitored:
        tr.monitors.after_update(st.global_step + 1, epoch, loss, stepper.grad_norm)
    tr.guard.good_step()
    st.global_step += 1
    if st.global_step % tr.log_every == 0:
        log_train(tr, epoch, i, t_epoch)
    if tr.ckpt is not None and i + 1 < tr.steps_per_epoch and (
            tr.ckpt_schedule.due_in_epoch(st.global_step) or tr.stopping.signal):
        save_checkpoint(tr)


def log_train(tr: Training, epoch: int, i: int, t_epoch: float) -> None:
    st, stepper = tr.st, tr.stepper
    mean = st.take_log_mean(i + 1)
    event = {"step": st.global_step, "epoch": epoch, "split": "train", "loss": mean, "lr": stepper.lr}
    if stepper.grad_norm is not None:
        event["grad_norm"] = stepper.grad_norm.item()
    tr.events(event)
    tr.reporter.update(mean, (i + 1 - st.pos_at_start) / max(1e-9, time.perf_counter() - t_epoch))
    if tr.distributed:  # ranks stop, and take time-based checkpoints, together: agreed here, where they sync anyway
        signum, due = tr.dctx.agree(tr.stopping.raw.signum, tr.ckpt_schedule.seconds_due())
        tr.stopping.agree(signum)
        tr.ckpt_schedule.agree(bool(due))


def skip_group(tr: Training, x: torch.Tensor, epoch: int, start: int, i: int) -> str:
    """A non-finite accumulation group (micro-batches ``start..i``): discard its gradients and count it; after
    ``faults.max_bad_steps`` in a row roll back to the newest checkpoint with a lower lr, or stop when that is not
    possible. Returns ``skip``, ``rollback`` or ``stop``."""
    st = tr.st
    tr.monitors.locate_nonfinite(x, st.global_step, epoch, i)  # reads the gradients: before they are discarded
    tr.stepper.discard()
    action = tr.guard.bad_group(epoch, start, i + 1)
    tr.events({"step": st.global_step, "epoch": epoch, "split": "train", "event": "nonfinite_skipped", "batch": i})
    if action == "skip":
        return "skip"
    f = tr.cfg.faults
    if tr.ckpt is None or not tr.guard.may_roll_back() or not tr.ckpt.rollback(f.lr_factor):
        tr.stopping.request(NON_FINITE)
        return "stop"
    tr.augment.mix_rng = tr.ckpt.mix_rng_restored or tr.augment.mix_rng
    tr.events({"step": st.global_step, "epoch": st.epoch, "split": "train", "event": "rollback",
               "lr_scale": st.lr_scale})
    tr.reporter.info(f"[yellow]{f.max_bad_steps} non-finite steps in a row: rolled back "
                     f"to step {st.global_step}, lr ×{f.lr_factor}[/yellow]")
    return "rollback"


def save_checkpoint(tr: Training, best: bool = False) -> None:
    assert tr.ckpt is not None
    tr.st.wall_before = time.perf_counter() - tr.t_start
    with record_function(labels.CHECKPOINT):
        tr.ckpt.save(tr.augment.mix_rng, best=best)
    tr.ckpt_schedule.saved()


# ---- 3. the end of an epoch ----------------------------------------------------------------------------------------


def end_of_epoch(tr: Training, epoch: int, data_wait: float, t_epoch: float) -> None:
    """Train metrics (one sync), evaluation, schedule, best weights, early stopping and the checkpoint decision."""
    st, stepper, reporter = tr.st, tr.stepper, tr.reporter
    row = epoch_metrics(tr, epoch)
    value = row[tr.monitor]
    stepper.schedule.after_epoch(value)
    row["seconds"] = time.perf_counter() - t_epoch
    timing = {"epoch": epoch, "data_wait_s": data_wait, "epoch_s": row["seconds"],
              "grad_norm_max": stepper.take_grad_norm_max()}  # largest pre-clip norm this epoch (one sync)
    tr.monitors.write({"kind": "timing", **timing})
    tr.monitors.timing.append(timing)
    st.history.append(row)
    tr.events({"step": st.global_step, "epoch": epoch, "split": "train", "epoch_end": True,
               **{k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("train/")}, "lr": row["lr"]})
    if tr.val_loader is not None:
        tr.events({"step": st.global_step, "epoch": epoch, "split": "val",
                   **{k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("val/")}})
    reporter.end_epoch(row)
    st.epoch, st.pos = epoch + 1, 0
    tr.stopping.callback_reason()
    if not math.isfinite(row["train/loss"]):
        tr.stopping.request(NON_FINITE)
        reporter.info(f"[red]training stopped: the loss became non-finite in epoch {epoch + 1}; "
                      "lower optim.lr or set train.grad_clip[/red]")
        return
    improved = tr.early.update(value, epoch)
    if improved:
        st.best_state = {n: v.detach().clone() for n, v in full_state_dict(stepper.eval_model(), tr.dctx).items()}
        if tr.ckpt is not None:
            tr.ckpt.best_improved()
    elif tr.early.exhausted:
        tr.stopping.request(EARLY_STOPPING)
        reporter.info(f"early stopping: {tr.monitor} has not improved for {tr.early.patience} epochs "
                      f"(best {st.best_value:.4f} at epoch {st.best_epoch + 1})")
    due = tr.ckpt_schedule.due_at_epoch_end()
    if tr.distributed and tr.ckpt_schedule.epoch_min_seconds > 0:  # clocks differ: rank 0 decides for all
        due = bool(tr.dctx.agree(float(due and tr.dctx.main))[0])
    if tr.ckpt is not None and (due or tr.stopping.ended or st.epoch == tr.cfg.train.epochs):
        # best.safetensors advances with the checkpoints (which hold the best weights too), so a crash leaves the
        # two consistent and a time-gated epoch end writes nothing at all
        save_checkpoint(tr, best=improved)
    elif tr.sharded and improved and tr.files is not None:  # FSDP writes no checkpoints: best weights at once
        save_weights(tr.files / "best.safetensors", st.best_state)  # type: ignore[arg-type]


def epoch_metrics(tr: Training, epoch: int) -> dict[str, Any]:
    """The epoch's history row: train loss (and accuracy) over the epoch's valid micro-batches — all ranks' under
    DDP, one all-reduce — then the validation split's metrics, the lr and fp16's skipped steps."""
    st, sizes_t = tr.st, tr.sizes_t
    seen = sum(b for b, ok in zip(tr.sizes, st.valid) if ok)
    st.carry_log(tr.steps_per_epoch)
    if tr.distributed:
        tot = tr.dctx.all_reduce(torch.stack([(st.loss_buf * sizes_t).sum(), sizes_t.new_tensor(seen),
                                              st.correct.to(sizes_t.dtype)]))
        loss_sum, seen_all, correct_all = tot.tolist()
        tr.stopping.agree(tr.dctx.agree(tr.stopping.raw.signum)[0])
    else:
        loss_sum, seen_all, correct_all = (st.loss_buf * sizes_t).sum(), seen, st.correct
    row: dict[str, Any] = {"epoch": epoch, "step": st.global_step, "train/loss": float(loss_sum / max(1, seen_all))}
    if tr.counts_correct:
        row["train/accuracy"] = float(correct_all) / max(1, seen_all)
    if tr.val_loader is not None:
        metrics = evaluate(tr.stepper.eval_model(), tr.val_loader, tr.task, tr.precision, tr.device)
        row.update({f"val/{m}": v for m, v in metrics.items()})
    row["lr"] = tr.stepper.lr
    if tr.stepper.scaler is not None:
        row["skipped_steps"] = tr.stepper.skipped_steps()
    if tr.monitor not in row:  # build checked the name; a task reporting fewer metrics than it declared lands here
        raise TrainwiseError(f"train.monitor={tr.cfg.train.monitor} is not a metric this run reports; choose one of "
                             f"{', '.join(k for k in row if '/' in k)}")
    return row


def _sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule  # deferred: torch.distributed's FSDP imports are slow

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
    with record_function(labels.EVALUATE), grad_off, autocast(precision, device):
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


# ---- 4. the end of training ----------------------------------------------------------------------------------------


def _interrupted(tr: Training) -> None:
    """A signal stopped the run: the checkpoint is written; mark the run resumable and say how to resume."""
    tr.log.close()
    tr.monitors.close()
    if tr.tracker is not None:
        tr.tracker.interrupted()
    if tr.files is not None:
        mark_process(tr.files, "interrupted", signal=tr.stopping.signal)
    where = (f"torchrun --nproc_per_node={tr.dctx.world} -m trainwise resume {tr.out_dir}" if tr.distributed
             else f"trainwise resume {tr.out_dir}")
    raise TrainingInterrupted(tr.stopping.signal, f"interrupted by signal {tr.stopping.signal}: checkpoint saved at "
                              f"step {tr.st.global_step}; resume with: {where}")


def _save_final(tr: Training) -> None:
    """final.safetensors. A full disk or read-only folder here leaves the checkpoints written so far intact."""
    final_weights = full_state_dict(tr.stepper.eval_model(), tr.dctx)  # FSDP: gathered from the shards (collective)
    if tr.out_dir is None or not tr.dctx.main:
        return
    try:
        save_weights(tr.out_dir / "final.safetensors", final_weights)
    except OSError as exc:
        tr.log.close()
        tr.monitors.close()
        last_good = tr.ckpt.latest() if tr.ckpt is not None else None
        resumable = (f"the last good checkpoint ({last_good}) is intact: resume with 'trainwise resume "
                     f"{tr.out_dir}' once the disk has space and the folder is writable") if last_good \
            else "no checkpoint was written"
        if tr.ckpt is not None and tr.ckpt.failures:
            resumable += f" ({tr.ckpt.failures} checkpoint write(s) failed too)"
        raise TrainwiseError(f"could not write '{tr.out_dir / 'final.safetensors'}' ({exc.strerror or exc}); "
                             f"{resumable}") from None


def finish(tr: Training) -> FitResult:
    """Final weights, best weights restored, the test split evaluated once, summary, diagnosis and files."""
    st, cfg, model = tr.st, tr.cfg, tr.model
    wall = time.perf_counter() - tr.t_start
    _save_final(tr)
    if st.best_state is not None and tr.task.keep_best:
        load_full_state_dict(model, st.best_state, tr.dctx)
    last = st.history[-1] if st.history else {"epoch": st.epoch}
    summary: dict[str, Any] = {key: v for key, v in last.items() if "/" in key}
    if st.best_epoch >= 0 and tr.val_loader is not None:
        summary.update({k: v for k, v in st.history[st.best_epoch].items() if k.startswith("val/")})
    if tr.test_loader is not None:
        test = evaluate(model, tr.test_loader, tr.task, tr.precision, tr.device)
        summary.update({f"test/{m}": v for m, v in test.items()})
        tr.events({"step": st.global_step, "epoch": last["epoch"], "split": "test", **test})
    summary.update(tr.task.finish(model, tr.data.parts, tr.files, tr.device))
    summary.update({"epochs": len(st.history), "steps": st.global_step,
                    "best_epoch": st.best_epoch + 1 if st.best_epoch >= 0 else None,
                    "monitor": tr.monitor, "stopped": st.stopped, "wall_seconds": round(wall, 3), "seed": cfg.seed,
                    "device": str(tr.device), "precision": tr.precision, "task": tr.data.kind,
                    "main_metric": tr.task.main_metric, "nonfinite_skipped_steps": st.bad_steps,
                    "rollbacks": st.rollbacks, "checkpoint_failures": tr.ckpt.failures if tr.ckpt is not None else 0,
                    "resumed_from": st.resumed_from, "versions": versions()})
    if tr.distributed:
        summary.update({"strategy": tr.dctx.strategy, "world_size": tr.dctx.world})
    if tr.stepper.scaler is not None:
        summary["skipped_steps"] = tr.stepper.skipped_steps()
    tr.log.close()
    tr.monitors.close()
    findings = _diagnosis(tr, summary) if cfg.doctor.diagnose else []
    if tr.files is not None:
        write_json(tr.files / "summary.json", summary)
        write_json(tr.files / "history.json", st.history)
        plot_curves(st.history, tr.task.main_metric, tr.files / "curves.png")
        if tr.tracker is not None:  # last: the artifacts it uploads (curves, diagnosis, weights) are on disk now
            tr.tracker.finish(summary, findings, tr.files)
        clear_process(tr.files)  # summary.json now says the run ended
    tr.dctx.close()
    return FitResult(model, st.history, summary, tr.out_dir, tr.step_losses or [], findings)


def _diagnosis(tr: Training, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The doctor's findings from this run's evidence (doctor/diagnose.py), printed and written to diagnosis.json."""
    st = tr.st
    record = RunRecord(history=st.history, summary=summary, config=to_dict(tr.cfg), train_events=tr.events.train,
                       monitors=tr.monitors.records, timing=tr.monitors.timing, nonfinite=tr.monitors.nonfinite,
                       preflight=tr.pre_findings, init_loss=tr.pre_info.get("init_loss"),
                       expected_init_loss=tr.pre_info.get("expected_init_loss"), pre_info=tr.pre_info)
    if tr.resume is not None and tr.out_dir is not None:  # the interrupted part of the run is on disk only
        disk = load_record(tr.out_dir)
        record.monitors, record.timing, record.nonfinite = disk.monitors, disk.timing, disk.nonfinite
        record.train_events = disk.train_events
    findings = diagnose(record)
    summary["findings"] = [f.code for f in findings]
    out = [f.to_dict() for f in findings]
    if tr.files is not None:
        write_json(tr.files / "diagnosis.json", {"findings": out})
    if not tr.reporter.quiet and tr.dctx.main:
        tr.reporter.console.print("[bold]diagnosis[/bold]")
        tr.reporter.console.print(render(findings), markup=False)
    return out

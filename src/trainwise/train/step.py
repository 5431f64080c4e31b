"""The step machinery every paradigm shares: precision, loss scaling, accumulation, clipping, optimizer, schedule, EMA.

A paradigm computes a loss from a batch; :class:`Stepper` does everything after that. Keeping this in one place is
what stops gradient accumulation being right in one recipe and wrong in another.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainwise.train import labels
from trainwise.train.schedule import Schedule


class Stepper:
    """backward → (every K micro-batches) unscale → clip → optimizer step → zero_grad → schedule → EMA.

    No host sync happens here: the gradient norm stays a device tensor until someone logs it.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 scaler: torch.amp.GradScaler | None, grad_clip: float | None, ema_decay: float | None,
                 params: list[nn.Parameter] | None = None) -> None:
        self.model, self.optimizer, self.schedule, self.scaler = model, optimizer, schedule, scaler
        self.grad_clip = grad_clip
        # The parameters this optimizer owns (clipping and finiteness read their gradients): all of the model's by
        # default, a part of it when a paradigm steps parts separately (a GAN's generator and discriminator).
        self.params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
        self.grad_norm: torch.Tensor | None = None  # 0-d device tensor, last pre-clip global norm
        # Running maximum of the pre-clip norm since the last take_grad_norm_max() (the loop reads it once per epoch):
        # a single spike between two log steps is the evidence the doctor's exploding_gradients rule needs.
        self._grad_norm_max: torch.Tensor | None = None
        self.ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
                    if ema_decay else None)
        self.check_loss = True  # False under DDP: a rank's own loss could disagree; the reduced gradients cannot
        self._prepared = False
        self.labels = False  # profile=true: unscale + clip recorded under a torch.profiler label
        device = self.params[0].device if self.params else torch.device("cpu")
        self._skipped = torch.zeros((), device=device)  # fp16 steps skipped by GradScaler, on device
        optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of a micro-batch loss already weighted for accumulation."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def prepare(self) -> torch.Tensor | None:
        """Unscale (fp16) and clip; the pre-clip global gradient norm stays on the device."""
        if self._prepared:
            return self.grad_norm
        if self.labels:
            with record_function(labels.CLIP):
                return self._prepare()
        return self._prepare()

    def _prepare(self) -> torch.Tensor | None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip true gradients, not scaled ones
            # Count skipped fp16 steps on the device (no sync): GradScaler records inf/NaN found while unscaling.
            found = self.scaler._per_optimizer_states[id(self.optimizer)]["found_inf_per_device"]  # noqa: SLF001
            for flag in found.values():
                self._skipped = self._skipped + flag.to(self._skipped.device)
        norm: torch.Tensor | None
        if self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        else:
            # Kept without clipping too, so gradient evidence does not depend on it: one fused norm per step, on the
            # device (no host sync; read at log steps and epoch ends). Clipping computes exactly this norm anyway.
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else None
        if norm is not None:
            # FSDP: a replicated DTensor; its local value is the global norm (no communication to unwrap it)
            self.grad_norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
            # fmax: a NaN norm (a step about to be skipped) must not erase the epoch's finite maximum
            if self._grad_norm_max is None:  # a copy: the running maximum is then updated in place (no per-step
                self._grad_norm_max = self.grad_norm.detach().clone()  # allocation)
            else:
                torch.fmax(self._grad_norm_max, self.grad_norm.detach(), out=self._grad_norm_max)
        self._prepared = True
        return self.grad_norm

    def finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss and the accumulated gradients are finite. Reads one value on the host: free on a CPU,
        a sync on a GPU (which is why ``faults.nonfinite=auto`` uses it on CPUs only). fp16 runs leave this to
        GradScaler, which skips such steps itself."""
        if self.scaler is not None:
            return True
        norm = self.prepare()
        if norm is None:  # no parameter received a gradient
            norm = loss.new_zeros(())
        # Host reads of two 0-d tensors: no extra kernels (an inf loss can still have finite gradients).
        return math.isfinite(norm.item()) and (not self.check_loss or math.isfinite(loss.item()))

    def discard(self) -> None:
        """Drop the accumulated gradients without updating anything."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None and self._prepared:
            self.scaler.update()
        self._prepared = False

    def step(self) -> None:
        """Apply the accumulated gradients."""
        self.prepare()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped internally when gradients are inf/NaN
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # None grads: no memset, and the next backward writes instead of adds
        self._prepared = False
        self.schedule.after_step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def scale_lr(self, factor: float) -> None:
        """Multiply every learning rate — the optimizer's and the schedule's notion of it — by ``factor``."""
        for g in self.optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if key in g:
                    g[key] *= factor
        sched = self.schedule.scheduler
        for attr in ("base_lrs", "max_lrs", "min_lrs"):
            if sched is not None and hasattr(sched, attr):
                setattr(sched, attr, [v * factor for v in getattr(sched, attr)])

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def take_grad_norm_max(self) -> float | None:
        """Largest pre-clip global gradient norm since the last call, then reset (a host sync: epoch ends only)."""
        value = None if self._grad_norm_max is None else float(self._grad_norm_max)
        self._grad_norm_max = None
        return value

    def skipped_steps(self) -> int:
        """fp16 steps GradScaler skipped for non-finite gradients (a host sync: call at epoch end only)."""
        return int(self._skipped.item())

    def eval_model(self) -> nn.Module:
        """The weights evaluation should use: the EMA when enabled, the live model otherwise."""
        return self.ema.module if self.ema is not None else self.model

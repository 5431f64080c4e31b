"""Live monitors, sampled every N optimizer steps: per-layer gradient norms, update-to-weight ratios, dead or
saturated activation units, and data-wait time per epoch.

Between samples the monitor costs nothing but an integer comparison. On a sampled step it registers forward hooks
for that one forward pass, reads the statistics with one host transfer, and writes one line to ``monitors.jsonl``:
``{"step", "epoch", "loss", "grad_norm", "layers": {name: {grad_norm, update_ratio, weight_norm}},
"activations": {name: {dead_frac, sat_frac, std}}}``. Epoch timing lines: ``{"kind": "timing", "epoch",
"data_wait_s", "epoch_s"}``. A non-finite step adds ``{"kind": "nonfinite", "step", "epoch", "batch", "layer"}``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwise.safety import check_inside

RELU_LIKE = (nn.ReLU, nn.ReLU6)
SATURATING = (nn.Sigmoid, nn.Tanh)
ACTIVATIONS = (*RELU_LIKE, *SATURATING, nn.LeakyReLU, nn.GELU, nn.SiLU)
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def activation_stats(module: nn.Module, out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Device tensors: fraction of units never positive over the batch (ReLU), share of saturated outputs
    (sigmoid/tanh), and the output's standard deviation. A unit is a feature (B, F) or a channel (B, C, ...)."""
    o = out.detach().float()
    stats = {"std": o.std() if o.numel() > 1 else o.new_zeros(())}
    if isinstance(module, RELU_LIKE):
        per_unit = o.transpose(0, 1).reshape(o.shape[1], -1) if o.ndim > 1 else o[None]  # (units, B·spatial)
        stats["dead_frac"] = (per_unit <= 0).all(dim=1).float().mean()
    if isinstance(module, nn.Sigmoid):
        stats["sat_frac"] = ((o < 0.02) | (o > 0.98)).float().mean()
    elif isinstance(module, nn.Tanh):
        stats["sat_frac"] = (o.abs() > 0.98).float().mean()
    return stats


def _plain(t: torch.Tensor) -> torch.Tensor:
    """An FSDP DTensor statistic (a norm reduced over shards) as a plain tensor; plain tensors unchanged."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class Monitor:
    def __init__(self, model: nn.Module, every: int, path: Path | None, hooks: bool = True,
                 truncate_to: int | None = None) -> None:
        self.model, self.every, self.path = model, every, path
        self.hooks_enabled = hooks  # off under torch.compile: hooks would force graph breaks / recompiles
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED)]
        self.acts = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
        self._handles: list[Any] = []
        self._act: dict[str, dict[str, torch.Tensor]] = {}
        self._before: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor] = []
        self.nonfinite_reported = False
        self.records: list[dict[str, Any]] = []  # kept in memory too, for the end-of-run diagnosis
        self.timing: list[dict[str, Any]] = []
        self.nonfinite: list[dict[str, Any]] = []
        self._f = None
        if path is not None:
            check_inside(path, path.parent, "log")  # a link out of the run directory is never truncated or appended to
            if truncate_to is not None and path.exists():
                with open(path, "r+b") as f:
                    f.truncate(truncate_to)
            self._f = open(path, "a", buffering=1)  # noqa: SIM115 - lives for the run

    def wants(self, next_step: int) -> bool:
        # Every `every` steps, plus steps 1, 2, 4, 8, … below `every`: most blow-ups (a too-large lr, dying units)
        # happen in the first steps, before the first regular sample would see them.
        if self.every <= 0:
            return False
        return next_step % self.every == 0 or (next_step < self.every and next_step & (next_step - 1) == 0)

    def arm(self) -> None:
        """Before the forward of a sampled step: hook the activation modules for this one pass."""
        if not self.hooks_enabled:
            return
        for name, m in self.acts:
            self._handles.append(m.register_forward_hook(
                lambda mod, _inp, out, name=name: self._act.__setitem__(name, activation_stats(mod, out))))

    def before_update(self) -> None:
        """After backward, before the optimizer step: gradient norms and a copy of the weights."""
        for h in self._handles:
            h.remove()
        self._handles = []
        ws = [m.weight for _, m in self.layers]
        self._before = [w.detach().clone() for w in ws]
        # NaN, not 0, for a weight without a gradient (frozen, e.g. train.freeze_epochs): "no gradient asked for" must
        # not read as a vanishing gradient
        self._grad_norms = [w.grad.detach().norm() if w.grad is not None else w.new_full((), float("nan")) for w in ws]

    def after_update(self, step: int, epoch: int, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        """After the optimizer step: update ratios; one host transfer; one line written."""
        if not self._before:
            return
        names = [n for n, _ in self.layers]
        w_norm = [m.weight.detach().norm() for _, m in self.layers]
        upd = [(m.weight.detach() - b).norm() / (wn + 1e-12) for (_, m), b, wn in zip(self.layers, self._before, w_norm)]
        flat = torch.stack([_plain(v) for v in (*self._grad_norms, *upd, *w_norm)]
                           + [loss.detach().float().reshape(()),
                              _plain(grad_norm if grad_norm is not None else loss.new_full((), float("nan"))).float()])
        act_keys = [(n, k) for n, d in self._act.items() for k in d]
        act_vals = torch.stack([self._act[n][k].float() for n, k in act_keys]) if act_keys else None
        values = flat.tolist()  # the one sync of a sampled step
        act_list = act_vals.tolist() if act_vals is not None else []
        k = len(names)
        record: dict[str, Any] = {"step": step, "epoch": epoch, "loss": values[3 * k], "grad_norm": values[3 * k + 1],
                                  "layers": {n: {"grad_norm": values[i], "update_ratio": values[k + i],
                                                 "weight_norm": values[2 * k + i]} for i, n in enumerate(names)},
                                  "activations": {}}
        for (n, key), v in zip(act_keys, act_list):
            record["activations"].setdefault(n, {})[key] = v
        self._before, self._grad_norms, self._act = [], [], {}
        self.records.append(record)
        self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record) + "\n")

    def tell(self) -> int:
        if self._f is None:
            return 0
        self._f.flush()
        return self._f.tell()

    def locate_nonfinite(self, x: torch.Tensor, step: int, epoch: int, batch: int) -> str | None:
        """First module (in execution order) whose output is non-finite on batch ``x``; replayed on a copy of the
        model so neither the weights, BN statistics nor the RNG of the run change. Reported once per run."""
        if self.nonfinite_reported:
            return None
        self.nonfinite_reported = True
        replica = copy.deepcopy(self.model)
        first: list[str] = []

        def hook(name: str):  # noqa: ANN202 - hook factory
            def fn(_m: nn.Module, _i: Any, out: Any) -> None:
                if not first and isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
                    first.append(name)
            return fn

        handles = [m.register_forward_hook(hook(n)) for n, m in replica.named_modules() if n]
        devices = [x.device.index or 0] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            try:
                replica(x)
            except RuntimeError:
                pass
        for h in handles:
            h.remove()
        layer = first[0] if first else None
        if layer is None:  # forward finite: the overflow happened in backward; name where it entered
            bad = [n for n, p in self.model.named_parameters()
                   if p.grad is not None and not torch.isfinite(p.grad).all()]
            if bad:  # backward runs output→input, so the last layer in forward order saw it first
                layer = f"{bad[-1].rsplit('.', 1)[0]} (gradient)"
            else:  # every element finite but the global norm overflowed float32: name the largest gradient
                sizes = [(float(p.grad.abs().max()), n) for n, p in self.model.named_parameters() if p.grad is not None]
                if sizes:
                    layer = f"{max(sizes)[1].rsplit('.', 1)[0]} (gradient overflow)"
        event = {"kind": "nonfinite", "step": step, "epoch": epoch, "batch": batch, "layer": layer}
        self.nonfinite.append(event)
        self.write(event)
        return layer

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

"""Optimizers with weight decay only where it belongs, per-prefix learning rates, and the linear scaling rule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwise.errors import TrainwiseError


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 group_lr: dict[str, float] | None = None) -> list[dict]:
    """Split parameters into groups: decayed weights and undecayed biases / normalisation parameters
    (every parameter with fewer than 2 dimensions), each further split by ``group_lr`` name prefixes.

    Order is deterministic (module registration order), so a hand-written loop can build the same groups.
    """
    group_lr = dict(group_lr or {})
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in group_lr:
        if not any(n.startswith(prefix) for n in names):
            raise TrainwiseError(f"optim.group_lr prefix '{prefix}' matches no trainable parameter; "
                                 f"parameter names start with: {', '.join(sorted({n.split('.')[0] for n in names}))}")
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        this_lr = next((v for k, v in group_lr.items() if n.startswith(k)), lr)
        decay = p.ndim >= 2
        groups.setdefault((this_lr, decay), []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": weight_decay if decay else 0.0}
            for (g_lr, decay), ps in groups.items()]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                    nesterov: bool = False, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                    group_lr: dict[str, float] | None = None, fused: bool | None = None) -> torch.optim.Optimizer:
    """``fused``: torch's single-kernel Adam/AdamW step (ignored by the other optimizers); ``None`` (the config's
    ``optim.fused: null``) picks it wherever torch has it — plain CPU/CUDA tensors, not FSDP's sharded DTensors —
    so fit, lr-find and overfit-batch all step with the same kernel."""
    groups = param_groups(model, lr, weight_decay, group_lr)
    if not groups:
        raise TrainwiseError("the model has no trainable parameters (all frozen?)")
    if fused is None:
        from torch.distributed.tensor import DTensor

        first = groups[0]["params"][0]
        fused = first.device.type in ("cpu", "cuda") and not isinstance(first, DTensor)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum, eps=eps)
    if name == "adam":  # Adam's weight_decay is L2 added to the gradient (coupled), unlike AdamW's
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    raise TrainwiseError(f"unknown optimizer '{name}'; use sgd, rmsprop, adam or adamw")


def optimizer_from_config(module: nn.Module, o: Any, lr_ratio: float = 1.0, group_lr: bool = True,
                          weight_decay: float | None = None) -> torch.optim.Optimizer:
    """The optimizer the config's ``optim`` section describes (fit, lr-find and overfit-batch all build theirs here).
    ``lr_ratio`` scales the lr (a GAN's second optimizer); ``group_lr=False`` ignores ``optim.group_lr``, whose
    prefixes name the main model's parameters; ``weight_decay`` overrides the section's (overfit-batch: none)."""
    decay = o.weight_decay if weight_decay is None else weight_decay
    return build_optimizer(module, o.name, o.lr * lr_ratio, decay, o.momentum, o.nesterov,
                           (o.beta1, o.beta2), o.eps, dict(o.group_lr) if group_lr else {}, fused=o.fused)


def scale_lr(base_lr: float, batch_size: int, base_batch_size: int, accumulate: int = 1) -> float:
    """Linear scaling rule (Goyal et al. 2017): lr grows in proportion to the effective batch.

    ``scale_lr(1e-3, 64, 256, accumulate=8)`` is the lr for effective batch 512 when 1e-3 was tuned at 256. Pair it
    with warmup (``schedule.name=warmup_cosine``): large scaled lrs are unstable in the first steps.
    """
    return base_lr * batch_size * accumulate / base_batch_size

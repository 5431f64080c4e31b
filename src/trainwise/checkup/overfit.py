"""``trainwise doctor overfit-batch``: can the model drive the loss to near zero on one batch?

If it cannot, the problem is the model, the loss or the optimisation set-up — not the data or regularisation. Uses
the same step machinery as training (precision, clipping, optimizer); weight decay is switched off because it fights
memorisation by design.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from trainwise.errors import TrainwiseError
from trainwise.runner import setup
from trainwise.tasks import make_task
from trainwise.train.optim import optimizer_from_config
from trainwise.train.precision import autocast, grad_scaler
from trainwise.train.schedule import Schedule
from trainwise.train.step import Stepper


def overfit_batch(cfg: DictConfig, steps: int = 200, threshold: float = 0.05) -> dict[str, Any]:
    if cfg.paradigm.name != "supervised":  # its loss-vs-lr / loss→0 readings assume a supervised loss
        raise TrainwiseError(f"doctor overfit-batch supports supervised configs; this one is paradigm.name={cfg.paradigm.name}")
    splits, model, device, precision = setup(cfg)
    bs = min(cfg.data.batch_size, len(splits.train))
    x, y = splits.train.x[:bs].to(device), splits.train.y[:bs].to(device)
    task = make_task(splits.task, splits.num_classes, 0.0, splits.preprocess.y_mean, splits.preprocess.y_std)
    opt = optimizer_from_config(model, cfg.optim, group_lr=False, weight_decay=0.0)
    stepper = Stepper(model, opt, Schedule(None, "never"), grad_scaler(precision, device), cfg.train.grad_clip, None)
    losses = []
    for _ in range(steps):
        with autocast(precision, device):
            loss = task.loss(model(x), y)
        stepper.backward(loss)
        stepper.step()
        losses.append(loss.detach())
    values = torch.stack(losses).float().tolist()
    first, last, best = values[0], values[-1], min(values)
    passed = best <= threshold * first or best < 1e-3
    return {"passed": passed, "batch_size": bs, "steps": steps, "initial_loss": first, "final_loss": last,
            "best_loss": best, "rule": f"best loss ≤ {threshold} × initial loss (or < 1e-3)",
            "verdict": ("the model and loss can memorise one batch: if training fails, look at the data, the lr "
                        "schedule or regularisation" if passed else
                        "the model cannot memorise one batch: check the model (capacity, activations, init), the "
                        "loss/labels pairing and the lr")}

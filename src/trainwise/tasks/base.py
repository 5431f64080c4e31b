"""The task interface shared by every paradigm's step."""

from __future__ import annotations

import torch

from trainwise.errors import TrainwiseError


class Task:
    """Loss + metrics for one kind of target. Subclasses set ``name``, ``main_metric`` and implement the methods."""

    name = "task"
    main_metric = "loss"
    out_dim = 1

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of a batch; ``y`` may be soft targets (B, C) under mixup/cutmix."""
        raise NotImplementedError

    def eval_loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed (not mean) evaluation loss of a batch, so the split loss is exact for a ragged last batch."""
        raise NotImplementedError

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """On-device count of correct predictions for the cheap train-split metric (0-d tensor)."""
        return out.new_zeros(())

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics over the whole split (all outputs at once, never an average of per-batch values)."""
        raise NotImplementedError

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def check_output(self, out: torch.Tensor, batch: int) -> None:
        if out.ndim != 2 or out.shape[0] != batch or out.shape[1] != self.out_dim:
            raise TrainwiseError(f"the model's output has shape {tuple(out.shape)} but the {self.name} task needs "
                                 f"({batch}, {self.out_dim}); make the last layer output {self.out_dim} values")


def make_task(kind: str, num_classes: int = 0, label_smoothing: float = 0.0, y_mean: float = 0.0,
              y_std: float = 1.0) -> Task:
    from trainwise.tasks.classification import Classification
    from trainwise.tasks.regression import Regression

    if kind == "classification":
        return Classification(num_classes, label_smoothing)
    return Regression(y_mean, y_std)


def minimize(metric: str) -> bool:
    """Whether lower is better for a metric name such as ``val/loss`` or ``val/accuracy``."""
    return any(k in metric.split("/")[-1] for k in ("loss", "mae", "rmse", "mse", "error"))

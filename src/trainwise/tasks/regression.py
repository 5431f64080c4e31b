"""Regression on one target: MSE loss; MAE, RMSE and R² from torchmetrics over the split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

from trainwise.tasks.base import Task
from trainwise.tasks.registry import TaskArgs, register_task


class Regression(Task):
    name = "regression"
    main_metric = "r2"
    metric_names = ("mae", "rmse", "mse", "r2")
    out_dim = 1

    def __init__(self, y_mean: float = 0.0, y_std: float = 1.0) -> None:
        # Targets are trained standardised (train-split statistics); metrics and predictions are in original units.
        self.y_mean, self.y_std = y_mean, y_std

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.squeeze(1), y)

    def eval_loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.squeeze(1).float(), y, reduction="sum")

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        p = out.squeeze(1).float() * self.y_std + self.y_mean
        y = y * self.y_std + self.y_mean
        m = {"mae": mean_absolute_error(p, y).item(), "rmse": mean_squared_error(p, y, squared=False).item(),
             "mse": mean_squared_error(p, y).item()}
        if len(y) > 1:
            m["r2"] = r2_score(p, y).item()
        return m

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(1) * self.y_std + self.y_mean


@register_task("regression")
def regression_task(a: TaskArgs) -> Task:
    return Regression(a.y_mean, a.y_std)

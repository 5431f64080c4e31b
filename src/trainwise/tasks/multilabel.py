"""Multi-label classification: each of L labels is an independent yes/no — BCE with logits, torchmetrics over the
whole split (per-label then macro-averaged), predictions thresholded at 0.5."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multilabel_accuracy, multilabel_auroc, multilabel_f1_score

from trainwise.tasks.base import Task
from trainwise.tasks.registry import TaskArgs, register_task


class MultiLabel(Task):
    name = "multilabel"
    main_metric = "f1_macro"
    metric_names = ("accuracy", "f1_macro", "exact_match", "auroc")

    def __init__(self, num_labels: int) -> None:
        self.num_labels = self.out_dim = num_labels

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, y)  # out, y: (B, L); y in {0, 1}

    def eval_loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Per sample: the sum over labels, so the split loss is "per sample" like every other task's.
        return F.binary_cross_entropy_with_logits(out.float(), y, reduction="sum")

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        t, n = y.long(), self.num_labels
        m = {"accuracy": multilabel_accuracy(out, t, num_labels=n, average="macro").item(),
             "f1_macro": multilabel_f1_score(out, t, num_labels=n, average="macro").item(),
             "exact_match": ((out > 0) == t.bool()).all(1).float().mean().item()}
        if bool(((t.sum(0) > 0) & (t.sum(0) < len(t))).all()):  # AUROC needs both outcomes for every label
            m["auroc"] = multilabel_auroc(out, t, num_labels=n, average="macro").item()
        return m

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return (out > 0).long()  # (B, L) 0/1


@register_task("multilabel")
def multilabel_task(a: TaskArgs) -> Task:
    return MultiLabel(a.num_classes)

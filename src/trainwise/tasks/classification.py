"""Multi-class classification: cross-entropy (label smoothing, soft targets) and metrics over the whole split
(accuracy and macro F1 from torchmetrics; macro one-vs-rest AUROC computed here, see ``macro_auroc``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from trainwise.tasks.base import Task


class Classification(Task):
    name = "classification"
    main_metric = "accuracy"
    counts_correct = True

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = self.out_dim = num_classes
        self.label_smoothing = label_smoothing

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, label_smoothing=self.label_smoothing)

    def eval_loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y, reduction="sum")

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 2:  # soft targets (mixup): count agreement with the dominant label
            y = y.argmax(1)
        return (out.argmax(1) == y).sum()

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        c = self.num_classes
        out = out.float()
        m = {
            "accuracy": multiclass_accuracy(out, y, num_classes=c, average="micro").item(),
            "f1_macro": multiclass_f1_score(out, y, num_classes=c, average="macro").item(),
        }
        if len(torch.unique(y)) == c:  # AUROC is undefined for a class absent from the split
            m["auroc"] = macro_auroc(out.softmax(1), y, c)
        return m

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out.argmax(1)


def macro_auroc(prob: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """One-vs-rest AUROC averaged over the classes (every class must occur in ``y``): torchmetrics'
    ``multiclass_auroc(prob, y, num_classes, average="macro")`` up to float rounding (≤ 2e-7 in tests), exact with
    ties (a tie counts ½).

    Per class it is the Mann–Whitney statistic, AUC = (R⁺ − n⁺(n⁺+1)/2) / (n⁺ n⁻) with R⁺ the sum of the positives'
    mid-ranks, from one sort of all classes' scores instead of torchmetrics' ROC curve per class: 0.2 ms instead of
    1.1 ms on the 359 × 10 digits val split, and it runs in every epoch's validation.
    """
    if prob.device.type == "mps":  # cummax / cummin / sort coverage varies across MPS versions; this is small work
        prob, y = prob.cpu(), y.cpu()
    n = len(y)
    n_pos = torch.bincount(y, minlength=num_classes).tolist()
    position = torch.arange(n, device=prob.device)
    total = 0.0
    step = max(1, (1 << 22) // max(1, n))  # classes per chunk: bounds the (classes, n) temporaries
    for start in range(0, num_classes, step):
        ordered, order = prob[:, start:start + step].T.sort(dim=1)  # (k, n) each class's scores, ascending
        starts = torch.ones_like(ordered, dtype=torch.bool)  # first of a run of equal scores
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ends = torch.ones_like(starts)  # last of a run
        ends[:, :-1] = starts[:, 1:]
        first = torch.where(starts, position, 0).cummax(dim=1).values  # 0-based start of each score's tie run
        last = torch.where(ends, position, n).flip(1).cummin(dim=1).values.flip(1)  # … and its end
        positive = y[order] == torch.arange(start, start + len(ordered), device=y.device).unsqueeze(1)
        sums = ((first + last) * positive).sum(1).tolist()  # Σ⁺ (2 · mid-rank − 2), int64: exact
        for k, r in enumerate(sums):
            p = n_pos[start + k]
            total += (r + 2 * p - p * (p + 1)) / (2 * p * (n - p))  # 2U / (2 n⁺ n⁻)
    return total / num_classes

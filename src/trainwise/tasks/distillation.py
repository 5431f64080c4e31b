"""Knowledge distillation (Hinton et al. 2015): the student learns from the teacher's softened outputs.

loss = α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y). The T² factor keeps the soft term's gradient scale
independent of T. The teacher is a finished classification run, loaded once, frozen, in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.reopen import open_run
from trainwise.tasks.base import Task
from trainwise.tasks.classification import Classification
from trainwise.tasks.registry import TaskArgs, register_paradigm


class Distillation(Classification):
    name = "distill"
    supervised = True

    def __init__(self, num_classes: int, label_smoothing: float, teacher: str | None, temperature: float,
                 alpha: float) -> None:
        super().__init__(num_classes, label_smoothing)
        if not teacher:
            raise TrainwiseError("paradigm.name=distill needs distill.teacher=RUN_DIR (a finished classification run)")
        self.teacher_dir, self.temperature, self.alpha = Path(teacher), temperature, alpha
        self.teacher: nn.Module | None = None

    def setup(self, model: nn.Module, build_stepper: Any) -> None:
        _, _, prep, teacher = open_run(self.teacher_dir)
        if prep.task != "classification" or len(prep.class_names) != self.num_classes:
            raise TrainwiseError(f"the teacher run '{self.teacher_dir}' is not a {self.num_classes}-class "
                                 "classification run on the same data")
        device = next(model.parameters()).device
        self.teacher = teacher.to(device).eval().requires_grad_(False)

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = model(x)  # (B, C) student logits
        hard = F.cross_entropy(s, y, label_smoothing=self.label_smoothing)
        if self.alpha == 0:  # the no-teacher twin: plain cross-entropy, same code path
            return hard, s
        assert self.teacher is not None
        with torch.no_grad():
            t = self.teacher(x)  # (B, C)
        temp = self.temperature
        soft = F.kl_div(F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1), reduction="batchmean",
                        log_target=True) * temp * temp
        return self.alpha * soft + (1 - self.alpha) * hard, s


@register_paradigm("distill")
def distill_task(a: TaskArgs) -> Task:
    d = a.cfg.distill
    return Distillation(a.num_classes, a.label_smoothing, d.teacher, d.temperature, d.alpha)

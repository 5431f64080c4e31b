"""Contrastive self-supervision (SimCLR): two random views per sample, NT-Xent loss, linear-probe evaluation.

Labels are never used for training; they are used after training for the linear probe of the frozen encoder (a
scikit-learn logistic regression on encoder features, train split → test split), against the same probe on a
randomly initialised copy of the encoder.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.tasks.base import Task, fixed_rng
from trainwise.tasks.registry import TaskArgs, register_paradigm
from trainwise.train.augment import kornia_pipeline, vector_views


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (Chen et al. 2020) over 2B projections: each view's positive is its twin, the other 2B−2 are
    negatives. z1, z2: (B, D). Returns the mean over all 2B anchors."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
    sim = z @ z.t() / temperature  # (2B, 2B) cosine similarities / τ
    sim.fill_diagonal_(float("-inf"))  # an anchor is not its own negative
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)  # twin index
    return F.cross_entropy(sim, targets)


class Contrastive(Task):
    name = "contrastive"
    metric_names = ("pos_acc",)
    main_metric = "pos_acc"  # fraction of anchors whose nearest neighbour among 2B−1 candidates is their twin
    supervised = False

    def __init__(self, temperature: float = 0.5) -> None:
        self.temperature = temperature
        self._augment: nn.Module | None = None

    def views(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # images (B, C, H, W)
            if self._augment is None:
                self._augment = kornia_pipeline(x.shape[-2], x.shape[-1], "strong").to(x.device)
            return self._augment(x)
        return vector_views(x)

    def _pair_loss(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z1, z2 = model(self.views(x)), model(self.views(x))  # (B, D) each
        return nt_xent(z1, z2, self.temperature), z1, z2

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, z1, _ = self._pair_loss(model, x)
        return loss, z1

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Fixed views for evaluation: fork the global RNG so evaluating changes nothing the training draws next.
        with fixed_rng(x.device):
            loss, z1, z2 = self._pair_loss(model, x)
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        sim = z @ z.t()
        sim.fill_diagonal_(float("-inf"))
        b = z1.shape[0]
        twin = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        hit = (sim.argmax(1) == twin).float().view(2, b).mean(0)  # (B,) per-sample positive retrieval
        return loss * x.shape[0], hit, y

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return {"pos_acc": out.mean().item()}

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        out = model(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or not hasattr(model, "encode"):
            raise TrainwiseError("paradigm.name=contrastive needs a model with encode(x) → features and forward(x) → "
                                 "(B, D) projections; use model.name=simclr")

    def finish(self, model: nn.Module, parts: dict[str, Any], out_dir: Any, device: torch.device) -> dict[str, Any]:
        if not (isinstance(parts.get("train"), tuple) and isinstance(parts.get("test"), tuple)):
            return {}
        trained = linear_probe(model, parts["train"], parts["test"], device)
        random_init = copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            for m in random_init.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()  # type: ignore[operator]  # torch types it Tensor | Module
        baseline = linear_probe(random_init, parts["train"], parts["test"], device)
        return {"probe/accuracy": trained, "probe/accuracy_random_encoder": baseline}


def encode_all(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        # the encoder's own method (torch types nn.Module attributes as Tensor | Module)
        feats = [model.encode(x[i:i + batch].to(device)).float().cpu()  # type: ignore[operator]
                 for i in range(0, len(x), batch)]
    return torch.cat(feats).numpy()


def linear_probe(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 device: torch.device) -> float:
    """Test accuracy of a logistic regression on the frozen encoder's features (standardised on train)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f_train, f_test = encode_all(model, train[0], device), encode_all(model, test[0], device)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(f_train, train[1].numpy())
    return float(probe.score(f_test, test[1].numpy()))


@register_paradigm("contrastive")
def contrastive_task(a: TaskArgs) -> Task:
    return Contrastive(a.cfg.paradigm.temperature)

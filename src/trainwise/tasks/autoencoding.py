"""Autoencoding paradigms: a plain autoencoder (reconstruction error as an anomaly score) and a VAE (ELBO).

Targets are the inputs themselves; the split's labels are only used for metrics (the anomaly flag when
``data.holdout_class`` is set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from trainwise.errors import TrainwiseError
from trainwise.models.autoencoder import kl_divergence
from trainwise.run.plots import save_image_grid
from trainwise.tasks.base import Task
from trainwise.tasks.registry import TaskArgs, register_paradigm


def _per_sample_sq_error(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, *shape) pair → (B,) mean squared error per sample."""
    return (recon.float() - x.float()).pow(2).flatten(1).mean(1)


class Autoencoding(Task):
    """Loss: mean squared reconstruction error. Metric: ``recon_mse``; with anomaly labels (1 = held-out class)
    also ``auroc`` of the per-sample reconstruction error as the anomaly score."""

    name = "autoencoder"
    supervised = False

    def __init__(self, anomaly_labels: bool = False) -> None:
        self.anomaly_labels = anomaly_labels
        self.main_metric = "auroc" if anomaly_labels else "recon_mse"
        self.metric_names = ("recon_mse", "auroc") if anomaly_labels else ("recon_mse",)

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recon = model(x)  # same shape as x
        return F.mse_loss(recon, x), recon

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        err = _per_sample_sq_error(model(x), x)  # (B,) — also the anomaly score
        return err.sum(), err, y

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        m = {"recon_mse": out.mean().item()}
        if self.anomaly_labels and 0 < int(y.sum()) < len(y):  # both normal and anomalous samples present
            m["auroc"] = binary_auroc(out, y.long()).item()
        return m

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        out = model(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TrainwiseError(f"paradigm.name=autoencoder needs a model that returns a reconstruction shaped like "
                                 f"its input {tuple(x.shape)}, got {shape}; use model.name=autoencoder")


class VariationalAutoencoding(Task):
    """Loss: the negative ELBO per sample, ½·‖x − x̂‖² (unit-variance Gaussian likelihood; inputs are standardised,
    not [0, 1], so no Bernoulli) + β·KL(q(z|x) ‖ N(0, I)), averaged over the batch. Metrics: ``elbo`` (higher is
    better), ``recon`` and ``kl`` per sample. After training: a grid of samples and of reconstructions."""

    name = "vae"
    main_metric = "elbo"
    metric_names = ("elbo", "recon", "kl")
    supervised = False

    def __init__(self, kl_weight: float = 1.0, samples: int = 64) -> None:
        self.kl_weight, self.samples = kl_weight, samples

    @staticmethod
    def _terms(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        recon, mu, logvar = model(x)
        rec = 0.5 * (recon.float() - x.float()).pow(2).flatten(1).sum(1)  # (B,)
        return rec, kl_divergence(mu.float(), logvar.float()), recon

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rec, kl, recon = self._terms(model, x)
        return (rec + self.kl_weight * kl).mean(), recon

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rec, kl, _ = self._terms(model, x)
        return (rec + self.kl_weight * kl).sum(), torch.stack([rec, kl], 1), y  # (B, 2)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        rec, kl = out[:, 0].mean().item(), out[:, 1].mean().item()
        return {"elbo": -(rec + kl), "recon": rec, "kl": kl}

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        out = model(x)
        if not (isinstance(out, tuple) and len(out) == 3 and out[0].shape == x.shape):
            raise TrainwiseError("paradigm.name=vae needs a model returning (reconstruction, mu, logvar); "
                                 "use model.name=vae")

    def finish(self, model: nn.Module, parts: dict[str, Any], out_dir: Path | None,
               device: torch.device) -> dict[str, Any]:
        if out_dir is None or not hasattr(model, "sample"):
            return {}
        model.eval()
        g = torch.Generator(device=device).manual_seed(0)
        with torch.inference_mode():
            samples = model.sample(self.samples, generator=g)  # type: ignore[operator]  # torch: Tensor | Module
            part = parts.get("test") or parts["train"]
            x = part[0][:16].to(device)
            recon = model(x)[0]
        if samples.ndim == 4:  # images: grids; vectors have nothing to look at
            save_image_grid(samples, out_dir / "samples.png", "VAE samples (z ~ N(0, I))")
            save_image_grid(torch.cat([x, recon]), out_dir / "reconstructions.png",
                            "top: test inputs, bottom: reconstructions")
            return {"artifacts": ["samples.png", "reconstructions.png"]}
        return {}


@register_paradigm("autoencoder")
def autoencoder_task(a: TaskArgs) -> Task:
    return Autoencoding(anomaly_labels=a.cfg.data.holdout_class is not None)


@register_paradigm("vae")
def vae_task(a: TaskArgs) -> Task:
    return VariationalAutoencoding(a.cfg.paradigm.kl_weight, a.cfg.paradigm.samples)

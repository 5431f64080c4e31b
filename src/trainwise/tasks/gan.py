"""Generative adversarial training: two optimizers on the shared step machinery.

Per micro-batch: (1) discriminator step on real vs *detached* fakes (BCE with logits); (2) generator loss, the
non-saturating form −log D(G(z)) (Goodfellow et al. 2014), returned to the loop, whose Stepper — the same one every
paradigm uses — applies precision, clipping, the schedule and EMA to the generator. The discriminator's Stepper is
built by the loop with the same settings (lr × ``paradigm.d_lr_ratio``) and its optimizer state is checkpointed.
Real images are scaled to [-1, 1] (the generator ends in tanh).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.run.plots import save_image_grid
from trainwise.tasks.base import Task, fixed_rng
from trainwise.tasks.registry import TaskArgs, register_paradigm
from trainwise.train.checkpoint import flatten_optimizer, unflatten_optimizer


class _GANModel(Protocol):
    """What paradigm.name=gan needs of a model (``check_model`` verifies it): models/gan.py's, or one alike."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int


def _gan(model: nn.Module) -> _GANModel:
    return cast(_GANModel, model)  # nn.Module.__getattr__ is typed Tensor | Module: name the attributes' real types


class Adversarial(Task):
    name = "gan"
    metric_names = ("d_real_acc", "d_fooled")
    main_metric = "d_fooled"  # fraction of fresh fakes the discriminator calls real (on val-sized batches)
    supervised = False
    # No validation number tracks sample quality (a fooled discriminator may just be a weak one), so the final
    # generator is the result, not the "best" epoch's.
    keep_best = False

    def __init__(self, d_lr_ratio: float = 1.0, samples: int = 64) -> None:
        self.d_lr_ratio, self.samples = d_lr_ratio, samples
        self.d: Any = None  # the discriminator's Stepper

    def parameters_module(self, model: nn.Module) -> nn.Module:
        return _gan(model).generator

    def setup(self, model: nn.Module, build_stepper: Any) -> None:
        self.d = build_stepper(_gan(model).discriminator, self.d_lr_ratio)

    def _z(self, model: nn.Module, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, _gan(model).latent_dim, device=device)

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = getattr(model, "_orig_mod", model)  # compiled wrappers: reach the generator/discriminator attributes
        g, d = _gan(model).generator, _gan(model).discriminator
        fake = g(self._z(model, x.shape[0], x.device))  # (B, *image)
        # Discriminator step. Its gradients may hold leftovers from the previous generator backward: clear first.
        self.d.optimizer.zero_grad(set_to_none=True)
        real_logits, fake_logits = d(x), d(fake.detach())  # (B,) each
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.d.backward(d_loss)
        self.d.step()
        # Generator loss (non-saturating): make D call the fakes real.
        gen_logits = d(fake)
        return F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits)), fake

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with fixed_rng(x.device):  # fixed noise: evaluation draws nothing from the training stream
            fake = _gan(model).generator(self._z(model, x.shape[0], x.device))
        real_logits, fake_logits = _gan(model).discriminator(x), _gan(model).discriminator(fake)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits), reduction="sum")
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits), reduction="sum"))
        out = torch.stack([(real_logits > 0).float(), (fake_logits > 0).float()], 1)  # (B, 2)
        return d_loss, out, y

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return {"d_real_acc": out[:, 0].mean().item(), "d_fooled": out[:, 1].mean().item()}

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        if not all(hasattr(model, a) for a in ("generator", "discriminator", "latent_dim")):
            raise TrainwiseError("paradigm.name=gan needs a model with .generator, .discriminator and .latent_dim; "
                                 "use model.name=gan")
        fake = _gan(model).generator(self._z(model, x.shape[0], x.device))
        if fake.shape != x.shape:
            raise TrainwiseError(f"the generator makes {tuple(fake.shape[1:])} but the data is {tuple(x.shape[1:])}")

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, plain = flatten_optimizer(self.d.optimizer.state_dict())
        return {f"d_opt.{k}": v for k, v in tensors.items()}, {"d_optimizer": plain,
                                                               "d_schedule": self.d.schedule.state_dict()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
        opt = {k[len("d_opt."):]: v for k, v in tensors.items() if k.startswith("d_opt.")}
        self.d.optimizer.load_state_dict(unflatten_optimizer(opt, plain["d_optimizer"]))
        self.d.schedule.load_state_dict(plain["d_schedule"])
        self.d.optimizer.zero_grad(set_to_none=True)

    def finish(self, model: nn.Module, parts: dict[str, Any], out_dir: Path | None,
               device: torch.device) -> dict[str, Any]:
        """Samples grid, and 1,000 samples scored by a digits classifier trained on the real train split: how many
        are classified confidently and how many classes appear (mode collapse shows as few classes)."""
        from sklearn.linear_model import LogisticRegression

        model.eval()
        g = torch.Generator(device=device).manual_seed(0)
        with torch.inference_mode():
            z = torch.randn(1000, _gan(model).latent_dim, generator=g, device=device)
            fakes = _gan(model).generator(z).float().cpu()
        x_train, y_train = parts["train"]
        judge = LogisticRegression(max_iter=3000).fit(x_train.flatten(1).numpy(), y_train.numpy())
        proba = judge.predict_proba(fakes.flatten(1).numpy())
        pred = proba.argmax(1)
        counts = np.bincount(pred, minlength=proba.shape[1])
        out: dict[str, Any] = {
            "gan/confident_fraction": float((proba.max(1) >= 0.9).mean()),
            "gan/classes_present": int((counts >= 10).sum()),  # classes with ≥ 1% of the 1,000 samples
            "gan/class_counts": counts.tolist(),
            "gan/judge_test_accuracy": float(judge.score(parts["test"][0].flatten(1).numpy(),
                                                         parts["test"][1].numpy())) if parts.get("test") else None,
        }
        if out_dir is not None and fakes.ndim == 4:
            save_image_grid(fakes[: self.samples], out_dir / "samples.png", "GAN samples")
            out["artifacts"] = ["samples.png"]
        return out


@register_paradigm("gan")
def gan_task(a: TaskArgs) -> Task:
    return Adversarial(a.cfg.paradigm.d_lr_ratio, a.cfg.paradigm.samples)

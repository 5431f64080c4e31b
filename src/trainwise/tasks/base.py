"""The task interface shared by every paradigm's step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from trainwise.errors import TrainwiseError


class Task:
    """What a paradigm adds to the shared loop: how a batch becomes a loss, how a split is scored, and checks.

    Supervised tasks implement ``loss``/``eval_loss_sum``/``metrics``; other paradigms (autoencoder, VAE, GAN,
    contrastive, seq2seq, distillation) override ``train_loss``/``eval_batch`` instead. Everything after the loss —
    precision, accumulation, clipping, optimizer, schedule, EMA, checkpoints, the doctor — is the shared
    :class:`~trainwise.train.step.Stepper` and loop, so no paradigm carries its own copy of the loop.
    """

    name = "task"
    main_metric = "loss"
    # Every metric ``metrics`` may report (some only when defined, e.g. AUROC with every class present): what
    # ``train.monitor`` may name as ``val/<metric>``, checked before training starts.
    metric_names: tuple[str, ...] = ()
    out_dim = 1
    supervised = True  # preflight's loss-at-init and label checks apply
    counts_correct = False  # the cheap on-device train accuracy applies
    keep_best = True  # restore the best-monitored weights at the end (a GAN keeps its final weights instead)

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The micro-batch's mean training loss, and the outputs ``correct`` reads."""
        out = model(x)  # (B, out_dim)
        return self.loss(out, y), out

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed loss of an evaluation batch, plus (outputs, targets) that ``metrics`` sees concatenated."""
        out = model(x)
        return self.eval_loss_sum(out, y), out.float(), y

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """One forward on a couple of samples (eval mode, no grad): does the model fit this task's data?"""
        out = model(x)
        if not isinstance(out, torch.Tensor):
            raise TrainwiseError("the model must return a tensor of outputs")
        self.check_output(out, x.shape[0])

    def parameters_module(self, model: nn.Module) -> nn.Module:
        """The module whose parameters the main optimizer steps (a GAN's generator; the whole model otherwise)."""
        return model

    def setup(self, model: nn.Module, build_stepper: Any) -> None:
        """Called once the model is on its device; ``build_stepper(module)`` gives a Stepper configured like the main
        one (paradigms with a second optimizer use it)."""

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Extra state a checkpoint must hold (e.g. a GAN discriminator's optimizer): (tensors, JSON-able rest)."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
        pass

    def finish(self, model: nn.Module, parts: dict[str, Any], out_dir: Any, device: torch.device) -> dict[str, Any]:
        """After training (best weights loaded): paradigm-specific results for the summary (probes, sample grids)."""
        return {}

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


@contextlib.contextmanager
def fixed_rng(device: torch.device, seed: int = 0) -> Iterator[None]:
    """Seeded randomness for evaluation (fixed views, fixed noise) that leaves the training streams untouched: the CPU
    generator and, on CUDA, the device's generator are saved and restored around the block."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def minimize(metric: str) -> bool:
    """Whether lower is better for a metric name such as ``val/loss`` or ``val/accuracy``."""
    return any(k in metric.split("/")[-1] for k in ("loss", "mae", "rmse", "mse", "error"))

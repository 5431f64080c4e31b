"""Which task object a ``paradigm.name`` means (imports stay lazy: a paradigm's libraries load only when used)."""

from __future__ import annotations

from typing import Any

from trainwise.tasks.base import Task


def make_paradigm(name: str, cfg: Any, num_classes: int, label_smoothing: float) -> Task:
    p = cfg.paradigm
    if name == "autoencoder":
        from trainwise.tasks.autoencoding import Autoencoding

        return Autoencoding(anomaly_labels=cfg.data.holdout_class is not None)
    if name == "vae":
        from trainwise.tasks.autoencoding import VariationalAutoencoding

        return VariationalAutoencoding(p.kl_weight, p.samples)
    if name == "contrastive":
        from trainwise.tasks.contrastive import Contrastive

        return Contrastive(p.temperature)
    if name == "seq2seq":
        from trainwise.tasks.seq2seq import Seq2Seq

        return Seq2Seq(p.beam_size)
    if name == "gan":
        from trainwise.tasks.gan import Adversarial

        return Adversarial(p.d_lr_ratio, p.samples)
    if name == "distill":
        from trainwise.tasks.distill import Distillation

        return Distillation(num_classes, label_smoothing, cfg.distill.teacher, cfg.distill.temperature,
                            cfg.distill.alpha)
    raise ValueError(f"unknown paradigm {name}")  # config validation lists the choices before this

"""Sequence-to-sequence: teacher forcing in training, greedy or beam-search decoding for the exact-match metric.

Batches are ``src`` (B, S) and ``tgt`` (B, T) token ids; ``tgt`` ends with EOS and is padded with PAD. The decoder
input is ``[BOS] + tgt[:-1]`` (teacher forcing); the loss is token cross-entropy ignoring PAD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.tasks.base import Task
from trainwise.tasks.registry import TaskArgs, register_paradigm

PAD, BOS, EOS = 0, 1, 2


def decoder_input(tgt: torch.Tensor, bos: int = BOS) -> torch.Tensor:
    """(B, T) targets → (B, T) decoder inputs shifted right by one, starting with BOS."""
    return torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], 1)


class Seq2Seq(Task):
    name = "seq2seq"
    main_metric = "exact_match"
    metric_names = ("exact_match", "token_accuracy")
    supervised = False

    def __init__(self, beam_size: int = 1) -> None:
        self.beam_size = beam_size

    def _token_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        # The model's own special tokens (model.bos_index / pad_index), defaulting to the synthetic sources' ids.
        bos, pad = getattr(model, "bos_index", BOS), getattr(model, "pad_index", PAD)
        logits = model(x, decoder_input(y, bos))  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=pad, reduction=reduction)

    def train_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = self._token_loss(model, x, y, "mean")
        return loss, loss

    def eval_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss_sum = self._token_loss(model, x, y, "sum")  # summed over tokens; reported per sequence
        # the seq2seq model's own method; torch types nn.Module attributes as Tensor | Module
        pred = model.generate(x, max_len=y.shape[1], beam_size=self.beam_size)  # type: ignore[operator]  # (B, L ≤ T)
        if pred.shape[1] < y.shape[1]:
            pred = F.pad(pred, (0, y.shape[1] - pred.shape[1]), value=PAD)
        pred = pred[:, : y.shape[1]]
        valid = y != PAD
        exact = ((pred == y) | ~valid).all(1).float()  # (B,) whole sequence right
        tokens = ((pred == y) & valid).sum(1).float() / valid.sum(1).clamp(min=1)  # (B,) token accuracy
        return loss_sum, torch.stack([exact, tokens], 1), y

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return {"exact_match": out[:, 0].mean().item(), "token_accuracy": out[:, 1].mean().item()}

    def check_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.dtype != torch.long or y.ndim != 2 or not hasattr(model, "generate"):
            raise TrainwiseError("paradigm.name=seq2seq needs token sequences (a seq2seq data source such as "
                                 "data.source=seq_reverse) and model.name=seq2seq")
        out = model(x, decoder_input(y))
        if out.ndim != 3 or out.shape[:2] != y.shape:
            raise TrainwiseError(f"the seq2seq model returned {tuple(out.shape)}; expected (B, T, vocab)")


@register_paradigm("seq2seq")
def seq2seq_task(a: TaskArgs) -> Task:
    return Seq2Seq(a.cfg.paradigm.beam_size)

"""Regularisation: weight decay, dropout, augmentation, early stopping, label smoothing, mixup, stochastic depth."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

from trainwise.tasks.classification import Classification


def main() -> None:
    c.setup()
    k, eps = 10, 0.1
    logits, y = torch.randn(256, k), torch.randint(0, k, (256,))
    smoothed = Classification(k, label_smoothing=eps).loss(logits, y)  # what train.label_smoothing=0.1 trains on
    # Recover the target distribution the loss implies: CE is linear in the target, so probe it with one-hot targets.
    logp = F.log_softmax(logits, 1)
    per_class = torch.stack([-logp[:, j] for j in range(k)], 1)  # CE against one-hot class j, per sample
    plain = F.cross_entropy(logits, y, reduction="none")
    # smoothed = mean_i Σ_j q_ij · per_class_ij with q_true = a, q_other = b; solve for a, b from two weightings.
    other = (per_class.sum(1) - plain) / (k - 1)  # mean CE against the wrong classes
    target = torch.full((256, k), eps / k)
    target[torch.arange(256), y] = 1 - eps + eps / k
    soft = -(target * logp).sum(1).mean()
    a = (smoothed - other.mean()) / (plain.mean() - other.mean())  # weight on the true class if the rest is shared
    b = (1 - a) / (k - 1)
    c.say(f"Classification(10, label_smoothing=0.1) loss {smoothed.item():.6f}; CE against [0.91, 0.01 × 9] "
          f"{soft.item():.6f}")
    c.check("label smoothing ε=0.1 over 10 classes gives 0.91 for the true class and 0.01 elsewhere",
            abs(smoothed.item() - soft.item()) < 1e-5 and abs(a.item() - 0.91) < 1e-3 and abs(b.item() - 0.01) < 1e-3,
            f"the trainwise classification loss with label_smoothing=0.1 equals cross-entropy against a target of "
            f"{a.item():.4f} on the true class and {b.item():.4f} on each other class (1−ε+ε/K and ε/K; "
            f"difference {abs(smoothed.item() - soft.item()):.1e})")


if __name__ == "__main__":
    main()

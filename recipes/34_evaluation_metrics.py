"""Evaluation metrics: torchmetrics over the whole split — accuracy, macro F1, AUROC (tasks/classification.py)."""

from __future__ import annotations

import _common as c
import torch

from trainwise.tasks.classification import Classification


def main() -> None:
    c.setup()
    g = torch.Generator().manual_seed(0)
    n = 2000
    y = (torch.rand(n, generator=g) < 0.05).long()  # 5% positives
    majority = torch.stack([torch.full((n,), 3.0), torch.zeros(n)], 1)  # always "negative", same confidence
    task = Classification(2)
    m = task.metrics(majority, y)
    c.check("accuracy misleads on imbalanced data", m["accuracy"] > 0.9 and m["f1_macro"] < 0.6,
            f"{int(y.sum())} positives in {n}: a classifier that never predicts the positive class scores accuracy "
            f"{m['accuracy']:.3f} but macro F1 {m['f1_macro']:.3f} and AUROC {m.get('auroc', float('nan')):.3f}")

    # A real-ish classifier: noisy logits that favour the true class; batches of 64 with a ragged last batch.
    logits = torch.randn(n, 2, generator=g)
    logits[torch.arange(n), y] += 1.5
    whole = task.metrics(logits, y)
    batches = [task.metrics(logits[i:i + 64], y[i:i + 64]) for i in range(0, n, 64)]
    avg = {k: sum(b[k] for b in batches if k in b) / sum(k in b for b in batches) for k in whole}
    gaps = {k: abs(avg[k] - whole[k]) for k in whole}
    c.check("averaging per-batch metrics differs from metrics over the whole set", max(gaps.values()) > 0.01,
            f"batches of 64 (last one {n % 64 or 64}): " + ", ".join(f"{k} whole {whole[k]:.4f} vs batch-mean {avg[k]:.4f}"
                                                        for k in whole)
            + f"; AUROC was undefined (one class only) in {sum('auroc' not in b for b in batches)} of {len(batches)} "
            "batches. trainwise computes metrics once over the whole split")


if __name__ == "__main__":
    main()

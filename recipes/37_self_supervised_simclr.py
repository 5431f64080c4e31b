"""Self-supervised / SimCLR: NT-Xent over two augmented views, linear probe (tasks/contrastive.py)."""

from __future__ import annotations

import math

import _common as c
import torch
import torch.nn.functional as F

from trainwise.tasks.contrastive import nt_xent


def main() -> None:
    c.setup()
    n, d, tau = 16, 32, 0.5
    z1, z2 = torch.randn(n, d), torch.randn(n, d)
    loss = nt_xent(z1, z2, tau)
    # Written out per anchor: 2N views; for anchor i the candidates are the other 2N−1 views, exactly one positive.
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    total, positives = 0.0, []
    for i in range(2 * n):
        twin = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        logits = torch.stack([z[i] @ z[j] / tau for j in others])
        positives.append(sum(j == twin for j in others))
        total += -(logits[others.index(twin)] - torch.logsumexp(logits, 0))
    manual = total / (2 * n)
    c.check("NT-Xent over 2N views with one positive each", abs(loss.item() - manual.item()) < 1e-5
            and set(positives) == {1},
            f"trainwise nt_xent({n}+{n} views, τ={tau}) = {loss.item():.5f}; the per-anchor softmax written out over "
            f"the other {2 * n - 1} views with exactly {set(positives)} positive each gives {manual.item():.5f}; "
            f"chance level log(2N−1) = {math.log(2 * n - 1):.3f}")

    # How much of the negatives' gradient the hardest negative takes: d loss / d sim_k ∝ softmax(sim/τ)_k.
    anchor = F.normalize(torch.randn(d), dim=0)
    negs = F.normalize(torch.randn(2 * n - 2, d), dim=1)
    negs[0] = F.normalize(anchor + 0.3 * torch.randn(d), dim=0)  # one hard negative, close to the anchor
    sims = negs @ anchor
    shares = {}
    for t in (0.05, 0.1, 0.5, 1.0):
        sim = sims.clone().requires_grad_(True)
        pos = torch.tensor(0.9)
        logits = torch.cat([pos[None], sim]) / t
        (-(logits[0] - torch.logsumexp(logits, 0))).backward()
        shares[t] = (sim.grad[0] / sim.grad.sum()).item()
    c.check("temperature controls how hard negatives weigh", shares[0.05] > 0.5 and shares[1.0] < 0.2,
            f"one hard negative (cosine {sims[0]:.2f}) among {len(sims)} random ones (max cosine of the others "
            f"{sims[1:].max():.2f}): its share of the gradient on negatives is "
            + ", ".join(f"τ={t}: {s:.1%}" for t, s in shares.items()))


if __name__ == "__main__":
    main()

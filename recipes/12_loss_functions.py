"""Loss functions: the tasks' losses (cross-entropy with smoothing, BCE with logits, MSE, …) in tasks/."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

from trainwise.tasks.classification import Classification
from trainwise.tasks.multilabel import MultiLabel


def main() -> None:
    c.setup()
    logits = torch.tensor([[-200.0, -30.0, 30.0, 200.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # every prediction confidently wrong: true loss = |logit| each
    true = logits.detach().abs().mean().item()

    stable = MultiLabel(4).loss(logits, target)  # trainwise's multi-label task: BCE with logits
    (g_stable,) = torch.autograd.grad(stable, logits)
    p = torch.sigmoid(logits)
    naive_formula = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    naive = F.binary_cross_entropy(p, target)  # torch clamps log() at −100 instead of overflowing
    (g_naive,) = torch.autograd.grad(naive, logits)
    c.say(f"logits {logits.tolist()[0]}, targets {target.tolist()[0]}: true mean loss {true:g}")
    c.say(f"sigmoid → textbook BCE formula: {naive_formula.item()}; sigmoid → F.binary_cross_entropy: "
          f"{naive.item():g}, gradient {g_naive.tolist()[0]}")
    c.say(f"BCE with logits (MultiLabel task): {stable.item():g}, gradient {g_stable.tolist()[0]}")
    c.check("BCEWithLogits is stable where sigmoid→BCE overflows for large logits",
            abs(stable.item() - true) < 1e-3 and bool((g_stable.abs() > 0.2).all())
            and (not torch.isfinite(naive_formula) or abs(naive.item() - true) > 1),
            f"for logits ±200/±30 all wrong: with logits {stable.item():g} (= true {true:g}), gradients "
            f"{[round(g, 3) for g in g_stable.tolist()[0]]}; via sigmoid the textbook formula gives "
            f"{naive_formula.item()}, torch's clamped BCE {naive.item():g} with gradients "
            f"{[round(g, 3) for g in g_naive.tolist()[0]]} (saturated sigmoid: nothing to learn from)")

    out, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    ce = Classification(10).loss(out, y)  # trainwise's classification loss: F.cross_entropy
    composed = F.nll_loss(F.log_softmax(out, dim=1), y)
    naive_log = F.nll_loss(torch.log(torch.softmax(out * 100, dim=1)), y)
    c.check("CE = log_softmax + NLL", abs(ce.item() - composed.item()) < 1e-6,
            f"Classification task loss {ce.item():.6f} vs nll_loss(log_softmax) {composed.item():.6f} on 64×10 "
            f"logits; (log(softmax) instead of log_softmax on logits ×100 gives {naive_log.item()} — why the fused "
            f"form exists)")


if __name__ == "__main__":
    main()

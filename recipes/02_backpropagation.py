"""Backpropagation: autograd applies the chain rule; trainwise's Stepper zeroes gradients after every step."""

from __future__ import annotations

import _common as c
import torch
from torch import nn

from trainwise.train.optim import build_optimizer
from trainwise.train.schedule import build_schedule
from trainwise.train.step import Stepper


def main() -> None:
    c.setup()
    # loss = (w·x − y)², dloss/dw = 2(w·x − y)·x by the chain rule.
    w = torch.tensor(2.0, requires_grad=True)
    x, y = torch.tensor(3.0), torch.tensor(1.0)
    loss = (w * x - y) ** 2
    loss.backward()
    chain = 2 * (w.item() * x.item() - y.item()) * x.item()
    c.say(f"loss = {loss.item():.0f}, autograd dloss/dw = {w.grad.item():.0f}, chain rule 2(wx−y)·x = {chain:.0f}")
    c.check("for loss=(w·x−y)² with w=2,x=3,y=1 the gradient is 40", abs(w.grad.item() - 40) < 1e-6,
            f"autograd gives {w.grad.item():g} = 2·(2·3−1)·3 (the chain rule by hand agrees: {chain:g}); "
            f"40 would need w·x−y = {40 / (2 * x.item()):.2f}, not {w.item() * x.item() - y.item():g}")

    # Accumulation: a second backward adds to .grad; trainwise's Stepper zeroes (to None) after each step.
    model = nn.Linear(4, 1)
    xb, yb = torch.randn(8, 4), torch.randn(8, 1)
    opt = build_optimizer(model, "sgd", lr=0.1, momentum=0.0)
    stepper = Stepper(model, opt, build_schedule(opt, "constant", 1, 1), None, None, None)
    nn.functional.mse_loss(model(xb), yb).backward()
    g1 = model.weight.grad.clone()
    nn.functional.mse_loss(model(xb), yb).backward()
    g2 = model.weight.grad.clone()
    stepper.step()
    after_step = model.weight.grad
    nn.functional.mse_loss(model(xb), yb).backward()
    g3 = model.weight.grad.clone()
    fresh = torch.autograd.grad(nn.functional.mse_loss(model(xb), yb), model.weight)[0]
    doubled = torch.allclose(g2, 2 * g1)
    c.say(f"|g| after 1 backward {g1.norm():.4f}, after 2 {g2.norm():.4f}; after Stepper.step grad is {after_step}")
    c.check("gradients accumulate across backward calls unless zeroed",
            doubled and after_step is None and torch.allclose(g3, fresh),
            f"two backward calls give exactly 2× the gradient (max diff {(g2 - 2 * g1).abs().max():.1e}); after "
            f"Stepper.step (zero_grad(set_to_none=True)) .grad is None and the next backward equals a fresh gradient "
            f"(max diff {(g3 - fresh).abs().max():.1e})")


if __name__ == "__main__":
    main()

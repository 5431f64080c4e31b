"""An FFN from scratch: subclassing nn.Module with layers registered in __init__ (models/mlp.py MLP)."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F
from torch import nn

from trainwise.models.mlp import MLP


class ForwardBuilt(nn.Module):
    """The classic mistake: the hidden layer is created inside forward, so it is new (and random) on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = nn.Linear(64, 64)  # not an attribute set in __init__: never registered, never in parameters()
        return self.head(torch.relu(hidden(x)))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def main() -> None:
    c.setup()
    xs, ys = c.digits(512)
    x, y = torch.tensor(xs), torch.tensor(ys)
    torch.manual_seed(0)
    good = MLP(64, 10, hidden=[64])  # trainwise's MLP(nn.Module): Linear layers assigned in __init__
    bad = ForwardBuilt()
    names_good = [n for n, _ in good.named_parameters()]
    names_bad = [n for n, _ in bad.named_parameters()]
    c.say(f"MLP parameters: {names_good}; forward-built module: {names_bad}")
    steps = int(c.pick(200, 80))
    loss_good, loss_bad = train(good, x, y, steps), train(bad, x, y, steps)
    with torch.no_grad():
        same_input_differs = not torch.equal(bad(x[:4]), bad(x[:4]))
    c.check("layers created in `__init__` are registered parameters", names_good == ["body.0.weight", "body.0.bias",
                                                                                       "head.weight", "head.bias"],
            f"trainwise MLP(64, 10, hidden=[64]) registers {names_good} "
            f"({sum(p.numel() for p in good.parameters()):,} values), all handed to the optimizer")
    c.check("ones created in `forward` are not trained", "hidden" not in " ".join(names_bad) and same_input_differs
            and loss_bad > loss_good,
            f"the forward-built hidden layer is absent from parameters() ({names_bad}), is re-drawn at random on "
            f"every call (two forwards of the same input differ: {same_input_differs}); after {steps} Adam steps "
            f"the training loss is {loss_bad:.3f} vs {loss_good:.3f} for the registered MLP")


if __name__ == "__main__":
    main()

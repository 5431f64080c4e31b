"""Activations: relu, leaky_relu, gelu, silu, tanh, sigmoid (models/blocks.py) and softmax; their derivatives."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.models.blocks import ACTIVATIONS, activation


def layer_grad_norms(act: str, depth: int, width: int) -> list[float]:
    """Weight-gradient norm of each hidden Linear (input side first) of a deep trainwise MLP after one backward."""
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", in_shape=(width,), out_dim=1, hidden=[width] * depth, act=act)
    model(torch.randn(256, width)).pow(2).mean().backward()
    return [m.weight.grad.norm().item() for m in model.body if isinstance(m, torch.nn.Linear)]


def main() -> None:
    c.setup()
    z = torch.linspace(-3, 3, 7)
    for name in ACTIVATIONS:
        c.say(f"{name:>10}({[round(v, 3) for v in z.tolist()]}) = {[round(v, 3) for v in activation(name)(z).tolist()]}")
    relu = activation("relu")(z)
    c.check("relu on linspace(−3,3,7) = [0,0,0,0,1,2,3]", relu.tolist() == [0, 0, 0, 0, 1, 2, 3],
            f"trainwise activation('relu') gives {relu.tolist()}")

    sm = torch.softmax(torch.tensor([2.0, 1.0, 0.1]), dim=0)
    want = torch.tensor([0.659, 0.242, 0.099])
    c.check("softmax([2,1,0.1]) ≈ [0.659,0.242,0.099]", torch.allclose(sm, want, atol=5e-4),
            f"torch.softmax gives [{', '.join(f'{v:.4f}' for v in sm)}], sum {sm.sum():.4f}")

    grid = torch.linspace(-10, 10, 20001, requires_grad=True)
    activation("sigmoid")(grid).sum().backward()
    max_d = grid.grad.max().item()
    depth = int(c.pick(10, 6))
    sig, rel = layer_grad_norms("sigmoid", depth, 64), layer_grad_norms("relu", depth, 64)
    per_layer = (sig[0] / sig[-1]) ** (1 / (depth - 1))  # geometric mean shrink factor per layer, going down
    per_layer_relu = (rel[0] / rel[-1]) ** (1 / (depth - 1))
    c.say(f"sigmoid stack grad norms (input→output): {[f'{g:.1e}' for g in sig]}")
    c.say(f"relu stack grad norms    (input→output): {[f'{g:.1e}' for g in rel]}")
    c.check("sigmoid′ ≤ 0.25 so deep sigmoid stacks shrink gradients geometrically",
            max_d <= 0.25 + 1e-7 and per_layer < 0.5 and sig[0] / sig[-1] < 1e-2,
            f"max sigmoid′ over [−10,10] = {max_d:.4f} (at x = {grid[grid.grad.argmax()].item():.3f}); in a {depth}-layer sigmoid MLP the first layer's weight "
            f"gradient is {sig[0] / sig[-1]:.1e}× the last's, ×{per_layer:.2f} per layer (ReLU stack: "
            f"×{per_layer_relu:.2f} per layer)")

    x = torch.linspace(0.01, 5, 100, requires_grad=True)
    activation("relu")(x).sum().backward()
    xn = torch.linspace(-5, -0.01, 100, requires_grad=True)
    activation("relu")(xn).sum().backward()
    c.check("relu′ = 1 for x>0", bool((x.grad == 1).all()),
            f"autograd relu′ on 100 points in (0,5]: min {x.grad.min():g}, max {x.grad.max():g}; "
            f"on (−5,0): {xn.grad.max():g} everywhere")


if __name__ == "__main__":
    main()

"""Weight initialisation: Xavier, He (kaiming) and orthogonal with the activation's gain (blocks.initialize)."""

from __future__ import annotations

import math

import _common as c
import torch
from torch import nn

import trainwise
from trainwise.models.blocks import initialize


def layer_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Std of every ReLU's output in one forward, read with forward hooks."""
    stds: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: stds.append(out.std().item()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return stds


def main() -> None:
    c.setup()
    fan_in, fan_out = 1024, 512
    lin = nn.Linear(fan_in, fan_out)
    initialize(lin, "xavier", "sigmoid")  # sigmoid's gain is 1: the textbook Xavier
    xavier = lin.weight.var().item()
    initialize(lin, "kaiming", "relu")
    he = lin.weight.var().item()
    c.check("Xavier var = 2/(fan_in+fan_out), He var = 2/fan_in",
            abs(xavier / (2 / (fan_in + fan_out)) - 1) < 0.02 and abs(he / (2 / fan_in) - 1) < 0.02,
            f"initialize() on Linear({fan_in},{fan_out}): Xavier var {xavier:.3e} vs 2/(fan_in+fan_out) "
            f"{2 / (fan_in + fan_out):.3e}; He var {he:.3e} vs 2/fan_in {2 / fan_in:.3e}")

    width, depth = int(c.pick(512, 256)), 10
    x = torch.randn(512, width)
    results = {}
    for label, scheme, act_for_gain in (("He", "kaiming", "relu"), ("Xavier (gain 1)", "xavier", "sigmoid"),
                                        ("trainwise xavier (relu gain √2)", "xavier", "relu")):
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", in_shape=(width,), out_dim=1, hidden=[width] * depth, init="default")
        initialize(model.body, scheme, act_for_gain)
        stds = layer_stds(model, x)
        results[label] = (stds[-1] / stds[0]) ** (1 / (depth - 1))
        c.say(f"{label:<32} ReLU output std by layer: {' '.join(f'{s:.3f}' for s in stds)}")
    he_f, xa_f = results["He"], results["Xavier (gain 1)"]
    c.check("with ReLU, He keeps activation std roughly constant across ~10 layers while Xavier shrinks it ~√2 per layer",
            0.9 < he_f < 1.1 and abs(xa_f - 1 / math.sqrt(2)) < 0.05,
            f"{depth}-layer ReLU MLP, width {width}: std changes ×{he_f:.3f} per layer with He, ×{xa_f:.3f} with "
            f"Xavier gain 1 (1/√2 = 0.707); trainwise's xavier uses the ReLU gain √2 and gives "
            f"×{results['trainwise xavier (relu gain √2)']:.3f}")

    default = nn.Linear(256, 128).weight
    std = default.std().item()
    c.check("a default nn.Linear(256,128) has weight std ≈ √(2/256) ≈ 0.088", abs(std - math.sqrt(2 / 256)) < 0.01,
            f"measured std {std:.4f}: PyTorch's default is kaiming_uniform(a=√5) = U(±1/√fan_in), std "
            f"1/√(3·256) = {1 / math.sqrt(3 * 256):.4f}, about {math.sqrt(2 / 256) / std:.1f}× smaller than He")


if __name__ == "__main__":
    main()

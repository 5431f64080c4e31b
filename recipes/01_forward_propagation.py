"""Forward propagation: layers compose as h = σ(Wx + b), then a linear head."""

from __future__ import annotations

import _common as c
import torch

import trainwise


def main() -> None:
    c.setup()
    model = trainwise.create_model("mlp", in_shape=(10,), out_dim=1, hidden=[64])  # 10 → 64 → 1
    c.say(model)
    x = torch.randn(32, 10)
    out = model(x)
    # The same forward written out by hand from the model's own parameters: relu(x W1ᵀ + b1) W2ᵀ + b2.
    lin1, head = model.body[0], model.head
    manual = torch.relu(x @ lin1.weight.T + lin1.bias) @ head.weight.T + head.bias
    diff = (out - manual).abs().max().item()
    c.say(f"model(x) vs relu(x W1ᵀ + b1) W2ᵀ + b2 written out: max |diff| = {diff:.2e}")
    params = sum(p.numel() for p in model.parameters())
    c.check("a 10→64→1 two-layer net maps a (32,10) batch to (32,1)",
            tuple(out.shape) == (32, 1) and diff < 1e-5,
            f"output shape {tuple(out.shape)}, {params} parameters (10·64+64 + 64·1+1 = {10 * 64 + 64 + 64 + 1}), "
            f"equal to the hand-written σ(Wx+b) composition within {diff:.1e}")


if __name__ == "__main__":
    main()

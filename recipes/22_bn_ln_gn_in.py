"""BN vs LN vs GN vs IN: model.norm=batch|layer|group|instance (blocks.norm2d) differ in their statistics' axes."""

from __future__ import annotations

import _common as c
import torch

from trainwise.models.blocks import norm1d, norm2d

AXES = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}  # axes each kind averages over, (B, C, H, W)


def main() -> None:
    c.setup()
    x = 5 + 3 * torch.randn(8, 16, 6, 6)
    errs = {}
    for kind, axes in AXES.items():
        norm = norm2d(kind, 16).train()
        mean, var = x.mean(axes, keepdim=True), x.var(axes, keepdim=True, unbiased=False)
        errs[kind] = (norm(x) - (x - mean) / torch.sqrt(var + 1e-5)).abs().max().item()
    gn = norm2d("group", 16)
    g = gn.num_groups
    xg = x.view(8, g, -1)
    ref = ((xg - xg.mean(-1, keepdim=True)) / torch.sqrt(xg.var(-1, keepdim=True, unbiased=False) + 1e-5)).view_as(x)
    errs["group"] = (gn(x) - ref).abs().max().item()
    for kind, e in errs.items():
        c.say(f"norm={kind:<8} = (x − mean)/std over {AXES.get(kind, f'(C/{g} channels, H, W) per group')}: "
              f"max |diff| {e:.1e}")
    c.check("they differ only in the axes of the statistics", max(errs.values()) < 1e-4,
            "with affine weights at init (γ=1, β=0), each of trainwise's four norms equals the same formula "
            "(x−mean)/√(var+ε) with statistics over: batch (B,H,W) per channel, layer (C,H,W) per sample, group "
            f"({16 // g} channels,H,W) per sample and group, instance (H,W) per sample and channel; max error "
            f"{max(errs.values()):.1e}")

    try:
        norm1d("batch", 16).train()(torch.randn(1, 16))
        bn1 = "ran"
    except ValueError as exc:
        bn1 = f"raises ValueError: {str(exc)[:70]}"
    out2d = norm2d("batch", 16).train()(torch.randn(1, 16, 4, 4))
    c.check("BN fails in train mode with batch size 1", bn1 != "ran",
            f"BatchNorm1d in train mode on a (1,16) batch {bn1}; BatchNorm2d on (1,16,4,4) does run (statistics "
            f"over the 16 pixels; output std {out2d.std():.2f}) — it fails only when each channel has one value")

    ln = norm1d("layer", 16)
    batch = torch.randn(32, 16)
    alone = torch.stack([ln(batch[i:i + 1])[0] for i in range(32)])
    c.check("LN output does not depend on the batch", torch.allclose(ln(batch), alone, atol=1e-6),
            f"LayerNorm over a batch of 32 vs each sample alone: max |diff| {(ln(batch) - alone).abs().max():.1e} "
            f"(BN in train mode on the same data: {(norm1d('batch', 16)(batch)[:2] - norm1d('batch', 16)(batch[:2])).abs().max():.2f} "
            f"between a batch of 32 and its first 2 samples)")


if __name__ == "__main__":
    main()

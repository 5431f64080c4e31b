"""Self-attention: multi-head attention on F.scaled_dot_product_attention (models/attention.py)."""

from __future__ import annotations

import math

import _common as c
import torch
from torch import nn

from trainwise.models.attention import MultiHeadAttention, reference_attention


def main() -> None:
    c.setup()
    mha = MultiHeadAttention(d_model=64, heads=4).eval()
    x = torch.randn(2, 10, 64)
    with torch.no_grad():
        fused = mha(x)
        q, k, v = mha.project(x)  # (B, H, T, d) each, as SDPA receives them
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        manual = torch.softmax(scores, dim=-1) @ v  # softmax(QKᵀ/√d_k)V written out, per head
        by_hand = mha.out_proj(manual.transpose(1, 2).flatten(2))
        ref = mha.out_proj(reference_attention(q, k, v).transpose(1, 2).flatten(2))
    diff = (fused - by_hand).abs().max().item()
    c.check("softmax(QKᵀ/√d_k)V", diff < 1e-5 and (fused - ref).abs().max().item() < 1e-5,
            f"trainwise MultiHeadAttention (fused SDPA kernel) equals softmax(QKᵀ/√d_k)V computed by hand per head "
            f"within {diff:.1e} (4 heads, d_k = {q.shape[-1]})")

    dims = [4, 16, 64, 256, 1024]
    unscaled, scaled = [], []
    for d in dims:
        qd, kd = torch.randn(256, 1, d), torch.randn(256, 32, d)  # 256 queries over 32 keys, unit-variance entries
        s = (qd @ kd.transpose(1, 2)).squeeze(1)  # dot products have variance d
        unscaled.append(torch.softmax(s, -1).max(-1).values.mean().item())
        scaled.append(torch.softmax(s / math.sqrt(d), -1).max(-1).values.mean().item())
    for d, u, s in zip(dims, unscaled, scaled):
        c.say(f"d_k={d:<5} mean largest attention weight over 32 keys: unscaled {u:.3f}, scaled {s:.3f}")
    c.check("without the √d_k scaling softmax saturates as d_k grows",
            unscaled[-1] > 0.9 and unscaled[-1] > unscaled[0] + 0.3 and max(scaled) - min(scaled) < 0.1,
            f"mean largest weight over 32 keys rises {unscaled[0]:.2f} → {unscaled[-1]:.2f} without scaling as d_k "
            f"goes {dims[0]} → {dims[-1]} (near one-hot), stays {min(scaled):.2f}–{max(scaled):.2f} "
            f"with it")

    big = MultiHeadAttention(512, 8).eval()
    x = torch.randn(4, 20, 512)
    with torch.no_grad():
        out = big(x)
        q, k, _ = big.project(x)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)  # (B, H, T, S)
        torch_out, torch_w = nn.MultiheadAttention(512, 8, batch_first=True)(x, x, x)
    c.check("MHA(512, 8 heads) on (4,20,512) returns (4,20,512) and weights (4,20,20)",
            tuple(out.shape) == tuple(torch_out.shape) == (4, 20, 512) and tuple(torch_w.shape) == (4, 20, 20),
            f"trainwise MHA output {tuple(out.shape)} (the fused kernel never materialises weights; per-head weights "
            f"are {tuple(weights.shape)}); nn.MultiheadAttention returns {tuple(torch_out.shape)} and weights "
            f"{tuple(torch_w.shape)}, averaged over the 8 heads by default")


if __name__ == "__main__":
    main()

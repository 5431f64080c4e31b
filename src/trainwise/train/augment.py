"""Batch-level augmentation and mixing, driven by explicit generators so every epoch is reproducible."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Translate each image in (B, C, H, W) by an integer offset in [-max_shift, max_shift]², zero-filled.

    Written by hand rather than with kornia's RandomAffine: on 8×8 images an affine warp interpolates (blurs) pixels
    and costs far more, while integer shifts are exact and take one gather.
    """
    b, _, h, w = x.shape
    k = max_shift
    off = torch.randint(0, 2 * k + 1, (2, b), generator=g).to(x.device)  # (2, B) offsets into the padded image
    padded = F.pad(x, (k, k, k, k))  # (B, C, H+2k, W+2k)
    rows = off[0][:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = off[1][:, None] + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def mix(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup_alpha: float, cutmix_alpha: float,
        rng: np.random.Generator, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019, images only), chosen with equal odds when both are on.

    Returns mixed inputs and soft targets (B, num_classes).
    """
    use_cutmix = cutmix_alpha > 0 and x.ndim == 4 and (mixup_alpha == 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    y1 = F.one_hot(y, num_classes).to(x.dtype)
    if use_cutmix:
        h, w = x.shape[-2:]
        ch, cw = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1b, x0, x1b = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1b, x0:x1b] = x[perm][..., y0:y1b, x0:x1b]
        lam = 1 - (y1b - y0) * (x1b - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * y1 + (1 - lam) * y1[perm]

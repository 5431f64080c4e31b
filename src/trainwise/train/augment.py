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


def kornia_pipeline(height: int, width: int, strength: str = "light") -> torch.nn.Module:
    """Batched image augmentation on the device through kornia: random resized crop, affine (rotation,
    translation, scale), brightness/contrast jitter and blur, each image with its own parameters.

    ``light`` suits supervised CNN training (``data.augment=kornia``); ``strong`` makes SimCLR's two views. Inputs are
    standardised (not [0, 1]), so kornia's output clipping is off. Randomness comes from torch's global RNG, which
    checkpoints save and restore, so resumed runs draw the same augmentations.
    """
    import kornia.augmentation as K

    strong = strength == "strong"
    blur = max(3, (min(height, width) // 8) | 1)  # odd kernel, small for 8×8 digits
    return K.AugmentationSequential(
        K.RandomResizedCrop((height, width), scale=(0.5, 1.0) if strong else (0.8, 1.0), p=1.0 if strong else 0.5),
        K.RandomAffine(degrees=15 if strong else 8, translate=(0.1, 0.1), scale=(0.9, 1.1), p=0.8 if strong else 0.5),
        K.RandomBrightness((0.6, 1.4) if strong else (0.9, 1.1), clip_output=False, p=0.8 if strong else 0.3),
        K.RandomContrast((0.6, 1.4) if strong else (0.9, 1.1), clip_output=False, p=0.8 if strong else 0.3),
        K.RandomGaussianBlur(blur, (0.1, 1.0), p=0.5 if strong else 0.1),
    )


def vector_views(x: torch.Tensor, noise: float = 0.3, drop: float = 0.2) -> torch.Tensor:
    """A random view of (B, F) feature vectors for contrastive learning: Gaussian noise and random feature masking
    (images get kornia's pipeline instead)."""
    keep = (torch.rand_like(x) >= drop).to(x.dtype)
    return (x + noise * torch.randn_like(x)) * keep


class BatchAugment:
    """What happens to each training batch before the forward: ``data.augment`` (``shift``: ±1-pixel translations;
    ``kornia``: a light kornia pipeline) and mixing (``train.mixup_alpha`` / ``cutmix_alpha``), on the device.

    Its random streams are reseeded from the run seed at every epoch start (``new_epoch``) and saved in checkpoints
    (``generator``, ``mix_rng``), so a resumed epoch draws exactly the same augmentations.
    """

    def __init__(self, shift: bool, kornia: torch.nn.Module | None, mixing: bool, num_classes: int,
                 mixup_alpha: float, cutmix_alpha: float) -> None:
        self.shift, self.kornia, self.mixing = shift, kornia, mixing
        self.num_classes, self.mixup_alpha, self.cutmix_alpha = num_classes, mixup_alpha, cutmix_alpha
        self.active = shift or kornia is not None or mixing
        self.generator = torch.Generator()
        self.mix_rng = np.random.default_rng(0)

    def new_epoch(self, generator_seed: int, mix_seed: int) -> None:
        self.generator.manual_seed(generator_seed)
        self.mix_rng = np.random.default_rng(mix_seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shift:
            x = random_shift(x, self.generator)
        elif self.kornia is not None:
            x = self.kornia(x)  # batched on the device; global torch RNG (checkpointed)
        if self.mixing:
            x, y = mix(x, y, self.num_classes, self.mixup_alpha, self.cutmix_alpha, self.mix_rng, self.generator)
        return x, y

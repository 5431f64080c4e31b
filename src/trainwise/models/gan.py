"""``gan``: a generator/discriminator pair (MLP, or DCGAN-style convolutions for (C, H, W) images).

The generator ends in tanh, so fakes lie in [−1, 1]: real data must be scaled to the same range (the gan paradigm
maps pixels there). The discriminator returns one logit per sample (use BCE-with-logits). The model holds no training
logic: the paradigm alternates the two optimisers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import check_choice, check_dims, norm1d, norm2d
from trainwise.models.registry import register

GAN_STYLES = ("auto", "mlp", "dcgan")
LEAK = 0.2  # LeakyReLU slope in the discriminator (Radford et al. 2016): sparse gradients starve the generator


def upsampling_stages(h: int, w: int, most: int = 3) -> int:
    """How many ×2 upsamplings build an H×W image from a ≥ 2×2 seed: the largest n ≤ ``most`` with H and W divisible
    by 2^n and H/2^n, W/2^n ≥ 2 (8×8 → 2 from 2×2, 28×28 → 2 from 7×7, 32×32 → 3 from 4×4, odd sizes → 0)."""
    n = 0
    while n < most and h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0 and min(h, w) // 2 ** (n + 1) >= 2:
        n += 1
    return n


class MLPGenerator(nn.Module):
    """z (B, Z) → [Linear → norm → ReLU] × len(hidden) → Linear → tanh → (B, *out_shape)."""

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: list[int], norm: str) -> None:
        super().__init__()
        self.out_shape = out_shape
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), norm1d(norm, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, math.prod(out_shape)), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """x (B, *in_shape) → flatten → [Linear → norm → LeakyReLU(0.2)] × len(hidden) → Linear → (B,) logits."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], norm: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), norm1d(norm, h), nn.LeakyReLU(LEAK)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class DCGANGenerator(nn.Module):
    """z (B, Z) → Linear → (width·2^n, H/2^n, W/2^n) → [ConvT 4×4 stride 2 (×2 size, ½ channels) → norm → ReLU] × n
    → 3×3 conv to C → tanh → (B, *out_shape)."""

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], width: int, norm: str) -> None:
        super().__init__()
        self.out_shape = out_shape
        c, h, w = out_shape if len(out_shape) == 3 else (1, *out_shape)
        n = upsampling_stages(h, w)
        c0, h0, w0 = width * 2**n, h // 2**n, w // 2**n
        layers: list[nn.Module] = [nn.Linear(latent_dim, c0 * h0 * w0, bias=False), nn.Unflatten(1, (c0, h0, w0)),
                                   norm2d(norm, c0), nn.ReLU()]
        for i in range(n, 0, -1):  # channels width·2^i → width·2^(i−1)
            layers += [nn.ConvTranspose2d(width * 2**i, width * 2 ** (i - 1), 4, 2, 1, bias=norm == "none"),
                       norm2d(norm, width * 2 ** (i - 1)), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, c, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, C, H, W) or (B, H, W)


class DCGANDiscriminator(nn.Module):
    """x → (B, C, H, W) → [Conv 4×4 stride 2 (½ size, ×2 channels) → norm (not on the first) → LeakyReLU] × n
    (a 3×3 stride-1 conv when the size is odd, n = 0) → flatten → Linear → (B,) logits."""

    def __init__(self, in_shape: tuple[int, ...], width: int, norm: str) -> None:
        super().__init__()
        c, h, w = in_shape if len(in_shape) == 3 else (1, *in_shape)
        self.image_shape = (c, h, w)
        n = upsampling_stages(h, w)
        layers: list[nn.Module] = []
        if n == 0:
            layers += [nn.Conv2d(c, width, 3, 1, 1), nn.LeakyReLU(LEAK)]
            c_out = width
        c_in = c
        for i in range(n):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0 or norm == "none"),
                       norm2d(norm, c_out) if i > 0 else nn.Identity(), nn.LeakyReLU(LEAK)]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_out * (h // 2**n) * (w // 2**n), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], *self.image_shape)).squeeze(-1)


class GAN(nn.Module):
    """Holds ``generator`` (z (B, latent_dim) → fakes (B, *in_shape) in [−1, 1]) and ``discriminator``
    ((B, *in_shape) → (B,) logits). ``forward(z)`` is the generator."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n fakes from z ~ N(0, I): (n, *in_shape)."""
        p = next(self.generator.parameters())
        return self.generator(torch.randn(n, self.latent_dim, generator=generator, device=p.device, dtype=p.dtype))


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@register("gan", "GAN generator/discriminator pair (mlp, or dcgan convs for (C,H,W) images); fakes in [-1, 1]")
def gan(in_shape: tuple[int, ...], out_dim: int, latent_dim: int = 64, style: str = "auto",
        hidden: list[int] = (256, 256), width: int = 32, norm: str = "batch",  # type: ignore[assignment]
        d_norm: str = "none") -> GAN:
    """``style``: auto (dcgan for (C, H, W) images, else mlp), mlp (``hidden`` widths) or dcgan (``width`` channels
    at full resolution, doubling per halving). ``norm`` applies to the generator, ``d_norm`` to the discriminator
    (none by default: the paradigm feeds it separate real and fake batches, which batch statistics would tell
    apart). ``out_dim`` is ignored; the generator's tanh output lies in [−1, 1]."""
    hidden = list(hidden)
    check_choice("style", style, GAN_STYLES)
    check_dims("hidden", hidden)
    for key, value in (("latent_dim", latent_dim), ("width", width)):
        if value < 1:
            raise TrainwiseError(f"model.{key}={value} must be a positive integer")
    for n in (norm, d_norm):
        norm1d(n, 2)  # validates the name before anything is built
    if style == "auto":
        style = "dcgan" if len(in_shape) == 3 else "mlp"
    shape = tuple(in_shape)
    if style == "dcgan":
        if len(shape) not in (2, 3):
            raise TrainwiseError(f"model.style=dcgan needs (C, H, W) or (H, W) images, got in_shape {shape}; "
                                 f"use model.style=mlp")
        model = GAN(DCGANGenerator(latent_dim, shape, width, norm), DCGANDiscriminator(shape, width, d_norm),
                    latent_dim)
        dcgan_init(model)
        return model
    return GAN(MLPGenerator(latent_dim, shape, hidden, norm), MLPDiscriminator(shape, hidden[::-1], d_norm), latent_dim)

"""``autoencoder`` and ``vae``: encoder → latent code → decoder models, with reconstruction-error anomaly scores,
and the closed-form Gaussian KL used by the VAE's ELBO.

Neither uses ``out_dim`` (the output has the input's shape); the trainer passes one anyway and it is ignored.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import activation, check_choice, check_dims, initialize, norm1d, norm2d
from trainwise.models.registry import register

OUTPUTS = ("none", "sigmoid")
AE_STYLES = ("auto", "mlp", "conv")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag σ²) ‖ N(0, I)) per sample, σ² = exp(logvar): ½ Σ_j (σ_j² + mu_j² − 1 − log σ_j²). (B, Z) → (B,)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)


def _output_act(name: str) -> nn.Module:
    return nn.Sigmoid() if name == "sigmoid" else nn.Identity()


def _mlp(widths: list[int], act: str, norm: str) -> nn.Sequential:
    """[Linear → norm → act] between consecutive widths: widths[0] → … → widths[-1]."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), norm1d(norm, b), activation(act)]
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """x (B, *in_shape) → encoder → z (B, latent) → decoder → x̂ shaped like x.

    ``mlp`` style: flatten → Linear layers ``hidden`` → latent → reversed ``hidden`` → Linear → output activation.
    ``conv`` style, (C, H, W) images: stride-2 3×3 convs through ``channels`` (each halves H, W, rounding up) →
    Linear → latent; the decoder mirrors it with transposed convs whose output padding restores the exact size.
    """

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int, act: str, norm: str, output: str,
                 style: str, channels: list[int]) -> None:
        super().__init__()
        self.in_shape, self.style = tuple(in_shape), style
        if style == "mlp":
            d = math.prod(in_shape)
            self.encoder = nn.Sequential(nn.Flatten(), _mlp([d, *hidden], act, norm), nn.Linear(([d, *hidden])[-1],
                                                                                                latent))
            self.decoder = nn.Sequential(_mlp([latent, *hidden[::-1]], act, norm),
                                         nn.Linear(([latent, *hidden[::-1]])[-1], d), _output_act(output))
            return
        c, h, w = in_shape
        sizes = [(h, w)]
        enc: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels):
            enc += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=norm == "none"), norm2d(norm, c_out), activation(act)]
            sizes.append(((sizes[-1][0] - 1) // 2 + 1, (sizes[-1][1] - 1) // 2 + 1))  # ⌈H/2⌉, ⌈W/2⌉
        hb, wb = sizes[-1]
        flat = channels[-1] * hb * wb
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, latent))
        dec: list[nn.Module] = [nn.Linear(latent, flat), activation(act), nn.Unflatten(1, (channels[-1], hb, wb))]
        outs = [*channels[::-1][1:], c]  # mirrored widths, ending with the image channels
        for i, (c_in, c_out) in enumerate(zip(channels[::-1], outs)):
            (th, tw), (sh, sw) = sizes[-2 - i], sizes[-1 - i]  # target size and current size
            pad = (th - (2 * sh - 1), tw - (2 * sw - 1))  # 0 or 1: a stride-2 transposed conv gives 2s − 1 + pad
            last = i == len(channels) - 1
            dec.append(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=pad, bias=last or norm == "none"))
            if not last:
                dec += [norm2d(norm, c_out), activation(act)]
        self.decoder = nn.Sequential(*dec, _output_act(output))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) → latent codes (B, latent)."""
        return self.encoder(x.reshape(x.shape[0], *self.in_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)).reshape(x.shape)  # reconstruction, shaped like x

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample mean squared reconstruction error (B,): high for inputs unlike the training data."""
        return (self(x) - x).pow(2).flatten(1).mean(1)


class VAE(nn.Module):
    """Variational autoencoder (Kingma & Welling 2014) with MLP encoder/decoder.

    x → flatten → ``hidden`` → (mu, logvar) heads (B, latent); z = mu + σ·ε in training (reparameterisation, so the
    gradient flows through mu and σ), z = mu in eval (deterministic reconstructions and metrics) → decoder → x̂.
    """

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int, act: str, output: str) -> None:
        super().__init__()
        self.in_shape, self.latent = tuple(in_shape), latent
        d = math.prod(in_shape)
        self.body = nn.Sequential(nn.Flatten(), _mlp([d, *hidden], act, "none"))
        width = ([d, *hidden])[-1]
        self.mu = nn.Linear(width, latent)
        self.logvar = nn.Linear(width, latent)
        self.decoder = nn.Sequential(_mlp([latent, *hidden[::-1]], act, "none"),
                                     nn.Linear(([latent, *hidden[::-1]])[-1], d), _output_act(output))

    def encode_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.reshape(x.shape[0], -1))
        return self.mu(h), self.logvar(h)  # (B, latent) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean (B, latent)."""
        return self.encode_stats(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(z.shape[0], *self.in_shape)  # (B, *in_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode_stats(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z).reshape(x.shape), mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws z ~ N(0, I): (n, *in_shape)."""
        p = self.mu.weight
        z = torch.randn(n, self.latent, generator=generator, device=p.device, dtype=p.dtype)
        return self.decode(z)


def _check_common(hidden: list[int], latent: int, act: str, output: str) -> None:
    check_dims("hidden", hidden)
    if latent < 1:
        raise TrainwiseError(f"model.latent={latent} must be a positive integer (the size of the code)")
    activation(act)
    check_choice("output", output, OUTPUTS)


@register("autoencoder", "autoencoder (MLP, or conv for (C,H,W) images); output has the input's shape, out_dim unused")
def autoencoder(in_shape: tuple[int, ...], out_dim: int, hidden: list[int] = (128, 64),  # type: ignore[assignment]
                latent: int = 16, act: str = "relu", norm: str = "none", output: str = "none", style: str = "auto",
                channels: list[int] = (16, 32), init: str = "kaiming") -> AutoEncoder:  # type: ignore[assignment]
    """``style``: auto (conv for (C, H, W), else mlp), mlp or conv; ``hidden`` are the MLP widths, ``channels`` the
    conv widths. ``output``: none for standardised features, sigmoid for [0, 1] pixels. ``out_dim`` is ignored."""
    hidden, channels = list(hidden), list(channels)
    _check_common(hidden, latent, act, output)
    check_choice("style", style, AE_STYLES)
    check_dims("channels", channels)
    if style == "auto":
        style = "conv" if len(in_shape) == 3 else "mlp"
    if style == "conv" and (len(in_shape) != 3 or not channels):
        raise TrainwiseError(f"model.style=conv needs (C, H, W) images and a non-empty model.channels, got in_shape "
                             f"{tuple(in_shape)}; use model.style=mlp")
    model = AutoEncoder(in_shape, hidden, latent, act, norm, output, style, channels)
    initialize(model, init, act)
    return model


@register("vae", "variational autoencoder (MLP): forward → (recon, mu, logvar); sample(n); out_dim unused")
def vae(in_shape: tuple[int, ...], out_dim: int, hidden: list[int] = (256, 128),  # type: ignore[assignment]
        latent: int = 16, act: str = "relu", output: str = "none", init: str = "kaiming") -> VAE:
    """``output``: none (Gaussian likelihood on standardised inputs) or sigmoid ([0, 1] data). ``out_dim`` is ignored."""
    hidden = list(hidden)
    _check_common(hidden, latent, act, output)
    model = VAE(in_shape, hidden, latent, act, output)
    initialize(model.body, init, act)  # the mu/logvar heads keep PyTorch's small init: logvar starts near 0
    initialize(model.decoder, init, act)
    return model

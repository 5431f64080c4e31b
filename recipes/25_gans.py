"""GANs: generator and discriminator with two Steppers, detached fakes, non-saturating loss (tasks/gan.py)."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

import trainwise


def main() -> None:
    c.setup()
    x, _ = c.digits()
    x = torch.tensor(x * 2 - 1).view(-1, 1, 8, 8)  # the generator's tanh range
    torch.manual_seed(0)
    gan = trainwise.create_model("gan", in_shape=(1, 8, 8), out_dim=1, style="mlp", latent_dim=32)
    g, d = gan.generator, gan.discriminator

    # Equilibrium: when the "fakes" come from the data distribution itself, the best discriminator can only say 0.5.
    perm = torch.randperm(len(x))
    q = len(x) // 4
    real, same_dist, held_a, held_b = (x[perm[k * q:(k + 1) * q]] for k in range(4))
    opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    steps = int(c.pick(600, 200))
    for _ in range(steps):
        i, j = torch.randint(0, len(real), (64,)), torch.randint(0, len(same_dist), (64,))
        rl, fl = d(real[i]), d(same_dist[j])
        loss = F.binary_cross_entropy_with_logits(rl, torch.ones_like(rl)) + \
            F.binary_cross_entropy_with_logits(fl, torch.zeros_like(fl))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        p_real, p_fake = torch.sigmoid(d(real)).mean().item(), torch.sigmoid(d(same_dist)).mean().item()
        h_a, h_b = torch.sigmoid(d(held_a)).mean().item(), torch.sigmoid(d(held_b)).mean().item()
    c.check("at equilibrium D outputs 0.5 everywhere", abs(h_a - 0.5) < 0.1 and abs(h_b - 0.5) < 0.1,
            f"trainwise's discriminator trained {steps} steps on {q} 'real' digits vs {q} 'fakes' from the same "
            f"distribution (a perfect generator): on unseen digits of either group mean D = {h_a:.3f} / {h_b:.3f}; "
            f"on its own training samples {p_real:.3f} / {p_fake:.3f} — a finite D memorises individual samples, "
            f"so 0.5 holds in distribution, not per training sample")

    z = torch.randn(32, 32)
    for p in gan.parameters():
        p.grad = None
    fake = g(z)
    F.binary_cross_entropy_with_logits(d(fake), torch.zeros(32)).backward()  # D step without detach
    leaked = sum(p.grad.norm().item() for p in g.parameters() if p.grad is not None)
    for p in gan.parameters():
        p.grad = None
    F.binary_cross_entropy_with_logits(d(g(z).detach()), torch.zeros(32)).backward()
    clean = [p.grad for p in g.parameters() if p.grad is not None]
    c.check("generator output must be detached for the D step", leaked > 0 and not clean,
            f"the D loss backpropagated through undetached fakes writes gradients of total norm {leaked:.3f} into "
            f"the generator (pushing it to make fakes *easier* to spot, and accumulating into its next step); "
            f"with .detach() the generator gets none ({len(clean)} tensors), which is what tasks/gan.py does")

    cfg = trainwise.compose(preset="digits-gan")
    usual = cfg.optim.name == "adam" and abs(cfg.optim.lr - 2e-4) < 1e-12 and cfg.optim.beta1 == 0.5
    c.check("Adam(2e-4, β=(0.5,0.999)) is the usual setting", usual and cfg.optim.beta2 == 0.999,
            f"trainwise's digits-gan preset (which meets its sample-quality bar in docs/presets.md) uses "
            f"{cfg.optim.name}(lr={cfg.optim.lr}, β=({cfg.optim.beta1}, {cfg.optim.beta2})), the DCGAN paper's "
            f"setting; 'usual' is a convention, not measured here")


if __name__ == "__main__":
    main()

"""Batch size: gradient noise, exact accumulation (train.accumulate) and the linear lr rule (trainwise.scale_lr)."""

from __future__ import annotations

import _common as c
import torch
import torch.nn.functional as F

import trainwise


def flat_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    return torch.cat([g.flatten() for g in grads])


def main() -> None:
    c.setup()
    xs, ys = c.digits()
    x, y = torch.tensor(xs), torch.tensor(ys)
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64])
    full = flat_grad(model, x, y)
    draws = int(c.pick(200, 60))
    var_b = {}
    for b in (8, 32, 128):
        sq = [(flat_grad(model, x[i], y[i]) - full).pow(2).sum().item()
              for i in (torch.randperm(len(x))[:b] for _ in range(draws))]
        fpc = 1 - (b - 1) / (len(x) - 1)  # sampling without replacement from a finite set
        var_b[b] = sum(sq) / draws / fpc
    prod = {b: v * b for b, v in var_b.items()}
    spread = max(prod.values()) / min(prod.values())
    c.check("gradient-estimate variance ∝ 1/B", spread < 1.3,
            f"E‖g_B − g‖² over {draws} random batches: " + ", ".join(f"B={b}: {v:.4f}" for b, v in var_b.items())
            + f"; B·variance = {', '.join(f'{p:.3f}' for p in prod.values())} (max/min {spread:.2f})")

    common = {"epochs": 2, "run_dir": None, "seed": 0, "optim.name": "sgd", "optim.lr": 0.05,
              "schedule.name": "constant"}
    # 1,024 training samples: 4 batches of 256 = 16 micro-batches of 64, so both runs take the same steps.
    split = {"train": (xs[:1024], ys[:1024]), "val": (xs[1024:1400], ys[1024:1400]), "test": (xs[1400:], ys[1400:])}
    weights = {}
    for batch, k in ((256, 1), (64, 4)):
        torch.manual_seed(0)
        m = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64])
        r = trainwise.fit(m, split, **{**common, "data.batch_size": batch, "train.accumulate": k})
        weights[batch, k] = torch.cat([p.detach().flatten() for p in r.model.parameters()])
        steps = r.summary["steps"]
    diff = (weights[256, 1] - weights[64, 4]).abs().max().item()
    c.check("K micro-batches of B equal one batch of K·B", diff < 1e-5,
            f"fit with batch 64 × train.accumulate=4 vs batch 256: final weights differ by {diff:.1e} after "
            f"{steps} optimizer steps of SGD (float rounding: the sum order differs)")

    epochs = int(c.pick(6, 3))
    arms = (("B=32, lr 0.02", 32, 0.02, "constant"), ("B=256, same lr", 256, 0.02, "constant"),
            ("B=256, scaled lr + warmup", 256, trainwise.scale_lr(0.02, 256, 32), "warmup_cosine"))
    acc: dict[str, list[float]] = {label: [] for label, *_ in arms}
    for seed in c.seeds():
        for label, batch, lr, sched in arms:
            torch.manual_seed(seed)
            m = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[128])
            acc[label].append(trainwise.fit(m, (xs, ys), epochs=epochs, run_dir=None, seed=seed,
                                            **{"optim.name": "sgd", "optim.lr": lr, "optim.momentum": 0.0,
                                               "data.batch_size": batch, "schedule.name": sched,
                                               "schedule.warmup_fraction": 0.2}).summary["val/accuracy"])
        c.say(f"seed {seed}: val accuracy after {epochs} epochs: "
              + ", ".join(f"{label} (lr {lr:g}) {acc[label][-1]:.3f}" for label, _, lr, _ in arms))
    base, same, scaled = acc.values()
    # Per seed: how far each B=256 arm lands from the B=32 run it should match.
    gap_same = [abs(s - b) for s, b in zip(same, base)]
    gap_scaled = [abs(s - b) for s, b in zip(scaled, base)]
    c.compare("lr scales linearly with batch size (with warmup)", gap_scaled, gap_same,
              names=("scaled lr", "same lr"), higher=False, fmt=".3f",
              what="|val accuracy − the B=32 run's|",
              context=f"digits MLP 64→128→10, plain SGD, {epochs} epochs: B=32 at lr 0.02 (val accuracy "
                      f"{sum(base) / len(base):.3f} mean) against B=256 at the same lr ({sum(same) / len(same):.3f}) "
                      f"and at scale_lr(0.02, 256, 32) = {trainwise.scale_lr(0.02, 256, 32):g} with warmup "
                      f"({sum(scaled) / len(scaled):.3f})")

if __name__ == "__main__":
    main()

"""Learning-rate schedules: step, cosine, warmup+cosine, one-cycle, plateau, cyclic (train/schedule.py)."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.train.optim import build_optimizer
from trainwise.train.schedule import build_schedule


def main() -> None:
    c.setup()
    x, y = c.digits()
    epochs, lr = int(c.pick(10, 4)), 0.03  # Adam at 0.03 is large for a 4×256 MLP
    steps = epochs * 20  # 20 steps per epoch: 1,257 training digits at batch 64
    runs = {}
    for sched in ("cosine", "warmup_cosine"):
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256] * 4)
        r = trainwise.fit(model, (x, y), epochs=epochs, run_dir=None, record_step_losses=True,
                          **{"optim.name": "adam", "optim.lr": lr, "schedule.name": sched,
                             "schedule.warmup_fraction": 20 / steps})
        early = r.step_losses[:40]
        runs[sched] = (early[0], max(early), r.summary["test/accuracy"])
        c.say(f"{sched:<14} first-40-step losses: start {early[0]:.2f}, max {max(early):.2f}, "
              f"mean {sum(early) / 40:.3f}; test accuracy {r.summary['test/accuracy']:.3f}")
    (s0, m0, a0), (s1, m1, a1) = runs["cosine"], runs["warmup_cosine"]
    c.check("warmup stabilises large-lr starts", m1 <= 1.1 * s1 and m0 > 2 * s0,
            f"Adam lr {lr}, 4×256 MLP on digits: without warmup the loss spikes from {s0:.2f} to {m0:.2f} in the "
            f"first 40 steps; with 20 warmup steps its maximum is {m1:.2f} (start {s1:.2f}); final test accuracy "
            f"{a0:.3f} without vs {a1:.3f} with")

    # Plateau: feed a validation loss that improves, then stalls; the schedule reacts after `patience` epochs.
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(model, "sgd", lr=0.1)
    sched = build_schedule(opt, "plateau", 100, 10, factor=0.5, patience=2)
    metrics = [1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    lrs = []
    for m in metrics:
        sched.after_epoch(m)
        lrs.append(opt.param_groups[0]["lr"])
    first_cut = next((i for i, v in enumerate(lrs) if v < 0.1), None)
    c.say(f"val loss {metrics} → lr {lrs}")
    c.check("plateau scheduling reacts to a stalled metric", first_cut is not None and lrs[2] == 0.1,
            f"schedule.name=plateau (factor 0.5, patience 2): lr stays 0.1 while the metric improves, the metric "
            f"stops improving after epoch 2 and the lr halves at epoch {first_cut}, again at "
            f"{next((i for i, v in enumerate(lrs) if v < 0.05), None)} (lr sequence {lrs})")


if __name__ == "__main__":
    main()

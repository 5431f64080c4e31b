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
    peak: dict[str, list[float]] = {"cosine": [], "warmup_cosine": []}
    test: dict[str, list[float]] = {"cosine": [], "warmup_cosine": []}
    for seed in c.seeds():
        for sched in peak:
            torch.manual_seed(seed)
            model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256] * 4)
            r = trainwise.fit(model, (x, y), epochs=epochs, run_dir=None, record_step_losses=True, seed=seed,
                              **{"optim.name": "adam", "optim.lr": lr, "schedule.name": sched,
                                 "schedule.warmup_fraction": 20 / steps})
            early = r.step_losses[:40]
            peak[sched].append(max(early))
            test[sched].append(r.summary["test/accuracy"])
            c.say(f"seed {seed} {sched:<14} first-40-step losses: start {early[0]:.2f}, max {max(early):.2f}, "
                  f"mean {sum(early) / 40:.3f}; test accuracy {r.summary['test/accuracy']:.3f}")
    c.compare("warmup stabilises large-lr starts", peak["warmup_cosine"], peak["cosine"], names=("warmup", "no warmup"),
              higher=False, ratio=True, fmt=".2f", what="largest training loss in the first 40 steps",
              context=f"Adam lr {lr}, 4×256 MLP on digits, cosine schedule with vs without 20 warmup steps (the loss "
                      f"starts at ≈2.3); final test accuracy without {sum(test['cosine']) / len(test['cosine']):.3f}, "
                      f"with {sum(test['warmup_cosine']) / len(test['warmup_cosine']):.3f} (mean)")

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

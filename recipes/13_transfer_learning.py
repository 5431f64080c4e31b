"""Transfer learning: pretrained weights, a frozen body (train.freeze_epochs) and smaller body lrs (optim.group_lr)."""

from __future__ import annotations

import copy

import _common as c
import numpy as np
import torch

import trainwise
from trainwise.train.loop import set_frozen


def split(x: np.ndarray, y: np.ndarray, per_class: int, seed: int) -> dict:
    """``per_class`` labelled training images per class, 100 validation images, the rest for test."""
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:per_class] for k in np.unique(y)])
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), train))
    return {"train": (x[train], y[train]), "val": (x[rest[:100]], y[rest[:100]]), "test": (x[rest[100:]], y[rest[100:]])}


def main() -> None:
    c.setup()
    x, y = c.digits()
    x = x.reshape(-1, 1, 8, 8)  # images: conv features are what transfers between digit classes
    old, new = y < 5, y >= 5
    torch.manual_seed(0)
    pretrained = trainwise.create_model("cnn", in_shape=(1, 8, 8), out_dim=5, width=16)
    pre = trainwise.fit(pretrained, split(x[old], y[old], 150, 0), epochs=int(c.pick(20, 5)), run_dir=None)
    c.say(f"pretrained on digits 0–4: test accuracy {pre.summary['test/accuracy']:.3f}")

    model = copy.deepcopy(pre.model)
    set_frozen(model, True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    body_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    head_before = model.head.weight.detach().clone()
    set_frozen(model, False)
    data = split(x[new], y[new] - 5, 10, 1)
    frozen_run = trainwise.fit(model, data, epochs=3, run_dir=None, **{"train.freeze_epochs": 3})
    after = frozen_run.model.state_dict()
    params = {n for n, _ in frozen_run.model.named_parameters()}
    body_same = all(torch.equal(v, after[k]) for k, v in body_before.items() if k in params)
    buffers_same = all(torch.equal(v, after[k]) for k, v in body_before.items() if k not in params)
    head_moved = not torch.equal(head_before, frozen_run.model.head.weight)
    c.check("freezing leaves only the head trainable", trainable == ["head.weight", "head.bias"] and body_same
            and head_moved,
            f"set_frozen leaves trainable: {trainable}; 3 epochs with train.freeze_epochs=3 leave every body tensor "
            f"parameter bitwise unchanged ({body_same}) while the head moved ({head_moved}); note: BatchNorm running "
            f"statistics are buffers, not parameters, and {'stayed' if buffers_same else 'still moved'} in train mode")

    per_class = 10
    epochs = int(c.pick(40, 12))
    scratch_acc, tuned_acc = [], []
    for seed in c.seeds():
        data = split(x[new], y[new] - 5, per_class, seed + 1)
        torch.manual_seed(seed)
        scratch = trainwise.create_model("cnn", in_shape=(1, 8, 8), out_dim=5, width=16)
        scratch_acc.append(trainwise.fit(scratch, data, epochs=epochs, run_dir=None, seed=seed,
                                         **{"optim.lr": 1e-3, "data.batch_size": 16}).summary["test/accuracy"])
        tuned = copy.deepcopy(pre.model)
        tuned.head.reset_parameters()  # new classes: a fresh head on the pretrained body
        tuned_acc.append(trainwise.fit(tuned, data, epochs=epochs, run_dir=None, seed=seed,
                                       **{"optim.lr": 1e-3, "optim.group_lr": {"stem": 1e-4, "stages": 1e-4}, "data.batch_size": 16,
                                          "train.freeze_epochs": 5}).summary["test/accuracy"])
        c.say(f"split {seed}: digits 5–9 with {per_class} labels per class: scratch {scratch_acc[-1]:.3f}, "
              f"fine-tuned {tuned_acc[-1]:.3f}")
    c.compare("fine-tuning with a smaller lr on pretrained layers beats training from scratch with few labels",
              tuned_acc, scratch_acc, names=("fine-tuned", "scratch"), what="test accuracy",
              context=f"digits 5–9, {per_class} labels per class (a new split and init per seed), {epochs} epochs, "
                      f"batch 16, small cnn; fine-tuned = body pretrained on digits 0–4, body lr 1e-4, head lr 1e-3, "
                      f"head only for the first 5 epochs; scratch = lr 1e-3")

if __name__ == "__main__":
    main()

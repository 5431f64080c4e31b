"""Bit-exact parity: ``trainwise.fit`` against a plain hand-written PyTorch loop (CPU, fp32, same seed and order).

The hand loop below is what a reader would write from a tutorial. Every source of randomness and every floating-point
operation is reproduced in the same order, so per-step losses and weights must be *equal*, not merely close.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.datasets import load_digits

import trainwise
from trainwise.data.loaders import epoch_seed

SEED = 0
BATCH = 64
LR = 1e-3
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0


@pytest.fixture(scope="module")
def digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pre-split digits (dict form, used by ``fit`` as given: no preprocessing on either side).

    1000 train samples: 15 full batches of 64 and a ragged last batch of 40, so ragged batches are covered too.
    """
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return {"train": (x[:1000], y[:1000]), "val": (x[1000:1300], y[1000:1300])}


def make_mlp(dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(1234)
    return trainwise.create_model("mlp", (64,), 10, hidden=[256, 256], dropout=dropout)


def hand_groups(model: torch.nn.Module) -> list[dict]:
    """The optimizer groups written out by hand: Linear weights (ndim ≥ 2) decayed, biases not."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3  # 64→256, 256→256, 256→10
    return [
        {"params": [lin.weight for lin in linears], "lr": LR, "weight_decay": WEIGHT_DECAY},
        {"params": [lin.bias for lin in linears], "lr": LR, "weight_decay": 0.0},
    ]


def hand_loop(model: torch.nn.Module, data: dict, epochs: int, accumulate: int = 1, ema_decay: float | None = None
              ) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """The textbook loop. Returns per-micro-batch losses and a snapshot of the evaluation weights (the live model,
    or its exponential moving average with ``ema_decay``) after every epoch."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    x = torch.from_numpy(data["train"][0])
    y = torch.from_numpy(data["train"][1])
    n = len(x)
    steps = -(-n // BATCH)
    sizes = [min(BATCH, n - i * BATCH) for i in range(steps)]
    # fused: trainwise's default on CPU (optim.fused=null → auto); the hand-written loop picks the same kernel
    opt = torch.optim.AdamW(hand_groups(model), lr=LR, betas=(0.9, 0.999), eps=1e-8, fused=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt.zero_grad(set_to_none=True)
    losses, snapshots = [], []
    ema = copy.deepcopy(model) if ema_decay else None
    ema_started = False
    for epoch in range(epochs):
        model.train()
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(SEED, epoch)))
        for i in range(steps):
            j = idx[i * BATCH:(i + 1) * BATCH]
            out = model(x[j])
            loss = F.cross_entropy(out, y[j])
            if accumulate > 1:
                start = i - i % accumulate
                group = sizes[start:start + accumulate]
                (loss * (sizes[i] / sum(group))).backward()
            else:
                loss.backward()
            losses.append(loss.item())
            if (i + 1) % accumulate == 0 or i == steps - 1:
                torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if ema is not None:  # W_ema ← W on the first step, then W_ema ← W_ema + (1 − decay)(W − W_ema)
                    with torch.no_grad():
                        for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                            if ema_started:
                                e.lerp_(p, 1 - ema_decay)
                            else:
                                e.copy_(p)
                    ema_started = True
        source = ema if ema is not None else model
        snapshots.append({k: v.detach().clone() for k, v in source.state_dict().items()})
    return losses, snapshots


def fit_options(epochs: int, accumulate: int = 1, ema_decay: float | None = None) -> dict:
    return {"epochs": epochs, "accumulate": accumulate, "early_stopping": False, "grad_clip": GRAD_CLIP,
            "ema_decay": ema_decay,
            "seed": SEED, "device": "cpu", "precision": "32",
            "optim": {"name": "adamw", "lr": LR, "weight_decay": WEIGHT_DECAY},
            "schedule": {"name": "constant"}, "data.batch_size": BATCH}  # (`data=` is fit's own argument)


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


@pytest.mark.parametrize(("dropout", "accumulate", "epochs", "ema_decay"), [
    (0.0, 1, 3, None),   # the plain loop
    (0.2, 1, 2, None),   # dropout draws from the global torch RNG: it must be consumed identically
    (0.0, 2, 2, None),   # gradient accumulation over 2 micro-batches (the last group is a ragged 1-batch group)
    (0.0, 1, 2, 0.9),    # EMA of the weights: evaluation / saved weights are the average, training is unchanged
], ids=["plain", "dropout", "accumulate2", "ema"])
def test_fit_is_bit_identical_to_hand_written_loop(digits_splits, tmp_path, dropout, accumulate, epochs, ema_decay):
    model = make_mlp(dropout)
    reference = copy.deepcopy(model)

    result = trainwise.fit(model, digits_splits, run_dir=tmp_path / "run", quiet=True, record_step_losses=True,
                           **fit_options(epochs, accumulate, ema_decay))
    losses, snapshots = hand_loop(reference, digits_splits, epochs, accumulate, ema_decay)

    steps_per_epoch = -(-1000 // BATCH)
    assert len(result.step_losses) == steps_per_epoch * epochs == len(losses)
    assert result.step_losses == losses  # exact float equality, step by step
    assert result.summary["steps"] == epochs * -(-steps_per_epoch // accumulate)

    # Final weights: what fit wrote as final.safetensors is the hand loop's last state, bit for bit.
    final = load_file(str(tmp_path / "run" / "final.safetensors"))
    assert_states_equal(final, snapshots[-1])
    # The returned model holds the best epoch's weights: the hand loop's snapshot of that epoch.
    best = result.summary["best_epoch"]
    assert 1 <= best <= epochs
    assert_states_equal(result.model.state_dict(), snapshots[best - 1])


def test_parity_helper_groups_match_trainwise_param_groups():
    """The hand-written groups are exactly what ``param_groups`` builds (same tensors, same order, same options)."""
    from trainwise.train.optim import param_groups

    model = make_mlp(0.2)
    ours, theirs = hand_groups(model), param_groups(model, LR, WEIGHT_DECAY)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert [id(p) for p in a["params"]] == [id(p) for p in b["params"]]
        assert (a["lr"], a["weight_decay"]) == (b["lr"], b["weight_decay"])

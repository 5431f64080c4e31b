"""The doctor on bugs it was not built against: failures reported in public threads, reproduced through the public
API (``trainwise.fit(model, data, ...)``) with a user-written ``nn.Module`` and small data, plus healthy controls.

    python -m trainwise.checkup.bugsuite [--seed 0 1 2] [--fresh] [--part all|heldout|dev] [--out docs/doctor.md]

Each bug case names the thread it reproduces (``url``), the finding codes that count as naming its cause
(``expected``: recalled when one of them is raised at warning or error) and ``fix``: a phrase the *first* fix of the
first warning/error finding must contain, so "the first fix addresses the actual cause" is checked, not assumed.
``heldout`` cases were written and committed with their expected codes before any rule was changed for them
(see the git history of this file); their recall is reported separately. A control must raise no warning or error.

A run that trainwise refuses at setup (a ``TrainwiseError`` before the first step, e.g. a head with the wrong number
of outputs) is scored as the finding ``setup_error`` whose fix is the error message: the user sees that message
and nothing else, so it is what has to name the cause. ``setup_error`` and ``crash`` count as the same finding
(the exception diagnosed before step 1 or during training — which one depends only on whether the failing batch
shape occurs in trainwise's two-sample setup check).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import trainwise
from trainwise.doctor.diagnose import diagnose_run
from trainwise.errors import TrainwiseError
from trainwise.train.loop import fit

Data = Any  # (x, y) arrays, {"train": ..., "val": ...} or a Dataset, as fit accepts
Build = Callable[[int], tuple[nn.Module, Data, dict[str, Any]]]
SAME = {"setup_error": "crash", "crash": "setup_error"}  # one finding, diagnosed at setup or in training


@dataclass
class BugCase:
    name: str
    family: str
    url: str
    what: str
    build: Build
    expected: set[str]
    fix: str  # lower-case phrase the first fix must contain
    heldout: bool = False


@dataclass
class Control:
    name: str
    what: str
    build: Build


# ---- data: small, installed with scikit-learn or generated; nothing downloaded --------------------------------------

def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def _cancer(raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    if not raw:
        x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), y.astype(np.int64)


def _wine() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), y.astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A user's own shuffled split, as a dict of ready-made parts (fit uses them as given, no standardisation)."""
    idx = np.random.default_rng(seed).permutation(len(x))
    n_val = int(len(x) * val)
    va, tr = idx[:n_val], idx[n_val:]
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va])}


def _mlp(n_in: int, n_out: int, hidden: int = 64, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), act(), nn.Linear(hidden, n_out))


def _sequences(seed: int, n: int = 512, t: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A running-sum regression: x (N, T, 1) noise, y the sum of the sequence (a long dependency)."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, t, 1)).astype(np.float32)
    return x, x.sum(axis=(1, 2)).astype(np.float32) / math.sqrt(t)


class SeqRegressor(nn.Module):
    """A plain recurrent regressor; ``gain`` scales the recurrent weights (the threads' 'exploding' setups)."""

    def __init__(self, cell: str = "rnn", hidden: int = 32, gain: float = 1.0, nonlinearity: str = "tanh") -> None:
        super().__init__()
        if cell == "lstm":
            self.rnn: nn.Module = nn.LSTM(1, hidden, batch_first=True)
        else:
            self.rnn = nn.RNN(1, hidden, batch_first=True, nonlinearity=nonlinearity)
        if gain != 1.0:  # recurrent weights with spectral radius `gain` (> 1: the threads' exploding setups)
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(p, gain)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class SmallCNN(nn.Module):
    """Digits as (N, 1, 8, 8) images; ``final`` is appended after the head (the softmax-before-loss bug)."""

    def __init__(self, act: bool = True, flat: int = 16 * 4 * 4, final: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.act = nn.ReLU() if act else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(flat, 10)
        self.final = final if final is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv2(self.act(self.conv1(x)))))
        return self.final(self.fc(x.flatten(1)))


class ListMLP(nn.Module):
    """Hidden layers kept in a plain Python list: never registered, so neither trained nor in the optimizer."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.hidden = [nn.Linear(n_in, 64), nn.Linear(64, 64)]  # the bug: should be nn.ModuleList
        self.head = nn.Linear(64, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.head(x)


class FixedBatchView(nn.Module):
    """Reshapes with a hard-coded batch size: fine until a smaller last batch arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.body(x)).view(64, 32)  # the bug: view(x.shape[0], -1)
        return self.head(h)


# ---- bug cases ------------------------------------------------------------------------------------------------------

def _softmax_head(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1))
    return m, _split(x, y, seed), {"epochs": 10}


def _sigmoid_head(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    m = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2), nn.Sigmoid())
    return m, _split(x, y, seed), {"epochs": 10, "data.batch_size": 32}


def _cnn_softmax(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return SmallCNN(final=nn.Softmax(dim=1)), _split(x.reshape(-1, 1, 8, 8), y, seed), {"epochs": 6}


def _linear_stack(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 128), nn.Linear(128, 10))
    return m, _split(x, y, seed), {"epochs": 8}


def _conv_no_act(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return SmallCNN(act=False), _split(x.reshape(-1, 1, 8, 8), y, seed), {"epochs": 6}


def _head_100(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return _mlp(64, 100), _split(x, y, seed), {"epochs": 5}


def _head_1_binary(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    return _mlp(30, 1), _split(x, y, seed), {"epochs": 5}


def _labels_shuffled(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    perm = np.random.default_rng(seed + 1).permutation(len(xt))
    parts["train"] = (xt[perm], yt)  # the bug: x shuffled, y not
    return _mlp(64, 10, 256), parts, {"epochs": 25, "optim.weight_decay": 0.0}


def _labels_shuffled_cancer(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    parts["train"] = (xt, yt[np.random.default_rng(seed + 1).permutation(len(yt))])
    return _mlp(30, 2, 256), parts, {"epochs": 40, "data.batch_size": 32, "optim.weight_decay": 0.0}


def _raw_cancer(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer(raw=True)
    return _mlp(30, 2), _split(x, y, seed), {"epochs": 10, "data.batch_size": 32}


def _raw_regression(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    g = np.random.default_rng(seed)
    x = g.normal(size=(800, 8)) * np.array([1, 10, 100, 1000, 1, 5000, 20, 300])
    y = np.tanh(x[:, 0]) + 1e-3 * x[:, 3] + 1e-4 * x[:, 5] + 0.1 * g.normal(size=800)
    return _mlp(8, 1), _split(x.astype(np.float32), y.astype(np.float32), seed), {"epochs": 10}


def _sorted_split(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    order = np.argsort(y, kind="stable")  # data arrives sorted by label; the last 20% become "val"
    x, y = x[order], y[order]
    n = int(0.8 * len(x))
    return _mlp(64, 10), {"train": (x[:n], y[:n]), "val": (x[n:], y[n:])}, {"epochs": 5}


def _sorted_split_wine(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    n = int(0.75 * len(x))
    return _mlp(13, 3), {"train": (x[:n], y[:n]), "val": (x[n:], y[n:])}, {"epochs": 10, "data.batch_size": 16}


def _dup_val(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    parts["val"] = (xt[:300].copy(), yt[:300].copy())  # the bug: "val" cut from the training arrays
    return _mlp(64, 10), parts, {"epochs": 5}


def _dup_train(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    parts = _split(x, y, seed)
    (xt, yt), (xv, yv) = parts["train"], parts["val"]
    parts["train"] = (np.concatenate([xt, xv]), np.concatenate([yt, yv]))  # val rows also in train
    return _mlp(30, 2), parts, {"epochs": 5, "data.batch_size": 32}


def _nan_features(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    g = np.random.default_rng(seed)
    x = x.copy()
    x[g.random(len(x)) < 0.05, 3] = np.nan  # missing values read as NaN, never imputed
    return _mlp(30, 2), _split(x, y, seed), {"epochs": 5, "data.batch_size": 32}


def _constant_columns(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    x = x.copy()
    x[:, 4:] = 0.0  # a join that matched nothing: most columns filled with 0
    return _mlp(13, 3), _split(x, y, seed), {"epochs": 10, "data.batch_size": 16}


def _one_class(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    keep = y == 1  # a filter that dropped every negative
    return _mlp(30, 2), _split(x[keep], y[keep], seed), {"epochs": 5, "data.batch_size": 32}


def _adam_lr5(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return _mlp(64, 10, 128), _split(x, y, seed), {"epochs": 8, "optim.name": "adam", "optim.lr": 5.0}


def _sgd_lr_dead(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    return _mlp(13, 3, 64), _split(x, y, seed), {"epochs": 15, "optim.name": "sgd", "optim.lr": 3.0,
                                                 "data.batch_size": 16}


def _loss_above_start(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    m = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    return m, _split(x, y, seed), {"epochs": 10, "optim.name": "adam", "optim.lr": 0.5, "data.batch_size": 32}


def _lr_tiny_sgd(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return _mlp(64, 10), _split(x, y, seed), {"epochs": 8, "optim.name": "sgd", "optim.lr": 1e-5,
                                              "optim.momentum": 0.0}


def _lr_tiny_adam(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    return _mlp(13, 3), _split(x, y, seed), {"epochs": 10, "optim.name": "adam", "optim.lr": 1e-6,
                                             "data.batch_size": 16}


def _rnn_explode(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _sequences(seed)
    return SeqRegressor("rnn", gain=3.0), _split(x, y, seed), {"epochs": 6, "train.grad_clip": None,
                                                               "optim.lr": 3e-3, "data.batch_size": 32}


def _relu_rnn_explode(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _sequences(seed, t=30)
    return SeqRegressor("rnn", gain=2.0, nonlinearity="relu"), _split(x, y, seed), {
        "epochs": 6, "train.grad_clip": None, "optim.lr": 1e-3, "data.batch_size": 32}


def _step_to_zero(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return _mlp(64, 10), _split(x, y, seed), {"epochs": 10, "optim.lr": 3e-4, "schedule.name": "step",
                                              "schedule.step_size": 1, "schedule.gamma": 0.01}


def _step_to_zero_wine(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    return _mlp(13, 3), _split(x, y, seed), {"epochs": 12, "optim.lr": 1e-4, "schedule.name": "step",
                                             "schedule.step_size": 2, "schedule.gamma": 0.02,
                                             "data.batch_size": 16}


def _wd_huge(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return _mlp(64, 10), _split(x, y, seed), {"epochs": 8, "optim.name": "adam", "optim.weight_decay": 1.0}


def _bn_tiny_batch(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    m = nn.Sequential(nn.Linear(13, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return m, _split(x, y, seed), {"epochs": 4, "data.batch_size": 2, "data.drop_last": True}


def _frozen_body(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    for p in list(m.parameters())[:4]:  # meant to freeze a pretrained body; this one was never trained
        p.requires_grad_(False)
    return m, _split(x, y, seed), {"epochs": 6}


def _frozen_first(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    m = nn.Sequential(nn.Linear(13, 4), nn.ReLU(), nn.Linear(4, 3))
    m[0].weight.requires_grad_(False)
    m[0].bias.requires_grad_(False)
    return m, _split(x, y, seed), {"epochs": 10, "data.batch_size": 16}


def _list_layers(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return ListMLP(64, 10), _split(x, y, seed), {"epochs": 6}


def _bn_last_one(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    parts["train"] = (xt[:64 * 20 + 1], yt[:64 * 20 + 1])  # 1281 samples: the last batch holds one
    return m, parts, {"epochs": 3}


def _bn_last_one_wine(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    m = nn.Sequential(nn.Linear(13, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    parts["train"] = (xt[:129], yt[:129])
    return m, parts, {"epochs": 3, "data.batch_size": 16}


def _flatten_mismatch(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return SmallCNN(flat=16 * 8 * 8), _split(x.reshape(-1, 1, 8, 8), y, seed), {"epochs": 2}


def _fixed_view(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return FixedBatchView(), _split(x, y, seed), {"epochs": 2}


CASES: list[BugCase] = [
    # output layer
    BugCase("softmax-before-ce", "output layer", "https://github.com/doronharitan/human_activity_recognition_LRCN/issues/4",
            "nn.Softmax as the last layer, then cross-entropy", _softmax_head, {"probability_outputs"}, "softmax"),
    BugCase("sigmoid-before-ce", "output layer",
            "https://runebook.dev/en/docs/pytorch/generated/torch.nn.functional.sigmoid",
            "sigmoid outputs fed to a loss that expects logits (breast cancer)", _sigmoid_head,
            {"probability_outputs"}, "sigmoid", heldout=True),
    BugCase("cnn-softmax-before-ce", "output layer", "https://github.com/ariecattan/SciCo/issues/2",
            "CNN whose forward ends in softmax before cross-entropy", _cnn_softmax, {"probability_outputs"},
            "softmax", heldout=True),
    BugCase("linear-stack", "output layer", "https://stats.stackexchange.com/questions/384199",
            "three nn.Linear with no activation between them", _linear_stack, {"linear_stack"}, "nonlinearity"),
    BugCase("conv-no-activation", "output layer", "https://stats.stackexchange.com/questions/578762",
            "convolutions with no activation after them", _conv_no_act, {"linear_stack"}, "nonlinearity",
            heldout=True),
    BugCase("head-100-outputs", "output layer", "https://github.com/facebookresearch/ClassyVision/pull/516",
            "last layer outputs 100 values for 10 classes", _head_100, {"setup_error"}, "output 10 values"),
    BugCase("head-1-output-ce", "output layer", "https://github.com/avisheknag17/public_ml_models/issues/2",
            "binary task with a 1-output head and cross-entropy", _head_1_binary, {"setup_error"},
            "output 2 values"),
    # data
    BugCase("x-shuffled-not-y", "data", "https://github.com/udacity/sdc-issue-reports/issues/1326",
            "training inputs shuffled without their labels", _labels_shuffled, {"val_at_chance"}, "labels"),
    BugCase("y-shuffled-cancer", "data", "https://github.com/skorch-dev/skorch/issues/499",
            "training labels permuted independently of the rows (breast cancer)", _labels_shuffled_cancer,
            {"val_at_chance"}, "labels", heldout=True),
    BugCase("raw-features", "data", "https://stats.stackexchange.com/questions/367057",
            "raw breast-cancer features (up to ~4000) in ready-made splits", _raw_cancer, {"unscaled_inputs"},
            "standardise"),
    BugCase("raw-features-regression", "data", "https://datascience.stackexchange.com/questions/31499",
            "regression with features on scales 1 to 5000", _raw_regression, {"unscaled_inputs"}, "standardise",
            heldout=True),
    BugCase("sorted-split", "data", "https://github.com/keras-team/keras/issues/8346",
            "data sorted by label, last 20% taken as validation", _sorted_split, {"split_mismatch"}, "shuffle"),
    BugCase("sorted-split-wine", "data", "https://github.com/zalandoresearch/fashion-mnist/issues/3",
            "wine sorted by class, last quarter as validation", _sorted_split_wine, {"split_mismatch"}, "shuffle",
            heldout=True),
    BugCase("val-from-train", "data", "https://datascience.stackexchange.com/questions/106191",
            "validation rows cut from the training arrays", _dup_val, {"split_leak"}, "duplicate"),
    BugCase("train-includes-val", "data", "https://github.com/thegregyang/LossUpAccUp/issues/1",
            "validation rows concatenated back into train", _dup_train, {"split_leak"}, "duplicate",
            heldout=True),
    BugCase("nan-features", "data", "https://www.codegenes.net/blog/pytorch-cost-result-is-nan",
            "missing values left as NaN in a feature column", _nan_features, {"nonfinite_inputs"}, "nan"),
    BugCase("constant-columns", "data", "https://stats.stackexchange.com/questions/367057",
            "most feature columns zero after a failed join", _constant_columns, {"constant_features"}, "column",
            heldout=True),
    BugCase("one-class", "data", "https://stats.stackexchange.com/questions/384199",
            "a filter left only one class in the labels", _one_class, {"single_class"}, "class"),
    # optimisation
    BugCase("adam-lr-5", "optimisation", "https://github.com/NLeSC/mcfly/issues/43",
            "Adam at lr 5: collapse to chance", _adam_lr5, {"lr_too_high"}, "lower optim.lr"),
    BugCase("sgd-lr-3-dead", "optimisation", "https://github.com/keras-team/keras/issues/3425",
            "SGD at lr 3: ReLUs die, accuracy drops", _sgd_lr_dead, {"lr_too_high"}, "lower optim.lr",
            heldout=True),
    BugCase("loss-above-start", "optimisation", "https://github.com/Herosan163/AgeEstimation/issues/3",
            "Adam lr 0.5: the loss jumps above its start and stays", _loss_above_start,
            {"lr_too_high", "diverging"}, "lower optim.lr"),
    BugCase("sgd-lr-1e-5", "optimisation", "https://chenzhang.org/notes/developer/loss-and-accuracy-get-stuck-in-keras/",
            "plain SGD at lr 1e-5", _lr_tiny_sgd, {"lr_too_low", "not_learning"}, "raise optim.lr"),
    BugCase("adam-lr-1e-6", "optimisation",
            "https://theneuralbase.com/keras/learn/beginner/loss-not-decreasing-learning-rate/",
            "Adam at lr 1e-6", _lr_tiny_adam, {"lr_too_low", "not_learning"}, "raise optim.lr", heldout=True),
    BugCase("rnn-no-clip", "optimisation", "https://taourl.com/read-1885623.html",
            "vanilla RNN, large recurrent weights, clipping off", _rnn_explode,
            {"exploding_gradients", "nan_loss"}, "grad_clip"),
    BugCase("relu-rnn-no-clip", "optimisation", "https://mlkatas.com/kata/53",
            "ReLU RNN over 30 steps, clipping off", _relu_rnn_explode, {"exploding_gradients", "nan_loss"},
            "grad_clip", heldout=True),
    BugCase("step-schedule-to-zero", "optimisation", "https://github.com/sachaguer/jaxili/issues/16",
            "step schedule ×0.01 every epoch: lr ~0 after epoch 2", _step_to_zero, {"lr_decayed_early"},
            "schedule"),
    BugCase("step-schedule-to-zero-wine", "optimisation", "https://github.com/ilaria-manco/music-audio-tagging-pytorch/issues/4",
            "step schedule ×0.02 every 2 epochs on wine", _step_to_zero_wine, {"lr_decayed_early"}, "schedule",
            heldout=True),
    BugCase("weight-decay-1", "optimisation", "https://github.com/ultralytics/yolov3/issues/469",
            "Adam with weight_decay=1.0 (L2 on every weight)", _wd_huge, {"weight_decay_high"},
            "optim.weight_decay"),
    # model state
    BugCase("batchnorm-batch-2", "model state", "https://github.com/nianticlabs/monodepth2/issues/238",
            "BatchNorm trained with batches of 2", _bn_tiny_batch, {"batchnorm_small_batch"}, "batch"),
    BugCase("frozen-body", "model state", "https://github.com/pytorch/pytorch/issues/1266",
            "requires_grad=False left on the body of a model trained from scratch", _frozen_body,
            {"frozen_params"}, "requires_grad"),
    BugCase("frozen-first-layer", "model state", "https://github.com/ultralytics/yolov5/issues/1213",
            "first layer frozen by a leftover requires_grad_(False)", _frozen_first, {"frozen_params"},
            "requires_grad", heldout=True),
    BugCase("layers-in-python-list", "model state", "https://github.com/pytorch/pytorch/issues/7338",
            "hidden layers in a plain list: not registered, never in the optimizer", _list_layers,
            {"unregistered_modules"}, "modulelist"),
    # crashes
    BugCase("batchnorm-last-batch-1", "crash", "https://github.com/fastai/fastai/issues/1352",
            "BatchNorm gets a last batch of one sample", _bn_last_one, {"crash"}, "data.drop_last=true"),
    BugCase("batchnorm-last-batch-1-wine", "crash", "https://github.com/NRCan/geo-deep-learning/issues/113",
            "same on wine with batch 16", _bn_last_one_wine, {"crash"}, "data.drop_last=true", heldout=True),
    BugCase("flatten-size-mismatch", "crash",
            "https://androidkt.com/fix-runtimeerror-mat1-and-mat2-shapes-cannot-be-multiplied/",
            "Linear after conv expects the wrong flattened size", _flatten_mismatch, {"setup_error"}, "'fc'"),
    BugCase("hardcoded-batch-view", "crash", "https://github.com/yassouali/pytorch-segmentation/issues/8",
            "forward reshapes with a hard-coded batch size; the short last batch crashes", _fixed_view,
            {"crash"}, "batch size", heldout=True),
]


# ---- fresh cases: written after the rules were final and run once, never tuned for ----------------------------------

class FunctionalSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(13, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(torch.relu(self.body(x))), dim=1)  # softmax in forward, not a module


def _fresh_functional_softmax(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    return FunctionalSoftmax(), _split(x, y, seed), {"epochs": 15, "data.batch_size": 16}


def _fresh_labels_off_by_one(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    parts = _split(x, y, seed)
    xt, yt = parts["train"]
    parts["train"] = (xt, np.roll(yt, 1))  # labels shifted by one row after a join
    return _mlp(64, 10, 128), parts, {"epochs": 15}


def _fresh_raw_pixels(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return SmallCNN(), _split((x * 255).reshape(-1, 1, 8, 8), y, seed), {"epochs": 6}


def _fresh_sgd_lr50(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    return _mlp(30, 2), _split(x, y, seed), {"epochs": 8, "optim.name": "sgd", "optim.lr": 50.0,
                                             "data.batch_size": 32}


def _fresh_bn2d_batch2(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
    parts = _split(x.reshape(-1, 1, 8, 8), y, seed)
    xt, yt = parts["train"]
    parts["train"] = (xt[:400], yt[:400])
    return m, parts, {"epochs": 3, "data.batch_size": 2}


def _fresh_majority_only(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    keep = np.concatenate([np.flatnonzero(y == 0)[:15], np.flatnonzero(y == 1)])  # ~1:24
    return _mlp(30, 2, 8), _split(x[keep], y[keep], seed), {"epochs": 3, "optim.lr": 1e-4, "data.batch_size": 32}


def _fresh_nan_targets(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    y[np.random.default_rng(seed).random(len(y)) < 0.03] = np.nan  # missing targets kept as NaN
    return _mlp(10, 1), _split(x.astype(np.float32), y.astype(np.float32), seed), {"epochs": 5}


def _fresh_adam_lr_01(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    return m, _split(x, y, seed), {"epochs": 8, "optim.name": "adam", "optim.lr": 0.1}


FRESH: list[BugCase] = [
    BugCase("fresh-functional-softmax", "output layer", "https://github.com/nishnik/Deep-Semantic-Similarity-Model-PyTorch/issues/2",
            "torch.softmax in forward before cross-entropy (wine)", _fresh_functional_softmax,
            {"probability_outputs"}, "softmax"),
    BugCase("fresh-labels-off-by-one", "data", "https://github.com/udacity/sdc-issue-reports/issues/1326",
            "training labels shifted by one row", _fresh_labels_off_by_one, {"val_at_chance"}, "labels"),
    BugCase("fresh-raw-pixels", "data", "https://stats.stackexchange.com/questions/367057",
            "0-255 pixel images given as ready-made splits to a CNN", _fresh_raw_pixels, {"unscaled_inputs"},
            "standardise"),
    BugCase("fresh-sgd-lr-50", "optimisation", "https://github.com/NLeSC/mcfly/issues/43",
            "SGD at lr 50 on breast cancer", _fresh_sgd_lr50, {"lr_too_high", "nan_loss", "diverging"},
            "lower optim.lr"),
    BugCase("fresh-bn2d-batch-2", "model state", "https://github.com/google/automl/issues/881",
            "BatchNorm2d CNN trained with batches of 2", _fresh_bn2d_batch2, {"batchnorm_small_batch"}, "batch"),
    BugCase("fresh-majority-only", "data", "https://errorhandle.ai/validation-accuracy-of-deep-learning-model-is-stuck-at-0-5-whereas-training-accuracy-is-improving",
            "1:24 imbalance, a tiny model that predicts the majority class", _fresh_majority_only,
            {"class_imbalance", "underfitting", "not_learning"}, "f1"),
    BugCase("fresh-nan-targets", "data", "https://www.codegenes.net/blog/pytorch-nan",
            "regression targets with NaN for missing values", _fresh_nan_targets, {"nonfinite_inputs", "nan_loss"},
            "nan"),
    BugCase("fresh-adam-lr-0.1", "optimisation", "https://github.com/keras-team/keras/issues/3425",
            "Adam at lr 0.1 on a 3-layer MLP", _fresh_adam_lr_01, {"lr_too_high", "dead_relu", "oscillating"},
            "lower optim.lr"),
]


# ---- healthy controls -----------------------------------------------------------------------------------------------

def _readme_quickstart(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)  # exactly the README's "Quickstart: Python"
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256, 256], dropout=0.1)
    return model, (x, y), {"epochs": 20, "optim.lr": 1e-3, "schedule.name": "cosine"}


def _tensor_dataset(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    ds = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    return _mlp(64, 10, 128), ds, {"epochs": 5}


def _flat_images(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()  # flattened 8x8 images in [0, 1], not standardised: the digits' blank corners are constant
    return _mlp(64, 10, 128), _split(x, y, seed), {"epochs": 15}


def _cnn_images(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _digits()
    return SmallCNN(), _split(x.reshape(-1, 1, 8, 8), y, seed), {"epochs": 8}


def _imbalanced(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    neg = np.flatnonzero(y == 0)[:45]  # ~1 : 8
    keep = np.concatenate([neg, np.flatnonzero(y == 1)])
    return _mlp(30, 2), _split(x[keep], y[keep], seed), {"epochs": 15, "data.batch_size": 32}


def _regression(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return _mlp(10, 1, 32), (x.astype(np.float32), y.astype(np.float32)), {"epochs": 30}


def _long_run(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _wine()
    return _mlp(13, 3, 32), _split(x, y, seed), {"epochs": 80, "data.batch_size": 16, "schedule.name": "cosine"}


def _bn_healthy(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    m = nn.Sequential(nn.Linear(30, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    return m, _split(x, y, seed), {"epochs": 10, "data.batch_size": 32, "data.drop_last": True}


def _lstm_healthy(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _sequences(seed, t=20)
    return SeqRegressor("lstm"), _split(x, y, seed), {"epochs": 10, "data.batch_size": 32, "optim.lr": 3e-3}


def _wine_arrays(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)  # raw arrays: fit splits and standardises them itself
    return _mlp(13, 3, 32), (x, y), {"epochs": 30, "data.batch_size": 16}


def _cancer_sgd(seed: int) -> tuple[nn.Module, Data, dict[str, Any]]:
    x, y = _cancer()
    return _mlp(30, 2), _split(x, y, seed), {"epochs": 10, "optim.name": "sgd", "optim.lr": 0.05,
                                             "data.batch_size": 32}


CONTROLS: list[Control] = [
    Control("readme-quickstart", "the README's Python quickstart, verbatim", _readme_quickstart),
    Control("tensor-dataset", "digits as a TensorDataset (DataLoader path)", _tensor_dataset),
    Control("flattened-images", "digits flattened to 64 features in [0, 1], own split", _flat_images),
    Control("cnn-images", "user CNN on 8x8 digit images", _cnn_images),
    Control("imbalanced", "breast cancer subsampled to ~1:8, healthy", _imbalanced),
    Control("regression", "diabetes regression from arrays", _regression),
    Control("long-run", "wine, 80 epochs, cosine", _long_run),
    Control("batchnorm", "BatchNorm MLP, batch 32, drop_last", _bn_healthy),
    Control("lstm", "LSTM running-sum regression, clipping on", _lstm_healthy),
    Control("wine-arrays", "wine from raw arrays", _wine_arrays),
    Control("cancer-sgd", "breast cancer, SGD momentum lr 0.05", _cancer_sgd),
]


# ---- running and scoring ------------------------------------------------------------------------------------------

def _bad_fix(fix: str, data: Data, opts: dict[str, Any]) -> bool:
    """A fix naming a config key that would not act on this run as configured."""
    if "data.standardize" in fix and not (isinstance(data, tuple) and len(data) == 2):
        return True  # only (x, y) arrays are standardised by fit; ready-made splits and Datasets are used as given
    if "data.loader=memory" in fix and isinstance(data, torch.utils.data.Dataset):
        return True  # the in-memory path needs tensors
    return False


def run_one(build: Build, seed: int, root: Path, name: str) -> tuple[list[dict[str, Any]], Data, dict[str, Any]]:
    torch.manual_seed(seed)
    model, data, opts = build(seed)
    rd = root / f"{name}-{seed}"
    try:
        return fit(model, data, run_dir=rd, quiet=True, seed=seed, **opts).findings, data, opts
    except TrainwiseError as exc:
        if (rd / "config.yaml").is_file():
            return [f.to_dict() for f in diagnose_run(rd)], data, opts
        return [{"code": "setup_error", "severity": "error", "message": str(exc), "evidence": {},
                 "fixes": [str(exc)]}], data, opts
    except Exception:  # noqa: BLE001 - a crash in the user's model: what does the doctor make of the run directory?
        if (rd / "config.yaml").is_file():
            return [f.to_dict() for f in diagnose_run(rd)], data, opts
        raise


def run_suite(seed: int = 0, part: str = "all", controls: bool = True, only: set[str] | None = None,
              fresh: bool = False) -> dict[str, Any]:
    """Score the bug cases (and the FRESH ones when asked: reported apart, never part of the targets)."""
    rows: list[dict[str, Any]] = []
    ctrl: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for case in [*CASES, *(FRESH if fresh else [])]:
            if (part == "heldout" and not case.heldout) or (part == "dev" and case.heldout) or (
                    only and case.name not in only):
                continue
            t = time.perf_counter()
            findings, data, opts = run_one(case.build, seed, root, case.name)
            raised = [f for f in findings if f["severity"] != "info"]
            codes = [f["code"] for f in raised]
            seen = set(codes) | {SAME[c] for c in codes if c in SAME}
            first_fix = raised[0]["fixes"][0] if raised and raised[0]["fixes"] else ""
            rows.append({"case": case.name, "family": case.family, "fresh": case in FRESH, "url": case.url, "what": case.what,
                         "heldout": case.heldout, "expected": sorted(case.expected), "raised": codes,
                         "recalled": bool(case.expected & seen), "first_fix": first_fix,
                         "first_fix_ok": case.fix.lower() in first_fix.lower(),
                         "bad_fixes": [x for f in raised for x in f["fixes"] if _bad_fix(x, data, opts)],
                         "seconds": round(time.perf_counter() - t, 1)})
        for c in CONTROLS if controls else []:
            if only and c.name not in only:
                continue
            t = time.perf_counter()
            findings, data, opts = run_one(c.build, seed, root, c.name)
            ctrl.append({"control": c.name, "what": c.what,
                         "raised": [f["code"] for f in findings if f["severity"] != "info"],
                         "info": [f["code"] for f in findings if f["severity"] == "info"],
                         "seconds": round(time.perf_counter() - t, 1)})

    def recall(rs: list[dict[str, Any]]) -> float:
        return sum(r["recalled"] for r in rs) / max(1, len(rs))

    new = [r for r in rows if r["fresh"]]
    rows = [r for r in rows if not r["fresh"]]
    held = [r for r in rows if r["heldout"]]
    return {"seed": seed, "cases": rows, "controls": ctrl, "recall": recall(rows), "recall_heldout": recall(held),
            "recall_dev": recall([r for r in rows if not r["heldout"]]), "n": len(rows), "n_heldout": len(held),
            "first_fix_ok": sum(r["first_fix_ok"] for r in rows if r["recalled"]),
            "false_alarms": sum(len(c["raised"]) for c in ctrl), "fresh": new,
            "recall_fresh": recall(new) if new else None}


def to_markdown(res: dict[str, Any], command: str) -> str:
    lines = [f"Seed {res['seed']} (`{command}`; `src/trainwise/checkup/bugsuite.py`).", "",
             f"**Recall {res['recall']:.2f}** on all {res['n']} bug cases, **{res['recall_heldout']:.2f}** on the "
             f"{res['n_heldout']} held-out cases (written and committed before the rules were changed for them), "
             f"{res['recall_dev']:.2f} on the rest. First fix names the cause in {res['first_fix_ok']} of "
             f"{sum(r['recalled'] for r in res['cases'])} recalled cases. **False alarms on the "
             f"{len(res['controls'])} healthy controls: {res['false_alarms']}.**", "",
             "| case | family | held-out | what is broken (source) | expected | raised (warning/error) | recalled "
             "| first fix |", "|---|---|---|---|---|---|---|---|"]
    for r in res["cases"]:
        fix = r["first_fix"].replace("|", "\\|")[:90]
        lines.append(f"| {r['case']} | {r['family']} | {'yes' if r['heldout'] else ''} | [{r['what']}]({r['url']}) "
                     f"| {', '.join(r['expected'])} | {', '.join(r['raised']) or '-'} | "
                     f"{'yes' if r['recalled'] else '**NO**'} | {'✓ ' if r['first_fix_ok'] else '✗ '}{fix} |")
    if res.get("fresh"):
        lines += ["", f"Fresh cases, written after the rules were final and run once without tuning: recall "
                      f"**{res['recall_fresh']:.2f}** ({sum(r['recalled'] for r in res['fresh'])} of "
                      f"{len(res['fresh'])}).", "",
                  "| fresh case | family | what is broken (source) | expected | raised | recalled | first fix |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["fresh"]:
            fix = r["first_fix"].replace("|", "\\|")[:90]
            lines.append(f"| {r['case']} | {r['family']} | [{r['what']}]({r['url']}) | {', '.join(r['expected'])} "
                         f"| {', '.join(r['raised']) or '-'} | {'yes' if r['recalled'] else '**NO**'} | "
                         f"{'✓ ' if r['first_fix_ok'] else '✗ '}{fix} |")
    lines += ["", "| healthy control | what | warnings/errors | info |", "|---|---|---|---|"]
    for c in res["controls"]:
        lines.append(f"| {c['control']} | {c['what']} | {', '.join(c['raised']) or 'none'} | "
                     f"{', '.join(c['info'])} |")
    return "\n".join(lines) + "\n"


PAGE_HEAD = """# The doctor on bugs it was not built against

Every `trainwise train` / `fit` ends with a diagnosis (see the README's doctor section). This page measures it on
failures people actually report: {n} bug cases, each reproducing a public forum, Q&A or issue thread (linked in the
table), run through the public API — `trainwise.fit(model, data, config=...)` with a user-written `nn.Module` and
scikit-learn or synthetic data — plus {nc} healthy controls (the README's Python quickstart verbatim, a
`TensorDataset`, flattened images, a CNN, an imbalanced but healthy classifier, a regression, an 80-epoch run, …).

How it is scored: a case is **recalled** when one of its expected codes is raised at warning or error; its **first
fix** (the first fix of the first warning/error finding) must contain a phrase naming the actual cause; no fix may
name a config key that would not act on the run as configured (`data.standardize` for ready-made splits,
`data.loader=memory` for a Dataset). A control must raise **no** warning or error. A run refused at setup with a
`TrainwiseError` counts as the finding `setup_error` whose fix is the message (it is all the user sees);
`setup_error` and `crash` are one finding seen before step 1 or during training.

**Held-out part.** {nh} cases were written, with their expected codes, and committed (`9d767c5`) before any rule was
changed; their recall is reported apart. Before any rule change the doctor recalled **6 of 36** (0.17; held-out
2 of 15, 0.13) and raised **4 false alarms** on the 11 controls (`constant_features` on the README quickstart and on
flattened images, `data_bound` on a `TensorDataset`, `class_imbalance` on the imbalanced classifier). Caveats, so the
numbers below are not over-read: the held-out cases were written by the same person as the rules and sit in the
same families as the development cases, so they measure variation within known families (other data, other model
shapes, other optimisers), not new kinds of failure; after the first measurement the two held-out-family RNN cases
were changed to orthogonal recurrent weights because the first version did not blow up at all (it did not reproduce
its thread; expected codes unchanged), and one held-out first-fix phrase was corrected from a layer name to
"batch size" (the crash is in the model's own `forward`, not in a layer). The **fresh** cases below were written
after the rules were final and run once, never tuned for; they are the better estimate for unseen bugs.
"""

PAGE_TAIL = """
## Misses and limits (why)

- Fresh cases whose first fix is wrong are listed above with ✗. `fresh-nan-targets`: NaN in *regression targets* is
  not checked before step 1 (only inputs are), so the run's `nan_loss` comes first with "lower optim.lr" — wrong.
  `fresh-majority-only`: `class_imbalance` is information before the run and nothing upgrades it when the model ends
  up predicting the majority class, so `not_learning` with "check the labels" comes first.
- `weight decay on everything` cannot happen through `fit`: trainwise never decays biases and normalisation
  parameters (`train/optim.py`). The case kept in the suite is its reachable cousin, a coupled L2 so strong the model
  cannot fit (`weight_decay_high`).
- `batchnorm_small_batch` and `frozen_params` are read from the configuration and the module tree, not from harm
  observed in the run: freezing on purpose outside `train.freeze_epochs` is reported too.
- Label misalignment (`val_at_chance`) relies on two signals: validation at chance while training accuracy climbs,
  or nearest-neighbour label agreement at the random-pair rate (tabular or flattened inputs, ≤ 2,000 samples; wide
  inputs are randomly projected to 256 dimensions). Labels scrambled in *both* splits of a Dataset input give
  neither signal.
- `data_bound` separates the user's `__getitem__` (timed before step 1) from the DataLoader's own per-sample
  collation only for Dataset inputs; in-memory tensors have no user loading code to time.
- CUDA out-of-memory has a mapping (batch size / accumulation / bf16) but no case: this suite ran on CPU.
"""


def to_page(results: list[dict[str, Any]], command: str) -> str:
    """The whole docs page: method, the seed-by-seed numbers, the first seed's table, limits."""
    first = results[0]
    rows = ["| seed | recall (all) | recall (held-out) | recall (fresh) | first fix right | false alarms |",
            "|---|---|---|---|---|---|"]
    for r in results:
        fresh = f"{r['recall_fresh']:.2f}" if r.get("recall_fresh") is not None else "-"
        fixes = f"{r['first_fix_ok']}/{sum(c['recalled'] for c in r['cases'])}"
        rows.append(f"| {r['seed']} | {r['recall']:.2f} | {r['recall_heldout']:.2f} | {fresh} | {fixes} | "
                    f"{r['false_alarms']} |")
    head = PAGE_HEAD.format(n=first["n"], nc=len(first["controls"]), nh=first["n_heldout"])
    return (head + f"\nGenerated by `{command}`.\n\n" + "\n".join(rows) + "\n\n## Cases (seed "
            f"{first['seed']})\n\n" + to_markdown(first, command) + PAGE_TAIL
            + "\nThe older suite of deliberately broken *preset configurations* is in "
              "[doctor-presets.md](doctor-presets.md) (`python -m trainwise.checkup.suite`).\n")


def main() -> None:
    p = argparse.ArgumentParser(description="Run the doctor on reproduced real-world bugs and healthy controls")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds (the table shows the first)")
    p.add_argument("--part", choices=["all", "heldout", "dev"], default="all")
    p.add_argument("--no-controls", action="store_true")
    p.add_argument("--only", nargs="*", help="run only these cases/controls (by name)")
    p.add_argument("--fresh", action="store_true", help="also run the fresh cases (reported apart)")
    p.add_argument("--out", help="write the whole docs page (method, per-seed numbers, table, limits) here")
    args = p.parse_args()
    command = ("python -m trainwise.checkup.bugsuite" + (" --seed " + " ".join(map(str, args.seed))
                                                       if args.seed != [0] else "")
               + (" --fresh" if args.fresh else "") + (f" --part {args.part}" if args.part != "all" else "")
               + (f" --out {args.out}" if args.out else ""))
    results = []
    for seed in args.seed:
        res = run_suite(seed, args.part, not args.no_controls, set(args.only) if args.only else None, args.fresh)
        results.append(res)
        print(to_markdown(res, command), flush=True)
    if args.out:
        Path(args.out).write_text(to_page(results, command))


if __name__ == "__main__":
    main()

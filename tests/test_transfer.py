"""Transfer learning: model.init_from (partial/strict with a report), head-first freezing, class subsets, few labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import trainwise
from trainwise.build import load_data
from trainwise.config import compose
from trainwise.errors import TrainwiseError
from trainwise.runner import init_weights
from trainwise.train.loop import set_frozen


def mlp(out: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return trainwise.create_model("mlp", (64,), out, hidden=[32])


def test_init_from_loads_matching_tensors_and_reports_the_rest(tmp_path: Path):
    donor = mlp(out=10)  # same backbone, different head width
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = mlp(out=5)
    report = init_weights(model, tmp_path / "w.safetensors")
    assert report["mismatched"] and all("weight" in k or "bias" in k for k in report["mismatched"])
    for k, v in model.state_dict().items():
        if k not in report["mismatched"] and k not in report["missing"]:
            assert torch.equal(v, donor.state_dict()[k])
    with pytest.raises(TrainwiseError, match="init_strict"):
        init_weights(mlp(out=5), tmp_path / "w.safetensors", strict=True)


def test_init_from_a_plain_pt_state_dict(tmp_path: Path):
    donor = mlp()
    torch.save(donor.state_dict(), tmp_path / "w.pt")
    model = mlp()
    torch.nn.init.zeros_(next(model.parameters()))
    assert init_weights(model, tmp_path / "w.pt")["missing"] == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), donor.state_dict().values()))


def test_init_from_nothing_matching_is_a_clear_error(tmp_path: Path):
    save_file({"other.weight": torch.zeros(3, 3)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(TrainwiseError, match="no tensor"):
        init_weights(mlp(), tmp_path / "w.safetensors")
    with pytest.raises(TrainwiseError, match="does not exist"):
        init_weights(mlp(), tmp_path / "missing.safetensors")


def test_freeze_leaves_only_the_head_trainable():
    model = mlp()
    set_frozen(model, True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    last = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    assert trainable == [f"{last}.weight", f"{last}.bias"]
    set_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_epochs_keep_the_backbone_fixed_then_train_it():
    cfg = compose(preset="digits-mlp", overrides=["data.classes=[5,6,7,8,9]", "model.hidden=[32]", "device=cpu"])
    splits = load_data(cfg)
    model = mlp()
    first = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][0]
    w0 = model.get_submodule(first).weight.detach().clone()
    seen: list[bool] = []

    def watch(event: dict) -> None:
        if event.get("epoch_end"):
            seen.append(torch.equal(model.get_submodule(first).weight, w0))

    trainwise.fit(model, splits, config=cfg, run_dir=None, callbacks=[watch],
                  **{"train.epochs": 3, "train.freeze_epochs": 2, "train.early_stopping": False})
    assert seen == [True, True, False]


def test_frozen_epochs_keep_batchnorm_running_statistics():
    cfg = compose(preset="digits-mlp", overrides=["model.hidden=[32]", "model.norm=batch", "device=cpu"])
    splits = load_data(cfg)
    model = trainwise.create_model("mlp", (64,), 10, hidden=[32], norm="batch")
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen: list[bool] = []
    start = bn.running_mean.clone()

    def watch(event: dict) -> None:
        if event.get("epoch_end"):
            seen.append(torch.equal(bn.running_mean, start))

    trainwise.fit(model, splits, config=cfg, run_dir=None, callbacks=[watch],
                  **{"train.epochs": 3, "train.freeze_epochs": 2, "train.early_stopping": False})
    assert seen == [True, True, False]  # frozen body: statistics kept; unfrozen: they move again


def test_class_subset_is_relabelled_and_label_fraction_subsamples_train():
    full = load_data(compose(preset="digits-mlp"))
    cfg = compose(preset="digits-mlp", overrides=["data.classes=[5,6,7,8,9]", "data.label_fraction=0.1"])
    s = load_data(cfg)
    assert s.num_classes == 5 and sorted(set(s.train.y.tolist())) == [0, 1, 2, 3, 4]
    assert s.preprocess.class_names == ["5", "6", "7", "8", "9"]
    assert abs(len(s.train) - 0.1 * len(full.train) / 2) < 0.03 * len(full.train)
    with pytest.raises(TrainwiseError, match="data.classes"):
        load_data(compose(preset="digits-mlp", overrides=["data.classes=[5,42]"]))

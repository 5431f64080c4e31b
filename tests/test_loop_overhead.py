"""The cheaper paths behind fit()'s fixed and per-epoch costs (benchmarks/RESULTS.md, "Loop overhead: reading") give
the same results as the slower ones they replaced: checkpoints hashed from memory, the inline checkpoint writer,
one-merge ``from_kwargs``; plus the AUROC and ``curves.png`` contracts."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import trainwise
import trainwise.train.checkpoint as ck
from trainwise.config import Config, TrainConfig, _merge, _nested, from_kwargs, to_dict, validate
from trainwise.errors import TrainwiseError
from trainwise.run.plots import plot_curves
from trainwise.tasks.classification import Classification

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: one torch thread for this module


# ---- checkpoints ----------------------------------------------------------------------------------------------------


def _data() -> ck.CheckpointData:
    g = torch.Generator().manual_seed(0)
    model = {"w": torch.randn(16, 8, generator=g), "b": torch.zeros(8)}
    opt = {"state.0.exp_avg": torch.randn(16, 8, generator=g), "state.0.step": torch.tensor(3.0)}
    extra = {"rng.torch_cpu": torch.get_rng_state(), "acc.n": torch.tensor(5)}
    return ck.CheckpointData({"model": model, "optimizer": opt, "extra": extra}, {"loop": {"epoch": 2}, "x": [1, 2]})


def test_checkpoint_hashed_from_memory_matches_the_files_and_loads(tmp_path: Path) -> None:
    data = _data()
    folder, files = ck.write_checkpoint(tmp_path, 7, data)
    assert ck.verify_written(folder, files) is None
    assert ck.verify(folder) is None  # full re-hash, as on load
    manifest = json.loads((folder / ck.MANIFEST).read_text())
    assert manifest["format"] == "trainwise-checkpoint-1" and manifest["step"] == 7
    assert list(manifest["files"]) == sorted(p.name for p in folder.iterdir() if p.name != ck.MANIFEST)
    for name, meta in manifest["files"].items():
        blob = (folder / name).read_bytes()
        assert meta == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    back = ck.read_checkpoint(folder)
    assert back.state == data.state
    for stem, tensors in data.tensors.items():
        assert back.tensors[stem].keys() == tensors.keys()
        for k, v in tensors.items():
            assert torch.equal(back.tensors[stem][k], v)
    assert not list(tmp_path.glob(".tmp-*"))


def test_corruption_is_still_caught_on_load(tmp_path: Path) -> None:
    """The post-write check does not re-hash; loading does, so a flipped byte (same size) is never loaded."""
    old, files = ck.write_checkpoint(tmp_path, 1, _data())
    new, _ = ck.write_checkpoint(tmp_path, 2, _data())
    path = new / "model.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert "sha256" in (ck.verify(new) or "")
    with pytest.raises(TrainwiseError, match="sha256"):
        ck.read_checkpoint(new)
    report: list[str] = []
    assert ck.latest_valid(tmp_path, report) == old
    assert report and "step-00000002" in report[0]


def test_post_write_check_catches_a_short_file_and_a_foreign_manifest(tmp_path: Path) -> None:
    folder, files = ck.write_checkpoint(tmp_path, 1, _data())
    assert ck.verify_written(folder, {**files, "state.json": {**files["state.json"], "sha256": "0" * 64}}) \
        == "manifest does not match the files written"
    path = folder / "optimizer.safetensors"
    path.write_bytes(path.read_bytes()[:-3])
    assert "truncated" in (ck.verify_written(folder, files) or "")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data[:600], d.target[:600]


@pytest.mark.parametrize("inline", [True, False])
def test_inline_and_background_writers_write_the_same_checkpoints(tmp_path: Path, inline: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ck, "write_inline", lambda: inline)
    runs = []
    for k in range(2):  # the first with the writer under test, the second with the other one
        if k:
            monkeypatch.setattr(ck, "write_inline", lambda: not inline)
        torch.manual_seed(0)
        model = trainwise.create_model("mlp", (64,), 10, hidden=[16])
        res = trainwise.fit(model, _digits(), run_dir=tmp_path / f"run{k}", epochs=3, device="cpu", precision="32",
                            seed=0, **{"checkpoint.keep": 5, "checkpoint.epoch_min_seconds": 0})
        ckpts = ck.list_checkpoints(res.run_dir / "checkpoints")
        assert len(ckpts) == 3 and all(ck.verify(c) is None for c in ckpts)
        assert (res.run_dir / "best.safetensors").is_file()
        runs.append([ck.read_checkpoint(c) for c in ckpts])
    for a, b in zip(*runs):
        for stem in ("model", "optimizer"):
            for key, v in a.tensors[stem].items():
                assert torch.equal(v, b.tensors[stem][key]), (stem, key)
        loops = [{k: v for k, v in x.state["loop"].items() if k not in ("wall_before", "history")} for x in (a, b)]
        assert loops[0] == loops[1]
        histories = [[{k: v for k, v in h.items() if k != "seconds"} for h in x.state["loop"]["history"]]
                     for x in (a, b)]
        assert histories[0] == histories[1]  # every metric but the wall time


@pytest.mark.parametrize("inline", [True, False])
def test_failed_write_is_reported_by_either_writer(tmp_path: Path, inline: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ck, "write_inline", lambda: inline)
    real, calls = ck.save_file, {"n": 0}

    def flaky(tensors, path):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 4:  # the second checkpoint's first tensor file
            raise OSError(28, "No space left on device")
        return real(tensors, path)

    monkeypatch.setattr(ck, "save_file", flaky)
    model = trainwise.create_model("mlp", (64,), 10, hidden=[16])
    res = trainwise.fit(model, _digits(), run_dir=tmp_path / "run", epochs=3, device="cpu",
                        **{"checkpoint.epoch_min_seconds": 0})
    assert res.summary["checkpoint_failures"] == 1 and res.summary["stopped"] == "completed"
    ckpts = ck.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert ckpts and all(ck.verify(c) is None for c in ckpts)
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))

    monkeypatch.setattr(ck, "save_file", lambda tensors, path: (_ for _ in ()).throw(OSError(28, "disk full")))
    with pytest.raises(TrainwiseError, match="disk full"):
        trainwise.fit(trainwise.create_model("mlp", (64,), 10, hidden=[16]), _digits(), run_dir=tmp_path / "r2",
                      epochs=2, device="cpu", **{"checkpoint.on_error": "stop"})


def test_a_writer_returning_nothing_still_gets_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    monkeypatch.setattr(ck, "save_file", save_file)  # safetensors' own: writes the file, returns None
    folder, files = ck.write_checkpoint(tmp_path, 3, _data())
    assert ck.verify(folder) is None and set(files) == {"extra.safetensors", "model.safetensors",
                                                         "optimizer.safetensors", "state.json"}


# ---- from_kwargs ----------------------------------------------------------------------------------------------------


def _sequential(**options: object) -> object:
    """The previous from_kwargs: one merge per option, on a fresh schema."""
    schema = OmegaConf.structured(Config)
    cfg = schema
    shortcuts = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in options.items():
        key = f"train.{key}" if key in shortcuts else key
        cfg = _merge(cfg, _nested(key, value), schema, f"option {key}")
    validate(cfg)
    return cfg


OPTION_SETS = [
    {"epochs": 10, "seed": 3, "grad_clip": 1.0, "early_stopping": False, "device": "cpu", "precision": "32",
     "data.batch_size": 64, "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
     "schedule": {"name": "constant"}, "checkpoint.every_epoch": False},
    {"optim": {"lr": 0.1}, "optim.name": "sgd", "optim.momentum": 0.5, "faults": {"max_bad_steps": 2}},
    {"optim.lr": 0.1, "optim": {"lr": 0.2}},  # the same key twice: the later option wins
    {"data": {"options": {"a": 1}}, "data.options": {"b": 2}, "optim.group_lr": {"head": 2.0}},
    {"optim": OmegaConf.create({"lr": 0.3}), "optim.name": "sgd"},
]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_from_kwargs_in_one_merge_equals_one_merge_per_option(options: dict) -> None:
    before = copy.deepcopy(options)
    assert to_dict(from_kwargs(**options)) == to_dict(_sequential(**options))
    assert options == before  # the caller's dicts are not modified


@pytest.mark.parametrize("options", [{"train.epoch": 3}, {"optim": {"learning_rate": 0.1}}, {"optim": {"lr": "x"}},
                                     {"epochs": 5, "optim.lr": "fast"}, {"optim": {"lr": "x"}, "optim.lr": 0.1},
                                     {"epochs": 2, "schedule": {"name": "cosin"}}])
def test_from_kwargs_errors_are_the_per_option_ones(options: dict) -> None:
    messages = []
    for build in (from_kwargs, _sequential):
        with pytest.raises(TrainwiseError) as info:
            build(**options)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_from_kwargs_returns_independent_configs() -> None:
    a = from_kwargs()
    a.train.epochs = 99
    OmegaConf.update(a, "model", {"name": "python"}, merge=False)
    b = from_kwargs()
    assert b.train.epochs == TrainConfig().epochs and b.model.name == "mlp"
    assert from_kwargs(epochs=3).train.epochs == 3 and from_kwargs().train.epochs == TrainConfig().epochs


# ---- AUROC ----------------------------------------------------------------------------------------------------------


def test_classification_metrics_keep_auroc_when_every_class_is_present() -> None:
    task = Classification(3)
    out = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [0, 2.0, 0]])
    assert task.metrics(out, torch.tensor([0, 1, 2, 1]))["auroc"] == 1.0
    assert "auroc" not in task.metrics(out, torch.tensor([0, 1, 1, 1]))  # undefined with a class absent


# ---- curves.png -----------------------------------------------------------------------------------------------------


def _colours(path: Path) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (1040, 288)
        return {c for _, c in img.convert("RGB").getcolors(1 << 20)}


@pytest.mark.parametrize("history", [
    [{"epoch": e, "train/loss": 2 / (e + 1), "val/loss": 2.2 / (e + 1), "train/accuracy": e / 10,
      "val/accuracy": e / 11, "lr": 1e-3 * (1 - e / 10)} for e in range(10)],
    [{"epoch": 0, "train/loss": float("nan"), "lr": 3e-4}],  # diverged at once, no val split
    [{"epoch": e, "train/loss": 1e6 / (e + 1), "train/rmse": 1e-7 * (e + 1), "lr": None} for e in range(3)],
    [],
])
def test_curves_png_is_drawn_for_any_history(tmp_path: Path, history: list[dict]) -> None:
    path = tmp_path / "curves.png"
    plot_curves(history, "rmse" if history and "train/rmse" in history[0] else "accuracy", path)
    colours = _colours(path)
    train, val = (31, 119, 180), (255, 127, 14)  # matplotlib's C0 / C1
    assert (train in colours) == bool(history)  # every non-empty history here has a finite train value or lr
    assert (val in colours) == any("val/loss" in h for h in history)
    assert len(colours) > 20  # text and anti-aliased edges, not a blank canvas

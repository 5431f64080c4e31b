"""Configuration: preset → YAML file → key=value overrides, validation with suggestions, round trips."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from trainwise.config import _parse_override, compose, from_kwargs, preset_names, to_dict, to_yaml
from trainwise.errors import TrainwiseError


def test_presets_are_listed_and_load():
    names = preset_names()
    assert {"digits-cnn", "digits-mlp", "iris-mlp", "wine-mlp", "breast-cancer-mlp", "diabetes-regression"} <= set(
        names)
    for name in names:
        cfg = compose(preset=name)
        assert cfg.name == name
        assert "name" in cfg.model


def test_default_preset_is_digits_cnn():
    cfg = compose()
    assert cfg.name == "digits-cnn" and cfg.model.name == "cnn"


def test_precedence_preset_then_yaml_then_overrides(tmp_path):
    base = compose(preset="digits-mlp")
    assert base.optim.lr == 0.001 and base.train.epochs == 30 and base.data.batch_size == 64
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.01\ntrain:\n  epochs: 7\n")
    from_file = compose(f, preset="digits-mlp")
    assert from_file.optim.lr == 0.01 and from_file.train.epochs == 7
    assert from_file.data.batch_size == 64 and from_file.model.hidden == [256, 256]  # the rest from the preset
    both = compose(f, preset="digits-mlp", overrides=["optim.lr=3e-4"])
    assert both.optim.lr == 3e-4 and both.train.epochs == 7
    # a file alone builds on the schema defaults, not on a preset
    alone = compose(f)
    assert alone.name == "run" and alone.optim.lr == 0.01 and alone.schedule.name == "constant"


def test_dotted_overrides_reach_nested_keys():
    cfg = compose(preset="digits-mlp", overrides=["train.epochs=5", "data.batch_size=32", "optim.name=sgd",
                                                  "model.hidden=[8, 4]", "train.grad_clip=null", "seed=3",
                                                  "optim.group_lr={head: 0.1}"])
    assert cfg.train.epochs == 5 and cfg.data.batch_size == 32 and cfg.optim.name == "sgd"
    assert list(cfg.model.hidden) == [8, 4] and cfg.train.grad_clip is None and cfg.seed == 3
    assert dict(cfg.optim.group_lr) == {"head": 0.1}


@pytest.mark.parametrize(("raw", "value"), [("3e-4", 3e-4), ("1E-3", 1e-3), ("0.5", 0.5), ("2", 2), ("true", True),
                                            ("null", None), ("[1, 2]", [1, 2]), ("adamw", "adamw")])
def test_parse_override_values(raw, value):
    key, v = _parse_override(f"optim.x={raw}")
    assert key == "optim.x" and v == value and type(v) is type(value)


def test_scientific_notation_is_a_float():
    cfg = compose(preset="digits-mlp", overrides=["optim.lr=3e-4", "optim.weight_decay=5e-2"])
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 3e-4
    assert cfg.optim.weight_decay == 0.05


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(TrainwiseError, match=r"unknown config key 'optim\.lrr'.*did you mean 'optim\.lr'"):
        compose(preset="digits-mlp", overrides=["optim.lrr=0.1"])
    with pytest.raises(TrainwiseError, match=r"unknown config key 'train\.epoch'.*did you mean 'train\.epochs'"):
        from_kwargs(**{"train.epoch": 3})
    with pytest.raises(TrainwiseError, match="unknown config key"):
        from_kwargs(optim={"learning_rate": 0.1})


def test_unknown_key_in_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  batchsize: 16\n")
    with pytest.raises(TrainwiseError, match=r"'data\.batchsize'.*did you mean 'data\.batch_size'"):
        compose(f)


def test_wrong_type_is_reported():
    with pytest.raises(TrainwiseError, match=r"wrong type for 'train\.epochs'"):
        compose(preset="digits-mlp", overrides=["train.epochs=abc"])
    with pytest.raises(TrainwiseError, match=r"wrong type for 'optim\.lr'"):
        from_kwargs(optim={"lr": "fast"})


@pytest.mark.parametrize("override", ["optim.name=adamx", "train.epochs=0", "optim.lr=-1", "data.val_fraction=0.75",
                                      "data.test_fraction=0.85", "train.label_smoothing=1.0"])
def test_invalid_values_are_rejected(override):
    with pytest.raises(TrainwiseError):
        compose(preset="digits-mlp", overrides=[override])


def test_choice_error_suggests():
    with pytest.raises(TrainwiseError, match="did you mean 'adamw'"):
        compose(preset="digits-mlp", overrides=["optim.name=adamww"])


def test_unknown_preset_suggests():
    with pytest.raises(TrainwiseError, match="did you mean 'digits-mlp'"):
        compose(preset="digit-mlp")


def test_override_without_equals_is_an_error():
    with pytest.raises(TrainwiseError, match="key=value"):
        compose(preset="digits-mlp", overrides=["optim.lr"])


def test_resolved_config_round_trips(tmp_path):
    cfg = compose(preset="digits-cnn", overrides=["optim.lr=3e-4", "train.epochs=3", "model.width=16",
                                                  "train.ema_decay=0.99", "optim.group_lr={head: 0.01}"])
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg))
    again = compose(saved)
    assert to_dict(again) == to_dict(cfg)
    assert OmegaConf.to_yaml(again) == OmegaConf.to_yaml(cfg)


def test_round_trip_of_every_preset(tmp_path):
    for name in preset_names():
        cfg = compose(preset=name)
        saved = tmp_path / f"{name}.yaml"
        saved.write_text(to_yaml(cfg))
        assert to_dict(compose(saved)) == to_dict(cfg), name


def test_model_name_change_in_yaml_replaces_model_arguments(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  name: mlp\n  hidden: [32]\n")
    cfg = compose(f, preset="digits-cnn")
    assert to_dict(cfg)["model"] == {"name": "mlp", "hidden": [32]}  # no cnn width/stages/norm left behind


def test_model_same_name_merges_arguments(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  name: cnn\n  width: 8\n")
    cfg = compose(f, preset="digits-cnn")
    assert cfg.model.width == 8 and cfg.model.norm == "batch"  # kept from the preset


def test_model_name_override_replaces_model_arguments():
    """``model.name=mlp`` on the command line switches model: the cnn's width/stages/norm must not be carried over
    (they are not mlp arguments and would make create_model fail)."""
    cfg = compose(preset="digits-cnn", overrides=["model.name=mlp"])
    assert to_dict(cfg)["model"] == {"name": "mlp"}
    cfg = compose(preset="digits-cnn", overrides=["model.name=mlp", "model.hidden=[16]"])
    assert to_dict(cfg)["model"] == {"name": "mlp", "hidden": [16]}


def test_model_override_of_same_model_keeps_the_others():
    cfg = compose(preset="digits-cnn", overrides=["model.name=cnn", "model.width=8"])
    assert cfg.model.width == 8 and cfg.model.stages == 2


def test_from_kwargs_forms_agree():
    a = from_kwargs(epochs=5, optim={"lr": 1e-2}, **{"data.batch_size": 16})
    b = from_kwargs(**{"train.epochs": 5, "optim.lr": 1e-2, "data.batch_size": 16})
    assert to_dict(a) == to_dict(b)
    assert a.train.epochs == 5 and a.optim.lr == 1e-2 and a.data.batch_size == 16
    assert a.optim.name == "adamw"  # untouched keys keep their defaults


@pytest.mark.parametrize("options", [{"precision": "fp16"}, {"schedule": {"name": "cosin"}}, {"optim.lr": -1.0},
                                     {"accumulate": 0}, {"data.batch_size": 0}, {"optim.name": "adamx"}])
def test_python_api_options_are_validated_like_overrides(options):
    """``fit(..., **options)`` goes through ``from_kwargs``: a bad value must be a TrainwiseError naming the key
    before any work starts (not a silent fp32 run for ``precision=fp16``, nor a raw ValueError deep in the loop)."""
    key = next(iter(options))
    with pytest.raises(TrainwiseError, match=key.split(".")[-1]):
        from_kwargs(**options)


def test_from_kwargs_takes_numpy_scalars():
    """An lr drawn with numpy (np.float64) or a width from np.arange must work like the Python number: OmegaConf
    alone refuses numpy types ('Value 'float64' is not a supported primitive type')."""
    import numpy as np

    cfg = from_kwargs(**{"optim.lr": 10 ** np.float64(-2.5), "data.batch_size": np.int64(32)},
                      optim={"beta1": np.float32(0.5)}, **{"data.classes": [np.int64(3), np.int64(5)]})
    assert cfg.optim.lr == 10 ** -2.5 and type(cfg.optim.lr) is float
    assert cfg.data.batch_size == 32 and cfg.optim.beta1 == 0.5 and list(cfg.data.classes) == [3, 5]
    with pytest.raises(TrainwiseError):
        from_kwargs(**{"optim.lr": np.array([1e-3, 1e-2])})  # an array is not a number

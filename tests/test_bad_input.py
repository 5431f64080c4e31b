"""User mistakes: each exits 2 with exactly one ``error: …`` line on stderr, no traceback, and touches nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from trainwise import TrainwiseError


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, stderr exactly one non-empty ``error: …`` line that contains every needle, no traceback."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and proc.stderr.endswith("\n"), f"stderr is not one line: {proc.stderr!r}"
    line = lines[0]
    assert line.startswith("error: ") and line[len("error: "):].strip(), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


@pytest.fixture
def untouched(tmp_path, snap):
    """Snapshot ``tmp_path`` (the working directory) now; ``untouched()`` then asserts nothing in it changed,
    appeared or vanished (a failed command must not leave a half-made run directory either)."""
    before = {}

    def take() -> None:
        before.update(snap(tmp_path))

    def check() -> None:
        assert snap(tmp_path) == before

    check.take = take  # type: ignore[attr-defined]
    return check


def _train_error(cli, untouched, *args: str, needles: tuple[str, ...] = (), env: dict[str, str] | None = None) -> str:
    untouched.take()
    proc = cli("train", *args, "train.epochs=1", "--run-dir", "R", "--quiet", env=env)
    line = assert_user_error(proc, *needles)
    untouched()
    return line


def _write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x=x, y=y)


def _tabular(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


NPZ = ("--preset", "wine-mlp", "data.source=npz", "data.path=d.npz")


# ---- config files -------------------------------------------------------------------------------------------------

def test_missing_config_file(cli, untouched):
    _train_error(cli, untouched, "nope.yaml", needles=("nope.yaml",))


def test_malformed_yaml(cli, tmp_path, untouched):
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    _train_error(cli, untouched, "bad.yaml", needles=("bad.yaml",))


def test_undecodable_config_file(cli, tmp_path, untouched):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81garbage: [\x00\n")
    _train_error(cli, untouched, "bin.yaml", needles=("bin.yaml",))


def test_yaml_list_instead_of_mapping(cli, tmp_path, untouched):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    _train_error(cli, untouched, "list.yaml", needles=("mapping",))


def test_unknown_nested_key_in_yaml(cli, tmp_path, untouched):
    (tmp_path / "c.yaml").write_text("train:\n  epohcs: 3\n")
    _train_error(cli, untouched, "c.yaml", needles=("train.epohcs", "train.epochs"))


# ---- overrides ----------------------------------------------------------------------------------------------------

def test_unknown_top_level_key_suggests(cli, untouched):
    _train_error(cli, untouched, "optim.lrr=1", needles=("optim.lrr", "optim.lr'"))


def test_wrong_type(cli, untouched):
    _train_error(cli, untouched, "train.epochs=abc", needles=("train.epochs",))


@pytest.mark.parametrize(("override", "key"), [
    ("train.epochs=0", "train.epochs"),
    ("optim.lr=-1", "optim.lr"),
    ("data.val_fraction=1.5", "data.val_fraction"),
])
def test_out_of_range(cli, untouched, override, key):
    untouched.take()
    proc = cli("train", override, "--run-dir", "R", "--quiet")
    assert_user_error(proc, key)
    untouched()


def test_bad_choice(cli, untouched):
    _train_error(cli, untouched, "precision=fp8", needles=("precision", "fp8"))


def test_unknown_preset(cli, untouched):
    _train_error(cli, untouched, "--preset", "digits-cnnn", needles=("digits-cnnn", "digits-cnn'"))


def test_unknown_model(cli, untouched):
    _train_error(cli, untouched, "model.name=resnet", needles=("resnet",))


def test_unknown_model_argument_suggests(cli, untouched):
    _train_error(cli, untouched, "model.widht=3", needles=("widht", "'width'"))


def test_unknown_data_source(cli, untouched):
    _train_error(cli, untouched, "data.source=mnist", needles=("mnist",))


def test_override_without_key(cli, untouched):
    _train_error(cli, untouched, "=3", needles=("=3",))


def test_bare_word_is_read_as_config_path(cli, untouched):
    # 'train.epochs' without '=...' is taken as the CONFIG path, which does not exist.
    untouched.take()
    proc = cli("train", "--preset", "digits-mlp", "train.epochs", "--run-dir", "R", "--quiet")
    assert_user_error(proc, "train.epochs")
    untouched()


def test_second_bare_word_is_rejected(cli, tmp_path, untouched):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 1\n")
    untouched.take()
    proc = cli("train", "c.yaml", "optim.lr", "3e-4", "--run-dir", "R", "--quiet")
    assert_user_error(proc, "optim.lr")
    untouched()


def test_unknown_option(cli, untouched):
    untouched.take()
    assert_user_error(cli("train", "--epochs", "3"), "--epochs")
    untouched()


# ---- data ---------------------------------------------------------------------------------------------------------

def test_csv_without_target_column(cli, tmp_path, untouched):
    (tmp_path / "d.csv").write_text("a,b,c\n1,2,0\n3,4,1\n5,6,0\n")
    _train_error(cli, untouched, "--preset", "wine-mlp", "data.source=csv", "data.path=d.csv", "data.target=label",
                 needles=("label",))


def test_csv_file_missing(cli, untouched):
    _train_error(cli, untouched, "--preset", "wine-mlp", "data.source=csv", "data.path=missing.csv",
                 "data.target=label", needles=("missing.csv",))


def test_csv_source_without_path(cli, untouched):
    _train_error(cli, untouched, "--preset", "wine-mlp", "data.source=csv", "data.target=label",
                 needles=("data.path",))


def test_labels_outside_range(cli, tmp_path, untouched):
    x, y = _tabular()
    y[5] = -1
    _write_npz(tmp_path / "d.npz", x, y)
    _train_error(cli, untouched, *NPZ, needles=("-1",))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(cli, tmp_path, untouched, bad):
    x, y = _tabular()
    x[3, 1] = bad
    _write_npz(tmp_path / "d.npz", x, y)
    _train_error(cli, untouched, *NPZ, needles=("NaN or inf",))


def test_empty_npz(cli, tmp_path, untouched):
    _write_npz(tmp_path / "d.npz", np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
    _train_error(cli, untouched, *NPZ, needles=("empty",))


def test_empty_csv_header_only(cli, tmp_path, untouched):
    (tmp_path / "d.csv").write_text("a,b,label\n")
    _train_error(cli, untouched, "--preset", "wine-mlp", "data.source=csv", "data.path=d.csv", "data.target=label",
                 needles=("empty",))


def test_split_smaller_than_one_batch_with_drop_last(cli, untouched):
    _train_error(cli, untouched, "--preset", "digits-mlp", "data.drop_last=true", "data.batch_size=5000",
                 needles=("data.drop_last",))


def test_cutmix_on_tabular_data(cli, untouched):
    _train_error(cli, untouched, "--preset", "wine-mlp", "train.cutmix_alpha=1.0", needles=("cutmix",))


def test_model_cannot_take_the_data(cli, tmp_path, untouched):
    """A user's module:function yields tabular (N, 4) features; the default preset's CNN cannot take them."""
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n\n\ndef load():\n    r = np.random.default_rng(0)\n"
        "    return r.normal(size=(60, 4)).astype('float32'), r.integers(0, 3, 60)\n")
    _train_error(cli, untouched, "data.source=mydata:load", "--allow-code", needles=("shape",),
                 env={"PYTHONPATH": str(tmp_path)})


def test_model_output_width_wrong_for_task(tmp_path):
    x, y = _tabular()  # 3 classes
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainwiseError, match="output"):
        trainwise.fit(model, (x, y), run_dir=tmp_path / "R", epochs=1)
    assert not (tmp_path / "R").exists()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---- run directories and predictions ------------------------------------------------------------------------------

def test_run_dir_exists_and_is_not_empty(cli, tmp_path, untouched):
    (tmp_path / "R").mkdir()
    (tmp_path / "R" / "notes.txt").write_text("keep me\n")
    (tmp_path / "R" / "summary.json").write_text("{}\n")
    untouched.take()
    proc = cli("train", "--preset", "digits-mlp", "train.epochs=1", "--run-dir", "R", "--quiet")
    assert_user_error(proc, "'R'", "already exists")
    untouched()
    assert (tmp_path / "R" / "notes.txt").read_text() == "keep me\n"


def test_run_dir_is_a_file(cli, tmp_path, untouched):
    (tmp_path / "R").write_text("not a directory\n")
    untouched.take()
    proc = cli("train", "--preset", "digits-mlp", "train.epochs=1", "--run-dir", "R", "--quiet")
    assert_user_error(proc, "'R'")
    untouched()


def test_predict_output_exists(cli, tmp_path, digits_run, snap, untouched):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 64)))
    (tmp_path / "in.predictions.csv").write_text("precious\n")
    (tmp_path / "other.csv").write_text("also precious\n")
    run_before = snap(digits_run)
    untouched.take()
    assert_user_error(cli("predict", digits_run, "in.npz"), "in.predictions.csv", "--force")
    assert_user_error(cli("predict", digits_run, "in.npz", "--out", "other.csv"), "other.csv")
    untouched()
    assert snap(digits_run) == run_before


def test_predict_on_non_run_directory(cli, tmp_path, untouched):
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "data.txt").write_text("hello\n")
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 64)))
    untouched.take()
    assert_user_error(cli("predict", "notarun", "in.npz"), "notarun")
    untouched()


def test_predict_input_with_wrong_feature_count(cli, tmp_path, digits_run, untouched):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 5)))  # the run was trained on 64 features
    untouched.take()
    assert_user_error(cli("predict", digits_run, "in.npz"))
    untouched()


def test_predict_corrupt_npz_input(cli, tmp_path, digits_run, untouched):
    (tmp_path / "in.npz").write_text("this is not an npz archive\n")
    untouched.take()
    assert_user_error(cli("predict", digits_run, "in.npz"), "in.npz")
    untouched()


def test_predict_missing_input(cli, digits_run, untouched):
    untouched.take()
    assert_user_error(cli("predict", digits_run, "nothere.npz"), "nothere.npz")
    untouched()


def test_evaluate_missing_dir(cli, untouched):
    untouched.take()
    assert_user_error(cli("evaluate", "no-such-run"), "no-such-run")
    untouched()


# ---- paradigms, synthetic data, transfer ----------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "needles"), [
    (["paradigm.name=vae"], ("vae", "model.name=vae")),  # a classifier cannot be a VAE
    (["paradigm.name=gann"], ("paradigm.name", "gan")),
    (["data.source=adding", "data.options.lenght=5"], ("lenght", "length")),
    (["data.options.length=5"], ("data.options",)),  # options on a non-synthetic source
    (["data.holdout_class=42", "paradigm.name=autoencoder", "model.name=autoencoder"], ("holdout_class=42",)),
    (["data.classes=[1]"], ("data.classes",)),
    (["model.init_from=nowhere.safetensors"], ("nowhere.safetensors",)),
    (["paradigm.name=distill"], ("distill.teacher",)),
])
def test_paradigm_and_data_mistakes(cli, untouched, overrides, needles):
    _train_error(cli, untouched, *overrides, needles=needles)


@pytest.mark.parametrize("command", [["lr-find", "--preset", "digits-vae"],
                                     ["doctor", "overfit-batch", "--preset", "digits-gan"]])
def test_diagnostic_experiments_refuse_non_supervised_configs(cli, untouched, command):
    assert_user_error(cli(*command), "supports supervised configs")


def test_misspelt_monitor_is_one_line_not_a_silent_fallback(cli, tmp_path):
    # Checked against the task's metric names before any work (issue 14): no run directory is created. Before any
    # check, the train loss silently stood in for an unknown metric.
    proc = cli("train", "--preset", "wine-mlp", "train.epochs=2", "train.monitor=val/acc", "--run-dir", "R", "--quiet")
    assert_user_error(proc, "train.monitor=val/acc", "val/accuracy")
    assert not (tmp_path / "R").exists()


def test_val_metric_without_val_split_selects_by_train_loss(tmp_path):
    import json

    from trainwise.config import compose
    from trainwise.runner import train

    cfg = compose(preset="wine-mlp", overrides=["train.epochs=2", "train.monitor=val/auroc", "data.val_fraction=0"])
    r = train(cfg, run_dir=tmp_path / "r", quiet=True)
    assert r.summary["monitor"] == "train/loss"  # not train/auroc (never reported) with max-is-best inverted
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["best_epoch"] is not None

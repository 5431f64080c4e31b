"""Memory-mapped datasets (data.source=npy and images) beyond training: row selection (data.classes,
data.holdout_class, data.label_fraction), the commands on finished runs (lr-find, report, quantize), and the decode
progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from trainwise.build import load_data
from trainwise.config import compose
from trainwise.errors import TrainwiseError


def _npy(d: Path, n: int = 400, features: int = 6, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int64)
    x = rng.normal(size=(n, features)).astype(np.float32)
    x[:, :classes] += 2 * np.eye(classes, dtype=np.float32)[y]  # learnable: one feature per class
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return x, y


def _folder(root: Path, per_class: int = 24, classes: int = 4) -> None:
    """Real PNG files: digits 0..classes-1, ``per_class`` of each, in DIR/digit_<k>/."""
    from sklearn.datasets import load_digits

    d = load_digits()
    for k in range(classes):
        (root / f"digit_{k}").mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(d.target == k)[:per_class]:
            Image.fromarray(np.round(d.images[i] * 255 / 16).astype(np.uint8), mode="L").save(
                root / f"digit_{k}" / f"{i}.png")


def _rows(part: Any) -> torch.Tensor:
    return part.x[:] if part is not None else torch.zeros(0)


# ---- MemmapSplit.x --------------------------------------------------------------------------------------------------

def test_rows_of_a_memmap_split_come_back_in_the_order_asked_for(tmp_path: Path) -> None:
    x, y = _npy(tmp_path / "d")
    s = load_data(compose(preset="wine-mlp", overrides=["data.source=npy", f"data.path={tmp_path / 'd'}"]))
    train = s.train
    rows = train.rows  # type: ignore[attr-defined]
    assert not (np.diff(rows) > 0).all()  # the split's rows are shuffled: a sorted read must be put back in order
    positions = [7, 0, 3, 3, 150]
    got = train.x[positions]
    want = s.preprocess.apply(x[rows[positions]])
    assert torch.equal(got, torch.from_numpy(want))
    assert torch.equal(train.x[:5], train.x[[0, 1, 2, 3, 4]])
    assert train.y[positions].tolist() == y[rows[positions]].tolist()  # x and y line up (quantize's accuracy)


# ---- data.classes / holdout_class / label_fraction ----------------------------------------------------------------

SELECTIONS = [["data.classes=[2,0]"], ["data.holdout_class=1"], ["data.label_fraction=0.5"],
              ["data.classes=[3,1,2]", "data.holdout_class=0", "data.label_fraction=0.6"]]


@pytest.mark.parametrize("pick", SELECTIONS, ids=lambda p: " ".join(p))
def test_npy_selection_is_the_in_memory_selection(tmp_path: Path, pick: list[str]) -> None:
    """The same arrays as data.source=npz (in memory) and data.source=npy (memory-mapped, selected by row index) give
    the same splits, samples, labels, class names and statistics."""
    x, y = _npy(tmp_path / "d")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    base = ["data.val_fraction=0.15", "data.test_fraction=0.2"]
    mem = load_data(compose(preset="wine-mlp", overrides=["data.source=npz", f"data.path={tmp_path / 'd.npz'}",
                                                          *base, *pick]))
    mapped = load_data(compose(preset="wine-mlp", overrides=["data.source=npy", f"data.path={tmp_path / 'd'}",
                                                             *base, *pick]))
    assert mapped.num_classes == mem.num_classes
    assert mapped.preprocess.class_names == mem.preprocess.class_names
    np.testing.assert_allclose(mapped.preprocess.mean, mem.preprocess.mean, rtol=1e-6)
    np.testing.assert_allclose(mapped.preprocess.std, mem.preprocess.std, rtol=1e-6)
    for name in ("train", "val", "test"):
        a, b = getattr(mem, name), getattr(mapped, name)
        assert len(a) == len(b), name
        assert torch.equal(a.y, b.y), name
        torch.testing.assert_close(_rows(b), a.x, rtol=1e-5, atol=1e-5)
    if "data.holdout_class=1" in pick:
        assert int(mapped.test.y.sum()) == int((y == 1).sum()) and int(mapped.train.y.sum()) == 0  # type: ignore[union-attr]


def test_npy_given_test_file_holds_the_anomalies_and_is_selected_too(tmp_path: Path) -> None:
    x, y = _npy(tmp_path / "d")
    xt, yt = _npy(tmp_path / "t", n=80, seed=1)
    np.save(tmp_path / "d" / "x_test.npy", xt)
    np.save(tmp_path / "d" / "y_test.npy", yt)
    s = load_data(compose(preset="wine-mlp", overrides=["data.source=npy", f"data.path={tmp_path / 'd'}",
                                                        "data.classes=[3,1,2]", "data.holdout_class=0"]))
    assert s.preprocess.class_names == ["normal", "class 0 (held out)"]
    # test: the test file's rows of classes 3, 1, 2; the anomalies are its class-3 rows (new label 0)
    assert len(s.test) == int(np.isin(yt, [1, 2, 3]).sum())  # type: ignore[arg-type]
    assert int(s.test.y.sum()) == int((yt == 3).sum())  # type: ignore[union-attr]
    assert len(s.train) + len(s.val) == int(np.isin(y, [1, 2]).sum())  # type: ignore[arg-type]


def test_image_folder_selection(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    common = ["data.source=images", f"data.path={tmp_path / 'imgs'}", f"data.cache_dir={tmp_path / 'cache'}",
              "data.val_fraction=0.125", "data.test_fraction=0.25"]
    full = load_data(compose(preset="digits-images", overrides=common))
    assert full.report["cache_hit"] is False and len(full.train) == 60  # type: ignore[arg-type]

    s = load_data(compose(preset="digits-images", overrides=[*common, "data.classes=[3,1]"]))
    assert s.num_classes == 2 and s.preprocess.class_names == ["digit_3", "digit_1"]
    assert len(s.train) + len(s.val) + len(s.test) == 48  # type: ignore[arg-type]
    assert s.report["cache_hit"]  # the same cache: selection never re-decodes
    files = json.loads(Path(s.report["cache"]).with_suffix(".json").read_text())["files"]
    for part in (s.train, s.val, s.test):  # label 0 is digit_3's folder, label 1 digit_1's
        for row, label in zip(part.rows, part.y.tolist()):  # type: ignore[union-attr]
            assert files[row].startswith(("digit_3/", "digit_1/")[label])

    ae = load_data(compose(preset="digits-images", overrides=[*common, "data.holdout_class=2"]))
    assert int(ae.train.y.sum()) == 0 and int(ae.val.y.sum()) == 0  # type: ignore[union-attr]
    assert int(ae.test.y.sum()) == 24 and ae.preprocess.class_names == ["normal", "class 2 (held out)"]  # type: ignore[union-attr]
    normal = np.concatenate([ae.train.rows, ae.val.rows])  # type: ignore[union-attr]
    assert not any(files[r].startswith("digit_2/") for r in normal)
    assert ae.preprocess.mean != full.preprocess.mean  # statistics from the normal training images only

    few = load_data(compose(preset="digits-images", overrides=[*common, "data.label_fraction=0.5"]))
    assert len(few.train) == 30 and sorted(np.bincount(few.train.y.numpy()).tolist()) == [7, 7, 8, 8]
    assert few.preprocess.mean == full.preprocess.mean and len(few.test) == len(full.test)  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "needles"), [
    (["data.classes=[0,7]"], ("data.classes=[0, 7]", "0=digit_0")),
    (["data.holdout_class=9"], ("data.holdout_class=9",)),
    (["data.holdout_class=1", "data.test_fraction=0"], ("test split",)),
    (["data.label_fraction=0.01"], ("data.label_fraction=0.01",)),
])
def test_image_folder_selection_refusals(tmp_path: Path, overrides: list[str], needles: tuple[str, ...]) -> None:
    _folder(tmp_path / "imgs", per_class=8)
    with pytest.raises(TrainwiseError) as err:
        load_data(compose(preset="digits-images", overrides=["data.source=images", f"data.path={tmp_path / 'imgs'}",
                                                             f"data.cache_dir={tmp_path / 'cache'}", *overrides]))
    for needle in needles:
        assert needle in str(err.value), str(err.value)


# ---- lr-find, report, quantize on npy and images runs ---------------------------------------------------------------

@pytest.fixture(scope="module")
def mapped_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished 2-epoch run per memory-mapped source: tabular npy (mlp) and an image folder (cnn)."""
    from trainwise.runner import train

    root = tmp_path_factory.mktemp("mapped")
    _npy(root / "npyd")
    _folder(root / "imgs")
    cfgs = {"npy": compose(preset="wine-mlp", overrides=["data.source=npy", f"data.path={root / 'npyd'}",
                                                         "train.epochs=2"]),
            "images": compose(preset="digits-images", overrides=[f"data.path={root / 'imgs'}", "train.epochs=2",
                                                                 f"data.cache_dir={root / 'cache'}", "data.augment=none",
                                                                 "model.width=8"])}
    with torch.random.fork_rng():
        return {k: Path(train(cfg, run_dir=root / k, quiet=True).run_dir) for k, cfg in cfgs.items()}  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["npy", "images"])
def test_lr_find_report_and_quantize_on_mapped_runs(mapped_runs: dict[str, Path], source: str,
                                                    tmp_path: Path) -> None:
    from trainwise.checkup.lr_find import lr_find
    from trainwise.checkup.report import write_report
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.quantize import quantize_run

    rd = mapped_runs[source]
    summary = json.loads((rd / "summary.json").read_text())
    with torch.random.fork_rng():
        found = lr_find(open_run(rd).cfg, tmp_path / "lr", start_lr=1e-4, end_lr=3.0, steps=30)  # the run's own config, data and model
    assert 1e-7 < found["suggested_lr"] < 10 and (tmp_path / "lr" / "lr_find.json").is_file()

    html = write_report(rd, tmp_path / "report.html").read_text()
    assert "predictions not available" not in html
    assert f"accuracy from the matrix <b>{summary['test/accuracy']:.4f}</b>" in html  # the test split, rebuilt

    q = quantize_run(open_run(rd), "dynamic" if source == "npy" else "static", repeats=1, calibration=64)
    # the fp32 model on the rebuilt test split scores what training reported: rows and labels line up
    assert q["fp32"]["accuracy"] == pytest.approx(100 * summary["test/accuracy"], abs=1e-4)
    assert q["split"] == "test" and (rd / "quantized" / "quantize.json").is_file()


# ---- decode progress bar --------------------------------------------------------------------------------------------

def test_decoding_shows_a_progress_bar_with_its_total_on_a_terminal_only(tmp_path: Path, monkeypatch: Any,
                                                                         capsys: Any) -> None:
    from trainwise.data.images import load_images

    _folder(tmp_path / "imgs", per_class=5)
    kw: dict[str, Any] = dict(seed=0, val_fraction=0.0, test_fraction=0.0, image_size=8, channels=1, quiet=False)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: stderr counts as a terminal
    load_images(str(tmp_path / "imgs"), cache_dir=str(tmp_path / "c1"), **kw)
    err = capsys.readouterr().err
    assert "decoding 20 images" in err and "20/20" in err
    monkeypatch.setenv("TTY_COMPATIBLE", "0")  # not a terminal (a log file, CI): nothing at all
    load_images(str(tmp_path / "imgs"), cache_dir=str(tmp_path / "c2"), **kw)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    load_images(str(tmp_path / "imgs"), cache_dir=str(tmp_path / "c3"), **{**kw, "quiet": True})
    assert capsys.readouterr().err == ""


def test_train_quiet_reaches_the_decode_bar(tmp_path: Path, monkeypatch: Any) -> None:
    """`trainwise train --quiet` on an image folder: the quiet flag reaches the decoder (no bar on a terminal)."""
    import trainwise.build as build
    from trainwise import runner

    seen: list[bool] = []

    def stop(*args: Any, quiet: bool = False, **kwargs: Any) -> Any:
        seen.append(quiet)
        raise TrainwiseError("stop here")

    monkeypatch.setattr(build, "load_images", stop)
    _folder(tmp_path / "imgs", per_class=5)
    cfg = compose(preset="digits-images", overrides=[f"data.path={tmp_path / 'imgs'}"])
    for quiet in (True, False):
        with pytest.raises(TrainwiseError, match="stop here"):
            runner.train(cfg, run_dir=None, quiet=quiet)
    assert seen == [True, False]

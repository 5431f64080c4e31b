"""data.source=images: an image folder of mixed formats and sizes, decoded once into a memory-mapped cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_error_line, kill_after_checkpoints, serving
from trainwise.data.images import load_images
from trainwise.data_cmd import write_digits_png
from trainwise.errors import TrainwiseError

PY = sys.executable


def make_folder(root: Path, n: int = 240) -> dict[str, int]:
    """Digits as real files of five formats and several sizes/modes, plus one corrupt, one empty, one non-image."""
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, y) in enumerate(zip(d.images[:n], d.target[:n])):
        if y > 3:  # four classes keep the test small
            continue
        folder = root / f"class_{y}"
        folder.mkdir(parents=True, exist_ok=True)
        a = Image.fromarray(np.round(img * 255 / 16).astype(np.uint8), mode="L")
        kind = i % 5
        if kind == 0:
            a.convert("RGB").resize((16, 16)).save(folder / f"{i}.jpg", quality=95)
        elif kind == 1:
            a.convert("RGBA").resize((12, 12)).save(folder / f"{i}.webp")
        elif kind == 2:
            a.convert("P").save(folder / f"{i}.gif")
        elif kind == 3:
            a.resize((10, 8)).save(folder / f"{i}.bmp")  # not square: resized shorter side, centre-cropped
        else:
            a.save(folder / f"{i}.png")
    (root / "class_0" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (root / "class_1" / "zero.jpg").write_bytes(b"")
    (root / "class_2" / "README.txt").write_text("not an image\n")
    return {"bad": 2, "ignored": 1}


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, TRAINWISE_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


ARGS = ["--preset", "digits-images", "data.path=imgs", "train.epochs=6", "checkpoint.every_steps=4", "data.batch_size=16",
        "data.num_workers=2", "train.patience=100", "data.image_size=8"]


@pytest.mark.slow
def test_image_folder_trains_reports_is_killed_resumes_bit_exactly_and_predicts(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    env = _env(tmp_path / "cache")
    ref = subprocess.run([PY, "-m", "trainwise", "train", *ARGS, "--run-dir", "ref", "--quiet"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert "skipped 2 unreadable image file(s)" in ref.stderr
    report = json.loads((tmp_path / "ref" / "data_report.json").read_text())
    assert sorted(Path(b["file"]).name for b in report["bad_files"]) == ["truncated.png", "zero.jpg"]
    assert report["ignored_files"] == 1 and report["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert report["images"] == sum(report["per_split"].values()) and not report["cache_hit"]

    run = tmp_path / "killed"  # the cache exists now: this run and its resume read it (cache_hit)
    kill_after_checkpoints(["train", *ARGS, "--run-dir", "killed", "--quiet"], tmp_path, run, env)
    resumed = subprocess.run([PY, "-m", "trainwise", "resume", "killed", "--quiet"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "ref" / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert (tmp_path / "ref" / "final.safetensors").read_bytes() == (run / "final.safetensors").read_bytes()
    assert json.loads((run / "data_report.json").read_text())["cache_hit"]

    for suffix in ("png", "jpg", "webp"):  # raw files, decoded exactly as in training
        src = next(p for p in sorted((tmp_path / "imgs").rglob(f"*.{suffix}")) if p.stem.isdigit())
        pred = subprocess.run([PY, "-m", "trainwise", "predict", "ref", str(src), "--out", f"{suffix}.csv"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert pred.returncode == 0, pred.stderr
        assert (tmp_path / f"{suffix}.csv").read_text().splitlines()[1].split(",")[0].startswith("class_")


def test_cache_is_keyed_by_files_and_a_half_written_cache_is_never_used(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", n=120)
    cache = tmp_path / "cache"
    kw = dict(seed=0, val_fraction=0.1, test_fraction=0.2, image_size=8, channels=1, cache_dir=str(cache))
    splits, rep = load_images(str(tmp_path / "imgs"), **kw)
    assert not rep.cache_hit and Path(rep.cache).is_file()
    x0, y0 = splits.train.__getitems__([0, 1, 2])
    assert x0.shape == (3, 1, 8, 8) and x0.dtype.is_floating_point
    again, rep2 = load_images(str(tmp_path / "imgs"), **kw)
    assert rep2.cache_hit and rep2.cache == rep.cache
    assert (again.train.__getitems__([0, 1, 2])[0] == x0).all()

    png = next((tmp_path / "imgs").rglob("*.png"))  # change one file: a different key, a new cache
    Image.new("L", (8, 8), 255).save(png)
    _, rep3 = load_images(str(tmp_path / "imgs"), **kw)
    assert not rep3.cache_hit and rep3.cache != rep.cache

    meta = Path(rep3.cache).with_suffix(".json")  # a cache killed before its metadata was written: rebuilt
    meta.unlink()
    Path(rep3.cache).write_bytes(b"half written")
    _, rep4 = load_images(str(tmp_path / "imgs"), **kw)
    assert not rep4.cache_hit and np.load(rep4.cache, mmap_mode="r").shape[1:] == (1, 8, 8)
    assert not list(cache.glob("*.tmp*"))  # no temporary files left behind


def _refused(cli, tmp_path, snap, *args: str, needles: tuple[str, ...]) -> None:
    before = snap(tmp_path)
    proc = cli("train", "--preset", "digits-images", *args, "train.epochs=1", "--run-dir", "R", "--quiet",
               env=_env(tmp_path.parent / f"{tmp_path.name}-cache"))
    assert_one_error_line(proc, needles)
    assert snap(tmp_path) == before


def test_image_folder_refusals(cli, tmp_path, snap) -> None:
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    Image.new("L", (8, 8)).save(one / "a.png")
    _refused(cli, tmp_path, snap, "data.path=one", needles=("one class", "cats"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "empty" / "a" / "x.png")
    _refused(cli, tmp_path, snap, "data.path=empty", needles=("empty/b", "no images"))
    make_folder(tmp_path / "bad", n=60)
    _refused(cli, tmp_path, snap, "data.path=bad", "data.on_bad_file=error", needles=("truncated.png", "skip"))
    _refused(cli, tmp_path, snap, "data.path=missing", needles=("missing", "digits-png"))


def test_digits_png_command_writes_an_image_folder(tmp_path: Path) -> None:
    from trainwise.config import compose

    assert write_digits_png(tmp_path / "png") == 1797
    # a preset naming a built-in dataset, given this folder: trains on the folder (source inferred), not on digits
    assert compose(preset="digits-cnn", overrides=[f"data.path={tmp_path / 'png'}"]).data.source == "images"
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [str(i) for i in range(10)]
    with Image.open(next((tmp_path / "png" / "3").iterdir())) as img:
        assert img.size == (8, 8) and img.mode == "L"


def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` × ``height`` pixels with almost no data behind it."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_serve_takes_raw_image_files_decoded_as_predict_decodes_them(tmp_path: Path) -> None:
    """A real `trainwise serve` on an image-folder run: PNG/JPEG/WebP bytes as a raw image/* body and as base64 in
    JSON answer what `trainwise predict` writes for the same files; bad images are 4xx JSON and the server stays up."""
    import base64
    import csv

    import httpx

    from trainwise.config import compose
    from trainwise.deploy.predict import predict_run
    from trainwise.runner import train

    make_folder(tmp_path / "imgs", n=120)
    cfg = compose(preset="digits-images", overrides=[f"data.path={tmp_path / 'imgs'}", "train.epochs=2",
                                                     f"data.cache_dir={tmp_path / 'cache'}", "model.width=8"])
    run = Path(train(cfg, run_dir=tmp_path / "run", quiet=True).run_dir)  # type: ignore[arg-type]
    files = [next(p for p in sorted((tmp_path / "imgs").rglob(f"*.{s}")) if p.stem.isdigit())
             for s in ("png", "jpg", "webp", "bmp")]  # mixed sizes: resized and centre-cropped as in training
    expected = []
    for i, f in enumerate(files):
        with open(predict_run(run, f, tmp_path / f"p{i}.csv")) as fh:
            row = next(csv.DictReader(fh))
        expected.append((row.pop("prediction"), [float(v) for v in row.values()]))
    (tmp_path / "big.png").write_bytes(_png_declaring(9_000, 9_000))  # predict checks the header of these runs too
    with pytest.raises(TrainwiseError, match="9,000 × 9,000"):
        predict_run(run, tmp_path / "big.png", tmp_path / "big.csv")

    with serving(run, tmp_path, _env(tmp_path / "cache"), PY) as (base, proc):
        def check(answer: httpx.Response, want: list[tuple[str, list[float]]]) -> None:
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["predictions"] == [p for p, _ in want]
            np.testing.assert_allclose(body["probabilities"], [q for _, q in want], rtol=1e-5, atol=1e-6)

        raw = files[0].read_bytes()
        check(httpx.post(f"{base}/predict", content=raw, headers={"content-type": "image/png"}, timeout=30),
              expected[:1])
        b64 = [base64.b64encode(f.read_bytes()).decode() for f in files]
        b64[1] = "data:image/jpeg;base64," + b64[1]  # a data URL works too
        check(httpx.post(f"{base}/predict", json={"images": b64}, timeout=30), expected)

        bad = [(dict(content=b"\x89PNG\r\n\x1a\n" + b"\0" * 20, headers={"content-type": "image/png"}), 422, "image"),
               (dict(content=b"", headers={"content-type": "image/png"}), 422, "empty"),
               (dict(json={"images": ["not base64!"]}), 422, "base64"),
               (dict(json={"images": [base64.b64encode(b"GIF89a" + b"\0" * 10).decode()]}), 422, "images[0]"),
               (dict(json={"images": [7]}), 422, "images[0]"),
               (dict(json={"images": []}), 422, "non-empty"),
               (dict(content=_png_declaring(9_000, 9_000), headers={"content-type": "image/png"}), 413, "9,000"),
               (dict(content=_png_declaring(100_000, 100_000), headers={"content-type": "image/png"}), 413, "limit")]
        for kwargs, status, needle in bad:
            r = httpx.post(f"{base}/predict", timeout=30, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == status and needle in r.json()["detail"], (kwargs, r.status_code, r.text)
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200 and proc.poll() is None


def test_serve_image_requests_refused_by_runs_without_image_inputs(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from trainwise.config import compose
    from trainwise.deploy.serve import create_app
    from trainwise.runner import train

    cfg = compose(preset="wine-mlp", overrides=["train.epochs=1"])
    run = Path(train(cfg, run_dir=tmp_path / "run", quiet=True).run_dir)  # type: ignore[arg-type]
    client = TestClient(create_app(run))
    png = _png_declaring(8, 8)
    for r in (client.post("/predict", content=png, headers={"content-type": "image/png"}),
              client.post("/predict", json={"images": ["iVBORw0KGgo="]})):
        assert r.status_code == 422 and "tabular" in r.json()["detail"], r.text

"""Shipping a run: export (+ parity), quantize, predict formats, serve (in-process and a real server), bench-infer.

One digits-mlp run (the session's ``digits_run``, copied) is exported and quantized once per module; the tests
read it. Commands run through ``python -m trainwise`` where the exit status and stderr are the contract.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import serving

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}


def tw(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainwise", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data[:n].astype(np.float32), d.target[:n]


def main(*args: str | Path) -> subprocess.CompletedProcess:
    """``trainwise ARGS`` in this process (no interpreter start-up): exit code, stdout, stderr."""
    import contextlib
    import io

    from trainwise import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def shipped(digits_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's digits-mlp run, exported to ONNX and statically quantized through the CLI."""
    run = tmp_path_factory.mktemp("deploy") / "R"
    shutil.copytree(digits_run, run)  # digits_run is shared read-only
    proc = tw("export", run, cwd=run.parent)
    assert proc.returncode == 0, proc.stderr
    proc = tw("quantize", run, "--method", "static", "--repeats", "3", cwd=run.parent)
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy_cnn")
    proc = tw("train", "--preset", "digits-cnn", "model.width=8", "train.epochs=1", "--run-dir", "C", "--quiet",
              cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "C"


# ---- help ---------------------------------------------------------------------------------------------------------

def test_help_texts_and_no_torch_import(tmp_path):
    for command, flags in {"export": ("RUN_DIR", "--format", "onnx", "torch-export", "torchscript", "--force"),
                           "quantize": ("--method", "dynamic", "static", "qat", "--backend", "--force"),
                           "serve": ("--port", "--host", "127.0.0.1", "/predict", "/health"),
                           "bench-infer": ("--json", "--repeats", "--skip"),
                           "predict": ("--format", "eager", "onnx", "int8", ".png")}.items():
        proc = tw(command, "--help", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        for flag in (*flags, "examples:"):
            assert flag in proc.stdout, f"'{flag}' missing from 'trainwise {command} --help'"
    code = ("import sys\nfrom trainwise.cli import main\ntry:\n    main(['export', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr


# ---- export -------------------------------------------------------------------------------------------------------

def _check_onnx_against_eager(run: Path, batches: tuple[int, ...] = (1, 64)) -> None:
    """Independent of the command's own parity code: load model.onnx with onnxruntime and compare with the eager
    model on raw digits (the graph standardises; eager gets preprocess.json applied by hand)."""
    import onnxruntime as ort

    from trainwise.reopen import open_run

    _, _, prep, model = open_run(run)
    sess = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str), "batch dimension must be dynamic"
    x, _ = _digits(64)
    raw = x.reshape(-1, 1, 8, 8)
    mean, std = json.loads((run / "preprocess.json").read_text())["mean"][0], \
        json.loads((run / "preprocess.json").read_text())["std"][0]
    for b in batches:
        for i in range(0, min(len(raw), 8 * b), b):
            chunk = raw[i:i + b]
            got = sess.run(None, {"input": chunk})[0]
            with torch.inference_mode():
                ref = model(torch.from_numpy((chunk - np.float32(mean)) / np.float32(std))).numpy()
            assert got.shape == ref.shape
            assert np.abs(got - ref).max() <= 1e-4, (b, np.abs(got - ref).max())


def test_export_onnx_metadata_and_parity(shipped):
    meta = json.loads((shipped / "export" / "export.json").read_text())
    prep = json.loads((shipped / "preprocess.json").read_text())
    assert meta["format"] == "onnx" and meta["model"] == "mlp" and meta["task"] == "classification"
    assert meta["input"]["shape"] == ["batch", 1, 8, 8]
    assert meta["class_names"] == [str(i) for i in range(10)]
    assert meta["preprocessing"]["in_graph"] is True
    assert meta["preprocessing"]["mean"] == prep["mean"] and meta["preprocessing"]["std"] == prep["std"]
    parity = meta["artifacts"]["onnx"]["parity"]
    assert parity["passed"] and set(parity["batches"]) == {"1", "64"}
    assert all(c["max_abs_diff"] <= 1e-4 and c["samples"] > 0 for c in parity["batches"].values())
    _check_onnx_against_eager(shipped)


def test_export_cnn_onnx_parity(cnn_run):
    proc = main("export", cnn_run)
    assert proc.returncode == 0, proc.stderr
    assert "batch 1:" in proc.stdout and "batch 64:" in proc.stdout
    _check_onnx_against_eager(cnn_run)


@pytest.mark.parametrize("fmt", ["torch-export", "torchscript"])
def test_export_torch_formats(digits_run, tmp_path, fmt):
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.export import export_run, load_artifact

    run_dir = tmp_path / "R"
    shutil.copytree(digits_run, run_dir)
    run = open_run(run_dir)
    meta = export_run(run, fmt)
    entry = meta["artifacts"][fmt]
    assert (run_dir / "export" / entry["file"]).is_file() and entry["parity"]["passed"]
    forward = load_artifact(fmt, run_dir / "export" / entry["file"])
    x, _ = _digits(70)
    raw = x.reshape(-1, 1, 8, 8)
    with torch.inference_mode():
        ref = run.model(torch.from_numpy(run.prep.apply(raw))).numpy()
    for b in (1, 7, 70):  # the artefact is not pinned to the example's batch size
        assert np.abs(forward(raw[:b]) - ref[:b]).max() <= 1e-4


def _sequence_run(tmp_path: Path, overrides: list[str]):
    """A run object for a sequence model on a tiny synthetic task (untrained: parity needs no training)."""
    from trainwise.config import compose
    from trainwise.deploy.artifacts import Run
    from trainwise.runner import setup

    cfg = compose(None, None, ["data.options.n=200", "train.epochs=1", *overrides])
    splits, model, _, _ = setup(cfg)
    run_dir = tmp_path / "S"
    run_dir.mkdir()
    return Run(run_dir, cfg, splits.preprocess, model.cpu().eval())


@pytest.mark.parametrize("overrides", [
    ["data.source=sine", "data.options.length=8", "model.name=rnn", "model.hidden=8"],
    ["data.source=order", "model.name=transformer", "model.d_model=16", "model.heads=2", "model.layers=1"],
], ids=["rnn-sequence", "transformer-tokens"])
def test_export_sequence_models_parity(tmp_path, overrides):
    import trainwise
    from trainwise.deploy.export import export_run

    name = next(o for o in overrides if o.startswith("model.name=")).split("=")[1]
    if name not in trainwise.list_models():
        pytest.skip(f"model '{name}' is not registered in this tree")
    run = _sequence_run(tmp_path, overrides)
    meta = export_run(run, "onnx")
    parity = meta["artifacts"]["onnx"]["parity"]
    assert parity["passed"], parity
    assert set(parity["batches"]) == {"1", "64"} and parity["max_abs_diff"] <= 1e-4
    assert meta["input"]["shape"][0] == "batch"


def test_export_parity_failure_exits_1(digits_run, tmp_path, monkeypatch, capsys):
    """An artefact whose outputs drift from eager's: exit 1, a clear message, the failure recorded."""
    from trainwise import cli
    from trainwise.deploy import export

    run_dir = tmp_path / "R"
    shutil.copytree(digits_run, run_dir)
    real = export.load_artifact

    def drifting(fmt, path, threads=None):
        forward = real(fmt, path, threads)
        return lambda x: forward(x) + 1e-3

    monkeypatch.setattr(export, "load_artifact", drifting)
    assert cli.main(["export", str(run_dir), "--format", "torchscript"]) == 1
    err = capsys.readouterr().err
    assert "parity check FAILED" in err and "1e-04" in err
    meta = json.loads((run_dir / "export" / "export.json").read_text())
    assert meta["artifacts"]["torchscript"]["parity"]["passed"] is False


def test_export_unexportable_model_names_model_and_format(tmp_path):
    from trainwise.build import load_data
    from trainwise.config import compose
    from trainwise.deploy.artifacts import Run
    from trainwise.deploy.export import export_run
    from trainwise.errors import TrainwiseError

    class DataDependent(torch.nn.Module):  # control flow on values: no single graph can represent it
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:
                return x.flatten(1)[:, :10]
            return -x.flatten(1)[:, :10]

    cfg = compose(None, "digits-mlp", [])
    run = Run(tmp_path, cfg, load_data(cfg).preprocess, DataDependent())
    for fmt in ("onnx", "torch-export"):
        with pytest.raises(TrainwiseError, match=rf"model 'mlp' cannot be exported to {fmt} .*: \w+"):
            export_run(run, fmt)
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())


def test_export_refuses_to_overwrite(shipped, snap):
    before = snap(shipped / "export")
    proc = tw("export", shipped, cwd=shipped.parent)
    line = _one_error_line(proc)
    assert "already exists" in line and "--force" in line
    assert snap(shipped / "export") == before


# ---- quantize -----------------------------------------------------------------------------------------------------

def test_quantize_static_within_bound(shipped):
    q = json.loads((shipped / "quantized" / "quantize.json").read_text())
    assert q["method"] == "static" and q["backend"] in ("torch", "onnxruntime")
    assert set(q["candidates"]) == {"torch", "onnxruntime"}  # both measured (or their failure recorded)
    winner = q["candidates"][q["backend"]]
    assert (shipped / "quantized" / winner["artifact"]).is_file()
    # fixed seed (digits_run: seed 0, 2 epochs): int8 must stay within 0.5 points of fp32 on the test split
    assert q["int8"]["accuracy"] >= q["fp32"]["accuracy"] - 0.5, q
    assert q["fp32"]["accuracy"] > 80
    assert q["size_ratio"] == pytest.approx(winner["fp32_bytes"] / winner["bytes"]) and q["size_ratio"] > 2
    for b in ("1", "256"):
        assert q["int8"]["latency_ms"][b] > 0 and q["fp32"]["latency_ms"][b]["torch"] > 0
    assert set(q["targets"]) == {"size_ratio", "speedup_b256", "accuracy_drop_points"}
    assert all(isinstance(t["met"], bool) for t in q["targets"].values())


def test_quantize_refuses_to_overwrite_and_bad_method(shipped, snap):
    before = snap(shipped / "quantized")
    line = _one_error_line(main("quantize", shipped, "--method", "static"))
    assert "already exists" in line
    line = _one_error_line(main("quantize", shipped, "--method", "int4"))
    assert "int4" in line
    assert snap(shipped / "quantized") == before


def test_torch_int8_weights_round_trip_without_pickle(digits_run, tmp_path):
    """int8 torch weights → safetensors → rebuilt module: identical outputs, for static and dynamic."""
    from safetensors import safe_open

    from trainwise.deploy import quantize as qz
    from trainwise.deploy.artifacts import open_run

    run = open_run(digits_run)
    x = torch.from_numpy(run.prep.apply(_digits(128)[0].reshape(-1, 1, 8, 8)))
    groups = qz.verified_groups(run.model, x)
    assert groups == [["body.0", "body.2"], ["body.4", "body.6"]]  # Linear+ReLU pairs around norm Identity
    for method, module in (("static", qz.torch_static(run.model, groups, x)), ("dynamic", qz.torch_dynamic(run.model))):
        path = tmp_path / f"{method}.safetensors"
        qz.save_torch_int8(module, path)
        with safe_open(str(path), framework="pt") as f:
            assert len(list(f.keys())) > 0
        loaded = qz.load_torch_int8(run, {"method": method, "torch": {"fusion_groups": groups}}, path)
        with torch.inference_mode():
            assert torch.equal(loaded(x), module(x)), method
            agree = (module(x).argmax(1) == run.model(x).argmax(1)).float().mean()
        assert agree >= 0.95, (method, agree)


@pytest.mark.slow
def test_quantize_qat_fine_tunes_and_reports(digits_run, tmp_path):
    run = tmp_path / "R"
    shutil.copytree(digits_run, run)
    proc = tw("quantize", run, "--method", "qat", "--epochs", "1", "--repeats", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    q = json.loads(proc.stdout)
    assert q["method"] == "qat" and q["qat"]["epochs"] == 1
    assert "quantization-aware fine-tuning" in proc.stderr
    assert q["int8"]["accuracy"] >= q["fp32"]["accuracy"] - 2.0, q  # a 1-epoch fine-tune of a 2-epoch model
    proc = main("predict", run, _npz(tmp_path, 20), "--format", "int8")
    assert proc.returncode == 0, proc.stderr


# ---- predict ------------------------------------------------------------------------------------------------------

def _npz(folder: Path, n: int) -> Path:
    x, _ = _digits(n)
    path = folder / "new.npz"
    np.savez(path, x=x)
    return path


def test_predict_formats_agree_on_raw_csv(shipped, tmp_path):
    """Raw pixel rows in a CSV → the same predictions from eager, ONNX and (nearly all) int8."""
    x, y = _digits(200)
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"p{i}" for i in range(64)])
        w.writerows(x.astype(int).tolist())
    preds = {}
    for fmt in ("eager", "onnx", "int8"):
        out = tmp_path / f"{fmt}.csv"
        proc = main("predict", shipped, path, "--format", fmt, "--out", out)
        assert proc.returncode == 0, proc.stderr
        rows = _rows(out)
        assert list(rows[0]) == ["prediction", *[f"prob_{i}" for i in range(10)]]  # today's file format
        preds[fmt] = rows
    eager = [r["prediction"] for r in preds["eager"]]
    assert np.mean(np.array(eager, dtype=int) == y) > 0.85  # raw inputs were standardised exactly once
    assert [r["prediction"] for r in preds["onnx"]] == eager
    probs = np.array([[float(v) for k, v in r.items() if k != "prediction"] for r in preds["onnx"]])
    ref = np.array([[float(v) for k, v in r.items() if k != "prediction"] for r in preds["eager"]])
    assert np.abs(probs - ref).max() < 1e-5
    assert np.mean(np.array([r["prediction"] for r in preds["int8"]]) == np.array(eager)) >= 0.97


def test_predict_image_file(shipped, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    from trainwise.deploy.predict import predict_run

    images = load_digits().images[:6]
    np.savez(tmp_path / "six.npz", x=images.reshape(6, 64))
    expected = _rows(predict_run(shipped, tmp_path / "six.npz"))
    for i, img in enumerate(images):  # 0..16 ink on black, saved as 0..255 greyscale like any scanned digit
        Image.fromarray(np.round(img * 255 / 16).astype(np.uint8)).save(tmp_path / f"d{i}.png")
        got = _rows(predict_run(shipped, tmp_path / f"d{i}.png"))
        assert len(got) == 1 and got[0]["prediction"] == expected[i]["prediction"]
        assert abs(float(got[0]["prob_0"]) - float(expected[i]["prob_0"])) < 0.05
    proc = main("predict", shipped, tmp_path / "d0.png", "--format", "onnx", "--out", tmp_path / "onnx.csv")
    assert proc.returncode == 0, proc.stderr
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "big.jpg")  # resized, converted to grey
    assert len(_rows(predict_run(shipped, tmp_path / "big.jpg"))) == 1
    (tmp_path / "broken.png").write_bytes(b"not an image")
    line = _one_error_line(main("predict", shipped, tmp_path / "broken.png"))
    assert "cannot read image" in line


@pytest.mark.parametrize(("args", "expect"), [
    (("predict", "{fresh}", "{tmp}/new.npz", "--format", "onnx"), "trainwise export"),
    (("predict", "{fresh}", "{tmp}/new.npz", "--format", "int8"), "trainwise quantize"),
    (("predict", "{fresh}", "{tmp}/notes.txt"), ".csv, .npz or image"),
    (("export", "{tmp}/missing-run"), "does not exist"),
    (("quantize", "{tmp}/missing-run", "--method", "static"), "does not exist"),
    (("bench-infer", "{tmp}/missing-run"), "does not exist"),
    (("serve", "{tmp}/missing-run"), "does not exist"),
    (("serve", "{fresh}", "--format", "onnx"), "trainwise export"),
    (("export", "{fresh}", "--format", "tflite"), "invalid choice"),
    (("quantize", "{fresh}"), "--method"),
    (("bench-infer", "{fresh}", "--repeats", "0"), "--repeats"),
])
def test_user_mistakes_exit_2_with_one_line(digits_run, tmp_path, snap, args, expect):
    fresh = tmp_path / "R"
    shutil.copytree(digits_run, fresh)
    _npz(tmp_path, 3)
    (tmp_path / "notes.txt").write_text("1,2,3\n")
    before = snap(tmp_path)
    proc = main(*[a.replace("{fresh}", str(fresh)).replace("{tmp}", str(tmp_path)) for a in args])
    line = _one_error_line(proc)
    assert expect in line, line
    assert snap(tmp_path) == before  # nothing written, nothing replaced


# ---- serve --------------------------------------------------------------------------------------------------------

BAD_PAYLOADS = [
    (b"{not json", 400),
    (b'{"inputs": [[1, 2, 3]]}', 422),                                     # wrong feature count
    (b'{"inputs": [["a"' + b", 1" * 63 + b"]]}", 422),                     # non-numeric value
    (b'{"inputs": [[true' + b", 1" * 63 + b"]]}", 422),                    # booleans are not numbers
    (b'{"inputs": [[NaN' + b", 1" * 63 + b"]]}", 422),                     # not finite
    (b'{"inputs": []}', 422),
    (b'{"rows": [[1]]}', 422),
    (b"[1, 2]", 422),
    (b'{"inputs": 7}', 422),
]


def _eager_predictions(run: Path, x: np.ndarray, tmp_path: Path) -> list[dict[str, str]]:
    from trainwise.deploy.predict import predict_run

    np.savez(tmp_path / "ref.npz", x=x)
    return _rows(predict_run(run, tmp_path / "ref.npz", force=True))


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_serve_app_in_process(shipped, tmp_path):
    from fastapi.testclient import TestClient

    from trainwise.deploy.serve import create_app

    x, _ = _digits(40)
    expected = _eager_predictions(shipped, x, tmp_path)
    client = TestClient(create_app(shipped))
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["features"] == 64 and health["model"] == "mlp"
    r = client.post("/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == [row["prediction"] for row in expected]
    probs = np.array(body["probabilities"])
    assert probs.shape == (40, 10)
    ref = np.array([[float(row[f"prob_{i}"]) for i in range(10)] for row in expected])
    assert np.abs(probs - ref).max() < 1e-6
    nested = client.post("/predict", json={"inputs": x[:3].reshape(3, 1, 8, 8).tolist()}).json()
    assert nested["predictions"] == body["predictions"][:3]  # samples may come in the input shape too
    for payload, status in BAD_PAYLOADS:
        r = client.post("/predict", content=payload, headers={"content-type": "application/json"})
        assert r.status_code == status, (payload[:30], r.status_code, r.text)
        assert r.json()["detail"]
    big = client.post("/predict", json={"inputs": [[0] * 64] * 4097})
    assert big.status_code == 413
    onnx_client = TestClient(create_app(shipped, fmt="onnx"))
    assert onnx_client.post("/predict", json={"inputs": x.tolist()}).json()["predictions"] == body["predictions"]


def test_serve_real_server(shipped, tmp_path):
    """The real command: uvicorn on a free loopback port, real HTTP with httpx, stopped by its pid."""
    import httpx

    x, _ = _digits(12)
    expected = [row["prediction"] for row in _eager_predictions(shipped, x, tmp_path)]
    with serving(shipped, tmp_path, ENV) as (base, proc):
        r = httpx.post(f"{base}/predict", json={"inputs": x.tolist()}, timeout=30)
        assert r.status_code == 200 and r.json()["predictions"] == expected
        for payload, status in BAD_PAYLOADS[:4]:
            r = httpx.post(f"{base}/predict", content=payload, headers={"content-type": "application/json"},
                           timeout=30)
            assert r.status_code == status, r.text
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # still up after bad requests
        assert proc.poll() is None
    assert "127.0.0.1" in (tmp_path / "server.log").read_text()


def test_serve_port_in_use_is_a_user_error(shipped, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        line = _one_error_line(main("serve", shipped, "--port", str(s.getsockname()[1])))
    assert "--port" in line


# ---- bench-infer --------------------------------------------------------------------------------------------------

def test_bench_infer_json(shipped, tmp_path):
    proc = main("bench-infer", shipped, "--json", "--repeats", "2", "--skip", "compile")
    assert proc.returncode == 0, proc.stderr
    rows = {r["mode"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ["eager", "no_grad", "inference_mode", "compile", "onnxruntime", "int8"]
    assert rows["compile"]["status"].startswith("skipped")
    for mode in ("eager", "no_grad", "inference_mode", "onnxruntime", "int8"):
        assert rows[mode]["status"] == "ok", rows[mode]
        assert rows[mode]["latency_ms_b1"] > 0 and rows[mode]["throughput_b256"] > 0
    table = main("bench-infer", shipped, "--repeats", "1", "--skip", "compile", "--skip", "int8")
    assert table.returncode == 0 and "inference_mode" in table.stdout and "samples/s" in table.stdout


def test_bench_infer_reports_compile_failure(digits_run, monkeypatch):
    from trainwise.deploy import bench

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    rows = {r["mode"]: r for r in bench.bench_infer(digits_run, repeats=1,
                                                     skip=["no_grad", "inference_mode", "onnxruntime", "int8"])}
    assert rows["compile"]["status"] == "failed: RuntimeError: no C++ compiler found"
    assert rows["eager"]["status"] == "ok"
    assert rows["int8"]["status"].startswith("skipped")

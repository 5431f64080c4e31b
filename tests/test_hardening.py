"""Issue 15, case by case: every input from the issue's "Why" list, with the command as a user would type it, ends
accepted, or with exit 2 and one ``error:`` line — never a traceback — and nothing outside the run directory (or the
named output) changes. Most commands run in-process through ``trainwise.cli.main`` (the same code path as the
console script, without a torch start-up per case); the ones that need a separate process (a file-size limit) run
``python -m trainwise``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from trainwise.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``trainwise ARGV`` in this process: (exit status, stdout, stderr). A traceback raises out of here."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusals
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error(capsys: pytest.CaptureFixture[str], *argv: object, needles: tuple[str, ...] = (),
              progress: bool = False) -> str:
    """Exit 2 and one ``error:`` line on stderr (``progress``: after the command's own progress lines)."""
    rc, _, err = run_cli(capsys, *argv)
    lines = err.splitlines()
    assert rc == 2, (rc, err)
    if progress:
        assert "Traceback" not in err and not any(x.startswith("error") for x in lines[:-1]), err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def unfinished(digits_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared finished run without summary.json: resumable from its last checkpoint."""
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    (rd / "summary.json").unlink()
    return rd


def _newest_checkpoint(rd: Path) -> Path:
    return sorted((rd / "checkpoints").glob("step-*"))[-1]


# ---- files the user owns -------------------------------------------------------------------------------------------

def test_report_out_refuses_an_existing_file_without_force(capsys, digits_run, work):
    mine = work / "notes.txt"
    mine.write_text("precious")
    one_error(capsys, "report", digits_run, "--out", mine, needles=("--force", "notes.txt"))
    assert mine.read_text() == "precious"
    rc, out, _ = run_cli(capsys, "report", digits_run, "--out", mine, "--force")
    assert rc == 0 and mine.read_text().startswith("<!DOCTYPE html>")


def test_predict_out_existing_directory(capsys, digits_run, work):
    np.savez(work / "in.npz", x=np.zeros((2, 64), np.float32))
    (work / "d").mkdir()
    for extra in ((), ("--force",)):
        one_error(capsys, "predict", digits_run, work / "in.npz", "--out", work / "d", *extra,
                  needles=("directory",))


def test_resume_never_truncates_a_metrics_log_linked_outside(capsys, unfinished, work):
    outside = work / "outside.txt"
    outside.write_text("someone else's file\n" * 50)
    before = digest(outside)
    (unfinished / "metrics.jsonl").unlink()
    (unfinished / "metrics.jsonl").symlink_to(outside)
    one_error(capsys, "resume", unfinished, "--quiet", needles=("metrics.jsonl", "outside"))
    assert digest(outside) == before


@pytest.mark.parametrize("damage", ["[]", '{"files": {}}', "no-bytes", "passwd", "not json {"])
def test_malformed_manifests_are_not_verified(capsys, unfinished, damage):
    folder = _newest_checkpoint(unfinished)
    man = folder / "manifest.json"
    data = json.loads(man.read_text())
    if damage == "no-bytes":
        for meta in data["files"].values():
            meta.pop("bytes")
        man.write_text(json.dumps(data))
    elif damage == "passwd":  # a path out of the folder, with the right size and hash of what it points at
        target = Path("/etc/passwd") if Path("/etc/passwd").is_file() else Path(sys.executable)
        blob = target.read_bytes()
        data["files"]["../../../../" + str(target).lstrip("/")] = {"bytes": len(blob),
                                                                   "sha256": hashlib.sha256(blob).hexdigest()}
        man.write_text(json.dumps(data))
    else:
        man.write_text(damage)
    rc, out, err = run_cli(capsys, "checkpoints", unfinished, "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows[folder.name]["verified"] is False and rows[folder.name]["problem"]


def test_resume_skips_a_malformed_manifest_and_a_stray_folder(capsys, unfinished):
    (unfinished / "checkpoints" / "step-abc").mkdir()
    newest = _newest_checkpoint(unfinished)
    (newest / "manifest.json").write_text("[]")
    rc, out, err = run_cli(capsys, "checkpoints", unfinished, "--json")
    assert rc == 0 and "step-abc" not in out
    rc, out, err = run_cli(capsys, "resume", unfinished, "--quiet")
    older = [p for p in (unfinished / "checkpoints").glob("step-0*") if p != newest]
    if older:  # resumed from the older one
        assert rc == 0, err
    else:
        assert rc == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_resume_with_torn_summary(capsys, digits_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    (rd / "summary.json").write_text('{"epochs": 2, "sto')
    one_error(capsys, "resume", rd, "--quiet", needles=("summary.json",))


def test_extra_key_in_preprocess_json(capsys, digits_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    data = json.loads((rd / "preprocess.json").read_text())
    data["surprise"] = 1
    (rd / "preprocess.json").write_text(json.dumps(data))
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 64), np.float32))
    one_error(capsys, "predict", rd, tmp_path / "in.npz", needles=("surprise",))
    one_error(capsys, "serve", rd, "--port", "1", needles=("surprise",))


def test_weights_of_the_wrong_shape(capsys, digits_run, tmp_path):
    import torch
    from safetensors.torch import save_file

    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    save_file({"body.0.weight": torch.zeros(3, 3)}, str(rd / "best.safetensors"))
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 64), np.float32))
    one_error(capsys, "predict", rd, tmp_path / "in.npz", needles=("best.safetensors",))


# ---- code from configs ---------------------------------------------------------------------------------------------

def test_config_file_cannot_run_code(capsys, work):
    (work / "shared.yaml").write_text("data:\n  source: os:abort\n")
    one_error(capsys, "train", "shared.yaml", "--quiet", "--run-dir", "R", needles=("--allow-code",))
    assert not (work / "R").exists()


def test_allow_code_runs_the_source(capsys, work, monkeypatch):
    (work / "mysrc.py").write_text("import numpy as np\n\ndef load():\n    r = np.random.default_rng(0)\n"
                                   "    return r.normal(size=(60, 4)).astype('float32'), r.integers(0, 3, 60)\n")
    monkeypatch.syspath_prepend(str(work))
    args = ("train", "--preset", "wine-mlp", "data.source=mysrc:load", "train.epochs=1", "--quiet")
    one_error(capsys, *args, "--run-dir", "A", needles=("--allow-code",))
    rc, _, err = run_cli(capsys, *args, "--run-dir", "B", "--allow-code")
    assert rc == 0, err
    assert os.environ.get("TRAINWISE_ALLOW_CODE") is None  # the opt-in ends with the command


@pytest.mark.parametrize("override", ["name=${oc.env:HOME}", "seed=${seed}", "data.options={a: ${x}}"])
def test_config_interpolation_is_refused(capsys, work, override):
    """Found by tests/test_fuzz.py: OmegaConf resolved ``${oc.env:VAR}`` (a shared config could copy secrets from the
    environment into config.yaml) and recursed on ``${seed}``."""
    one_error(capsys, "train", override, "--run-dir", "R", needles=("interpolation",))
    assert not (work / "R").exists()


# ---- resources bounded before they are spent -----------------------------------------------------------------------

def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,needle", [(_bomb(), "expands"), ("a: " + "[" * 20000 + "]" * 20000 + "\n", "nests"),
                                         ("x: 1\n" * 300_000, "characters")])
def test_yaml_limits(capsys, work, text, needle):
    (work / "c.yaml").write_text(text)
    one_error(capsys, "train", "c.yaml", "--quiet", "--run-dir", "R", needles=(needle,))
    assert not (work / "R").exists()


def test_deep_override_value(capsys, work):
    one_error(capsys, "train", "model.hidden=" + "[" * 20000 + "]" * 20000, "--run-dir", "R", needles=("nests",))


@pytest.mark.parametrize("override,needle", [("model.hidden=[-5]", "-5"), ("model.hidden=[0]", "size of 0")])
def test_bad_model_sizes(capsys, work, override, needle):
    one_error(capsys, "train", "--preset", "digits-mlp", override, "--quiet", "--run-dir", "R", needles=(needle,))
    assert not (work / "R").exists()


def test_a_25_gb_layer_is_refused_with_the_estimate(capsys, work, monkeypatch):
    import trainwise.safety

    monkeypatch.setattr(trainwise.safety, "available_memory", lambda: 8 * 10**9)  # the same answer on any machine
    line = one_error(capsys, "train", "--preset", "digits-mlp", "model.hidden=[80000,80000]", "--quiet",
                     "--run-dir", "R", needles=("25.6 GB", "8.0 GB"))
    assert "parameters" in line and not (work / "R").exists()


@pytest.mark.parametrize("override,needle", [("optim.lr=.inf", "optim.lr"), ("optim.lr=-.inf", "optim.lr"),
                                             ("train.grad_clip=.inf", "grad_clip"),
                                             ("seed=12345678901234567890123", "seed")])
def test_numbers_range_checked(capsys, work, override, needle):
    one_error(capsys, "train", "--preset", "digits-mlp", override, "--quiet", "--run-dir", "R", needles=(needle,))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _huge_npz(path: Path) -> None:
    from numpy.lib import format as npformat

    head = io.BytesIO()
    npformat.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", head.getvalue() + b"\0" * 64)
        y = io.BytesIO()
        np.save(y, np.arange(3))
        z.writestr("y.npy", y.getvalue())


@pytest.mark.parametrize("kind,needle", [("0d", "shape ()"), ("1d", "shape (60,)"), ("notzip", "not a .npz"),
                                         ("huge", "1000000"), ("complex", "complex")])
def test_npz_members_checked_before_loading(capsys, work, kind, needle):
    p = work / "d.npz"
    y = np.arange(60) % 3
    if kind == "0d":
        p.write_bytes(_npz_bytes(x=np.array(1.0), y=y))
    elif kind == "1d":
        p.write_bytes(_npz_bytes(x=np.arange(60.0), y=y))
    elif kind == "notzip":
        p.write_text("x,y\n1,2\n")
    elif kind == "huge":
        _huge_npz(p)
    else:
        p.write_bytes(_npz_bytes(x=np.ones((60, 4)) + 1j, y=y))
    one_error(capsys, "train", "--preset", "wine-mlp", "data.source=npz", "data.path=d.npz", "--quiet",
              "--run-dir", "R", needles=(needle,))
    assert not (work / "R").exists()


def _png_header(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(100_000, 100_000), (9_000, 9_000)])
def test_predict_png_declaring_too_many_pixels(capsys, digits_run, work, size):
    (work / "big.png").write_bytes(_png_header(*size))
    one_error(capsys, "predict", digits_run, work / "big.png", needles=("big.png",))
    assert not (work / "big.predictions.csv").exists()


def test_predict_csv_cell_that_is_not_a_number(capsys, digits_run, work):
    rows = [",".join(str(i) for i in range(64))] + [",".join(["1"] * 64)] * 3
    rows[2] = ",".join(["1"] * 10 + ["abc"] + ["1"] * 53)
    (work / "in.csv").write_text("\n".join(rows) + "\n")
    one_error(capsys, "predict", digits_run, work / "in.csv", needles=("abc", "'10'"))


def test_predict_npz_with_huge_declared_shape(capsys, digits_run, work):
    _huge_npz(work / "in.npz")
    one_error(capsys, "predict", digits_run, work / "in.npz", needles=("1000000",))


# ---- faults while writing ------------------------------------------------------------------------------------------

def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_disk_full_at_final_save(tmp_path):
    """A file-size limit (what a full disk looks like to the writer) below a checkpoint's size: every checkpoint and
    the final weights fail; one error line, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "trainwise", "train", "--preset", "digits-mlp", "train.epochs=2",
                           "--run-dir", "R", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                          preexec_fn=lambda: _limited(100_000), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "final.safetensors" in lines[0], proc.stderr
    assert "checkpoint write(s) failed" in lines[0]


def test_failed_final_save_leaves_the_last_checkpoint_resumable(capsys, work, monkeypatch):
    import errno

    import trainwise.train.loop as loop

    real = loop.save_weights

    def full_disk(path: Path, state: dict) -> None:
        if path.name == "final.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, state)

    monkeypatch.setattr(loop, "save_weights", full_disk)
    one_error(capsys, "train", "--preset", "digits-mlp", "train.epochs=2", "--run-dir", "R", "--quiet",
              needles=("final.safetensors", "trainwise resume"))
    monkeypatch.setattr(loop, "save_weights", real)
    rc, out, err = run_cli(capsys, "resume", "R", "--quiet")
    assert rc == 0, err
    assert (work / "R" / "final.safetensors").is_file() and (work / "R" / "summary.json").is_file()


def test_writer_failure_of_any_type_is_counted(capsys, work, monkeypatch):
    import trainwise.train.checkpoint as ck

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("serialiser bug")

    monkeypatch.setattr(ck, "write_checkpoint", broken)
    rc, _, err = run_cli(capsys, "train", "--preset", "digits-mlp", "train.epochs=2", "checkpoint.epoch_min_seconds=0",
                         "--run-dir", "R", "--quiet")
    assert rc == 0, err
    summary = json.loads((work / "R" / "summary.json").read_text())
    assert summary["checkpoint_failures"] == 2


def _immutable(path: Path) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(path)],
                                                                 capture_output=True).returncode == 0


@pytest.mark.parametrize("command", [("report",), ("resume", "--quiet"), ("export", "--format", "torchscript")])
def test_immutable_run_directory(capsys, unfinished, command):
    if command[0] == "report":
        (unfinished / "summary.json").write_text(json.dumps({"epochs": 2}))
    if not _immutable(unfinished):
        pytest.skip("chattr +i is not available here (needs root and a file system that supports it)")
    try:
        one_error(capsys, command[0], unfinished, *command[1:], progress=command[0] == "export")
    finally:
        subprocess.run(["chattr", "-i", str(unfinished)], check=True)


def test_export_force_keeps_a_passing_export(capsys, digits_run, tmp_path, monkeypatch):
    import trainwise.deploy.export as ex

    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    rc, _, err = run_cli(capsys, "export", rd, "--format", "torchscript")
    assert rc == 0, err
    artefact = rd / "export" / "model.ts"
    before = digest(artefact), (rd / "export" / "export.json").read_text()
    one_error(capsys, "export", rd, "--format", "torchscript", "--tolerance", "-1", "--force",
              needles=("--tolerance",))
    monkeypatch.setattr(ex, "parity", lambda *a, **k: {"1": {"samples": 1, "max_abs_diff": 1.0}})
    one_error(capsys, "export", rd, "--format", "torchscript", "--force", needles=("kept",), progress=True)
    assert (digest(artefact), (rd / "export" / "export.json").read_text()) == before


# ---- serve ---------------------------------------------------------------------------------------------------------

def test_serve_threads_zero(capsys, digits_run):
    one_error(capsys, "serve", digits_run, "--threads", "0", needles=("--threads",))


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize("body,status", [
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
    (b'{"inputs": [[' + b"9" * 400 + b", 1" * 63 + b"]]}", 422),
    (b'{"inputs": [[' + b"-" + b"9" * 400 + b", 1" * 63 + b"]]}", 422),
    (b'{"inputs": [[' + b"9" * 5000 + b"]]}", 400),
    (b'{"inputs": [[1e999' + b", 1" * 63 + b"]]}", 422),
    (b'{"inputs": [[[1, 2], [3, 4]]]}', 422),
])
def test_serve_pathological_bodies(digits_run, body, status):
    from fastapi.testclient import TestClient

    from trainwise.deploy.serve import create_app

    client = TestClient(create_app(digits_run), raise_server_exceptions=False)
    r = client.post("/predict", content=body)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str)


# ---- messages that misled ------------------------------------------------------------------------------------------

def test_directory_given_as_config(capsys, digits_run, work):
    one_error(capsys, "train", digits_run, "--quiet", needles=("is a directory", "config.yaml"))


def test_empty_key_part(capsys, work):
    line = one_error(capsys, "train", "optim..lr=1", needles=("optim..lr", "empty"))
    assert "did you mean" not in line


def test_23_digit_seed_names_the_seed(capsys, work):
    line = one_error(capsys, "train", "seed=12345678901234567890123", needles=("seed",))
    assert "split" not in line


# Found by the property-based tests (tests/test_fuzz.py): a self-referential alias hung compose() in OmegaConf, and a
# list merged into a section of key: value pairs was a TypeError traceback.
@pytest.mark.parametrize("items", [["data.path=&a [*a]"], ["optim={a: 1}", "optim=&a [*a]"], ["data.options=[-5]"],
                                   ["model=[[[[[[[[1]]]]]]]]"]])
def test_override_shapes_found_by_fuzzing_are_one_error_line(items: list[str]) -> None:
    from trainwise.config import compose
    from trainwise.errors import TrainwiseError

    with pytest.raises(TrainwiseError) as info:
        compose(None, "digits-mlp", items)
    assert "\n" not in str(info.value)


# ---- leftovers of issue 15: found by the argument fuzzers (tests/test_fuzz.py) and by review -----------------------

@pytest.mark.parametrize("argv", [
    ("train", "--preset", "digits-mlp", "--run-dir", "notes.txt/run", "--quiet"),
    ("lr-find", "--preset", "digits-mlp", "--steps", "10", "--out", "notes.txt/lr"),
    ("tune", "--preset", "iris-mlp", "--trials", "1", "--out", "notes.txt/tune"),
    ("tune", "--preset", "iris-mlp", "--trials", "1", "--out", "T", "--storage", "sqlite:///notes.txt/s.db"),
])
def test_output_below_a_file_is_refused_before_any_work(capsys, work, argv):
    """These ended in NotADirectoryError (a traceback) once the work was done."""
    (work / "notes.txt").write_text("mine\n")
    one_error(capsys, *argv, needles=("notes.txt", "is a file"))
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"] and (work / "notes.txt").read_text() == "mine\n"


def test_distill_run_dir_below_a_file(capsys, digits_run, work):
    (work / "notes.txt").write_text("mine\n")
    one_error(capsys, "distill", "--teacher", digits_run, "--run-dir", "notes.txt/d", "--quiet",
              needles=("notes.txt", "is a file"))


def test_tune_storage_that_is_not_a_database_is_not_replaced(capsys, work):
    """SQLite adopted a small text file as an empty database: `--storage sqlite:///notes.txt` replaced the file."""
    (work / "notes.txt").write_text("x")
    one_error(capsys, "tune", "--preset", "iris-mlp", "--trials", "1", "--out", "T", "--storage",
              "sqlite:///notes.txt", needles=("not a SQLite database",))
    assert (work / "notes.txt").read_text() == "x" and not (work / "T").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_tune_in_memory_storage(capsys, work, url):
    """Each pooled connection opened its own empty database: optuna's StorageInternalError traceback."""
    one_error(capsys, "tune", "--preset", "iris-mlp", "--trials", "1", "--out", "T", "--storage", url,
              needles=("in-memory",))
    assert not (work / "T").exists()


@pytest.mark.parametrize("db", ["missing", "empty"])
def test_tune_worker_of_a_study_that_does_not_exist(capsys, work, db):
    """`--worker` (internal, but on the command line) with a study nobody created: optuna's KeyError traceback (an
    empty database file), or a new database file created wherever --storage/--out pointed (a missing one)."""
    if db == "empty":
        (work / "new.db").write_bytes(b"")
    one_error(capsys, "tune", "--preset", "iris-mlp", "--out", "T", "--storage", f"sqlite:///{work / 'new.db'}",
              "--worker", "0:1:1", needles=("does not exist", "--worker"))
    assert (work / "new.db").exists() == (db == "empty")


@pytest.mark.parametrize("override,needle", [("model.dropout=abc", "model.dropout"), ("model.hidden=1", "model.hidden"),
                                             ("model.hidden={a: 1}", "model.hidden"),
                                             ("model.name=[-5]", "model.name")])
def test_tune_default_space_from_a_bad_model_value(capsys, work, override, needle):
    """Found by test_fuzz.py::test_tune_arguments: the default space is centred on the config's model values, which
    only the model builder checked: ValueError/TypeError tracebacks."""
    one_error(capsys, "tune", "--preset", "digits-mlp", override, "--trials", "1", "--out", "T", needles=(needle,))
    assert not (work / "T").exists()


def test_train_model_name_that_is_a_list(capsys, work):
    one_error(capsys, "train", "model.name=[-5]", "--run-dir", "R", "--quiet", needles=("model.name",))
    assert not (work / "R").exists()


def test_tune_storage_refused_leaves_no_out_folder(capsys, work):
    one_error(capsys, "tune", "--preset", "iris-mlp", "--trials", "1", "--out", "T", "--storage", "abc",
              needles=("--storage",))
    assert not (work / "T").exists()


def test_distill_student_refused_leaves_no_run_dir(capsys, digits_run, work):
    """The distill folder was created before the student was built; a student model that cannot take the teacher's
    data left it behind, empty."""
    one_error(capsys, "distill", "--teacher", digits_run, "model.name=transformer", "--run-dir", "D", "--quiet",
              needles=("in_shape",))
    assert not (work / "D").exists()


def test_prefetch_factor_zero(capsys, work):
    """AssertionError from torch's DataLoader at the first batch, with the run directory already made."""
    one_error(capsys, "train", "--preset", "digits-mlp", "data.loader=dataloader", "data.num_workers=1",
              "data.prefetch_factor=0", "--run-dir", "R", "--quiet", needles=("data.prefetch_factor",))
    assert not (work / "R").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_refusal_after_the_run_directory_was_made(capsys, work, monkeypatch, existing):
    """A refusal between creating the run directory and the first step (here a full disk at status.json) takes away
    the directory this run made; an empty directory the user made is kept."""
    import errno

    import trainwise.train.components as components

    def full(rd: Path, state: str, **extra: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(rd / "status.json"))

    monkeypatch.setattr(components, "mark_process", full)
    if existing:
        (work / "R").mkdir()
    one_error(capsys, "train", "--preset", "digits-mlp", "train.epochs=1", "--run-dir", "R", "--quiet",
              needles=("status.json", "disk is full"))
    assert (work / "R").exists() == existing
    if existing:
        assert list((work / "R").iterdir()) == []


@pytest.mark.parametrize("out", ["folder", "damaged.md", "binary.md", "notes.txt/claims.md"])
def test_recipes_out_checked_before_any_recipe_runs(capsys, work, monkeypatch, out):
    """`recipes run N --out X` ran every recipe (minutes) and then died on X: IsADirectoryError, JSONDecodeError,
    UnicodeDecodeError, NotADirectoryError."""
    import trainwise.recipes_cmd as recipes_cmd

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a recipe ran before --out was checked")

    monkeypatch.setattr(recipes_cmd.subprocess, "run", must_not_run)
    (work / "folder").mkdir()
    (work / "damaged.md").write_text('# Claims, checked\n<!-- row {"topic": 1, -->\n')
    (work / "binary.md").write_bytes(b"\xff\xfe\x00garbage")
    (work / "notes.txt").write_text("mine\n")
    one_error(capsys, "recipes", "run", "1", "--out", work / out, needles=("--out",))


def test_recipes_out_never_replaces_a_file_that_is_not_a_claims_table(capsys, work, monkeypatch):
    """`recipes run N --out notes.txt` overwrote the user's notes with a claims table; now refused before any recipe
    runs, unless --force."""
    import trainwise.recipes_cmd as recipes_cmd

    ran: list[str] = []

    def one_row(args: list[str], env: dict, **kwargs: object) -> subprocess.CompletedProcess:
        ran.append(args[1])
        row = {"topic": 1, "subject": "s", "claim": "c", "verdict": "HOLDS", "evidence": "e", "command": "x"}
        Path(env["TRAINWISE_RECIPES_JSONL"]).write_text(json.dumps(row) + "\n")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(recipes_cmd.subprocess, "run", one_row)
    notes = work / "notes.txt"
    notes.write_text("mine\n")
    one_error(capsys, "recipes", "run", "1", "--out", notes, needles=("not a claims table", "--force"))
    assert notes.read_text() == "mine\n" and ran == []
    assert main(["recipes", "run", "1", "--out", str(notes), "--force"]) == 0
    assert notes.read_text().startswith("# Claims, checked") and len(ran) == 1


def test_serve_refuses_an_extra_preprocess_key_at_start_up(capsys, digits_run, tmp_path, monkeypatch):
    """Like predict: one error line before the server starts (uvicorn.run is never reached), for every --format."""
    import uvicorn

    def must_not_serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", must_not_serve)
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    data = json.loads((rd / "preprocess.json").read_text())
    data["surprise"] = 1
    (rd / "preprocess.json").write_text(json.dumps(data))
    for fmt in ("eager", "onnx", "int8"):
        one_error(capsys, "serve", rd, "--format", fmt, "--port", "8765", needles=("surprise", "preprocess.json"))


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainwise.runner as runner

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("resume loaded the data before refusing")

    monkeypatch.setattr(runner, "load_data", must_not_load)


def _read_only(path: Path) -> str | None:
    """Make ``path`` refuse new files, the way this machine allows: ``chmod 555`` for a normal user; as root (where
    chmod does not stop writes) ``chattr +i``. Returns the undo command, or None when neither is possible."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return "chmod"
    if _immutable(path):
        return "chattr"
    return None


def test_resume_refuses_a_read_only_run_directory_before_training(capsys, unfinished, monkeypatch):
    _no_training(monkeypatch)
    how = _read_only(unfinished)
    if how is None:
        pytest.skip("root without chattr +i here: chmod does not stop root's writes, and no other way to make a "
                    "folder read-only is available")
    try:
        one_error(capsys, "resume", unfinished, "--quiet", needles=("not writable", str(unfinished)))
    finally:
        if how == "chmod":
            unfinished.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(unfinished)], check=True)


def test_resume_refuses_a_read_only_checkpoint_folder_before_training(capsys, unfinished, monkeypatch):
    _no_training(monkeypatch)
    folder = unfinished / "checkpoints"
    how = _read_only(folder)
    if how is None:
        pytest.skip("root without chattr +i here: chmod does not stop root's writes")
    try:
        one_error(capsys, "resume", unfinished, "--quiet", needles=("checkpoint folder", "not writable"))
    finally:
        if how == "chmod":
            folder.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("damage,needle", [("metrics-folder", "metrics.jsonl"), ("checkpoints-file", "checkpoints")])
def test_resume_refuses_unwritable_layout_before_training(capsys, unfinished, monkeypatch, damage, needle):
    """Works as any user, root included: a folder where resume rewrites a log, a file where it writes checkpoints."""
    _no_training(monkeypatch)
    if damage == "metrics-folder":
        (unfinished / "metrics.jsonl").unlink()
        (unfinished / "metrics.jsonl").mkdir()
    else:
        shutil.rmtree(unfinished / "checkpoints")
        (unfinished / "checkpoints").write_text("not a folder\n")
    one_error(capsys, "resume", unfinished, "--quiet", needles=(needle,))


def test_bench_infer_damaged_quantize_json(capsys, digits_run, tmp_path):
    """Found by test_fuzz.py::test_bench_infer_arguments: a quantize.json holding `null` was an AttributeError in
    load_predictor. Now the int8 row says what is wrong and the other rows are measured; predict refuses it."""
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    (rd / "quantized").mkdir()
    (rd / "quantized" / "quantize.json").write_text("null")
    rc, out, err = run_cli(capsys, "bench-infer", rd, "--repeats", "1", "--skip", "compile", "--skip", "onnxruntime",
                           "--json")
    assert rc == 0, err
    rows = {r["mode"]: r for r in json.loads(out)}
    assert "quantize.json" in rows["int8"]["status"] and "not a JSON object" in rows["int8"]["status"]
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 64), np.float32))
    one_error(capsys, "predict", rd, tmp_path / "in.npz", "--format", "int8", needles=("quantize.json",))


def test_bench_infer_config_that_is_not_utf8(capsys, digits_run, tmp_path):
    """Found by test_fuzz.py::test_bench_infer_arguments: UnicodeDecodeError in reopen.open_run (every command that
    reopens a run: predict, serve, export, quantize, bench-infer)."""
    rd = tmp_path / "run"
    shutil.copytree(digits_run, rd)
    (rd / "config.yaml").write_bytes(b"\x80\x81 not utf-8")
    one_error(capsys, "bench-infer", rd, "--repeats", "1", "--skip", "compile", needles=("config.yaml",))


def test_config_key_with_a_lone_surrogate(capsys, digits_run, work):
    """Found by test_fuzz.py::test_distill_arguments: YAML allows `"\\uda58"` (a lone surrogate) as a key; quoting it
    in the error line raised UnicodeEncodeError on a strict stderr (the one-line message must not depend on stderr's
    error handler)."""
    teacher = work / "teacher"
    shutil.copytree(digits_run, teacher)
    with open(teacher / "config.yaml", "a") as f:
        f.write('"\\uda58x": 1\n')
    line = one_error(capsys, "distill", "--teacher", teacher, "--run-dir", "D", "--quiet", needles=("unknown",))
    assert "\\uda58x" in line
    one_error(capsys, "train", teacher / "config.yaml", "--run-dir", "R", "--quiet", needles=("\\uda58x",))
    assert not (work / "D").exists() and not (work / "R").exists()


def test_npz_label_array_of_raw_bytes(capsys, work):
    """Found by test_fuzz.py::test_npz_sources with more examples: a `y` of dtype V4 (raw bytes) was a ValueError from
    astype(int64) with data.task=classification."""
    (work / "d.npz").write_bytes(_npz_bytes(x=np.ones((60, 4), np.float32),
                                            y=np.zeros(60, np.int32).view("V4")))
    one_error(capsys, "train", "--preset", "wine-mlp", "data.source=npz", "data.path=d.npz", "data.task=classification",
              "--quiet", "--run-dir", "R", needles=("V4",))
    assert not (work / "R").exists()

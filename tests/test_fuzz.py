"""Property-based tests of issue 15's invariant: any input is accepted and handled, or refused with a
``TrainwiseError`` (the CLI's exit 2 and one ``error:`` line) — never another exception (a traceback, exit 1) — and
nothing outside the run directory or the named output changes.

Generated inputs: config files and ``key=value`` overrides, CSV and .npz files, damage to a run directory (manifests,
preprocess.json, summary.json, torn JSON, symlinks), HTTP bodies for ``serve``, and whole command lines for ``tune``,
``distill``, ``lr-find``, ``bench-infer`` and ``recipes`` (arguments, overrides, damaged runs, output paths).

Example counts: ``TRAINWISE_FUZZ_EXAMPLES`` (default 8, small enough for ``make test``); a nightly-style run sets
it higher (``TRAINWISE_FUZZ_EXAMPLES=300 pytest tests/test_fuzz.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import string
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwise.cli import main
from trainwise.errors import TrainwiseError

EXAMPLES = int(os.environ.get("TRAINWISE_FUZZ_EXAMPLES", "8"))
# `make test` draws the same examples every run (derandomized: its outcome must not depend on luck); `make fuzz`
# (TRAINWISE_FUZZ_EXAMPLES set) explores new ones each time.
settings.register_profile("trainwise", max_examples=EXAMPLES, deadline=None, database=None,
                          derandomize="TRAINWISE_FUZZ_EXAMPLES" not in os.environ,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("trainwise")

# ---- generators ----------------------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
KEYS = ["seed", "name", "device", "precision", "optim.lr", "optim.name", "optim.weight_decay", "train.epochs",
        "train.grad_clip", "train.patience", "data.batch_size", "data.val_fraction", "data.source", "data.path",
        "model.name", "model.hidden", "model.dropout", "schedule.name", "checkpoint.keep", "faults.lr_factor",
        "tune.trials", "data.options", "optim", "model", "optim..lr", ".lr", "lr.", "nope.key"]
override_values = st.one_of(
    st.sampled_from(["1", "-1", "0", ".inf", "-.inf", ".nan", "1e309", "12345678901234567890123", "[1, 2]", "[-5]",
                     "{a: 1}", "null", "abc", "os:abort", "[[[[[[[[1]]]]]]]]", "&a [*a]", "*a", "!!python/none",
                     "'", "[", "3e-4", "true", "${seed}", "${oc.env:HOME}"]),
    st.text(alphabet=string.printable, max_size=20))
overrides = st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), override_values), max_size=4)


def _yaml_text() -> st.SearchStrategy[str]:
    import yaml

    structured = json_values.map(lambda v: yaml.safe_dump(v, default_flow_style=None))
    raw = st.text(alphabet=string.printable, max_size=200)
    nested = st.integers(min_value=1, max_value=3000).map(lambda n: "a: " + "[" * n + "]" * n + "\n")
    anchors = st.integers(min_value=1, max_value=12).map(
        lambda n: "a0: &a0 [x, x, x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
                                                       for i in range(1, n)))
    return st.one_of(structured, raw, nested, anchors)


# ---- helpers -------------------------------------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def handled(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``: its result, or None when it refused with TrainwiseError; any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except TrainwiseError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), repr(str(exc))  # one line that says something
        return None


def cli_invariant(capsys: pytest.CaptureFixture[str], *argv: object) -> int:
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return rc


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder of files that no command may change; checked after every test that uses it."""
    root = tmp_path_factory.mktemp("outside")
    (root / "victim.txt").write_text("must survive\n" * 20)
    before = _tree(root)
    yield root
    assert _tree(root) == before


@pytest.fixture(scope="module")
def run_copy(digits_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pristine copy of the shared run; each example damages a fresh copy of it (``fresh``)."""
    return digits_run


def fresh(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---- configs and overrides -----------------------------------------------------------------------------------------

@given(text=_yaml_text(), items=overrides)
def test_config_files_and_overrides(tmp_path, text, items):
    from trainwise.config import compose

    p = tmp_path / "c.yaml"
    p.write_text(text)
    handled(compose, p, None, items)
    handled(compose, None, "digits-mlp", items)


# ---- data files ----------------------------------------------------------------------------------------------------

dtypes = st.sampled_from(["f4", "f8", "i8", "u1", "c8", "b1", "U3", "f2", "V4"])
shapes = st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=4).map(tuple)


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["arrays", "bytes", "fake-header"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "fake-header":  # a header that declares any shape over a few bytes of data
        from numpy.lib import format as npformat

        head = io.BytesIO()
        shape = tuple(draw(st.lists(st.integers(min_value=0, max_value=10**7), max_size=3)))
        npformat.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("x.npy", head.getvalue() + draw(st.binary(max_size=64)))
            z.writestr("y.npy", head.getvalue())
        return buf.getvalue()
    arrays = {}
    for name in draw(st.sets(st.sampled_from(["x", "y", "z"]), max_size=3)):
        dtype, shape = draw(dtypes), draw(shapes)
        n = int(np.prod(shape)) if shape else 1
        raw = np.random.default_rng(draw(st.integers(0, 9))).integers(0, 3, size=n)
        arrays[name] = raw.astype(dtype).reshape(shape)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


cells = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True).map(str),
                  st.sampled_from(["", "abc", "inf", "-inf", "nan", "1e999", '"', "0x10", "True"]))


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.text(alphabet=string.printable, max_size=200))
    cols = draw(st.integers(min_value=1, max_value=4))
    header = ["y"] + [f"f{i}" for i in range(cols)] if draw(st.booleans()) else [f"f{i}" for i in range(cols + 1)]
    rows = draw(st.lists(st.lists(cells, min_size=cols + 1, max_size=cols + 1), max_size=12))
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


@given(blob=npz_files(), task=st.sampled_from(["auto", "classification", "regression"]))
def test_npz_sources(tmp_path, blob, task):
    from trainwise.data.sources import load_source

    p = tmp_path / "d.npz"
    p.write_bytes(blob)
    table = handled(load_source, "npz", str(p), None, task)
    if table is not None:
        assert len(table.x) == len(table.y) and np.isfinite(table.x).all()


@given(text=csv_files(), task=st.sampled_from(["auto", "classification", "regression"]))
def test_csv_sources(tmp_path, text, task):
    from trainwise.data.sources import load_source

    p = tmp_path / "d.csv"
    p.write_text(text)
    handled(load_source, "csv", str(p), "y", task)


@given(blob=npz_files(), text=csv_files())
def test_predict_inputs(run_copy, tmp_path, blob, text):
    from trainwise.deploy.predict import read_inputs
    from trainwise.reopen import read_preprocess

    prep = read_preprocess(run_copy / "preprocess.json")
    (tmp_path / "in.npz").write_bytes(blob)
    (tmp_path / "in.csv").write_text(text)
    for name in ("in.npz", "in.csv"):
        out = handled(read_inputs, tmp_path / name, prep, None)
        if out is not None:
            assert out[0].shape[1:] == tuple(prep.input_shape)


# ---- run-directory damage ------------------------------------------------------------------------------------------

RUN_FILES = ["summary.json", "preprocess.json", "history.json", "diagnosis.json", "preflight.json", "config.yaml",
             "metrics.jsonl", "monitors.jsonl"]
damage = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b'{"files": {}}', b"[]", b"null", b"[" * 50_000, b'{"files": {"../x": {}}}']))


@given(which=st.sampled_from(RUN_FILES + ["manifest", "state", "link", "stray"]), blob=damage,
       command=st.sampled_from(["checkpoints", "diagnose", "report", "resume", "predict"]))
def test_run_directory_damage(capsys, run_copy, tmp_path, outside, which, blob, command):
    rd = fresh(run_copy, tmp_path / "run")
    ckpt = sorted((rd / "checkpoints").glob("step-*"))[-1]
    if which == "manifest":
        (ckpt / "manifest.json").write_bytes(blob)
    elif which == "state":
        (ckpt / "state.json").write_bytes(blob)
    elif which == "link":  # every log a run appends to, pointing at a file outside
        for name in ("metrics.jsonl", "monitors.jsonl"):
            (rd / name).unlink()
            (rd / name).symlink_to(outside / "victim.txt")
        (rd / "summary.json").unlink()
    elif which == "stray":
        (rd / "checkpoints" / "step-abc").mkdir()
        (rd / "checkpoints" / "step-abc" / "manifest.json").write_bytes(blob)
    else:
        (rd / which).write_bytes(blob)
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 64), np.float32))
    argv = {"checkpoints": ["checkpoints", rd, "--json"], "diagnose": ["diagnose", rd, "--json"],
            "report": ["report", rd, "--out", tmp_path / "r.html"], "resume": ["resume", rd, "--quiet"],
            "predict": ["predict", rd, tmp_path / "in.npz", "--out", tmp_path / "p.csv"]}[command]
    cli_invariant(capsys, *argv)


# ---- HTTP bodies ---------------------------------------------------------------------------------------------------

@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "rows", "bytes", "deep", "digits"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        n = draw(st.integers(min_value=1, max_value=200_000))
        return b'{"inputs": ' + b"[" * n + b"]" * n + b"}"
    if kind == "digits":
        digits = draw(st.integers(min_value=1, max_value=6000))
        return b'{"inputs": [[' + b"9" * digits + b", 1" * 63 + b"]]}"
    if kind == "rows":
        row = st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none(), st.booleans()),
                       min_size=60, max_size=66)
        return json.dumps({"inputs": draw(st.lists(row, max_size=3))}).encode()
    return json.dumps(draw(json_values)).encode()


@pytest.fixture(scope="module")
def served(run_copy: Path) -> Any:
    from trainwise.deploy.artifacts import open_run

    return open_run(run_copy)


@given(body=bodies())
def test_serve_bodies(served, body):
    from trainwise.deploy.serve import BadRequest, parse_inputs

    try:
        x = parse_inputs(body, served, 4096)
    except BadRequest as exc:
        assert 400 <= exc.status < 500 and str(exc)
        return
    assert x.shape[1:] == tuple(served.prep.input_shape) and np.isfinite(x).all()


# ---- tune, distill, lr-find, bench-infer, recipes: command-line arguments ------------------------------------------
# Each property builds a whole command line and runs it through the CLI. Refusals come before any training; what an
# accepted input would train is kept tiny (lr-find: ≤ 30 steps; distill: one epoch per student) or left out on purpose
# (tune's trials are ordinary training runs: `work` is replaced, so the plan, storage, study and outputs are real but
# no trial trains; bench-infer skips torch.compile and the temporary ONNX export).

def _example_dir(tmp_path: Path) -> Path:
    """A fresh folder per Hypothesis example (the function-scoped tmp_path is shared by all of them)."""
    import uuid

    d = tmp_path / uuid.uuid4().hex[:12]
    d.mkdir()
    return d


OUT_KINDS = ["new", "new/deeper", "file", "file/below", "empty-dir", "full-dir", "outside-dir"]


def _out_path(kind: str, ex: Path, outside: Path) -> Path:
    """An output path of the given kind: new, below a new folder, an existing file, below a file, an existing empty
    or non-empty folder, or the folder no command may touch."""
    (ex / "file").write_text("a file the user owns\n")
    (ex / "full-dir").mkdir(exist_ok=True)
    (ex / "full-dir" / "keep.txt").write_text("keep\n")
    (ex / "empty-dir").mkdir(exist_ok=True)
    return outside if kind == "outside-dir" else ex / kind


def _created_nothing(rc: int, kind: str, path: Path) -> None:
    """Issue 15: a refused command leaves no new folder behind where the user asked for a new one."""
    if rc == 2 and kind in ("new", "new/deeper"):
        assert not path.exists(), sorted(p.name for p in path.iterdir())


TUNE_KEYS = ["tune.space.optim.lr", "tune.space.model.hidden", "tune.space.data.batch_size", "tune.space.nope",
             "tune.space", "tune.metric", "tune.direction", "tune.sampler", "tune.pruner", "tune.trials"]
tune_values = st.sampled_from(["loguniform(1e-4, 1e-2)", "uniform(0, 1)", "int(8, 64)", "int(8, 64, log)",
                               "categorical([8], [16, 16])", "loguniform(0, 1)", "int(3, 1)", "categorical()",
                               "uniform(a, b)", "loguniform(1e-4)", "abc", "val/loss", "val/accuracy", "test/accuracy",
                               "train/loss", "val/nope", "minimize", "maximize", "auto", "tpe", "random", "median",
                               "hyperband", "none", "0", "-1", "{}", "[]", "null"])
tune_items = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(TUNE_KEYS), tune_values),
                                st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), override_values)),
                      max_size=3)


@given(items=tune_items, preset=st.sampled_from(["digits-mlp", "iris-mlp"]),
       trials=st.sampled_from([None, -1, 0, 1, 3]), workers=st.sampled_from([None, -1, 0, 1]),
       storage=st.sampled_from([None, "abc", "sqlite://", "sqlite:///:memory:", "new.db", "file", "file/x.db",
                                "outside", "folder", "postgresql://nobody@127.0.0.1:1/x"]),
       study=st.one_of(st.none(), st.text(alphabet=string.printable, max_size=10)),
       worker=st.sampled_from([None, "a:b", "1:2", "0:1:1"]), out=st.sampled_from(OUT_KINDS))
def test_tune_arguments(capsys, monkeypatch, tmp_path, outside, items, preset, trials, workers, storage, study,
                        worker, out):
    import trainwise.tune.study as tune_study

    monkeypatch.setattr(tune_study, "work", lambda *a, **k: None)  # no trial trains (see above)
    ex = _example_dir(tmp_path)
    monkeypatch.chdir(ex)  # the default --out, runs/tune-NAME, lands here
    out_dir = _out_path(out, ex, outside)
    argv: list[object] = ["tune", "--preset", preset, *items, "--out", out_dir]
    for flag, value in (("--trials", trials), ("--workers", workers), ("--study", study), ("--worker", worker)):
        if value is not None:
            argv += [flag, value]
    if storage is not None:
        where = {"new.db": ex / "new.db", "file": ex / "file", "file/x.db": ex / "file" / "x.db",
                 "outside": outside / "victim.txt", "folder": ex / "full-dir"}.get(storage)
        argv += ["--storage", f"sqlite:///{where}" if where is not None else storage]
    rc = cli_invariant(capsys, *argv)
    _created_nothing(rc, out, out_dir)


DISTILL_DAMAGE = ["none", "config.yaml", "preprocess.json", "best.safetensors", "final.safetensors", "summary.json",
                  "no-weights", "missing", "not-a-run"]
distill_items = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["distill.temperature", "distill.alpha", "distill.teacher"]),
              st.sampled_from(["0", "-1", "0.5", "1", "2", "1.5", ".inf", ".nan", "abc", "null"])),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), override_values)), max_size=3)


@given(which=st.one_of(st.just("none"), st.sampled_from(DISTILL_DAMAGE)), blob=damage, items=distill_items,
       preset=st.sampled_from([None, "digits-mlp", "iris-mlp", "digits-gan"]), out=st.sampled_from(OUT_KINDS))
def test_distill_arguments(capsys, monkeypatch, run_copy, tmp_path, outside, which, blob, items, preset, out):
    ex = _example_dir(tmp_path)
    monkeypatch.chdir(ex)
    teacher = fresh(run_copy, ex / "teacher")
    if which == "missing":
        teacher = ex / "nowhere"
    elif which == "not-a-run":
        teacher = outside
    elif which == "no-weights":
        for name in ("best.safetensors", "final.safetensors"):
            (teacher / name).unlink()
    elif which != "none":
        (teacher / which).write_bytes(blob)
    run_dir = _out_path(out, ex, outside)
    # one epoch per student, whatever the generated overrides say (the last override wins)
    argv: list[object] = ["distill", "--teacher", teacher, *items, "train.epochs=1", "--run-dir", run_dir, "--quiet"]
    if preset is not None:
        argv += ["--preset", preset]
    rc = cli_invariant(capsys, *argv)
    _created_nothing(rc, out, run_dir)


@given(items=overrides, start=st.sampled_from(["1e-7", "1e-4", "0", "-1", "nan", "inf", "1e-320", "10", "abc"]),
       end=st.sampled_from(["10", "1", "1e-9", "inf", "nan", "1e308", "0"]),
       steps=st.sampled_from(["-1", "0", "7", "8", "20", "30", "x"]), out=st.sampled_from(OUT_KINDS))
def test_lr_find_arguments(capsys, monkeypatch, tmp_path, outside, items, start, end, steps, out):
    ex = _example_dir(tmp_path)
    monkeypatch.chdir(ex)
    out_dir = _out_path(out, ex, outside)
    if out == "outside-dir":  # the folder no command may touch is given as a file below it instead
        out_dir = outside / "victim.txt" / "lr"
    rc = cli_invariant(capsys, "lr-find", "--preset", "digits-mlp", *items, "--start-lr", start, "--end-lr", end,
                       "--steps", steps, "--out", out_dir)
    _created_nothing(rc, out, out_dir)


BENCH_DAMAGE = ["none", "config.yaml", "preprocess.json", "best.safetensors", "export/model.onnx",
                "export/export.json", "quantized/quantize.json", "quantized/model.int8.onnx", "missing"]


# Valid values as often as invalid ones: otherwise nearly every example stops at the first bad argument and the
# measurement (and what a damaged artefact does to it) is rarely reached.
@given(which=st.sampled_from(BENCH_DAMAGE), blob=damage,
       repeats=st.one_of(st.just("1"), st.sampled_from(["-1", "0", "2", "x"])),
       skip=st.sets(st.sampled_from(["eager", "no_grad", "inference_mode", "onnxruntime", "int8"]), max_size=3),
       bad_skip=st.sampled_from([False, False, False, True]),
       threads=st.one_of(st.none(), st.sampled_from(["-1", "0", "1", "2"])), as_json=st.booleans())
def test_bench_infer_arguments(capsys, run_copy, tmp_path, outside, which, blob, repeats, skip, bad_skip, threads,
                               as_json):
    import torch

    ex = _example_dir(tmp_path)
    rd = fresh(run_copy, ex / "run")
    if which == "missing":
        rd = ex / "nowhere"
    elif which != "none":
        (rd / which).parent.mkdir(exist_ok=True)
        (rd / which).write_bytes(blob)
    skips = {"compile", *skip, *(["nope"] if bad_skip else [])}
    if not which.startswith("export/"):  # a damaged model.onnx is loaded (cheap); otherwise it would be exported
        skips.add("onnxruntime")
    argv: list[object] = ["bench-infer", rd, "--repeats", repeats, *[a for s in sorted(skips) for a in ("--skip", s)]]
    if threads is not None:
        argv += ["--threads", threads]
    if as_json:
        argv.append("--json")
    n = torch.get_num_threads()
    try:
        cli_invariant(capsys, *argv)
    finally:
        torch.set_num_threads(n)  # --threads sets the process-wide count


RECIPE = ("'''A trivial recipe: one verdict.'''\nimport json, os\n"
          "with open(os.environ['TRAINWISE_RECIPES_JSONL'], 'a') as f:\n"
          "    f.write(json.dumps({'topic': {n}, 'subject': 'x', 'claim': 'c', 'verdict': 'HOLDS', 'evidence': 'e',"
          " 'command': 'c'}) + '\\n')\n")


@given(action=st.one_of(st.none(), st.just("run"), st.text(alphabet=string.printable, max_size=6)),
       numbers=st.lists(st.sampled_from(["1", "2", "01", " 1", "3", "-1", "0", "abc", "1e3", "", "9" * 20]),
                        max_size=3),
       fast=st.booleans(), out=st.sampled_from([None, "new.md", "new/deeper.md", "claims", "damaged", "binary",
                                                "full-dir", "file/below.md"]))
def test_recipes_arguments(capsys, monkeypatch, tmp_path, outside, action, numbers, fast, out):
    """Argument handling of ``trainwise recipes``: the recipes folder is two trivial recipes here (the real ones run
    for minutes and belong to ``make recipes``)."""
    import trainwise.recipes_cmd as rc_mod

    ex = _example_dir(tmp_path)
    (ex / "recipes").mkdir()
    for n in (1, 2):
        (ex / "recipes" / f"0{n}_trivial.py").write_text(RECIPE.replace("{n}", str(n)))
    monkeypatch.setattr(rc_mod, "repo_root", lambda: ex)  # recipes/ and the default docs/claims.md under ex
    argv: list[object] = ["recipes"]
    if action is not None:
        argv += [action, *numbers]
    if fast:
        argv.append("--fast")
    if out is not None:
        _out_path("new", ex, outside)  # makes "file" and "full-dir"
        path = ex / (f"{out}.md" if out in ("claims", "damaged", "binary") else out)
        if out == "claims":
            path.write_text(rc_mod._table([{"topic": 7, "subject": "s", "claim": "c", "verdict": "HOLDS",
                                              "evidence": "e", "command": "c"}]))
        elif out == "damaged":
            path.write_text("# Claims\n<!-- row {\"topic\": 1, -->\n<!-- row [] -->\n")
        elif out == "binary":
            path.write_bytes(b"\xff\xfe\x00garbage")
        argv += ["--out", path]
    cli_invariant(capsys, *argv)

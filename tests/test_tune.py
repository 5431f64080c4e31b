"""``trainwise tune``: space syntax, default space, a small real study, kill-and-resume, two workers, best.yaml."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from trainwise.cli import main
from trainwise.config import compose
from trainwise.errors import TrainwiseError
from trainwise.tune.space import default_space, flatten, format_value, parse_dim, parse_space

Cli = Callable[..., subprocess.CompletedProcess]  # the ``cli`` fixture of conftest.py
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SPACE_YAML = """\
tune:
  metric: val/accuracy
  space:
    optim:
      lr: loguniform(1e-3, 3e-2)      # nested form; the preset's 0.005 is inside
    model.hidden: categorical([32,32], [64,64], [64])   # flat dotted form; lists as YAML
"""
STUDY_ARGS = ["space.yaml", "--preset", "iris-mlp", "train.epochs=3", "tune.space.data.batch_size=categorical(16, 32)",
              "--trials", "5", "--out", "T"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m trainwise ARGS`` in ``cwd`` (for module-scoped fixtures, where the ``cli`` fixture is not
    available); OMP_NUM_THREADS=1 is inherited from conftest.py."""
    return subprocess.run([sys.executable, "-m", "trainwise", *args], cwd=cwd, env={**os.environ, "COLUMNS": "120"},
                          capture_output=True, text=True, timeout=300)


def _study(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _peek(db: Path) -> tuple[int, int]:
    """(finished trials, RUNNING trials that reached their run directory), read-only: opening the study with Optuna
    while the tune process creates its tables would race with it."""
    if not db.exists():
        return 0, 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        done = con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
        training = con.execute("SELECT count(*) FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id"
                               " WHERE t.state = 'RUNNING' AND a.key = 'run_dir'").fetchone()[0]
        return done, training
    except sqlite3.OperationalError:  # tables not created yet, or a writer holds the lock
        return 0, 0
    finally:
        con.close()


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


# ---- space syntax (in-process, fast) -------------------------------------------------------------------------------

def test_distribution_forms_parse() -> None:
    d = parse_dim("optim.lr", "loguniform(1e-5, 1e-1)")
    assert (d.kind, d.low, d.high) == ("loguniform", 1e-5, 1e-1)
    assert parse_dim("model.dropout", "uniform(0, 0.5)").high == 0.5
    i = parse_dim("model.blocks", "int(1, 4)")
    assert (i.kind, i.low, i.high, i.log) == ("int", 1, 4, False)
    assert parse_dim("data.batch_size", "int(16, 256, log)").log
    c = parse_dim("model.hidden", "categorical([128,128], [256,256])")
    assert c.choices == ([128, 128], [256, 256])
    assert c.encoded() == ("[128, 128]", "[256, 256]")  # Optuna's categorical choices must be scalars
    assert c.decode("[256, 256]") == [256, 256]
    assert parse_dim("schedule.name", "categorical(cosine, constant)").choices == ("cosine", "constant")
    assert parse_dim("optim.weight_decay", "categorical(0, 1e-4)").choices == (0, 1e-4)  # 1e-4 read as a float
    # nested, flat and mixed spellings give the same dotted keys
    assert flatten({"optim": {"lr": "a"}, "model.hidden": "b"}) == {"optim.lr": "a", "model.hidden": "b"}
    assert format_value(1e-05) in ("1.0e-05", "1e-05") and format_value([32, 32]) == "[32, 32]"


@pytest.mark.parametrize("text, why", [
    ("normal(0, 1)", "unknown distribution 'normal'"),
    ("loguniform(0, 1)", "0 < low"),
    ("uniform(1, 1)", "low < high"),
    ("int(1.5, 3)", "two integers"),
    ("int(1, 8, lgo)", "two integers"),
    ("categorical()", "at least one value"),
    ("categorical(a, a)", "twice"),
    ("1e-3", "not a distribution"),
])
def test_malformed_distribution_names_key_and_forms(text: str, why: str) -> None:
    with pytest.raises(TrainwiseError) as e:
        parse_dim("optim.lr", text)
    msg = str(e.value)
    assert "'optim.lr'" in msg and why in msg and "loguniform(low, high)" in msg and "categorical(" in msg


def test_tune_section_cannot_be_searched() -> None:
    with pytest.raises(TrainwiseError, match="tune section"):
        parse_space({"tune": {"trials": "int(1, 3)"}})


def test_compose_accepts_space_overrides() -> None:
    cfg = compose(None, "iris-mlp", ["tune.space.optim.lr=loguniform(1e-4,1e-2)",
                                     "tune.space.model.hidden=categorical([128,128], [256,256])"])
    assert dict(cfg.tune.space.optim) == {"lr": "loguniform(1e-4,1e-2)"}
    assert parse_space({"model": dict(cfg.tune.space.model)})[0].choices == ([128, 128], [256, 256])


def test_default_space_follows_the_model_and_holds_the_config(tmp_path: Path) -> None:
    from trainwise.tune.study import baseline_params, plan

    p = plan(None, "iris-mlp", [], 3, None, None, 1, str(tmp_path / "out"))  # plans only: creates nothing
    assert list(tmp_path.iterdir()) == []
    keys = [d.key for d in p.dims]
    assert keys == ["optim.lr", "data.batch_size", "model.hidden", "optim.weight_decay", "schedule.name",
                    "schedule.warmup_fraction", "model.dropout"]
    lr = p.dims[0]
    assert lr.low == pytest.approx(5e-4) and lr.high == pytest.approx(5e-2) and lr.kind == "loguniform"
    base = baseline_params(p)  # every dimension that applies contains the preset's own value
    assert base == {"optim.lr": 0.005, "data.batch_size": 16, "model.hidden": "[32, 32]",
                    "optim.weight_decay": 0.01, "schedule.name": "cosine", "model.dropout": 0.0}
    cnn = [d.key for d in default_space(compose(None, "digits-cnn", []))]
    assert "model.width" in cnn and "model.blocks" in cnn and "model.dropout" in cnn and "model.hidden" not in cnn


# ---- command line: errors and --help ---------------------------------------------------------------------------------

def test_help_does_not_import_torch_or_optuna(tmp_path: Path) -> None:
    code = ("import sys\nfrom trainwise.cli import main\ntry:\n    main(['tune', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('LOADED', 'torch' in sys.modules, 'optuna' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--trials N" in proc.stdout and "--workers K" in proc.stdout and "--storage URL" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "LOADED False False"


def test_bad_space_exits_2_with_one_line_and_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    proc = cli("tune", "--preset", "iris-mlp", "tune.space.optim.lr=loguniform(0, 1)", "--trials", "2")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tune.space key 'optim.lr'"), proc.stderr
    assert "valid forms: loguniform(low, high)" in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override, expect", [
    ("tune.space.optim.lrr=loguniform(1e-4,1e-2)", "'optim.lrr'"),                 # unknown config key
    ("tune.space.model.hiden=categorical([32],[64])", "did you mean 'hidden'"),     # unknown model argument
    ("tune.space.model.hidden=categorical(32, 64)", "expected list"),               # wrong type for the model
    ("tune.space.optim.lr=uniform(-1, 1)", "optim.lr must be > 0"),                 # fails config validation
    ("tune.space.schedule.name=categorical(cosine, cosin)", "did you mean 'cosine'"),
    ("tune.metric=test/accuracy", "test split"),
])
def test_space_and_metric_mistakes_are_one_line_errors(override: str, expect: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--preset", "iris-mlp", override, "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
    assert list(tmp_path.iterdir()) == []


# ---- a small real study --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def iris_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """5 trials × 3 epochs of iris-mlp on a space from YAML (nested + flat keys) and a command-line override."""
    root = tmp_path_factory.mktemp("tune")
    (root / "space.yaml").write_text(SPACE_YAML)
    proc = _run("tune", *STUDY_ARGS, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_study_is_at_least_as_good_as_the_default_config(iris_study: tuple[Path, subprocess.CompletedProcess],
                                                         cli: Cli, tmp_path: Path) -> None:
    root, proc = iris_study
    # The preset's default config, same epochs and seed, trained the ordinary way.
    base = cli("train", "--preset", "iris-mlp", "train.epochs=3", "--run-dir", "base", "--quiet")
    assert base.returncode == 0, base.stderr
    base_acc = json.loads((tmp_path / "base" / "summary.json").read_text())["val/accuracy"]
    study = _study(root / "T", "iris-mlp")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # from the metric's name
    trials = _finished(study)
    assert len(trials) == 5 and {t.number for t in trials} == set(range(5))
    t0 = study.trials[0]
    assert t0.params == {"optim.lr": 0.005, "model.hidden": "[32, 32]", "data.batch_size": 16}
    assert t0.user_attrs["baseline"] is True
    assert t0.value == base_acc  # trial 0 *is* the default run: same config, seed and code path
    assert study.best_value >= base_acc
    for t in trials:  # every trial stayed inside the space
        assert 1e-3 <= t.params["optim.lr"] <= 3e-2
        assert t.params["model.hidden"] in ("[32, 32]", "[64, 64]", "[64]")
        assert t.params["data.batch_size"] in (16, 32)
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("trial ")]) == 5


def test_outputs_and_trial_run_directories(iris_study: tuple[Path, subprocess.CompletedProcess]) -> None:
    root, proc = iris_study
    out = root / "T"
    study = _study(out, "iris-mlp")
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [int(r["trial"]) for r in rows][0] == study.best_trial.number and len(rows) == 5
    assert {"rank", "trial", "state", "value", "optim.lr", "model.hidden", "data.batch_size", "run_dir"} <= set(rows[0])
    values = [float(r["value"]) for r in rows if r["state"] == "COMPLETE"]
    assert values == sorted(values, reverse=True)  # maximize: best first
    imp = json.loads((out / "importances.json").read_text())
    assert set(imp["importances"]) <= {"optim.lr", "model.hidden", "data.batch_size"} and imp["importances"]
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for t in study.trials:  # every trial is an ordinary, complete run directory
        rd = root / t.user_attrs["run_dir"]
        assert rd == out / f"trial-{t.number:04d}"
        for name in ("config.yaml", "summary.json", "metrics.jsonl", "best.safetensors"):
            assert (rd / name).is_file(), (rd, name)
    assert "leaderboard.csv" in proc.stdout and "best.yaml" in proc.stdout


def test_best_yaml_trains_and_reproduces_the_best_trial(iris_study: tuple[Path, subprocess.CompletedProcess],
                                                        cli: Cli, tmp_path: Path) -> None:
    root, _ = iris_study
    study = _study(root / "T", "iris-mlp")
    best = study.best_trial
    proc = cli("train", str(root / "T" / "best.yaml"), "--run-dir", "B", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "B" / "config.yaml").read_text() == \
        (root / best.user_attrs["run_dir"] / "config.yaml").read_text()
    assert json.loads((tmp_path / "B" / "summary.json").read_text())["val/accuracy"] == best.value


def test_resuming_with_another_config_is_refused_and_changes_nothing(
        iris_study: tuple[Path, subprocess.CompletedProcess], snap: Callable[[Path], dict[str, str]]) -> None:
    root, _ = iris_study
    before = snap(root / "T")
    args = [a if a != "train.epochs=3" else "train.epochs=4" for a in STUDY_ARGS]
    proc = _run("tune", *args, cwd=root)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "created from another config (differs at: train.epochs)" in lines[0], proc.stderr
    assert snap(root / "T") == before


# ---- resume after SIGKILL, and two workers ---------------------------------------------------------------------------

@pytest.mark.slow
def test_killed_study_resumes_with_finished_trials_intact(tmp_path: Path, cli: Cli) -> None:
    args = ["tune", "--preset", "iris-mlp", "train.epochs=3", "--trials", "8", "--out", "K"]
    env = {**os.environ, "COLUMNS": "120"}
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "trainwise", *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    db = tmp_path / "K" / "study.db"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            if proc.poll() is not None:
                pytest.fail(f"tune ended (rc {proc.returncode}) before it could be killed mid-study:\n"
                            + (tmp_path / "first.log").read_text())
            done, training = _peek(db)
            if done >= 2 and training:  # kill mid-trial: ≥ 2 trials finished and one training in its run directory
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    kept = {t.number: (t.state, t.value, t.params) for t in _finished(_study(tmp_path / "K", "iris-mlp"))}
    assert 2 <= len(kept) < 8

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    study = _study(tmp_path / "K", "iris-mlp")
    done = _finished(study)
    assert len(done) == 8
    assert {t.number: (t.state, t.value, t.params) for t in done if t.number in kept} == kept  # intact
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))  # the trial the kill interrupted
    assert len(failed) == 1 and failed[0].user_attrs["pid"] == proc.pid
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retry) == 1 and retry[0].state in FINISHED  # re-queued once, with the same parameters
    assert retry[0].params == failed[0].params
    assert "left running by a killed process" in resumed.stdout

    again = cli(*args)  # the study already has 8 finished trials: nothing more runs
    assert again.returncode == 0, again.stderr
    assert len(_study(tmp_path / "K", "iris-mlp").trials) == len(study.trials)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path: Path, cli: Cli) -> None:
    proc = cli("tune", "--preset", "digits-mlp", "train.epochs=3", "--trials", "6", "--workers", "2",
               "--out", "W")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    study = _study(tmp_path / "W", "digits-mlp")
    assert len(study.trials) == 6 and len(_finished(study)) == 6  # exactly N, no failed or surplus trials
    assert sorted(t.number for t in study.trials) == list(range(6))
    pids = [t.user_attrs["pid"] for t in study.trials]
    assert len(set(pids)) == 2 and sorted(pids.count(p) for p in set(pids)) == [3, 3]  # both processes worked
    a, b = sorted(set(pids))
    spans = {pid: [(t.datetime_start, t.datetime_complete) for t in study.trials if t.user_attrs["pid"] == pid]
             for pid in (a, b)}
    assert any(s1 < e2 and s2 < e1 for s1, e1 in spans[a] for s2, e2 in spans[b]), spans  # really side by side
    dirs = {t.user_attrs["run_dir"] for t in study.trials}
    assert len(dirs) == 6 and all((tmp_path / d / "summary.json").is_file() for d in dirs)
    assert len(list(csv.DictReader((tmp_path / "W" / "leaderboard.csv").open()))) == 6
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("trial ")]) == 6


def test_pruning_stops_the_loop_through_the_fit_callback(tmp_path: Path) -> None:
    """A pruner that always prunes: the trial stops after its first reported epoch, is recorded as PRUNED, and its
    run directory is still a complete run (summary.json says the callback stopped it)."""
    from trainwise.tune.study import make_objective, plan

    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    p = plan(None, "iris-mlp", ["train.epochs=3", "tune.space.optim.lr=loguniform(1e-3, 1e-2)"], 1, None, None, 1,
             str(tmp_path / "out"))
    study = optuna.create_study(direction=p.direction, pruner=AlwaysPrune())
    study.optimize(make_objective(p), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.PRUNED and list(t.intermediate_values) == [1]
    summary = json.loads((tmp_path / "out" / "trial-0000" / "summary.json").read_text())
    assert summary["stopped"] == "callback" and summary["epochs"] == 1
    assert t.intermediate_values[1] == json.loads(
        (tmp_path / "out" / "trial-0000" / "history.json").read_text())[0]["val/loss"]

"""``trainwise tune``: an Optuna study whose trials are ordinary trainwise runs.

One process (the coordinator) validates the space, creates or resumes the study in its storage, fails trials left
RUNNING by a killed process on this machine, runs the remaining trials itself (``--workers 1``) or through K worker
processes with fixed shares (``--workers K``), and writes the outputs. Trials are pruned from inside the training
loop through a ``fit`` callback.
"""

from __future__ import annotations

import datetime
import math
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from trainwise.build import build_model, load_data
from trainwise.config import compose
from trainwise.errors import TrainingInterrupted, TrainwiseError
from trainwise.models import get_spec
from trainwise.run.paths import discarded_on_failure
from trainwise.safety import check_creatable
from trainwise.tasks import minimize
from trainwise.train.loop import fit, seed_everything
from trainwise.tune.outputs import write_outputs
from trainwise.tune.plan import Plan
from trainwise.tune.space import Dim, default_space, overrides_for, parse_space, validate_space

HOST = socket.gethostname()
HEARTBEAT_S = 10  # a worker's liveness is written to the storage this often while it runs a trial
GRACE_S = 60  # a RUNNING trial without a heartbeat for this long belongs to a dead worker: failed, then retried
# A live worker records its host and pid within milliseconds of creating a trial; a RUNNING trial still without
# them after this long was created by a process killed in that instant.
OWNERLESS_S = 30
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ATTR = "trainwise"  # study user attribute recording what the study searches (checked on every resume)
def plan(config: str | None, preset: str | None, overrides: list[str], trials: int | None, storage: str | None,
         study: str | None, workers: int, out: str | None) -> Plan:
    """Compose and check everything (config, metric, space, paths); raises TrainwiseError, creates nothing."""
    cfg = compose(config, preset, overrides)
    n = trials if trials is not None else int(cfg.tune.trials)
    if n < 1:
        raise TrainwiseError(f"--trials must be ≥ 1, not {n}")
    if workers < 1:
        raise TrainwiseError(f"--workers must be ≥ 1, not {workers}")
    metric = str(cfg.train.monitor) if cfg.tune.metric == "auto" else str(cfg.tune.metric)
    split = metric.split("/", 1)[0]
    if "/" not in metric or split not in ("val", "train"):
        hint = " (choosing hyperparameters on the test split would make its score meaningless)" \
            if split == "test" else ""
        raise TrainwiseError(f"tune.metric={metric} must name a validation or training metric such as val/loss or "
                             f"val/accuracy{hint}")
    if split == "val" and cfg.data.val_fraction == 0:
        raise TrainwiseError(f"tune.metric={metric} needs a validation split but data.val_fraction=0; set "
                             "data.val_fraction=0.1 (or tune a train/ metric)")
    direction: Literal["minimize", "maximize"] = cfg.tune.direction if cfg.tune.direction != "auto" else (
        "minimize" if minimize(metric) else "maximize")
    space = OmegaConf.to_container(cfg.tune.space, resolve=True)
    assert isinstance(space, dict)
    dims = parse_space(cast(dict[str, Any], space)) if space else default_space(cfg)

    def compose_with(extra: list[str]) -> DictConfig:
        return compose(config, preset, [*overrides, *extra])

    validate_space(dims, cfg, compose_with)
    name = study or str(cfg.name)
    out_dir = check_creatable(Path(out) if out else Path("runs") / f"tune-{name}", "--out")
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainwiseError(f"--out '{out_dir}' exists and is not a directory")
    url = storage or f"sqlite:///{out_dir.resolve() / 'study.db'}"
    _check_sqlite_file(url)
    if url in ("sqlite://", "sqlite:///", "sqlite:///:memory:") or url.startswith("sqlite:///:memory:?"):
        # every pooled connection would open its own empty database: optuna's tables vanish after the first
        raise TrainwiseError(f"--storage '{url}' is an in-memory SQLite database, which cannot hold a study; give a "
                             "file (sqlite:///study.db) or a server URL")
    return Plan(config, preset, list(overrides), cfg, dims, not space, metric, direction, name, out_dir, url, n,
                workers)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL (None: another database, or SQLite in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url[len("sqlite:///"):].split("?", 1)[0]
    return None if raw in ("", ":memory:") else Path(raw)


def _check_sqlite_file(url: str) -> None:
    """SQLite adopts any small existing file as an empty database and rewrites it: ``--storage sqlite:///notes.txt``
    replaced the user's file with a study. A file that is not already a SQLite database is refused."""
    path = _sqlite_file(url)
    if path is None:
        return
    check_creatable(path, "--storage")
    if path.is_dir():
        raise TrainwiseError(f"--storage '{url}' names a folder; give a database file (sqlite:///study.db)")
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\0":
            raise TrainwiseError(f"--storage '{url}': '{path}' exists and is not a SQLite database; give a new file "
                                 "or the study's database (nothing was changed)")


# ---- storage and study -------------------------------------------------------------------------------------------

def open_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage with a long SQLite lock timeout (several workers write to one file) and heartbeats, so trials of
    a worker that died on another machine are failed and retried once after ``GRACE_S``."""
    from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 300}  # wait for a busy writer instead of "database is locked"
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats are "experimental" since optuna 2.8
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
            if url.startswith("sqlite"):
                _serialize_sqlite(storage.engine)
            return storage
        except (OperationalError, IntegrityError) as exc:
            # Processes creating the tables of a new database at once: "table … already exists", a duplicate
            # version row, "database is locked". A moment later the database is complete.
            transient = isinstance(exc, IntegrityError) or "already exists" in str(exc) or "locked" in str(exc)
            if not transient or attempt == 4:
                raise TrainwiseError(f"cannot open --storage '{url}': {str(exc).splitlines()[0]}") from None
            time.sleep(0.2 * (attempt + 1))
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise TrainwiseError(f"cannot open --storage '{url}': {str(exc).splitlines()[0]}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _serialize_sqlite(engine: Any) -> None:
    """Make every SQLite transaction ``BEGIN IMMEDIATE`` (SQLAlchemy's pysqlite recipe).

    Why: Optuna claims a queued (WAITING) trial by reading its state and then updating it, relying on ``SELECT …
    FOR UPDATE``, which SQLite ignores; and pysqlite only begins a transaction at the first write. Two workers could
    both read WAITING and both run the same trial (seen here with the enqueued baseline: two processes training
    into ``trial-0000``). Taking the write lock at the start of each transaction makes the read-then-update atomic.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN of its own; the listener below does

    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections pooled while the storage was created predate the listeners


def _seed(cfg_seed: int, worker: int, n_trials: int) -> int:
    """Each worker (and each resumed invocation) gets its own sampler stream: identical seeds would make concurrent
    workers, or a resumed study's random start-up phase, propose the same parameters again."""
    return int(np.random.SeedSequence([cfg_seed, worker, n_trials]).generate_state(1)[0])


def make_sampler(p: Plan, worker: int, n_trials: int) -> optuna.samplers.BaseSampler:
    seed = _seed(int(p.cfg.seed), worker, n_trials)
    if p.cfg.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(p: Plan) -> optuna.pruners.BasePruner:
    epochs = int(p.cfg.train.epochs)
    if p.cfg.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 5))
    if p.cfg.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def base_value(cfg: DictConfig, key: str) -> Any:
    """The config's own value for a searched key (a model argument left out of the config: the builder's default)."""
    if key.startswith("model.") and key != "model.name":
        arg = key[len("model."):]
        if arg in cfg.model:
            return OmegaConf.select(cfg, key)
        spec_args = get_spec(str(cfg.model.name)).arguments()
        return spec_args[arg][1] if arg in spec_args else None
    return OmegaConf.select(cfg, key, default=None)


def _active(d: Dim, values: dict[str, Any], cfg: DictConfig) -> bool:
    if d.when is None:
        return True
    key, allowed = d.when
    return (values[key] if key in values else base_value(cfg, key)) in allowed


def baseline_params(p: Plan) -> dict[str, Any]:
    """The config's own values, for the dimensions that contain them: enqueued as trial 0, so the study never ends
    worse than the config it started from (the same seed and epochs make trial 0 that very run)."""
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for d in p.dims:
        v = base_value(p.cfg, d.key)
        values[d.key] = v
        if not _active(d, values, p.cfg):
            continue
        ok, stored = d.encode_if_contained(v)
        if ok:
            params[d.key] = stored
    return params


def open_study(p: Plan, storage: optuna.storages.RDBStorage, worker: int, create: bool) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trainwise prints its own line per trial; no tracebacks
    pruner = make_pruner(p)
    if not create:
        try:
            study = optuna.load_study(study_name=p.study_name, storage=storage, pruner=pruner)
        except KeyError:  # optuna's "Record does not exist."
            raise TrainwiseError(f"study '{p.study_name}' does not exist in {p.storage_url}; --worker is internal "
                                 "(the coordinating 'trainwise tune' creates the study first)") from None
        study.sampler = make_sampler(p, worker, len(study.get_trials(deepcopy=False)))
        return study
    study = optuna.create_study(storage=storage, study_name=p.study_name, direction=p.direction, pruner=pruner,
                                load_if_exists=True)
    study.sampler = make_sampler(p, worker, len(study.get_trials(deepcopy=False)))
    wanted = optuna.study.StudyDirection.MINIMIZE if p.direction == "minimize" else \
        optuna.study.StudyDirection.MAXIMIZE
    if study.direction != wanted:
        raise TrainwiseError(f"study '{p.study_name}' in {p.storage_url} {study.direction.name.lower()}s, but this "
                             f"command would {p.direction} {p.metric}; use the same tune.metric/tune.direction or "
                             "another --study")
    record = p.record()
    old = study.user_attrs.get(ATTR)
    if old is None:
        study.set_user_attr(ATTR, record)
        if not study.trials:
            study.enqueue_trial(baseline_params(p), user_attrs={"baseline": True}, skip_if_exists=True)
    else:
        _check_same(p, old, record)
    return study


def _check_same(p: Plan, old: dict[str, Any], new: dict[str, Any]) -> None:
    where = f"study '{p.study_name}' in {p.storage_url}"
    fix = "rerun with the same config, preset and overrides, or give another --study"
    if old.get("metric") != new["metric"]:
        raise TrainwiseError(f"{where} optimises {old.get('metric')}, not {new['metric']}; {fix}")
    if old.get("space") != new["space"]:
        keys = sorted(set(old.get("space", {})) ^ set(new["space"]) |
                      {k for k in new["space"] if old.get("space", {}).get(k, new["space"][k]) != new["space"][k]})
        raise TrainwiseError(f"{where} was created with another search space (differs at: {', '.join(keys)}); {fix}")
    oc, nc = old.get("config", {}), new["config"]
    diff = sorted(k for k in set(oc) | set(nc) if oc.get(k) != nc.get(k))
    if diff:
        raise TrainwiseError(f"{where} was created from another config (differs at: {', '.join(diff[:6])}"
                             f"{', …' if len(diff) > 6 else ''}); {fix}")


# ---- trials left RUNNING by a killed process -----------------------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    if Path("/proc/self/stat").exists():
        now = _proc_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study, storage: optuna.storages.RDBStorage) -> list[int]:
    """Trials RUNNING in a process of this machine that no longer exists (SIGKILL, power loss) are failed now and
    re-queued once with the same parameters; trials of other machines are left to the heartbeat (``GRACE_S``)."""
    failed = []
    study_id = storage.get_study_id_from_name(study.study_name)
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ua = t.user_attrs
        if "host" not in ua:
            started = t.datetime_start
            if started is None or (now - started).total_seconds() < OWNERLESS_S:
                continue
        elif ua["host"] != HOST or "pid" not in ua or _alive(int(ua["pid"]), ua.get("proc_start")):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(t.number)
                _retry(study, storage.get_trial(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            pass
    return failed


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)


# ---- one trial -----------------------------------------------------------------------------------------------------

def trial_dir(out: Path, number: int) -> Path:
    return out / f"trial-{number:04d}"


def make_objective(p: Plan) -> Callable[[optuna.trial.Trial], float]:
    split, name = p.metric.split("/", 1)
    start = _proc_start(os.getpid())

    def objective(trial: optuna.trial.Trial) -> float:
        # Owner first: if this process dies from here on, the next tune on this machine can tell the trial is dead.
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        if start is not None:
            trial.set_user_attr("proc_start", start)
        values: dict[str, Any] = {}
        for d in p.dims:
            if _active(d, values, p.cfg):
                values[d.key] = d.suggest(trial)
        run_dir = trial_dir(p.out, trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        cfg = p.compose(overrides_for(values))
        if run_dir.exists():
            raise TrainwiseError(f"trial directory '{run_dir}' already exists (from another study?); give another "
                                 "--out or --study")
        splits = load_data(cfg)
        seed_everything(cfg.seed)  # model init is part of the run's randomness, as in trainwise train
        model = build_model(cfg, splits.preprocess, splits.num_classes)
        pruned_at: list[int] = []
        epochs = int(cfg.train.epochs)

        def report(event: dict[str, Any]) -> bool | None:
            if event.get("split") != split or (split == "train" and not event.get("epoch_end")):
                return None
            v = event.get(name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                return None
            epoch = int(event["epoch"]) + 1  # epochs completed: the resource Hyperband counts
            trial.report(float(v), epoch)
            if epoch < epochs and trial.should_prune():  # after the last epoch the run is complete: keep it
                pruned_at.append(epoch)
                return True  # the loop stops after this epoch; the run directory stays complete
            return None

        result = fit(model, splits, config=cfg, run_dir=run_dir, quiet=True, callbacks=[report])
        s = result.summary
        trial.set_user_attr("epochs", s.get("epochs"))
        trial.set_user_attr("stopped", s.get("stopped"))
        if p.metric not in s:
            have = ", ".join(k for k in s if k.startswith(("val/", "train/")))
            raise TrainwiseError(f"tune.metric={p.metric} is not among this run's metrics ({have})")
        if pruned_at:
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at[0]}")
        value = float(s[p.metric])
        if not math.isfinite(value):  # diverged: no usable result, but a finished trial (not retried)
            trial.set_user_attr("stopped", f"{s.get('stopped')}, non-finite {p.metric}")
            raise optuna.TrialPruned(f"{p.metric} is {value}")
        return value

    return objective


# ---- workers -------------------------------------------------------------------------------------------------------

def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def describe(t: FrozenTrial, metric: str) -> str:
    state = t.state.name.lower()
    if t.state == TrialState.COMPLETE:
        value = f"{metric}={t.value:.4f}"
    elif t.intermediate_values:
        step = max(t.intermediate_values)
        value = f"{metric}={t.intermediate_values[step]:.4f} at epoch {step}"
    else:
        value = f"{metric}=-"
    params = " ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    return f"trial {t.number:>4}  {state:<8} {value}  {params}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v).replace(" ", "")


def work(p: Plan, study: optuna.Study, quota: int, console: Console, parent: int | None = None) -> None:
    """Run up to ``quota`` trials, stopping early once the study has ``p.trials`` finished ones (other workers and
    machines contribute) or, for a worker process, once its coordinator is gone."""
    objective = make_objective(p)

    def show(study: optuna.Study, t: FrozenTrial) -> None:
        console.print(describe(t, p.metric), soft_wrap=True, markup=False)

    for _ in range(quota):
        if finished(study) >= p.trials or (parent is not None and os.getppid() != parent):
            return
        before = {t.number for t in study.get_trials(deepcopy=False)}
        try:
            study.optimize(objective, n_trials=1, callbacks=[show])
        except TrainingInterrupted as exc:
            ours = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                    if t.number not in before and t.user_attrs.get("pid") == os.getpid()]
            for t in ours:
                _retry(study, t)
            raise TrainingInterrupted(exc.signum, f"interrupted by signal {exc.signum} during a trial (re-queued); "
                                      "resume the study by running the same trainwise tune command again") from None


def _worker_command(p: Plan, index: int, quota: int) -> list[str]:
    cmd = [sys.executable, "-m", "trainwise", "tune"]
    if p.config:
        cmd.append(p.config)
    if p.preset:
        cmd += ["--preset", p.preset]
    cmd += [*p.overrides, "--trials", str(p.trials), "--storage", p.storage_url, "--study", p.study_name,
            "--out", str(p.out), "--workers", "1", "--worker", f"{os.getpid()}:{index}:{quota}"]
    return cmd


def run(p: Plan, worker: str | None = None) -> int:
    console = Console(file=sys.stdout, highlight=False)
    if worker is not None:  # a process started by a coordinator: its share of trials, nothing else
        try:
            parent, index, quota = (int(x) for x in worker.split(":"))
        except ValueError:
            raise TrainwiseError(f"--worker '{worker}' is internal (PARENT:INDEX:QUOTA)") from None
        db = _sqlite_file(p.storage_url)
        if db is not None and not db.is_file():  # a worker joins a study; opening the URL would create the file
            raise TrainwiseError(f"study '{p.study_name}' does not exist in {p.storage_url}; --worker is internal (the "
                                 "coordinating 'trainwise tune' creates the study first)")
        storage = open_storage(p.storage_url)
        work(p, open_study(p, storage, index, create=False), quota, console, parent)
        return 0

    default_db = p.out / "study.db"
    before = sorted(p.out.iterdir()) if p.out.is_dir() else []
    if before and p.storage_url == f"sqlite:///{default_db.resolve()}" and not default_db.exists():
        raise TrainwiseError(f"--out '{p.out}' is not empty and holds no study.db; give a new --out (or the --storage "
                             "of the study that made it)")
    created = not p.out.exists()
    p.out.mkdir(parents=True, exist_ok=True)
    # A storage that cannot be opened, or a study that cannot be taken over, leaves no empty --out folder behind.
    with discarded_on_failure(p.out if created else None, ("study.db",), remove_dir=True):  # a new folder's own
        storage = open_storage(p.storage_url)
        study = _open_for_run(p, storage, before, default_db)
    dead = fail_dead_local_trials(study, storage)
    if dead:
        console.print(f"trials {', '.join(map(str, dead))} were left running by a killed process: failed and "
                      "re-queued", markup=False)
    done = finished(study)
    remaining = max(0, p.trials - done)
    space = "default space" if p.default_space else "tune.space"
    console.print(f"study '{p.study_name}' ({p.storage_url}): {p.direction} {p.metric}; {done} finished trials, "
                  f"{remaining} to go with {min(p.workers, max(1, remaining))} worker(s); {space}: "
                  + ", ".join(d.key for d in p.dims), soft_wrap=True, markup=False)
    procs: list[subprocess.Popen] = []
    k = min(p.workers, remaining)
    if k == 1:
        work(p, study, remaining, console)
    elif k > 1:
        # K worker processes, each with a fixed share so that exactly N trials finish; this process only waits (all
        # workers start together, so they really do run side by side).
        quotas = [remaining // k + (1 if i < remaining % k else 0) for i in range(k)]
        try:
            for i in range(k):
                procs.append(subprocess.Popen(_worker_command(p, i + 1, quotas[i])))
            failures = [(i + 1, rc) for i, rc in enumerate(proc.wait() for proc in procs) if rc != 0]
        finally:
            for proc in procs:  # on an error or Ctrl-C here: stop the workers (their trials are re-queued)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait()
        if failures:
            raise TrainwiseError("worker " + ", ".join(f"{i} exited with {rc}" for i, rc in failures)
                                 + " (its error is printed above); rerun the same command to resume the study")
    if fail_dead_local_trials(study, storage):  # swept again: an owner-less trial may have aged past OWNERLESS_S
        work(p, study, p.trials, console)  # its retry is queued; run it if the study still needs trials
    write_outputs(p, study, console)
    return 0


def _open_for_run(p: Plan, storage: optuna.storages.RDBStorage, before: list[Path], default_db: Path) -> optuna.Study:
    foreign = [f for f in before if f != default_db]
    if foreign and p.study_name not in optuna.get_all_study_names(storage):
        raise TrainwiseError(f"--out '{p.out}' is not empty and study '{p.study_name}' does not exist in "
                             f"{p.storage_url} yet; give a new --out for a new study (nothing was changed)")
    study = open_study(p, storage, 0, create=True)
    _check_trial_dirs(p, study)
    return study


def _check_trial_dirs(p: Plan, study: optuna.Study) -> None:
    """Never train into, or claim, a run directory this study did not create."""
    ours = {trial_dir(p.out, t.number).name for t in study.get_trials(deepcopy=False)}
    for d in sorted(p.out.glob("trial-*")):
        if d.name not in ours:
            raise TrainwiseError(f"'{d}' is not a trial of study '{p.study_name}' in {p.storage_url}; give a new "
                                 "--out for this study (or the --storage/--study that made it)")

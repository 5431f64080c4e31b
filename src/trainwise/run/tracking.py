"""Mirror a run into the trackers practitioners already use: TensorBoard event files and an MLflow store.

The loop knows nothing about them: ``fit`` feeds a :class:`Tracker` the same metrics events it writes to
``metrics.jsonl`` (already host values — the tracker adds no device sync), and calls :meth:`Tracker.finish` once
the run's files are written. Only rank 0 makes a tracker. A backend that raises (store unreachable, disk full, a
package missing) is reported once as a ``warning:`` line on stderr and switched off; training never stops for it.

Where things go:

- ``tensorboard``: ``RUN_DIR/tensorboard/`` — scalars (``train/*`` at log intervals, ``epoch/train/*``, ``val/*``
  and ``lr`` at epoch ends, ``test/*``), per-layer gradient norms from the live monitors (scalars and a histogram
  over layers), hparams with the final metrics, sample images of generative paradigms, the diagnosis as text.
- ``mlflow``: the resolved config as flattened params, the same metrics per step, tags (``trainwise.preset``,
  ``trainwise.model``, ``trainwise.paradigm``, ``trainwise.status``, ``trainwise.findings``), artifacts (curves,
  diagnosis, report, sample images, best weights). The MLflow run id is kept in ``RUN_DIR/mlflow.json`` so a
  resumed run continues the same MLflow run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Keys of a metrics event that say where it belongs, not what was measured.
_EVENT_META = ("step", "epoch", "split", "epoch_end", "event", "batch")
MLFLOW_RUN_FILE = "mlflow.json"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def event_scalars(event: dict[str, Any]) -> dict[str, float]:
    """A metrics event as ``{tag: value}``: ``train/loss`` at log intervals, ``epoch/train/loss`` at epoch ends
    (an epoch mean is a different quantity from an interval mean, so it gets its own curve), ``val/*``, ``test/*``,
    and ``lr``. Events without measurements (a skipped non-finite step, a rollback) give nothing."""
    if event.get("event"):
        return {}
    split = event.get("split")
    prefix = f"epoch/{split}/" if event.get("epoch_end") else f"{split}/"
    out: dict[str, float] = {}
    for k, v in event.items():
        x = _number(v)
        if k in _EVENT_META or x is None:
            continue
        if k == "lr":
            if event.get("epoch_end"):  # the schedule's lr once per epoch is enough for a curve
                out["lr"] = x
            continue
        out[prefix + k] = x
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` → ``{"optim.lr": 1e-3}``; lists and None stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _finding_codes(findings: list[dict[str, Any]]) -> list[str]:
    return [str(f.get("code")) for f in findings if isinstance(f, dict) and f.get("code")]


class Backend:
    """One tracking target. Every method may raise; :class:`Tracker` turns that into one warning."""

    name = "backend"

    def log(self, step: int, scalars: dict[str, float]) -> None:
        raise NotImplementedError

    def layers(self, step: int, grad_norms: dict[str, float]) -> None:
        """Per-layer gradient norms of one monitor sample."""

    def epoch_end(self) -> None:
        """After each epoch's events: a chance to flush buffered metrics."""

    def finish(self, summary: dict[str, Any], findings: list[dict[str, Any]], run_dir: Path, status: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release files/connections; called once, also after a failure."""


class TensorBoardBackend(Backend):
    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict[str, Any], resume_step: int | None) -> None:
        # Imported here: torch.utils.tensorboard pulls in the tensorboard package (protobuf and its summary
        # writers), which a run with tracking.backends=[] never needs.
        from torch.utils.tensorboard import SummaryWriter

        self.config = config
        # purge_step: a resumed run hides the events its killed predecessor wrote after the restored checkpoint
        # (steps > the checkpoint's; those up to it were logged before it was taken), so every step appears once
        # in TensorBoard, as it does in metrics.jsonl. flush_secs: a crash loses at most 10 s of events.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), flush_secs=10,
                                    purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        # All of an event's scalars in one Summary, i.e. one event record: measured 51 µs for 4 values against
        # 57 µs per add_scalar call (benchmarks/RESULTS.md, "Tracking backends"). TensorBoard reads them per tag.
        from tensorboard.compat.proto.summary_pb2 import Summary

        fw = self.writer.file_writer
        assert fw is not None
        fw.add_summary(Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in scalars.items()]), step)

    def layers(self, step: int, grad_norms: dict[str, float]) -> None:
        import numpy as np

        self.log(step, {f"grad_norm/{name}": v for name, v in grad_norms.items()})
        x = np.array([v for v in grad_norms.values() if math.isfinite(v)], dtype=np.float64)
        if x.size:  # how gradient norms spread over layers: vanishing/exploding shows as a wide histogram
            # a few buckets computed here (add_raw: 128 µs) instead of add_histogram's default TensorFlow buckets
            # (611 µs) for what is a handful of values
            counts, edges = np.histogram(x, bins=min(30, x.size))
            self.writer.add_histogram_raw("grad_norm/layers", float(x.min()), float(x.max()), int(x.size),
                                          float(x.sum()), float((x * x).sum()), edges[1:].tolist(), counts.tolist(),
                                          step)

    def finish(self, summary: dict[str, Any], findings: list[dict[str, Any]], run_dir: Path, status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        step = int(summary.get("steps") or 0)
        finals = {f"final/{k}": float(v) for k, v in summary.items()
                  if "/" in k and _number(v) is not None and math.isfinite(float(v))}
        for tag, v in finals.items():
            self.writer.add_scalar(tag, v, step)
        hp = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
              for k, v in flatten(self.config).items()}
        # hparams() builds the three summaries add_hparams writes, without add_hparams' extra timestamped
        # sub-directory: the hparams land in this run's own event file
        exp, ssi, sei = hparams(hp, finals)
        fw = self.writer.file_writer
        assert fw is not None
        for s in (exp, ssi, sei):
            fw.add_summary(s)
        lines = [f"**status**: {status}", ""]
        lines += [f"- **{f.get('severity', '')} {f.get('code', '')}**: {f.get('message', '')}" for f in findings
                  if isinstance(f, dict)] or ["no findings"]
        self.writer.add_text("diagnosis", "\n".join(lines), step)
        for name in summary.get("artifacts") or []:  # generative paradigms' sample grids
            path = run_dir / str(name)
            if path.suffix == ".png" and path.is_file():
                import numpy as np
                from PIL import Image

                with Image.open(path) as im:
                    img = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
                self.writer.add_image(path.stem, img, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowBackend(Backend):
    name = "mlflow"
    FLUSH_SECONDS = 5.0  # metrics go to the store in batches: one write per few seconds, not one per event

    def __init__(self, run_dir: Path, config: dict[str, Any], uri: str | None, experiment: str,
                 resumed: bool) -> None:
        # MLflow's HTTP client retries an unreachable server 7 times with exponential backoff (minutes) before it
        # fails; a run should find out in seconds and go on without it. A user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # Imported here: mlflow takes ≈ 1 s to import and brings SQLAlchemy and alembic; only runs that ask for
        # the mlflow backend pay that.
        from mlflow.tracking import MlflowClient

        # "Creating initial MLflow database tables..." on a new store's first use is not news to the user
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        artifact_root = None
        if uri is None:  # default: one SQLite store for all runs under the same root (runs/mlflow/mlflow.db)
            root = run_dir.resolve().parent / "mlflow"
            root.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{root / 'mlflow.db'}"
            artifact_root = (root / "artifacts").as_uri()
        elif uri.startswith("sqlite:///"):  # a user's own SQLite store: artifacts beside it, never in ./mlruns of
            db = Path(uri[len("sqlite:///"):])  # whatever directory the command was started from
            artifact_root = (db.resolve().parent / "artifacts").as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.pending: list[Any] = []
        self.last_flush = time.monotonic()
        saved = run_dir / MLFLOW_RUN_FILE
        info = None
        if resumed and saved.is_file():
            info = json.loads(saved.read_text())
        if info is not None and info.get("tracking_uri") == uri:
            self.run_id = str(info["run_id"])
            self.client.update_run(self.run_id, status="RUNNING")  # the same MLflow run continues
            return
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            experiment, artifact_location=artifact_root)
        model = config.get("model") or {}
        tags = {"trainwise.preset": str(config.get("name", "")), "trainwise.model": str(model.get("name", "")),
                "trainwise.paradigm": str((config.get("paradigm") or {}).get("name", "")),
                "trainwise.run_dir": str(run_dir.resolve()), "trainwise.status": "running"}
        run = self.client.create_run(exp_id, run_name=run_dir.name, tags=tags)
        self.run_id = run.info.run_id
        # atomic write; imported here because rundir imports torch, which `trainwise compare` need not load
        from trainwise.run.rundir import write_json

        write_json(saved, {"run_id": self.run_id, "tracking_uri": uri, "experiment_id": exp_id})
        self._params(config)

    def _params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        # MLflow limits a param value to 6000 characters and a batch to 100 params
        params = [Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, v, now, step) for k, v in scalars.items()]

    def layers(self, step: int, grad_norms: dict[str, float]) -> None:
        self.log(step, {f"grad_norm/{n}": v for n, v in grad_norms.items()})

    def epoch_end(self) -> None:
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        self.last_flush = time.monotonic()
        for i in range(0, len(pending), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=pending[i:i + 1000])

    def finish(self, summary: dict[str, Any], findings: list[dict[str, Any]], run_dir: Path, status: str) -> None:
        from mlflow.entities import RunTag

        step = int(summary.get("steps") or 0)
        self.log(step, {f"final/{k}": float(v) for k, v in summary.items()
                        if "/" in k and _number(v) is not None and math.isfinite(float(v))})
        self.flush()
        tags = [RunTag("trainwise.status", status),
                RunTag("trainwise.findings", ",".join(_finding_codes(findings)))]
        self.client.log_batch(self.run_id, tags=tags)
        names = ["curves.png", "diagnosis.json", "summary.json", "report.html", "best.safetensors",
                 *[str(a) for a in summary.get("artifacts") or []]]
        for name in dict.fromkeys(names):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")

    def interrupted(self) -> None:
        from mlflow.entities import RunTag

        self.flush()
        self.client.log_batch(self.run_id, tags=[RunTag("trainwise.status", "interrupted")])
        self.client.set_terminated(self.run_id, "KILLED")

    def failed(self, error: str) -> None:
        from mlflow.entities import RunTag

        self.flush()
        self.client.log_batch(self.run_id, tags=[RunTag("trainwise.status", "failed"),
                                                 RunTag("trainwise.error", error[:500])])
        self.client.set_terminated(self.run_id, "FAILED")


class Tracker:
    """The loop's observer for all configured backends; see the module docstring."""

    def __init__(self, backends: list[Backend], warn: Callable[[str], None] | None = None,
                 monitor_records: list[dict[str, Any]] | None = None) -> None:
        self.backends = backends
        self._warn = warn or (lambda msg: sys.stderr.write(msg + "\n"))
        self._records = monitor_records  # the live monitors' in-memory samples (host values already)
        self._seen = len(monitor_records) if monitor_records is not None else 0

    def _call(self, fn: Callable[[Backend], None]) -> None:
        for b in list(self.backends):
            try:
                fn(b)
            except Exception as exc:  # noqa: BLE001 - any failure of a tracker must not stop training
                self.backends.remove(b)
                msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                self._warn(f"warning: tracking backend {b.name} failed ({msg}); it is switched off for this run, "
                           "training continues")
                try:
                    b.close()
                except Exception:  # noqa: BLE001, S110 - already reported; closing a broken backend may fail too
                    pass

    def __call__(self, event: dict[str, Any]) -> None:
        """One metrics event from the loop (``emit``)."""
        if not self.backends:
            return
        scalars = event_scalars(event)
        step = int(event.get("step", 0))
        if scalars:
            self._call(lambda b: b.log(step, scalars))
        if self._records is not None and len(self._records) > self._seen:
            new, self._seen = self._records[self._seen:], len(self._records)
            for r in new:
                norms = {n: float(v["grad_norm"]) for n, v in (r.get("layers") or {}).items()
                         if _number(v.get("grad_norm")) is not None}
                if norms:
                    def layers(b: Backend, s: int = int(r["step"]), g: dict[str, float] = norms) -> None:
                        b.layers(s, g)
                    self._call(layers)
        if event.get("split") == "val" or (event.get("epoch_end") and event.get("split") == "train"):
            self._call(lambda b: b.epoch_end())

    def finish(self, summary: dict[str, Any], findings: list[dict[str, Any]], run_dir: Path) -> None:
        """After the run's files are written: final metrics, hparams, tags, artifacts; then close."""
        status = describe_status(summary.get("stopped"))
        self._call(lambda b: b.finish(summary, findings, run_dir, status))
        self.close()

    def interrupted(self) -> None:
        """A signal stopped the run (a checkpoint is saved): mark it, keep it resumable."""
        self._call(lambda b: b.interrupted() if isinstance(b, MLflowBackend) else None)
        self.close()

    def failed(self, exc: BaseException) -> None:
        """An exception ended the run (RUN/error.json holds it): MLflow shows the run FAILED, not RUNNING forever."""
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        self._call(lambda b: b.failed(error) if isinstance(b, MLflowBackend) else None)
        self.close()

    def close(self) -> None:
        for b in self.backends:
            try:
                b.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
        self.backends = []


def describe_status(stopped: Any) -> str:
    """The summary's ``stopped`` field in words a run table shows."""
    return {"completed": "completed", "early_stopping": "stopped early", "callback": "stopped early",
            "non_finite_loss": "non-finite loss"}.get(str(stopped), str(stopped))


def make_tracker(names: list[str], run_dir: Path, config: dict[str, Any], *, uri: str | None, experiment: str,
                 resume_step: int | None, monitor_records: list[dict[str, Any]] | None = None,
                 warn: Callable[[str], None] | None = None) -> Tracker:
    """Open the named backends for ``run_dir``. One that cannot open is reported and left out."""
    tracker = Tracker([], warn, monitor_records)
    openers: dict[str, Callable[[], Backend]] = {
        "tensorboard": lambda: TensorBoardBackend(run_dir, config, resume_step),
        "mlflow": lambda: MLflowBackend(run_dir, config, uri, experiment, resume_step is not None),
    }
    for name in dict.fromkeys(names):
        try:
            tracker.backends.append(openers[name]())
        except Exception as exc:  # noqa: BLE001 - an unusable tracker is reported, never fatal
            msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            tracker._warn(f"warning: tracking backend {name} could not start ({type(exc).__name__}: {msg}); "
                          "training continues without it")
    return tracker

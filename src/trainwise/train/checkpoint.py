"""Transactional, verified, pickle-free training checkpoints.

Layout: ``RUN_DIR/checkpoints/step-00000123/`` holding

* ``model.safetensors``, ``optimizer.safetensors``, ``extra.safetensors`` (RNG states, EMA and best weights,
  on-device accumulators) — tensors only, no pickle;
* ``state.json`` — everything else as plain JSON (positions, counters, scheduler/scaler state, history, config);
* ``manifest.json`` — sha256 and size of every other file, written last: it is the commit marker.

A checkpoint is written into a hidden temporary folder next to its final name, every file serialised in memory,
hashed from those bytes, written and fsynced once, the manifest written and fsynced, the folder renamed into place
with ``os.replace`` and the parent directory fsynced. A folder without a manifest, or whose hashes do not match, is
never loaded: loading re-hashes every file. Old checkpoints are pruned only after the new one has been checked on disk
(its manifest as written, every file at full size).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as _serialise

from trainwise.config import to_dict
from trainwise.errors import TrainwiseError
from trainwise.run.rundir import save_weights, versions
from trainwise.safety import check_inside
from trainwise.train.distributed import DistContext

MANIFEST = "manifest.json"
# Seconds to pause between writing a checkpoint's files and its manifest. Only the kill-during-write tests set it.
_WRITE_DELAY = float(os.environ.get("TRAINWISE_TEST_CHECKPOINT_DELAY", "0") or 0)
PREFIX = "step-"
_EMA_MODULE = "ema.module."  # where an EMA's averaged weights sit among a checkpoint's extra tensors


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


# Blobs at least this big are hashed on a helper thread while the main one writes them: both release the GIL, so the
# sha256 pass (≈ 0.9 ms/MB here) hides behind the write (≈ 1.4–2.7 ms/MB into a new file on this VM) instead of
# adding to it — ≈ 90 ms of a 100 MB checkpoint. Below it, a thread hand-off costs more than it saves.
_PARALLEL_HASH_BYTES = 4 << 20
_hasher: Any = None  # a one-thread pool, created on first use


def _forget_hasher() -> None:
    global _hasher
    _hasher = None  # a forked child inherits the pool object but not its thread: it would wait forever


os.register_at_fork(after_in_child=_forget_hasher)


def _write_bytes(path: Path, blob: bytes) -> dict[str, Any]:
    """Write ``blob``, fsync it, and return its manifest entry, hashed from memory (no second pass over the file)."""
    global _hasher
    digest = None
    if len(blob) >= _PARALLEL_HASH_BYTES:
        if _hasher is None:
            from concurrent.futures import ThreadPoolExecutor

            _hasher = ThreadPoolExecutor(1, thread_name_prefix="trainwise-sha256")
        digest = _hasher.submit(lambda: hashlib.sha256(blob).hexdigest())
    with open(path, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    return {"sha256": digest.result() if digest is not None else hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob)}


def save_file(tensors: dict[str, torch.Tensor], path: str) -> dict[str, Any]:
    """One tensor file of a checkpoint: serialised to bytes in memory, written and fsynced once; returns its manifest
    entry. (The fault-injection tests replace this function to simulate a full disk.)"""
    return _write_bytes(Path(path), _serialise(tensors))


# ---- optimizer state <-> (tensors, JSON) ------------------------------------------------------------------------


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-able tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        plain_state[str(idx)] = {}
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                plain_state[str(idx)][name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"state": plain_state, "param_groups": groups}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    groups = []
    for g in plain["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ---- writing ------------------------------------------------------------------------------------------------------


@dataclass
class CheckpointData:
    """What one checkpoint holds, in the two pickle-free forms."""

    tensors: dict[str, dict[str, torch.Tensor]]  # file stem -> tensors, e.g. {"model": {...}, "optimizer": {...}}
    state: dict[str, Any] | str  # JSON-able, or already serialised


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (``torch.equal`` alone calls -0.0 and 0.0 equal; NaN is never identical here)."""
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
        return False
    return not a.is_floating_point() or torch.equal(torch.signbit(a), torch.signbit(b))


def _same_tensors(best: dict[str, torch.Tensor] | None, name: str, tensors: dict[str, torch.Tensor]) -> str | None:
    """``name`` if ``tensors`` holds exactly ``best`` (same keys and bits), else None."""
    if not best or tensors.keys() != best.keys():
        return None
    return name if all(_identical(v, tensors[k]) for k, v in best.items()) else None


def _cpu(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in t.items()}


def write_checkpoint(ckpt_root: Path, step: int,
                     data: CheckpointData) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Write a checkpoint transactionally; returns its final folder and the manifest's file entries (hashed from the
    bytes written)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".tmp-{final.name}-"))
    try:
        # Each file is serialised in memory, hashed from those bytes and written + fsynced once: one pass over the
        # data instead of three (write, re-read to hash, re-read to verify).
        files: dict[str, dict[str, Any]] = {}
        for stem, tensors in data.tensors.items():
            path = tmp / f"{stem}.safetensors"
            entry = save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
            if not isinstance(entry, dict):  # a replacement writer that returns nothing: hash what it wrote
                _fsync_file(path)
                entry = {"sha256": _sha256(path), "bytes": path.stat().st_size}
            files[path.name] = entry
        state = data.state if isinstance(data.state, str) else json.dumps(data.state)
        files["state.json"] = _write_bytes(tmp / "state.json", state.encode())
        if _WRITE_DELAY:  # test hook: widen the window in which a kill lands mid-write
            time.sleep(_WRITE_DELAY)
        files = dict(sorted(files.items()))  # the manifest lists files by name, as it always has
        _write_bytes(tmp / MANIFEST, json.dumps({"format": "trainwise-checkpoint-1", "step": step,
                                                 "files": files}).encode())
        _fsync_dir(tmp)
        if final.exists():  # same step written again (e.g. epoch end right after an every_steps save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, files


# ---- reading ------------------------------------------------------------------------------------------------------


# The files every checkpoint holds (write_checkpoint writes exactly these); a manifest listing others is not ours.
REQUIRED = ("extra.safetensors", "model.safetensors", "optimizer.safetensors", "state.json")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a plain file name: no '/', '\\', '..' path, no hidden file
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(rf"{PREFIX}\d{{8}}")  # step-00000123; anything else in checkpoints/ is not a checkpoint


def manifest_problem(manifest: Any) -> str | None:
    """Schema check of a parsed manifest (None: well formed). A manifest comes from disk and may have been edited or
    downloaded: its names must be plain file names inside the checkpoint folder (never a path such as
    ``../../etc/passwd``), each with an integer size and a sha256, and the four files of a checkpoint present."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return "manifest malformed (no 'files' mapping)"
    files = manifest["files"]
    for name, meta in files.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or name == MANIFEST:
            return f"manifest names a file that is not a plain file name ({str(name)[:80]!r})"
        if not isinstance(meta, dict):
            return f"manifest entry for {name} malformed"
        size, digest = meta.get("bytes"), meta.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"manifest entry for {name} has no valid 'bytes'"
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return f"manifest entry for {name} has no valid 'sha256'"
    missing = [n for n in REQUIRED if n not in files]
    if missing:
        return f"manifest lists no {missing[0]}"
    return None


def verify(folder: Path, hashes: bool = True) -> str | None:
    """None if the checkpoint is complete and every hash matches, else the reason it is not.

    ``hashes=False`` checks the manifest, every file's presence and size, but not its sha256.
    """
    man = folder / MANIFEST
    if folder.is_symlink() or man.is_symlink() or not man.is_file():
        return "no manifest (write did not finish)" if not man.is_symlink() else "manifest is a link"
    try:
        manifest = json.loads(man.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return "manifest unreadable"
    problem = manifest_problem(manifest)
    if problem is not None:
        return problem
    for name, meta in manifest["files"].items():
        p = folder / name
        if p.is_symlink() or not p.is_file():  # a link could lead anywhere: a checkpoint holds its own files only
            return f"{name} missing"
        if p.stat().st_size != meta["bytes"]:
            return f"{name} truncated ({p.stat().st_size} of {meta['bytes']} bytes)"
        if hashes and _sha256(p) != meta["sha256"]:
            return f"{name} corrupted (sha256 mismatch)"
    return None


def verify_written(folder: Path, known: dict[str, dict[str, Any]]) -> str | None:
    """The check right after a write: the manifest on disk lists exactly the entries ``known`` computed from the
    bytes written, and every file is there at its full size. The files are not re-read and re-hashed: a read right
    after the write is served from the page cache, so it would hash the same bytes again and could not see a media
    error. Loading (``read_checkpoint``, ``latest_valid``, resume, rollback) always re-hashes every file."""
    reason = verify(folder, hashes=False)
    if reason is not None:
        return reason
    try:
        on_disk = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError, UnicodeDecodeError):
        return "manifest unreadable"
    return None if on_disk == known else "manifest does not match the files written"


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoint folders, oldest first (temporary folders excluded)."""
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.iterdir() if p.is_dir() and _FOLDER.fullmatch(p.name))


def read_checkpoint(folder: Path) -> CheckpointData:
    reason = verify(folder)
    if reason is not None:
        raise TrainwiseError(f"checkpoint '{folder}' is not valid: {reason}")
    manifest = json.loads((folder / MANIFEST).read_text())
    tensors = {}
    for name in manifest["files"]:
        if name.endswith(".safetensors"):
            # clone(): safetensors hands out views into its buffer at arbitrary byte offsets. Vectorised CPU kernels
            # split misaligned data differently between their SIMD body and scalar tail, which can change the last
            # bit of results (seen as resumed runs diverging in the final ulp). Fresh allocations are aligned.
            loaded = load_file(str(folder / name), device="cpu")
            tensors[name[: -len(".safetensors")]] = {k: v.clone() for k, v in loaded.items()}
    state = json.loads((folder / "state.json").read_text())
    return CheckpointData(tensors, state)


def latest_valid(ckpt_root: Path, report: list[str] | None = None) -> Path | None:
    """Newest checkpoint that verifies; skipped ones are described in ``report``."""
    for folder in reversed(list_checkpoints(ckpt_root)):
        reason = verify(folder)
        if reason is None:
            return folder
        if report is not None:
            report.append(f"skipped checkpoint {folder.name}: {reason}")
    return None


def prune(ckpt_root: Path, keep: int, protect: set[str]) -> None:
    """Keep the newest ``keep`` valid checkpoints plus ``protect`` (the best); remove the rest and any torn or
    temporary leftovers older than the newest valid one."""
    folders = list_checkpoints(ckpt_root)
    # Each checkpoint was verified right after it was written; re-hashing every kept one on every save would cost
    # more than the save. A manifest is the commit marker, so its presence is what counts here.
    valid = [f for f in folders if (f / MANIFEST).is_file()]
    if not valid:
        return
    keep_set = {f.name for f in valid[-keep:]} | protect
    newest = valid[-1].name
    for f in folders:
        if f.name not in keep_set and f.name < newest:
            shutil.rmtree(f, ignore_errors=True)
    for f in ckpt_root.iterdir():
        if f.name.startswith(".tmp-"):
            shutil.rmtree(f, ignore_errors=True)


# ---- RNG streams ----------------------------------------------------------------------------------------------------


def rng_state(generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Python, NumPy (legacy global), torch CPU, every CUDA device, and named generators."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    for name, g in generators.items():
        tensors[f"gen_{name}"] = g.get_state()
    py = random.getstate()
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the legacy global RandomState (MT19937) reports a tuple
    plain = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any],
                  generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda_"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    for name, g in generators.items():
        if f"gen_{name}" in tensors:
            g.set_state(tensors[f"gen_{name}"])
    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = plain["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))


# ---- the loop's checkpointer ----------------------------------------------------------------------------------------


def write_inline() -> bool:
    """Write checkpoints on the training thread when torch's intra-op threads already occupy every usable core.

    A background writer only helps when a core is free for it. With torch on all cores it competes with the training
    steps instead: inline writes measured faster on the 2-core benchmark machine (A/B numbers, and the benchmark's
    `trainwise background writer` row that repeats the comparison in every run, are in benchmarks/RESULTS.md).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores <= torch.get_num_threads()


class Checkpointer:
    """Saves and restores the complete training state of one run (see the module docstring for the format)."""

    def __init__(self, run_dir: Path, cfg: Any, model: torch.nn.Module, stepper: Any, st: Any,
                 generators: dict[str, torch.Generator], reporter: Any, task: Any = None, dist: Any = None) -> None:
        self.task = task  # a paradigm's own state (e.g. a GAN discriminator's optimizer) travels too
        # DDP: every rank snapshots (its RNG streams are gathered into rank 0's checkpoint); only rank 0 writes.
        self.dist = dist if dist is not None else DistContext()
        self.root = run_dir / "checkpoints"
        check_inside(self.root, run_dir, "checkpoints")  # pruning deletes folders: never through a link out of the run
        self.cfg, self.model, self.stepper, self.st = cfg, model, stepper, st
        self.generators, self.reporter = generators, reporter
        self.log: Any = None  # MetricsLog, set once opened; its byte offset is saved with each checkpoint
        self.monitor: Any = None  # Monitor, likewise for monitors.jsonl
        self.failures = 0
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None
        self._pending: tuple[int, str, bool] | None = None  # step, previous best checkpoint, carries best weights
        # best.safetensors lags the loop's best weights: set when they improve (or a job carrying them failed),
        # cleared when a save takes them; the next checkpoint, or flush_best() at the end, writes them.
        self.best_stale = False
        self._config: dict[str, Any] | None = None
        self.mix_rng_restored: Any = None
        self._start_state: CheckpointData | None = None  # remember_start()
        self.device = next(model.parameters()).device

    def snapshot(self, mix_rng: Any, best_current: bool = False) -> CheckpointData:
        """The whole training state. ``best_current``: the best weights were taken from the model just now, so they
        may be stored as an alias of the model's (or the EMA's) tensors instead of a second copy (a quarter of an
        AdamW checkpoint)."""
        opt_tensors, opt_plain = flatten_optimizer(self.stepper.optimizer.state_dict())
        rng_tensors, rng_plain = rng_state(self.generators)
        mix_state = mix_rng.bit_generator.state if mix_rng is not None else None
        extra = {f"rng.{k}": v for k, v in rng_tensors.items()}
        extra.update(self.st.tensors())
        ranks: list[dict[str, Any]] = []
        if self.dist.enabled:
            # Per-rank state under "rank{r}." names: RNG streams (dropout, augmentation, mixing) and the accumulators
            # of the rank's own shard (per-step losses, correct counts) that the epoch's train metrics still need.
            mine = dict(extra)
            for r, (t_r, plain_r, mix_r) in enumerate(self.dist.gather(
                    ({k: v.cpu() for k, v in mine.items() if k.startswith(("rng.", "acc."))}, rng_plain, mix_state))):
                if r:
                    extra.update({f"rank{r}.{k}": v for k, v in t_r.items()})
                    ranks.append({"rng": plain_r, "mix_rng": mix_r})
        extra["acc.fp16_skipped"] = self.stepper._skipped  # noqa: SLF001
        if self.stepper.ema is not None:
            extra.update({f"ema.{k}": v for k, v in self.stepper.ema.state_dict().items()})
        task_tensors, task_plain = self.task.state_dict() if self.task is not None else ({}, {})
        extra.update({f"task.{k}": v for k, v in task_tensors.items()})
        last = self.st.history[-1] if self.st.history else {}
        state = {
            "task": task_plain,
            "loop": self.st.plain(),
            "rng": rng_plain,
            "mix_rng": mix_state,
            "world_size": self.dist.world,
            "ranks": ranks,  # ranks 1.. of a DDP run; rank 0's streams are the top-level "rng" / "mix_rng"
            "optimizer": opt_plain,
            "scheduler": self.stepper.schedule.state_dict(),
            "scaler": self.stepper.scaler.state_dict() if self.stepper.scaler is not None else None,
            "log_offset": self.log.tell() if self.log is not None else 0,
            "monitor_offset": self.monitor.tell() if self.monitor is not None else 0,
            "monitor": {"name": self.cfg.train.monitor, "value": last.get(self.cfg.train.monitor)},
            "config": self._config_dict(),
            "versions": versions(),
        }
        model_sd = self.model.state_dict()
        if best_current:  # best weights taken at this very epoch end: stored once, under the name they already have
            # the EMA's weights are its AveragedModel's "module." entries, saved under "ema.module."
            ema = {k[len(_EMA_MODULE):]: v for k, v in extra.items() if k.startswith(_EMA_MODULE)}
            alias = (_same_tensors(self.st.best_state, "ema", ema) if self.stepper.ema is not None
                     else _same_tensors(self.st.best_state, "model", model_sd))  # where the best weights came from
            if alias is not None:
                extra = {k: v for k, v in extra.items() if not k.startswith("best.")}
                state["best_alias"] = alias
        return CheckpointData({"model": model_sd, "optimizer": opt_tensors, "extra": extra}, state)

    def _config_dict(self) -> dict[str, Any]:
        if self._config is None:  # the config does not change during a run: convert once
            self._config = to_dict(self.cfg)
        return self._config

    def save(self, mix_rng: Any, best: bool = False) -> None:
        """Snapshot the state now (a copy to CPU, serialised to JSON) and write it in the background, or right away
        where a background thread would only compete with torch for the cores (``write_inline``).

        In the background, writing and fsyncing overlap with the next steps; at most one write is in flight (a new
        save first waits for the previous one). Stale best weights (``best_stale``) refresh ``best.safetensors`` in
        the same job, so the file advances with the checkpoints, which hold the best weights too.
        A failed write (disk full, permissions) leaves the previous checkpoint intact; it is reported at the next save
        or at ``wait()`` (inline: at once), then training continues or stops as configured.
        """
        self.wait()
        previous_best = self.st.best_ckpt
        if best:  # recorded inside the checkpoint itself, so a resumed run keeps protecting it
            self.st.best_ckpt = f"{PREFIX}{self.st.global_step:08d}"
        data = self.snapshot(mix_rng, best_current=best)
        if not self.dist.main:  # its part (RNG streams) went to rank 0 inside snapshot()
            return
        data.tensors = {k: _cpu(v) for k, v in data.tensors.items()}
        data.state = json.dumps(data.state)
        best_copy = _cpu(self.st.best_state) if self.best_stale and self.st.best_state is not None else None
        self.best_stale = False
        step, keep, protect = self.st.global_step, self.cfg.checkpoint.keep, self.st.best_ckpt

        def job() -> None:
            if best_copy is not None:
                save_weights(self.root.parent / "best.safetensors", best_copy)
            folder, files = write_checkpoint(self.root, step, data)
            reason = verify_written(folder, files)
            if reason is not None:
                raise OSError(f"written checkpoint does not verify: {reason}")
            prune(self.root, keep, {protect} if protect else set())

        self._pending = (step, previous_best, best_copy is not None)
        self._start(job)

    def _start(self, job: Any) -> None:
        if write_inline():
            self._run(job)
            self.wait()  # report a failure now rather than at the next save
            return
        self._thread = threading.Thread(target=self._run, args=(job,), name="trainwise-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, job: Any) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - any failure, not only OSError: a thread that dies silently would
            self._error = exc  # leave the run believing it has a checkpoint; wait() counts and reports it

    def wait(self) -> None:
        """Block until the background write (if any) has finished, and deal with its failure."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        exc, self._error = self._error, None
        if exc is None:
            return
        step = self._pending[0] if self._pending else self.st.global_step
        if self._pending and self.st.best_ckpt == f"{PREFIX}{step:08d}":
            self.st.best_ckpt = self._pending[1]
        if self._pending and self._pending[2]:
            self.best_stale = True  # the next save writes them again
        self.failures += 1
        what = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        msg = f"checkpoint at step {step} failed ({what}); the previous checkpoint is intact"
        if self.cfg.checkpoint.on_error == "stop":
            raise TrainwiseError(msg + "; free space or fix permissions, then resume") from None
        self.reporter.info(f"[yellow]warning: {msg}; training continues[/yellow]")

    def best_improved(self) -> None:
        """The loop's best weights just changed: best.safetensors is stale until the next save, and no older
        checkpoint holds the best epoch any more (``save(best=True)`` protects this epoch's, if one is written)."""
        self.best_stale = True
        self.st.best_ckpt = ""

    def flush_best(self) -> None:
        """End of training: wait for the last write, then write best weights no checkpoint took (a stop without a
        final checkpoint, such as a non-finite loss, or a failed write)."""
        self.wait()
        if not (self.best_stale and self.st.best_state is not None and self.dist.main):
            return
        try:
            save_weights(self.root.parent / "best.safetensors", self.st.best_state)
            self.best_stale = False
        except OSError as exc:
            self.reporter.info(f"[yellow]warning: could not write best.safetensors ({exc})[/yellow]")

    def remember_start(self, mix_rng: Any) -> None:
        """Keep the state before the first step in memory: the rollback target until a checkpoint exists (epoch-end
        checkpoints are time-gated, so the first one may come 30 s in). A copy of the weights; the optimizer has no
        state yet."""
        data = self.snapshot(mix_rng)
        data.tensors = {k: _cpu(v) for k, v in data.tensors.items()}
        data.state = json.loads(json.dumps(data.state))  # detached from live objects, as if read from disk
        self._start_state = data

    def restore(self, folder: Path) -> None:
        try:
            self._apply(read_checkpoint(folder), f"checkpoint {folder.name}")
        except TrainwiseError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, json.JSONDecodeError) as exc:
            # hashes matched, so these are the bytes the manifest names, yet not a state this trainwise wrote
            raise TrainwiseError(f"checkpoint '{folder}' verifies but its contents do not fit this run "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                                 "remove it to resume from an older one") from None

    def _apply(self, data: CheckpointData, what: str = "the start-of-run state") -> None:
        assert isinstance(data.state, dict)
        ex = data.tensors["extra"]
        r = self.dist.rank
        if r:  # this rank's own streams and accumulators replace rank 0's
            pfx = f"rank{r}."
            ex = {**ex, **{k[len(pfx):]: v for k, v in ex.items() if k.startswith(pfx)}}
        world = int(data.state.get("world_size", 1))
        if world != self.dist.world:
            raise TrainwiseError(f"{what} was written by {world} process(es) but this run has "
                                 f"{self.dist.world}; resume with the same number (torchrun --nproc_per_node="
                                 f"{world}) — the data shards and RNG streams depend on it")
        self.model.load_state_dict(data.tensors["model"])
        self.stepper.optimizer.load_state_dict(unflatten_optimizer(data.tensors["optimizer"],
                                                                   data.state["optimizer"]))
        self.stepper.schedule.load_state_dict(data.state["scheduler"])
        if self.stepper.scaler is not None and data.state["scaler"] is not None:
            self.stepper.scaler.load_state_dict(data.state["scaler"])
        if self.stepper.ema is not None:
            self.stepper.ema.load_state_dict({k[len("ema."):]: v for k, v in ex.items() if k.startswith("ema.")})
        self.stepper._skipped = ex["acc.fp16_skipped"].to(self.device)  # noqa: SLF001
        if self.task is not None:
            self.task.load_state_dict({k[len("task."):]: v for k, v in ex.items() if k.startswith("task.")},
                                      data.state.get("task") or {})
        self.stepper.optimizer.zero_grad(set_to_none=True)
        alias = data.state.get("best_alias")
        if alias == "model":
            ex = {**ex, **{f"best.{k}": v.clone() for k, v in data.tensors["model"].items()}}
        elif alias == "ema":
            ex = {**ex, **{f"best.{k[len(_EMA_MODULE):]}": v.clone() for k, v in ex.items() if k.startswith(_EMA_MODULE)}}
        self.st.load(data.state["loop"], ex, self.device)
        self.st.log_offset = data.state["log_offset"]
        self.st.monitor_offset = data.state.get("monitor_offset")
        mine = data.state["ranks"][r - 1] if r else data.state
        set_rng_state({k[len("rng."):]: v for k, v in ex.items() if k.startswith("rng.")}, mine["rng"],
                      self.generators)
        self.mix_rng_restored = None
        if mine["mix_rng"] is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = mine["mix_rng"]
            self.mix_rng_restored = rng

    def restore_latest(self) -> Path:
        self.wait()
        report: list[str] = []
        folder = latest_valid(self.root, report)
        for line in report:
            self.reporter.info(f"[yellow]{line}[/yellow]")
        if folder is None:
            raise TrainwiseError(f"no valid checkpoint in '{self.root}'; nothing to resume (start a new run)")
        self.restore(folder)
        # the run may have stopped after a checkpoint that did not write best.safetensors: rewrite it with the next
        self.best_stale = self.st.best_state is not None
        return folder

    def latest(self) -> str | None:
        """Name of the newest checkpoint that verifies (None: none), for messages after a failed write."""
        folder = latest_valid(self.root)
        return folder.name if folder is not None else None

    def rollback(self, lr_factor: float) -> bool:
        """Restore the newest valid checkpoint but keep the fault bookkeeping, and lower the lr."""
        self.wait()
        self.dist.barrier()  # DDP: rank 0's write is on disk before any rank picks the newest checkpoint
        folder = latest_valid(self.root)
        data = read_checkpoint(folder) if folder is not None else self._start_state
        if data is None:
            return False
        assert isinstance(data.state, dict)
        skip, bad, rollbacks, scale = self.st.skip, self.st.bad_steps, self.st.rollbacks, self.st.lr_scale
        self._apply(data, f"checkpoint {folder.name}" if folder is not None else "the start-of-run state")
        self.st.skip |= skip
        self.st.bad_steps, self.st.rollbacks = bad, rollbacks + 1
        self.st.consecutive_bad = 0
        self.st.lr_scale = scale * lr_factor
        self.stepper.scale_lr(self.st.lr_scale / float(data.state["loop"]["lr_scale"]))
        return True

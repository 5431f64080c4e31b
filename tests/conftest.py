"""Shared fixtures for the CLI tests: run ``python -m trainwise`` in a directory, and one short finished run."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# One intra-op thread for the whole session, in-process and in every ``python -m trainwise`` subprocess (they inherit
# the environment). Why: (1) many tests compare results bit-for-bit across separate processes, and with 2 OpenMP
# threads on the shared CI VM we have seen rare last-bit differences between two identical runs (2 failures in ~4
# fresh-clone CI runs, never locally: 48/48 identical digits-mlp runs here; GEMM alignment and MKL dynamic threading
# were ruled out — README "Known limitation"); (2) on a 2-core machine shared with other jobs, OpenMP threads spin
# against each other (a 40-step lr sweep: 6 s with 2 threads, 0.3 s with 1). Set TRAINWISE_TEST_THREADS to change it.
os.environ["OMP_NUM_THREADS"] = os.environ.get("TRAINWISE_TEST_THREADS", "1")
import torch  # noqa: E402  (after the thread setting, which torch reads when it loads)

Cli = Callable[..., subprocess.CompletedProcess]


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run([sys.executable, "-m", "trainwise", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli(*args, env=None)``: run ``python -m trainwise ARGS`` with ``cwd=tmp_path``."""

    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return _run(*args, cwd=tmp_path, env=env, timeout=timeout)

    return call


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch digits-mlp run, shared read-only by every test that only reads a run directory."""
    root = tmp_path_factory.mktemp("digits_run")
    proc = _run("train", "--preset", "digits-mlp", "train.epochs=2", "--run-dir", "R", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "R"


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` (itself included) → content hash (or ``<dir>``), for 'untouched'
    checks."""
    out: dict[str, str] = {}
    for p in [root, *sorted(root.rglob("*"))]:
        rel = p.relative_to(root).as_posix()
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def snap() -> Callable[[Path], dict[str, str]]:
    return snapshot


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module. On a small shared machine torch's OpenMP threads spin against other jobs: a
    40-step lr sweep measured 6 s with 2 threads and 0.3 s with 1. Behaviour tests only; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread_env() -> dict[str, str]:
    """The same for ``python -m trainwise`` subprocesses."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def kill_after_checkpoints(args: list[str], cwd: Path, run: Path, env: dict[str, str], count: int = 2) -> None:
    """Start ``python -m trainwise ARGS`` in ``cwd`` and SIGKILL it once ``run/checkpoints`` holds ``count`` valid
    checkpoints (mid-training). Checkpoint writes are slowed (TRAINWISE_TEST_CHECKPOINT_DELAY) so a fast machine
    cannot finish before the kill."""
    from trainwise.train.checkpoint import list_checkpoints

    slow = dict(env, TRAINWISE_TEST_CHECKPOINT_DELAY="0.3")
    proc = subprocess.Popen([sys.executable, "-m", "trainwise", *args], cwd=cwd, env=slow,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and \
            len(list_checkpoints(run / "checkpoints") if (run / "checkpoints").is_dir() else []) < count:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()[1].decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def assert_one_error_line(proc: subprocess.CompletedProcess, needles: tuple[str, ...] = ()) -> str:
    """A refusal as the README promises it: exit 2, no traceback, exactly one ``error: …`` line on stderr holding
    every needle. Returns that line."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(run_dir: Path, cwd: Path, env: dict[str, str], python: str = sys.executable) -> Iterator[
        tuple[str, subprocess.Popen]]:
    """The real `trainwise serve RUN_DIR` on a free loopback port: yields (base URL, process) once /health answers,
    and stops the process by its pid afterwards. Its output goes to ``cwd/server.log`` (a file, not a pipe: a full
    pipe would block the server)."""
    import httpx

    port = free_port()
    log_path = cwd / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([python, "-m", "trainwise", "serve", str(run_dir), "--port", str(port)], cwd=cwd,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not come up: " + log_path.read_text()
                time.sleep(0.3)
            yield base, proc
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

"""``trainwise runs`` and ``trainwise compare``: the table, statuses of finished / stopped / crashed / running /
damaged runs, the comparison in the terminal and as an HTML page rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainwise.config import compose
from trainwise.errors import TrainwiseError

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]  # as tests/test_report.py


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "trainwise", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/ with two finished runs (A: lr 1e-3, 2 epochs; B: lr 3e-3, 3 epochs) and one of each odd kind."""
    from trainwise.runner import train

    base = tmp_path_factory.mktemp("runs_cmd")
    runs = base / "runs"
    for name, extra in (("A", ["train.epochs=2"]), ("B", ["train.epochs=3", "optim.lr=3e-3"])):
        cfg = compose(preset="digits-mlp", overrides=[*extra, "tracking.backends=[]"])
        train(cfg, run_dir=runs / name, quiet=True)
    assert not (runs / "A" / "status.json").exists()  # a finished run keeps no process record
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names no process now
    host = socket.gethostname()
    # crashed (SIGKILL, OOM) after a checkpoint: no summary, history or final weights; status.json still "running"
    shutil.copytree(runs / "A", runs / "crashed")
    for f in ("summary.json", "history.json", "final.safetensors", "diagnosis.json"):
        (runs / "crashed" / f).unlink()
    (runs / "crashed" / "status.json").write_text(json.dumps({"state": "running", "pid": dead.pid, "host": host}))
    # stopped by a signal: the loop saved a checkpoint and wrote "interrupted"
    shutil.copytree(runs / "crashed", runs / "interrupted")
    (runs / "interrupted" / "status.json").write_text(json.dumps({"state": "interrupted", "pid": dead.pid,
                                                                  "host": host, "signal": 15}))
    # an older run without status.json that crashed an hour ago before any checkpoint (judged by file times)
    shutil.copytree(runs / "crashed", runs / "crashed-early")
    shutil.rmtree(runs / "crashed-early" / "checkpoints")
    (runs / "crashed-early" / "status.json").unlink()
    old = time.time() - 3600
    for p in [runs / "crashed-early", *(runs / "crashed-early").rglob("*")]:
        os.utime(p, (old, old))
    # running: no summary yet, and the process in status.json (this one) exists
    (runs / "running").mkdir()
    shutil.copy(runs / "A" / "config.yaml", runs / "running" / "config.yaml")
    (runs / "running" / "metrics.jsonl").write_text((runs / "A" / "metrics.jsonl").read_text().splitlines()[0]
                                                    + "\n")
    (runs / "running" / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(),
                                                              "host": host}))
    # stopped early
    shutil.copytree(runs / "B", runs / "early")
    s = json.loads((runs / "early" / "summary.json").read_text())
    s["stopped"] = "early_stopping"
    (runs / "early" / "summary.json").write_text(json.dumps(s))
    # damaged and foreign things
    (runs / "damaged").mkdir()
    (runs / "damaged" / "config.yaml").write_text("model: [unclosed\n")
    (runs / "damaged" / "summary.json").write_text("{not json")
    (runs / "notes").mkdir()
    (runs / "notes" / "todo.txt").write_text("not a run")
    (runs / "mlflow.db").write_text("")
    return base


def test_runs_json_statuses_and_values(root: Path) -> None:
    proc = _cli("runs", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {k: rows[k]["status"] for k in rows} == {
        "A": "completed", "B": "completed", "crashed": "crashed (resumable)", "crashed-early": "crashed",
        "interrupted": "interrupted (resumable)", "running": "running", "early": "stopped early",
        "damaged": "unreadable"}
    for name in ("A", "B"):
        summary = json.loads((root / "runs" / name / "summary.json").read_text())
        diagnosis = json.loads((root / "runs" / name / "diagnosis.json").read_text())
        r = rows[name]
        assert (r["model"], r["paradigm"]) == ("mlp", "supervised")
        assert r["metric"] == "test/accuracy" and r["metric_value"] == summary["test/accuracy"]
        assert r["best_epoch"] == summary["best_epoch"] and r["epochs"] == summary["epochs"]
        assert r["wall"] == summary["wall_seconds"]
        assert r["findings"] == [f["code"] for f in diagnosis["findings"]]
    # a crashed run reports what it reached: epochs from metrics.jsonl, the last val metric
    history = json.loads((root / "runs" / "A" / "history.json").read_text())
    assert rows["crashed"]["epochs"] == len(history)
    assert rows["crashed"]["metric"] == "val/accuracy"
    assert rows["crashed"]["metric_value"] == history[-1]["val/accuracy"]


def test_runs_sort(root: Path) -> None:
    from trainwise.run.runs import list_runs

    rows = list_runs(root / "runs", sort="metric", reverse=True)
    values = [r["metric_value"] for r in rows if r["metric_value"] is not None]
    assert values == sorted(values, reverse=True) and len(values) >= 4
    assert rows[-1]["metric_value"] is None  # missing values last, whatever the direction
    names = [r["name"] for r in list_runs(root / "runs", sort="name")]
    assert names == sorted(names, key=str.lower)
    with pytest.raises(TrainwiseError, match="did you mean 'metric'"):
        list_runs(root / "runs", sort="metrc")


def test_runs_table_and_errors(root: Path) -> None:
    proc = _cli("runs", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("crashed (resumable)", "interrupted (resumable)", "stopped early", "unreadable", "running",
                 "test/accuracy", "healthy"):
        assert text in out
    assert "notes" not in out and "mlflow.db" not in out
    line_a = next(line for line in out.splitlines() if "│ A " in line)
    summary = json.loads((root / "runs" / "A" / "summary.json").read_text())
    assert f"{summary['test/accuracy']:.4f}" in line_a and f"{summary['best_epoch']}/{summary['epochs']}" in line_a
    # one run directory given as DIR lists just that run
    one = json.loads(_cli("runs", "runs/B", "--json", cwd=root).stdout)
    assert [r["name"] for r in one] == ["B"]
    for args in (("runs", "nowhere"), ("runs", "--sort", "bogus")):
        proc = _cli(*args, cwd=root)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1, \
            proc.stderr


def test_compare_terminal(root: Path) -> None:
    proc = _cli("compare", "runs/A", "runs/B", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    diff = out.split("final metrics")[0]
    assert "optim.lr" in diff and "train.epochs" in diff
    assert "seed" not in diff and "data.batch_size" not in diff  # equal keys are not listed
    for name in ("A", "B"):
        s = json.loads((root / "runs" / name / "summary.json").read_text())
        assert f"{s['test/accuracy']:.4f}" in out and f"{s['val/loss']:.4f}" in out
    curves = out.split("curves per epoch")[1]
    assert "train/loss" in curves and "val/accuracy" in curves
    from trainwise.run.compare import config_diff, load_runs

    assert [k for k, _ in config_diff(load_runs([root / "runs" / "A", root / "runs" / "B"]))] == [
        "optim.lr", "train.epochs"]


def test_compare_user_errors(root: Path, tmp_path: Path) -> None:
    for args in (("compare", "runs/A"), ("compare", "runs/A", "runs/notes"), ("compare", "runs/A", "runs/zzz"),
                 ("compare", "runs/A", "runs/damaged")):
        proc = _cli(*args, cwd=root)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1, \
            (args, proc.stderr)
    page = tmp_path / "c.html"
    page.write_text("keep me")
    proc = _cli("compare", "runs/A", "runs/B", "--html", page, cwd=root)
    assert proc.returncode == 2 and "--force" in proc.stderr and proc.stdout == ""
    assert page.read_text() == "keep me"
    proc = _cli("compare", "runs/A", "runs/B", "--html", page, "--force", cwd=root)
    assert proc.returncode == 0 and page.read_text().startswith("<!DOCTYPE html>")


def test_compare_html_renders_in_headless_chromium(root: Path, tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    proc = _cli("compare", "runs/A", "runs/B", "runs/crashed", "--html", page, cwd=root)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # self-contained
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: apt-get install -y chromium (.ci/run installs it)"
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    proc = subprocess.run([*base, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append((tag, dict(attrs)))

    parser = Tags()
    parser.feed(dom)
    ids = {a.get("id") for _, a in parser.tags}
    assert {"runs", "config-diff", "metrics", "curves"} <= ids
    n_img = sum(1 for t, _ in parser.tags if t == "img")
    assert n_img == 4  # train/loss, val/loss, val/accuracy, train/accuracy
    body = next(a for t, a in parser.tags if t == "body")
    # the page's script counts images that decoded (complete && naturalWidth > 0) after the load event
    assert body.get("data-images-total") == str(n_img) and body.get("data-images-ok") == str(n_img), body
    assert "optim.lr" in dom and "crashed (resumable)" in dom

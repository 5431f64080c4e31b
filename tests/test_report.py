"""``report.html``: sections present, self-contained (no URL, every image inline), escaped, graceful without the
optional files — and really rendered by headless Chromium, with every embedded image decoded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import trainwise
from trainwise.checkup.report import write_report
from trainwise.errors import TrainwiseError
from trainwise.runner import train

SECTIONS = ("header", "findings", "curves", "lr-schedule", "grad-norms", "activations", "confusion", "preflight",
            "timing", "config")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]  # small /dev/shm in containers would crash the renderer


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: one torch thread for this module


class _Tags(HTMLParser):
    """Every start tag with its attributes; ids and img srcs are all the tests need."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(text)
    return p.tags


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch digits-mlp run with monitors sampled every 5 steps (40 steps) and train events every 5."""
    rd = tmp_path_factory.mktemp("report") / "run"
    cfg = trainwise.compose(None, "digits-mlp", ["train.epochs=2", "doctor.monitor_every=5", "train.log_every=5"])
    train(cfg, run_dir=rd, quiet=True)
    return rd


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    return write_report(run)


def test_report_has_every_section_and_is_self_contained(run: Path, report: Path) -> None:
    assert report == run / "report.html"
    text = report.read_text()
    tags = _tags(text)
    ids = {a.get("id") for _, a in tags if a.get("id")}
    assert set(SECTIONS) <= ids, set(SECTIONS) - ids
    imgs = [a["src"] or "" for t, a in tags if t == "img"]
    # curves ×2, lr, grad norms, update ratios, dead units, confusion matrix
    assert len(imgs) >= 7
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in text and "https://" not in text
    assert not [t for t, a in tags if t in ("link", "iframe", "object", "embed") or (t == "script" and a.get("src"))]
    csp = [a.get("content") or "" for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]  # the browser itself refuses any fetch
    # the run's own data made it in: its finding code, its layer names, its resolved config
    findings = json.loads((run / "diagnosis.json").read_text())["findings"]
    assert findings and all(f["code"] in text for f in findings)
    assert "body.0" in text and "head" in text
    assert "name: digits-mlp" in text


def test_confusion_matrix_recomputes_the_test_accuracy(run: Path, report: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    m = re.search(r"accuracy from the matrix <b>([0-9.]+)</b>", report.read_text())
    assert m, "confusion matrix section lacks its accuracy"
    assert abs(float(m.group(1)) - summary["test/accuracy"]) < 1e-3
    assert "test split (360 samples" in report.read_text()  # 20% of the 1797 digits


def test_report_only_adds_report_html(run: Path, report: Path, snap) -> None:  # noqa: ANN001 - conftest fixture
    before = snap(run)
    write_report(run)
    after = snap(run)
    assert {k: v for k, v in before.items() if k != "report.html"} == \
        {k: v for k, v in after.items() if k != "report.html"}


def test_report_of_a_bare_run_escapes_text_and_says_not_recorded(run: Path, tmp_path: Path) -> None:
    # what a crashed or pre-doctor run leaves: no summary/history/monitors/preflight; a hostile finding message
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "metrics.jsonl", "preprocess.json", "best.safetensors"):
        shutil.copy(run / name, bare / name)
    (bare / "diagnosis.json").write_text(json.dumps({"findings": [{
        "code": "overfitting", "severity": "warning", "message": "<script>alert('x')</script> & <b>bold</b>",
        "evidence": {"val<loss>": 1.5, "layers": ["a&b"]}, "fixes": ["set <optim.lr>=1e-4"]}]}))
    text = write_report(bare, tmp_path / "out" / "r.html").read_text()
    assert "<script>alert" not in text and "<b>bold</b>" not in text and "<optim.lr>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "val&lt;loss&gt;" in text and "set &lt;optim.lr&gt;=1e-4" in text
    sections = {a["id"]: i for i, (_, a) in enumerate(_tags(text)) if a.get("id")}
    assert set(SECTIONS) <= set(sections)
    for sid in ("grad-norms", "activations", "preflight", "timing"):
        body = text.split(f'id="{sid}"', 1)[1].split("<section", 1)[0]
        assert "not recorded" in body, sid
    curves = text.split('id="curves"', 1)[1].split("<section", 1)[0]
    assert "data:image/png;base64," in curves  # history rebuilt from metrics.jsonl
    assert "not finished" in text


def test_user_errors_are_trainwise_errors(run: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainwiseError, match="does not exist"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainwiseError, match="not a run directory"):
        write_report(tmp_path / "empty")
    with pytest.raises(TrainwiseError, match="is a directory"):
        write_report(run, tmp_path)


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: apt-get install -y chromium (.ci/run installs it)"
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    proc = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    tags = _tags(dom)
    ids = {a.get("id") for _, a in tags}
    assert {"findings", "confusion", "grad-norms", "config"} <= ids
    n_img = sum(1 for t, _ in tags if t == "img")
    assert n_img == report.read_text().count("<img ") >= 7
    # the page's inline script counts images with complete && naturalWidth > 0 after the load event
    body = next(a for t, a in tags if t == "body")
    assert body.get("data-images-total") == str(n_img), body
    assert body.get("data-images-ok") == str(n_img), body

    shot = tmp_path / "shot.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,4000", url], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1280, 4000)
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        assert len(colours) > 500, len(colours)  # text, tables and plots — a blank or error page has a handful
        white = {rgb: n for n, rgb in colours}.get((255, 255, 255), 0)
        assert white < 0.95 * 1280 * 4000  # and not a white page with a few specks


def test_cli_report(run: Path, tmp_path: Path, one_thread_env: dict[str, str]) -> None:
    # `trainwise report` is wired by cli.py (not this module's file): this fails until that command exists
    out = tmp_path / "cli.html"
    proc = subprocess.run([sys.executable, "-m", "trainwise", "report", str(run), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=one_thread_env)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and 'id="findings"' in out.read_text()
    proc = subprocess.run([sys.executable, "-m", "trainwise", "report", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120, env=one_thread_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1

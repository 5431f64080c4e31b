"""The recipes: each runs in --fast mode and prints only well-formed verdict lines; `trainwise recipes` lists them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("[0-9][0-9]_*.py"))
VERDICT = re.compile(r"^(HOLDS|HOLDS ON GPU ONLY|NOT ON THIS CPU|DOES NOT HOLD|INCONCLUSIVE): \S.* — \S.*$")
TRAINWISE = Path(sys.executable).with_name("trainwise")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 shared cores: one thread per process keeps timings sane


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def fast_runs() -> Iterator[dict[Path, Future]]:
    """Every recipe's --fast run, two at a time (each is single-threaded; half of a run is interpreter and torch
    start-up), started on first use so the parametrized tests below only wait for their own result."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {p: pool.submit(_run, [sys.executable, str(p), "--fast"]) for p in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_fast(recipe: Path, fast_runs: dict[Path, Future]) -> None:
    proc = fast_runs[recipe].result()
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    verdicts = [line for line in lines if VERDICT.match(line)]
    assert verdicts, f"{recipe.name} printed no verdict line:\n{proc.stdout}"
    # Everything else is the header or an indented demonstration line: nothing may look half like a verdict.
    bad = [line for line in lines if not (VERDICT.match(line) or line.startswith(("  ", "== ")))]
    assert not bad, f"{recipe.name} printed lines that are not verdicts: {bad}"


def test_list_and_unknown_number() -> None:
    listed = _run([str(TRAINWISE), "recipes"], timeout=60)
    assert listed.returncode == 0, listed.stderr
    for path in RECIPES:
        assert path.name in listed.stdout
    bad = _run([str(TRAINWISE), "recipes", "run", "999"], timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_run_writes_claims_table(tmp_path: Path) -> None:
    out = tmp_path / "claims.md"
    proc = _run([str(TRAINWISE), "recipes", "run", "1", "2", "--fast", "--out", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1/2] 01_" in proc.stdout and "[2/2] 02_" in proc.stdout
    text = out.read_text(encoding="utf-8")
    assert "| 1 | forward propagation |" in text and "python recipes/02_backpropagation.py --fast" in text
    # A later run of one recipe keeps the other recipe's rows.
    assert _run([str(TRAINWISE), "recipes", "run", "2", "--fast", "--out", str(out)]).returncode == 0
    assert "| 1 | forward propagation |" in out.read_text(encoding="utf-8")


@pytest.fixture()
def common(monkeypatch: pytest.MonkeyPatch):
    """recipes/_common.py as a module, with a fresh verdict state (no JSONL file, full mode)."""
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import _common

    monkeypatch.setattr(_common, "_state", {"topic": 99, "subject": "test", "file": "99_test.py", "fast": False,
                                            "jsonl": None, "rows": [], "t0": 0.0})
    return _common


def test_compare_verdicts_follow_the_interval(common) -> None:
    """A clear paired advantage holds, an advantage smaller than the seed-to-seed noise is INCONCLUSIVE, a clear
    disadvantage does not hold (for a speed claim: NOT ON THIS CPU), and a margin must be cleared, not just 0."""
    a_clear, b = [0.95, 0.96, 0.94, 0.97, 0.95], [0.90, 0.91, 0.90, 0.92, 0.89]
    kw = {"what": "accuracy", "context": "toy"}
    assert common.compare("A beats B", a_clear, b, names=("A", "B"), **kw) == common.HOLDS
    noisy = [0.93, 0.88, 0.95, 0.87, 0.92]  # mean +0.006 over B, differences spread ±0.05
    assert common.compare("A beats B", noisy, b, names=("A", "B"), **kw) == common.INCONCLUSIVE
    assert common.compare("B beats A", b, a_clear, names=("B", "A"), **kw) == common.FAILS
    t_fast, t_slow = [1.0, 1.02, 0.99, 1.01, 1.0], [1.21, 1.2, 1.22, 1.19, 1.2]  # 1.2× faster, tight
    speed = {"higher": False, "ratio": True, "over": "rounds", "kind": "cpu-speed"}
    assert common.compare("fast is faster", t_fast, t_slow, names=("f", "s"), margin=0.1, **speed, **kw) == common.HOLDS
    assert common.compare("fast is 50% faster", t_fast, t_slow, names=("f", "s"), margin=0.5, **speed,
                          **kw) == common.NOT_CPU
    rows = common.rows()
    assert [r["runs"] for r in rows] == ["5 seeds"] * 3 + ["5 rounds"] * 2
    assert "95% CI" in rows[1]["evidence"] and "±" in rows[1]["evidence"]


def test_combined_and_paired(common) -> None:
    assert common.combined([1, 1]) == common.HOLDS
    assert common.combined([1, 0]) == common.INCONCLUSIVE
    assert common.combined([1, 0, -1], kind="cpu-speed") == common.NOT_CPU
    cmp = common.paired([2.0, 2.0, 2.0], [1.0, 1.0, 1.0], higher=True, ratio=True)  # no spread: a point interval
    assert cmp.lo == cmp.hi == pytest.approx(0.6931, abs=1e-4) and common.side(cmp, margin=0.9, ratio=True) == 1
    with pytest.raises(ValueError):
        common.paired([1.0], [2.0])  # one pair has no spread to judge noise by

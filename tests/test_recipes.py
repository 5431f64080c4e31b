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
VERDICT = re.compile(r"^(HOLDS|HOLDS ON GPU ONLY|NOT ON THIS CPU|DOES NOT HOLD): \S.* — \S.*$")
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

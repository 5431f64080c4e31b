"""README's overhead numbers are generated from benchmarks/RESULTS.md (benchmarks/readme_numbers.py): they match it,
and a README that quotes a different number fails the check (issue 20: the two cannot drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "readme_numbers.py"


def _load():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import readme_numbers
    finally:
        sys.path.pop(0)
    return readme_numbers


def test_readme_matches_results() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_quoted_ratio_carries_its_spread() -> None:
    rn = _load()
    n = rn.numbers((ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8"))
    ratios = {k: v for k, v in n.items() if v.endswith(")") and "×" in v}
    assert {"tw_loop", "tw_whole", "mlp/lightning lean", "compute/accelerate"} <= set(ratios), n
    for key, value in ratios.items():
        lo, hi = value.split("(")[1].rstrip(")").split("–")
        assert float(lo) <= float(value.split("×")[0]) <= float(hi), (key, value)


def test_a_drifted_readme_fails_the_check() -> None:
    rn = _load()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    quoted = rn.numbers(results)["tw_loop"]
    assert quoted in readme
    drifted = readme.replace(quoted, "0.50× (0.40–0.60)", 1)
    assert rn.render(drifted, results) != drifted  # regenerating puts RESULTS.md's number back
    assert rn.render(readme, results) == readme

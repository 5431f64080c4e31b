"""The preset results that docs/presets.md records (benchmarks/preset_results.py) and README quotes: the default
preset's 5-seed numbers meet its bar, README's quoted numbers are the generated table's, and (slow) retraining the
default preset over seeds 0–4 reproduces them."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "presets.md"
README = ROOT / "README.md"
SEEDS = [0, 1, 2, 3, 4]


def _row(name: str) -> list[str]:
    """The cells of preset ``name``'s row in docs/presets.md: preset, bar, seeds, result, met, seconds."""
    for line in DOC.read_text().splitlines():
        if line.startswith(f"| `{name}` |"):
            return [c.strip() for c in line.strip().strip("|").split(" | ")]
    raise AssertionError(f"no row for {name} in {DOC}")


def _metric(result: str, label: str) -> dict[str, object]:
    """``label M ± S (min–max A–B; per seed v0 / v1 / …)`` in a result cell → numbers (percent signs dropped)."""
    num = r"(-?[0-9.]+)%?"
    m = re.search(rf"{re.escape(label)} {num} ± {num} \(min–max {num}–{num}; per seed ([^)]*)\)", result)
    assert m, f"{label!r} not found in {result!r}"
    per = [float(v.strip().rstrip("%")) for v in m.group(5).split(" / ")]
    return {"mean": float(m.group(1)), "sd": float(m.group(2)), "min": float(m.group(3)), "max": float(m.group(4)),
            "per_seed": per}


def _digits_cnn() -> tuple[list[int], dict[str, object], dict[str, object], str]:
    _, _, seeds, result, met, _ = _row("digits-cnn")
    seed_list = [int(s) for s in seeds.split(" (")[0].split(", ")]
    return seed_list, _metric(result, "test accuracy"), _metric(result, "training s"), met


def test_digits_cnn_recorded_five_seeds_meet_the_bar():
    """Issue 20: ≥ 99.5% mean test accuracy over seeds 0–4, worst seed ≥ 99.0% (and so above the 98.5% floor),
    < 30 s of training per seed — on the numbers docs/presets.md records, which must be self-consistent."""
    seeds, acc, wall, met = _digits_cnn()
    assert seeds == SEEDS
    per = acc["per_seed"]
    assert len(per) == 5
    assert abs(statistics.mean(per) - acc["mean"]) < 0.006 and min(per) == acc["min"] and max(per) == acc["max"]
    assert abs(statistics.stdev(per) - acc["sd"]) < 0.006
    assert acc["mean"] >= 99.5, acc
    assert acc["min"] >= 99.0, acc
    assert len(wall["per_seed"]) == 5 and max(wall["per_seed"]) < 30, wall
    assert met == "yes / yes"


def test_every_multi_seed_row_lists_at_least_three_seeds():
    text = DOC.read_text()
    generated = text[:text.index("\n## ")] if "\n## " in text else text  # hand-written sections follow
    rows = [line for line in generated.splitlines() if line.startswith("| `")]
    assert rows
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if "0 only" in cells[2]:  # a row recorded before the results were multi-seed (named as such)
            continue
        seeds = cells[2].split(" (")[0].split(", ")
        assert len(seeds) >= (5 if cells[0] == "`digits-cnn`" else 3), line


def test_readme_quotes_the_generated_numbers():
    """README's digits-cnn quote is docs/presets.md's 5-seed mean and worst seed (one decimal)."""
    _, acc, wall, _ = _digits_cnn()
    text = README.read_text()
    m = re.search(r"digits-cnn: ([0-9.]+)% mean test accuracy over seeds 0–4 \(worst ([0-9.]+)%\), "
                  r"~([0-9]+) s of training", text)
    assert m, "README no longer quotes digits-cnn's 5-seed mean in the quick-start block"
    assert m.group(1) == f"{acc['mean']:.1f}" and m.group(2) == f"{acc['min']:.1f}", (m.group(0), acc)
    assert abs(int(m.group(3)) - wall["mean"]) <= max(2.0, 0.5 * wall["mean"]), (m.group(0), wall)
    assert "99.7% test accuracy (seed 0)" not in text  # the old single-seed quote


def test_readme_adding_quote_matches_the_generated_row():
    """README's adding-lstm / adding-rnn comparison quotes the seed means docs/presets.md records."""
    _, _, _, result, _, _ = _row("adding-lstm / adding-rnn")
    if "± " not in result:
        pytest.skip("adding row not yet re-measured over seeds")
    lstm, rnn = _metric(result, "LSTM test MSE"), _metric(result, "vanilla RNN")
    m = re.search(r"adding-rnn: the vanilla RNN's MSE is ([0-9.]+) vs the LSTM's ([0-9.]+), means of seeds 0–2",
                  README.read_text())
    assert m, "README's adding-rnn quote changed form"
    assert float(m.group(1)) == pytest.approx(rnn["mean"], abs=0.006), (m.group(0), rnn)
    assert float(m.group(2)) == pytest.approx(lstm["mean"], abs=max(0.0001, 0.5 * lstm["mean"])), (m.group(0), lstm)


@pytest.mark.slow
def test_digits_cnn_retrained_over_seeds_reproduces_the_record(tmp_path: Path):
    """Retrain the default preset (seeds 0–4, full budget): every seed above the 98.5% floor, and each within 3 test
    samples (of 360) of the recorded value. The bar itself (≥ 99.5% mean) is judged on the record above: the record is
    measured with the default threads and tests run with one, and a one-sample change of one seed moves the mean by
    0.06 points (seeds 0–4 at 1 thread gave 99.61% mean, at 2 threads 99.50%), so asserting the bar here would test
    last-bit numerics, not the preset."""
    from trainwise.config import compose
    from trainwise.runner import train

    _, acc, _, _ = _digits_cnn()
    got = []
    for seed in SEEDS:
        cfg = compose(preset="digits-cnn", overrides=["device=cpu", f"seed={seed}", "tracking.backends=[]"])
        got.append(100 * train(cfg, run_dir=tmp_path / f"s{seed}", quiet=True).summary["test/accuracy"])
    assert min(got) >= 98.5, got
    for g, r in zip(got, acc["per_seed"], strict=True):
        assert abs(g - r) <= 3 * 100 / 360 + 0.01, (got, acc["per_seed"])

"""A smoke run of every built-in preset through the same entry point as ``trainwise train`` (one short epoch);
what each preset reaches with its full budget is measured by benchmarks/preset_results.py (docs/presets.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwise.config import compose, preset_names
from trainwise.runner import train

SMALL_SYNTHETIC = {"seq_reverse": 600, "adding": 600, "order": 600, "sine": 600}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_trains_end_to_end(name: str, tmp_path: Path):
    cfg = compose(preset=name, overrides=["train.epochs=1", "device=cpu"])
    if cfg.data.source in SMALL_SYNTHETIC:
        cfg.data.options["n"] = SMALL_SYNTHETIC[cfg.data.source]
    if cfg.data.source == "images":  # digits-images: its PNG files, written as `trainwise data digits-png` does
        from trainwise.data_cmd import write_digits_png

        write_digits_png(tmp_path / "png")
        cfg.data.path, cfg.data.cache_dir = str(tmp_path / "png"), str(tmp_path / "cache")
    if cfg.data.source == "text":  # docstrings-*: a small corpus of two libraries, built as `trainwise data docstrings`
        from trainwise.docstrings import build

        build(tmp_path / "docs.csv", per_library=80, libraries=("sklearn", "matplotlib"))
        cfg.data.path, cfg.data.cache_dir = str(tmp_path / "docs.csv"), str(tmp_path / "cache")
    r = train(cfg, run_dir=tmp_path / "run", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["steps"] > 0
    main = f"test/{summary['main_metric']}"
    assert main in summary and summary[main] == r.summary[main]

"""The run directory: resolved config, metrics.jsonl, summary.json, weights, curves."""

"""The docstrings-transformer preset next to the baselines users would pick instead, on the same splits.

    .venv/bin/trainwise data docstrings docstrings.csv                  # the corpus (≈ 30 s; see trainwise/docstrings.py)
    .venv/bin/python benchmarks/text_baseline.py --data docstrings.csv --seeds 0 1 2

Per seed (the seed fixes the split and the initialisation): scikit-learn TF-IDF (word 1–2-grams, sublinear tf) +
logistic regression with C chosen on the validation split, fitted on the train split only — the split a
``data.source=text`` run uses (``trainwise.data.text.text_splits``); then three trainwise models through
``trainwise.runner.train``: the preset (transformer encoder, mean pooling), a bidirectional LSTM, and a bag of
embeddings (``embedding_bag``). Test accuracy and macro F1 → benchmarks/results/text_baseline.json and a markdown table
on stdout (docs/presets.md, "Text: docstrings").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.config import compose
from trainwise.data.text import text_splits
from trainwise.runner import train

ROOT = Path(__file__).resolve().parents[1]
PRESET = "docstrings-transformer"
MODELS = {
    "transformer (preset)": [],
    "bi-LSTM": ["model.name=rnn", "model.cell=lstm", "model.bidirectional=true", "model.hidden=128",
                "model.embed_dim=128", "model.dropout=0.1"],
    "bag of embeddings": ["model.name=embedding_bag", "model.embed_dim=128", "optim.lr=0.003",
                          "optim.weight_decay=0.0"],
}


def tfidf_logreg(parts: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    xtr = vec.fit_transform(parts["train"][0])
    xva, xte = vec.transform(parts["val"][0]), vec.transform(parts["test"][0])
    best = None
    for c in (1.0, 3.0, 10.0, 30.0):
        clf = LogisticRegression(C=c, max_iter=3000).fit(xtr, parts["train"][1])
        acc = accuracy_score(parts["val"][1], clf.predict(xva))
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    _, c, clf = best
    pred = clf.predict(xte)
    return {"test/accuracy": float(accuracy_score(parts["test"][1], pred)),
            "test/f1_macro": float(f1_score(parts["test"][1], pred, average="macro")), "C": c,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="docstrings.csv")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "text_baseline.json"))
    args = ap.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        base = [f"data.path={args.data}", f"seed={seed}", "device=cpu"]
        parts = text_splits(compose(preset=PRESET, overrides=base))
        rows.setdefault("TF-IDF + logistic regression (scikit-learn)", []).append(tfidf_logreg(parts))
        for name, extra in MODELS.items():
            cfg = compose(preset=PRESET, overrides=[*base, *extra])
            t0 = time.perf_counter()
            r = train(cfg, run_dir=Path(tempfile.mkdtemp(prefix="tw-text-")) / "run", quiet=True)
            rows.setdefault(name, []).append({"test/accuracy": r.summary["test/accuracy"],
                                              "test/f1_macro": r.summary["test/f1_macro"],
                                              "seconds": time.perf_counter() - t0})
        n = {s: len(p[0]) for s, p in parts.items()}
        print(f"seed {seed}: splits {n}", flush=True)
    out = {"data": args.data, "seeds": args.seeds, "splits": n, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("| model | test accuracy | test macro F1 | seconds (train + eval, CPU) |\n|---|---|---|---|")
    for name, rs in rows.items():
        acc = np.array([r["test/accuracy"] for r in rs])
        f1 = np.array([r["test/f1_macro"] for r in rs])
        sec = np.mean([r["seconds"] for r in rs])
        pm = (lambda a: f"{a.mean():.3f} ± {a.std():.3f}") if len(rs) > 1 else (lambda a: f"{a.mean():.3f}")
        print(f"| {name} | {pm(acc)} | {pm(f1)} | {sec:.0f} |")


if __name__ == "__main__":
    main()

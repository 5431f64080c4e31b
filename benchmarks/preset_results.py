"""Train every paradigm preset with its full budget and record what it reaches against its bar → docs/presets.md.

    .venv/bin/python benchmarks/preset_results.py                 # all → results/presets.json + docs/presets.md
    .venv/bin/python benchmarks/preset_results.py seq-reverse     # some: merged into the recorded results
    .venv/bin/python benchmarks/preset_results.py --dry gan       # print only

Each check trains through ``trainwise.runner.train`` (what ``trainwise train --preset NAME`` runs), with the
comparison runs the bar needs (the same preset without the ingredient that should matter), measured in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.build import load_data
from trainwise.config import compose
from trainwise.runner import train

ROOT = Path(__file__).resolve().parents[1]


def run(preset: str, *overrides: str) -> tuple[dict[str, Any], float, Path]:
    cfg = compose(preset=preset, overrides=["device=cpu", *overrides])
    d = Path(tempfile.mkdtemp(prefix="tw-preset-")) / "run"
    t0 = time.perf_counter()
    r = train(cfg, run_dir=d, quiet=True)
    return r.summary, time.perf_counter() - t0, d


def autoencoder() -> dict[str, Any]:
    s, sec, _ = run("digits-autoencoder")
    per_class = {}
    for k in range(10):  # the bar is the preset's class; the table reports every held-out class
        sk, _, _ = run("digits-autoencoder", f"data.holdout_class={k}")
        per_class[k] = round(sk["test/auroc"], 3)
    auroc = s["test/auroc"]
    return {"result": f"AUROC {auroc:.3f} (held-out class {compose(preset='digits-autoencoder').data.holdout_class});"
                      f" per held-out class: {per_class}", "bar": "AUROC ≥ 0.85", "met": auroc >= 0.85,
            "seconds": sec}


def vae() -> dict[str, Any]:
    s, sec, d = run("digits-vae")
    ok = (d / "samples.png").is_file() and (d / "reconstructions.png").is_file()
    return {"result": f"test ELBO {s['test/elbo']:.2f} (recon {s['test/recon']:.2f}, KL {s['test/kl']:.2f}); "
                      "samples.png + reconstructions.png written" if ok else "grids missing",
            "bar": "ELBO reported, sample and reconstruction grids saved", "met": ok, "seconds": sec}


def gan() -> dict[str, Any]:
    s, sec, _ = run("digits-gan")
    conf, classes = s["gan/confident_fraction"], s["gan/classes_present"]
    return {"result": f"{conf:.0%} of 1,000 samples classified with p ≥ 0.9; {classes}/10 classes present "
                      f"(counts {s['gan/class_counts']}; judge test accuracy {s['gan/judge_test_accuracy']:.3f})",
            "bar": "confident predictions (≥ 50% at p ≥ 0.9), all 10 classes present",
            "met": conf >= 0.5 and classes == 10, "seconds": sec}


def simclr() -> dict[str, Any]:
    s, sec, d = run("digits-simclr")
    probe, rnd = s["probe/accuracy"], s["probe/accuracy_random_encoder"]
    ft, _, _ = run("digits-simclr-finetune", f"model.init_from={d}")
    scratch, _, _ = run("digits-simclr-finetune", "model.init_from=null")
    a, b = ft["test/accuracy"], scratch["test/accuracy"]
    return {"result": f"linear probe {probe:.3f} vs {rnd:.3f} on a random encoder; 10% labels: fine-tuned {a:.3f} "
                      f"vs scratch {b:.3f}", "bar": "probe beats random encoder; fine-tune beats scratch",
            "met": probe > rnd and a > b, "seconds": sec}


def transfer() -> dict[str, Any]:
    s, sec, _ = run("digits-transfer")
    scratch, _, _ = run("digits-transfer", "model.init_from=null")
    a, b = s["test/accuracy"], scratch["test/accuracy"]
    return {"result": f"fine-tuned {a:.3f} vs scratch {b:.3f} (digits 5–9, 10% of labels)", "bar": "beats scratch",
            "met": a > b, "seconds": sec}


def seq_reverse() -> dict[str, Any]:
    s, sec, _ = run("seq-reverse")
    em = s["test/exact_match"]
    return {"result": f"exact match {em:.3f} on held-out sequences (token accuracy {s['test/token_accuracy']:.3f})",
            "bar": "exact match ≥ 0.95", "met": em >= 0.95, "seconds": sec}


def adding() -> dict[str, Any]:
    lstm, sec, _ = run("adding-lstm")
    rnn, sec_rnn, _ = run("adding-rnn")
    a, b = lstm["test/mse"], rnn["test/mse"]
    return {"result": f"LSTM test MSE {a:.4f}; vanilla RNN {b:.4f} (trivial baseline 0.167; "
                      f"length {compose(preset='adding-lstm').data.options.get('length', 50)}; at length 50 the "
                      "vanilla RNN with orthogonal init still learned it: MSE 0.0057, measured 2026-11-27)",
            "bar": "LSTM well under 0.167 (≤ 0.05); RNN not", "met": a <= 0.05 and b > 0.1,
            "seconds": sec + sec_rnn}


def order() -> dict[str, Any]:
    pos, sec, _ = run("order-transformer")
    nopos, _, _ = run("order-transformer", "model.positional=none")
    a, b = pos["test/accuracy"], nopos["test/accuracy"]
    return {"result": f"with positions {a:.3f}; without {b:.3f} (chance 0.5)",
            "bar": "solves it with positions (≥ 0.95), near chance without (≤ 0.6)", "met": a >= 0.95 and b <= 0.6,
            "seconds": sec}


def sine() -> dict[str, Any]:
    s, sec, _ = run("sine-forecast")
    cfg = compose(preset="sine-forecast")
    test = load_data(cfg).test
    assert test is not None
    prep = load_data(cfg).preprocess
    # Last-value baseline on the same test split, in original units: predict x[T-1] for x[T].
    last = test.x[:, -1, 0].numpy() * prep.std[0] + prep.mean[0]
    y = test.y.numpy() * prep.y_std + prep.y_mean
    base = float(np.mean((last - y) ** 2))
    m = s["test/mse"]
    return {"result": f"test MSE {m:.4f} vs last-value baseline {base:.4f} ({base / m:.1f}× better)",
            "bar": "≥ 2× better than the last-value baseline", "met": base / m >= 2, "seconds": sec}


def digits_images() -> dict[str, Any]:
    """The digits-cnn recipe from PNG files (data.source=images) vs the same recipe on the in-memory arrays and a
    logistic regression on the same pixels (its split: the image folder's, from the same seed)."""
    from sklearn.linear_model import LogisticRegression

    from trainwise.data_cmd import write_digits_png

    tmp = Path(tempfile.mkdtemp(prefix="tw-digits-png-"))
    write_digits_png(tmp / "png")
    files = [f"data.path={tmp / 'png'}", f"data.cache_dir={tmp / 'cache'}"]
    s, sec, _ = run("digits-images", *files)
    arrays, _, _ = run("digits-cnn")
    splits = load_data(compose(preset="digits-images", overrides=files))
    tr, te = splits.train, splits.test
    xtr, xte = tr.__getitems__(list(range(len(tr))))[0].reshape(len(tr), -1), \
        te.__getitems__(list(range(len(te))))[0].reshape(len(te), -1)
    ytr, yte = tr.__getitems__(list(range(len(tr))))[1], te.__getitems__(list(range(len(te))))[1]
    logreg = LogisticRegression(max_iter=2000).fit(xtr.numpy(), ytr.numpy()).score(xte.numpy(), yte.numpy())
    acc, base = s["test/accuracy"], arrays["test/accuracy"]
    return {"result": f"test accuracy {acc:.3f} from 1,797 PNG files vs {base:.3f} for digits-cnn on the arrays; "
                      f"logistic regression on the same pixels {logreg:.3f}",
            "bar": "within 1 point of digits-cnn on the arrays, and above logistic regression on pixels",
            "met": acc >= base - 0.01 and acc > logreg, "seconds": sec}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "digits-autoencoder": autoencoder, "digits-vae": vae, "digits-gan": gan, "digits-simclr": simclr,
    "digits-transfer": transfer, "seq-reverse": seq_reverse, "adding-lstm / adding-rnn": adding,
    "order-transformer": order, "sine-forecast": sine, "digits-images": digits_images,
}


def write_docs(rows: dict[str, dict[str, Any]]) -> None:
    lines = ["# Paradigm presets: what each reaches", "",
             "Generated by `.venv/bin/python benchmarks/preset_results.py [CHECK ...]` on the 2-core CPU machine (fp32, "
             "shared with other jobs, so seconds are upper bounds); every comparison run is trained in the same "
             "invocation as its preset. Seconds are the preset's own training run (`trainwise train --preset NAME`). "
             "Raw rows: `benchmarks/results/presets.json`.", "",
             "| preset | bar | result | met | seconds |", "|---|---|---|---|---|"]
    for name in CHECKS:
        if name in rows:
            r = rows[name]
            lines.append(f"| `{name}` | {r['bar']} | {r['result']} | {'yes' if r['met'] else '**no**'} | "
                         f"{r['seconds']:.0f} |")
    (ROOT / "docs" / "presets.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="checks to run (default: all); results merge into the recorded ones")
    ap.add_argument("--dry", action="store_true", help="print only; record nothing")
    args = ap.parse_args(argv)
    names = [n for n in CHECKS if not args.names or any(a in n for a in args.names)]
    store = ROOT / "benchmarks" / "results" / "presets.json"
    rows = json.loads(store.read_text()) if store.is_file() else {}
    for name in names:
        t0 = time.perf_counter()
        row = CHECKS[name]()
        row["total_seconds"] = round(time.perf_counter() - t0, 1)
        row["measured"] = time.strftime("%Y-%m-%d %H:%M")
        print(f"{name}: {'MET' if row['met'] else 'NOT MET'} — {row['result']} ({row['seconds']:.0f} s)", flush=True)
        if not args.dry:  # recorded after each check, so a long run interrupted keeps what it measured
            rows[name] = row
            store.parent.mkdir(exist_ok=True)
            store.write_text(json.dumps(rows, indent=2, default=str))
            write_docs(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

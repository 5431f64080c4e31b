"""data.source=text: CSV/TSV/JSONL texts through a tokenizer trained on the train split, cached ids, dynamic padding;
resume after SIGKILL, predict / serve / export from raw strings, seq2seq on text pairs, and every bad input refused."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_error_line, kill_after_checkpoints
from trainwise.config import compose

PY = sys.executable
POS = ["great", "wonderful", "excellent", "loved", "fantastic", "superb", "enjoyable", "brilliant"]
NEG = ["terrible", "awful", "boring", "hated", "dreadful", "poor", "disappointing", "dull"]
FILLER = "the movie was really quite a story with actors and plot and music overall film scenes".split()


def write_reviews(path: Path, n: int = 320, seed: int = 0) -> None:
    """A small sentiment corpus: filler words plus one polar word; a score column for regression."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment", "score"])
        for i in range(n):
            lab = i % 2
            words = rng.sample(FILLER, 5) + [rng.choice(POS if lab else NEG)] + rng.sample(FILLER, rng.randint(0, 9))
            rng.shuffle(words)
            w.writerow([" ".join(words), "pos" if lab else "neg", f"{lab * 3 + rng.random():.3f}"])


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, TRAINWISE_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


ARGS = ["data.source=text", "data.path=reviews.csv", "data.text=review", "data.target=sentiment",
        "data.tokenizer.vocab_size=120", "data.max_length=12", "data.batch_size=16", "model.name=transformer",
        "model.d_model=32", "model.heads=2", "model.layers=1", "model.dropout=0.1", "train.epochs=4",
        "train.patience=100", "checkpoint.every_steps=4", "optim.lr=3e-3", "doctor.monitor_every=0"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished text-classification run (transformer over BPE ids), trained from the CSV by the CLI."""
    root = tmp_path_factory.mktemp("text_run")
    write_reviews(root / "reviews.csv")
    proc = subprocess.run([PY, "-m", "trainwise", "train", *ARGS, "--run-dir", "ref", "--quiet"], cwd=root,
                          env=_env(root / "cache"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "truncated" in proc.stderr  # max_length=12 cuts the longer reviews, and says so
    return root / "ref"


def test_text_run_reports_tokenizer_and_truncation(text_run: Path) -> None:
    report = json.loads((text_run / "data_report.json").read_text())
    assert report["task"] == "classification" and report["classes"] == ["neg", "pos"]
    assert report["rows"] == report["used"] == 320 and report["skipped"] == 0
    assert sum(report["per_split"].values()) == 320
    assert report["tokenizer"]["kind"] == "bpe" and report["tokenizer"]["specials"]["pad"] == 0
    assert "train split" in report["tokenizer"]["source"] and report["tokenizer"]["vocab_size"] <= 120
    cut = report["truncated"]["review"]
    assert cut["samples"] > 0 and cut["tokens_cut_max"] == report["lengths"]["review"]["max"] - 12
    assert not report["cache_hit"] and Path(report["cache"]).is_file()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(text_run / "tokenizer.json"))  # the run ships its tokenizer
    assert tok.token_to_id("[PAD]") == 0 and tok.get_vocab_size() == report["tokenizer"]["vocab_size"]
    summary = json.loads((text_run / "summary.json").read_text())
    assert summary["test/accuracy"] > 0.7  # one polar word decides the label


@pytest.mark.slow
def test_text_classification_resumes_bit_exactly_after_sigkill(text_run: Path) -> None:
    root = text_run.parent
    env = _env(root / "cache")
    run = root / "killed"
    kill_after_checkpoints(["train", *ARGS, "--run-dir", "killed", "--quiet"], root, run, env)
    assert not (run / "tokenizer.json").exists()  # written when training ends
    resumed = subprocess.run([PY, "-m", "trainwise", "resume", "killed", "--quiet"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (text_run / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert (text_run / "final.safetensors").read_bytes() == (run / "final.safetensors").read_bytes()
    assert (text_run / "tokenizer.json").read_bytes() == (run / "tokenizer.json").read_bytes()
    assert json.loads((run / "data_report.json").read_text())["cache_hit"]


def test_predict_from_raw_strings_through_the_saved_tokenizer(text_run: Path, tmp_path: Path) -> None:
    from trainwise.deploy.predict import predict_texts

    texts = ["a wonderful and brilliant film", "dull boring plot with awful actors", "superb music"]
    cols = predict_texts(text_run, texts)
    assert cols["prediction"] == ["pos", "neg", "pos"]
    assert np.allclose(np.asarray(cols["prob_neg"]) + np.asarray(cols["prob_pos"]), 1.0, atol=1e-6)
    (tmp_path / "new.txt").write_text("\n".join([texts[0], "", texts[1]]) + "\n", encoding="utf-8")
    proc = subprocess.run([PY, "-m", "trainwise", "predict", str(text_run), "new.txt"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 empty text" in proc.stderr
    import pandas as pd

    out = pd.read_csv(tmp_path / "new.predictions.csv")
    assert list(out.columns) == ["line", "text", "prediction", "prob_neg", "prob_pos"]
    assert out["line"].tolist() == [1, 3] and out["prediction"].tolist() == ["pos", "neg"]
    rows = [{"id": i, "review": t} for i, t in enumerate(texts)]
    (tmp_path / "more.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    proc = subprocess.run([PY, "-m", "trainwise", "predict", str(text_run), "more.jsonl"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "more.predictions.csv")["prediction"].tolist() == ["pos", "neg", "pos"]


def test_serve_answers_a_texts_request(text_run: Path) -> None:
    from fastapi.testclient import TestClient

    from trainwise.deploy.serve import create_app

    client = TestClient(create_app(text_run))
    r = client.post("/predict", json={"texts": ["a wonderful and brilliant film", "dull boring plot"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == ["pos", "neg"] and len(body["probabilities"][0]) == 2
    for bad, status in (({"texts": []}, 422), ({"texts": ["ok", 3]}, 422), ({"texts": ["  "]}, 422),
                        ({"texts": "not a list"}, 422)):
        r = client.post("/predict", json=bad)
        assert r.status_code == status, (bad, r.text)


def test_onnx_export_parity_on_tokenized_inputs_with_the_tokenizer_beside_it(text_run: Path, monkeypatch) -> None:
    from trainwise.deploy.artifacts import open_run
    from trainwise.deploy.export import export_run
    from trainwise.deploy.predict import predict_texts
    from trainwise.deploy.text import encode_texts

    monkeypatch.chdir(text_run.parent)  # data.path is relative, as the run was trained
    monkeypatch.setenv("TRAINWISE_CACHE", str(text_run.parent / "cache"))
    run = open_run(text_run)
    meta = export_run(run, "onnx", force=True)
    entry = meta["artifacts"]["onnx"]
    assert entry["parity"]["passed"] and entry["parity"]["max_abs_diff"] < 1e-4
    assert meta["input"]["dtype"] == "int64" and meta["input"]["shape"] == ["batch", 12]
    shipped = text_run / "export" / "tokenizer.json"
    assert shipped.read_bytes() == (text_run / "tokenizer.json").read_bytes()
    assert meta["tokenizer"]["max_length"] == 12 and meta["tokenizer"]["pad_id"] == 0
    # The artefact as a user would run it: tokenizer.json + model.onnx, nothing of trainwise.
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(shipped))
    texts = ["a wonderful and brilliant film", "dull boring plot with awful actors and a story that goes on and on"]
    ids = np.zeros((2, 12), np.int64)
    for i, t in enumerate(texts):
        e = tok.encode(t).ids[:12]
        ids[i, :len(e)] = e
    assert (ids == encode_texts(text_run, run.cfg, texts)).all()
    sess = ort.InferenceSession(str(text_run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": ids})[0]
    with torch.inference_mode():
        eager = run.model(torch.from_numpy(ids)).numpy()
    assert np.abs(logits - eager).max() < 1e-4
    assert predict_texts(text_run, texts, fmt="onnx")["prediction"] == predict_texts(text_run, texts)["prediction"]


# ---- the data side, in process ----------------------------------------------------------------------------------


def _cfg(tmp_path: Path, *overrides: str):
    return compose(preset="digits-mlp", overrides=["data.source=text", f"data.path={tmp_path / 'reviews.csv'}",
                                                   "data.text=review", "data.target=sentiment",
                                                   "data.tokenizer.vocab_size=100",
                                                   f"data.cache_dir={tmp_path / 'cache'}", "model.name=rnn",
                                                   *overrides])


def test_tokenizer_sees_the_train_split_only_batches_pad_to_their_longest_and_the_cache_hits(tmp_path: Path) -> None:
    from trainwise.build import load_data

    write_reviews(tmp_path / "reviews.csv")
    with open(tmp_path / "reviews.csv", "a", newline="") as f:  # words that occur in one row only
        csv.writer(f).writerows([[f"zyxwvut{i} qqqqqq{i} great", "pos", "1"] for i in range(10)])
    big = ("data.tokenizer.min_frequency=1", "data.tokenizer.vocab_size=3000")  # every train word becomes a token
    splits = load_data(_cfg(tmp_path, *big))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(splits.files["tokenizer.json"])
    vocab = tok.get_vocab()
    report = splits.report
    assert report["used"] == 330 and not report["cache_hit"]
    train_text = set(" ".join(tok.decode(r.tolist(), skip_special_tokens=True) for r in splits.train.x).split())
    seen = [f"zyxwvut{i}" in train_text for i in range(10)]
    assert any(seen) and not all(seen)
    for i in range(10):  # a word is a token exactly when the train split holds it
        assert (f"▁zyxwvut{i}" in vocab) == seen[i]
    assert splits.preprocess.kind == "tokens" and splits.preprocess.input_shape == [128]
    x, y = splits.train.__getitems__([0, 1, 2, 3])
    assert x.dtype == torch.int64 and x.shape[1] == int(splits.train.lengths[:4].max()) < 128
    assert (x[torch.arange(4), splits.train.lengths[:4] - 1] != 0).all()  # last real token, then padding only
    again = load_data(_cfg(tmp_path, *big))
    assert again.report["cache_hit"] and again.files == splits.files
    assert torch.equal(again.train.x, splits.train.x) and torch.equal(again.test.y, splits.test.y)
    other = load_data(_cfg(tmp_path, *big, "data.max_length=8"))
    assert not other.report["cache_hit"] and other.report["cache"] != splits.report["cache"]


def test_bpe_is_deterministic_wordpiece_trains_and_regression_and_multilabel_parse(tmp_path: Path) -> None:
    from trainwise.build import load_data
    from trainwise.data.tokenize import train_tokenizer

    write_reviews(tmp_path / "reviews.csv")
    texts = [line.split(",")[0] for line in (tmp_path / "reviews.csv").read_text().splitlines()[1:]]
    a = train_tokenizer(texts, "bpe", 80, 1, True)
    b = train_tokenizer(texts, "bpe", 80, 1, True)
    assert a.to_str() == b.to_str() and a.token_to_id("[PAD]") == 0  # same split → same ids, run after run
    wp = train_tokenizer(texts, "wordpiece", 80, 1, True)
    assert [wp.token_to_id(t) for t in ("[PAD]", "[BOS]", "[EOS]", "[UNK]")] == [0, 1, 2, 3]
    assert wp.decode(wp.encode("the movie was great").ids) == "the movie was great"
    reg = load_data(_cfg(tmp_path, "data.target=score", "data.task=regression", "data.tokenizer.kind=wordpiece"))
    assert reg.task == "regression" and reg.train.y.dtype == torch.float32 and abs(float(reg.train.y.mean())) < 1e-5
    rows = [{"text": t, "tags": ["a"] if i % 3 == 0 else ["a", "b"] if i % 3 == 1 else []} for i, t in
            enumerate(texts)]
    (tmp_path / "tags.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ml = load_data(_cfg(tmp_path, f"data.path={tmp_path / 'tags.jsonl'}", "data.text=text", "data.target=tags"))
    assert ml.task == "multilabel" and ml.preprocess.class_names == ["a", "b"] and ml.train.y.shape[1] == 2


def test_rnn_and_bag_of_embeddings_train_on_text_in_process(tmp_path: Path, one_thread) -> None:
    from trainwise.runner import train

    write_reviews(tmp_path / "reviews.csv")
    for model in (["model.name=rnn", "model.cell=gru", "model.bidirectional=true", "model.hidden=32"],
                  ["model.name=embedding_bag"]):
        cfg = _cfg(tmp_path, *model, "train.epochs=3", "optim.lr=1e-2", "data.batch_size=32")
        result = train(cfg, run_dir=None, quiet=True)
        assert result.summary["test/accuracy"] > 0.6, (model, result.summary)


# ---- seq2seq on text pairs ----------------------------------------------------------------------------------------


def test_seq2seq_on_text_pairs_decodes_strings(tmp_path: Path) -> None:
    rng = random.Random(0)
    words = ["red", "green", "blue", "cat", "dog", "sun", "moon", "tree"]
    with open(tmp_path / "pairs.tsv", "w", encoding="utf-8") as f:
        f.write("src\ttgt\n")
        for _ in range(300):
            s = [rng.choice(words) for _ in range(rng.randint(2, 4))]
            f.write(f"{' '.join(s)}\t{' '.join(reversed(s))}\n")
    env = _env(tmp_path / "cache")
    args = ["--preset", "seq-reverse", "data.source=text", "data.path=pairs.tsv", "data.text=[src,tgt]",
            "data.tokenizer.vocab_size=40", "data.max_length=8", "train.epochs=12", "model.d_model=32",
            "model.heads=2", "model.layers=1", "optim.lr=3e-3", "data.eval_batch_size=64", "doctor.monitor_every=0"]
    proc = subprocess.run([PY, "-m", "trainwise", "train", *args, "--run-dir", "s2s", "--quiet"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s2s" / "summary.json").read_text())
    assert summary["test/token_accuracy"] > 0.2, summary  # learning, not chance (1/8 per word)
    (tmp_path / "src.txt").write_text("red cat\nblue moon sun\n", encoding="utf-8")
    proc = subprocess.run([PY, "-m", "trainwise", "predict", "s2s", "src.txt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    out = pd.read_csv(tmp_path / "src.predictions.csv", keep_default_na=False)
    assert out["text"].tolist() == ["red cat", "blue moon sun"]
    for s in out["prediction"]:
        assert isinstance(s, str) and s and set(s.split()) <= set(words), out


# ---- bad input ------------------------------------------------------------------------------------------------------


def _refused(cli, root: Path, snap, *args: str, needles: tuple[str, ...]) -> None:
    before = snap(root)
    proc = cli("train", "data.source=text", "model.name=rnn", "train.epochs=1", "data.tokenizer.vocab_size=60",
               *args, "--run-dir", "R", "--quiet", env={"TRAINWISE_CACHE": str(root.parent / f"{root.name}-cache")})
    assert_one_error_line(proc, needles)
    assert snap(root) == before


def test_bad_text_inputs_are_one_error_line_and_write_nothing(cli, tmp_path: Path, snap) -> None:
    write_reviews(tmp_path / "reviews.csv", n=60)
    ok = ("data.path=reviews.csv", "data.text=review", "data.target=sentiment")
    _refused(cli, tmp_path, snap, "data.path=reviews.csv", "data.text=body", "data.target=sentiment",
             needles=("no column 'body'", "review"))
    _refused(cli, tmp_path, snap, "data.path=reviews.csv", "data.text=review", "data.target=label",
             needles=("no column 'label'", "data.target"))
    lines = (tmp_path / "reviews.csv").read_text().splitlines()
    lines[5] = ',pos,1.0'  # data row 5: an empty text
    (tmp_path / "empty.csv").write_text("\n".join(lines) + "\n")
    _refused(cli, tmp_path, snap, "data.path=empty.csv", "data.text=review", "data.target=sentiment",
             "data.on_bad_row=error", needles=("row 5", "empty text", "data.on_bad_row=skip"))
    raw = (tmp_path / "reviews.csv").read_bytes().split(b"\n")
    raw[7] = raw[7][:4] + b"\xff\xfe" + raw[7][4:]  # file line 8
    (tmp_path / "latin.csv").write_bytes(b"\n".join(raw))
    _refused(cli, tmp_path, snap, "data.path=latin.csv", "data.text=review", "data.target=sentiment",
             needles=("not UTF-8", "line 8", "0xff"))
    _refused(cli, tmp_path, snap, "data.path=reviews.csv", "data.text=[review,summary]", "paradigm.name=seq2seq",
             "model.name=seq2seq", needles=("no column 'summary'", "[source, target]"))
    _refused(cli, tmp_path, snap, *ok, "data.max_length=1", needles=("data.max_length=1", "≥ 2"))
    (tmp_path / "tok.json").write_text('{"version": "1.0", "model": {"type": "Nonsense"}}')
    _refused(cli, tmp_path, snap, *ok, "data.tokenizer.path=tok.json", needles=("tok.json", "tokenizer.json"))
    (tmp_path / "broken.json").write_text('{"version": ')
    _refused(cli, tmp_path, snap, *ok, "data.tokenizer.path=broken.json", needles=("broken.json",))
    _refused(cli, tmp_path, snap, "data.path=reviews.csv", "data.target=sentiment", needles=("data.text",))


def test_empty_texts_are_skipped_and_counted(tmp_path: Path) -> None:
    from trainwise.build import load_data

    write_reviews(tmp_path / "reviews.csv")
    lines = (tmp_path / "reviews.csv").read_text().splitlines()
    lines[3], lines[10] = ",neg,1.0", '"   ",pos,2.0'
    lines[12] = lines[12].split(",")[0] + ",,3.0"  # a missing label
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")
    splits = load_data(_cfg(tmp_path))
    r = splits.report
    assert r["rows"] == 320 and r["skipped"] == 3 and r["used"] == 317
    assert [s["row"] for s in r["skipped_rows"]] == [3, 10, 12]
    assert "missing label" in r["skipped_rows"][2]["reason"]

"""Text runs (``data.source=text``) in predict, serve and export: raw strings → the run's own ``tokenizer.json`` →
ids padded to the run's ``data.max_length`` → the model (eager, ONNX or int8) → labels and probabilities, values, or
(seq2seq) decoded strings.

Inputs are padded to the full ``max_length`` here (training pads each batch to its longest text): the exported graph
has a fixed sequence length, and the models mask padding, so the two give the same outputs to float rounding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwise.deploy.artifacts import BadRequest, request_batch
from trainwise.errors import TrainwiseError

TOKENIZER = "tokenizer.json"
MAX_TEXT_CHARS = 100_000  # per text in a serve request


@lru_cache(maxsize=8)
def _tokenizer(path: str, mtime_ns: int) -> Any:
    from trainwise.data.tokenize import load_tokenizer

    return load_tokenizer(path, "the run's tokenizer")


def run_tokenizer(run_dir: Path) -> Any:
    """The tokenizer a text run was trained with (``RUN_DIR/tokenizer.json``), loaded once per process."""
    p = Path(run_dir) / TOKENIZER
    if not p.is_file():
        raise TrainwiseError(f"'{run_dir}' has no {TOKENIZER}; a text run writes it when training ends (resume the "
                             "run to finish it)")
    return _tokenizer(str(p), p.stat().st_mtime_ns)


def encode_texts(run_dir: Path, cfg: Any, texts: list[str]) -> np.ndarray:
    """Raw strings → (N, max_length) int64 ids, truncated and right-padded exactly as in training."""
    from trainwise.data.tokenize import encode, special_ids

    tok = run_tokenizer(run_dir)
    pad = special_ids(tok)["pad"]
    pad = 0 if pad is None else pad
    seq2seq = str(cfg.paradigm.name) == "seq2seq"
    width = int(cfg.data.max_length)
    ids, _, _ = encode(tok, texts, width, pad, special=not seq2seq)
    out = np.full((len(texts), width), pad, np.int64)
    out[:, :ids.shape[1]] = ids
    return out


def generate(run_dir: Path, cfg: Any, model: torch.nn.Module, ids: np.ndarray, chunk: int = 256) -> list[str]:
    """Seq2seq: source ids → decoded strings (greedy, or beam search with ``paradigm.beam_size``)."""
    from trainwise.data.tokenize import decode, special_ids

    tok = run_tokenizer(run_dir)
    sp = special_ids(tok)
    out: list[str] = []
    model.eval()
    for i in range(0, len(ids), chunk):
        src = torch.from_numpy(ids[i:i + chunk])
        gen = model.generate(src, max_len=int(cfg.data.max_length),  # type: ignore[operator]  # Seq2SeqTransformer
                             beam_size=int(cfg.paradigm.beam_size))
        out += decode(tok, gen.numpy(), sp["eos"], sp["pad"] if sp["pad"] is not None else 0)
    return out


def read_texts(path: Path, cfg: Any) -> tuple[list[str], list[int], str]:
    """The texts of a ``.csv`` / ``.tsv`` / ``.jsonl`` (the run's text column) or ``.txt`` (one per line) file, with
    their row/line numbers; empty texts are skipped (counted on stderr)."""
    from trainwise.config import text_columns
    from trainwise.data.text import cell_text, read_records, require_columns

    if path.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".txt"):
        raise TrainwiseError(f"input '{path}' of a text run must be a .csv, .tsv, .jsonl or .txt file (one text per "
                             "line)")
    cols, records, unit = read_records(path)
    col = "text" if path.suffix.lower() == ".txt" else text_columns(cfg.data)[0]
    require_columns(path, cols, [col], "the run's text column, data.text")
    texts, where, empty = [], [], 0
    for i, r in enumerate(records):
        t = cell_text(r.get(col))
        if not t.strip():
            empty += 1
            continue
        texts.append(t)
        where.append(i + 1)  # data row (CSV) or file line (JSONL, TXT)
    if empty:
        sys.stderr.write(f"warning: skipped {empty} empty text(s) of '{path}' (the 'row' column of the output gives "
                         "each prediction's place)\n")
    if not texts:
        raise TrainwiseError(f"'{path}' holds no text to predict")
    return texts, where, unit


def prediction_columns(prep: Any, out: np.ndarray) -> dict[str, Any]:
    """Model outputs → the columns ``predict`` writes: label + per-class probabilities, per-label 0/1 + probability
    (multi-label), or the value (regression)."""
    t = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
    cols: dict[str, Any] = {}
    if prep.task == "classification":
        probs = t.softmax(1).numpy()
        cols["prediction"] = [prep.class_names[i] for i in t.argmax(1).tolist()]
        for j, name in enumerate(prep.class_names):
            cols[f"prob_{name}"] = probs[:, j]
    elif prep.task == "multilabel":
        probs = t.sigmoid().numpy()
        cols["prediction"] = ["|".join(n for n, p in zip(prep.class_names, row) if p > 0.5) for row in probs]
        for j, name in enumerate(prep.class_names):
            cols[f"prob_{name}"] = probs[:, j]
    else:
        cols["prediction"] = (t.squeeze(1) * prep.y_std + prep.y_mean).numpy()
    return cols


def predict_file(rd: Path, cfg: Any, prep: Any, model: torch.nn.Module, inp: Path, dest: Path, fmt: str,
                 load_predictor: Callable[[Any, str], Any]) -> Path:
    """``trainwise predict RUN file.csv|.tsv|.jsonl|.txt`` for a text run: writes ``dest`` (a CSV with ``row``,
    ``text`` and the prediction columns). ``load_predictor`` is deploy/predict.py's (passed in: predict dispatches
    text runs here, so this module cannot import it back)."""
    import pandas as pd

    from trainwise.deploy.artifacts import Run
    from trainwise.run.rundir import atomic_write
    from trainwise.safety import write_error

    paradigm = str(cfg.paradigm.name)
    if paradigm not in ("supervised", "seq2seq", "distill"):
        raise TrainwiseError(f"'{rd}' is a {paradigm} run; predict writes the predictions of supervised or seq2seq "
                             "runs")
    if paradigm == "seq2seq" and fmt != "eager":
        raise TrainwiseError("seq2seq runs decode with the eager model (the decoding loop is not in the exported "
                             "graph); leave --format out")
    run = Run(rd, cfg, prep, model)
    if fmt != "eager":
        load_predictor(run, fmt)  # a missing artefact is reported before any input is read
    run_tokenizer(rd)
    texts, where, unit = read_texts(inp, cfg)
    ids = encode_texts(rd, cfg, texts)
    cols: dict[str, Any] = {unit: where, "text": texts}
    if paradigm == "seq2seq":
        cols["prediction"] = generate(rd, cfg, model, ids)
    else:
        cols.update(prediction_columns(prep, load_predictor(run, fmt).outputs(ids)))
    try:
        atomic_write(dest, lambda p: pd.DataFrame(cols).to_csv(p, index=False))
    except OSError as exc:
        raise write_error(dest, exc) from None
    return dest


def serve_inputs(payload: dict[str, Any], run: Any, max_batch: int) -> np.ndarray:
    """``{"texts": ["...", ...]}`` → (N, max_length) ids; raises serve's ``BadRequest`` for a bad payload."""
    if str(run.cfg.data.get("source")) != "text":
        raise BadRequest(422, '"texts" needs a run trained on text (data.source=text); send {"inputs": [...]}')
    texts = request_batch(payload["texts"], "texts", max_batch, "strings", "texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadRequest(422, f"texts[{i}] is {type(t).__name__}, not a string")
        if not t.strip():
            raise BadRequest(422, f"texts[{i}] is empty")
        if len(t) > MAX_TEXT_CHARS:
            raise BadRequest(413, f"texts[{i}] has {len(t):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return encode_texts(run.run_dir, run.cfg, texts)


def ship_tokenizer(run: Any, out_dir: Path, meta: dict[str, Any]) -> None:
    """``trainwise export`` of a text run: the tokenizer beside the artefact, and how to feed it in export.json."""
    import shutil

    from trainwise.data.tokenize import special_ids

    tok = run_tokenizer(run.run_dir)
    shutil.copyfile(run.run_dir / TOKENIZER, out_dir / TOKENIZER)
    meta["tokenizer"] = {"file": TOKENIZER, "max_length": int(run.cfg.data.max_length),
                         "pad_id": special_ids(tok)["pad"], "padding": "right, to max_length",
                         "add_special_tokens": str(run.cfg.paradigm.name) != "seq2seq",
                         "usage": "Tokenizer.from_file('tokenizer.json').encode(text).ids[:max_length], right-padded "
                                  "with pad_id to max_length, as int64 (batch, max_length)"}

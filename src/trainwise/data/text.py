"""``data.source=text``: a file of texts (``.csv``, ``.tsv``, ``.jsonl``) tokenized once into a cached id matrix.

``data.text=COLUMN`` with ``data.target=COLUMN``: classification (string or integer labels), regression (numbers;
``data.task=regression`` or more than 50 distinct values), or multi-label (``data.task=multilabel``: a JSON list per
row in ``.jsonl``, labels separated by ``|`` in ``.csv``/``.tsv``). ``data.text=[SOURCE, TARGET]`` with
``paradigm.name=seq2seq``: text pairs.

Order of work: read and check every row (UTF-8, columns, empty texts, missing labels) → split (stratified, from the
seed, as for arrays) → train the tokenizer on the **train split's texts only** (or load ``data.tokenizer.path``) →
encode every split, truncating to ``data.max_length`` and counting what was cut. Everything after the read is cached
in ``<cache>/<key>.npz`` + ``<key>.json``, the key hashing the file's bytes, the columns, the task, the split
(seed, fractions), the tokenizer options (or the given tokenizer's bytes) and ``max_length``; the ``.json`` is
written last, so a half-written cache is never used. ``<cache>``: ``data.cache_dir``, else ``$TRAINWISE_CACHE/text``,
else ``~/.cache/trainwise/text``.

Batches: each split is a :class:`TextSplit` holding its (N, W) id matrix in memory; a batch is ``ids[idx, :w]`` with
``w`` the longest text *in that batch* (lengths precomputed) — dynamic padding at the cost of one gather. Padding is
``[PAD]`` = 0: the models mask it (attention, pooling), pack by length (``rnn``), and ``nn.Embedding(padding_idx=0)``
gives it no gradient; the seq2seq loss ignores it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from trainwise.config import text_columns
from trainwise.data.loaders import Collated
from trainwise.data.splits import Preprocess, Splits, stratify_labels
from trainwise.data.tokenize import (
    PAD,
    encode,
    from_json,
    load_tokenizer,
    special_ids,
    train_tokenizer,
)
from trainwise.errors import TrainwiseError, suggest

SUFFIXES = (".csv", ".tsv", ".jsonl")
CACHE_VERSION = 1  # bump when reading or encoding changes: old caches then miss instead of being reused
MAX_LISTED = 20  # skipped rows listed by number in data_report.json (all are counted)


@dataclass
class TextReport:
    """What the file held and what tokenization did: written to ``RUN_DIR/data_report.json``."""

    path: str
    format: str
    columns: list[str]
    task: str = ""
    rows: int = 0  # data rows read
    used: int = 0
    skipped: int = 0  # empty texts / missing labels (data.on_bad_row=skip)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_LISTED: {"row"|"line", "reason"}
    per_split: dict[str, int] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    max_length: int = 0
    lengths: dict[str, dict[str, float]] = field(default_factory=dict)  # per text column, tokens before truncation
    truncated: dict[str, dict[str, float]] = field(default_factory=dict)  # per text column
    no_tokens: int = 0  # texts that produced no token (given one [UNK])
    cache: str = ""
    cache_hit: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TextSplit(Dataset):
    """One split's token ids in memory; ``__getitems__`` pads a batch to its own longest text only.

    ``x``: (N, max_length) right-padded ids (int32: half the memory; batches are int64) and ``y``:
    labels / values / (N, T) target ids — the full matrices, for code that reads a split whole (export parity,
    reports). Seq2seq targets keep their full width, so every batch's (B, T) targets concatenate.
    """

    def __init__(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.lengths, self.y = x, lengths, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitems__(self, positions: list[int]) -> Collated:
        idx = torch.as_tensor(positions, dtype=torch.long)
        width = int(self.lengths[idx].max())  # lengths live on the CPU: no device sync
        return Collated((self.x[idx, :width].long(), self.y[idx]))  # (B, width) int64 ids

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([position])
        return x[0], y[0]


# ---- reading ------------------------------------------------------------------------------------------------------


def cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("TRAINWISE_CACHE")
    return Path(env) / "text" if env else Path.home() / ".cache" / "trainwise" / "text"


def decode_utf8(raw: bytes, path: Path) -> str:
    """The file as text; bytes that are not UTF-8 are refused, naming the line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TrainwiseError(f"'{path}' is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {col} "
                             f"cannot be decoded; re-save the file as UTF-8") from None


def read_records(path: Path, raw: bytes | None = None) -> tuple[list[str], list[dict[str, Any]], str]:
    """Rows of a ``.csv`` / ``.tsv`` (every cell a string) or ``.jsonl`` (JSON values) file, their column names, and
    the word for their numbering ("row": data rows of a CSV, header excluded; "line": lines of a JSONL file).
    ``.txt``: one text per line, column ``text``."""
    suffix = path.suffix.lower()
    if suffix not in (*SUFFIXES, ".txt"):
        raise TrainwiseError(f"'{path}' must be a .csv, .tsv or .jsonl file (one text per row)")
    if not path.is_file():
        raise TrainwiseError(f"data file '{path}' does not exist (set data.path=FILE)")
    text = decode_utf8(path.read_bytes() if raw is None else raw, path)
    if suffix == ".txt":
        return ["text"], [{"text": line} for line in text.splitlines()], "line"
    if suffix == ".jsonl":
        rows: list[dict[str, Any]] = []
        seen: dict[str, None] = {}
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                rows.append({})  # a blank line: counted like an empty text
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise TrainwiseError(f"'{path}' line {i} is not valid JSON ({str(exc).splitlines()[0][:120]}); "
                                     "a .jsonl file holds one JSON object per line") from None
            if not isinstance(obj, dict):
                raise TrainwiseError(f"'{path}' line {i} holds a JSON {type(obj).__name__}, not an object "
                                     '({"text": ..., "label": ...})')
            seen.update(dict.fromkeys(obj))
            rows.append(obj)
        return list(seen), rows, "line"
    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(text), sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                         na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise TrainwiseError(f"cannot read '{path}': {str(exc).splitlines()[0][:200]}") from None
    return [str(c) for c in df.columns], [{str(k): v for k, v in r.items()} for r in df.to_dict("records")], "row"


def require_columns(path: Path, have: list[str], want: list[str], what: str) -> None:
    for c in want:
        if c not in have:
            raise TrainwiseError(f"'{path}' has no column '{c}' ({what}){suggest(c, have)}; its columns are: "
                                 f"{', '.join(have) if have else '(none)'}")


def cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _labels(values: list[Any], task: str, multilabel: bool, where: str) -> tuple[np.ndarray, str, list[str]]:
    """Targets → (y, task, class names): multi-label (N, L) 0/1, numbers, or class indices."""
    from trainwise.data.sources import classification_target

    if multilabel:
        sets = [v if isinstance(v, list) else [s.strip() for s in str(v).split("|") if s.strip()] for v in values]
        names = sorted({str(s) for labels in sets for s in labels})
        if len(names) < 2:
            raise TrainwiseError(f"{where}: multi-label targets hold fewer than 2 distinct labels ({names})")
        index = {n: j for j, n in enumerate(names)}
        y = np.zeros((len(sets), len(names)), np.float32)
        for i, labels in enumerate(sets):
            y[i, [index[str(s)] for s in labels]] = 1.0
        return y, "multilabel", names
    try:  # numbers written as text ("3", "4.5"): numeric targets
        arr: np.ndarray = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.array([str(v) for v in values], dtype=object)
        if task == "regression":
            bad = next(v for v in values if not _is_number(v))
            raise TrainwiseError(f"{where}: data.task=regression but the target '{bad}' is not a number") from None
    return classification_target(arr, task, where)


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


# ---- the data set ---------------------------------------------------------------------------------------------------


def _key(raw: bytes, cfg: DictConfig, tok_bytes: bytes | None) -> str:
    d = cfg.data
    t = d.tokenizer
    parts = [CACHE_VERSION, text_columns(d), d.target, d.task, cfg.seed, d.val_fraction, d.test_fraction,
             d.max_length, d.on_bad_row, t.kind, t.vocab_size, t.min_frequency, t.lowercase,
             hashlib.sha256(tok_bytes).hexdigest() if tok_bytes is not None else None]
    h = hashlib.sha256(json.dumps(parts, default=str).encode())
    h.update(hashlib.sha256(raw).digest())
    return h.hexdigest()[:32]


def _split(n: int, y: np.ndarray, task: str, seed: int, val: float, test: float, where: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    val_idx = test_idx = np.array([], np.int64)
    strat = "classification" if task == "classification" else "none"
    try:
        if test > 0:
            idx, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=stratify_labels(y[idx], strat))
        if val > 0:
            idx, val_idx = train_test_split(idx, test_size=val / (1 - test), random_state=seed,
                                            stratify=stratify_labels(y[idx], strat))
    except ValueError as exc:
        raise TrainwiseError(f"cannot split the {n} texts of {where} into train/val/test ({exc}); add rows or lower "
                             "data.val_fraction / data.test_fraction") from None
    return np.sort(idx), np.sort(val_idx), np.sort(test_idx)


def _length_stats(full: np.ndarray, max_length: int, eos: bool) -> tuple[dict, dict]:
    budget = max_length - 1 if eos else max_length
    cut = np.maximum(full - budget, 0)
    lengths = {"mean": round(float(full.mean()), 2), "p50": float(np.percentile(full, 50)),
               "p95": float(np.percentile(full, 95)), "max": int(full.max())}
    trunc = {"samples": int((cut > 0).sum()), "fraction": round(float((cut > 0).mean()), 4),
             "tokens_cut_mean": round(float(cut[cut > 0].mean()), 2) if (cut > 0).any() else 0.0,
             "tokens_cut_max": int(cut.max()), "tokens_cut_total": int(cut.sum())}
    return lengths, trunc


def _rows(cfg: DictConfig, path: Path, raw: bytes) -> dict[str, Any]:
    """Read and check every row, drop (or refuse) bad ones, encode the targets, split: everything before the
    tokenizer. Also what a baseline needs to see exactly the same splits (:func:`text_splits`)."""
    d = cfg.data
    cols = text_columns(d)
    pairs = len(cols) == 2
    have, records, unit = read_records(path, raw)
    require_columns(path, have, cols, "data.text" if not pairs else "data.text: the [source, target] columns")
    if not pairs:
        require_columns(path, have, [str(d.target)], "data.target")
    if not records:
        raise TrainwiseError(f"'{path}' has no rows; the dataset is empty")
    first = 2 if unit == "row" else 1  # CSV: row 1 is the first data row; name file lines for JSONL
    skipped: list[dict[str, Any]] = []
    texts: list[list[str]] = [[] for _ in cols]
    targets: list[Any] = []
    multilabel = d.task == "multilabel" or (d.task == "auto" and not pairs and
                                            any(isinstance(r.get(d.target), list) for r in records))
    for i, r in enumerate(records):
        values = [cell_text(r.get(c)) for c in cols]
        reason = next((f"empty text in column '{c}'" for c, v in zip(cols, values) if not v.strip()), None)
        target = None
        if reason is None and not pairs:
            target = r.get(d.target)
            if target is None or (isinstance(target, str) and not target.strip() and not multilabel):
                reason = f"missing label in column '{d.target}'"
        if reason is not None:
            where = f"row {i + 1}" if unit == "row" else f"line {i + first}"
            if d.on_bad_row == "error":
                raise TrainwiseError(f"'{path}' {where}: {reason}; fix the file or set data.on_bad_row=skip to skip "
                                     "such rows (they are counted in data_report.json)")
            skipped.append({unit: i + 1 if unit == "row" else i + first, "reason": reason})
            continue
        for j, v in enumerate(values):
            texts[j].append(v)
        targets.append(target.strip() if isinstance(target, str) else target)
    n = len(targets)
    if n == 0:
        raise TrainwiseError(f"every row of '{path}' was skipped ({skipped[0]['reason']}, ...); nothing to train on")
    if skipped:
        sys.stderr.write(f"warning: skipped {len(skipped)} row(s) of '{path}' with an empty text or a missing label "
                         f"(first: {unit} {skipped[0][unit]}); counted in the run's data_report.json\n")
    where = f"'{path}'"
    names: list[str] = []
    if pairs:
        task = "seq2seq"
        y_lab = np.zeros(n, np.int64)
    else:
        y_lab, task, names = _labels(targets, d.task, multilabel, f"{where} column '{d.target}'")
    train, val, test = _split(n, y_lab, task, cfg.seed, d.val_fraction, d.test_fraction, where)
    return {"cols": cols, "pairs": pairs, "have": have, "records": len(records), "skipped": skipped, "texts": texts,
            "y": y_lab, "task": task, "names": names, "train": train, "val": val, "test": test}


def text_splits(cfg: DictConfig) -> dict[str, tuple[list[str], np.ndarray]]:
    """The raw texts and encoded targets of each split, exactly as a ``data.source=text`` run splits them: for
    baselines outside trainwise (benchmarks/text_baseline.py)."""
    path = Path(str(cfg.data.path))
    r = _rows(cfg, path, path.read_bytes())
    return {s: ([r["texts"][0][i] for i in r[s].tolist()], r["y"][r[s]]) for s in ("train", "val", "test")}


def _build(cfg: DictConfig, path: Path, raw: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read, check, split, tokenize: the arrays and metadata the cache holds."""
    d = cfg.data
    r = _rows(cfg, path, raw)
    cols, pairs, have, skipped, texts = r["cols"], r["pairs"], r["have"], r["skipped"], r["texts"]
    y_lab, task, names, train, val, test = r["y"], r["task"], r["names"], r["train"], r["val"], r["test"]
    n = len(y_lab)
    t = d.tokenizer
    if t.path:
        tok = load_tokenizer(t.path)
        tok_info: dict[str, Any] = {"source": str(t.path)}
    else:
        corpus = [texts[j][i] for j in range(len(cols)) for i in train.tolist()]  # the train split only
        tok = train_tokenizer(corpus, t.kind, t.vocab_size, t.min_frequency, t.lowercase)
        tok_info = {"source": f"trained on the train split ({len(train)} rows)", "kind": t.kind,
                    "lowercase": bool(t.lowercase), "min_frequency": int(t.min_frequency),
                    "vocab_size_requested": int(t.vocab_size)}
    ids = special_ids(tok)
    if ids["pad"] is None:
        raise TrainwiseError(f"data.tokenizer.path '{t.path}' has no padding token ([PAD] or <pad>); add one to the "
                             "tokenizer or leave data.tokenizer.path out to train one")
    if pairs and (ids["pad"] != PAD or ids["eos"] is None or ids["bos"] is None):
        raise TrainwiseError(f"seq2seq on text needs a tokenizer with [PAD] = id 0 and BOS/EOS tokens; "
                             f"'{t.path}' has {ids}: leave data.tokenizer.path out to train one")
    tok_info.update({"vocab_size": int(tok.get_vocab_size(with_added_tokens=True)), "specials": ids})
    x, x_len, x_full = encode(tok, texts[0], d.max_length, ids["pad"], special=not pairs)
    arrays: dict[str, np.ndarray] = {"x": x, "x_len": x_len, "train": train, "val": val, "test": test}
    lengths, truncated = {}, {}
    lengths[cols[0]], truncated[cols[0]] = _length_stats(x_full, d.max_length, False)
    no_tokens = int((x_full == 0).sum())
    if pairs:
        yt, _, y_full = encode(tok, texts[1], d.max_length, ids["pad"], eos=ids["eos"], special=False)
        arrays["y"] = yt
        lengths[cols[1]], truncated[cols[1]] = _length_stats(y_full, d.max_length, True)
    else:
        arrays["y"] = y_lab
    meta = {"version": CACHE_VERSION, "task": task, "classes": names, "tokenizer": tok.to_str(),
            "report": {"format": path.suffix.lower()[1:], "columns": have, "rows": r["records"], "used": n,
                       "skipped": len(skipped), "skipped_rows": skipped[:MAX_LISTED], "tokenizer": tok_info,
                       "lengths": lengths, "truncated": truncated, "no_tokens": no_tokens}}
    return arrays, meta


def _write_cache(dest: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.stem}.tmp-{os.getpid()}.npz")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    mtmp = dest.with_suffix(f".json.tmp-{os.getpid()}")
    mtmp.write_text(json.dumps(meta))
    os.replace(mtmp, dest.with_suffix(".json"))  # last: its presence marks a complete cache


def _read_cache(dest: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    meta_path = dest.with_suffix(".json")
    if not (dest.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(dest, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError):
        return None  # damaged: rebuilt
    return (arrays, meta) if meta.get("version") == CACHE_VERSION else None


def load_text(cfg: DictConfig, quiet: bool = True) -> Splits:
    """Splits of :class:`TextSplit` for a ``data.source=text`` config; the tokenizer travels in ``splits.files``
    (``tokenizer.json``, written into the run directory) and the report in ``splits.report``."""
    d = cfg.data
    path = Path(str(d.path))
    if path.suffix.lower() not in SUFFIXES:
        raise TrainwiseError(f"data.path '{path}' must be a .csv, .tsv or .jsonl file (one text per row)")
    if not path.is_file():
        hint = " (the docstrings presets' file: trainwise data docstrings FILE.csv)" if cfg.name.startswith(
            "docstrings") else ""
        raise TrainwiseError(f"data file '{path}' does not exist (set data.path=FILE){hint}")
    raw = path.read_bytes()
    tok_bytes = None
    if d.tokenizer.path:
        tp = Path(str(d.tokenizer.path))
        load_tokenizer(tp)  # a file that does not parse is refused before anything else
        tok_bytes = tp.read_bytes()
    key = _key(raw, cfg, tok_bytes)
    dest = cache_root(d.cache_dir) / f"{key}.npz"
    cached = _read_cache(dest)
    hit = cached is not None
    if cached is None:
        arrays, meta = _build(cfg, path, raw)
        _write_cache(dest, arrays, meta)
    else:
        arrays, meta = cached
        if meta["report"]["skipped"]:
            sys.stderr.write(f"warning: skipped {meta['report']['skipped']} row(s) of '{path}' with an empty text or "
                             "a missing label; counted in the run's data_report.json\n")
    return _splits(cfg, path, arrays, meta, str(dest), hit)


def _splits(cfg: DictConfig, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], cache: str,
            hit: bool) -> Splits:
    d = cfg.data
    task, names = meta["task"], meta["classes"]
    tok = from_json(meta["tokenizer"])
    specials = meta["report"]["tokenizer"]["specials"]
    vocab = int(meta["report"]["tokenizer"]["vocab_size"])
    _model_specials(cfg, specials, task == "seq2seq")
    # The full matrices are padded to max_length (the model's input_shape, what export traces); batches are cut to
    # their own longest text in TextSplit.__getitems__.
    ids = arrays["x"]
    x = torch.full((len(ids), int(d.max_length)), int(specials["pad"]), dtype=torch.int32)  # int64 per batch
    x[:, :ids.shape[1]] = torch.from_numpy(ids.astype(np.int32))
    x_len = torch.from_numpy(arrays["x_len"].astype(np.int64))
    y_all = arrays["y"]
    prep = Preprocess(kind="tokens", task=task, class_names=list(names), input_shape=[int(d.max_length)],
                      vocab_size=vocab)
    train = arrays["train"]
    if task == "regression":
        yt = y_all[train].astype(np.float64)
        prep.y_mean, prep.y_std = float(yt.mean()), float(yt.std()) or 1.0
        y = torch.from_numpy(((y_all - prep.y_mean) / prep.y_std).astype(np.float32))
    elif task == "seq2seq":
        y = torch.from_numpy(y_all.astype(np.int64))
    else:
        y = torch.from_numpy(y_all)
    if task == "classification" and len(np.unique(y_all[train])) < 2:
        raise TrainwiseError(f"the training texts of '{path}' all have one label; every class needs rows")

    def part(rows: np.ndarray) -> TextSplit | None:
        if not len(rows):
            return None
        r = torch.from_numpy(rows.astype(np.int64))
        return TextSplit(x[r], x_len[r], y[r])

    num_classes = len(names) if task in ("classification", "multilabel") else (vocab if task == "seq2seq" else 0)
    rep = meta["report"]
    report = TextReport(str(path), rep["format"], rep["columns"], task=task, rows=rep["rows"], used=rep["used"],
                        skipped=rep["skipped"], skipped_rows=rep["skipped_rows"],
                        per_split={s: int(len(arrays[s])) for s in ("train", "val", "test")}, classes=list(names),
                        tokenizer=rep["tokenizer"], max_length=int(d.max_length), lengths=rep["lengths"],
                        truncated=rep["truncated"], no_tokens=rep["no_tokens"], cache=cache, cache_hit=hit)
    cut = {c: t for c, t in report.truncated.items() if t["samples"]}
    if cut:
        c, t = next(iter(cut.items()))
        sys.stderr.write(f"note: data.max_length={d.max_length} truncated {t['samples']} text(s) of column '{c}' "
                         f"({100 * t['fraction']:.1f}%, {t['tokens_cut_mean']:.1f} tokens cut on average, at most "
                         f"{t['tokens_cut_max']}); see data_report.json\n")
    cols = text_columns(d)
    what = {"seq2seq": "text pairs", "regression": "texts with values", "multilabel": "multi-label texts"}.get(
        task, f"texts of {len(names)} classes")
    splits = Splits(part(train), part(arrays["val"]), part(arrays["test"]), prep, num_classes, {},  # type: ignore[arg-type]
                    f"text {path.name}: {report.used} {what} ({', '.join(cols)}), {vocab} tokens "
                    f"({report.tokenizer.get('kind', 'given tokenizer')}), ≤ {d.max_length} tokens")
    splits.report = report.to_dict()
    splits.files = {"tokenizer.json": tok.to_str(pretty=True)}
    return splits


def _model_specials(cfg: DictConfig, ids: dict[str, int | None], seq2seq: bool) -> None:
    """A given tokenizer's pad (and BOS/EOS for seq2seq) ids become the model's, unless the config sets them; the
    run's config.yaml then records them for predict and resume."""
    from trainwise.models import get_spec

    args = get_spec(str(cfg.model.name)).arguments()
    wanted = {"pad_index": ids["pad"]}
    if seq2seq:
        wanted.update({"bos_index": ids["bos"], "eos_index": ids["eos"]})
    for name, value in wanted.items():
        if name in args and name not in cfg.model and value is not None and value != args[name][1]:
            cfg.model[name] = int(value)

"""Subword tokenizers for ``data.source=text``: Hugging Face ``tokenizers`` (Rust) trains and applies them.

What is ours: the choice of pipeline (NFKC → optional lowercase → pre-tokenizer → BPE or WordPiece), fixed special
ids, a canonical id order (so the same train split always gives the same ``tokenizer.json``, byte for byte), and
encoding into one padded id matrix with the truncation counted.

Special tokens of a trained tokenizer: ``[PAD]`` = 0, ``[BOS]`` = 1, ``[EOS]`` = 2, ``[UNK]`` = 3 — the ids the
``seq2seq`` model and task use by default, and ``pad_index=0`` of the ``rnn`` / ``transformer`` models.

* ``bpe``: SentencePiece-style — spaces become ``▁`` (Metaspace), so ``decode`` restores the text's spacing exactly
  (up to normalisation); what seq2seq outputs are decoded with.
* ``wordpiece``: BERT-style — split on whitespace and punctuation, continuation pieces marked ``##``. Its vocabulary
  is learned with the BPE trainer (as ``tokenizers``' own WordPiece trainer does) and the ids are then renumbered
  in sorted order: the library numbers ``##`` pieces in hash-map order, differently in every process. Even so, its
  trainer breaks ties between equally frequent pairs in that order, so two trainings on the same texts can differ in
  a few pieces at the vocabulary's cut-off (measured: 1 run in 4 on a 320-text corpus at vocab 80). A run re-reads
  its tokenizer from the cache, so resume and evaluate are unaffected while the cache exists; ``bpe`` (the
  default) trains the same tokenizer every time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.errors import TrainwiseError

SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
# Names other tokenizers give the special tokens (Hugging Face models): looked up in order.
PAD_NAMES = ("[PAD]", "<pad>", "<PAD>", "<|pad|>")
BOS_NAMES = ("[BOS]", "<s>", "<bos>", "[CLS]", "<|startoftext|>")
EOS_NAMES = ("[EOS]", "</s>", "<eos>", "[SEP]", "<|endoftext|>")


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:  # a dependency; only a broken install lacks it
        raise TrainwiseError("data.source=text needs the 'tokenizers' package; pip install -c constraints.txt "
                             "tokenizers") from None
    return tokenizers


def train_tokenizer(texts: Sequence[str], kind: str, vocab_size: int, min_frequency: int, lowercase: bool) -> Any:
    """A ``tokenizers.Tokenizer`` trained on ``texts`` (the train split only), ids in canonical order."""
    tk = _tokenizers()
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    norm = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()] if lowercase else [normalizers.NFKC()])
    prefix: dict[str, Any] = {"continuing_subword_prefix": "##"} if kind == "wordpiece" else {}
    bpe = tk.Tokenizer(models.BPE(unk_token="[UNK]", **prefix))
    bpe.normalizer = norm
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer() if kind == "wordpiece" else pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS),
                                  show_progress=False, **prefix)
    bpe.train_from_iterator(texts, trainer, length=len(texts))
    if kind == "bpe":
        bpe.decoder = decoders.Metaspace()
        return bpe
    vocab = bpe.get_vocab()
    rest = sorted(t for t in vocab if t not in SPECIALS)
    wp = tk.Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate([*SPECIALS, *rest])}, unk_token="[UNK]",
                                       continuing_subword_prefix="##", max_input_chars_per_word=100))
    wp.normalizer = norm
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.add_special_tokens(list(SPECIALS))  # registered as special: skipped when decoding
    return wp


def load_tokenizer(path: str | Path, what: str = "data.tokenizer.path") -> Any:
    """An existing ``tokenizer.json`` (the format ``tokenizers`` saves); a file that does not parse is refused."""
    tk = _tokenizers()
    p = Path(path)
    if not p.is_file():
        raise TrainwiseError(f"{what} '{p}' does not exist; give a tokenizer.json file (or leave it out to train one)")
    try:
        text = p.read_text(encoding="utf-8")
        json.loads(text)  # a clearer message than the Rust parser's for plain JSON errors
        return tk.Tokenizer.from_str(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrainwiseError(f"{what} '{p}' is not a tokenizer.json that the tokenizers library can read "
                             f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - the Rust side raises plain Exception for schema errors
        raise TrainwiseError(f"{what} '{p}' is not a tokenizer.json that the tokenizers library can read "
                             f"({str(exc).splitlines()[0][:160]})") from None


def from_json(text: str) -> Any:
    return _tokenizers().Tokenizer.from_str(text)


def _find(tok: Any, names: Sequence[str]) -> int | None:
    for n in names:
        i = tok.token_to_id(n)
        if i is not None:
            return int(i)
    return None


def special_ids(tok: Any) -> dict[str, int | None]:
    """``pad``, ``bos``, ``eos``, ``unk`` ids of a tokenizer (None where it has no such token)."""
    pad = _find(tok, PAD_NAMES)
    if pad is None and tok.padding:
        pad = int(tok.padding["pad_id"])
    return {"pad": pad, "bos": _find(tok, BOS_NAMES), "eos": _find(tok, EOS_NAMES),
            "unk": _find(tok, ("[UNK]", "<unk>", "<UNK>"))}


def encode(tok: Any, texts: Sequence[str], max_length: int, pad: int, eos: int | None = None,
           special: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts → (ids (N, W) int32 right-padded with ``pad``, kept lengths (N,), untruncated lengths (N,)).

    ``W`` is the longest kept length (≤ ``max_length``). With ``eos`` (seq2seq targets) each sequence is
    ``tokens[:max_length - 1] + [eos]``. A text that yields no token at all becomes one ``[UNK]`` (an all-padding row
    would leave attention nothing to attend to)."""
    encs = tok.encode_batch(list(texts), add_special_tokens=special)
    unk = special_ids(tok)["unk"]
    filler = [unk if unk is not None else pad]
    keep = max_length - 1 if eos is not None else max_length
    rows = [e.ids or filler for e in encs]
    full = np.fromiter((len(e.ids) for e in encs), np.int64, len(encs))
    rows = [r[:keep] + [eos] if eos is not None else r[:keep] for r in rows]
    lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    out = np.full((len(rows), int(lengths.max()) if len(rows) else 1), pad, np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out, lengths, full


def decode(tok: Any, ids: np.ndarray, eos: int | None, pad: int) -> list[str]:
    """(N, L) generated ids → strings (up to the first EOS; special tokens dropped)."""
    out = []
    for row in np.asarray(ids).tolist():
        if eos is not None and eos in row:
            row = row[:row.index(eos)]
        out.append(tok.decode([i for i in row if i != pad], skip_special_tokens=True))
    return out

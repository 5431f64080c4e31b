"""Encoder–decoder / seq2seq: causal decoder, teacher forcing, greedy and beam decoding (models/seq2seq.py)."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.data.synthetic import seq_reverse
from trainwise.tasks.seq2seq import Seq2Seq, decoder_input


def main() -> None:
    c.setup()
    table = seq_reverse(n=64, length=10)
    src, tgt = torch.tensor(table.x[:8]), torch.tensor(table.y[:8])
    torch.manual_seed(0)
    model = trainwise.create_model("seq2seq", in_shape=(10,), out_dim=table.vocab_size, d_model=32, heads=4,
                                   layers=2, dropout=0.0).eval()
    t_in = decoder_input(tgt)
    with torch.no_grad():
        memory, src_pad = model.encode(src)
        base = model.decode(t_in, memory, src_pad)
        changed = t_in.clone()
        changed[:, 6:] = torch.randint(3, table.vocab_size, changed[:, 6:].shape)  # rewrite the future
        after = model.decode(changed, memory, src_pad)
    past = (after[:, :6] - base[:, :6]).abs().max().item()
    future = (after[:, 6:] - base[:, 6:]).abs().max().item()
    c.check("the causal mask stops a position attending to later ones", past < 1e-5 and future > 1e-3,
            f"trainwise's decoder: rewriting target tokens from position 6 on leaves the logits at positions 0–5 "
            f"unchanged (max diff {past:.1e}) while positions ≥ 6 change (up to {future:.2f})")

    calls: list[tuple[str, torch.Tensor]] = []
    forward, generate = model.forward, model.generate
    model.forward = lambda s, t: calls.append(("forward", t)) or forward(s, t)  # type: ignore[method-assign]
    model.generate = lambda s, max_len, beam_size=1: calls.append(("generate", s)) or generate(  # type: ignore
        s, max_len, beam_size)
    task = Seq2Seq()
    model.train()
    task.train_loss(model, src, tgt)
    train_calls = list(calls)
    calls.clear()
    model.eval()
    with torch.inference_mode():
        task.eval_batch(model, src, tgt)
    forced = train_calls and all(k == "forward" and torch.equal(t, t_in) for k, t in train_calls)
    autoregressive = any(k == "generate" for k, _ in calls)
    c.check("teacher forcing at train time, autoregressive decoding at test time", bool(forced) and autoregressive,
            f"the seq2seq task's training step calls the model {len(train_calls)}× with the ground-truth targets "
            f"shifted right behind BOS as decoder input (teacher forcing: {bool(forced)}); its evaluation step calls "
            f"{[k for k, _ in calls]} — the predictions scored come from generate(), which feeds back its own "
            f"tokens (greedy, or beam with paradigm.beam_size)")


if __name__ == "__main__":
    main()

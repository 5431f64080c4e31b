"""``seq2seq``: a transformer encoder–decoder over token ids, with greedy and beam-search decoding.

Token conventions (arguments, defaults shared with ``data/synthetic.py`` and ``tasks/seq2seq.py``): PAD = 0 pads
both source and target on the right, BOS = 1 starts every decoder input, EOS = 2 ends every target. Targets are
``tokens + [EOS] + [PAD]…``; the decoder input under teacher forcing is ``[BOS] + target[:-1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models.attention import TransformerDecoderLayer, TransformerEncoderLayer, check_transformer
from trainwise.models.blocks import check_choice, token_embedding
from trainwise.models.positional import POSITIONALS, RotaryEmbedding, additive_positional
from trainwise.models.registry import register


class Seq2SeqTransformer(nn.Module):
    """Encoder: (B, S) source ids → embedding + positions → pre-norm encoder layers → LayerNorm → memory (B, S, D).
    Decoder: (B, T) target-prefix ids → embedding + positions → causal self-attention + cross-attention to the memory
    (source padding masked) → LayerNorm → Linear → logits (B, T, V). One embedding table serves source and target
    (one shared vocabulary, as in the synthetic tasks and most subword setups)."""

    def __init__(self, vocab_size: int, d_model: int, heads: int, layers: int, ff_mult: int, dropout: float,
                 max_len: int, positional: str, pad_index: int, bos_index: int, eos_index: int) -> None:
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        self.embed = token_embedding(vocab_size, d_model, pad_index)
        self.src_pos = additive_positional(positional, d_model, max_len)
        self.tgt_pos = additive_positional(positional, d_model, max_len)
        rotary = RotaryEmbedding(d_model // heads, max_len) if positional == "rotary" else None
        self.encoder = nn.ModuleList(TransformerEncoderLayer(d_model, heads, ff_mult, dropout, rotary)
                                     for _ in range(layers))
        self.decoder = nn.ModuleList(TransformerDecoderLayer(d_model, heads, ff_mult, dropout, rotary)
                                     for _ in range(layers))
        self.enc_norm = nn.LayerNorm(d_model)
        self.dec_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def _check_len(self, t: int, what: str) -> None:
        if t > self.max_len:
            raise TrainwiseError(f"{what} length {t} exceeds model.max_len={self.max_len}; "
                                 f"set model.max_len={t} or more")

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) ids → memory (B, S, D) and the source padding mask (B, S), True = pad."""
        src = src.long()
        self._check_len(src.shape[1], "source")
        pad = src == self.pad_index
        h = self.src_pos(self.embed(src))
        for layer in self.encoder:
            h = layer(h, key_padding_mask=pad)
        return self.enc_norm(h), pad

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """(B, T) decoder input ids → logits (B, T, V); position t sees tgt_in[:, :t+1] and the whole source."""
        tgt_in = tgt_in.long()
        self._check_len(tgt_in.shape[1], "target")
        h = self.tgt_pos(self.embed(tgt_in))
        for layer in self.decoder:
            h = layer(h, memory, src_pad)
        return self.out(self.dec_norm(h))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (B, S) source, (B, T) decoder input ``[BOS] + target[:-1]`` → logits (B, T, V)."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    # ---- scoring and decoding -------------------------------------------------------------------------------------

    def _valid_target(self, tgt: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: the positions a target's score counts — every non-pad token up to and including the first
        EOS (a generated sequence without EOS counts all its tokens)."""
        eos_seen_before = ((tgt == self.eos_index).long().cumsum(1) - (tgt == self.eos_index).long()) > 0
        return (tgt != self.pad_index) & ~eos_seen_before

    def sequence_logprob(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """log p(tgt | src) = Σ_t log p(tgt_t | src, BOS, tgt_<t) over the tokens through EOS, teacher forced: (B,)."""
        tgt = tgt.long()
        tgt_in = torch.cat([torch.full_like(tgt[:, :1], self.bos_index), tgt[:, :-1]], 1)
        logp = F.log_softmax(self(src, tgt_in).float(), -1)  # (B, T, V)
        tok = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)  # (B, T)
        return (tok * self._valid_target(tgt)).sum(1)

    def _step_logprobs(self, ys: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities (N, V) after the prefixes ``ys`` (N, t); PAD and BOS can never be chosen
        (their log-prob becomes −∞ for selection only; chosen tokens keep their true log-prob)."""
        logp = F.log_softmax(self.decode(ys, memory, src_pad)[:, -1].float(), -1)
        logp[:, [self.pad_index, self.bos_index]] = float("-inf")
        return logp

    def _check_generate(self, src: torch.Tensor, max_len: int, beam_size: int) -> None:
        if max_len < 1:
            raise TrainwiseError(f"generate(max_len={max_len}) must produce at least one token")
        self._check_len(max_len, "generated")
        if beam_size < 1:
            raise TrainwiseError(f"beam_size={beam_size} must be ≥ 1 (1 = greedy decoding)")

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Most likely next token at each step until EOS (then PAD) or ``max_len`` tokens: (B, L ≤ max_len)."""
        memory, src_pad = self.encode(src)
        b = src.shape[0]
        ys = torch.full((b, 1), self.bos_index, dtype=torch.long, device=src.device)  # (B, 1 + t)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            nxt = self._step_logprobs(ys, memory, src_pad).argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_index), nxt)
            ys = torch.cat([ys, nxt[:, None]], 1)
            done |= nxt == self.eos_index
            if bool(done.all()):
                break
        return ys[:, 1:]

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, max_len: int, beam_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain beam search over summed log-probs (no length normalisation: the quantity ``sequence_logprob``
        measures). Each step keeps the ``beam_size`` best one-token extensions per sample; a finished hypothesis
        (ended by EOS) stays in the beam with its score fixed and is extended by PAD.

        Returns all hypotheses (B, k, L ≤ max_len), best first, and their scores (B, k) (log-probabilities; −∞ for
        slots that never held a real hypothesis, when fewer than k sequences exist).
        """
        memory, src_pad = self.encode(src)
        b, k, v, dev = src.shape[0], beam_size, self.vocab_size, src.device
        memory, src_pad = memory.repeat_interleave(k, 0), src_pad.repeat_interleave(k, 0)  # (B·k, S, D), (B·k, S)
        ys = torch.full((b * k, 1), self.bos_index, dtype=torch.long, device=dev)  # (B·k, 1 + t)
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all k beams start identical: expand only one so they do not duplicate each other
        done = torch.zeros(b, k, dtype=torch.bool, device=dev)
        finished_row = torch.full((v,), float("-inf"), device=dev)
        finished_row[self.pad_index] = 0.0  # a finished hypothesis may only append PAD, at no cost
        for _ in range(max_len):
            logp = self._step_logprobs(ys, memory, src_pad).view(b, k, v)
            logp = torch.where(done[..., None], finished_row, logp)
            cand = (scores[..., None] + logp).view(b, k * v)  # (B, k·V) scores of every one-token extension
            scores, idx = cand.topk(k, dim=1)  # (B, k), sorted best first
            beam, token = idx // v, idx % v  # parent slot and appended token
            rows = (beam + torch.arange(b, device=dev)[:, None] * k).view(-1)  # parent row in the (B·k) layout
            ys = torch.cat([ys[rows], token.view(-1, 1)], 1)
            done = done.gather(1, beam) | (token == self.eos_index)
            if bool(done.all()):
                break
        return ys.view(b, k, -1)[:, :, 1:], scores

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_len: int, beam_size: int = 1) -> torch.Tensor:
        """Decode (B, S) sources into (B, L ≤ max_len) token ids starting after BOS; PAD after EOS.

        ``beam_size=1`` is greedy decoding. With a beam, the greedy hypothesis is also a candidate and the one with the
        higher ``sequence_logprob`` is returned per sample: plain beam search can prune the greedy path and end up
        worse, and this makes "beam ≥ greedy" hold by construction. Call ``model.eval()`` first (dropout).
        """
        src = src.long()
        self._check_generate(src, max_len, beam_size)
        greedy = self.greedy(src, max_len)
        if beam_size == 1:
            return greedy
        beam = self.beam_search(src, max_len, beam_size)[0][:, 0]  # (B, L) the best hypothesis
        width = max(greedy.shape[1], beam.shape[1])
        greedy = F.pad(greedy, (0, width - greedy.shape[1]), value=self.pad_index)
        beam = F.pad(beam, (0, width - beam.shape[1]), value=self.pad_index)
        better = self.sequence_logprob(src, beam) >= self.sequence_logprob(src, greedy)  # (B,)
        return torch.where(better[:, None], beam, greedy)


@register("seq2seq", "transformer encoder-decoder over token ids (out_dim = vocabulary); greedy or beam decoding")
def seq2seq(in_shape: tuple[int, ...], out_dim: int, d_model: int = 64, heads: int = 4, layers: int = 2,
            ff_mult: int = 4, dropout: float = 0.1, max_len: int = 256, positional: str = "sinusoidal",
            pad_index: int = 0, bos_index: int = 1, eos_index: int = 2) -> Seq2SeqTransformer:
    """``out_dim`` is the vocabulary size V shared by source and target (ids 0..V−1, including the special tokens).
    ``layers`` encoder and ``layers`` decoder layers; ``max_len`` bounds source, target and generated lengths."""
    if len(in_shape) != 1:
        raise TrainwiseError(f"seq2seq needs (S,) token-id sources, got in_shape {tuple(in_shape)}")
    check_transformer(d_model, heads, layers, ff_mult, dropout, max_len)
    check_choice("positional", positional, POSITIONALS)
    specials = {"pad_index": pad_index, "bos_index": bos_index, "eos_index": eos_index}
    if len(set(specials.values())) != 3:
        raise TrainwiseError(f"model.pad_index, bos_index and eos_index must differ, got {specials}")
    if out_dim <= 3 or any(not 0 <= i < out_dim for i in specials.values()):
        raise TrainwiseError(f"seq2seq needs a vocabulary (out_dim={out_dim}) holding the special tokens {specials} "
                             f"and at least one other token")
    if in_shape[0] > max_len:
        raise TrainwiseError(f"sources of length {in_shape[0]} exceed model.max_len={max_len}; "
                             f"set model.max_len={in_shape[0]} or more")
    return Seq2SeqTransformer(out_dim, d_model, heads, layers, ff_mult, dropout, max_len, positional, pad_index,
                              bos_index, eos_index)

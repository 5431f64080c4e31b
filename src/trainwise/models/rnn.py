"""``rnn``: a recurrent network (vanilla RNN, LSTM or GRU) over feature sequences or padded token sequences."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from trainwise.errors import TrainwiseError
from trainwise.models.blocks import check_choice, check_range, token_embedding
from trainwise.models.registry import register
from trainwise.models.transformer import sequence_input_kind

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
RNN_INITS = ("orthogonal", "default")


class RNNModel(nn.Module):
    """(B, T, F) features or (B, T) token ids → [embedding] → stacked (bi)RNN → final hidden state → Linear.

    Token sequences are right-padded with ``pad_index``; their lengths (non-pad count) go to
    ``pack_padded_sequence``, so the recurrence stops at each sequence's last real token and trailing padding cannot
    change the result. The prediction reads the top layer's final state: the forward direction's state after the last
    valid step, and (bidirectional) the backward direction's state after it has read back to step 0.
    """

    def __init__(self, in_features: int, out_dim: int, cell: str, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, vocab_size: int, pad_index: int | None, embed_dim: int) -> None:
        super().__init__()
        self.tokens = vocab_size > 0
        self.pad_index = pad_index if self.tokens else None
        self.embed = token_embedding(vocab_size, embed_dim, pad_index) if self.tokens else None
        self.cell = cell
        self.rnn = CELLS[cell](embed_dim if self.tokens else in_features, hidden, num_layers=layers,
                               batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0)  # dropout acts between stacked layers
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * hidden, out_dim)

    def lengths(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B,) valid lengths of token sequences (non-pad count, at least 1), or None for full-length input."""
        if self.pad_index is None:
            return None
        return (x != self.pad_index).sum(1).clamp(min=1)  # an all-pad row still needs one step to pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = None
        if self.embed is not None:
            x = x.long()  # ids may arrive as floats from generic array pipelines
            lengths = self.lengths(x)
            x = self.embed(x)  # (B, T, E)
        seq: torch.Tensor | nn.utils.rnn.PackedSequence = x
        if lengths is not None:
            seq = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(seq)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n); (layers·dirs, B, H)
        last = h_n[-self.directions:].transpose(0, 1).flatten(1)  # top layer, both directions: (B, dirs·H)
        return self.head(self.dropout(last))  # (B, out_dim)


@torch.no_grad()
def _init_recurrent(rnn: nn.RNNBase, cell: str) -> None:
    """Orthogonal recurrent matrices (their powers neither explode nor vanish at init), Xavier input matrices, zero
    biases, and an LSTM forget-gate bias of 1 so early training remembers by default (Jozefowicz et al. 2015)."""
    hidden = rnn.hidden_size
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            for gate in p.split(hidden, 0):  # one square block per gate
                nn.init.orthogonal_(gate)
        elif name.startswith("weight_ih"):
            for gate in p.split(hidden, 0):
                nn.init.xavier_uniform_(gate)
        elif name.startswith("bias"):
            nn.init.zeros_(p)
            if cell == "lstm" and name.startswith("bias_ih"):
                p[hidden: 2 * hidden] = 1.0  # gate order (input, forget, cell, output)


@register("rnn", "RNN/LSTM/GRU over (T, F) feature sequences or padded token ids (vocab_size>0), packed by length")
def rnn(in_shape: tuple[int, ...], out_dim: int, cell: str = "lstm", hidden: int = 128, layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0, vocab_size: int = 0, pad_index: int | None = 0,
        embed_dim: int = 64, init: str = "orthogonal") -> RNNModel:
    """``vocab_size`` is filled in from token data; 0 means float features (B, T, F). With tokens, ``pad_index``
    (null: no padding) marks right padding. ``dropout`` acts between stacked layers and before the head. ``init``:
    orthogonal (recurrent) / Xavier (input) weights with LSTM forget bias 1, or PyTorch's default uniform."""
    features = sequence_input_kind(in_shape, vocab_size)
    check_choice("cell", cell, tuple(CELLS))
    check_choice("init", init, RNN_INITS)
    for key, value in (("hidden", hidden), ("layers", layers), ("embed_dim", embed_dim)):
        if value < 1:
            raise TrainwiseError(f"model.{key}={value} must be a positive integer")
    check_range("dropout", dropout, 0.0, 1.0, high_open=True)
    model = RNNModel(features, out_dim, cell, hidden, layers, bidirectional, dropout, vocab_size, pad_index, embed_dim)
    if init == "orthogonal":
        _init_recurrent(model.rnn, cell)
    return model

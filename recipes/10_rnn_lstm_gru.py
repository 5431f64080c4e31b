"""RNN / LSTM / GRU: recurrent models on the adding problem (models/rnn.py, data source 'adding')."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.data.synthetic import adding

BASELINE = 1 / 6  # MSE of always predicting the mean sum (1.0) of two U(0,1) values
LEARNED = BASELINE / 2  # "learned the dependency": at most half the mean-predictor's error


def test_mse(cell: str, length: int, n: int, epochs: int) -> float:
    table = adding(n=n, length=length)
    torch.manual_seed(0)
    model = trainwise.create_model("rnn", in_shape=(length, 2), out_dim=1, cell=cell, hidden=32)
    result = trainwise.fit(model, (table.x, table.y), epochs=epochs, run_dir=None,
                           **{"optim.name": "adam", "optim.lr": 3e-3, "data.task": "regression"})
    return result.summary["test/mse"]


def main() -> None:
    c.setup()
    model = trainwise.create_model("rnn", in_shape=(50, 64), out_dim=1, cell="lstm", hidden=128, layers=2)
    lstm = model.rnn  # trainwise's recurrent core: nn.LSTM(64, 128, num_layers=2, batch_first=True)
    out, (h_n, c_n) = lstm(torch.randn(32, 50, 64))
    shapes = f"output {tuple(out.shape)}, h_n {tuple(h_n.shape)}, c_n {tuple(c_n.shape)}"
    c.say(f"{lstm}: {shapes}; the model reads h_n[-1] → head: {tuple(model(torch.randn(32, 50, 64)).shape)}")

    # --fast drops lengths, not training budget: an undertrained RNN would "fail" for the wrong reason.
    lengths = [50] if c.fast() else [10, 25, 50, 100]
    n, epochs = 2000, 12
    mse = {(cell, t): test_mse(cell, t, n, epochs) for t in lengths for cell in ("rnn", "lstm")}
    for t in lengths:
        c.say(f"adding problem T={t:<3} test MSE: rnn {mse['rnn', t]:.4f}  lstm {mse['lstm', t]:.4f} "
              f"(mean predictor {BASELINE:.3f})")
    rnn_ok = [t for t in lengths if mse["rnn", t] <= LEARNED]
    lstm_ok = [t for t in lengths if mse["lstm", t] <= LEARNED]
    longest_rnn = max(rnn_ok, default=0)
    # The claim: the vanilla RNN's limit is ~10–20 steps, and LSTMs succeed past it.
    holds = longest_rnn <= 25 and any(t > longest_rnn for t in lstm_ok)
    c.check("vanilla RNNs fail on dependencies beyond ~10–20 steps where LSTMs succeed (adding/copy problem)", holds,
            f"adding problem, hidden 32, {epochs} epochs on {n} sequences, 'learned' = test MSE ≤ {LEARNED:.3f}: "
            f"vanilla RNN learned T ∈ {rnn_ok or 'none'}, LSTM T ∈ {lstm_ok or 'none'} "
            f"(MSE at T={lengths[-1]}: rnn {mse['rnn', lengths[-1]]:.3f}, lstm {mse['lstm', lengths[-1]]:.3f})")

    c.check("LSTM(64→128, 2 layers) on (32,50,64) gives output (32,50,128), h_n and c_n (2,32,128)",
            tuple(out.shape) == (32, 50, 128) and tuple(h_n.shape) == tuple(c_n.shape) == (2, 32, 128),
            f"trainwise rnn(cell=lstm, hidden=128, layers=2) core: {shapes} (batch_first)")


if __name__ == "__main__":
    main()

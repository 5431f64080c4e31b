"""torch.compile: optional compilation (compile=true), measured on this CPU against eager."""

from __future__ import annotations

import time

import _common as c
import torch

import trainwise


def main() -> None:
    c.setup()
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[256, 256]).eval()
    x = torch.randn(64, 64)
    compiled = torch.compile(model)
    with torch.inference_mode():
        t = time.perf_counter()
        compiled(x)
        first = time.perf_counter() - t
        t = time.perf_counter()
        compiled(x)
        second = time.perf_counter() - t
    c.check("first call is slow (compilation)", first > 100 * second,
            f"first call of the compiled digits MLP {first:.2f} s, second {second * 1e3:.2f} ms "
            f"({first / second:,.0f}×)")

    def eager() -> None:
        with torch.inference_mode():
            model(x)

    def comp() -> None:
        with torch.inference_mode():
            compiled(x)

    t = c.rounds({"eager": eager, "compiled": comp}, number=int(c.pick(300, 100)))
    c.compare("10–50% faster training/inference", [v * 1e6 for v in t["compiled"]], [v * 1e6 for v in t["eager"]],
              names=("compiled", "eager"), higher=False, ratio=True, margin=0.10, over="rounds", kind="cpu-speed",
              fmt=".1f", what="µs per call",
              context="inference, MLP 64→256→256→10, batch 64, 1 thread (training speed was not timed here)")


if __name__ == "__main__":
    main()

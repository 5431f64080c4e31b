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

    number, rounds = int(c.pick(300, 100)), int(c.pick(7, 3))
    te, tc = [], []
    for _ in range(rounds):  # interleaved so machine-load drift hits both
        te.append(c.timeit(eager, repeats=1, number=number))
        tc.append(c.timeit(comp, repeats=1, number=number))
    t_e, t_c = sorted(te)[rounds // 2], sorted(tc)[rounds // 2]
    gain = t_e / t_c - 1
    c.check("10–50% faster training/inference", 0.10 <= gain <= 0.50,
            f"inference, MLP 64→256→256→10, batch 64, 1 thread: eager {t_e * 1e6:.1f} µs, compiled "
            f"{t_c * 1e6:.1f} µs ({gain:+.0%}); training speed was not timed here",
            kind="cpu-speed")


if __name__ == "__main__":
    main()

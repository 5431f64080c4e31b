"""Devices: device=auto, pinned memory and non_blocking copies (train/precision.py, data/loaders.py)."""

from __future__ import annotations

import _common as c
import torch

import trainwise
from trainwise.errors import TrainwiseError
from trainwise.train.precision import resolve_device


def train(device: str) -> dict:
    x, y = c.digits()
    torch.manual_seed(0)
    model = trainwise.create_model("mlp", in_shape=(64,), out_dim=10, hidden=[64])
    return trainwise.fit(model, (x, y), epochs=int(c.pick(3, 1)), run_dir=None, device=device).summary


def main() -> None:
    c.setup()
    auto = resolve_device("auto")
    try:
        resolve_device("cuda")
        cuda_msg = "available"
    except TrainwiseError as exc:
        cuda_msg = f"refused with: {exc}"
    c.say(f"device=auto resolves to {auto}; device=cuda {cuda_msg}")
    runs = {d: train(d) for d in (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu", "auto"])}
    (d0, s0), (d1, s1) = runs.items()
    gap = abs(s0["test/accuracy"] - s1["test/accuracy"])
    c.check("same code on CPU/GPU", torch.cuda.is_available() and gap < 0.02,
            f"the same fit() call with device={d0} and device={d1}: test accuracy {s0['test/accuracy']:.4f} vs "
            f"{s1['test/accuracy']:.4f}, devices used {s0['device']} / {s1['device']}"
            + ("" if torch.cuda.is_available() else "; no CUDA device here, so only the CPU half could run"),
            kind="gpu")

    if torch.cuda.is_available():
        a = torch.randn(4096, 4096, device="cuda")
        host = torch.randn(64, 1024, 1024).pin_memory()

        def step(non_blocking: bool) -> None:
            host.to("cuda", non_blocking=non_blocking)
            a @ a
            torch.cuda.synchronize()

        t_block, t_nb = c.timeit(lambda: step(False)), c.timeit(lambda: step(True))
        ok = t_nb < 0.9 * t_block
        ev = f"256 MB pinned copy + 4096² matmul: {t_block * 1e3:.2f} ms blocking, {t_nb * 1e3:.2f} ms non_blocking"
    else:
        ok, ev = False, ("no CUDA device: on a CPU there is no copy engine to overlap with, non_blocking=True is a "
                         "no-op and pinning needs an accelerator")
    c.check("non_blocking copies overlap with compute when memory is pinned", ok, ev, kind="gpu")


if __name__ == "__main__":
    main()

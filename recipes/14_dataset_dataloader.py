"""Dataset / DataLoader: the in-memory fast path and the DataLoader path (data/loaders.py, make_loader)."""

from __future__ import annotations

import time

import _common as c
import torch
from torch.utils.data import Dataset

from trainwise.data.loaders import make_loader

CPU = torch.device("cpu")


def epoch(loader: object) -> None:
    """Draw every batch of one epoch."""
    for _x, _y in loader:  # type: ignore[attr-defined]
        pass


class SlowDataset(Dataset):
    """Loading-bound samples: each ``__getitem__`` waits like a disk read or a JPEG decode would."""

    def __init__(self, n: int, delay: float) -> None:
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.delay)
        return torch.full((64,), float(i)), torch.tensor(i % 10)


def main() -> None:
    c.setup()
    x, y = c.digits()
    x, y = torch.tensor(x), torch.tensor(y)
    kw = {"batch_size": 64, "shuffle": True, "drop_last": False, "seed": 0, "device": CPU}
    memory = make_loader((x, y), mode="memory", **kw)
    dataloader = make_loader((x, y), mode="dataloader", **kw)  # TensorDataset → per-sample __getitem__ + collate
    t = c.rounds({"memory": lambda: epoch(memory), "dataloader": lambda: epoch(dataloader)})
    c.say(f"{type(memory).__name__}: {min(t['memory']) * 1e3:.2f} ms per epoch; {type(dataloader).__name__}: "
          f"{min(t['dataloader']) * 1e3:.2f} ms ({len(x)} digits, batch 64, fastest round)")
    c.compare("per-sample __getitem__ + collate is far slower than batched indexing for in-memory tensors",
              [v * 1e3 for v in t["memory"]], [v * 1e3 for v in t["dataloader"]],
              names=("batched x[idx]", "DataLoader"), higher=False, ratio=True, margin=4.0, over="rounds", fmt=".2f",
              what="ms per epoch", context=f"one epoch of {len(x)} digits, batch 64, 1 thread ('far': more than 5×)")

    slow = SlowDataset(int(c.pick(256, 128)), 0.002)
    t = c.rounds({"0 workers": lambda: epoch(make_loader(slow, num_workers=0, **kw)),
                  "2 workers": lambda: epoch(make_loader(slow, num_workers=2, persistent_workers=False, **kw))})
    c.compare("workers help when loading is the bottleneck", t["2 workers"], t["0 workers"],
              names=("2 workers", "0 workers"), higher=False, ratio=True, margin=0.3, over="rounds", fmt=".2f",
              what="s per epoch", context=f"{len(slow)} samples at 2 ms each, including worker start-up")

    batch = torch.randn(256, 3, 64, 64)  # 12 MB
    if torch.cuda.is_available():
        def copy(t: torch.Tensor) -> None:
            t.to("cuda", non_blocking=True)
            torch.cuda.synchronize()

        pinned = batch.pin_memory()
        pageable_s, pinned_s = c.timeit(lambda: copy(batch)), c.timeit(lambda: copy(pinned))
        ok = pinned_s < pageable_s
        ev = f"host→GPU copy of a 12 MB batch: pinned {pinned_s * 1e3:.2f} ms, pageable {pageable_s * 1e3:.2f} ms"
    else:
        try:
            batch.pin_memory()
            outcome = "pin_memory() succeeded but there is no device to copy to"
        except RuntimeError as exc:  # pinning needs an accelerator's driver to register the pages
            outcome = f"pin_memory() raises '{str(exc).splitlines()[0]}'"
        ok, ev = False, (f"no CUDA device here, and pinned memory only speeds host→GPU copies (DMA from page-locked "
                         f"memory, overlapping with compute under non_blocking=True); on this machine {outcome}")
    c.check("pinned memory helps when loading is the bottleneck", ok, ev, kind="gpu")


if __name__ == "__main__":
    main()

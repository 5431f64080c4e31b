"""Dataset / DataLoader: the in-memory fast path and the DataLoader path (data/loaders.py, make_loader)."""

from __future__ import annotations

import time

import _common as c
import torch
from torch.utils.data import Dataset

from trainwise.data.loaders import make_loader

CPU = torch.device("cpu")


def epoch_seconds(loader: object, repeats: int) -> float:
    def one_epoch() -> None:
        for _x, _y in loader:  # type: ignore[attr-defined]
            pass

    return c.timeit(one_epoch, repeats=repeats)


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
    repeats = int(c.pick(5, 1))
    t_mem, t_dl = epoch_seconds(memory, repeats), epoch_seconds(dataloader, repeats)
    c.say(f"{type(memory).__name__}: {t_mem * 1e3:.2f} ms per epoch; {type(dataloader).__name__}: "
          f"{t_dl * 1e3:.2f} ms ({len(x)} digits, batch 64)")
    c.check("per-sample __getitem__ + collate is far slower than batched indexing for in-memory tensors",
            t_dl > 5 * t_mem,
            f"one epoch of {len(x)} samples: DataLoader path {t_dl * 1e3:.1f} ms vs in-memory x[idx] batches "
            f"{t_mem * 1e3:.2f} ms ({t_dl / t_mem:.0f}× slower)")

    slow = SlowDataset(int(c.pick(256, 128)), 0.002)
    t0 = epoch_seconds(make_loader(slow, num_workers=0, **kw), 1)
    t2 = epoch_seconds(make_loader(slow, num_workers=2, persistent_workers=False, **kw), 1)
    c.check("workers help when loading is the bottleneck", t0 / t2 > 1.3,
            f"{len(slow)} samples at 2 ms each: {t0:.2f} s per epoch with num_workers=0, {t2:.2f} s with 2 workers "
            f"({t0 / t2:.1f}× faster, including worker start-up)")

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

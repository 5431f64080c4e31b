"""Batches on the device.

Two paths with one interface (``set_epoch(e)``, iteration yields ``(x, y)`` on the device, ``len()`` = batches):

* :class:`InMemoryLoader` — the default when the data are tensors. The whole split lives on the device once; each
  epoch draws one permutation from a generator seeded by ``(seed, epoch)`` and batches are ``x[idx]`` slices. No
  per-sample ``__getitem__``, no collate, no host→device copy per step. Seeding by epoch (rather than carrying a
  generator forward) makes the order of any epoch recomputable, which exact resume relies on.
* :class:`DeviceDataLoader` — any ``torch.utils.data.Dataset`` through ``DataLoader`` (workers, pinned memory,
  prefetching). The shuffle order is seeded by ``(seed, epoch)`` as above, and every sample is loaded under RNGs
  seeded by ``(seed, epoch, index)``: random augmentation inside a user's ``__getitem__`` is then a function of the
  sample alone — not of which worker loaded it, how many it loaded before, or whether workers persisted — which is
  what lets a run resume mid-epoch bit-exactly with ``num_workers > 0``.

Both support ``set_epoch(epoch, start=k)``: iteration then begins at batch ``k`` of that epoch (resume).

Both shard for data-parallel training (``rank``, ``world``): every rank draws the same global permutation, pads it
by wrapping to a multiple of ``world`` (as ``DistributedSampler`` does) and keeps positions ``rank::world``. Batch
``i`` of the W ranks together is then exactly batch ``i`` of one process with a W× larger batch, which is what makes
W processes × batch B equivalent to 1 process × batch W·B.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from trainwise.errors import TrainwiseError

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s shuffle; distinct per (seed, epoch) pair."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's part of a global order: padded by wrapping to a multiple of ``world``, positions ``rank::world``."""
    if world == 1:
        return order
    pad = -len(order) % world
    if pad:
        order = torch.cat([order, order[:pad]])
    return order[rank::world]


def shard_size(n: int, world: int) -> int:
    return -(-n // world)


class InMemoryLoader:
    """Batched indexing over tensors already on ``device``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, drop_last: bool,
                 seed: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        if len(x) == 0:
            raise TrainwiseError("the dataset is empty")
        if drop_last and shard_size(len(x), world) < batch_size:  # per rank under DDP: no rank may get 0 batches
            raise TrainwiseError(f"the split has {shard_size(len(x), world)} samples per process, fewer than one batch "
                                 f"of {batch_size} with data.drop_last=true; lower data.batch_size or set "
                                 "data.drop_last=false")
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.device = device
        self.epoch, self.start = 0, 0
        self.rank, self.world = rank, world
        self.num_samples = shard_size(len(x), world)  # this rank's samples per epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> torch.Tensor:
        """This epoch's sample order for this rank, (num_samples,) int64 on the device."""
        n = len(self.x)
        if not self.shuffle:
            return shard(torch.arange(n, device=self.device), self.rank, self.world)
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return shard(torch.randperm(n, generator=g), self.rank, self.world).to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        idx = self.order()
        bs = self.batch_size
        if not self.shuffle and self.world == 1:  # contiguous views, no gather
            for i in range(self.start, len(self)):
                yield self.x[i * bs:(i + 1) * bs], self.y[i * bs:(i + 1) * bs]
            return
        for i in range(self.start, len(self)):
            j = idx[i * bs:(i + 1) * bs]
            yield self.x[j], self.y[j]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (epoch_seed(seed, epoch) * 1_000_033 + index * 2_654_435_761) % (2**32 - 1)


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` pairs: this epoch's order (seeded by ``(seed, epoch)``) from sample ``start`` on."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.start = 0, 0
        self.rank, self.world = rank, world
        self.num_samples = shard_size(n, world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        for i in shard(order, self.rank, self.world)[self.start:].tolist():
            yield self.epoch, i

    def __len__(self) -> int:
        return self.num_samples - self.start


class SampleSeeded(Dataset):
    """Loads ``dataset[index]`` under Python/NumPy/torch RNGs seeded by ``(seed, epoch, index)``.

    In a worker process the worker's own RNGs are simply reseeded. In the main process (``num_workers=0``) they are
    saved and restored around the call, so loading leaves the training RNG (dropout, …) untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):  # noqa: ANN204 - returns whatever the user's dataset returns
        epoch, index = key
        s = sample_seed(self.seed, epoch, index)
        if get_worker_info() is not None:
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            return self.dataset[index]
        py, npy = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py)
                np.random.set_state(npy)


class DeviceDataLoader:
    """A DataLoader with (seed, epoch)-ordered, (seed, epoch, index)-seeded samples; batches moved to the device."""

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int,
                 device: torch.device, num_workers: int = 0, pin_memory: bool | None = None,
                 persistent_workers: bool | None = None, prefetch_factor: int | None = None, rank: int = 0,
                 world: int = 1) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise TrainwiseError("the dataset is empty")
        if drop_last and shard_size(n, world) < batch_size:
            raise TrainwiseError(f"the split has {shard_size(n, world)} samples per process, fewer than one batch "
                                 f"of {batch_size} with data.drop_last=true; lower data.batch_size or set "
                                 "data.drop_last=false")
        self.n, self.seed, self.device, self.epoch = n, seed, device, 0
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler = EpochSampler(n, seed, shuffle, rank, world)
        self.num_samples = self.sampler.num_samples  # this rank's samples per epoch
        pin = device.type == "cuda" if pin_memory is None else pin_memory
        self.non_blocking = pin and device.type == "cuda"
        kwargs = {}
        if num_workers > 0:
            kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
            if prefetch_factor is not None:
                kwargs["prefetch_factor"] = prefetch_factor
        # Its own generator: DataLoader otherwise draws each iterator's base seed from the global torch RNG, which
        # would shift dropout's random stream differently in a resumed run than in an uninterrupted one.
        self.loader = DataLoader(SampleSeeded(dataset, seed), batch_size=batch_size, sampler=self.sampler,
                                 drop_last=drop_last, num_workers=num_workers, pin_memory=pin,
                                 generator=torch.Generator().manual_seed(seed), **kwargs)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.sampler.epoch, self.sampler.start = epoch, start * self.batch_size

    def __len__(self) -> int:
        """Batches in a whole epoch (independent of the start offset)."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def peek(self, k: int = 2) -> Batch:
        """The first ``k`` samples, loaded in this process (no worker start-up, no RNG consumed)."""
        from torch.utils.data import default_collate

        ds = self.loader.dataset
        x, y = default_collate([ds[(0, i)] for i in range(min(k, self.n))])
        return x.to(self.device), y.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        nb = self.non_blocking
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=nb), y.to(self.device, non_blocking=nb)


def make_loader(data: torch.utils.data.Dataset | tuple[torch.Tensor, torch.Tensor], batch_size: int, *,
                shuffle: bool, drop_last: bool, seed: int, device: torch.device, mode: str = "auto",
                num_workers: int = 0, pin_memory: bool | None = None, persistent_workers: bool | None = None,
                prefetch_factor: int | None = None, rank: int = 0, world: int = 1) -> InMemoryLoader | DeviceDataLoader:
    """Pick the in-memory fast path for tensors (``mode=auto|memory``) and the DataLoader path otherwise;
    ``rank``/``world`` shard it for data-parallel training."""
    if isinstance(data, tuple) and mode in ("auto", "memory") and num_workers == 0:
        return InMemoryLoader(data[0], data[1], batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                              device=device, rank=rank, world=world)
    if isinstance(data, tuple):
        data = torch.utils.data.TensorDataset(*data)
    elif mode == "memory":
        raise TrainwiseError("data.loader=memory needs tensors or arrays; a Dataset goes through data.loader=dataloader")
    return DeviceDataLoader(data, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, device=device,
                            num_workers=num_workers, pin_memory=pin_memory, persistent_workers=persistent_workers,
                            prefetch_factor=prefetch_factor, rank=rank, world=world)

"""Batches on the device.

Two paths with one interface (``set_epoch(e)``, iteration yields ``(x, y)`` on the device, ``len()`` = batches):

* :class:`InMemoryLoader` — the default when the data are tensors. The whole split lives on the device once; each
  epoch draws one permutation from a generator seeded by ``(seed, epoch)`` and batches are ``x[idx]`` slices. No
  per-sample ``__getitem__``, no collate, no host→device copy per step. Seeding by epoch (rather than carrying a
  generator forward) makes the order of any epoch recomputable, which exact resume relies on.
* :class:`DeviceDataLoader` — any ``torch.utils.data.Dataset`` through ``DataLoader`` (workers, pinned memory,
  prefetching). The shuffle order is seeded by ``(seed, epoch)`` as above, and every batch is loaded under RNGs
  seeded by ``(seed, epoch, batch)``: random augmentation inside a user's ``__getitem__`` is then a function of the
  epoch and batch alone — not of which worker loaded it, how many it loaded before, or whether workers persisted —
  which is what lets a run resume mid-epoch bit-exactly with ``num_workers > 0`` (see :class:`BatchSeeded`).

Both support ``set_epoch(epoch, start=k)``: iteration then begins at batch ``k`` of that epoch (resume).

Both shard for data-parallel training (``rank``, ``world``): every rank draws the same global permutation, pads it
by wrapping to a multiple of ``world`` (as ``DistributedSampler`` does) and keeps positions ``rank::world``. Batch
``i`` of the W ranks together is then exactly batch ``i`` of one process with a W× larger batch, which is what makes
W processes × batch B equivalent to 1 process × batch W·B.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

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


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """Seed of the RNGs under which batch ``batch`` of epoch ``epoch`` (on data-parallel rank ``rank``) is loaded."""
    return (epoch_seed(seed, epoch) * 1_000_033 + batch * 2_654_435_761 + rank * 40_503) % (2**32 - 1)


class EpochBatchSampler(Sampler):
    """Yields one key per batch, ``(epoch, batch, indices)``: this epoch's order (seeded by ``(seed, epoch)``), cut
    into batches, from batch ``start`` on. Cutting the order here (one ``tolist`` per epoch) rather than letting
    ``DataLoader`` wrap a per-sample sampler in a ``BatchSampler`` also saves a Python call per sample."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.shuffle, self.drop_last = n, batch_size, seed, shuffle, drop_last
        self.epoch, self.start = 0, 0
        self.rank, self.world = rank, world
        self.num_samples = shard_size(n, world)

    def batches(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int, list[int]]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        idx = shard(order, self.rank, self.world).tolist()
        bs = self.batch_size
        for b in range(self.start, self.batches()):
            yield self.epoch, b, idx[b * bs:(b + 1) * bs]

    def __len__(self) -> int:
        return self.batches() - self.start


def _seed_cpu_rngs(s: int) -> None:
    # torch.default_generator, not torch.manual_seed: the latter also queues seeding of every accelerator backend
    # and, while CUDA is uninitialised, records a formatted stack trace per call (≈0.3 ms — it was most of the 30×
    # cost of the old per-sample seeding). Loading code runs on the CPU generator only.
    random.seed(s)
    np.random.seed(s)
    torch.default_generator.manual_seed(s)


class Collated(tuple):
    """A batch a Dataset's ``__getitems__`` already built, e.g. ``(x (B, …), y (B,))`` gathered from a memory map in
    one read: passed through as is instead of collated sample by sample."""


def collate(batch: Any) -> Any:
    return tuple(batch) if isinstance(batch, Collated) else default_collate(batch)


class BatchSeeded(Dataset):
    """Loads a batch ``(epoch, batch, indices)`` of ``dataset`` under Python/NumPy/torch RNGs seeded by
    ``(seed, epoch, batch, rank)``.

    Why per batch and not per sample: random augmentation inside a user's ``__getitem__`` must not depend on which
    worker loaded a sample, how many it loaded before, or whether workers persisted, or a run could not resume
    mid-epoch bit-exactly. A batch is always loaded whole by one worker and resume restarts at a batch boundary, so
    seeding once per batch gives the same guarantee at 1/batch_size of the cost: per-sample seeding with an RNG
    fork/restore around every ``__getitem__`` made ``fit(model, TensorDataset)`` ≈30× slower than a plain
    ``DataLoader`` loop (benchmarks/RESULTS.md, "Dataset path"). A sample's random draws are then a function of
    ``(seed, epoch, batch, position in batch)`` — all fixed by ``(seed, epoch)``.

    In a worker process the worker's own RNGs are simply reseeded. In the main process (``num_workers=0``) they are
    saved and restored around the batch, so loading leaves the training RNG (dropout, …) untouched.
    """

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0) -> None:
        self.dataset, self.seed, self.rank = dataset, seed, rank
        # A user Dataset with a batched __getitems__ (as DataLoader itself would use) keeps it.
        self._many = getattr(dataset, "__getitems__", None)
        self._many = self._many if callable(self._many) else None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _load(self, indices: list[int]) -> list:
        if self._many is not None:
            return self._many(indices)
        ds = self.dataset
        return [ds[i] for i in indices]

    def __getitems__(self, key: tuple[int, int, list[int]]) -> list:
        epoch, batch, indices = key
        s = batch_seed(self.seed, epoch, batch, self.rank)
        if get_worker_info() is not None:
            _seed_cpu_rngs(s)
            return self._load(indices)
        # NumPy's global RandomState (what np.random.* draws from) saved as a dict: 2–3× cheaper than the legacy tuple
        # of np.random.get_state(), which dominated this save/restore (≈0.1 ms a batch, measured).
        rs = np.random.mtrand._rand
        py, npy, pt = random.getstate(), rs.get_state(legacy=False), torch.default_generator.get_state()
        try:
            _seed_cpu_rngs(s)
            return self._load(indices)
        finally:
            random.setstate(py)
            rs.set_state(npy)
            torch.default_generator.set_state(pt)

    def __getitem__(self, key: tuple[int, int, list[int]]) -> list:  # DataLoader always calls __getitems__
        return self.__getitems__(key)


class DeviceDataLoader:
    """A DataLoader with (seed, epoch)-ordered, (seed, epoch, batch)-seeded batches, moved to the device."""

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
        self.sampler = EpochBatchSampler(n, batch_size, seed, shuffle, drop_last, rank, world)
        self.num_samples = self.sampler.num_samples  # this rank's samples per epoch
        pin = device.type == "cuda" if pin_memory is None else pin_memory
        self.non_blocking = pin and device.type == "cuda"
        kwargs: dict[str, Any] = {}
        if num_workers > 0:
            kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
            if prefetch_factor is not None:
                kwargs["prefetch_factor"] = prefetch_factor
        # Its own generator: DataLoader otherwise draws each iterator's base seed from the global torch RNG, which
        # would shift dropout's random stream differently in a resumed run than in an uninterrupted one.
        self.loader = DataLoader(BatchSeeded(dataset, seed, rank), batch_sampler=self.sampler, collate_fn=collate,
                                 num_workers=num_workers, pin_memory=pin,
                                 generator=torch.Generator().manual_seed(seed), **kwargs)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.sampler.epoch, self.sampler.start = epoch, start

    def __len__(self) -> int:
        """Batches in a whole epoch (independent of the start offset)."""
        return self.sampler.batches()

    def peek(self, k: int = 2) -> Batch:
        """The first ``k`` samples, loaded in this process (no worker start-up, RNG state left as it was)."""
        x, y = collate(cast(BatchSeeded, self.loader.dataset).__getitems__((0, 0, list(range(min(k, self.n))))))
        return x.to(self.device), y.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        nb = self.non_blocking
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=nb), y.to(self.device, non_blocking=nb)


def loader_input(part: Any) -> Dataset | tuple[torch.Tensor, torch.Tensor]:
    """A split of :class:`~trainwise.data.splits.Splits` as :func:`make_loader` takes it: tensors as ``(x, y)`` (the
    in-memory path); a Dataset split (npy/images: memory-mapped; text) as is, so it is read batch by batch, never
    whole."""
    return part if isinstance(part, Dataset) else (part.x, part.y)


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

"""Data-parallel training across processes started by ``torchrun``: DDP (gloo on CPU, NCCL on CUDA) and FSDP2.

``torchrun --nproc_per_node=N -m trainwise train …`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
and ``MASTER_PORT``; :func:`from_env` reads them and joins the process group (torch's env:// rendezvous), so the
same command works on one node or many (torchrun's ``--nnodes`` / ``--rdzv-*`` arguments). We use torch.distributed
itself — no launcher of our own.

What the loop does with a :class:`DistContext` (see ``loop.py``):

* each rank trains on its shard of one global permutation (``rank::world``, padded by wrapping like
  ``DistributedSampler``), so W ranks × batch B see exactly the samples 1 process × batch W·B sees, per step;
* RNG streams that should differ between ranks (dropout, augmentation) are seeded per rank; rank 0 keeps the
  single-process seeds;
* rank 0 alone writes the run directory; checkpoints hold every rank's RNG streams (gathered at save time), and
  all ranks restore from the same files, so a killed DDP run resumes exactly;
* every decision that must be unanimous (stop on a signal, a time-based checkpoint, a non-finite step) is either a
  function of values that are identical on all ranks or agreed with one small all-reduce at a point that already
  syncs (a log step or the end of an epoch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from trainwise.errors import TrainwiseError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = "none"  # ddp | fsdp | none (single process)
    owns_group: bool = False  # fit() joined the process group, so it leaves it at the end

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---- collectives (no-ops in a single process) -------------------------------------------------------------------

    def all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place all-reduce of a device tensor; returns it."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return t

    def agree(self, *flags: float, device: torch.device | None = None) -> list[float]:
        """The maximum of each flag over all ranks: a signal seen by one rank stops them all at the same step."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor(flags, dtype=torch.float64, device=device)
        return self.all_reduce(t, "max").tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small Python objects: a run directory's path)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, on every rank (RNG states at checkpoint time; this is process-group traffic between
        our own processes, not a file: nothing from disk is ever unpickled)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()  # rank 0 may still be writing the run directory's last files
                dist.destroy_process_group()


def launched_world() -> int:
    """Processes in this job according to torchrun's environment (1 outside a launcher)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def from_env(strategy: str, device: torch.device) -> DistContext:
    """Join the process group torchrun describes (if any) and say which rank this process is."""
    import torch.distributed as dist

    world = launched_world()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    if strategy == "none":
        raise TrainwiseError(f"this process was started by a multi-process launcher (WORLD_SIZE={world}) but "
                             "strategy=none; set strategy=ddp (or fsdp), or run a single process")
    owns = False
    if not dist.is_initialized():
        if not dist.is_available():
            raise TrainwiseError("torch.distributed is not available in this torch build; run a single process")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return DistContext(rank, world, local, "fsdp" if strategy == "fsdp" else "ddp", owns)


def local_device(ctx: DistContext, device: torch.device) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK``."""
    if ctx.enabled and device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def rank_seed(seed: int, rank: int) -> int:
    """Seed of a per-rank RNG stream; rank 0 keeps ``seed`` itself, so one process behaves as it always did."""
    return seed if rank == 0 else (seed * 1_000_003 + rank * 2_654_435_761) % (2**63 - 1)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module the training forward goes through: DDP, or the model itself after FSDP2 sharding (in place)."""
    if not ctx.enabled:
        return model
    if ctx.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # Shard each direct child that holds parameters, then the root (FSDP2's usual pattern: one all-gather per
        # child in forward and a reduce-scatter per child in backward, overlapping with compute).
        for child in model.children():
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def full_state_dict(model: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    """Plain (unsharded) tensors of the model on every rank: FSDP's DTensors gathered, others as they are."""
    if ctx.strategy != "fsdp" or not ctx.enabled:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # full_state_dict=True: plain tensors (torch types the values as any of its state-dict value kinds)
    return cast(dict[str, torch.Tensor], get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=False, broadcast_from_rank0=False)))


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor], ctx: DistContext) -> None:
    """Inverse of :func:`full_state_dict`: plain tensors into a (possibly FSDP-sharded) model."""
    if ctx.strategy != "fsdp" or not ctx.enabled:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    # torch types the argument dict[str, ValueType]; dict is invariant, so dict[str, Tensor] is refused
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))  # type: ignore[arg-type]

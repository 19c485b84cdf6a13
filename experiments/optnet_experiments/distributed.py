"""Data-parallel plumbing for the experiments: process group, batch shards, metric sums.

One process per device. Under ``torchrun`` the process group comes from the environment it
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
``spawn_local`` starts the same processes on one machine without torchrun. Backend: gloo on
CPU, NCCL on CUDA. Every rank sees the same global batch order (seeded) and takes its
contiguous shard of each global batch; DDP averages the gradients.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError

logger = logging.getLogger("optnet")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: ``rank`` of ``world_size``; ``device`` is the one it computes on.

    A single-process run is ``DistributedContext(0, 1, device)`` with ``active=False``.
    """

    rank: int
    world_size: int
    device: torch.device
    active: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints and shows the progress bar."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        if not self.active:
            return batch
        return torch.tensor_split(batch, self.world_size)[self.rank]

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` over the ranks (a copy; a no-op for a single process)."""
        if not self.active:
            return values
        summed = values.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed


def launched_by_torchrun() -> bool:
    """True when the environment describes a process group (torchrun, or ``spawn_local``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device_type: str) -> DistributedContext:
    """Join the process group described by the environment; gloo on CPU, NCCL on CUDA.

    Raises ``ConfigError`` when this rank's CUDA device is not visible.
    """
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device_type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(
                f"rank {rank} needs cuda:{local_rank} but only "
                f"{torch.cuda.device_count()} CUDA devices are visible"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=rank, world_size=world_size, **kwargs)
    logger.debug("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return DistributedContext(rank, world_size, device, active=True)


def shutdown_distributed(ctx: DistributedContext) -> None:
    if ctx.active and dist.is_initialized():
        # All ranks reach the teardown together: a rank that destroys the group while another
        # still talks to it aborted gloo ("terminate called without an active exception",
        # about 1 run in 10 of the two-process test).
        dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port that is free on this machine now (for a local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned_worker(local_rank: int, world_size: int, port: int, fn: Callable, arg) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    # Share the CPU cores between the processes instead of oversubscribing them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    if local_rank == 0:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    fn(arg)


def spawn_local(fn: Callable, arg, world_size: int) -> None:
    """Run ``fn(arg)`` in ``world_size`` new local processes that form one process group.

    ``fn`` must be a module-level function and ``arg`` picklable (the processes are spawned,
    not forked). Raises if any process fails.
    """
    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    mp.spawn(_spawned_worker, args=(world_size, free_port(), fn, arg), nprocs=world_size)

"""Training one run on several processes: one process per device, on one machine (`torchrun`) or
several (`torchrun` on each node, or Slurm tasks started by the submitit launcher).

`init_world()` reads where this process stands from the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or, under Slurm through submitit, from
Slurm's, and joins the process group (NCCL on CUDA, gloo on CPU). A `World` then gives the
training loop what it needs to run the same computation as one process:

- each step's global batch is still a pure function of (seed, step) (lra_bench/batches.py); the
  ranks split its rows (`part`, `parts`), so every rank sees an equal share and together they see
  exactly the batch one process would;
- the model is wrapped in DistributedDataParallel, which averages the gradients of the ranks'
  mean losses: with equal shares that is the gradient of the global batch's mean loss;
- losses and evaluation counts are all-reduced, so every rank takes the same decisions (a
  non-finite loss stops every rank at once, the best validation step is the same everywhere);
- rank 0 alone writes checkpoints, records, metrics and the leaderboard.

Randomness: model initialisation is broadcast from rank 0 by DistributedDataParallel. Rank 0 draws
dropout masks from the run's generator as a single process does (checkpointed, so a resume goes
on bit for bit); every other rank reseeds its generators at each step from (seed, rank, step), so
its masks are a pure function of those and a resume reproduces them too.

A single process gets `World()` (rank 0 of 1), for which every method is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

# Every rank > 0 seeds from (seed, rank, step) through this odd multiplier mix, far from the seeds
# a user would type, so that no rank's stream starts where another run's does.
_RANK_SEED_MIX = 0x9E3779B1


@dataclass(frozen=True)
class World:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: on CUDA, the GPU of its local rank (modulo the GPUs it sees, for
        schedulers that bind one GPU per task)."""
        if device.type != "cuda" or not self.distributed:
            return device
        return torch.device("cuda", self.local_rank % torch.cuda.device_count())

    def check_batch(self, micro_batch: int) -> None:
        """Every rank must get an equal share of a micro-batch, or the averaged gradient would
        weigh the ranks' rows unequally."""
        if micro_batch % self.size:
            raise ValueError(
                f"a micro-batch of {micro_batch} rows (trainer.batch_size / trainer.grad_accum) "
                f"does not split evenly between {self.size} processes"
            )

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model to train: DistributedDataParallel around it when there are several ranks.
        `find_unused_parameters`: some zoo models leave a parameter out of a forward pass (e.g.
        a head layer that a pooling mode skips), which DDP must be told about."""
        if not self.distributed:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=True
        )

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks (every rank gets it)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._reduce_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.size

    def total(self, *values: int) -> list[int]:
        """The sums of integer counts over the ranks."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.int64, device=self._reduce_device())
        dist.all_reduce(tensor)
        return [int(v) for v in tensor.tolist()]

    def maximum(self, *values: int) -> list[int]:
        """The largest of each integer over the ranks (e.g. a signal one of them received)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.int64, device=self._reduce_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [int(v) for v in tensor.tolist()]

    def seed_step(self, seed: int, step: int) -> None:
        """Ranks > 0: reseed every generator from (seed, rank, step) before the step's forward
        pass. Rank 0 keeps the run's own stream (see the module's docstring)."""
        if self.rank == 0:
            return
        torch.manual_seed((seed * _RANK_SEED_MIX + self.rank * 1_000_003 + step) % 2**63)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def _reduce_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo takes CPU ones.
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def world_from_env(env: dict | None = None) -> World:
    """Rank, size and local rank from torchrun's variables, else from Slurm's when submitit
    started this process as one of several tasks of a job, else a single process."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if env.get("SUBMITIT_EXECUTOR") == "slurm" and int(env.get("SLURM_NTASKS", "1")) > 1:
        return World(
            int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
        )
    return World()


def init_world(device: torch.device) -> World:
    """This process's World, the process group joined when there are several ranks. Under
    Slurm without torchrun, submitit's helper exports the variables torch's env:// init reads
    (the first node's host as MASTER_ADDR, a port drawn from the job id)."""
    world = world_from_env()
    if not world.distributed:
        return world
    if "RANK" not in os.environ:  # several Slurm tasks of a submitit job
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(world.device(device))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world

"""Several processes, one run (lra_bench/distributed.py): where a process stands, and how the
ranks split each global batch so that together they see exactly what one process would."""

import numpy as np
import pytest
import torch

from lra_bench.batches import TrainBatches, eval_batch_count, eval_batches
from lra_bench.distributed import World, world_from_env
from tasks.base import Split


def random_split(n: int = 50, length: int = 12, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, n)
    tokens = np.zeros((n, length), dtype=np.int64)
    for row, width in enumerate(lengths):
        tokens[row, :width] = rng.integers(1, 20, width)
    return Split(tokens, lengths, rng.integers(0, 3, n))


def test_world_from_torchrun_slurm_and_nothing():
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h"}
    assert world_from_env(torchrun) == World(rank=3, size=4, local_rank=1)
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_NTASKS": "16",
        "SLURM_PROCID": "9",
        "SLURM_LOCALID": "1",
    }
    assert world_from_env(slurm) == World(rank=9, size=16, local_rank=1)
    # One Slurm task per run (the default sweep), or no launcher at all: a single process.
    assert world_from_env({**slurm, "SLURM_NTASKS": "1"}) == World()
    assert world_from_env({}) == World()
    assert World().is_main and not World().distributed
    assert not World(rank=1, size=2).is_main


def test_single_world_is_the_identity():
    world = World()
    model = torch.nn.Linear(2, 2)
    assert world.wrap(model, torch.device("cpu")) is model
    assert world.mean(2.5) == 2.5 and world.total(3, 4) == [3, 4]
    state = torch.get_rng_state()
    world.seed_step(seed=0, step=5)  # rank 0 keeps the run's own stream
    assert torch.equal(torch.get_rng_state(), state)


def test_ranks_beyond_zero_reseed_from_seed_rank_and_step():
    draws = []
    for _ in range(2):
        World(rank=1, size=2).seed_step(seed=7, step=3)
        draws.append(torch.rand(3))
    assert torch.equal(draws[0], draws[1])
    World(rank=2, size=3).seed_step(seed=7, step=3)
    assert not torch.equal(torch.rand(3), draws[0])


def test_a_micro_batch_must_split_evenly():
    World(rank=0, size=4).check_batch(8)
    with pytest.raises(ValueError, match="does not split evenly between 3 processes"):
        World(rank=0, size=3).check_batch(8)


@pytest.mark.parametrize("parts", [2, 4])
def test_the_shares_of_a_step_are_the_global_batch(parts):
    split = random_split()
    batches = TrainBatches(split, batch_size=8, seed=3)
    for step in (0, 5, 11):  # 11: the second epoch's permutation
        tokens, lengths, labels = batches.batch(step)
        shares = [batches.batch(step, part, parts) for part in range(parts)]
        for part, (share_tokens, share_lengths, share_labels) in enumerate(shares):
            assert torch.equal(share_labels, labels[part::parts])
            assert torch.equal(share_lengths, lengths[part::parts])
            width = share_tokens.shape[-1]
            assert width == int(share_lengths.max())  # each share cut to its own longest row
            assert torch.equal(share_tokens, tokens[part::parts, :width])


def test_evaluation_shares_cover_every_row_once():
    split = random_split(n=23)
    seen = []
    for part in range(3):
        batches = list(eval_batches(split, batch_size=4, part=part, parts=3))
        assert len(batches) == eval_batch_count(split, 4, part, 3)
        seen += [label for _, _, labels in batches for label in labels.tolist()]
    assert sorted(seen) == sorted(split.labels.tolist())
    assert eval_batch_count(split, 4) == 6 == len(list(eval_batches(split, 4)))

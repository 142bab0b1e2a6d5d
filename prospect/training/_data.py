"""How the Trainer feeds data: a seeded epoch order (the same after a resume), per-rank shares, seeded workers."""

from __future__ import annotations

import math
import os

import numpy as np
import torch


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


class _EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a permutation drawn from (seed, epoch) only, so a resumed run sees the same order.

    Under torchrun each rank takes every ``world``-th index of the permutation (padded
    to equal length, as DistributedSampler does).
    """

    def __init__(self, size: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch = 0

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.size)
        per_rank = math.ceil(self.size / self.world)
        order = torch.cat([order, order[: per_rank * self.world - self.size]])
        return iter(order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return math.ceil(self.size / self.world)


def _seed_worker(worker_id: int) -> None:
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002  (libraries inside a worker may still use the legacy global RNG)
    random.seed(seed)


def _views_apart(x: torch.Tensor) -> torch.Tensor:
    """A batch of several views per sample (N, V, C, H, W) as one batch of N·V views; others unchanged."""
    return x.flatten(0, 1) if x.ndim == 5 else x

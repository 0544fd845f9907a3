"""The LightningDataModule that feeds a GAN: an endless, rank-aware, resumable stream."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate


class InfiniteSampler(Sampler[int]):
    """Endless shuffled indices for one rank, restartable at any position.

    Every pass over the data is a fresh permutation seeded by (seed, pass); rank r takes every
    world_size-th index. ``start`` skips the first indices of this rank's stream, so a resumed
    run continues with exactly the data an uninterrupted one would have seen.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size = size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.start = start

    def __iter__(self) -> Iterator[int]:
        position = self.start * self.world_size + self.rank  # global stream position
        epoch, offset = divmod(position, self.size)
        while True:
            perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + epoch))
            while offset < self.size:
                yield int(perm[offset])
                offset += self.world_size
            offset -= self.size
            epoch += 1


def collate(batch: object) -> object:
    """Default collation, except for batches a dataset already built with ``__getitems__``."""
    if isinstance(batch, tuple) and all(isinstance(x, torch.Tensor) for x in batch):
        return batch
    return default_collate(batch)


class GANDataModule(L.LightningDataModule):
    """Serves ``dataset`` in per-rank batches of ``batch_size // world_size`` forever.

    Args:
        dataset: the training set; items are ``(x, c)``.
        batch_size: global batch (all ranks together), as in the presets.
        num_workers: DataLoader worker processes per rank.
        pin_memory: pin host memory (faster copies to a GPU).
        seed: seed of the data order.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64, num_workers: int = 0,
                 pin_memory: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if self.batch_size % world:
            raise ValueError(
                f"batch_size={self.batch_size} is not divisible by the world size {world}"
            )
        per_rank = self.batch_size // world
        # Resume: skip what this rank already consumed (the module restored cur_nimg first).
        module = trainer.lightning_module if trainer else None
        consumed = int(getattr(module, "cur_nimg", 0)) // world
        sampler = InfiniteSampler(len(self.dataset), rank, world, self.seed, start=consumed)
        return DataLoader(
            self.dataset,
            batch_size=per_rank,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=True,
        )

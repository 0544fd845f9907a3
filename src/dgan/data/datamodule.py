"""The LightningDataModule that feeds a GAN: an endless, rank-aware, resumable stream."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate

from dgan.data.images import uint8_to_float

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def loader_workers(requested: int, ranks_per_node: int = 1, cpus: int | None = None) -> int:
    """Workers per rank: ``requested``, at most the CPUs a rank has left over for them.

    Each of the ``ranks_per_node`` training processes keeps one CPU for itself; the rest are
    shared out evenly and never fewer than one worker is kept when some were asked for (a
    worker decodes while the training process runs the step). 0 stays 0.
    """
    if requested <= 0:
        return 0
    cpus = available_cpus() if cpus is None else cpus
    spare = cpus // max(ranks_per_node, 1) - 1
    return max(1, min(int(requested), spare))


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


class Uint8Items(Dataset):
    """The items of an image dataset with the images left as uint8 [C, H, W].

    A quarter of the bytes of float32 through the workers' shared memory, the pinned buffer and
    the host-to-GPU copy, and no float conversion in the worker; the datamodule converts each
    batch on the device (:meth:`GANDataModule.on_after_batch_transfer`), as the reference does.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.get_uint8(index), self.dataset.get_label(index)


class GANDataModule(L.LightningDataModule):
    """Serves ``dataset`` in per-rank batches of ``batch_size // world_size`` forever.

    Args:
        dataset: the training set; items are ``(x, c)``.
        batch_size: global batch (all ranks together), as in the presets.
        num_workers: DataLoader worker processes per rank.
            At most the CPUs each rank has (:func:`loader_workers`): ``trainer=gpu`` asks for
            the reference's 3, and a node with fewer CPUs per GPU gets fewer.
        pin_memory: pin host memory (faster, asynchronous copies to a GPU).
        seed: seed of the data order.
        persistent_workers: keep the workers (and their open zip handles) between epochs;
            only with workers.
        prefetch_factor: batches each worker prepares ahead (torch's default 2, as the
            reference); only with workers.
        uint8: ship images as uint8 and scale them to [-1, 1] after the copy to the device
            (:class:`Uint8Items`; datasets with ``get_uint8``): the same values, 4x fewer
            bytes to move. On in ``speed=gpu``.
        preload: let the dataset decode and keep its images in memory first when it can
            (``dataset.preload()``, e.g. a small ImageDataset within its ``cache_mb``); on in
            ``speed=gpu`` (chosen by ``trainer=gpu``), off on CPU.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64, num_workers: int = 0,
                 pin_memory: bool = False, seed: int = 0, persistent_workers: bool = True,
                 prefetch_factor: int = 2, preload: bool = False,
                 uint8: bool = False) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.persistent_workers = bool(persistent_workers)
        self.prefetch_factor = int(prefetch_factor)
        self.preload = bool(preload)
        self.uint8 = bool(uint8) and callable(getattr(dataset, "get_uint8", None))

    def workers(self) -> int:
        """Workers per rank this node can give (``num_workers`` capped by its CPUs)."""
        trainer = self.trainer
        ranks = 1
        if trainer is not None:
            ranks = max(int(getattr(trainer, "num_devices", 1) or 1), 1)
        workers = loader_workers(int(self.num_workers), ranks)
        if workers < self.num_workers:
            log.info("datamodule: %d loader workers per rank instead of %d (%d CPUs for %d "
                     "rank(s) on this node, one kept by each rank)", workers, self.num_workers,
                     available_cpus(), ranks)
        return workers

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
        preload = getattr(self.dataset, "preload", None)
        if self.preload and callable(preload) and preload():
            # Before the workers fork: they share the decoded images instead of decoding.
            log.info("datamodule: %s decoded into memory once", type(self.dataset).__name__)
        workers = self.workers()
        pin = bool(self.pin_memory) and torch.cuda.is_available()
        extra = {"persistent_workers": self.persistent_workers,
                 "prefetch_factor": self.prefetch_factor} if workers > 0 else {}
        return DataLoader(
            Uint8Items(self.dataset) if self.uint8 else self.dataset,
            batch_size=per_rank,
            sampler=sampler,
            num_workers=workers,
            pin_memory=pin,
            collate_fn=collate,
            drop_last=True,
            **extra,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 images (``uint8=True``) become float32 in [-1, 1] here, on the device."""
        if not self.uint8:
            return batch
        x, c = batch
        if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
            x = uint8_to_float(x)
        return x, c

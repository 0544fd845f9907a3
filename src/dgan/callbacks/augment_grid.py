"""What D sees: one batch of reals augmented at a few p, written once per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from dgan.augment.grid import augmentation_grid
from dgan.files.pictures import save_image_grid
from dgan.tracking.records import log_image_file

GRID_FILE = "augment_grid.png"


class AugmentGrid(L.Callback):
    """Writes ``augment_grid.png``: the first reals of the dataset, one row per p.

    The module's augmentation keeps its p and random state (:func:`augmentation_grid`
    restores them), and the images come from the dataset by index, not from the loader, so
    the picture changes nothing of the training run.

    Args:
        run_dir: the run directory.
        num_images: reals per row.
        ps: the probabilities, one row each.
    """

    def __init__(self, run_dir: str | Path, num_images: int = 8,
                 ps: Sequence[float] = (0.0, 0.25, 0.5, 1.0)) -> None:
        if num_images < 1:
            raise ValueError(f"num_images={num_images} must be >= 1")
        self.run_dir = Path(run_dir)
        self.num_images = int(num_images)
        self.ps = tuple(float(p) for p in ps)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        augment = getattr(pl_module, "augment", None)
        dataset = getattr(trainer.datamodule, "dataset", None)
        if augment is None or dataset is None or not trainer.is_global_zero:
            return
        count = min(self.num_images, len(dataset))
        reals = torch.stack([dataset[i][0] for i in range(count)]).to(pl_module.device)
        if reals.dim() != 4:
            return  # points, not images
        with torch.no_grad():
            grid = augmentation_grid(augment, reals, self.ps)
        path = save_image_grid(grid, self.run_dir / GRID_FILE, columns=count)
        caption = "rows: p = " + ", ".join(f"{p:g}" for p in self.ps)
        log_image_file(trainer, "augment_grid", path, pl_module.kimg, caption)

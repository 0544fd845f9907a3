"""Pictures of training: fixed-latent sample grids (images) or scatter plots (2-D data)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from dgan.callbacks.cadence import KimgSnapshots, kimg_tag
from dgan.files.pictures import save_image_grid, save_scatter
from dgan.metrics.feature_stats import seeded_global_rng
from dgan.tracking.records import log_image_file

INIT_TAG = "_init"  # the picture before the first step: fakes_init.png


class SamplesCallback(KimgSnapshots):
    """Writes samples of G_ema from fixed latents every ``every_kimg`` and at the end.

    Images go to ``<run_dir>/samples/fakes{kimg:06d}.png`` as a grid (and the reals once, as
    ``reals.png``); 2-D data to ``<run_dir>/samples/scatter{kimg:06d}.png`` over the data
    (:func:`dgan.callbacks.cadence.kimg_tag`). A fresh run also writes the untrained G_ema's
    samples, ``fakes_init.png`` (``scatter_init.png``), as StyleGAN2-ADA does. Each picture is
    also sent to the logger when it can take images (W&B, TensorBoard).

    Args:
        run_dir: the run directory.
        every_kimg: period in thousands of images (0: only at the end).
        num_images: images in a grid (2-D data: points in a scatter plot, 2,500 by default).
        seed: seed of the fixed latents.
    """

    def __init__(self, run_dir: str | Path, every_kimg: float = 10.0, num_images: int = 64,
                 num_points: int = 2500, seed: int = 0) -> None:
        self.out_dir = Path(run_dir) / "samples"
        self.num_images = num_images
        self.num_points = num_points
        self.seed = seed
        super().__init__(every_kimg)
        self.written: list[Path] = []

    def _latents(self, pl_module: L.LightningModule, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        z = torch.randn(n, pl_module.G_ema.z_dim, generator=gen)
        c_dim = getattr(pl_module.G_ema, "c_dim", 0)
        c = torch.zeros(n, c_dim)
        if c_dim:
            c[torch.arange(n), torch.arange(n) % c_dim] = 1  # one class per column
        return z.to(pl_module.device), c.to(pl_module.device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dataset = trainer.datamodule.dataset
        if trainer.is_global_zero and not _is_points(dataset[0][0]):
            reals = torch.stack([dataset[i][0] for i in range(min(self.num_images, len(dataset)))])
            self._write(trainer, save_image_grid(reals, self.out_dir / "reals.png"), "reals", 0)
        if pl_module.kimg == 0:
            # The generator's noise inputs draw from the global stream: a stream of its own
            # leaves the training's draws, and so its results, as they are without the picture.
            with seeded_global_rng(self.seed, pl_module.device):
                self.snapshot(trainer, pl_module, INIT_TAG)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self.snapshot(trainer, pl_module)
        if path is not None:
            print(f"[dgan] samples: {path.parent}", flush=True)

    @torch.no_grad()
    def snapshot(self, trainer: L.Trainer, pl_module: L.LightningModule,
                 tag: str | None = None) -> Path | None:
        """Write the picture of this point (``tag``: its name after fakes/scatter; None: kimg)."""
        if not trainer.is_global_zero:
            return None
        dataset = trainer.datamodule.dataset
        tag = kimg_tag(pl_module.kimg) if tag is None else tag
        points = _is_points(dataset[0][0])
        z, c = self._latents(pl_module, self.num_points if points else self.num_images)
        fakes = pl_module.generate(z, c).float().cpu()
        if points:
            reals = getattr(dataset, "points", None)
            reals = reals[: self.num_points] if reals is not None else None
            path = save_scatter(fakes, reals, self.out_dir / f"scatter{tag}.png",
                                title=f"kimg {pl_module.kimg:.1f}")
        else:
            path = save_image_grid(fakes, self.out_dir / f"fakes{tag}.png")
        self._write(trainer, path, "samples", pl_module.kimg)
        return path

    def _write(self, trainer: L.Trainer, path: Path, key: str, kimg: float) -> None:
        self.written.append(path)
        log_image_file(trainer, key, path, kimg, caption=f"kimg {kimg:.1f}")


def _is_points(x: torch.Tensor) -> bool:
    return x.dim() == 1

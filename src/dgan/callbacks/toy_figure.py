"""The paper-style toy figure during training: samples over the data and D's maps at a few t."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from dgan.callbacks.cadence import KimgSnapshots, kimg_tag
from dgan.files.toy_figure import (
    DEFAULT_LIM,
    discriminator_maps,
    figure_timesteps,
    method_name,
    save_toy_figure,
)
from dgan.tracking.records import log_image_file


class ToyFigure(KimgSnapshots):
    """Writes ``<run_dir>/samples/toy{kimg_tag}.png`` every ``every_kimg`` and at the end.

    Only for 2-D point data (an image run writes nothing). The maps use the D being trained and
    the diffusion's current chain length T (see :func:`dgan.files.toy_figure.figure_timesteps`).

    Args:
        run_dir: the run directory.
        every_kimg: period in thousands of images (0: only at the end).
        num_points: generated (and real) points drawn.
        ts: timesteps of the D maps (None: 0, T/2 and T of the current chain).
        lim: half-width of the plotted square.
        seed: seed of the latents.
    """

    def __init__(self, run_dir: str | Path, every_kimg: float = 0, num_points: int = 2500,
                 ts: Sequence[int] | None = None, lim: float = DEFAULT_LIM, seed: int = 0
                 ) -> None:
        if num_points < 1:
            raise ValueError(f"num_points={num_points} must be >= 1")
        self.out_dir = Path(run_dir) / "samples"
        self.num_points = int(num_points)
        self.ts = None if ts is None else [int(t) for t in ts]
        self.lim = float(lim)
        self.seed = seed
        super().__init__(every_kimg)
        self.written: list[Path] = []

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self.snapshot(trainer, pl_module)
        if path is not None:
            print(f"[dgan] toy figure: {path}", flush=True)

    @torch.no_grad()
    def snapshot(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path | None:
        dataset = trainer.datamodule.dataset
        reals = getattr(dataset, "points", None)
        if not trainer.is_global_zero or reals is None or reals.shape[1] != 2:
            return None
        diffusion = pl_module.diffusion
        if diffusion is None:
            ts: list[int | None] = [None]
        else:
            ts = list(self.ts) if self.ts is not None else figure_timesteps(int(diffusion.T))
        gen = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.num_points, pl_module.G_ema.z_dim, generator=gen)
        c = torch.zeros(self.num_points, getattr(pl_module.G_ema, "c_dim", 0))
        fakes = pl_module.generate(z.to(pl_module.device), c.to(pl_module.device)).float().cpu()
        D = pl_module.D
        was_training = D.training
        D.eval()
        try:
            maps = discriminator_maps(D, ts, self.lim, c_dim=getattr(D, "c_dim", 0),
                                      device=pl_module.device)
        finally:
            D.train(was_training)
        kimg = pl_module.kimg
        path = save_toy_figure(fakes, reals[: self.num_points], maps, ts,
                               self.out_dir / f"toy{kimg_tag(kimg)}.png",
                               method_name(diffusion is not None), kimg, self.lim)
        self.written.append(path)
        log_image_file(trainer, "toy_figure", path, kimg, caption=f"kimg {kimg:.1f}")
        return path

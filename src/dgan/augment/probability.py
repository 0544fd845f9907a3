"""How ADA's p moves during training (``augment=ada``).

With the diffusion (Diffusion-GAN's ``--aug ada``), ADA follows the diffusion's p, capped:
p_ada = min(p, ada_maxp), set before every step (p only changes at the diffusion's updates, so
this is the reference's rule of setting it at each T update). Without the diffusion (the
StyleGAN2-ADA baseline), ADA's own overfitting heuristic moves p: the adaptive update of
:mod:`dgan.diffusion.adaptive`, applied to the augmentation instead of the diffusion.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from dgan.diffusion.adaptive import AdaptiveDiffusion
from dgan.tracking.records import DeferredRecords

RECORD_KEYS = ("augment/p", "augment/r_t")
# StyleGAN2-ADA's defaults: r_t target, steps between updates, kimg for p to cross [0, 1];
# Diffusion-GAN's cap of ADA's p when it follows the diffusion.
DEFAULT_R_T_TARGET = 0.6
DEFAULT_INTERVAL = 4
DEFAULT_ADA_KIMG = 500.0
DEFAULT_ADA_MAXP = 0.25


class _AugmentHeuristic(AdaptiveDiffusion):
    """The adaptive update, moving ``pl_module.augment``'s p on r_t."""

    drives = "augment"
    record_keys = RECORD_KEYS

    def _values(self, driven: nn.Module, r_d: torch.Tensor) -> torch.Tensor:
        return torch.stack([driven.p.float(), r_d.float()])

    def _progress(self, driven: nn.Module) -> dict[str, torch.Tensor]:
        return {"ada_p": driven.p}


class AugmentProbability(DeferredRecords, L.Callback):
    """Sets ``pl_module.augment``'s p from the diffusion's, or adapts it on r_t without one.

    Not a subclass of the diffusion's callback, which the module returns from
    ``configure_callbacks``: Lightning would drop a trainer callback of a subclass type.

    Args:
        ada_maxp: the cap of ADA's p when it follows the diffusion's p.
        target: ADA's target of r_t = E[sign(D(real))] without the diffusion; above it p grows.
        interval: training steps between two updates of p without the diffusion.
        ada_kimg: thousands of images over which p may move from 0 to 1 without the diffusion.
    """

    def __init__(self, ada_maxp: float = DEFAULT_ADA_MAXP, target: float = DEFAULT_R_T_TARGET,
                 interval: int = DEFAULT_INTERVAL, ada_kimg: float = DEFAULT_ADA_KIMG) -> None:
        if not 0 <= ada_maxp <= 1:
            raise ValueError(f"ada_maxp={ada_maxp!r} is not valid; expected a number in [0, 1]")
        self.ada_maxp = float(ada_maxp)
        self.heuristic = _AugmentHeuristic(d_target=target, ada_kimg=ada_kimg, interval=interval)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        diffusion = getattr(pl_module, "diffusion", None)
        augment = getattr(pl_module, "augment", None)
        if diffusion is not None and augment is not None:
            augment.set_p(diffusion.p.clamp(max=self.ada_maxp))  # on the device: no sync

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if getattr(pl_module, "diffusion", None) is None:
            self.heuristic.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.heuristic.flush_records(trainer)

    def flush_records(self, trainer: L.Trainer) -> None:
        """Log the held p, r_t records (called before any other record reaches the loggers)."""
        self.heuristic.flush_records(trainer)

    def state_dict(self) -> dict[str, Any]:
        return self.heuristic.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.heuristic.load_state_dict(state_dict)

"""Where T changes: the adaptive update of the diffusion's p (and so of the chain length T).

Every ``update_interval`` steps, r_d = E[sign(D logit)] of the diffused reals seen since the last
update, reduced over all ranks, moves p by sign(r_d - d_target) * images / (ada_kimg * 1000).
An overfitting D (r_d above target) lengthens the chain; a weak D shortens it. Every rank does
the same arithmetic on the same reduced numbers, so p and T agree everywhere.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class AdaptiveDiffusion(L.Callback):
    """Updates ``pl_module.diffusion`` from the real logits of each D step.

    ``DiffusionGAN.configure_callbacks`` adds it whenever the module has a diffusion; the
    settings (d_target, ada_kimg, update_interval, adaptive) are the diffusion's own.
    """

    def __init__(self) -> None:
        self._signs: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        self._steps = 0
        self.last_r_d: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        diffusion = pl_module.diffusion
        if diffusion is None or not diffusion.adaptive or not outputs:
            return
        signs = outputs["real_signs"].detach().float()
        count = outputs["real_count"].to(signs.device).float()
        self._signs = signs if self._signs is None else self._signs + signs
        self._count = count if self._count is None else self._count + count
        self._steps += 1
        if self._steps < diffusion.update_interval:
            return
        # Every rank joins the reduction; the update itself is then identical everywhere.
        totals = torch.stack([self._signs, self._count])
        totals = trainer.strategy.reduce(totals, reduce_op="sum")
        r_d = totals[0] / totals[1].clamp(min=1)
        diffusion.adapt(r_d, num_images=pl_module.batch_size * self._steps)
        self.last_r_d = r_d
        self._signs = self._count = None
        self._steps = 0
        pl_module.log_dict(
            {"diffusion/p": diffusion.p, "diffusion/T": diffusion.T.float(), "diffusion/r_d": r_d},
            on_step=True, on_epoch=False, batch_size=pl_module.batch_size,
        )
        pl_module.log_dict({"p": diffusion.p, "T": diffusion.T.float()}, prog_bar=True,
                           logger=False, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps, "signs": self._signs, "count": self._count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._steps = int(state_dict["steps"])
        self._signs = state_dict["signs"]
        self._count = state_dict["count"]

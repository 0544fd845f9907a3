"""'Every N kimg': the one schedule of the periodic callbacks (checkpoints, metrics, samples,
diagnostics), on dgan's own clock of images shown rather than Lightning's optimizer steps."""

from __future__ import annotations

from typing import Any

import lightning as L


def kimg_tag(kimg: float) -> str:
    """kimg as picture file names carry it: ``000080`` (StyleGAN2-ADA's six digits), or with
    the thousandths when it is not whole, ``000000.800``, so that the points of a run shorter
    than a few kimg do not overwrite each other."""
    nimg = round(kimg * 1000)
    if nimg % 1000 == 0:
        return f"{nimg // 1000:06d}"
    return f"{nimg // 1000:06d}.{nimg % 1000:03d}"


class EveryKimg:
    """Due once each time kimg reaches the next multiple of ``every_kimg``.

    A step that jumps over several multiples is due once, and the next due point is the first
    multiple after it. The next point is part of a callback's checkpoint state, so a resumed
    run keeps the schedule of the uninterrupted one.

    Args:
        every_kimg: the period in thousands of images (0: never; callbacks then act only at the
            end of training).
    """

    def __init__(self, every_kimg: float) -> None:
        if every_kimg < 0:
            raise ValueError(f"every_kimg={every_kimg} must be >= 0 (0: only at the end)")
        self.every_kimg = float(every_kimg)
        self.next_kimg = self.every_kimg

    def due(self, kimg: float, stopping: bool = False) -> bool:
        """Whether the period has come at ``kimg``; advances the schedule when it has.

        Args:
            kimg: the images shown so far, in thousands.
            stopping: training ends at this step (the end-of-training action takes over).
        """
        if self.every_kimg <= 0 or stopping or kimg < self.next_kimg:
            return False
        while self.next_kimg <= kimg:
            self.next_kimg += self.every_kimg
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"next_kimg": self.next_kimg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_kimg = float(state["next_kimg"])


class KimgSnapshots(L.Callback):
    """Base of the picture callbacks: :meth:`snapshot` every ``every_kimg`` (and, by the
    subclass, at the end), with the schedule in the checkpoint.

    Args:
        every_kimg: period in thousands of images (0: only at the end).
    """

    def __init__(self, every_kimg: float) -> None:
        self.cadence = EveryKimg(every_kimg)

    def snapshot(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Any:
        raise NotImplementedError

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.cadence.due(pl_module.kimg, trainer.should_stop):
            self.snapshot(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {**self.cadence.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cadence.load_state_dict(state_dict)

"""Ending a resumed run that had trained to its last kimg: only its end of training is left."""

from __future__ import annotations

import lightning as L


class FinishOnly(L.Callback):
    """Ends a resumed run before its first step: the checkpoint is at the run's last kimg, and
    only the end of training (final evaluation, summary, last pictures) is missing.

    Args:
        kimg: the checkpoint's kimg.
    """

    def __init__(self, kimg: float) -> None:
        self.kimg = kimg

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print(f"[dgan] resume: the run reached its last kimg ({self.kimg:g}) but has no "
                  "final evaluation; running it (no training step)", flush=True)
        trainer.should_stop = True

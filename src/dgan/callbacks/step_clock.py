"""Timing each training step of ``dgan.bench``, start to start, with the step counter it sets."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device (timing only; never called inside the measured code)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(L.Callback):
    """Steers the module's step counter per batch and times each step, start to start.

    Args:
        plan: the step counter to set before each batch (its lazy phases follow from it).
        device: device to synchronise before reading the clock.
    """

    def __init__(self, plan: list[int], device: torch.device) -> None:
        self.plan = plan
        self.device = device
        self.durations: list[float] = []
        self._start: float | None = None

    def _tick(self) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if self._start is not None:
            self.durations.append(now - self._start)
        self._start = now

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        self._tick()
        pl_module.cur_step = self.plan[batch_idx]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # The data ends with the plan: the epoch end closes the last step, callbacks included.
        self._tick()

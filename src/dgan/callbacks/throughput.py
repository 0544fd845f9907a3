"""Speed and memory of training: sec/kimg, images/s and peak memory, every few steps.

Only host-side clocks and counters are read (wall time, the module's image counter, the CUDA
allocator's statistics, the process's max RSS), so the callback never waits for the device. On
a GPU the wall time between two reports runs ahead of the device by at most the depth of the
launch queue, which averages out over a window of steps. The window includes whatever else
runs in it (metrics, sample grids, checkpoints), as StyleGAN2-ADA's sec/kimg does.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning as L
import torch

from dgan.tracking.records import log_scalars

BYTES_PER_GIB = 1024**3
# ru_maxrss is in kibibytes on Linux and in bytes on macOS.
MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory of this process: CUDA's max allocated on a GPU, else the max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT_BYTES / BYTES_PER_GIB


class Throughput(L.Callback):
    """Logs ``perf/sec_per_kimg``, ``perf/images_per_s`` and ``perf/peak_mem_gib``; shows
    ``sec/kimg`` on the progress bar.

    Args:
        every_n_steps: reporting period in training steps (None: the trainer's
            ``log_every_n_steps``, so the values are recorded at the steps of the losses).
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be an integer >= 1 or null")
        self.every_n_steps = every_n_steps
        self._time: float | None = None
        self._nimg = 0
        self.last: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._time = time.perf_counter()
        self._nimg = pl_module.cur_nimg

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        period = self.every_n_steps or max(trainer.log_every_n_steps, 1)
        if pl_module.cur_step % period or self._time is None:
            return
        now = time.perf_counter()
        seconds, images = now - self._time, pl_module.cur_nimg - self._nimg
        self._time, self._nimg = now, pl_module.cur_nimg
        if images <= 0 or seconds <= 0:
            return
        self.last = {
            "perf/sec_per_kimg": seconds / images * 1000,
            "perf/images_per_s": images / seconds,
            "perf/peak_mem_gib": peak_memory_gib(pl_module.device),
        }
        # A record of its own at this step's kimg: through self.log, Lightning would repeat
        # these values in the module's later records and show them at its own cadence.
        log_scalars(trainer, dict(self.last), pl_module.kimg)
        # A CPU tensor: showing a Python float would copy it to the GPU.
        pl_module.log("sec/kimg", torch.tensor(self.last["perf/sec_per_kimg"]), prog_bar=True,
                      logger=False, on_step=True, on_epoch=False)

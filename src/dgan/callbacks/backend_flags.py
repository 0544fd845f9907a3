"""Process-wide cuDNN / cuBLAS switches for a training run on CUDA.

They are global to the process, not properties of a model, so a callback sets them when the
fit starts and restores the previous values when it ends (tests and notebooks run several fits
in one process).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class BackendFlags(L.Callback):
    """Sets TF32 and cuDNN autotuning for the duration of a fit on CUDA.

    Args:
        tf32: let float32 matmuls and convolutions use TF32 tensor cores (faster on Ampere and
            later, ~10 mantissa bits). StyleGAN2-ADA turns it off for exact gradient penalties.
        cudnn_benchmark: let cuDNN time its convolution algorithms on the first batches and keep
            the fastest (pays off because every step has the same shapes).
    """

    def __init__(self, tf32: bool = False, cudnn_benchmark: bool = True) -> None:
        self.tf32 = bool(tf32)
        self.cudnn_benchmark = bool(cudnn_benchmark)
        self._saved: tuple[bool, bool, bool] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != "cuda":
            return
        backends = torch.backends
        self._saved = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32,
                       backends.cudnn.benchmark)
        backends.cuda.matmul.allow_tf32 = self.tf32
        backends.cudnn.allow_tf32 = self.tf32
        backends.cudnn.benchmark = self.cudnn_benchmark

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._saved is None:
            return
        backends = torch.backends
        (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32,
         backends.cudnn.benchmark) = self._saved
        self._saved = None

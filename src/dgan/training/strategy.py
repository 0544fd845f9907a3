"""Lightning's DDP for a module that reduces its own gradients: no DistributedDataParallel wrapper.

``DiffusionGAN`` steps G and D separately and all-reduces each network's gradients itself, once
per phase (StyleGAN2-ADA does the same). Lightning's stock ``DDPStrategy`` wraps the whole
LightningModule in one ``DistributedDataParallel``; with manual optimisation its reducer then
expects a gradient for every parameter at every ``manual_backward``, but the G phase leaves D's
parameters without gradients (and the D phase G's), so the second backward fails with "parameters
that were not used in producing the loss". ``find_unused_parameters=True`` would run, at the cost
of a graph traversal per backward and a second, redundant all-reduce of every gradient. Not
wrapping at all keeps one reduction per phase and no unused-parameter bookkeeping.

Everything else of DDP stays Lightning's: process launch (re-running the command line for ranks
> 0, with Hydra's run directory passed on), process group, rank-aware sampler settings, barriers,
``reduce``/``all_gather`` and rank-0-only checkpoint writing.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

START_METHODS = ("popen", "spawn", "fork", "forkserver")
# torch.distributed's default collective timeout, in seconds.
DEFAULT_TIMEOUT_S = 1800.0


class SelfReducingDDPStrategy(DDPStrategy):
    """Multi-process data parallelism without wrapping the module in ``DistributedDataParallel``.

    The module must average its gradients over ranks itself (``DiffusionGAN._step`` does).
    Parameters are broadcast from rank 0 once at set-up, so every rank starts from the same
    weights; buffers are left alone, since some legitimately differ between ranks (the t pool
    each rank draws from its own generator, StyleGAN2's ``w_avg``) and a resumed run has just
    restored each rank's own.

    Args:
        process_group_backend: nccl | gloo (None: nccl on GPUs, gloo on CPUs).
        timeout_s: timeout of every collective, in seconds.
        start_method: how ranks > 0 start: popen (re-run the command line, the only one that
            works with Hydra) | spawn | fork | forkserver.
    """

    def __init__(self, process_group_backend: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, start_method: str = "popen") -> None:
        if start_method not in START_METHODS:
            choices = ", ".join(START_METHODS)
            raise ValueError(f"start_method={start_method!r} is not valid; choose one of {choices}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0 (seconds)")
        super().__init__(process_group_backend=process_group_backend,
                         timeout=timedelta(seconds=timeout_s), start_method=start_method)

    def configure_ddp(self) -> None:
        # Deliberately no DistributedDataParallel: see the module docstring.
        if dist.is_available() and dist.is_initialized() and self.world_size > 1:
            with torch.no_grad():
                for param in self.model.parameters():
                    dist.broadcast(param.data, src=0)

"""The gradient step of one phase: one flat all-reduce under DDP, ``nan_to_num``, step.

G and D are never wrapped in DistributedDataParallel (see :mod:`dgan.training.strategy`): each
phase reduces its own network's gradients here, once, as StyleGAN2-ADA does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

# A diverging step must not poison the weights: infinite gradients are clipped to this.
GRAD_CLAMP = 1e5


def average_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """Replace each gradient by its mean over the ``world_size`` ranks (one all-reduce)."""
    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()) or not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world_size
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad.copy_(g.view_as(p))


def step_network(net: nn.Module, optimizer: torch.optim.Optimizer | object, world_size: int
                 ) -> bool:
    """Reduce, sanitise and apply ``net``'s gradients; False (no step) when it has none.

    A phase that computed nothing (the G reg phase of a run without path length) leaves every
    gradient None on every rank, so every rank skips the step and the collective alike.
    """
    params = [p for p in net.parameters() if p.grad is not None]
    if not params:
        return False
    average_gradients(params, world_size)
    for p in params:
        torch.nan_to_num_(p.grad, nan=0, posinf=GRAD_CLAMP, neginf=-GRAD_CLAMP)
    optimizer.step()
    return True

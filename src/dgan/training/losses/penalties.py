"""Building blocks of the StyleGAN2 objective: R1 and path-length regularisation."""

from __future__ import annotations

import torch


def r1_penalty(real_x: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of D's logits w.r.t. the clean reals, per sample.

    ``real_x`` must require grad and the logits must depend on it (through the diffusion).
    The gradient is taken out of place with a graph, so one ordinary backward of the penalty
    follows; that keeps it correct under DDP.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_x, create_graph=True)
    return grad.square().flatten(1).sum(1)


def path_lengths(images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobian norm |J_w^T y| for a random image-space direction y (StyleGAN2)."""
    pixels = images[0, 0].numel()
    noise = torch.randn_like(images) / pixels**0.5
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(2).mean(1).sqrt()

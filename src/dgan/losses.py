"""The GAN objective: non-saturating logistic loss, R1 and path-length regularisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of G, per sample: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).flatten()


def discriminator_loss(real_logits: torch.Tensor | None,
                       fake_logits: torch.Tensor | None) -> torch.Tensor:
    """Logistic loss of D, per sample: softplus(D(fake)) + softplus(-D(real))."""
    parts = []
    if fake_logits is not None:
        parts.append(F.softplus(fake_logits).flatten())
    if real_logits is not None:
        parts.append(F.softplus(-real_logits).flatten())
    return torch.cat(parts)


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

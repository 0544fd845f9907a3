"""Where T changes: the adaptive rule that moves the diffusion's p (and so the chain length T).

r_d = E[sign(D logit)] of the diffused reals seen since the last update moves p by
sign(r_d - d_target) * images / (ada_kimg * 1000): an overfitting D (r_d above target)
lengthens the chain, a weak D shortens it. In a dgan run the training module's
:class:`~dgan.callbacks.adaptive_probability.AdaptiveProbability` applies it every few steps,
with r_d reduced over all ranks; a user's own training loop calls :func:`adjust_p`.
"""

from __future__ import annotations

import torch
from torch import nn

from dgan.diffusion.process import Diffusion

IMAGES_PER_KIMG = 1000


@torch.no_grad()
def adjust_p(diffusion: Diffusion | nn.Module, r_d: torch.Tensor | float, d_target: float,
             num_images: int, ada_kimg: float) -> None:
    """One adaptive step: p += sign(r_d - d_target) * num_images / (ada_kimg * 1000).

    Args:
        diffusion: the diffusion whose p (and so T) moves; any module with ``p`` and
            ``set_p`` (ADA's augmentation follows the same rule).
        r_d: E[sign(D logit)] of diffused reals since the last update (tensor, any device).
        d_target: the target of r_d; above it the chain grows.
        num_images: real images shown since the last update, over all ranks.
        ada_kimg: thousands of images over which p may move from 0 to 1.
    """
    r_d = torch.as_tensor(r_d, dtype=torch.float32, device=diffusion.p.device)
    step = num_images / (ada_kimg * IMAGES_PER_KIMG)
    diffusion.set_p(diffusion.p + torch.sign(r_d - d_target) * step)

"""How a discriminator sees the diffusion timestep t (and the class label).

The reference Diffusion-GAN feeds the raw integer t, concatenated with the class label, through
a mapping network into a projection head; the convolutional trunk never sees t. This module is
that head as a reusable piece, with three alternatives for the encoding of t:

- ``raw``: t as a float, exactly the reference (large inputs, tamed by the mapping's
  normalisation);
- ``normalized``: t / t_max in [0, 1];
- ``sinusoidal``: transformer-style sin/cos features of t;
- ``none``: D ignores t (plug-in mode, or a plain GAN); the class label is still used.

A backbone ends in ``head.in_features`` features; ``head(features, c, t)`` returns one logit
per sample.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgan.networks.layers import EqualLinear, MappingMLP

CONDITIONING_MODES = ("raw", "normalized", "sinusoidal", "none")


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sin/cos features of integer timesteps ``t`` ([N] or [N, 1]) -> [N, dim]."""
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    angles = t.reshape(-1, 1).float() * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimestepConditioning(nn.Module):
    """Projection head of a t-dependent (and optionally class-conditional) discriminator.

    Args:
        mode: encoding of t: ``raw`` | ``normalized`` | ``sinusoidal`` | ``none``.
        c_dim: class-label width (0: unconditional).
        cmap_dim: width of the projection; the backbone must output this many features when
            the head is conditional (t used or c_dim > 0), and 1 otherwise.
        t_max: largest timestep, the scale of ``normalized`` mode.
        num_layers: layers of the mapping network (8 in the reference).
        lr_multiplier: learning-rate multiplier of the mapping network (0.01 in the reference).
        sinusoidal_dim: width of the sin/cos features in ``sinusoidal`` mode.
        embed_bias_init: initial bias of the embedding of (c, t); None: 0 for ``raw`` (the
            reference) and 1 otherwise. With zero bias, the embedding of a scalar t is
            ``t * w``, which the mapping's 2nd-moment normalisation reduces to ``sign(t)``:
            D sees t's magnitude only once the bias has learned to move.
    """

    def __init__(
        self,
        mode: str = "raw",
        c_dim: int = 0,
        cmap_dim: int = 512,
        t_max: int = 1000,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        sinusoidal_dim: int = 128,
        embed_bias_init: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in CONDITIONING_MODES:
            raise ValueError(
                f"t conditioning mode={mode!r} is not valid; choose one of {CONDITIONING_MODES}"
            )
        if t_max <= 0:
            raise ValueError(f"t_max={t_max} must be positive")
        self.mode = mode
        self.c_dim = c_dim
        self.t_max = t_max
        self.sinusoidal_dim = sinusoidal_dim
        t_dim = {"raw": 1, "normalized": 1, "sinusoidal": sinusoidal_dim, "none": 0}[mode]
        self.t_dim = t_dim
        self.cmap_dim = cmap_dim if (c_dim + t_dim) > 0 else 0
        self.mapping = (
            MappingMLP(
                z_dim=0,
                c_dim=c_dim + t_dim,
                out_dim=cmap_dim,
                num_layers=num_layers,
                lr_multiplier=lr_multiplier,
                embed_bias_init=(0.0 if mode == "raw" else 1.0)
                if embed_bias_init is None else embed_bias_init,
            )
            if self.cmap_dim
            else None
        )

    @property
    def in_features(self) -> int:
        """Number of features the backbone must produce."""
        return self.cmap_dim if self.cmap_dim else 1

    def encode_t(self, t: torch.Tensor) -> torch.Tensor:
        """Features of the timesteps ``t`` ([N] or [N, 1]) for the chosen mode -> [N, t_dim]."""
        t = t.reshape(-1, 1)
        if self.mode == "raw":
            return t.float()
        if self.mode == "normalized":
            return t.float() / self.t_max
        if self.mode == "sinusoidal":
            return sinusoidal_embedding(t, self.sinusoidal_dim)
        return t.new_zeros(t.shape[0], 0, dtype=torch.float32)

    def forward(
        self, features: torch.Tensor, c: torch.Tensor | None, t: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits [N, 1] from backbone ``features`` [N, in_features], labels and timesteps."""
        if self.mapping is None:
            return features
        n = features.shape[0]
        parts = []
        if self.c_dim:
            parts.append(c.reshape(n, -1).float())
        if self.t_dim:
            if t is None:
                t = torch.zeros(n, dtype=torch.long, device=features.device)
            parts.append(self.encode_t(t))
        cmap = self.mapping(None, torch.cat(parts, dim=1))
        return (features.float() * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


class OutputLayer(EqualLinear):
    """Final linear layer of a backbone, sized for a :class:`TimestepConditioning` head."""

    def __init__(self, in_features: int, head: TimestepConditioning) -> None:
        super().__init__(in_features, head.in_features)

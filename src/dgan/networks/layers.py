"""Equalised-learning-rate building blocks shared by every network in dgan.

Weights are stored at unit scale and multiplied by ``lr_multiplier / sqrt(fan_in)`` at run time
(Karras et al., 2018), so Adam's per-parameter step size is the same for every layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
# Gain that keeps the second moment of a leaky-ReLU output equal to its input's.
LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: torch.Tensor, gain: float = LRELU_GAIN) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) scaled by ``gain``."""
    return F.leaky_relu(x, LRELU_SLOPE) * gain


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` so that its mean square along ``dim`` is one."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate.

    Args:
        in_features: input width.
        out_features: output width.
        bias: learn an additive bias.
        activation: ``"linear"`` or ``"lrelu"`` (leaky ReLU with gain sqrt(2)).
        lr_multiplier: learning-rate multiplier of this layer (0.01 in mapping networks).
        bias_init: initial value of the bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation={activation!r} is not one of 'linear', 'lrelu'")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        x = F.linear(x, w, b)
        return lrelu(x) if self.activation == "lrelu" else x

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class MappingMLP(nn.Module):
    """StyleGAN2 mapping network: optional latent and embedded condition -> ``out_dim`` vector.

    The latent and the embedded condition are each normalised to unit second moment and
    concatenated, then passed through ``num_layers`` leaky-ReLU layers.

    Args:
        z_dim: latent width (0: no latent input, as in the discriminator's mapping).
        c_dim: condition width (0: unconditional).
        out_dim: output width (w_dim in G, cmap_dim in D).
        num_layers: number of fully connected layers.
        embed_features: width of the condition embedding (default ``out_dim``).
        layer_features: width of hidden layers (default ``out_dim``).
        lr_multiplier: learning-rate multiplier of the layers (0.01 in StyleGAN2).
        embed_bias_init: initial bias of the condition embedding.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        out_dim: int,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        lr_multiplier: float = 0.01,
        embed_bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("MappingMLP needs z_dim > 0 or c_dim > 0")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.out_dim = out_dim
        embed_features = (out_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = out_dim if layer_features is None else layer_features
        self.embed = (EqualLinear(c_dim, embed_features, bias_init=embed_bias_init)
                      if c_dim else None)
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            EqualLinear(i, o, activation="lrelu", lr_multiplier=lr_multiplier)
            for i, o in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        return x

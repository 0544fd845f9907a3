"""Small MLP generator and t-dependent discriminator for 2-D toy data."""

from __future__ import annotations

import torch
from torch import nn

from dgan.networks.conditioning import TimestepConditioning

# The paper's toy networks use LeakyReLU (slope 0.2) in G and D; dgan's G defaulted to ReLU.
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def _mlp(widths: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, o in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(i, o), activation()]
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z -> point.

    Args:
        z_dim: latent width.
        out_dim: data dimension (2 for the toy sets).
        hidden: width of the hidden layers.
        num_layers: number of hidden layers.
        c_dim: label width (0: unconditional); labels are concatenated to z.
        activation: hidden activation, ``relu`` or ``leaky_relu`` (slope 0.2, the paper's toy).
    """

    def __init__(self, z_dim: int = 16, out_dim: int = 2, hidden: int = 256, num_layers: int = 3,
                 c_dim: int = 0, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not valid; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.out_dim = out_dim
        self.body = _mlp([z_dim + c_dim] + [hidden] * num_layers, ACTIVATIONS[activation])
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        x = torch.cat([z, c], dim=1) if self.c_dim else z
        return self.out(self.body(x))


class MLPDiscriminator(nn.Module):
    """(point, c, t) -> logit, with t entering through a :class:`TimestepConditioning` head.

    Args:
        in_dim: data dimension.
        hidden: width of the hidden layers.
        num_layers: number of hidden layers.
        c_dim: label width (0: unconditional).
        t_conditioning: raw | normalized | sinusoidal | separate | none.
        t_max: largest timestep (scale of the normalized encoding).
        cmap_dim: width of the projection head.
        mapping_layers: layers of the head's mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the head's mapping network.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 256, num_layers: int = 3, c_dim: int = 0,
                 t_conditioning: str = "raw", t_max: int = 1000, cmap_dim: int = 64,
                 mapping_layers: int = 2, mapping_lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.head = TimestepConditioning(
            mode=t_conditioning, c_dim=c_dim, cmap_dim=cmap_dim, t_max=t_max,
            num_layers=mapping_layers, lr_multiplier=mapping_lr_multiplier,
        )
        self.body = _mlp([in_dim] + [hidden] * num_layers, ACTIVATIONS["leaky_relu"])
        self.out = nn.Linear(hidden, self.head.in_features)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None,
                t: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.out(self.body(x)), c, t)

"""2-D toy distributions: the paper's 25 Gaussians, the 8-mode ring and the swiss roll.

Each dataset is a fixed set of ``size`` points drawn with ``seed`` (so that "the training set"
is well defined for data-space precision/recall), plus the mode centres and spread that the
mode-coverage metrics score samples against.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch.utils.data import Dataset

TOY_DATASETS = ("gaussians25", "ring8", "swissroll")
GRID_COORDS = (-4.0, -2.0, 0.0, 2.0, 4.0)  # the 25 means are this set squared
RING_RADIUS = 2.0
SWISSROLL_SCALE = 1.0 / 3.0  # brings the roll into roughly [-4, 4]^2 like the other sets


class ToyDataset(Dataset):
    """A 2-D point set; items are ``(x [2], c [0])``, like image datasets' ``(x, c)``.

    Args:
        name: gaussians25 | ring8 | swissroll.
        size: number of points in the training set.
        std: spread of each mode (gaussians25, ring8) or of the roll's noise (swissroll).
        seed: seed of the point set.
    """

    c_dim = 0
    has_labels = False
    xflip = False

    def __init__(self, name: str = "gaussians25", size: int = 100_000, std: float = 0.05,
                 seed: int = 0) -> None:
        if name not in TOY_DATASETS:
            raise ValueError(f"dataset name={name!r} is not valid; choose one of {TOY_DATASETS}")
        if size < 1:
            raise ValueError(f"size={size} must be >= 1")
        if std <= 0:
            raise ValueError(f"std={std} must be > 0")
        self.name = name
        self.std = float(std)
        self.seed = int(seed)
        gen = torch.Generator().manual_seed(seed)
        if name == "swissroll":
            self.modes = None
            self.inner_modes = None
            turns = 1.5 * math.pi * (1 + 2 * torch.rand(size, generator=gen))
            roll = torch.stack([turns * turns.cos(), turns * turns.sin()], dim=1)
            self.points = roll * SWISSROLL_SCALE + std * torch.randn(size, 2, generator=gen)
        else:
            self.modes = toy_modes(name)
            self.inner_modes = inner_mode_mask(name)
            which = torch.randint(len(self.modes), (size,), generator=gen)
            self.points = self.modes[which] + std * torch.randn(size, 2, generator=gen)
        self.raw_size = size

    @property
    def fingerprint(self) -> str:
        key = f"{self.name}-{len(self)}-{self.std}-{self.seed}"
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.points[i], torch.zeros(0)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # Batched fetch: the DataLoader calls this instead of one __getitem__ per point.
        idx = torch.as_tensor(indices)
        return self.points[idx], torch.zeros(len(indices), 0)


def toy_modes(name: str) -> torch.Tensor:
    """Mode centres [M, 2] of a toy dataset with modes."""
    if name == "gaussians25":
        g = torch.tensor(GRID_COORDS)
        return torch.cartesian_prod(g, g)
    if name == "ring8":
        angles = torch.arange(8) * (2 * math.pi / 8)
        return RING_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)
    raise ValueError(f"dataset {name!r} has no modes")


def inner_mode_mask(name: str) -> torch.Tensor:
    """Which modes of ``toy_modes(name)`` lie inside the outer ring (bool [M]).

    On the 25-Gaussian grid these are the 9 modes with max(|x|, |y|) below the outer 16's; a G
    that spreads along the grid's border covers outer modes by crossing them and never these.
    The ring of 8 has none.
    """
    modes = toy_modes(name)
    if name == "ring8":
        return torch.zeros(len(modes), dtype=torch.bool)
    extent = modes.abs().amax(dim=1)
    return extent < extent.max() - 1e-6

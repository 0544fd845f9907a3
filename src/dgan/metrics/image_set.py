"""A fixed set of images standing in for the generator (``evaluate images=DIR``).

The metrics take their fakes from ``feature_stats.generate_uint8``; when ``opts.G`` has a
``uint8_images`` method, fake ``i`` is image ``i`` of the set instead of ``G(z_i, c_i)``. So the
metric code (extractors, cached real statistics, formulas) is the same for a checkpoint and for
a folder of images another program wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class ImageSetGenerator(nn.Module):
    """Images of a dataset (folder or zip) served by index, uint8 [N, C, H, W].

    Args:
        images: an image dataset with ``get_uint8(i)``, ``resolution`` and ``num_channels``
            (e.g. :class:`dgan.data.images.ImageDataset` without x-flips).
        source: how to name the set in messages (its path).
    """

    z_dim = 0
    c_dim = 0

    def __init__(self, images: Any, source: str) -> None:
        super().__init__()
        self.images = images
        self.source = source
        self.img_resolution = int(images.resolution)
        self.img_channels = int(images.num_channels)

    def __len__(self) -> int:
        return len(self.images)

    def uint8_images(self, indices: Sequence[int]) -> torch.Tensor:
        """Images ``indices`` of the set, stacked."""
        if len(indices) and max(indices) >= len(self.images):
            raise ValueError(
                f"images={self.source} holds {len(self.images)} images but the metric needs "
                f"{max(indices) + 1}; use a metric with at most {len(self.images)} samples"
            )
        return torch.stack([self.images.get_uint8(int(i)) for i in indices])

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError(
            f"images={self.source} is a fixed set of images: it has no latents to generate from "
            "(only image metrics can use it)"
        )

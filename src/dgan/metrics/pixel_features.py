"""Pixel features: the images themselves, area-averaged to a small square, as an offline
feature space for any dataset (``fid_pixelsN_full``).

Inception and VGG16 need their weights fetched once, and the digits classifier knows only the
digits; a CPU-sized run on a folder of your own images still wants a curve. A coarse average of
the pixels carries colour and layout (not texture or detail), needs no weights, and reads any
number of channels and any resolution, so its Frechet distance tracks whether a short run moves
towards the data. It is no substitute for Inception's FID when judging quality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgan.metrics.feature_extractors import FeatureExtractor

PIXEL_EXTRACTOR = "pixels"
PIXEL_LAYER = "pixels"
# Side of the averaged image: 8x8 keeps the layout of a 64 px image in 64 dimensions per
# channel (192 for RGB), few enough for a covariance from a few thousand samples.
PIXEL_SIDE = 8
PIXEL_VERSION = 1
UINT8_MAX = 255.0


class PixelFeatures(nn.Module):
    """uint8 [N, C, H, W] in, ``(features [N, C * side * side],)`` in [0, 1] out."""

    def __init__(self, side: int = PIXEL_SIDE) -> None:
        super().__init__()
        self.side = int(side)
        # FeatureExtractor finds the device through the parameters; this one has no weights.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        x = images.to(self.anchor.device, torch.float32) / UINT8_MAX
        if x.shape[-1] != self.side or x.shape[-2] != self.side:
            x = F.adaptive_avg_pool2d(x, self.side)
        return (x.flatten(1),)


def pixel_extractor(device: torch.device | str = "cpu") -> FeatureExtractor:
    """The pixel extractor (layer ``"pixels"``); channels are kept as they are."""
    return FeatureExtractor(
        name=PIXEL_EXTRACTOR,
        key=f"{PIXEL_EXTRACTOR}{PIXEL_SIDE}-v{PIXEL_VERSION}",
        module=PixelFeatures().to(device).eval(),
        layers=(PIXEL_LAYER,),
        rgb=False,
    )

"""Frozen random projections of Projected GAN: cross-channel then cross-scale mixing.

The pretrained features are fed to the discriminators through fixed, randomly initialised
layers. Cross-channel mixing (CCM) is a 1x1 convolution per stage; cross-scale mixing (CSM) runs
from the coarsest stage to the finest, each fusion block adding the coarser (already mixed) level,
upsampling by two and mixing channels again. Being random and frozen, the projections spread the
feature information over all channels without letting the discriminator pick a subset to
overfit (Sauer et al., 2021, section 3.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_COUT = 64
NUM_STAGES = 4
# CCM widths with ``expand``: cout, 2 cout, 4 cout, 8 cout from the finest stage to the coarsest.
EXPAND_FACTOR = 2
CSM_UPSAMPLE = 2
# The reference fuses with align_corners=True (unlike the input resize).
CSM_ALIGN_CORNERS = True


class FeatureFusionBlock(nn.Module):
    """One cross-scale mixing step: add the coarser level, upsample by two, 1x1 convolution.

    Args:
        channels: input width (of both the level and the coarser level added to it).
        out_channels: output width.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, out_channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, coarser: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse ``x`` with the (already upsampled) ``coarser`` level, if any."""
        if coarser is not None:
            x = x + coarser
        x = F.interpolate(x, scale_factor=CSM_UPSAMPLE, mode="bilinear",
                          align_corners=CSM_ALIGN_CORNERS)
        return self.out_conv(x)


class RandomProjections(nn.Module):
    """Frozen CCM + CSM over the four feature maps of the pretrained network.

    Args:
        in_channels: widths of the four feature maps, finest first.
        cout: CCM width of the finest stage.
        expand: double the width at each coarser stage (the reference's ``expand=True``).
    """

    def __init__(
        self,
        in_channels: list[int] | tuple[int, ...],
        cout: int = DEFAULT_COUT,
        expand: bool = True,
    ) -> None:
        super().__init__()
        if len(in_channels) != NUM_STAGES:
            raise ValueError(f"expected {NUM_STAGES} stage widths, got {list(in_channels)}")
        factors = [EXPAND_FACTOR**i if expand else 1 for i in range(NUM_STAGES)]
        ccm_channels = [cout * f for f in factors]
        self.ccm = nn.ModuleList(
            nn.Conv2d(cin, cmid, kernel_size=1, bias=True)
            for cin, cmid in zip(in_channels, ccm_channels, strict=True)
        )
        # Each fusion block halves the width so that it matches the next finer CCM output; the
        # finest keeps its width (the reference does not expand there, to save channels).
        csm_channels = [ccm_channels[0]] + [c // EXPAND_FACTOR if expand else c
                                            for c in ccm_channels[1:]]
        self.csm = nn.ModuleList(
            FeatureFusionBlock(cmid, cout_)
            for cmid, cout_ in zip(ccm_channels, csm_channels, strict=True)
        )
        self.in_channels = list(in_channels)
        self.out_channels = csm_channels
        self.requires_grad_(False)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mixed maps, finest first; each is twice the resolution of its input stage."""
        mixed = [conv(f) for conv, f in zip(self.ccm, features, strict=True)]
        coarse_to_fine: list[torch.Tensor] = []
        coarser = None
        for i in reversed(range(NUM_STAGES)):
            coarser = self.csm[i](mixed[i], coarser)
            coarse_to_fine.append(coarser)
        return coarse_to_fine[::-1]

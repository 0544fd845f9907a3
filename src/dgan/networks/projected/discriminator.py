"""Diffusion-ProjectedGAN discriminator: frozen features, frozen projections, four mini Ds.

Pipeline: augment (training only) -> resize -> EfficientNet-Lite0 stages -> [feature noise at
``"first"``] -> random CCM + CSM -> [feature noise at ``"last"``] -> one small convolutional
discriminator per stage, logits concatenated. Diffusion-GAN noises the *feature maps* (not the
pixels) and, unlike Diffusion-StyleGAN2, does not tell D the timestep: the noise is a callable
handed to :meth:`ProjectedDiscriminator.forward`, and D never sees t.

Only the mini discriminators learn; the feature network and the projections are frozen, but
gradients still flow through them to the input images (G is trained through D).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dgan.networks.projected.feature_network import (
    DEFAULT_RESIZE,
    EfficientNetLite0Features,
    WeightsSpec,
)
from dgan.networks.projected.projections import (
    CSM_UPSAMPLE,
    DEFAULT_COUT,
    NUM_STAGES,
    RandomProjections,
)

FeatureNoise = Callable[[list[torch.Tensor]], list[torch.Tensor]]
DIFFUSION_POSITIONS = ("first", "last")

# Mini-discriminator width per feature-map resolution (the reference's channel table).
CHANNELS_AT_RESOLUTION = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16,
                          1024: 8}
# The reference sizes the mini discriminators as if the images were 256 px whatever the data,
# which its authors found to work best; the number of DownBlocks follows from it.
REFERENCE_RESOLUTION = 256
END_RESOLUTION = 8
DOWN_KERNEL, DOWN_STRIDE, DOWN_PADDING = 4, 2, 1
SEPARABLE_KERNEL, SEPARABLE_PADDING = 3, 1
POOL = 2
LOGIT_KERNEL = 4
LRELU_SLOPE = 0.2
CMAP_DIM = 64
EMBED_DIM = 128
RGB_CHANNELS = 3


def sn_conv2d(*args: object, **kwargs: object) -> nn.Module:
    """``nn.Conv2d`` with spectral normalisation."""
    return spectral_norm(nn.Conv2d(*args, **kwargs))


class SeparableConv2d(nn.Module):
    """Depthwise then pointwise convolution, both spectrally normalised, no bias.

    Args:
        in_channels: input width.
        out_channels: output width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = sn_conv2d(in_channels, in_channels, SEPARABLE_KERNEL,
                                   padding=SEPARABLE_PADDING, groups=in_channels, bias=False)
        self.pointwise = sn_conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DownBlock(nn.Module):
    """Halve the resolution: strided 4x4 conv (or separable 3x3 conv + average pool), BN, lrelu.

    Args:
        in_channels: input width.
        out_channels: output width.
        separable: use the separable variant (far fewer weights; used with StyleGAN2's G).
    """

    def __init__(self, in_channels: int, out_channels: int, separable: bool = False) -> None:
        super().__init__()
        if separable:
            layers: list[nn.Module] = [
                SeparableConv2d(in_channels, out_channels),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(LRELU_SLOPE),
                nn.AvgPool2d(POOL, POOL),
            ]
        else:
            layers = [
                sn_conv2d(in_channels, out_channels, DOWN_KERNEL, DOWN_STRIDE, DOWN_PADDING),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(LRELU_SLOPE),
            ]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def _nearest_table_resolution(resolution: int) -> int:
    # The reference snaps sizes that are not in the table to the nearest one (first on ties).
    return min(CHANNELS_AT_RESOLUTION, key=lambda r: abs(r - resolution))


class MiniDiscriminator(nn.Module):
    """DownBlocks from ``start_resolution`` to 8x8, then a 4x4 conv to a logit map.

    With ``c_dim > 0`` the last conv outputs ``cmap_dim`` channels that are projected onto a
    learned class embedding (projection discriminator), as in Projected GAN's SingleDiscCond.

    Args:
        in_channels: width of the feature map this discriminator reads.
        start_resolution: nominal resolution of that map (sets the number of DownBlocks).
        separable: use separable DownBlocks.
        c_dim: number of classes (0: unconditional).
        cmap_dim: width of the class projection.
        embed_dim: width of the class embedding.
        ndf: one width for every DownBlock instead of the per-resolution table (the
            reference's ``ndf``; None: the table).
    """

    def __init__(
        self,
        in_channels: int,
        start_resolution: int,
        separable: bool = False,
        c_dim: int = 0,
        cmap_dim: int = CMAP_DIM,
        embed_dim: int = EMBED_DIM,
        ndf: int | None = None,
    ) -> None:
        super().__init__()
        # A map already at (or below) the end resolution goes straight to the logit conv.
        res = max(_nearest_table_resolution(start_resolution), END_RESOLUTION)
        widths = dict(CHANNELS_AT_RESOLUTION) if ndf is None else dict.fromkeys(
            CHANNELS_AT_RESOLUTION, ndf)
        widths[res] = in_channels
        blocks = []
        while res > END_RESOLUTION:
            blocks.append(DownBlock(widths[res], widths[res // 2], separable=separable))
            res //= 2
        self.main = nn.Sequential(*blocks)
        self.c_dim = c_dim
        self.cmap_dim = cmap_dim
        out_channels = cmap_dim if c_dim else 1
        self.logits = sn_conv2d(widths[END_RESOLUTION], out_channels, LOGIT_KERNEL, bias=False)
        if c_dim:
            self.embed = nn.Embedding(c_dim, embed_dim)
            self.embed_proj = nn.Sequential(nn.Linear(embed_dim, cmap_dim),
                                            nn.LeakyReLU(LRELU_SLOPE))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logit map [N, 1, h, w]; ``c`` is one-hot [N, c_dim] (or class indices [N])."""
        out = self.logits(self.main(x))
        if not self.c_dim:
            return out
        if c is None:
            raise ValueError("a conditional discriminator needs labels c")
        labels = c.argmax(dim=1) if c.ndim == 2 else c.long()
        cmap = self.embed_proj(self.embed(labels))[:, :, None, None]
        return (out * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


class ProjectedDiscriminator(nn.Module):
    """Diffusion-ProjectedGAN's D(x, c): frozen EfficientNet-Lite0 + projections, 4 mini Ds.

    Args:
        c_dim: number of classes (0: unconditional); labels enter each mini D by projection.
        img_resolution: side of the input images (checked in forward).
        img_channels: 3, or 1 (grey images are repeated to 3 channels for the feature network).
        separable: separable DownBlocks (the reference's choice with a StyleGAN2 generator).
        diffusion_position: where ``feature_noise`` acts: ``"first"`` on the raw feature maps,
            ``"last"`` after the projections.
        feature_weights: weights of the feature network (``"package"``, ``"timm"``, a path or
            ``None``; see :class:`EfficientNetLite0Features`).
        augment: differentiable image augmentation applied first, in training mode only.
        resize: smaller images are upsampled to this side first (``None``: never).
        cout: width of the finest projection.
        expand: widen coarser projections (``cout`` x 1, 2, 4, 8).
        cmap_dim: width of the class projection of each mini D.
        embed_dim: width of the class embedding of each mini D.
        disc_resolution: image side the mini discriminators are sized for (their number of
            DownBlocks); the reference fixes 256 whatever the data, which fits inputs resized to
            224. With a smaller ``resize`` (a CPU run) give about ``resize`` here, or the
            finest maps are halved below the 4x4 logit kernel.
        ndf: one width for every DownBlock instead of the reference's table (None: the table).
    """

    def __init__(
        self,
        c_dim: int = 0,
        img_resolution: int = 32,
        img_channels: int = RGB_CHANNELS,
        separable: bool = False,
        diffusion_position: str = "first",
        feature_weights: WeightsSpec = "package",
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        resize: int | None = DEFAULT_RESIZE,
        cout: int = DEFAULT_COUT,
        expand: bool = True,
        cmap_dim: int = CMAP_DIM,
        embed_dim: int = EMBED_DIM,
        disc_resolution: int = REFERENCE_RESOLUTION,
        ndf: int | None = None,
    ) -> None:
        super().__init__()
        if diffusion_position not in DIFFUSION_POSITIONS:
            raise ValueError(f"diffusion_position={diffusion_position!r} is not one of "
                             f"{DIFFUSION_POSITIONS}")
        if img_channels not in (1, RGB_CHANNELS):
            raise ValueError(f"img_channels must be 1 or {RGB_CHANNELS}, got {img_channels}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.diffusion_position = diffusion_position
        self.augment = augment
        self.feature_network = EfficientNetLite0Features(weights=feature_weights, resize=resize)
        self.projections = RandomProjections(self.feature_network.channels, cout=cout,
                                             expand=expand)
        starts = [disc_resolution // s * CSM_UPSAMPLE for s in self.feature_network.strides]
        self.mini_discs = nn.ModuleList(
            MiniDiscriminator(cin, res, separable=separable, c_dim=c_dim, cmap_dim=cmap_dim,
                              embed_dim=embed_dim, ndf=ndf)
            for cin, res in zip(self.projections.out_channels, starts, strict=True)
        )

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters an optimizer should see: those of the mini discriminators."""
        return self.mini_discs.parameters()

    def requires_grad_(self, requires_grad: bool = True) -> ProjectedDiscriminator:
        """Toggle the mini discriminators only; the frozen parts stay frozen.

        Training loops switch a whole network on and off per phase; without this override that
        would unfreeze the pretrained features and the random projections.
        """
        for p in self.trainable_parameters():
            p.requires_grad_(requires_grad)
        return self

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        feature_noise: FeatureNoise | None = None,
    ) -> torch.Tensor:
        """Logits [N, K] of images ``x`` [N, C, R, R] in [-1, 1], K summed over the 4 scales.

        ``feature_noise`` maps the list of four feature maps to four (noisy) maps of the same
        shapes; it runs at ``diffusion_position``.
        """
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images [N, {', '.join(map(str, expected))}], "
                             f"got {list(x.shape)}")
        if self.augment is not None and self.training:
            x = self.augment(x)
        if self.img_channels == 1:
            x = x.repeat(1, RGB_CHANNELS, 1, 1)
        features = self.feature_network(x)
        if feature_noise is not None and self.diffusion_position == "first":
            features = _apply_noise(feature_noise, features)
        features = self.projections(features)
        if feature_noise is not None and self.diffusion_position == "last":
            features = _apply_noise(feature_noise, features)
        logits = [d(f, c).flatten(1) for d, f in zip(self.mini_discs, features, strict=True)]
        return torch.cat(logits, dim=1)


def _apply_noise(feature_noise: FeatureNoise, features: list[torch.Tensor]) -> list[torch.Tensor]:
    noisy = list(feature_noise(features))
    if len(noisy) != NUM_STAGES or any(
        a.shape != b.shape for a, b in zip(noisy, features, strict=True)
    ):
        raise ValueError("feature_noise must return the four maps with unchanged shapes")
    return noisy

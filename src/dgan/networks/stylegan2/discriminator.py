"""Timestep-dependent StyleGAN2 discriminator (Diffusion-GAN), plain PyTorch.

The convolutional trunk is StyleGAN2-ADA's discriminator and never sees t. The timestep (and
the class label) enter only through the projection head, a
:class:`~dgan.networks.conditioning.TimestepConditioning`: its mapping network turns (c, t) into a
vector ``cmap`` and the logit is ``sum(features * cmap) / sqrt(cmap_dim)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgan.networks.conditioning import OutputLayer, TimestepConditioning
from dgan.networks.layers import EqualLinear
from dgan.networks.stylegan2.generator import (
    REDUCED_DTYPE,
    REDUCED_PRECISION_DEVICES,
    reduced_precision_resolution,
)
from dgan.networks.stylegan2.layers import Conv2dLayer, MinibatchStdLayer
from dgan.networks.stylegan2.resample import DEFAULT_FILTER, downsample2d, setup_filter

D_ARCHITECTURES = ("orig", "skip", "resnet")


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: (FromRGB,) conv, downsampling conv.

    Args:
        in_channels: channels coming from the previous block (0 for the first block).
        tmp_channels: channels inside the block.
        out_channels: channels passed to the next (half-resolution) block.
        resolution: input resolution of this block.
        img_channels: number of image channels.
        architecture: ``orig`` | ``skip`` | ``resnet``.
        resample_filter: taps of the FIR filter used for downsampling.
        conv_clamp: clamp conv outputs to +-this value (None: no clamping).
        reduced_precision: whether this block may run in reduced precision.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        resample_filter: tuple[float, ...] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        reduced_precision: bool = False,
    ) -> None:
        super().__init__()
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not one of {D_ARCHITECTURES}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.architecture = architecture
        self.reduced_precision = reduced_precision
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, kernel_size=1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            kernel_size=3,
            activation="lrelu",
            down=2,
            resample_filter=resample_filter,
            conv_clamp=conv_clamp,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                down=2,
                resample_filter=resample_filter,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features at half this block's resolution, and the downsampled image (skip only)."""
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img.to(dtype))
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            # sqrt(0.5) on both branches keeps the variance of their sum unchanged.
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4 epilogue: (FromRGB,) minibatch stddev, conv, fully connected, output layer.

    Args:
        in_channels: channels at 4x4.
        head: projection head that decides the output width (``head.in_features``).
        resolution: resolution of the epilogue (4).
        img_channels: number of image channels.
        architecture: ``orig`` | ``skip`` | ``resnet``.
        mbstd_group_size: group size of the minibatch-stddev layer (None: whole batch).
        mbstd_num_channels: channels appended by the minibatch-stddev layer (0: no layer).
        conv_clamp: clamp the conv output to +-this value (None: no clamping).
    """

    def __init__(
        self,
        in_channels: int,
        head: TimestepConditioning,
        resolution: int = 4,
        img_channels: int = 3,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation="lrelu")
        self.mbstd = (
            MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels,
            in_channels,
            kernel_size=3,
            activation="lrelu",
            conv_clamp=conv_clamp,
        )
        self.fc = EqualLinear(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = OutputLayer(in_channels, head)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None) -> torch.Tensor:
        """Features [N, head.in_features] from 4x4 features ``x`` (always in fp32)."""
        x = x.float()
        if self.architecture == "skip":
            x = x + self.fromrgb(img.float())
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)


class Discriminator(nn.Module):
    """StyleGAN2 discriminator D(img, c, t) with a timestep-conditioned projection head.

    Args:
        c_dim: class-label width (0: unconditional).
        img_resolution: input resolution (power of two >= 8).
        img_channels: number of image channels.
        architecture: ``orig`` | ``skip`` | ``resnet``.
        channel_base: channels at resolution r are min(channel_base // r, channel_max).
        channel_max: maximum number of channels of any block.
        num_fp16_res: number of top resolutions that may run in reduced precision.
        conv_clamp: clamp conv outputs to +-this value (None: no clamping).
        mbstd_group_size: group size of the minibatch-stddev layer (None: whole batch).
        mbstd_num_channels: channels appended by the minibatch-stddev layer (0: no layer).
        cmap_dim: width of the projection (None: the channels at 4x4, as in the reference).
        t_conditioning: encoding of t: ``raw`` | ``normalized`` | ``sinusoidal`` |
            ``separate`` | ``none`` (:mod:`dgan.networks.conditioning`).
        t_max: largest timestep (the scale of ``normalized``).
        mapping_layers: layers of the head's mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the head's mapping network.
        t_embed_bias_init: initial bias of the head's (c, t) embedding (None: the head's default).
        use_reduced_precision: run the top ``num_fp16_res`` resolutions in bf16 on CUDA.
    """

    def __init__(
        self,
        c_dim: int = 0,
        img_resolution: int = 32,
        img_channels: int = 3,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        cmap_dim: int | None = None,
        t_conditioning: str = "raw",
        t_max: int = 1000,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        t_embed_bias_init: float | None = None,
        use_reduced_precision: bool = False,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution))
        if img_resolution < 8 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution={img_resolution} must be a power of two >= 8")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.use_reduced_precision = use_reduced_precision
        self.reduced_precision_devices = REDUCED_PRECISION_DEVICES
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
        reduced_res = reduced_precision_resolution(img_resolution, num_fp16_res)
        self.blocks = nn.ModuleDict()
        for res in self.block_resolutions:
            self.blocks[f"b{res}"] = DiscriminatorBlock(
                in_channels=channels[res] if res < img_resolution else 0,
                tmp_channels=channels[res],
                out_channels=channels[res // 2],
                resolution=res,
                img_channels=img_channels,
                architecture=architecture,
                conv_clamp=conv_clamp,
                reduced_precision=num_fp16_res > 0 and res >= reduced_res,
            )
        self.head = TimestepConditioning(
            mode=t_conditioning,
            c_dim=c_dim,
            cmap_dim=channels[4] if cmap_dim is None else cmap_dim,
            t_max=t_max,
            num_layers=mapping_layers,
            lr_multiplier=mapping_lr_multiplier,
            embed_bias_init=t_embed_bias_init,
        )
        # Channels of the 4x4 features the epilogue receives (what InsGen's heads read).
        self.feature_channels = channels[4]
        self.b4 = DiscriminatorEpilogue(
            channels[4],
            self.head,
            resolution=4,
            img_channels=img_channels,
            architecture=architecture,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Logits [N, 1] for images [N, C, R, R], labels [N, c_dim] and timesteps [N] or [N, 1].

        ``t`` None means clean images (t = 0). ``update_emas`` is accepted for API
        compatibility; D tracks no averages.
        """
        del update_emas
        x, img = self.trunk(img)
        features = self.b4(x, img)
        return self.head(features, c, t)

    def trunk(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The convolutional blocks: features [N, feature_channels, 4, 4] before the epilogue,
        and the downsampled image (skip architecture only, else None).

        The trunk sees neither c nor t, so its features are those of any timestep.
        """
        reduced_ok = (
            self.use_reduced_precision and img.device.type in self.reduced_precision_devices
        )
        x = None
        for block in self.blocks.values():
            dtype = REDUCED_DTYPE if reduced_ok and block.reduced_precision else torch.float32
            x, img = block(x, img, dtype=dtype)
        return x, img

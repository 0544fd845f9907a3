"""StyleGAN2 generator (config F as used by StyleGAN2-ADA and Diffusion-GAN), plain PyTorch.

z (+ class label) -> mapping MLP -> w, broadcast to ``num_ws`` per-layer latents -> synthesis
network from a learned 4x4 constant, one block per resolution. With the default ``skip``
architecture every block adds its ToRGB output to the FIR-upsampled image of the previous one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgan.networks.layers import MappingMLP
from dgan.networks.stylegan2.layers import Conv2dLayer, SynthesisLayer, ToRGB
from dgan.networks.stylegan2.resample import DEFAULT_FILTER, setup_filter, upsample2d

G_ARCHITECTURES = ("orig", "skip", "resnet")
# bf16 rather than the reference's fp16: same range as fp32, so no loss scaler is needed.
REDUCED_DTYPE = torch.bfloat16
# Device types on which reduced precision is used when enabled: on CPU bf16 convolutions are
# slower than fp32 and gain nothing, so CPU always runs fp32. Tests widen this per instance.
REDUCED_PRECISION_DEVICES = ("cuda",)


def block_resolutions(img_resolution: int) -> list[int]:
    """Resolutions of the synthesis blocks: 4, 8, ..., img_resolution."""
    log2 = int(math.log2(img_resolution))
    if img_resolution < 4 or 2**log2 != img_resolution:
        raise ValueError(f"img_resolution={img_resolution} must be a power of two >= 4")
    return [2**i for i in range(2, log2 + 1)]


def reduced_precision_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Smallest resolution run in reduced precision (the top ``num_fp16_res``, never below 8)."""
    return max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)


class MappingNetwork(nn.Module):
    """Mapping z (+ c) -> ws with a tracked average w for the truncation trick.

    Args:
        z_dim: latent width.
        c_dim: class-label width (0: unconditional).
        w_dim: intermediate latent width.
        num_ws: number of per-layer latents to broadcast to.
        num_layers: fully connected layers (8 in config F, 2 in the cifar preset).
        lr_multiplier: learning-rate multiplier of the layers.
        w_avg_beta: decay of the running average of w.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        self.net = MappingMLP(
            z_dim=z_dim,
            c_dim=c_dim,
            out_dim=w_dim,
            num_layers=num_layers,
            lr_multiplier=lr_multiplier,
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Latents ``z`` [N, z_dim] and labels ``c`` [N, c_dim] -> ws [N, num_ws, w_dim]."""
        x = self.net(z, c if self.c_dim else None)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
            x = torch.cat([truncated, x[:, cutoff:]], dim=1)
        return x


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (upsampling conv,) conv, (ToRGB).

    Args:
        in_channels: channels coming from the previous block (0 for the 4x4 constant block).
        out_channels: channels of this block.
        w_dim: intermediate latent width.
        resolution: output resolution of this block.
        img_channels: number of image channels.
        is_last: whether this is the final (highest-resolution) block.
        architecture: ``orig`` | ``skip`` | ``resnet``.
        resample_filter: taps of the FIR filter used for upsampling.
        conv_clamp: clamp conv outputs to +-this value (None: no clamping).
        reduced_precision: whether this block may run in reduced precision.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: tuple[float, ...] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        reduced_precision: bool = False,
    ) -> None:
        super().__init__()
        if architecture not in G_ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not one of {G_ARCHITECTURES}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.is_last = is_last
        self.architecture = architecture
        self.reduced_precision = reduced_precision
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
            )

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        dtype: torch.dtype = torch.float32,
        noise_mode: str = "random",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features and running image at this resolution; ``ws`` [N, num_conv+num_torgb, w]."""
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            # sqrt(0.5) on both branches keeps the variance of their sum unchanged.
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            # The image is accumulated in fp32 whatever precision the features run in.
            y = self.torgb(x, next(w_iter)).float()
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Synthesis network: ws [N, num_ws, w_dim] -> images [N, C, R, R].

    Args:
        w_dim: intermediate latent width.
        img_resolution: output resolution (power of two >= 4).
        img_channels: number of image channels.
        channel_base: channels at resolution r are min(channel_base // r, channel_max).
        channel_max: maximum number of channels of any block.
        num_fp16_res: number of top resolutions that may run in reduced precision.
        conv_clamp: clamp conv outputs to +-this value (None: no clamping).
        architecture: ``orig`` | ``skip`` | ``resnet``.
        resample_filter: taps of the FIR filter used for upsampling.
        use_reduced_precision: run the top ``num_fp16_res`` resolutions in bf16 on CUDA.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        architecture: str = "skip",
        resample_filter: tuple[float, ...] = DEFAULT_FILTER,
        use_reduced_precision: bool = False,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.use_reduced_precision = use_reduced_precision
        self.reduced_precision_devices = REDUCED_PRECISION_DEVICES
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = block_resolutions(img_resolution)
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        reduced_res = reduced_precision_resolution(img_resolution, num_fp16_res)
        self.num_ws = 0
        self.blocks = nn.ModuleDict()
        for res in self.block_resolutions:
            block = SynthesisBlock(
                in_channels=channels[res // 2] if res > 4 else 0,
                out_channels=channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == img_resolution,
                architecture=architecture,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                reduced_precision=num_fp16_res > 0 and res >= reduced_res,
            )
            self.num_ws += block.num_conv
            if block.is_last:
                self.num_ws += block.num_torgb
            self.blocks[f"b{res}"] = block

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Images [N, C, R, R] from per-layer latents ``ws`` [N, num_ws, w_dim].

        ``update_emas`` is accepted for API compatibility; synthesis tracks no averages.
        """
        del update_emas
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.float()
        reduced_ok = self.use_reduced_precision and ws.device.type in self.reduced_precision_devices
        x = img = None
        w_idx = 0
        for block in self.blocks.values():
            # A block's ToRGB shares its latent with the next block's first conv.
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            dtype = REDUCED_DTYPE if reduced_ok and block.reduced_precision else torch.float32
            x, img = block(x, img, block_ws, dtype=dtype, noise_mode=noise_mode)
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: ``mapping`` network + ``synthesis`` network.

    ``G.mapping(z, c, ...)`` and ``G.synthesis(ws, ...)`` are the submodules, as in the reference,
    so style mixing and truncation can be done by the caller.

    Args:
        z_dim: latent width.
        c_dim: class-label width (0: unconditional).
        w_dim: intermediate latent width.
        img_resolution: output resolution (power of two >= 4).
        img_channels: number of image channels.
        channel_base: channels at resolution r are min(channel_base // r, channel_max).
        channel_max: maximum number of channels of any block.
        num_fp16_res: number of top resolutions that may run in reduced precision.
        conv_clamp: clamp conv outputs to +-this value (None: no clamping).
        mapping_layers: fully connected layers in the mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the mapping network.
        w_avg_beta: decay of the tracked average w used for truncation.
        architecture: synthesis architecture ``orig`` | ``skip`` | ``resnet``.
        use_reduced_precision: run the top ``num_fp16_res`` resolutions in bf16 on CUDA.
        fused_modconv: modulated convolutions as one grouped convolution of per-sample kernels
            instead of input modulation (slower for training; see ``modulated_conv2d``).
    """

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 32,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        architecture: str = "skip",
        use_reduced_precision: bool = False,
        fused_modconv: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            conv_clamp=conv_clamp,
            architecture=architecture,
            use_reduced_precision=use_reduced_precision,
        )
        self.fused_modconv = fused_modconv
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_ws=self.num_ws,
            num_layers=mapping_layers,
            lr_multiplier=mapping_lr_multiplier,
            w_avg_beta=w_avg_beta,
        )

    @property
    def use_reduced_precision(self) -> bool:
        """Whether the top resolutions run in bf16 (on CUDA only; CPU always runs fp32)."""
        return self.synthesis.use_reduced_precision

    @use_reduced_precision.setter
    def use_reduced_precision(self, value: bool) -> None:
        self.synthesis.use_reduced_precision = bool(value)

    @property
    def fused_modconv(self) -> bool:
        """Whether modulated convolutions run as grouped convolutions of per-sample kernels."""
        return self._fused_modconv

    @fused_modconv.setter
    def fused_modconv(self, value: bool) -> None:
        self._fused_modconv = bool(value)
        for layer in self.synthesis.modules():
            if isinstance(layer, (SynthesisLayer, ToRGB)):
                layer.fused_modconv = self._fused_modconv

    @property
    def w_avg(self) -> torch.Tensor:
        """Tracked average of w [w_dim] (the truncation centre)."""
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Images [N, C, R, R] from latents ``z`` [N, z_dim] and labels ``c`` [N, c_dim].

        ``update_emas`` updates the tracked ``w_avg`` (do it in G's training step only).
        """
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)

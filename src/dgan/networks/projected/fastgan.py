"""FastGAN generator (Liu et al., 2021) in Projected GAN's variant, with FastGAN-lite.

A 4x4 seed from a transposed convolution, then nearest-neighbour upsampling blocks with GLU
activations, and skip-layer excitation (SLE): a low-resolution map gates the channels of a
high-resolution one (4 -> 64, 8 -> 128, 16 -> 256, 32 -> 512 px). FastGAN uses two convolutions
per upsampling block with per-layer noise; FastGAN-lite one convolution and no noise. Every
convolution is spectrally normalised.

Layout parity with the reference: the blocks up to 256 px and their SLE modules are built at
every resolution, also where the forward pass stops earlier (32, 64, 128 px), so the parameter
counts match the reference networks; the unused ones just never receive gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# Channel multiplier of ngf per resolution (the reference's table).
CHANNEL_MULTIPLIER = {2: 16, 4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25,
                      1024: 0.125}
SEED_RESOLUTION = 4
# The seed layer is sized by the table's entry at half the seed resolution.
SEED_TABLE_KEY = 2
# Resolutions whose blocks are always built (parity with the reference layout).
ALWAYS_BUILT = (8, 16, 32, 64, 128, 256)
SUPPORTED_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
# SLE pairs: (source resolution, gated resolution).
SLE_PAIRS = ((4, 64), (8, 128), (16, 256), (32, 512))
SLE_POOL = 4
UP_KERNEL, UP_PADDING = 3, 1
UPSAMPLE = 2
# GLU gates half of a map's channels with the other half, so convolutions feed it 2x widths.
GLU_SPLIT = 2
BIG_DEPTH, LITE_DEPTH = 2, 1
TO_RGB_KERNEL, TO_RGB_PADDING = 3, 1
NOISE_MODES = ("random", "const", "none")
# Seed of the fixed noise maps of noise_mode="const".
CONST_NOISE_SEED = 0
NORM_EPS = 1e-8


def sn_conv2d(*args: object, **kwargs: object) -> nn.Module:
    """``nn.Conv2d`` with spectral normalisation."""
    return spectral_norm(nn.Conv2d(*args, **kwargs))


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = NORM_EPS) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (latents onto the hypersphere, as PGGAN)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class NoiseInjection(nn.Module):
    """Add one-channel Gaussian noise scaled by a learned scalar (initially zero).

    Args:
        seed: seed of this layer's fixed noise map for ``noise_mode="const"``.
    """

    def __init__(self, seed: int = CONST_NOISE_SEED) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seed = seed

    def forward(self, x: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if noise_mode == "none":
            return x
        n, _, h, w = x.shape
        if noise_mode == "const":
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(1, 1, h, w, generator=gen).to(x)
        else:
            noise = torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters, then a per-sample gain and bias from a condition.

    Args:
        channels: width of the normalised map.
        cond_dim: width of the condition vector.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = spectral_norm(nn.Linear(cond_dim, channels))
        self.bias = spectral_norm(nn.Linear(cond_dim, channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # The gain is centred on one so that a zero condition leaves plain BatchNorm.
        gain = 1 + self.gain(cond)[:, :, None, None]
        return self.norm(x) * gain + self.bias(cond)[:, :, None, None]


class _Norm(nn.Module):
    """BatchNorm2d, or its conditional version when ``cond_dim > 0``.

    Args:
        channels: width of the normalised map.
        cond_dim: width of the condition (0: unconditional BatchNorm2d).
    """

    def __init__(self, channels: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.bn = (ConditionalBatchNorm2d(channels, cond_dim) if cond_dim
                   else nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.bn(x, cond) if self.cond_dim else self.bn(x)


class UpBlock(nn.Module):
    """Upsample by two, then one (lite) or two (full) conv -> [noise] -> BN -> GLU stages.

    GLU halves the channels, so each convolution outputs twice ``out_channels``.

    Args:
        in_channels: input width.
        out_channels: output width.
        big: two convolutions with noise injection (FastGAN) instead of one (FastGAN-lite).
        cond_dim: width of the class condition for conditional BatchNorm (0: none).
        noise_seed: seed of the first noise layer's fixed map (``noise_mode="const"``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        big: bool = True,
        cond_dim: int = 0,
        noise_seed: int = CONST_NOISE_SEED,
    ) -> None:
        super().__init__()
        depth = BIG_DEPTH if big else LITE_DEPTH
        widths = [in_channels] + [out_channels] * (depth - 1)
        self.convs = nn.ModuleList(
            sn_conv2d(w, GLU_SPLIT * out_channels, UP_KERNEL, padding=UP_PADDING, bias=False)
            for w in widths
        )
        self.noises = nn.ModuleList(NoiseInjection(noise_seed + i) for i in range(depth)) if big \
            else None
        self.norms = nn.ModuleList(_Norm(GLU_SPLIT * out_channels, cond_dim) for _ in range(depth))

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, noise_mode: str = "random"
    ) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=UPSAMPLE, mode="nearest")
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = conv(x)
            if self.noises is not None:
                x = self.noises[i](x, noise_mode)
            x = F.glu(norm(x, cond), dim=1)
        return x


class SkipLayerExcitation(nn.Module):
    """Gate the channels of a large map with a squeeze of a small one (FastGAN's SLE).

    Args:
        small_channels: width of the low-resolution source map.
        big_channels: width of the gated high-resolution map.
    """

    def __init__(self, small_channels: int, big_channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(SLE_POOL),
            sn_conv2d(small_channels, big_channels, SLE_POOL, bias=False),
            nn.SiLU(),
            sn_conv2d(big_channels, big_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.main(small)


class FastGANGenerator(nn.Module):
    """FastGAN / FastGAN-lite generator G(z, c) with skip-layer excitation.

    Args:
        z_dim: latent width.
        ngf: base width; the widths per resolution are ``ngf`` times the reference's table.
        img_resolution: output side, one of 32, 64, 128, 256, 512, 1024.
        img_channels: output channels.
        lite: FastGAN-lite (one convolution per upsampling block, no noise).
        c_dim: number of classes (0: unconditional); a class embedding of width ``z_dim``
            drives conditional BatchNorm in every upsampling block.
        tanh: squash the output into [-1, 1]; the Projected GAN reference returns the raw
            convolution output (``tanh=False`` reproduces it).
    """

    def __init__(
        self,
        z_dim: int = 256,
        ngf: int = 128,
        img_resolution: int = 256,
        img_channels: int = 3,
        lite: bool = False,
        c_dim: int = 0,
        tanh: bool = True,
    ) -> None:
        super().__init__()
        if img_resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"img_resolution must be one of {SUPPORTED_RESOLUTIONS}, "
                             f"got {img_resolution}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = 0
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.lite = lite
        self.tanh = tanh
        nfc = {k: int(v * ngf) for k, v in CHANNEL_MULTIPLIER.items()}
        cond_dim = z_dim if c_dim else 0
        self.embed = nn.Embedding(c_dim, z_dim) if c_dim else None

        seed_channels = nfc[SEED_TABLE_KEY]
        self.init = spectral_norm(
            nn.ConvTranspose2d(z_dim, GLU_SPLIT * seed_channels, SEED_RESOLUTION, stride=1,
                               padding=0, bias=False)
        )
        self.init_norm = nn.BatchNorm2d(GLU_SPLIT * seed_channels)

        resolutions = [r for r in CHANNEL_MULTIPLIER if SEED_RESOLUTION < r]
        built = [r for r in resolutions if r in ALWAYS_BUILT or r <= img_resolution]
        self.up = nn.ModuleDict(
            (str(r), UpBlock(nfc[r // 2], nfc[r], big=not lite, cond_dim=cond_dim,
                             noise_seed=CONST_NOISE_SEED + BIG_DEPTH * i))
            for i, r in enumerate(built)
        )
        self.sle = nn.ModuleDict(
            (str(big), SkipLayerExcitation(nfc[small], nfc[big]))
            for small, big in SLE_PAIRS
            if big in ALWAYS_BUILT or big <= img_resolution
        )
        self.to_rgb = sn_conv2d(nfc[img_resolution], img_channels, TO_RGB_KERNEL,
                                padding=TO_RGB_PADDING, bias=True)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Images [N, C, R, R] from latents ``z`` [N, z_dim] and one-hot labels ``c``.

        ``truncation_cutoff`` and ``update_emas`` are accepted for API compatibility with the
        StyleGAN2 generator; FastGAN has no mapping network, so only ``truncation_psi=1``.
        """
        del truncation_cutoff, update_emas
        if truncation_psi != 1:
            raise ValueError("FastGAN has no mapping network: truncation_psi must be 1")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode={noise_mode!r} is not one of {NOISE_MODES}")
        cond = None
        if self.embed is not None:
            if c is None:
                raise ValueError("a conditional generator needs labels c")
            cond = self.embed(c.argmax(dim=1) if c.ndim == 2 else c.long())

        x = normalize_2nd_moment(z)[:, :, None, None]
        x = F.glu(self.init_norm(self.init(x)), dim=1)
        feats = {SEED_RESOLUTION: x}
        res = SEED_RESOLUTION
        sle_sources = {big: small for small, big in SLE_PAIRS}
        while res < self.img_resolution:
            res *= UPSAMPLE
            x = self.up[str(res)](x, cond, noise_mode)
            if str(res) in self.sle:
                x = self.sle[str(res)](feats[sle_sources[res]], x)
            feats[res] = x
        img = self.to_rgb(x)
        return torch.tanh(img) if self.tanh else img

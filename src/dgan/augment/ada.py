"""The adaptive discriminator augmentation pipeline of StyleGAN2-ADA (Karras et al., 2020).

Each op fires per sample with probability ``p * multiplier``; ``p`` is the overfitting knob
that :class:`dgan.callbacks.adaptive_probability.AdaptiveProbability` moves during training
(ADA's heuristic, or the diffusion's p). Three groups, in this order:

* pixel blitting: x-flip, rotation by multiples of 90 degrees, integer translation;
* general geometric: isotropic scaling, rotation, anisotropic scaling, rotation, fractional
  translation;
* colour: brightness, contrast, luma flip, hue rotation, saturation.

The geometric ops of a sample are composed into one 3x3 matrix (output pixel -> input pixel,
in pixel units about the image centre) and executed in one resampling pass: reflection padding
wide enough for every sampled point, 2x upsampling with a low-pass filter, bilinear
``grid_sample`` on the fine grid, then the same filter and 2x decimation. Nothing outside the
image is ever read as zero, so the borders do not darken, and the filtering keeps the warp from
aliasing. The colour ops are composed into one 4x4 affine matrix per sample on RGB.

Samples for which no op fired come back bit for bit, so ``p = 0`` is the exact identity. The
random draws do not depend on ``p`` (a draw is made for every enabled op whether it fires or
not), so two values of p see the same parameters and nested sets of augmented samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dgan.core.seeded_module import SeededModule

BLIT_OPS = ("xflip", "rotate90", "xint")
GEOMETRIC_OPS = ("scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = BLIT_OPS + GEOMETRIC_OPS + COLOR_OPS

# Preset letters as in StyleGAN2-ADA: b(lit), g(eometric), c(olour); any combination, in order.
PRESET_GROUPS = {"b": BLIT_OPS, "g": GEOMETRIC_OPS, "c": COLOR_OPS}
PRESET_ALIASES = {"blit": "b", "geom": "g", "color": "c"}
DEFAULT_PRESET = "bgc"

# The strengths of the StyleGAN2-ADA defaults.
DEFAULT_XINT_MAX = 0.125
DEFAULT_SCALE_STD = 0.2
DEFAULT_ROTATE_MAX = 1.0
DEFAULT_ANISO_STD = 0.2
DEFAULT_XFRAC_STD = 0.125
DEFAULT_BRIGHTNESS_STD = 0.2
DEFAULT_CONTRAST_STD = 0.5
DEFAULT_HUE_MAX = 1.0
DEFAULT_SATURATION_STD = 1.0

# Resampling filter: Kaiser-windowed sinc with its cutoff at the coarse grid's Nyquist rate.
# With 20 taps and beta 6, the up-and-down response stays within 0.2% of 1 up to 60% of the
# Nyquist rate, and what lies beyond 70% of the fine grid's band is attenuated by 60 dB (no
# visible aliasing from the warp). An even length puts the fine samples at the quarter-pixel
# positions that 2x resampling needs.
DEFAULT_FILTER_TAPS = 20
DEFAULT_FILTER_BETA = 6.0
UPSAMPLING = 2
_MIN_FILTER_TAPS = 4
# Half the fine-grid sampling rate, per fine sample: the cutoff of a 2x interpolation filter.
_HALF_BAND = 0.5

_COLOR_CHANNELS = 3
# The luma axis of RGB: brightness moves along it, hue rotates about it.
_LUMA_AXIS = (1.0, 1.0, 1.0)
# cos and sin of k * 90 degrees, exact, so that k = 0 gives an exact identity matrix.
_QUARTER_COS = (1.0, 0.0, -1.0, 0.0)
_QUARTER_SIN = (0.0, 1.0, 0.0, -1.0)
_QUARTER_TURNS = 4
_FLIP_CHOICES = 2


def preset_multipliers(preset: str) -> dict[str, float]:
    """Multipliers of a preset: 1 for the ops of its groups ('b', 'g', 'c', 'bg', 'bgc', ...)."""
    letters = PRESET_ALIASES.get(preset, preset)
    if (
        not letters
        or any(ch not in PRESET_GROUPS for ch in letters)
        or len(set(letters)) != len(letters)
    ):
        raise ValueError(
            f"unknown AdaptiveAugment preset {preset!r}; use a combination of the letters "
            f"{', '.join(PRESET_GROUPS)} (e.g. 'bgc', 'bg', 'b') or one of "
            f"{', '.join(PRESET_ALIASES)}"
        )
    chosen = {op for ch in letters for op in PRESET_GROUPS[ch]}
    return {op: float(op in chosen) for op in OPS}


class AdaptiveAugment(SeededModule):
    """StyleGAN2-ADA's augmentation pipeline ('bgc' by default), differentiable in the images.

    Args:
        p: initial probability scale; op k fires per sample with probability p * multiplier_k.
        xflip: multiplier of the horizontal flip (fires a flip half of the time).
        rotate90: multiplier of the rotation by 0, 90, 180 or 270 degrees.
        xint: multiplier of the integer translation.
        scale: multiplier of the isotropic scaling.
        rotate: multiplier of the free rotation (before and after aniso; jointly p * rotate).
        aniso: multiplier of the anisotropic scaling.
        xfrac: multiplier of the fractional translation.
        brightness: multiplier of the brightness shift.
        contrast: multiplier of the contrast scaling.
        lumaflip: multiplier of the luma flip (fires a flip half of the time).
        hue: multiplier of the hue rotation.
        saturation: multiplier of the saturation scaling.
        xint_max: largest integer translation, as a fraction of the image side.
        scale_std: std of log2 of the isotropic scale factor.
        rotate_max: largest rotation angle, as a fraction of 180 degrees.
        aniso_std: std of log2 of the anisotropic scale factor.
        xfrac_std: std of the fractional translation, as a fraction of the image side.
        brightness_std: std of the brightness shift (images in [-1, 1]).
        contrast_std: std of log2 of the contrast factor.
        hue_max: largest hue rotation, as a fraction of 180 degrees.
        saturation_std: std of log2 of the saturation factor.
        filter_taps: length of the resampling low-pass filter (even, >= 4).
        filter_beta: Kaiser window parameter of the resampling filter.
        seed: seed of the module's own random generator.
    """

    def __init__(
        self,
        p: float = 0.0,
        xflip: float = 1.0,
        rotate90: float = 1.0,
        xint: float = 1.0,
        scale: float = 1.0,
        rotate: float = 1.0,
        aniso: float = 1.0,
        xfrac: float = 1.0,
        brightness: float = 1.0,
        contrast: float = 1.0,
        lumaflip: float = 1.0,
        hue: float = 1.0,
        saturation: float = 1.0,
        xint_max: float = DEFAULT_XINT_MAX,
        scale_std: float = DEFAULT_SCALE_STD,
        rotate_max: float = DEFAULT_ROTATE_MAX,
        aniso_std: float = DEFAULT_ANISO_STD,
        xfrac_std: float = DEFAULT_XFRAC_STD,
        brightness_std: float = DEFAULT_BRIGHTNESS_STD,
        contrast_std: float = DEFAULT_CONTRAST_STD,
        hue_max: float = DEFAULT_HUE_MAX,
        saturation_std: float = DEFAULT_SATURATION_STD,
        filter_taps: int = DEFAULT_FILTER_TAPS,
        filter_beta: float = DEFAULT_FILTER_BETA,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        multipliers = {
            "xflip": xflip, "rotate90": rotate90, "xint": xint, "scale": scale,
            "rotate": rotate, "aniso": aniso, "xfrac": xfrac, "brightness": brightness,
            "contrast": contrast, "lumaflip": lumaflip, "hue": hue, "saturation": saturation,
        }  # fmt: skip
        strengths = {
            "xint_max": xint_max, "scale_std": scale_std, "rotate_max": rotate_max,
            "aniso_std": aniso_std, "xfrac_std": xfrac_std, "brightness_std": brightness_std,
            "contrast_std": contrast_std, "hue_max": hue_max, "saturation_std": saturation_std,
        }  # fmt: skip
        for key, value in {**multipliers, **strengths}.items():
            if not value >= 0:
                raise ValueError(f"{key}={value!r} is not valid; expected a number >= 0")
        if filter_taps < _MIN_FILTER_TAPS or filter_taps % UPSAMPLING:
            raise ValueError(
                f"filter_taps={filter_taps!r} is not valid; expected an even int >= "
                f"{_MIN_FILTER_TAPS}"
            )
        self.multipliers = {key: float(value) for key, value in multipliers.items()}
        for key, value in strengths.items():
            setattr(self, key, float(value))
        self.filter_taps = int(filter_taps)
        self.filter_beta = float(filter_beta)
        self.register_buffer("p", torch.tensor(0.0))
        self.set_p(p)
        # Derived from filter_taps and filter_beta, so rebuilt rather than saved.
        self.register_buffer(
            "resample_filter", lowpass_filter(self.filter_taps, self.filter_beta), persistent=False
        )

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **kwargs: Any) -> AdaptiveAugment:
        """A pipeline with the ops of ``preset`` at multiplier 1 and the others off.

        Keyword arguments are passed to the constructor and override the preset's multipliers.
        """
        return cls(**{**preset_multipliers(preset), **kwargs})

    @torch.no_grad()
    def set_p(self, value: float | Tensor) -> None:
        """Set the probability scale p (clamped to [0, 1]); no host round trip for a tensor."""
        value = torch.as_tensor(value, dtype=self.p.dtype, device=self.p.device)
        self.p.copy_(value.clamp(0, 1))

    # ----------------------------------------------------------------------------- forward

    def forward(self, images: Tensor) -> Tensor:
        """Augment a batch [N, C, H, W]; same shape and dtype, differentiable in ``images``."""
        if images.dim() != 4:
            raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(images.shape)}")
        n, channels, h, w = images.shape
        color_on = any(self.multipliers[op] > 0 for op in COLOR_OPS)
        if color_on and channels not in (1, _COLOR_CHANNELS):
            raise ValueError(f"colour ops need 1 or 3 channels, got {channels}")
        # Matrices and resampling in float32 at least: in half precision the sampling grid
        # would lose its sub-pixel accuracy.
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        device = images.device
        gen = self.generator(device)
        p = self.p.to(device=device, dtype=torch.float32)

        out = images.to(dtype)
        g_inv = self._sample_geometry(n, h, w, p, gen, device, dtype)
        if g_inv is not None:
            eye = torch.eye(3, device=device, dtype=dtype)
            moved = (g_inv != eye).flatten(1).any(dim=1).nonzero().squeeze(1)
            if moved.numel() > 0:
                warped = resample(out[moved], g_inv[moved], self.resample_filter.to(device, dtype))
                out = out.index_copy(0, moved, warped)
        if color_on:
            out = _apply_color(out, self._sample_color(n, p, gen, device, dtype))
        return out.to(images.dtype)

    # ----------------------------------------------------------------------------- sampling

    def _fires(self, op: str, n: int, p: Tensor, gen: torch.Generator, device: Any) -> Tensor:
        return torch.rand(n, device=device, generator=gen) < p * self.multipliers[op]

    def _sample_geometry(
        self, n: int, h: int, w: int, p: Tensor, gen: torch.Generator, device: Any, dtype: Any
    ) -> Tensor | None:
        """Per-sample inverse transforms [N, 3, 3] (output pixel -> input pixel), or None."""
        m = self.multipliers
        if all(m[op] == 0 for op in BLIT_OPS + GEOMETRIC_OPS):
            return None
        g_inv = torch.eye(3, device=device, dtype=dtype).repeat(n, 1, 1)
        one = torch.ones(n, device=device)

        def randn(*shape: int) -> Tensor:
            return torch.randn(n, *shape, device=device, generator=gen)

        def rand(*shape: int) -> Tensor:
            return torch.rand(n, *shape, device=device, generator=gen)

        # Each factor is the inverse of its op, appended on the right: the first op listed is
        # the first applied to the image.
        if m["xflip"] > 0:
            fires = self._fires("xflip", n, p, gen, device)
            flip = torch.randint(_FLIP_CHOICES, (n,), device=device, generator=gen)
            flip = torch.where(fires, flip, 0)
            g_inv = g_inv @ _scale2d(1 - 2 * flip.to(dtype), one.to(dtype))
        if m["rotate90"] > 0:
            fires = self._fires("rotate90", n, p, gen, device)
            turns = torch.randint(_QUARTER_TURNS, (n,), device=device, generator=gen)
            turns = torch.where(fires, turns, 0)
            cos = torch.tensor(_QUARTER_COS, device=device, dtype=dtype)[turns]
            sin = torch.tensor(_QUARTER_SIN, device=device, dtype=dtype)[turns]
            g_inv = g_inv @ _rotate2d(cos, -sin)
        if m["xint"] > 0:
            fires = self._fires("xint", n, p, gen, device)
            shift = (rand(2) * 2 - 1) * self.xint_max
            shift = torch.where(fires[:, None], shift, 0)
            tx, ty = torch.round(shift[:, 0] * w), torch.round(shift[:, 1] * h)
            g_inv = g_inv @ _translate2d(-tx.to(dtype), -ty.to(dtype))
        if m["scale"] > 0:
            fires = self._fires("scale", n, p, gen, device)
            s = torch.where(fires, torch.exp2(randn() * self.scale_std), one)
            g_inv = g_inv @ _scale2d(1 / s.to(dtype), 1 / s.to(dtype))
        # Two rotations, each with probability q, fire at least once with 1 - (1 - q)^2 = p m.
        p_rot = 1 - torch.sqrt(torch.clamp(1 - p * m["rotate"], min=0))
        if m["rotate"] > 0:
            g_inv = g_inv @ self._random_rotation(n, p_rot, gen, device, dtype)
        if m["aniso"] > 0:
            fires = self._fires("aniso", n, p, gen, device)
            s = torch.where(fires, torch.exp2(randn() * self.aniso_std), one)
            g_inv = g_inv @ _scale2d(1 / s.to(dtype), s.to(dtype))
        if m["rotate"] > 0:
            g_inv = g_inv @ self._random_rotation(n, p_rot, gen, device, dtype)
        if m["xfrac"] > 0:
            fires = self._fires("xfrac", n, p, gen, device)
            shift = torch.where(fires[:, None], randn(2) * self.xfrac_std, 0)
            tx, ty = shift[:, 0] * w, shift[:, 1] * h
            g_inv = g_inv @ _translate2d(-tx.to(dtype), -ty.to(dtype))
        return g_inv

    def _random_rotation(
        self, n: int, prob: Tensor, gen: torch.Generator, device: Any, dtype: Any
    ) -> Tensor:
        fires = torch.rand(n, device=device, generator=gen) < prob
        u = torch.rand(n, device=device, generator=gen)
        theta = torch.where(fires, (u * 2 - 1) * math.pi * self.rotate_max, 0).to(dtype)
        # The inverse of a rotation by theta is the rotation by -theta.
        return _rotate2d(torch.cos(theta), -torch.sin(theta))

    def _sample_color(
        self, n: int, p: Tensor, gen: torch.Generator, device: Any, dtype: Any
    ) -> Tensor:
        """Per-sample affine colour transforms [N, 4, 4] acting on (r, g, b, 1)."""
        m = self.multipliers
        eye4 = torch.eye(4, device=device, dtype=dtype)
        mat = eye4.repeat(n, 1, 1)
        axis = torch.tensor(_LUMA_AXIS + (0.0,), device=device, dtype=dtype)
        axis = axis / axis.norm()
        along = torch.outer(axis, axis)  # projector onto the luma axis

        def randn() -> Tensor:
            return torch.randn(n, device=device, generator=gen)

        # Each factor is appended on the left: the first op listed is applied first.
        if m["brightness"] > 0:
            fires = self._fires("brightness", n, p, gen, device)
            b = torch.where(fires, randn() * self.brightness_std, 0).to(dtype)
            shift = eye4.repeat(n, 1, 1)
            shift[:, :3, 3] = b[:, None]
            mat = shift @ mat
        if m["contrast"] > 0:
            fires = self._fires("contrast", n, p, gen, device)
            c = torch.where(fires, torch.exp2(randn() * self.contrast_std), 1).to(dtype)
            gain = torch.ones(n, 4, device=device, dtype=dtype)
            gain[:, :3] = c[:, None]
            mat = torch.diag_embed(gain) @ mat
        if m["lumaflip"] > 0:
            fires = self._fires("lumaflip", n, p, gen, device)
            flip = torch.randint(_FLIP_CHOICES, (n,), device=device, generator=gen)
            flip = torch.where(fires, flip, 0).to(dtype)
            # A Householder reflection across the plane orthogonal to the luma axis.
            mat = (eye4 - 2 * along * flip[:, None, None]) @ mat
        if m["hue"] > 0:
            fires = self._fires("hue", n, p, gen, device)
            u = torch.rand(n, device=device, generator=gen)
            theta = torch.where(fires, (u * 2 - 1) * math.pi * self.hue_max, 0).to(dtype)
            mat = _rotate_about(axis, theta) @ mat
        if m["saturation"] > 0:
            fires = self._fires("saturation", n, p, gen, device)
            s = torch.where(fires, torch.exp2(randn() * self.saturation_std), 1).to(dtype)
            # Scale the chroma (what is orthogonal to luma) only; written as I + (s - 1) P so
            # that s = 1 is the exact identity.
            chroma = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], device=device, dtype=dtype))
            chroma = chroma - along
            mat = (eye4 + (s - 1)[:, None, None] * chroma) @ mat
        return mat

    def extra_repr(self) -> str:
        on = ", ".join(f"{op}={v:g}" for op, v in self.multipliers.items() if v > 0)
        return f"p={float(self.p):.4g}, {on or 'no ops'}"


# --------------------------------------------------------------------------------- helpers


def lowpass_filter(taps: int, beta: float) -> Tensor:
    """Kaiser-windowed sinc with a half-band cutoff, normalised to unit DC gain (float64)."""
    offsets = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    window = torch.kaiser_window(taps, periodic=False, beta=beta, dtype=torch.float64)
    kernel = torch.sinc(_HALF_BAND * offsets) * window
    return kernel / kernel.sum()


def resample(images: Tensor, g_inv: Tensor, kernel: Tensor) -> Tensor:
    """Warp ``images`` [N, C, H, W] by the per-sample inverse transforms ``g_inv`` [N, 3, 3].

    ``g_inv`` maps an output point to the input point it reads, both in pixel units with the
    origin at the image centre (pixel i's centre is at i + 0.5 - size / 2). The input is
    reflection padded far enough that every point read (with the filter's support) lies inside
    the padded image, upsampled 2x, sampled bilinearly and decimated 2x with ``kernel``.
    """
    h, w = images.shape[-2:]
    taps = kernel.numel()
    # The fine output grid carries the decimation filter's support on both sides, so that its
    # edge outputs are computed from warped content rather than from zeros.
    margin_fine = taps // UPSAMPLING - 1
    device, dtype = images.device, images.dtype
    ys = (torch.arange(UPSAMPLING * h + 2 * margin_fine, device=device, dtype=dtype)
          - margin_fine + 0.5) / UPSAMPLING - h / 2  # fmt: skip
    xs = (torch.arange(UPSAMPLING * w + 2 * margin_fine, device=device, dtype=dtype)
          - margin_fine + 0.5) / UPSAMPLING - w / 2  # fmt: skip

    # An affine map sends the grid's bounding box to a parallelogram: its corners bound
    # every point read.
    corners = torch.stack(
        [xs[[0, -1, 0, -1]], ys[[0, 0, -1, -1]], torch.ones(4, device=device, dtype=dtype)]
    )
    reach = g_inv[:, :2, :] @ corners  # [N, 2, 4] input points, centred pixel units
    lo = reach.amin(dim=(0, 2)).tolist()
    hi = reach.amax(dim=(0, 2)).tolist()
    # A fine sample needs taps / 4 coarse samples either side, the bilinear tap half a pixel.
    need = taps / (2 * UPSAMPLING) + 0.5
    left = max(0, math.ceil(need - (lo[0] + w / 2)))
    right = max(0, math.ceil(hi[0] - w / 2 + need))
    top = max(0, math.ceil(need - (lo[1] + h / 2)))
    bottom = max(0, math.ceil(hi[1] - h / 2 + need))
    padded = reflect_pad(images, left, right, top, bottom)
    fine = _upsample2x(padded, kernel)

    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    points = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1)
    src = torch.einsum("nij,hwj->nhwi", g_inv[:, :2, :], points)
    # Centred input pixel units -> grid_sample's [-1, 1] over the padded image (whose edges
    # are at -1 and 1 with align_corners=False, whatever the upsampling).
    width, height = w + left + right, h + top + bottom
    gx = 2 * (src[..., 0] + w / 2 + left) / width - 1
    gy = 2 * (src[..., 1] + h / 2 + top) / height - 1
    warped = F.grid_sample(
        fine, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="zeros",
        align_corners=False,
    )  # fmt: skip
    return _downsample2x(warped, kernel)


def reflect_pad(images: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    """Reflection padding by any amount (repeated, since one pass is limited to size - 1)."""
    out = images
    while left or right or top or bottom:
        h, w = out.shape[-2:]
        if min(h, w) == 1:  # nothing to reflect about: a single row or column repeats
            return F.pad(out, (left, right, top, bottom), mode="replicate")
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        out = F.pad(out, step, mode="reflect")
        left, right, top, bottom = (
            a - b for a, b in zip((left, right, top, bottom), step, strict=True)
        )
    return out


def _upsample2x(x: Tensor, kernel: Tensor) -> Tensor:
    c = x.shape[1]
    taps = kernel.numel()
    pad = taps // UPSAMPLING - 1  # puts fine samples at -1/4 and +1/4 of each coarse pixel
    # Zero stuffing halves the mean; the gain restores it. Each polyphase half of a symmetric
    # even-length filter holds exactly half its sum, so constants stay exactly constant.
    k = (kernel * UPSAMPLING).to(x.dtype)
    x = F.conv_transpose2d(
        x, k.view(1, 1, -1, 1).expand(c, 1, taps, 1), stride=(UPSAMPLING, 1), padding=(pad, 0),
        groups=c,
    )  # fmt: skip
    return F.conv_transpose2d(
        x, k.view(1, 1, 1, -1).expand(c, 1, 1, taps), stride=(1, UPSAMPLING), padding=(0, pad),
        groups=c,
    )  # fmt: skip


def _downsample2x(x: Tensor, kernel: Tensor) -> Tensor:
    c = x.shape[1]
    taps = kernel.numel()
    k = kernel.to(x.dtype)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, taps, 1), stride=(UPSAMPLING, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, taps), stride=(1, UPSAMPLING), groups=c)


def _apply_color(images: Tensor, mat: Tensor) -> Tensor:
    n, c, h, w = images.shape
    eye = torch.eye(4, device=mat.device, dtype=mat.dtype)
    untouched = (mat == eye).flatten(1).all(dim=1)
    flat = images.reshape(n, c, h * w)
    if c == _COLOR_CHANNELS:
        out = mat[:, :3, :3] @ flat + mat[:, :3, 3:]
    else:
        # Grey images: the grey value as if replicated to RGB, then averaged back.
        rows = mat[:, :3, :].mean(dim=1, keepdim=True)
        out = flat * rows[:, :, :3].sum(dim=2, keepdim=True) + rows[:, :, 3:]
    out = out.reshape(n, c, h, w)
    # A select, not a blend: samples with no colour op come back bit for bit.
    return torch.where(untouched.view(-1, 1, 1, 1), images, out)


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    mat = torch.eye(3, device=tx.device, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    mat[:, 0, 2] = tx
    mat[:, 1, 2] = ty
    return mat


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    return torch.diag_embed(torch.stack([sx, sy, torch.ones_like(sx)], dim=1))


def _rotate2d(cos: Tensor, sin: Tensor) -> Tensor:
    mat = torch.eye(3, device=cos.device, dtype=cos.dtype).repeat(cos.shape[0], 1, 1)
    mat[:, 0, 0] = cos
    mat[:, 0, 1] = -sin
    mat[:, 1, 0] = sin
    mat[:, 1, 1] = cos
    return mat


def _rotate_about(axis: Tensor, theta: Tensor) -> Tensor:
    """4x4 rotations by ``theta`` [N] about the unit 3-vector ``axis`` (Rodrigues' formula)."""
    a = axis[:3]
    cross = torch.zeros(3, 3, device=axis.device, dtype=axis.dtype)
    cross[0, 1], cross[0, 2], cross[1, 2] = -a[2], a[1], -a[0]
    cross = cross - cross.T
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    eye3 = torch.eye(3, device=axis.device, dtype=axis.dtype)
    # cos I + sin K + (1 - cos) a a^T: exact identity at theta = 0.
    block = cos * eye3 + sin * cross + (1 - cos) * torch.outer(a, a)
    mat = torch.eye(4, device=axis.device, dtype=axis.dtype).repeat(theta.shape[0], 1, 1)
    mat[:, :3, :3] = block
    return mat

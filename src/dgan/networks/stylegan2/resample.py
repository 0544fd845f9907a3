"""FIR resampling (upfirdn2d semantics) and resampling convolutions in plain PyTorch.

StyleGAN2 blurs with the separable [1, 3, 3, 1] kernel whenever it changes resolution, which
avoids the aliasing of nearest/strided resampling. The reference implementation uses a custom
CUDA kernel; here every operation is one depthwise ``conv2d`` or ``conv_transpose2d`` with
``groups = channels`` so it runs on any device, is differentiable to any order (R1 and path
length need double backward) and needs no compilation.

Padding follows ``upfirdn2d``: ``(x0, x1, y0, y1)`` is applied after zero-insertion upsampling
and before filtering; negative values crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def setup_filter(
    taps: Sequence[float] = DEFAULT_FILTER,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised 2-D FIR filter [k, k], the outer product of ``taps`` with itself, summing to 1."""
    f = torch.as_tensor(taps, dtype=torch.float32, device=device)
    f = torch.outer(f, f)
    return (f / f.sum()).to(dtype)


def _parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with ``f`` and keep every ``down``-th pixel.

    Args:
        x: images [N, C, H, W].
        f: 2-D filter [kh, kw] (e.g. from :func:`setup_filter`).
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: ``p``, ``(px, py)`` or ``(x0, x1, y0, y1)``; negative values crop.
        gain: overall scaling of the filter (``up**2`` keeps the mean after zero insertion).
        flip_filter: correlate instead of convolving (irrelevant for symmetric filters).

    Returns:
        [N, C, (H*up + y0 + y1 - kh + down) // down, (W*up + x0 + x1 - kw + down) // down].
    """
    if up < 1 or down < 1:
        raise ValueError(f"up={up} and down={down} must be positive integers")
    px0, px1, py0, py1 = _parse_padding(padding)
    channels = x.shape[1]
    kh, kw = f.shape
    f = f.to(device=x.device, dtype=x.dtype) * gain
    if up == 1:
        # conv2d correlates, so flip to get upfirdn2d's true convolution.
        g = f if flip_filter else f.flip([0, 1])
        x = F.pad(x, [px0, px1, py0, py1])
        weight = g[None, None].repeat(channels, 1, 1, 1)
        return F.conv2d(x, weight, stride=down, groups=channels)
    # A stride-`up` transposed convolution is zero insertion followed by a full convolution, so
    # it skips the up**2 - 1 multiplications by inserted zeros. Its kernel is the flipped
    # correlation kernel, i.e. ``f`` itself unless ``flip_filter``.
    w = f.flip([0, 1]) if flip_filter else f
    weight = w[None, None].repeat(channels, 1, 1, 1)
    x = F.conv_transpose2d(x, weight, stride=up, groups=channels)
    # The transposed output starts k - 1 samples before upfirdn2d's padded origin; shift it.
    x = F.pad(x, [px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)])
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int = 0, gain: float = 1.0
) -> torch.Tensor:
    """Upsample ``x`` by ``up`` with FIR filter ``f``; output exactly ``up`` times larger."""
    kh, kw = f.shape
    p = _parse_padding(padding)
    pad = (
        p[0] + (kw + up - 1) // 2,
        p[1] + (kw - up) // 2,
        p[2] + (kh + up - 1) // 2,
        p[3] + (kh - up) // 2,
    )
    return upfirdn2d(x, f, up=up, padding=pad, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int = 0, gain: float = 1.0
) -> torch.Tensor:
    """Downsample ``x`` by ``down`` with FIR filter ``f``; output exactly ``down`` times smaller."""
    kh, kw = f.shape
    p = _parse_padding(padding)
    pad = (
        p[0] + (kw - down + 1) // 2,
        p[1] + (kw - down) // 2,
        p[2] + (kh - down + 1) // 2,
        p[3] + (kh - down) // 2,
    )
    return upfirdn2d(x, f, down=down, padding=pad, gain=gain)


def blur(x: torch.Tensor, f: torch.Tensor, padding: int = 0, gain: float = 1.0) -> torch.Tensor:
    """Filter ``x`` with ``f`` at the same sampling rate, centred (size kept for odd kernels)."""
    kh, kw = f.shape
    p = _parse_padding(padding)
    pad = (p[0] + kw // 2, p[1] + (kw - 1) // 2, p[2] + kh // 2, p[3] + (kh - 1) // 2)
    return upfirdn2d(x, f, padding=pad, gain=gain)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """2-D convolution with FIR up- or downsampling, as StyleGAN2 does it.

    Upsampling is a stride-``up`` transposed convolution followed by the FIR filter;
    downsampling is the FIR filter followed by a stride-``down`` convolution. 1x1 kernels
    resample on the cheaper side (fewer channels) of the convolution.

    Args:
        x: input [N, groups * in_per_group, H, W].
        w: weight [out_channels, in_per_group, kh, kw].
        f: 2-D FIR filter; required when ``up > 1`` or ``down > 1``.
        up: upsampling factor (output ``up`` times larger).
        down: downsampling factor (output ``down`` times smaller).
        padding: padding of the convolution at the output's sampling rate before resampling
            (``kernel_size // 2`` keeps the size).
        groups: convolution groups (the batch size in a modulated convolution).
    """
    if up > 1 and down > 1:
        raise NotImplementedError("simultaneous up- and downsampling is not used by StyleGAN2")
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if f is None:
        raise ValueError("resampling needs a FIR filter f")
    out_channels, in_per_group, kh, kw = w.shape
    fh, fw = f.shape
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    else:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kh == 1 and kw == 1:
        if up > 1:
            x = F.conv2d(x, w, groups=groups)
            return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up * up)
        x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1))
        return F.conv2d(x, w, groups=groups)

    if up > 1:
        # conv_transpose2d wants [in, out_per_group, kh, kw]; regroup the weight per group.
        wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
        wt = wt.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        # Let the transposed convolution crop what it can; the filter pads/crops the rest.
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
        return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)

    x = upfirdn2d(x, f, padding=(px0, px1, py0, py1))
    return F.conv2d(x, w, stride=down, groups=groups)

"""Perceptual path length as StyleGAN2-ADA's ``metrics/perceptual_path_length.py`` defines it.

For each sample, two latents and a position ``t`` on the path between them; the images at ``t``
and ``t + epsilon`` (epsilon 1e-4) are compared by LPIPS on NVIDIA's VGG16 (the TorchScript
``vgg16.pt`` precision/recall loads, offline under ``weights_dir``), and the squared distance
divided by epsilon squared is the sample's path length. PPL is the mean over the samples
between the 1st and the 99th percentile (outliers dropped).

Names (results under the same name; a count after it, ``ppl_wend2k``, sets the number of
samples, 50k by default):

- ``ppl_zfull``: slerp in Z, ``t`` uniform in [0, 1], images cropped to the face (as FFHQ);
- ``ppl_wfull``: lerp in W, ``t`` uniform, cropped;
- ``ppl_zend``: slerp in Z, ``t = 0`` (path endpoints), cropped;
- ``ppl_wend``: lerp in W, ``t = 0``, cropped;
- ``ppl2_wend``: lerp in W, ``t = 0``, the whole image (the StyleGAN2 paper's PPL).

Only generators made of a mapping and a synthesis network (StyleGAN2) have a W space; for others
the metric stops with one line saying so.

Protocol as the other metrics: sample ``i``'s latents, ``t`` and label are drawn from
``(opts.seed, i)`` whatever the world size; each rank computes its share of the samples and
:class:`PerceptualPathLength` (a torchmetrics ``Metric``) concatenates the distances over the
ranks. The noise inputs are fixed maps (``noise_mode="const"``), redrawn for every batch from
``(opts.seed, first index of the batch)`` on a copy of G, so both ends of a pair see the same
noise and G itself is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.feature_extractors import VGG16_NVIDIA
from dgan.metrics.feature_stats import (
    _label_vector,
    batch_noise_seed,
    count_tag,
    distributed,
    metric_device,
    pretrained_extractor,
    seeded_global_rng,
    shard,
)

PPL_EPSILON = 1e-4
PPL_DEFAULT_SAMPLES = 50_000
PPL_LOW_PERCENTILE = 1
PPL_HIGH_PERCENTILE = 99
LPIPS_RESOLUTION = 256  # larger images are box-downsampled to this, as in the reference
# name -> (space, sampling, crop), StyleGAN2-ADA's metric_main.
PPL_VARIANTS: dict[str, tuple[str, str, bool]] = {
    "ppl_zfull": ("z", "full", True),
    "ppl_wfull": ("w", "full", True),
    "ppl_zend": ("z", "end", True),
    "ppl_wend": ("w", "end", True),
    "ppl2_wend": ("w", "end", False),
}


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the directions of ``a`` and ``b`` (the reference's)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


def ppl_samples(indices: Sequence[int], z_dim: int, c_dim: int, seed: int, sampling: str,
                dataset: Any = None) -> tuple[torch.Tensor, ...]:
    """``z0``, ``z1``, ``t`` and labels of global samples ``indices``, each from ``(seed, i)``.

    Args:
        indices: global sample indices.
        z_dim: latent size.
        c_dim: label size (0: unconditional).
        seed: evaluation seed.
        sampling: ``full`` (``t`` uniform in [0, 1)) or ``end`` (``t = 0``).
        dataset: source of the labels when ``c_dim > 0``.
    """
    n = len(indices)
    z0 = np.empty((n, z_dim), dtype=np.float32)
    z1 = np.empty((n, z_dim), dtype=np.float32)
    t = np.zeros(n, dtype=np.float32)
    c = np.zeros((n, c_dim), dtype=np.float32)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([seed % 2**63, int(index)])
        z0[row] = rng.standard_normal(z_dim, dtype=np.float32)
        z1[row] = rng.standard_normal(z_dim, dtype=np.float32)
        u = rng.random()
        t[row] = u if sampling == "full" else 0.0
        if c_dim > 0:
            c[row] = _label_vector(dataset.get_label(int(rng.integers(len(dataset)))), c_dim)
    return tuple(torch.from_numpy(x) for x in (z0, z1, t, c))


def lpips_images(img: torch.Tensor, crop: bool, channels: int) -> torch.Tensor:
    """G's [-1, 1] images as the reference hands them to LPIPS: cropped to the face (rows 3/8 to
    7/8, columns 2/8 to 6/8) if asked, box-downsampled to 256, scaled to [0, 255], RGB."""
    if crop:
        if img.shape[2] != img.shape[3]:
            raise ValueError(f"the face crop needs square images, got {list(img.shape[2:])}")
        c = img.shape[2] // 8
        img = img[:, :, c * 3 : c * 7, c * 2 : c * 6]
    factor = img.shape[2] // LPIPS_RESOLUTION if img.shape[2] > LPIPS_RESOLUTION else 1
    if factor > 1:
        img = img.reshape([-1, img.shape[1], img.shape[2] // factor, factor,
                           img.shape[3] // factor, factor]).mean([3, 5])
    img = (img + 1) * (255 / 2)
    if channels == 1:
        img = img.repeat([1, 3, 1, 1])
    return img


def _stylegan2(G: nn.Module, name: str) -> nn.Module:
    net = getattr(G, "module", G)
    if not (hasattr(net, "mapping") and hasattr(net, "synthesis")):
        raise ValueError(
            f"{name} needs a StyleGAN2 generator (mapping and synthesis networks); "
            f"{type(net).__name__} has no mapping network"
        )
    return net


class PPLSampler(nn.Module):
    """Path lengths of a batch: ``forward(z0, z1, t, c) -> [N]`` (the reference's sampler).

    Args:
        G: StyleGAN2 generator (a copy is taken: its noise maps are redrawn per batch).
        lpips: NVIDIA's VGG16 TorchScript module, called with ``return_lpips=True``.
        space: ``z`` (slerp) or ``w`` (lerp).
        crop: crop to the face before LPIPS.
        epsilon: step along the path.
        truncation_psi: truncation of the mapping network (1: none).
    """

    def __init__(self, G: nn.Module, lpips: nn.Module, space: str, crop: bool,
                 epsilon: float = PPL_EPSILON, truncation_psi: float = 1.0) -> None:
        super().__init__()
        if space not in ("z", "w"):
            raise ValueError(f"space={space!r} is not z or w")
        self.G = copy.deepcopy(G).eval().requires_grad_(False)
        synthesis = self.G.synthesis
        if hasattr(synthesis, "use_reduced_precision"):
            synthesis.use_reduced_precision = False  # the reference's force_fp32
        self.lpips = lpips
        self.space = space
        self.crop = crop
        self.epsilon = epsilon
        self.mapping_kwargs = {} if truncation_psi == 1 else {"truncation_psi": truncation_psi}

    def redraw_noise(self) -> None:
        """New fixed noise maps from the global stream (seed it first)."""
        for name, buf in self.G.named_buffers():
            if name.endswith("noise_const"):
                buf.copy_(torch.randn_like(buf))

    @torch.no_grad()
    def forward(self, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor,
                c: torch.Tensor) -> torch.Tensor:
        G = self.G
        cc = torch.cat([c, c])
        if self.space == "w":
            w0, w1 = G.mapping(torch.cat([z0, z1]), cc, **self.mapping_kwargs).chunk(2)
            t = t[:, None, None]
            wt0 = w0.lerp(w1, t)
            wt1 = w0.lerp(w1, t + self.epsilon)
        else:
            t = t[:, None]
            zt0 = slerp(z0, z1, t)
            zt1 = slerp(z0, z1, t + self.epsilon)
            wt0, wt1 = G.mapping(torch.cat([zt0, zt1]), cc, **self.mapping_kwargs).chunk(2)
        img = G.synthesis(torch.cat([wt0, wt1]), noise_mode="const").float()
        img = lpips_images(img, self.crop, int(G.img_channels))
        lpips_t0, lpips_t1 = self.lpips(img, resize_images=False, return_lpips=True).chunk(2)
        return (lpips_t0 - lpips_t1).square().sum(1) / self.epsilon**2


def filtered_mean(distances: np.ndarray) -> float:
    """Mean of the distances between the 1st and the 99th percentile (the reference's)."""
    lo = np.percentile(distances, PPL_LOW_PERCENTILE, method="lower")
    hi = np.percentile(distances, PPL_HIGH_PERCENTILE, method="higher")
    return float(np.extract(np.logical_and(distances >= lo, distances <= hi), distances).mean())


class PerceptualPathLength(Metric):
    """PPL as a torchmetrics ``Metric``: ``update(distances [N])``, ``compute() -> float``.

    State: the per-sample path lengths (``dist_reduce_fx="cat"``); ``compute`` drops those
    outside the 1st..99th percentiles and averages the rest.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("distances", [], dist_reduce_fx="cat")

    def update(self, distances: torch.Tensor) -> None:
        self.distances.append(distances.detach().float().to(self.device))

    def compute(self) -> float:
        return filtered_mean(dim_zero_cat(self.distances).cpu().numpy())


def compute_ppl(opts: MetricOptions, name: str, num: int) -> float:
    """PPL variant ``name`` over ``num`` samples of ``opts.G`` (every rank calls this)."""
    space, sampling, crop = PPL_VARIANTS[name]
    net = _stylegan2(opts.G, name)
    if num < max(opts.world_size, 2):
        raise ValueError(f"need at least {max(opts.world_size, 2)} samples, got {num}")
    lpips = pretrained_extractor(opts, VGG16_NVIDIA).module.detector
    sampler = PPLSampler(net, lpips, space, crop, PPL_EPSILON, opts.truncation_psi)
    metric = PerceptualPathLength(sync_on_compute=distributed(opts)).to(metric_device(opts))
    mine = list(shard(num, opts.rank, opts.world_size))
    for start in range(0, len(mine), opts.batch_size):
        batch = mine[start : start + opts.batch_size]
        z0, z1, t, c = (x.to(opts.device) for x in ppl_samples(
            batch, net.z_dim, net.c_dim, opts.seed, sampling, opts.dataset))
        with seeded_global_rng(batch_noise_seed(opts.seed, batch[0]), opts.device):
            sampler.redraw_noise()
        metric.update(sampler(z0, z1, t, c))
    return float(metric.compute())


def _register(name: str) -> None:
    @register_metric(rf"{name}(?P<num>\d+k?)?",
                     higher_is_better=PerceptualPathLength.higher_is_better,
                     extractors=(VGG16_NVIDIA,))
    def ppl(opts: MetricOptions) -> dict[str, float]:
        num = opts.num_samples if opts.num_samples is not None else PPL_DEFAULT_SAMPLES
        key = name if opts.num_samples is None else f"{name}{count_tag(num)}"
        return {key: compute_ppl(opts, name, num)}

    ppl.__doc__ = (f"Perceptual path length {name} (StyleGAN2-ADA; LPIPS on NVIDIA's VGG16), "
                   "over N samples (default 50k).")


for _name in PPL_VARIANTS:
    _register(_name)

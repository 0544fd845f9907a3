"""Mode coverage of 2-D toy data (25 Gaussians, ring of 8), as in PacGAN / VEEGAN.

A sample is *high quality* when it lies within ``3 std`` of its nearest mode; a mode is
*covered* when at least ``min_per_mode`` (20) high-quality samples fall on it. ``mode_kl`` is
KL(per-mode histogram of high-quality samples || uniform): 0 when every mode gets its share.

Two more numbers tell a collapse onto a subset of modes from a G pushed against the data's
edge, which the mode count alone confuses: ``border_fraction``, the share of samples in the
border band, max(|x|, |y|) beyond a quarter of the way from the outer ring of modes to the next
ring inward (3.5 on the 25-Gaussian grid, whose data put 16/25 = 0.64 there; without inner
modes, 3 std past the outermost modes), and ``inner_modes_covered``, how many of the modes
inside the outer ring are covered (9 on the grid; a G spread along the border crosses outer
modes but never reaches these).

:class:`ModeCoverage` is the torchmetrics ``Metric``: G's points, concatenated over the ranks
(``dist_reduce_fx="cat"``); the latents are drawn at once from ``opts.seed`` as before, and each
rank maps its contiguous share of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.feature_stats import distributed, metric_device, shard

HQ_STDS = 3.0  # a sample within 3 std of a mode counts as high quality
MIN_PER_MODE = 20  # high-quality samples that make a mode count as covered
DEFAULT_NUM_SAMPLES = 2500
# The statistics it returns and which way each improves: more modes and more samples near one,
# a histogram nearer uniform (KL) and fewer samples off the data's border are better.
MODE_COVERAGE_RESULTS = {"modes_covered": True, "hq_fraction": True, "mode_kl": False,
                         "border_fraction": False, "inner_modes_covered": True}
BORDER_BAND_SHARE = 4  # the band reaches 1/4 of the way from the outer ring to the next one


def border_threshold(modes: torch.Tensor, inner: torch.Tensor, std: float) -> float:
    """max(|x|, |y|) beyond which a sample is in the border band (see the module docstring)."""
    extent = modes.abs().amax(dim=1)
    outer = float(extent.max())
    if not inner.any():
        return outer + HQ_STDS * std
    next_ring = float(extent[inner.to(extent.device)].max())
    return outer - (outer - next_ring) / BORDER_BAND_SHARE


def mode_statistics(samples: torch.Tensor, modes: torch.Tensor, std: float,
                    min_per_mode: int = MIN_PER_MODE,
                    inner: torch.Tensor | None = None) -> dict[str, float]:
    """Mode coverage statistics of ``samples`` [N, 2] against ``modes`` [M, 2].

    Args:
        samples: G's points.
        modes: the mode centres.
        std: each mode's standard deviation.
        min_per_mode: high-quality samples that make a mode covered.
        inner: bool [M], the modes inside the outer ring (None: none are).

    Returns:
        modes_covered, hq_fraction, mode_kl, border_fraction and inner_modes_covered.
    """
    dist = torch.cdist(samples.float(), modes.float())
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= HQ_STDS * std
    counts = torch.bincount(nearest[hq], minlength=len(modes)).float()
    covered = int((counts >= min_per_mode).sum())
    if counts.sum() > 0:
        freq = counts / counts.sum()
        nonzero = freq > 0
        kl = float((freq[nonzero] * (freq[nonzero] * len(modes)).log()).sum())
    else:
        kl = float("inf")
    inner = torch.zeros(len(modes), dtype=torch.bool) if inner is None else inner.bool()
    beyond = samples.float().abs().amax(dim=1) > border_threshold(modes, inner, std)
    inner_covered = int((counts[inner.to(counts.device)] >= min_per_mode).sum())
    return {"modes_covered": covered, "hq_fraction": float(hq.float().mean()), "mode_kl": kl,
            "border_fraction": float(beyond.float().mean()),
            "inner_modes_covered": inner_covered}


class ModeCoverage(Metric):
    """Mode coverage as a torchmetrics ``Metric``: ``update(points [N, 2])``, ``compute()`` ->
    the statistics of :func:`mode_statistics` over every rank's points.

    Args:
        modes: the mode centres [M, 2].
        std: each mode's standard deviation.
        inner: bool [M], the modes inside the outer ring (None: none are).
        min_per_mode: high-quality samples that make a mode covered.
        kwargs: torchmetrics' ``Metric`` options.
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, modes: torch.Tensor, std: float, inner: torch.Tensor | None = None,
                 min_per_mode: int = MIN_PER_MODE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.modes = torch.as_tensor(modes)
        self.std = float(std)
        self.inner = inner
        self.min_per_mode = min_per_mode
        self.add_state("points", [], dist_reduce_fx="cat")

    def update(self, points: torch.Tensor) -> None:
        self.points.append(points.float().to(self.device))

    def compute(self) -> dict[str, float]:
        return mode_statistics(dim_zero_cat(self.points).cpu(), self.modes, self.std,
                               self.min_per_mode, self.inner)


def sample_z(opts: MetricOptions, num: int) -> torch.Tensor:
    """The ``num`` latents of the metric, all drawn at once from ``opts.seed`` (CPU)."""
    gen = torch.Generator().manual_seed(opts.seed)
    return torch.randn(num, opts.G.z_dim, generator=gen)


@register_metric(r"mode_coverage(?P<num>\d+k?)?", "modes covered, hq fraction, mode KL",
                 higher_is_better=True, results=MODE_COVERAGE_RESULTS)
def mode_coverage(opts: MetricOptions) -> dict[str, float]:
    """Mode-coverage statistics of G's samples on a toy dataset with modes."""
    modes = getattr(opts.dataset, "modes", None)
    if modes is None:
        raise ValueError(
            f"mode coverage needs a dataset with modes (gaussians25, ring8); "
            f"{getattr(opts.dataset, 'name', type(opts.dataset).__name__)} has none"
        )
    num = opts.num_samples or DEFAULT_NUM_SAMPLES
    if num < opts.world_size:
        raise ValueError(f"need at least {opts.world_size} samples, got {num}")
    metric = ModeCoverage(modes, opts.dataset.std, getattr(opts.dataset, "inner_modes", None),
                          sync_on_compute=distributed(opts)).to(metric_device(opts))
    mine = shard(num, opts.rank, opts.world_size)
    z = sample_z(opts, num)[mine.start : mine.stop].to(opts.device)
    with torch.no_grad():
        points = opts.G(z, torch.zeros(len(z), 0, device=opts.device))
    metric.update(points)
    return metric.compute()

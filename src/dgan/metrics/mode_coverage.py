"""Mode coverage of 2-D toy data (25 Gaussians, ring of 8), as in PacGAN / VEEGAN.

A sample is *high quality* when it lies within ``3 std`` of its nearest mode; a mode is
*covered* when at least ``min_per_mode`` (20) high-quality samples fall on it. ``mode_kl`` is
KL(per-mode histogram of high-quality samples || uniform): 0 when every mode gets its share.
"""

from __future__ import annotations

import torch

from dgan.metrics.registry import MetricOptions, register_metric

HQ_STDS = 3.0  # a sample within 3 std of a mode counts as high quality
MIN_PER_MODE = 20  # high-quality samples that make a mode count as covered
DEFAULT_NUM_SAMPLES = 2500


def mode_statistics(samples: torch.Tensor, modes: torch.Tensor, std: float,
                    min_per_mode: int = MIN_PER_MODE) -> dict[str, float]:
    """Modes covered, high-quality fraction and mode KL of ``samples`` [N, 2]."""
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
    return {"modes_covered": covered, "hq_fraction": float(hq.float().mean()), "mode_kl": kl}


@torch.no_grad()
def generate_points(opts: MetricOptions, num: int) -> torch.Tensor:
    """``num`` samples of ``opts.G`` from latents seeded by ``opts.seed``."""
    gen = torch.Generator().manual_seed(opts.seed)
    z = torch.randn(num, opts.G.z_dim, generator=gen).to(opts.device)
    c = torch.zeros(num, 0, device=opts.device)
    return opts.G(z, c).float().cpu()


@register_metric(r"mode_coverage(?P<num>\d+k?)?", "modes covered, hq fraction, mode KL")
def mode_coverage(opts: MetricOptions) -> dict[str, float]:
    """Mode-coverage statistics of G's samples on a toy dataset with modes."""
    modes = getattr(opts.dataset, "modes", None)
    if modes is None:
        raise ValueError(
            f"mode coverage needs a dataset with modes (gaussians25, ring8); "
            f"{getattr(opts.dataset, 'name', type(opts.dataset).__name__)} has none"
        )
    num = opts.num_samples or DEFAULT_NUM_SAMPLES
    return mode_statistics(generate_points(opts, num), modes, opts.dataset.std)

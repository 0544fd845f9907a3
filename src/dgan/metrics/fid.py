"""FID (Frechet Inception Distance): ``fidNk_full`` on Inception-v3 pool features, and
``fid_digitsN_full`` on the digits classifier's features, ``fid_pixelsN_full`` on 8x8 averaged
pixels (any images, no weights), N fakes against every real.

:class:`FrechetDistance` is the torchmetrics ``Metric``: float64 sums of the features and of
their outer products, summed over the ranks by torchmetrics."""

from __future__ import annotations

from typing import Any

import torch

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.feature_extractors import INCEPTION, FeatureExtractor
from dgan.metrics.feature_stats import (
    DIGITS_LAYER,
    FID_LAYER,
    FeatureMetric,
    Statistics,
    count_tag,
    digits_extractor,
    distributed,
    evaluate_feature_metric,
    num_fakes,
    pretrained_extractor,
)
from dgan.metrics.pixel_features import PIXEL_LAYER, pixel_extractor


def frechet_distance(fake: Statistics, real: Statistics) -> float:
    """FID between two ``{"mu", "sigma"}`` statistics (torch-fidelity's formula).

    Args:
        fake: statistics of the generated images.
        real: statistics of the real images.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(fake, real, False)[KEY_METRIC_FID])


def moments_statistics(total: torch.Tensor, outer: torch.Tensor, count: torch.Tensor
                       ) -> Statistics:
    """``mu`` and (unbiased, like ``np.cov``) ``sigma`` as float64 numpy arrays.

    Args:
        total: float64 sum of the features [D].
        outer: float64 sum of their outer products [D, D].
        count: number of features summed.
    """
    n = float(count)
    if n < 2:
        raise ValueError(f"FID needs at least 2 samples, got {int(n)}")
    mu = total / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return {"mu": mu.cpu().numpy(), "sigma": sigma.cpu().numpy()}


class FrechetDistance(FeatureMetric):
    """FID as a torchmetrics ``Metric``: ``update(uint8 images, real)``, ``compute() -> float``.

    States (all ``dist_reduce_fx="sum"``, float64): per set, the count, the sum of the features
    and the sum of their outer products; they start as scalars and take the feature width at
    the first batch. Cached real statistics (``{"mu", "sigma"}``) replace the real states.

    Args:
        extractor: feature extractor (torch-fidelity's Inception, or the digits CNN).
        layer: which of its outputs (``"2048"`` for Inception pool features).
        kwargs: torchmetrics' ``Metric`` options.
    """

    higher_is_better = False
    real_kind = "moments"

    def __init__(self, extractor: FeatureExtractor, layer: str = FID_LAYER,
                 **kwargs: Any) -> None:
        super().__init__(extractor, layer, **kwargs)
        for side in ("real", "fake"):
            for name in ("count", "sum", "outer"):
                self.add_state(f"{side}_{name}", torch.zeros((), dtype=torch.float64),
                               dist_reduce_fx="sum")

    def add(self, features: torch.Tensor, real: bool) -> None:
        f = features.double()
        side = "real" if real else "fake"
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + len(f))
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)

    def compute(self) -> float:
        fake = moments_statistics(self.fake_sum, self.fake_outer, self.fake_count)
        if self.real_cached is not None:
            real = {k: v.numpy() for k, v in self.real_cached.items()}
        else:
            real = moments_statistics(self.real_sum, self.real_outer, self.real_count)
            self.real_payload = {k: torch.from_numpy(v) for k, v in real.items()}
        return frechet_distance(fake, real)


def fid_of(opts: MetricOptions, extractor: FeatureExtractor, layer: str) -> float:
    """FID of ``opts.G``'s fakes against the dataset on ``extractor``'s ``layer``."""
    metric = FrechetDistance(extractor, layer, sync_on_compute=distributed(opts))
    return float(evaluate_feature_metric(metric, opts, num_fakes(opts)))


@register_metric(r"fid(?P<num>\d+k)_full", higher_is_better=FrechetDistance.higher_is_better,
                 extractors=(INCEPTION,))
def fid_full(opts: MetricOptions) -> dict[str, float]:
    """FID of N generated images against the full training set (Inception-v3 pool3)."""
    value = fid_of(opts, pretrained_extractor(opts, INCEPTION), FID_LAYER)
    return {f"fid{count_tag(num_fakes(opts))}_full": value}


@register_metric(r"fid_digits(?P<num>\d+k?)_full",
                 higher_is_better=FrechetDistance.higher_is_better)
def fid_digits_full(opts: MetricOptions) -> dict[str, float]:
    """FID on the digits classifier's features, N fakes against all training digits."""
    value = fid_of(opts, digits_extractor(opts), DIGITS_LAYER)
    return {f"fid_digits{count_tag(num_fakes(opts))}_full": value}


@register_metric(r"fid_pixels(?P<num>\d+k?)_full",
                 higher_is_better=FrechetDistance.higher_is_better)
def fid_pixels_full(opts: MetricOptions) -> dict[str, float]:
    """FID on 8x8 averaged pixels (any images, offline; colour and layout, not detail)."""
    value = fid_of(opts, pixel_extractor(opts.device), PIXEL_LAYER)
    return {f"fid_pixels{count_tag(num_fakes(opts))}_full": value}

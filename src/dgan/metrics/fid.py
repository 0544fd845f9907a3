"""FID (Frechet Inception Distance): ``fidNk_full`` on Inception-v3 pool features, and
``fid_digitsN_full`` on the digits classifier's features, N fakes against every real."""

from __future__ import annotations

from dgan.metrics.feature_extractors import INCEPTION, FeatureExtractor
from dgan.metrics.feature_stats import (
    DIGITS_LAYER,
    FID_LAYER,
    Statistics,
    count_tag,
    dataset_features_cached,
    digits_extractor,
    generator_features,
    num_fakes,
    pretrained_extractor,
)
from dgan.metrics.registry import MetricOptions, register_metric


def frechet_distance(fake: Statistics, real: Statistics) -> float:
    """FID between two ``{"mu", "sigma"}`` statistics (torch-fidelity's formula).

    Args:
        fake: statistics of the generated images.
        real: statistics of the real images.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(fake, real, False)[KEY_METRIC_FID])


def fid_of(opts: MetricOptions, extractor: FeatureExtractor, layer: str) -> float:
    """FID of ``opts.G``'s fakes against the dataset on ``extractor``'s ``layer``."""
    real = dataset_features_cached(opts, extractor, layer, moments=True)
    fake = generator_features(opts, extractor, layer, num_fakes(opts), moments=True)
    assert isinstance(real, dict) and isinstance(fake, dict)
    return frechet_distance(fake, real)


@register_metric(r"fid(?P<num>\d+k)_full")
def fid_full(opts: MetricOptions) -> dict[str, float]:
    """FID of N generated images against the full training set (Inception-v3 pool3)."""
    value = fid_of(opts, pretrained_extractor(opts, INCEPTION), FID_LAYER)
    return {f"fid{count_tag(num_fakes(opts))}_full": value}


@register_metric(r"fid_digits(?P<num>\d+k?)_full")
def fid_digits_full(opts: MetricOptions) -> dict[str, float]:
    """FID on the digits classifier's features, N fakes against all training digits."""
    value = fid_of(opts, digits_extractor(opts), DIGITS_LAYER)
    return {f"fid_digits{count_tag(num_fakes(opts))}_full": value}

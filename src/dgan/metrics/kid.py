"""KID (Kernel Inception Distance): ``kidNk_full``, N fakes against up to 1M reals, 100 subsets
of up to 1000, on Inception-v3 pool features."""

from __future__ import annotations

import torch

from dgan.metrics.feature_extractors import INCEPTION
from dgan.metrics.feature_stats import (
    FID_LAYER,
    count_tag,
    dataset_features_cached,
    generator_features,
    num_fakes,
    pretrained_extractor,
)
from dgan.metrics.registry import MetricOptions, register_metric

KID_MAX_REAL = 1_000_000
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def kernel_distance(fake: torch.Tensor, real: torch.Tensor, seed: int = 0) -> float:
    """KID (mean over subsets) between fake and real features (torch-fidelity's formula).

    Args:
        fake: generated features [N, D].
        real: real features [M, D].
        seed: seed of the subset draws.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    subset = min(KID_SUBSET_SIZE, len(fake), len(real))
    out = kid_features_to_metric(
        fake.float(),
        real.float(),
        kid_subsets=KID_SUBSETS,
        kid_subset_size=subset,
        rng_seed=seed,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN])


@register_metric(r"kid(?P<num>\d+k)_full")
def kid_full(opts: MetricOptions) -> dict[str, float]:
    """KID of N generated images against up to 1M training images (Inception-v3 pool3)."""
    extractor = pretrained_extractor(opts, INCEPTION)
    real = dataset_features_cached(opts, extractor, FID_LAYER, KID_MAX_REAL)
    fake = generator_features(opts, extractor, FID_LAYER, num_fakes(opts))
    assert isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor)
    return {f"kid{count_tag(num_fakes(opts))}_full": kernel_distance(fake, real, opts.seed)}

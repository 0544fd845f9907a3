"""Inception Score: ``isNk`` (``isNk_mean``, ``isNk_std``), 10 splits of N fakes, on the
Inception-v3 logits without output bias."""

from __future__ import annotations

import torch

from dgan.metrics.feature_extractors import INCEPTION
from dgan.metrics.feature_stats import (
    count_tag,
    generator_features,
    num_fakes,
    pretrained_extractor,
)
from dgan.metrics.registry import MetricOptions, register_metric

IS_SPLITS = 10
IS_LAYER = "logits_unbiased"


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """Inception Score mean and std over ``splits`` from unbiased logits.

    Args:
        logits: Inception logits [N, 1008] (without output bias).
        splits: number of disjoint splits (capped at N).
    """
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )

    # No shuffle: fakes are i.i.d. already, and the value must not depend on a second RNG.
    out = isc_features_to_metric(logits.float(), min(splits, len(logits)), False)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


@register_metric(r"is(?P<num>\d+k)")
def is_metric(opts: MetricOptions) -> dict[str, float]:
    """Inception Score of N generated images (10 splits, logits without output bias)."""
    extractor = pretrained_extractor(opts, INCEPTION)
    logits = generator_features(opts, extractor, IS_LAYER, num_fakes(opts))
    assert isinstance(logits, torch.Tensor)
    mean, std = inception_score(logits, int(opts.extra.get("is_splits", IS_SPLITS)))
    tag = count_tag(num_fakes(opts))
    return {f"is{tag}_mean": mean, f"is{tag}_std": std}

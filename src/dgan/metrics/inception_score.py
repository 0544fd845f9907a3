"""Inception Score: ``isNk`` (``isNk_mean``, ``isNk_std``), 10 splits of N fakes, on the
Inception-v3 logits without output bias.

:class:`InceptionScore` is the torchmetrics ``Metric``: the logits of the fakes, concatenated
over the ranks by torchmetrics (``dist_reduce_fx="cat"``, rank order = sample order)."""

from __future__ import annotations

from typing import Any

import torch

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.feature_extractors import INCEPTION, FeatureExtractor
from dgan.metrics.feature_stats import (
    RowsMetric,
    count_tag,
    distributed,
    evaluate_feature_metric,
    num_fakes,
    pretrained_extractor,
)

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


class InceptionScore(RowsMetric):
    """IS as a torchmetrics ``Metric``: ``update(uint8 fakes)``, ``compute() -> (mean, std)``.

    State: the fakes' logits (float32, ``dist_reduce_fx="cat"``); no reals.

    Args:
        extractor: feature extractor (torch-fidelity's Inception).
        layer: which of its outputs (``"logits_unbiased"``).
        splits: number of disjoint splits.
        kwargs: torchmetrics' ``Metric`` options.
    """

    higher_is_better = True

    def __init__(self, extractor: FeatureExtractor, layer: str = IS_LAYER,
                 splits: int = IS_SPLITS, **kwargs: Any) -> None:
        super().__init__(extractor, layer, torch.float32, reals=False, **kwargs)
        self.splits = splits

    def compute(self) -> tuple[float, float]:
        return inception_score(self.fake_rows().cpu(), self.splits)


@register_metric(r"is(?P<num>\d+k)", higher_is_better=InceptionScore.higher_is_better,
                 extractors=(INCEPTION,))
def is_metric(opts: MetricOptions) -> dict[str, float]:
    """Inception Score of N generated images (10 splits, logits without output bias)."""
    metric = InceptionScore(pretrained_extractor(opts, INCEPTION), IS_LAYER,
                            int(opts.extra.get("is_splits", IS_SPLITS)),
                            sync_on_compute=distributed(opts))
    mean, std = evaluate_feature_metric(metric, opts, num_fakes(opts))
    tag = count_tag(num_fakes(opts))
    return {f"is{tag}_mean": mean, f"is{tag}_std": std}

"""KID (Kernel Inception Distance): ``kidNk_full``, N fakes against up to 1M reals, 100 subsets
of up to 1000, on Inception-v3 pool features.

:class:`KernelDistance` is the torchmetrics ``Metric``: the feature rows, concatenated over the
ranks by torchmetrics (``dist_reduce_fx="cat"``, rank order = sample order)."""

from __future__ import annotations

from typing import Any

import torch

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.feature_extractors import INCEPTION, FeatureExtractor
from dgan.metrics.feature_stats import (
    FID_LAYER,
    RowsMetric,
    count_tag,
    distributed,
    evaluate_feature_metric,
    num_fakes,
    pretrained_extractor,
)

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


class KernelDistance(RowsMetric):
    """KID as a torchmetrics ``Metric``: ``update(uint8 images, real)``, ``compute() -> float``.

    States: the real and the fake feature rows (float32, ``dist_reduce_fx="cat"``). The formula
    runs on the CPU, as torch-fidelity's does.

    Args:
        extractor: feature extractor (torch-fidelity's Inception).
        layer: which of its outputs (``"2048"``, the pool features).
        seed: seed of the subset draws.
        kwargs: torchmetrics' ``Metric`` options.
    """

    higher_is_better = False

    def __init__(self, extractor: FeatureExtractor, layer: str = FID_LAYER, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(extractor, layer, torch.float32, **kwargs)
        self.seed = seed

    def compute(self) -> float:
        return kernel_distance(self.fake_rows().cpu(), self.real_rows(), self.seed)


@register_metric(r"kid(?P<num>\d+k)_full", higher_is_better=KernelDistance.higher_is_better,
                 extractors=(INCEPTION,))
def kid_full(opts: MetricOptions) -> dict[str, float]:
    """KID of N generated images against up to 1M training images (Inception-v3 pool3)."""
    metric = KernelDistance(pretrained_extractor(opts, INCEPTION), FID_LAYER, opts.seed,
                            sync_on_compute=distributed(opts))
    value = evaluate_feature_metric(metric, opts, num_fakes(opts), KID_MAX_REAL)
    return {f"kid{count_tag(num_fakes(opts))}_full": float(value)}

"""Precision and recall (Kynkaanniemi et al., k = 3), N fakes against N reals:
``prNk_k3_full`` on NVIDIA's VGG16 features (StyleGAN2-ADA's metric, comparable with the papers),
``prNk_k3_torchvision_full`` on torch-fidelity's torchvision VGG16 fc2 features, and
``pr_digitsN_k3_full`` on the digits classifier's. The older spellings with the count and k run
together (``pr50k3_full``, ``pr_digits2k3_full``) are still accepted.

:class:`PrecisionRecall` is the torchmetrics ``Metric``: the real and fake feature rows
(float16), concatenated over the ranks by torchmetrics (``dist_reduce_fx="cat"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dgan.metrics.base import MetricFn, MetricOptions, register_metric
from dgan.metrics.feature_extractors import VGG16, VGG16_NVIDIA, FeatureExtractor
from dgan.metrics.feature_stats import (
    DIGITS_LAYER,
    RowsMetric,
    count_tag,
    digits_extractor,
    distributed,
    evaluate_feature_metric,
    num_fakes,
    pretrained_extractor,
)

PR_NEIGHBORHOOD = 3
PR_BATCH_SIZE = 10_000
PR_LAYER = "fc2_relu"
NVIDIA_PR_LAYER = "features"


_PRC_FAKE_FIRST: bool | None = None


def _prc_fake_first() -> bool:
    """Whether torch-fidelity's precision/recall takes the generated set first.

    Its argument convention changed between releases (older ones took reals first and were
    called with the inputs swapped). A 1-D probe settles it: fakes collapsed onto one real
    must give precision 1 and recall 1/10.
    """
    global _PRC_FAKE_FIRST
    if _PRC_FAKE_FIRST is None:
        from torch_fidelity.metric_prc import calculate_precision_recall_part

        reals = torch.arange(10, dtype=torch.float32)[:, None]
        fakes = torch.zeros(10, 1)
        first, second = calculate_precision_recall_part(fakes, reals, 3, 100)
        if first > second:
            _PRC_FAKE_FIRST = True
        else:
            first, second = calculate_precision_recall_part(reals, fakes, 3, 100)
            if not first > second:
                raise RuntimeError("cannot tell torch-fidelity's precision/recall convention")
            _PRC_FAKE_FIRST = False
    return _PRC_FAKE_FIRST


def precision_recall(
    fake: torch.Tensor,
    real: torch.Tensor,
    neighborhood: int = PR_NEIGHBORHOOD,
    batch_size: int = PR_BATCH_SIZE,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Kynkaanniemi et al. precision (fakes on the real manifold) and recall (the reverse).

    Args:
        fake: generated features [N, D].
        real: real features [M, D].
        neighborhood: k of the k-NN radius.
        batch_size: rows per distance block (bounds memory).
        device: where to compute distances.
    """
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    fake = fake.to(device, torch.float32)
    real = real.to(device, torch.float32)
    if _prc_fake_first():
        precision, recall = calculate_precision_recall_part(fake, real, neighborhood, batch_size)
    else:
        precision, recall = calculate_precision_recall_part(real, fake, neighborhood, batch_size)
    return float(precision), float(recall)


class PrecisionRecall(RowsMetric):
    """Precision/recall as a torchmetrics ``Metric``: ``update(uint8 images, real)``,
    ``compute() -> (precision, recall)``.

    States: the real and the fake feature rows in float16 (as StyleGAN2-ADA: halves memory and
    cache, distances barely move), ``dist_reduce_fx="cat"``.

    Args:
        extractor: feature extractor (NVIDIA's VGG16, torchvision's, or the digits CNN).
        layer: which of its outputs.
        neighborhood: k of the k-NN radius.
        batch_size: rows per distance block (bounds memory).
        kwargs: torchmetrics' ``Metric`` options.
    """

    higher_is_better = True

    def __init__(self, extractor: FeatureExtractor, layer: str,
                 neighborhood: int = PR_NEIGHBORHOOD, batch_size: int = PR_BATCH_SIZE,
                 **kwargs: Any) -> None:
        super().__init__(extractor, layer, torch.float16, **kwargs)
        self.neighborhood = neighborhood
        self.distance_batch = batch_size

    def compute(self) -> tuple[float, float]:
        return precision_recall(self.fake_rows(), self.real_rows(), self.neighborhood,
                                self.distance_batch, self.extractor.device)


def precision_recall_of(opts: MetricOptions, extractor: FeatureExtractor, layer: str
                        ) -> tuple[float, float]:
    """Precision and recall of ``opts.G``'s fakes against as many reals, on ``layer``."""
    num = num_fakes(opts)
    batch = int(opts.extra.get("pr_batch_size", PR_BATCH_SIZE))
    metric = PrecisionRecall(extractor, layer, PR_NEIGHBORHOOD, batch,
                             sync_on_compute=distributed(opts))
    return evaluate_feature_metric(metric, opts, num, num)


def _results(name: str, precision: float, recall: float) -> dict[str, float]:
    return {f"{name}_precision": precision, f"{name}_recall": recall}


def _nvidia(opts: MetricOptions) -> tuple[float, float]:
    return precision_recall_of(opts, pretrained_extractor(opts, VGG16_NVIDIA), NVIDIA_PR_LAYER)


def _torchvision(opts: MetricOptions) -> tuple[float, float]:
    return precision_recall_of(opts, pretrained_extractor(opts, VGG16), PR_LAYER)


def _digits(opts: MetricOptions) -> tuple[float, float]:
    return precision_recall_of(opts, digits_extractor(opts), DIGITS_LAYER)


def _register(prefix: str, count: str, tail: str, features: Callable[[MetricOptions], tuple],
              description: str, extractors: tuple[str, ...] = ()) -> MetricFn:
    """Register ``<prefix><N><tail>_full``: precision/recall on ``features``, N fakes vs N reals.

    The results carry the name the metric was asked by, so runs configured with the
    StyleGAN2-ADA spelling keep their columns.
    """

    @register_metric(rf"{prefix}(?P<num>{count}){tail}_full", description,
                     higher_is_better=PrecisionRecall.higher_is_better, extractors=extractors)
    def metric(opts: MetricOptions) -> dict[str, float]:
        return _results(f"{prefix}{count_tag(num_fakes(opts))}{tail}_full", *features(opts))

    return metric


# Each family under the names that read (the count, then k: pr_digits2k_k3_full) and under
# StyleGAN2-ADA's spelling, where the count and k run together (pr_digits2k3_full).
pr_k3_full = _register("pr", r"\d+k", "_k3", _nvidia,
                       "Precision/recall (k=3, NVIDIA's VGG16), N fakes against N reals.",
                       (VGG16_NVIDIA,))
pr_k3_torchvision_full = _register(
    "pr", r"\d+k", "_k3_torchvision", _torchvision,
    "Precision/recall (k=3) on torchvision's VGG16 fc2 features, N fakes against N reals.",
    (VGG16,))
pr_digits_k3_full = _register("pr_digits", r"\d+k?", "_k3", _digits,
                              "Precision/recall (k=3) on the digits classifier's features.")
pr_full = _register("pr", r"\d+k", "3", _nvidia,
                    "Precision/recall (k=3, NVIDIA's VGG16): StyleGAN2-ADA's spelling.",
                    (VGG16_NVIDIA,))
pr_torchvision_full = _register("pr", r"\d+k", "3_torchvision", _torchvision,
                                "Precision/recall (k=3, torchvision's VGG16): older spelling.",
                                (VGG16,))
pr_digits_full = _register("pr_digits", r"\d+k?", "3", _digits,
                           "Precision/recall (k=3, digits features): older spelling.")

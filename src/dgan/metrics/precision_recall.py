"""Precision and recall (Kynkaanniemi et al., k = 3), N fakes against N reals:
``prNk3_full`` on NVIDIA's VGG16 features (StyleGAN2-ADA's metric, comparable with the papers),
``prNk3_torchvision_full`` on torch-fidelity's torchvision VGG16 fc2 features, and
``pr_digitsN3_full`` on the digits classifier's."""

from __future__ import annotations

import torch

from dgan.metrics.feature_extractors import VGG16, VGG16_NVIDIA, FeatureExtractor
from dgan.metrics.feature_stats import (
    DIGITS_LAYER,
    count_tag,
    dataset_features_cached,
    digits_extractor,
    generator_features,
    num_fakes,
    pretrained_extractor,
)
from dgan.metrics.registry import MetricOptions, register_metric

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


def precision_recall_of(opts: MetricOptions, extractor: FeatureExtractor, layer: str
                        ) -> tuple[float, float]:
    """Precision and recall of ``opts.G``'s fakes against as many reals, on ``layer``."""
    num = num_fakes(opts)
    # Features in float16 (as StyleGAN2-ADA): halves memory and cache, distances barely move.
    real = dataset_features_cached(opts, extractor, layer, num, dtype=torch.float16)
    fake = generator_features(opts, extractor, layer, num, dtype=torch.float16)
    assert isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor)
    batch = int(opts.extra.get("pr_batch_size", PR_BATCH_SIZE))
    return precision_recall(fake, real, PR_NEIGHBORHOOD, batch, opts.device)


@register_metric(r"pr(?P<num>\d+k)3_full")
def pr_full(opts: MetricOptions) -> dict[str, float]:
    """Precision/recall (k=3, NVIDIA's VGG16) of N generated images against N training images."""
    precision, recall = precision_recall_of(
        opts, pretrained_extractor(opts, VGG16_NVIDIA), NVIDIA_PR_LAYER
    )
    name = f"pr{count_tag(num_fakes(opts))}3_full"
    return {f"{name}_precision": precision, f"{name}_recall": recall}


@register_metric(r"pr(?P<num>\d+k)3_torchvision_full")
def pr_torchvision_full(opts: MetricOptions) -> dict[str, float]:
    """Precision/recall (k=3) on torchvision's VGG16 fc2 features, N fakes against N reals."""
    precision, recall = precision_recall_of(opts, pretrained_extractor(opts, VGG16), PR_LAYER)
    name = f"pr{count_tag(num_fakes(opts))}3_torchvision_full"
    return {f"{name}_precision": precision, f"{name}_recall": recall}


@register_metric(r"pr_digits(?P<num>\d+k?)3_full")
def pr_digits_full(opts: MetricOptions) -> dict[str, float]:
    """Precision/recall (k=3) on the digits classifier's features, N fakes vs N reals."""
    precision, recall = precision_recall_of(opts, digits_extractor(opts), DIGITS_LAYER)
    name = f"pr_digits{count_tag(num_fakes(opts))}3_full"
    return {f"{name}_precision": precision, f"{name}_recall": recall}


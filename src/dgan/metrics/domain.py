"""Which images a metric can judge.

Inception and VGG16 were trained on ImageNet's photographs and score any image set; a feature
network trained on one dataset only knows that dataset. On other images its features are
noise with the right shape, and the metric returns a plausible number that means nothing
(the digits classifier gives coloured shapes an FID like any other). So a metric on such a
network names the dataset it was made for, and :func:`check_metric_domain` refuses it, in one
line naming the metrics that fit, on any other dataset, before a run or an evaluation starts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

DIGITS_DATASET = "dgan.data.digits.DigitsDataset"
TOY_DATASET = "dgan.data.toy.ToyDataset"

# The metrics that fit a dataset, by the class that builds it; any other dataset is a set of
# images, which Inception and VGG16 score (their weights are fetched once).
FITTING_METRICS = {
    DIGITS_DATASET: "fid_digits2k_full, pr_digits2k_k3_full",
    TOY_DATASET: "mode_coverage2500",
}
IMAGE_METRICS = "fid50k_full, kid50k_full, pr50k_k3_full (Inception/VGG16 weights)"


@dataclasses.dataclass(frozen=True)
class FeatureDomain:
    """The data a dataset-specific feature network was trained on.

    Args:
        names: metric names computed on its features (full match).
        network: what the network was trained on, for the message.
        dataset: the class of the only dataset it knows (``module.Class``).
        channels: the channels of that dataset's images.
    """

    names: re.Pattern[str]
    network: str
    dataset: str
    channels: int


# Every metric whose name carries ``_digits`` before its count (fid_digits2k_full,
# pr_digits2k_k3_full, cacc_digits2k, ...) is computed on the digits classifier
# (dgan.metrics.digits_features), which was trained on scikit-learn's 8x8 digits alone.
DOMAINS: tuple[FeatureDomain, ...] = (
    FeatureDomain(re.compile(r"[a-z0-9]+_digits\d+k?\w*"),
                  "the 8x8 digits", DIGITS_DATASET, 1),
)


class MetricDomainError(ValueError):
    """A metric was asked for on a dataset its feature network was not trained on."""


def dataset_class(dataset: Any) -> str:
    """``module.Class`` of a built dataset (how the configs name it in ``_target_``)."""
    kind = type(dataset)
    return f"{kind.__module__}.{kind.__qualname__}"


def fitting_metrics(dataset: Any) -> str:
    """The metrics that can judge ``dataset``'s images, comma-separated, for messages."""
    return FITTING_METRICS.get(dataset_class(dataset), IMAGE_METRICS)


def domain_of(name: str) -> FeatureDomain | None:
    """The data the metric ``name`` was made for; None: any image set."""
    return next((d for d in DOMAINS if d.names.fullmatch(name)), None)


def _describe(dataset: Any) -> str:
    shape = [f"{value} {unit}" for value, unit in (
        (getattr(dataset, "num_channels", None), "channels"),
        (getattr(dataset, "resolution", None), "px")) if value is not None]
    name = getattr(dataset, "name", None) or type(dataset).__name__
    return f"{name!r} ({', '.join(shape)})" if shape else repr(name)


def check_metric_domain(names: Iterable[str], dataset: Any, key: str = "metrics") -> None:
    """Refuse, in one line, a metric whose feature network does not know ``dataset``.

    Args:
        names: metric names.
        dataset: the built dataset of the reals the metrics compare with.
        key: the setting that named the metrics (``metrics.metrics`` in a run config).

    Raises:
        MetricDomainError: naming the metric, the dataset and the metrics that fit it.
    """
    for name in names:
        domain = domain_of(str(name))
        if domain is None:
            continue
        channels = getattr(dataset, "num_channels", domain.channels)
        if dataset_class(dataset) == domain.dataset and channels == domain.channels:
            continue
        raise MetricDomainError(
            f"{key}: {name}'s features know only {domain.network}, not dataset "
            f"{_describe(dataset)}; metrics that fit: {fitting_metrics(dataset)}"
        )

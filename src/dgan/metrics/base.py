"""What a metric is: the options it receives and how it registers under its names.

A metric is a function ``fn(opts: MetricOptions) -> dict[str, float]`` registered under one or
more names by :func:`register_metric`; :mod:`dgan.metrics.registry` looks names up. The metric
files import this module only, so that the registry can import them without a circle.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

MetricFn = Callable[["MetricOptions"], dict[str, float]]
_REGISTRY: list[tuple[re.Pattern[str], MetricFn, str]] = []


@dataclasses.dataclass
class MetricOptions:
    """Everything a metric needs.

    Args:
        G: generator to evaluate (usually G_ema), called as ``G(z, c)``.
        dataset: training dataset (real samples and labels).
        device: device to generate and extract features on.
        num_samples: number of generated samples (parsed from the metric name when it has one).
        batch_size: generation / extraction batch per rank.
        rank: this process's rank.
        world_size: number of processes taking part.
        cache_dir: directory of cached real-data statistics and feature-extractor caches.
        weights_dir: directory of pre-downloaded feature-extractor weights (offline use).
        seed: seed of the latents, so that repeated evaluations are comparable.
        truncation_psi: truncation of the generator during evaluation.
        extra: metric-specific options.
    """

    G: nn.Module
    dataset: Any
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    num_samples: int | None = None
    batch_size: int = 64
    rank: int = 0
    world_size: int = 1
    cache_dir: Path | None = None
    weights_dir: Path | None = None
    seed: int = 0
    truncation_psi: float = 1.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def register_metric(pattern: str, description: str = "") -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` for every metric name that fully matches the regular expression."""

    def wrap(fn: MetricFn) -> MetricFn:
        _REGISTRY.append((re.compile(pattern), fn, description or (fn.__doc__ or "").strip()))
        return fn

    return wrap


def parse_count(text: str) -> int:
    """``'50k'`` -> 50000, ``'2500'`` -> 2500."""
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)

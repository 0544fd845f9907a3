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


@dataclasses.dataclass(frozen=True)
class Registration:
    """One metric as registered: the names it serves, what it needs, which way it improves.

    Args:
        pattern: the metric names it serves (full match; the group ``num`` is the sample count).
        fn: the metric function.
        description: what it measures (error messages, ``--help``).
        extractors: the pretrained feature extractors whose weights it needs.
        results: (result-name pattern, higher is better) for every value it returns.
        higher_is_better: which way the metric as a whole improves (its headline result).
    """

    pattern: re.Pattern[str]
    fn: MetricFn
    description: str
    extractors: tuple[str, ...]
    results: tuple[tuple[re.Pattern[str], bool], ...]
    higher_is_better: bool


_REGISTRY: list[Registration] = []


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


def register_metric(pattern: str, description: str = "", *, higher_is_better: bool,
                    extractors: tuple[str, ...] = (),
                    results: dict[str, bool] | None = None) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` for every metric name that fully matches the regular expression.

    Args:
        pattern: the metric names (``fid(?P<num>\\d+k)_full``).
        description: what it measures (default: the function's docstring).
        higher_is_better: which way its results improve (its torchmetrics class's attribute).
        extractors: the pretrained extractors it needs (checked before a run starts).
        results: result-name pattern -> higher is better, for results not named like the metric
            (mode coverage's statistics); default: the metric's name, with any ``_suffix``.
    """
    declared = results if results is not None else {rf"(?:{pattern})(?:_\w+)?": higher_is_better}

    def wrap(fn: MetricFn) -> MetricFn:
        _REGISTRY.append(Registration(
            pattern=re.compile(pattern), fn=fn,
            description=description or (fn.__doc__ or "").strip(),
            extractors=tuple(extractors),
            results=tuple((re.compile(k), bool(v)) for k, v in declared.items()),
            higher_is_better=bool(higher_is_better)))
        return fn

    return wrap


def parse_count(text: str) -> int:
    """``'50k'`` -> 50000, ``'2500'`` -> 2500."""
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)

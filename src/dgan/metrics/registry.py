"""Named metrics, looked up by the name they are logged under.

A metric is a function ``fn(opts: MetricOptions) -> dict[str, float]`` registered under one or
more names. Names say what they measure, StyleGAN2-ADA style: ``fid50k_full`` is FID from 50k
generated images against the full training set. A name may carry the sample count, so a
registration is a regular expression whose named group ``num`` (if any) becomes
``opts.num_samples``: ``fid(?P<num>\\d+k)_full`` serves ``fid10k_full`` and ``fid50k_full``.

Every rank of a distributed run calls the metric (it generates its share and joins the
collectives); only rank 0's result is logged.
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


def _ensure_builtin_metrics_loaded() -> None:
    # Importing the metric modules registers them; deferred so that importing the registry
    # stays cheap and free of heavy optional dependencies.
    import dgan.metrics.class_accuracy  # noqa: F401
    import dgan.metrics.fid  # noqa: F401
    import dgan.metrics.inception_score  # noqa: F401
    import dgan.metrics.kid  # noqa: F401
    import dgan.metrics.mode_coverage  # noqa: F401
    import dgan.metrics.ppl  # noqa: F401
    import dgan.metrics.precision_recall  # noqa: F401


def lookup_metric(name: str) -> tuple[MetricFn, int | None]:
    """Return the function serving ``name`` and the sample count in the name (if any)."""
    _ensure_builtin_metrics_loaded()
    for pattern, fn, _ in _REGISTRY:
        match = pattern.fullmatch(name)
        if match:
            num = match.groupdict().get("num")
            return fn, parse_count(num) if num else None
    raise ValueError(
        f"unknown metric {name!r}; valid metrics: {', '.join(available_metrics())}"
    )


def available_metrics() -> list[str]:
    """Patterns of all registered metric names, for error messages and ``--help``."""
    _ensure_builtin_metrics_loaded()
    return [pattern.pattern for pattern, _, _ in _REGISTRY]


def metric_name_forms() -> list[str]:
    """Registered metric names as users write them: ``fid<N>k_full``, ``fid_digits<N>_full``."""
    forms = []
    for pattern in available_metrics():
        text = re.sub(r"\(\?P<num>\\d\+k\)", "<N>k", pattern)
        text = re.sub(r"\(\?P<num>\\d\+k\?\)\?", "[<N>]", text)
        text = re.sub(r"\(\?P<num>\\d\+k\?\)", "<N>", text)
        forms.append(text)
    return forms


def compute_metric(name: str, opts: MetricOptions) -> dict[str, float]:
    """Compute metric ``name``; the result maps result names (e.g. ``fid50k_full``) to values."""
    fn, num = lookup_metric(name)
    if num is not None:
        opts = dataclasses.replace(opts, num_samples=num)
    return fn(opts)

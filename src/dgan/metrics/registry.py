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

from dgan.metrics.base import _REGISTRY, MetricFn, MetricOptions, parse_count


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

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
from collections.abc import Iterable
from pathlib import Path

from dgan.metrics.base import _REGISTRY, MetricFn, MetricOptions, Registration, parse_count
from dgan.metrics.feature_extractors import check_extractors_available


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


def registration_of(name: str) -> Registration | None:
    """The registration serving metric ``name`` (None: no metric has that name)."""
    _ensure_builtin_metrics_loaded()
    return next((r for r in _REGISTRY if r.pattern.fullmatch(name)), None)


def lookup_metric(name: str) -> tuple[MetricFn, int | None]:
    """Return the function serving ``name`` and the sample count in the name (if any)."""
    registration = registration_of(name)
    if registration is not None:
        num = registration.pattern.fullmatch(name).groupdict().get("num")  # type: ignore[union-attr]
        return registration.fn, parse_count(num) if num else None
    raise ValueError(
        f"unknown metric {name!r}; valid metrics: {', '.join(available_metrics())}"
    )


def available_metrics() -> list[str]:
    """Patterns of all registered metric names, for error messages and ``--help``."""
    _ensure_builtin_metrics_loaded()
    return [registration.pattern.pattern for registration in _REGISTRY]


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


def result_higher_is_better(result: str) -> bool | None:
    """Which way result ``result`` (``fid50k_full``, ``mode_kl``) or metric ``result``
    (``mode_coverage2500``) improves, as its metric declares it (None: no registered metric
    returns it or is named so)."""
    _ensure_builtin_metrics_loaded()
    for registration in _REGISTRY:
        for pattern, higher in registration.results:
            if pattern.fullmatch(result):
                return higher
    registration = registration_of(result)
    return None if registration is None else registration.higher_is_better


def extractors_for_metrics(metric_names: Iterable[str]) -> list[str]:
    """Names of the pretrained extractors the given metrics need, in first-use order."""
    needed: list[str] = []
    for name in metric_names:
        registration = registration_of(name)
        for extractor in registration.extractors if registration is not None else ():
            if extractor not in needed:
                needed.append(extractor)
    return needed


def check_weights_available(metric_names: Iterable[str], weights_dir: str | Path | None = None,
                            weights_paths: dict[str, str] | None = None,
                            download_timeout: float | None = None) -> None:
    """Fail now, not after training, if the metrics' extractor weights cannot be had
    (:func:`dgan.metrics.feature_extractors.check_extractors_available` of what they need).

    Args:
        metric_names: metric names as configured (e.g. ``["fid50k_full", "pr50k3_full"]``).
        weights_dir: directory of pre-downloaded weights (``fetch_weights`` output).
        weights_paths: explicit weights file per extractor name.
        download_timeout: socket timeout of a download attempt in seconds (None: the default).
    """
    kwargs = {} if download_timeout is None else {"download_timeout": download_timeout}
    check_extractors_available(extractors_for_metrics(metric_names), weights_dir,
                               weights_paths=weights_paths, **kwargs)

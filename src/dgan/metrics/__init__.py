"""Evaluation metrics: a registry of named metrics (``fid50k_full``, ``mode_coverage2500``, ...)."""

from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.registry import available_metrics, compute_metric

__all__ = ["MetricOptions", "available_metrics", "compute_metric", "register_metric"]

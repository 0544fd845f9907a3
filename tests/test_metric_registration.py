"""A metric is one registration: its names, its extractors and which way it improves; the
registry imports the metric files, the metric files import only metrics.base."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dgan.metrics import base, registry
from dgan.metrics.direction import UnknownDirection, higher_is_better
from dgan.metrics.feature_extractors import VGG16

METRICS_DIR = Path(registry.__file__).parent
METRIC_FILES = ["class_accuracy", "fid", "inception_score", "kid", "mode_coverage", "ppl",
                "precision_recall"]


@pytest.fixture
def scratch_metric():
    before = list(base._REGISTRY)

    @base.register_metric(r"sharpness(?P<num>\d+k?)_full", higher_is_better=False,
                          extractors=(VGG16,))
    def sharpness(opts: base.MetricOptions) -> dict[str, float]:
        """A metric registered by a test."""
        return {"sharpness2k_full": 0.0}

    yield sharpness
    base._REGISTRY[:] = before


def test_one_registration_gives_the_name_the_extractors_and_the_direction(scratch_metric) -> None:
    fn, num = registry.lookup_metric("sharpness2k_full")
    assert fn is scratch_metric and num == 2000
    assert registry.extractors_for_metrics(["sharpness2k_full", "fid_digits2k_full"]) == [VGG16]
    assert higher_is_better("sharpness2k_full") is False
    assert higher_is_better("sharpness2k_full_detail") is False  # a result with a suffix


def test_directions_come_from_the_metric_classes() -> None:
    from dgan.metrics.fid import FrechetDistance
    from dgan.metrics.precision_recall import PrecisionRecall

    assert higher_is_better("fid50k_full") is FrechetDistance.higher_is_better is False
    assert higher_is_better("pr50k3_full_precision") is PrecisionRecall.higher_is_better is True
    assert higher_is_better("mode_kl") is False and higher_is_better("modes_covered") is True
    assert higher_is_better("fid50k_full", override=True) is True


def test_a_result_no_metric_returns_has_no_guessed_direction() -> None:
    with pytest.raises(UnknownDirection, match="metrics.higher_is_better"):
        higher_is_better("my_kl_divergence")


@pytest.mark.parametrize("name", METRIC_FILES)
def test_metric_files_import_the_base_not_the_registry(name: str) -> None:
    tree = ast.parse((METRICS_DIR / f"{name}.py").read_text())
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert "dgan.metrics.base" in imported
    assert "dgan.metrics.registry" not in imported

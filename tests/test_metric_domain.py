"""A metric on the digits classifier's features refuses images that are not the digits, in one
line naming the metrics that fit, in training (before a step) and in evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.core.messages import MAX_ERROR_LINE
from dgan.data.digits import DigitsDataset
from dgan.evaluate import EvaluateOptions
from dgan.evaluate import run as evaluate
from dgan.metrics.domain import MetricDomainError, check_metric_domain, domain_of

from .conftest import compose_train

RESOLUTION = 64
NUM_IMAGES = 4


@pytest.fixture
def colour_images(tmp_path: Path) -> Path:
    """A folder of 3-channel 64 px images: not the digits."""
    folder = tmp_path / "shapes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(NUM_IMAGES):
        pixels = rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{k}.png")
    return folder


def _assert_refused(message: str, metric: str) -> None:
    assert "\n" not in message and len(message) < MAX_ERROR_LINE, message
    assert metric in message and "3 channels, 64 px" in message, message
    assert "fid50k_full" in message, message  # what fits these images


def test_training_refuses_a_digits_metric_on_colour_images(colour_images: Path,
                                                           tmp_path: Path) -> None:
    cfg = compose_train(["experiment=digits_stylegan2", "debug=default", "metrics=digits",
                         "metrics.metrics=[fid_digits2k_full]", "dataset=images",
                         f"dataset.path={colour_images}", "logger=none"], tmp_path / "run")
    with pytest.raises(ConfigError) as err:
        build_run(cfg)
    _assert_refused(str(err.value), "fid_digits2k_full")
    assert str(err.value).startswith("metrics.metrics: ")
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training


def test_evaluate_refuses_a_digits_metric_on_colour_images(colour_images: Path,
                                                           tmp_path: Path) -> None:
    opts = EvaluateOptions(images=str(colour_images), dataset="images",
                           metrics=["pr_digits2k_k3_full"], outdir=str(tmp_path / "out"))
    with pytest.raises(ConfigError) as err:
        evaluate(opts, {"path": str(colour_images)})
    _assert_refused(str(err.value), "pr_digits2k_k3_full")
    assert not (tmp_path / "out").exists()


def test_the_digits_pass_and_every_digits_metric_has_the_rule() -> None:
    digits = DigitsDataset(resolution=16)
    check_metric_domain(["fid_digits2k_full", "pr_digits2k_k3_full", "mode_coverage2500",
                         "fid50k_full"], digits)
    for name in ("fid_digits2k_full", "pr_digits2k3_full", "pr_digits500_k3_full",
                 "cacc_digits2k"):
        assert domain_of(name) is not None, name
    for name in ("fid50k_full", "pr50k_k3_full", "kid50k_full", "mode_coverage2500"):
        assert domain_of(name) is None, name


def test_a_three_channel_digits_set_is_refused_too() -> None:
    class RgbDigits(DigitsDataset):
        num_channels = 3

    rgb = RgbDigits.__new__(RgbDigits)
    rgb.name, rgb.resolution = "digits", 16
    # A subclass is another dataset: only the class the classifier was trained on passes.
    with pytest.raises(MetricDomainError, match="fid_digits2k_full"):
        check_metric_domain(["fid_digits2k_full"], rgb)

"""cacc_digitsN: does a conditional generator draw the digit it is asked for?"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dgan.data.digits import DigitsDataset, load_digits_uint8, upscale
from dgan.data.toy import ToyDataset
from dgan.metrics import digits_features
from dgan.metrics.class_accuracy import check_class_accuracy, classes_of
from dgan.metrics.direction import higher_is_better
from dgan.metrics.registry import (
    MetricOptions,
    compute_metric,
    extractors_for_metrics,
    lookup_metric,
)

NUM = 2000


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("digits_cache")
    digits_features.load_digits_classifier(directory)
    return directory


@pytest.fixture(scope="module")
def dataset() -> DigitsDataset:
    return DigitsDataset(resolution=32)


class RealDigits(nn.Module):
    """A stand-in G that returns real digits: of the class in ``c`` (``follow_label``), or of
    whichever class its latent picks."""

    def __init__(self, follow_label: bool, c_dim: int = 10) -> None:
        super().__init__()
        raw, targets = load_digits_uint8()
        images = torch.from_numpy(upscale(raw, 32)).float()
        self.register_buffer("images", images / 127.5 - 1)
        self.targets = torch.from_numpy(targets)
        self.follow_label = follow_label
        self.z_dim, self.c_dim = 8, c_dim

    def forward(self, z: torch.Tensor, c: torch.Tensor, **_: object) -> torch.Tensor:
        # A latent-dependent pick, so that the images differ from sample to sample.
        pick = (z[:, 0].abs() * 1e4).long()
        if not self.follow_label:
            return self.images[pick % len(self.images)]
        out = []
        for k, p in zip(c.argmax(dim=1).tolist(), pick.tolist(), strict=True):
            of_class = torch.nonzero(self.targets == k).flatten()
            out.append(self.images[of_class[p % len(of_class)]])
        return torch.stack(out)


def _opts(G: nn.Module, dataset, cache: Path) -> MetricOptions:
    return MetricOptions(G=G, dataset=dataset, cache_dir=cache, batch_size=250)


def test_registered_like_the_other_metrics() -> None:
    fn, num = lookup_metric("cacc_digits2k")
    assert num == NUM and lookup_metric("cacc_digits500")[1] == 500
    assert higher_is_better("cacc_digits2k") and higher_is_better("cacc_digits2k_class3")
    assert extractors_for_metrics(["cacc_digits2k"]) == []  # no download: trained here
    assert classes_of(range(20)) == list(range(10)) * 2  # 200 per class out of 2,000


def test_generator_that_draws_the_asked_class_scores_high(digits_cache, dataset) -> None:
    out = compute_metric("cacc_digits2k", _opts(RealDigits(True), dataset, digits_cache))
    assert list(out)[0] == "cacc_digits2k"
    assert sorted(out) == sorted(["cacc_digits2k", *(f"cacc_digits2k_class{k}" for k in
                                                     range(10))])
    assert out["cacc_digits2k"] > 0.9
    assert min(out[f"cacc_digits2k_class{k}"] for k in range(10)) > 0.8
    mean_of_classes = sum(out[f"cacc_digits2k_class{k}"] for k in range(10)) / 10
    assert out["cacc_digits2k"] == pytest.approx(mean_of_classes)  # 200 of each class


def test_generator_that_ignores_the_class_scores_chance(digits_cache, dataset) -> None:
    out = compute_metric("cacc_digits2k", _opts(RealDigits(False), dataset, digits_cache))
    assert 0.06 < out["cacc_digits2k"] < 0.14


class Exploding(nn.Module):
    """A G that must not be called: the refusals come before any sample."""

    def __init__(self, c_dim: int) -> None:
        super().__init__()
        self.z_dim, self.c_dim = 8, c_dim

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("the metric generated samples before refusing")


@pytest.mark.parametrize("c_dim", [0, 3])
def test_refused_for_a_generator_not_conditioned_on_the_digits(digits_cache, dataset,
                                                               c_dim: int) -> None:
    with pytest.raises(ValueError, match=rf"cacc_digits2k needs .*c_dim={c_dim}") as info:
        compute_metric("cacc_digits2k", _opts(Exploding(c_dim), dataset, digits_cache))
    assert "\n" not in str(info.value) and len(str(info.value)) < 250


def test_refused_for_a_dataset_that_is_not_the_digits(digits_cache) -> None:
    toy = ToyDataset(name="gaussians25")
    with pytest.raises(ValueError, match="cacc_digits2k.*'gaussians25'.*dataset=digits") as info:
        compute_metric("cacc_digits2k", _opts(Exploding(10), toy, digits_cache))
    assert "\n" not in str(info.value)
    # Names that are not the class accuracy pass the check untouched.
    check_class_accuracy(["fid_digits2k_full"], Exploding(0), toy)


def _tiny_run(tmp_path: Path, experiment: str, cache: Path):
    from omegaconf import open_dict

    from dgan.assembly.builder import build_run
    from dgan.config.debug import apply_debug

    from .conftest import compose_train

    # The metric and the checkpoint are what is tested; the other callbacks only cost time.
    quiet = [f"callbacks.{name}=null" for name in
             ("samples", "progress", "throughput", "diagnostics", "overfitting", "toy_figure")]
    cfg = compose_train([f"experiment={experiment}", "debug=default", "metrics=digits",
                         "metrics.metrics=[cacc_digits200]", "metrics.every_kimg=0", *quiet],
                        tmp_path / "run")
    with open_dict(cfg):
        cfg.paths.cache_dir = str(cache)
    apply_debug(cfg)
    return build_run(cfg)


def test_refused_before_training_for_an_unconditional_run(tmp_path, digits_cache) -> None:
    from dgan.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^metrics\.metrics: cacc_digits200 needs .*c_dim=0; "
                                          r"train one with experiment=digits_stylegan2_cond$"):
        _tiny_run(tmp_path, "digits_stylegan2", digits_cache)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_usable_in_training_and_in_evaluate(tmp_path, digits_cache, capsys) -> None:
    import json

    from PIL import Image

    from dgan import evaluate

    run = _tiny_run(tmp_path, "digits_stylegan2_cond", digits_cache)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    values = [last[f"cacc_digits200_class{k}"] for k in range(10)]
    assert all(0 <= v <= 1 for v in values)
    assert last["cacc_digits200"] == pytest.approx(sum(values) / 10)

    out = tmp_path / "eval"
    assert evaluate.main([f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
                          "metrics=[cacc_digits200]", f"cache_dir={digits_cache}",
                          f"outdir={out}"]) == 0
    results = json.loads((out / "metrics-last.json").read_text())["results"]
    assert sorted(results) == sorted(["cacc_digits200", *(f"cacc_digits200_class{k}" for k in
                                                          range(10))])

    # A folder of images has no labels to draw for: refused before any image is scored.
    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):
        Image.new("L", (32, 32), color=i * 25).save(images / f"{i}.png")
    capsys.readouterr()
    assert evaluate.main([f"images={images}", "dataset=digits", "metrics=[cacc_digits10]",
                          f"cache_dir={digits_cache}", f"outdir={out}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and "cacc_digits10" in errors[0] and "no labels" in errors[0]

"""The adaptive rate of every CPU-sized experiment follows one rule: ada_kimg = 0.1 * kimg.

The paper's ada_kimg (100) is for runs of 25,000+ kimg; at that rate p of a run of a few dozen
kimg barely moves. Experiments on the embedded digits and on the toy sets (the runs a CPU can
afford) let p cross [0, 1] in a tenth of the run; the paper-scale experiments keep 100.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dgan  # noqa: F401  (registers the config resolvers)
from tests.conftest import CONF

RUN_SHARE = 0.1
# The former default job, kept as it was (the paper's rate) to compare the recipes with.
FORMER_RECIPES = {"digits_stylegan2_32px"}
CPU_DATASETS = {"dgan.data.digits.DigitsDataset", "dgan.data.toy.ToyDataset"}
# Image-folder experiments sized for the CPU: the user's own images with model=images_cpu.
CPU_IMAGE_EXPERIMENTS = {"images"}
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _experiment(compose_cfg, name: str, *extra: str):
    # Paper-scale image experiments need a dataset path to compose their metrics' reference.
    return compose_cfg(f"experiment={name}", "dataset.path=/data/none.zip", *extra) \
        if "images" in (CONF / "experiment" / f"{name}.yaml").read_text() \
        else compose_cfg(f"experiment={name}", *extra)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_cpu_sized_experiments_scale_the_rate_to_the_run(compose_cfg, name: str) -> None:
    cfg = _experiment(compose_cfg, name)
    if name in FORMER_RECIPES:
        assert cfg.ada_share is None and cfg.adaptive.ada_kimg == 100
        return
    if cfg.dataset._target_ not in CPU_DATASETS and name not in CPU_IMAGE_EXPERIMENTS:
        assert cfg.ada_share is None
        assert cfg.adaptive.ada_kimg == 100, "paper-scale experiments keep the paper's rate"
        return
    assert cfg.ada_share == RUN_SHARE
    assert cfg.adaptive.ada_kimg == pytest.approx(RUN_SHARE * cfg.kimg)
    # The rule follows kimg= from the command line, and ADA's own heuristic follows it too.
    longer = _experiment(compose_cfg, name, f"kimg={3 * cfg.kimg}", "augment=ada")
    assert longer.adaptive.ada_kimg == pytest.approx(RUN_SHARE * 3 * cfg.kimg)
    assert longer.augment_p.ada_kimg == pytest.approx(RUN_SHARE * 3 * cfg.kimg)


def test_no_experiment_sets_ada_kimg_by_hand() -> None:
    # The share, not hand-computed numbers that drift from kimg when it changes.
    for name in EXPERIMENTS:
        text = (CONF / "experiment" / f"{name}.yaml").read_text()
        assert "ada_kimg" not in text, name


def test_without_diffusion_the_share_leaves_no_adaptive_node(compose_cfg) -> None:
    cfg = compose_cfg("experiment=digits_stylegan2", "diffusion=none")
    assert cfg.ada_share == RUN_SHARE and cfg.adaptive is None and cfg.diffusion is None


def test_ada_share_from_the_command_line_scales_a_paper_experiment(compose_cfg) -> None:
    cfg = compose_cfg("experiment=cifar10_stylegan2", "dataset.path=/data/none.zip",
                      "ada_share=0.05", "kimg=200")
    assert cfg.adaptive.ada_kimg == pytest.approx(10.0)


def test_experiment_list_is_not_empty() -> None:
    assert len(EXPERIMENTS) > 10 and Path(CONF).is_dir()

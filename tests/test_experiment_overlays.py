"""An overlay's keys under a group chosen as none are refused before anything is built."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError


def test_keys_of_a_group_set_to_none_are_refused_in_one_line(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gaussians25", "diffusion=none", "metrics=none")
    with open_dict(cfg):
        # What an experiment that sets diffusion.noise_std leaves under diffusion=none.
        cfg.diffusion = {"noise_std": 0.3}
    with pytest.raises(ConfigError, match=r"^diffusion has noise_std but no _target_"):
        build_run(cfg)


def test_the_collapse_experiment_runs_as_a_plain_gan(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gaussians25_collapse", "diffusion=none")
    assert cfg.diffusion is None and cfg.adaptive is None
    assert cfg.model.generator.activation == "leaky_relu"
    assert (cfg.model.generator.hidden, cfg.model.generator.num_layers) == (128, 2)
    assert (cfg.model.discriminator.hidden, cfg.model.discriminator.num_layers) == (128, 2)

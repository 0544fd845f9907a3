"""The ``debug=default`` overlay (issue 25, item 4): every experiment composes and builds with
tiny networks, and a few of them train in seconds on a CPU."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan.assembly.builder import build_run
from dgan.config.debug import apply_debug

from .conftest import CONF, compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Trainable parameters of each network under debug=default, whatever the experiment's preset
# (full-width presets have 20-30 million).
MAX_TRAINABLE = 1_000_000
ANY_RESOLUTION = 32


def _image_zip(path: Path, resolution: int, count: int = 2) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for k in range(count):
            pixels = rng.integers(0, 256, (resolution, resolution, 3), np.uint8)
            with zf.open(f"{k:08d}.png", "w") as f:
                Image.fromarray(pixels).save(f, format="PNG")
    return path


def _debug_config(experiment: str, tmp_path: Path):
    overrides = [f"experiment={experiment}", "debug=default"]
    cfg = compose_train(overrides, tmp_path / "run")
    if cfg.dataset.get("path", "missing") is None:  # an image experiment: data of its size
        # experiment=images leaves the resolution to the data (null): any size does.
        resolution = int(cfg.model.generator.img_resolution or ANY_RESOLUTION)
        data = _image_zip(tmp_path / f"data{resolution}.zip", resolution)
        cfg = compose_train([*overrides, f"dataset.path={data}"], tmp_path / "run")
    assert apply_debug(cfg)
    return cfg


def _trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_every_experiment_file_is_listed() -> None:
    assert len(EXPERIMENTS) >= 24 and "digits_stylegan2_cond" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_builds_tiny_under_debug(experiment: str, tmp_path: Path) -> None:
    cfg = _debug_config(experiment, tmp_path)
    assert cfg.kimg == 0.04 and cfg.model.batch_size == 8
    assert list(cfg.metrics.metrics) == []
    run = build_run(cfg)
    assert _trainable(run.module.G) < MAX_TRAINABLE, experiment
    assert _trainable(run.module.D) < MAX_TRAINABLE, experiment
    assert run.run_dir.name == "run"


def test_debug_leaves_a_config_without_the_overlay_alone(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=digits_stylegan2"], tmp_path / "run")
    before = cfg.model.generator.channel_max
    assert not apply_debug(cfg)
    assert cfg.model.generator.channel_max == before


@pytest.mark.parametrize("experiment",
                         ["digits_stylegan2", "gaussians25", "digits_projectedgan"])
def test_debug_trains_its_few_steps(experiment: str, tmp_path: Path) -> None:
    # What it costs is make bench's concern: a wall-clock bound here fails on a busy machine.
    cfg = _debug_config(experiment, tmp_path)
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.module.cur_nimg == 40 and run.module.cur_step == 5
    assert (run.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run.run_dir / "samples").glob("*.png"))
    assert (run.run_dir / "metrics.csv").is_file()

"""StyleGAN2 experiments through the Hydra compose API: few-step CPU training runs on the
embedded digits and on a tiny generated zip, and the dataset.path error of every image
experiment."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError

from .conftest import CONF

# Cadences off and a handful of steps: these tests check that the real presets train end to
# end on CPU, not what they learn.
QUIET = [
    "metrics=none",
    "callbacks.samples.every_kimg=0",
    "callbacks.checkpoint.every_kimg=0",
    "trainer.log_every_n_steps=1",
]

IMAGE_EXPERIMENTS = sorted(
    p.stem for p in (CONF / "experiment").glob("*.yaml")
    if "override /dataset: images" in p.read_text()
)


def _tiny_zip(path: Path, count: int = 8, resolution: int = 32) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for k in range(count):
            image = Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), np.uint8))
            with zf.open(f"{k:08d}.png", "w") as f:
                image.save(f, format="PNG")
    return path


def _fit(cfg) -> object:
    run = build_run(cfg)
    params_before = torch.cat([p.detach().flatten() for p in run.module.G.parameters()])
    run.trainer.fit(run.module, datamodule=run.datamodule)
    params_after = torch.cat([p.detach().flatten() for p in run.module.G.parameters()])
    assert not torch.equal(params_before, params_after), "G did not train"
    return run


def test_digits_stylegan2_trains_and_writes_samples(compose_cfg) -> None:
    # 3 steps of batch 8: R1 runs at step 0 (lazy interval 16), so every phase is exercised.
    cfg = compose_cfg("experiment=digits_stylegan2", "kimg=0.024", "model.batch_size=8",
                      "model.discriminator.mbstd_group_size=4", *QUIET)
    run = _fit(cfg)
    module = run.module
    assert module.cur_nimg == 24 and module.cur_step == 3
    assert module.G_ema.img_channels == 1 and module.G_ema.img_resolution == 16
    grids = sorted((run.run_dir / "samples").glob("fakes*.png"))
    assert grids, "no sample grid written at the end"
    assert (run.run_dir / "samples" / "reals.png").exists()
    assert (run.run_dir / "checkpoints" / "last.ckpt").exists()
    # Fixed latents with constant noise inputs give the same images every time.
    z = torch.randn(2, module.G_ema.z_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(module.generate(z, noise_mode="const"),
                               module.generate(z, noise_mode="const"))


def test_cifar10_stylegan2_trains_on_a_tiny_zip_at_reduced_batch(compose_cfg, tmp_path) -> None:
    data = _tiny_zip(tmp_path / "tiny-cifar.zip")
    # The full-width cifar preset at batch 4: one step (~1.5 TFLOP less than batch 32) per
    # phase; width stays the preset's, so this is the network users train on GPUs.
    cfg = compose_cfg("experiment=cifar10_stylegan2", f"dataset.path={data}", "kimg=0.004",
                      "model.batch_size=4", "model.batch_gpu=null",
                      "model.discriminator.mbstd_group_size=4", *QUIET)
    assert cfg.model.generator.channel_base == 32768
    assert cfg.model.discriminator.architecture == "orig"
    run = _fit(cfg)
    assert run.module.cur_nimg == 4
    assert run.datamodule.dataset.resolution == 32
    assert len(run.datamodule.dataset) == 16  # 8 images, mirrored (dataset.xflip=true)


@pytest.mark.parametrize("experiment", IMAGE_EXPERIMENTS)
def test_image_experiment_without_dataset_path_fails_clearly(compose_cfg, experiment) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    with pytest.raises(ConfigError) as excinfo:
        build_run(cfg)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "dataset.path" in message and "python -m dgan.data.prepare" in message


def test_every_paper_experiment_is_covered() -> None:
    assert IMAGE_EXPERIMENTS == sorted([
        "afhq_cat_stylegan2", "afhq_dog_stylegan2", "afhq_wild_stylegan2", "celeba64_stylegan2",
        "cifar10_stylegan2", "ffhq_stylegan2", "lsun_bedroom_stylegan2",
        "lsun_church_stylegan2", "stl10_stylegan2",
        "afhq_cat_insgen", "afhq_dog_insgen", "afhq_wild_insgen",
        "cifar10_projectedgan", "stl10_projectedgan", "lsun_bedroom_projectedgan",
        "lsun_church_projectedgan",
        "images",  # the own-images recipe, sized from the data (tests/test_images_experiment.py)
    ])


def test_resolution_mismatch_between_data_and_model_fails_before_training(
        compose_cfg, tmp_path) -> None:
    data = _tiny_zip(tmp_path / "tiny64.zip", count=2, resolution=64)
    cfg = compose_cfg("experiment=cifar10_stylegan2", f"dataset.path={data}")
    with pytest.raises(ConfigError, match="resolution 64 does not match model resolution 32"):
        build_run(cfg)

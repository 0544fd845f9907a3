"""experiment=images (issue 37, item 1): one experiment for any image dataset, sized from the
data, with an offline metric; and its CPU path end to end on a folder of generated images."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from dgan.config.data_sizing import size_from_data
from dgan.core.errors import ConfigError
from dgan.metrics.pixel_features import PIXEL_SIDE, pixel_extractor

from .conftest import compose_train

SIDE = 32          # the folder's images: small, so the tiny networks train in seconds
NUM_IMAGES = 12
METRIC = "fid_pixels64_full"


def _shapes(folder: Path, count: int = NUM_IMAGES) -> Path:
    """Coloured squares and discs on dark backgrounds (RGB PNGs)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k in range(count):
        image = Image.new("RGB", (SIDE, SIDE), tuple(int(v) for v in rng.integers(0, 80, 3)))
        x, y = (int(v) for v in rng.integers(2, SIDE // 2, 2))
        size = int(rng.integers(SIDE // 4, SIDE // 2))
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        draw = ImageDraw.Draw(image)
        (draw.ellipse if k % 2 else draw.rectangle)([x, y, x + size, y + size], fill=colour)
        image.save(folder / f"{k:03d}.png")
    return folder


def test_the_experiment_brings_nothing_from_another_dataset() -> None:
    cfg = compose_train(["experiment=images", "dataset.path=data/mine64.zip"])
    assert cfg.hydra.run.dir.startswith("outputs/images-mine64/")
    assert cfg.dataset.xflip is False and cfg.dataset.use_labels is False
    assert list(cfg.metrics.metrics) == ["fid_pixels2k_full"]  # offline: no weights to fetch
    assert cfg.kimg <= 10 and cfg.ada_share is not None
    assert cfg.adaptive.ada_kimg == pytest.approx(cfg.ada_share * cfg.kimg)
    assert cfg.metrics.every_kimg == pytest.approx(cfg.kimg / cfg.points_per_run)
    generator = cfg.model.generator
    assert (generator.img_resolution, generator.img_channels, generator.c_dim) == (None,) * 3
    assert generator.channel_max == 64  # the CPU-sized model by default
    folder = compose_train(["experiment=images", "dataset.path=/data/my-faces/"])
    assert folder.hydra.run.dir.startswith("outputs/images-my-faces/")


def test_the_gpu_model_is_sized_from_the_data_too() -> None:
    cfg = compose_train(["experiment=images", "model=stylegan2_auto", "trainer.devices=1",
                         "dataset.path=x.zip"])
    data = SimpleNamespace(resolution=128, num_channels=3, c_dim=10)
    assert size_from_data(cfg, data) == {"img_resolution": 128, "img_channels": 3, "c_dim": 10}
    assert cfg.model.discriminator.img_resolution == 128 and cfg.model.discriminator.c_dim == 10
    # The auto preset follows the resolution it was given (StyleGAN2-ADA at 128 px on 1 GPU:
    # batch 32, gamma 0.0002 * 128 ** 2 / 32).
    assert cfg.model.batch_size == 32 and cfg.model.loss.r1_gamma == pytest.approx(0.1024)
    assert size_from_data(cfg, data) == {}  # nothing left for the data


def test_a_missing_dataset_path_stops_in_one_line() -> None:
    cfg = compose_train(["experiment=images"])
    with pytest.raises(ConfigError) as err:
        size_from_data(cfg)
    assert "dataset.path is required" in str(err.value) and "\n" not in str(err.value)


def test_pixel_features_keep_the_channels_and_average_the_pixels() -> None:
    extractor = pixel_extractor()
    grey = torch.full((2, 1, 16, 16), 255, dtype=torch.uint8)
    rgb = torch.zeros((3, 3, 64, 64), dtype=torch.uint8)
    rgb[:, 0, :32] = 255  # red in the top half
    assert extractor(grey)["pixels"].shape == (2, PIXEL_SIDE ** 2)
    assert torch.equal(extractor(grey)["pixels"], torch.ones(2, PIXEL_SIDE ** 2))
    red = extractor(rgb)["pixels"].view(3, 3, PIXEL_SIDE, PIXEL_SIDE)
    assert red[:, 0, : PIXEL_SIDE // 2].eq(1).all() and red[:, 0, PIXEL_SIDE // 2:].eq(0).all()
    assert red[:, 1:].eq(0).all()


def test_cpu_path_end_to_end_on_a_folder_of_images(tmp_path: Path, monkeypatch, capsys) -> None:
    from dgan import evaluate, generate
    from dgan.data import prepare
    from dgan.train import train

    monkeypatch.chdir(tmp_path)
    _shapes(tmp_path / "shapes")
    assert prepare.main([f"--source={tmp_path / 'shapes'}", "--dest=data/shapes.zip",
                         f"--resolution={SIDE}"]) in (0, None)
    run_dir = tmp_path / "run"
    cfg = compose_train(["experiment=images", "dataset.path=data/shapes.zip", "debug=default",
                         "metrics=images", f"metrics.metrics=[{METRIC}]",
                         f"hydra.run.dir={run_dir}"], run_dir)
    train(cfg)
    out = capsys.readouterr().out
    assert "[dgan] finished at kimg" in out
    # Sized from the data: 32 px, RGB, no labels.
    assert (cfg.model.generator.img_resolution, cfg.model.generator.img_channels,
            cfg.model.generator.c_dim) == (SIDE, 3, 0)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    values = [row[METRIC] for row in rows if METRIC in row]
    assert len(values) >= 2 and all(np.isfinite(values))
    ckpt = run_dir / "checkpoints" / "last.ckpt"

    assert generate.main([f"ckpt={ckpt}", "seeds=0-3", f"outdir={tmp_path / 'gen'}"]) in (0, None)
    pictures = sorted((tmp_path / "gen").glob("seed*.png"))
    assert len(pictures) == 4
    with Image.open(pictures[0]) as picture:
        assert picture.size == (SIDE, SIDE) and picture.mode == "RGB"

    assert evaluate.main([f"ckpt={ckpt}", f"metrics=[{METRIC}]"]) in (0, None)
    result = json.loads((ckpt.parent / "metrics-last.json").read_text())
    found = result.get("results", result)
    assert found[METRIC] == values[-1]  # evaluate reproduces the run's last value

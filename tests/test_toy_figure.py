"""The paper-style toy figure: written by a toy run and by dgan.generate for its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from dgan.files.toy_figure import discriminator_maps, figure_timesteps
from dgan.generate import TOY_FIGURE_FILE, GenerateOptions
from dgan.generate import run as generate_run
from dgan.networks.mlp import MLPDiscriminator

from .conftest import fit_in_process

FAST = ["experiment=gaussians25", "kimg=1", "model.batch_size=64",
        "model.generator.hidden=32", "model.discriminator.hidden=32", "metrics=none",
        "callbacks.samples.every_kimg=0", "callbacks.checkpoint.every_kimg=1",
        "trainer.log_every_n_steps=5"]


@pytest.mark.parametrize("plain", [False, True], ids=["diffusion", "plain"])
def test_toy_run_and_generate_write_the_figure(tmp_path: Path, plain: bool) -> None:
    run_dir = tmp_path / "run"
    run = fit_in_process(FAST + (["diffusion=none"] if plain else []), run_dir)
    figures = sorted((run_dir / "samples").glob("toy*.png"))
    assert figures, "the run wrote no toy figure"
    panels = 2 if plain else 1 + len(figure_timesteps(int(run.module.diffusion.T)))
    width, height = Image.open(figures[-1]).size
    assert width > height * (panels - 1)  # one square-ish panel per map, side by side

    out = tmp_path / "gen"
    written = generate_run(GenerateOptions(ckpt=str(run_dir / "checkpoints" / "last.ckpt"),
                                           outdir=str(out), seeds="0-99", device="cpu"))
    assert out / TOY_FIGURE_FILE in written
    assert Image.open(out / TOY_FIGURE_FILE).size == Image.open(figures[-1]).size


def test_maps_are_sigmoid_of_d_at_each_t() -> None:
    torch.manual_seed(0)
    D = MLPDiscriminator(hidden=16, t_conditioning="raw", t_max=100).eval()
    ts = [0, 50, 100]
    maps = discriminator_maps(D, ts, lim=2.0, steps=5)
    assert maps.shape == (3, 5, 5)
    # Row 0 is y2 = -2, column 4 is y1 = +2.
    point = torch.tensor([[2.0, -2.0]])
    for k, t in enumerate(ts):
        expected = torch.sigmoid(D(point, torch.zeros(1, 0), torch.tensor([t])))
        assert maps[k, 0, 4] == pytest.approx(float(expected), abs=1e-6)
    assert not torch.equal(maps[0], maps[2])  # t reaches D


def test_figure_timesteps() -> None:
    assert figure_timesteps(None) == [None]
    assert figure_timesteps(10) == [0, 5, 10]
    assert figure_timesteps(1) == [0, 1]

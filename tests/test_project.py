"""The projector (issue 26, item 4): a small StyleGAN2 projected onto an image it made from
another seed gets closer in LPIPS over the steps; the command writes the target, the projection,
w as ``projected_w.npz`` and a progress video; a missing ``vgg16.pt``, a FastGAN generator and an
unreadable target each stop in one line.

NVIDIA's ``vgg16.pt`` cannot be downloaded here: the stand-in TorchScript file of the PPL tests
(same call, ``vgg(img, resize_images=False, return_lpips=True)``) is written where the metrics'
loader looks for it, ``weights_dir/vgg16.pt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan import project
from dgan.files.pictures import to_uint8
from dgan.generate import generate

from .generator_files import (
    FASTGAN_LITE,
    STYLEGAN2,
    STYLEGAN2_NUM_WS,
    loaded_generator,
    write_generator_checkpoint,
)
from .test_ppl import write_standin_vgg16

RES = STYLEGAN2["img_resolution"]
W_DIM = STYLEGAN2["w_dim"]
TARGET_SEED = 5
STEPS = 60
W_AVG_SAMPLES = 500
# The last step's distance is below this fraction of the first one's (measured: about 0.45 with
# the noise maps fitted, 0.54 with w alone, which cannot match the target's noise).
FALL = 0.65
# Side bands added to the target file: centre-cropping must remove them again.
BAND = 4


@pytest.fixture(scope="module")
def stylegan2_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generator_checkpoint(STYLEGAN2, tmp_path_factory.mktemp("sg2") / "g.ckpt")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("weights")
    write_standin_vgg16(directory)
    return directory


@pytest.fixture(scope="module")
def target_uint8(stylegan2_ckpt: Path) -> torch.Tensor:
    """G's own image of another seed than any the projector draws."""
    return to_uint8(generate(loaded_generator(stylegan2_ckpt), [TARGET_SEED]))[0]


@pytest.fixture
def target_file(target_uint8: torch.Tensor, tmp_path: Path) -> Path:
    """The target inside white side bands (a wider-than-tall picture)."""
    array = target_uint8.permute(1, 2, 0).numpy()
    wide = np.full((RES, RES + 2 * BAND, 3), 255, dtype=np.uint8)
    wide[:, BAND:BAND + RES] = array
    path = tmp_path / "target.jpg.png"
    Image.fromarray(wide).save(path)
    return path


def test_lpips_distance_falls(stylegan2_ckpt: Path, weights_dir: Path,
                              target_uint8: torch.Tensor) -> None:
    G = loaded_generator(stylegan2_ckpt)
    noise_before = {n: b.clone() for n, b in G.synthesis.named_buffers() if "noise_const" in n}
    lpips = project.load_lpips(str(weights_dir), torch.device("cpu"))
    result = project.project(G, target_uint8, lpips, steps=STEPS, w_avg_samples=W_AVG_SAMPLES)
    assert len(result.distances) == STEPS
    assert result.ws.shape == (STEPS, STYLEGAN2_NUM_WS, W_DIM)
    first, last = result.distances[0], result.distances[-1]
    assert last < FALL * first, result.distances
    # The caller's G keeps its noise; the fitted copy has new maps of unit variance.
    for name, before in noise_before.items():
        assert torch.equal(dict(G.synthesis.named_buffers())[name], before)
        fitted = dict(result.G.synthesis.named_buffers())[name]
        assert not torch.equal(fitted, before)
        assert float(fitted.square().mean()) == pytest.approx(1.0, rel=1e-4)
    # w alone (no noise maps at all) gets closer too.
    w_only = project.project(G, target_uint8, lpips, steps=STEPS, w_avg_samples=W_AVG_SAMPLES,
                             noise_mode="none")
    assert w_only.distances[-1] < FALL * w_only.distances[0], w_only.distances


def test_command_writes_target_projection_w_and_video(
        stylegan2_ckpt: Path, weights_dir: Path, target_file: Path, target_uint8: torch.Tensor,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    imageio = pytest.importorskip("imageio")  # the dev install has it (extra "video")
    out = tmp_path / "proj"
    steps = 12
    assert project.main([f"ckpt={stylegan2_ckpt}", f"target={target_file}", f"outdir={out}",
                         f"steps={steps}", f"w_avg_samples={W_AVG_SAMPLES}", "save_video=true",
                         f"weights_dir={weights_dir}", "device=cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "proj.mp4", "proj.png", "projected_w.npz", "target.png"]
    # The side bands are cropped away and the target is G's picture again.
    target = np.asarray(Image.open(out / "target.png"))
    assert np.array_equal(target, target_uint8.permute(1, 2, 0).numpy())
    saved = np.load(out / "projected_w.npz")
    assert saved["w"].shape == (1, STYLEGAN2_NUM_WS, W_DIM)
    noise_keys = sorted(k for k in saved.files if k.startswith("noise."))
    assert len(noise_keys) == STYLEGAN2_NUM_WS - 1  # every convolution has a noise map
    # proj.png is w rendered with the fitted noise maps that the npz holds.
    G = loaded_generator(stylegan2_ckpt)
    buffers = dict(G.synthesis.named_buffers())
    for key in noise_keys:
        buffers[key[len("noise."):] + ".noise_const"].copy_(torch.from_numpy(saved[key]))
    rendered = G.synthesis(torch.from_numpy(saved["w"]), noise_mode="const")
    assert np.array_equal(np.asarray(Image.open(out / "proj.png")),
                          to_uint8(rendered)[0].permute(1, 2, 0).numpy())
    reader = imageio.get_reader(out / "proj.mp4", format="FFMPEG")
    try:
        assert reader.count_frames() == steps
        assert reader.get_data(0).shape == (RES, 2 * RES, 3)  # target beside projection
    finally:
        reader.close()
    assert "LPIPS distance" in capsys.readouterr().out


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_missing_vgg16_is_the_offline_error(stylegan2_ckpt: Path, target_file: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "no_weights"
    empty.mkdir()
    out = tmp_path / "never"
    assert project.main([f"ckpt={stylegan2_ckpt}", f"target={target_file}", f"outdir={out}",
                         f"weights_dir={empty}"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("error: NVIDIA's VGG16")
    assert "expected file 'vgg16.pt'" in line and "python -m dgan.metrics.fetch_weights" in line
    # project's own key, not training's metrics.weights_dir
    assert "`weights_dir=DIR`" in line and "metrics.weights_dir" not in line
    assert not out.exists()


def test_fastgan_and_bad_targets_are_one_line(weights_dir: Path, stylegan2_ckpt: Path,
                                              target_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fastgan = write_generator_checkpoint(FASTGAN_LITE, tmp_path / "fastgan.ckpt")
    out = tmp_path / "never"
    base = [f"outdir={out}", f"weights_dir={weights_dir}"]
    assert project.main([f"ckpt={fastgan}", f"target={target_file}", *base]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: FastGANGenerator has no w space (no mapping network); the projector needs a "
        "StyleGAN2 generator"]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    assert project.main([f"ckpt={stylegan2_ckpt}", f"target={not_an_image}", *base]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: target={not_an_image}: not an image Pillow can read")
    assert project.main([f"ckpt={stylegan2_ckpt}", f"target={tmp_path / 'none.png'}",
                         *base]) == 2
    assert "no such file" in capsys.readouterr().err
    assert project.main([f"ckpt={stylegan2_ckpt}", f"target={target_file}", "noise_mode=random",
                         *base]) == 2
    assert "noise_mode='random' is not valid; expected one of const, none" in (
        capsys.readouterr().err)
    assert not out.exists()


def test_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert project.main(["--help"]) == 0
    text = capsys.readouterr().out
    for key in ("target=null", "steps=1000", "seed=303", "noise_mode=const", "save_video=False",
                "weights_dir=null"):
        assert key in text

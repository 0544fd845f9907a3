"""Interpolation videos (issue 26, item 5): frame counts, key frames equal to the seeds' images,
a loop that leads back to its start, an MP4 that reads back, PNG frames, and one error line for
settings a generator cannot follow."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dgan import video
from dgan.generate import generate
from dgan.inference.sampling import seed_latent
from dgan.video import num_frames, slerp, video_frames

from .generator_files import (
    FASTGAN_LITE,
    STYLEGAN2,
    loaded_generator,
    write_generator_checkpoint,
)

FRAMES = 4
SEEDS = [3, 7, 11]


@pytest.fixture(scope="module")
def stylegan2_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generator_checkpoint(STYLEGAN2, tmp_path_factory.mktemp("sg2") / "g.ckpt")


@pytest.fixture(scope="module")
def fastgan_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generator_checkpoint(FASTGAN_LITE, tmp_path_factory.mktemp("fg") / "g.ckpt")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("space", ["z", "w"])
@pytest.mark.parametrize("loop", [True, False])
def test_frames_start_at_each_seed_and_count(stylegan2_ckpt: Path, space: str,
                                             loop: bool) -> None:
    G = loaded_generator(stylegan2_ckpt)
    frames = torch.stack(list(video_frames(G, SEEDS, space=space, frames=FRAMES, loop=loop,
                                           trunc=0.7)))
    assert len(frames) == num_frames(len(SEEDS), FRAMES, loop)
    assert len(frames) == (len(SEEDS) * FRAMES if loop else (len(SEEDS) - 1) * FRAMES + 1)
    seed_images = generate(G, SEEDS, trunc=0.7)
    for index, seed_image in enumerate(seed_images):
        torch.testing.assert_close(frames[index * FRAMES], seed_image, atol=1e-5, rtol=0)
    # Frames in between are neither end.
    assert not torch.allclose(frames[1], frames[0]) and not torch.allclose(frames[1], frames[4])


@pytest.mark.parametrize("space", ["z", "w"])
def test_a_loop_leads_back_to_its_first_seed(stylegan2_ckpt: Path, space: str) -> None:
    G = loaded_generator(stylegan2_ckpt)
    looped = torch.stack(list(video_frames(G, SEEDS, space=space, frames=FRAMES, loop=True)))
    there_and_back = torch.stack(list(video_frames(G, [*SEEDS, SEEDS[0]], space=space,
                                                   frames=FRAMES, loop=False)))
    # The loop is the open path back to the start without its last frame (the start itself),
    # so played again and again no frame repeats.
    torch.testing.assert_close(looped, there_and_back[:-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(there_and_back[-1], looped[0], atol=1e-5, rtol=0)


def test_fastgan_interpolates_in_z(fastgan_ckpt: Path) -> None:
    G = loaded_generator(fastgan_ckpt)
    frames = list(video_frames(G, SEEDS[:2], frames=FRAMES, loop=False, interp="lerp"))
    assert len(frames) == FRAMES + 1 and frames[0].shape == (3, 32, 32)
    expected = G(torch.cat([seed_latent(s, 16) for s in SEEDS[:2]]), None,
                 noise_mode="const")
    torch.testing.assert_close(frames[0], expected[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[-1], expected[1], atol=1e-5, rtol=0)


def test_slerp_keeps_the_ends_and_moves_evenly() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(16), 3 * torch.randn(16)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    # Half the angle from each end, and half-way in length.
    assert float(middle.norm()) == pytest.approx(float(a.norm() + b.norm()) / 2, rel=1e-5)
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(middle, a, dim=0)) == pytest.approx(float(cos(middle, b, dim=0)), abs=1e-5)
    # Parallel latents: no circle to follow, and no NaN.
    assert torch.isfinite(slerp(a, 2 * a, 0.5)).all()


def test_mp4_is_written_and_reads_back(stylegan2_ckpt: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    imageio = pytest.importorskip("imageio")  # the dev install has it (extra "video")
    out = tmp_path / "mp4"
    assert video.main([f"ckpt={stylegan2_ckpt}", "seeds=0-2", f"frames={FRAMES}", "space=w",
                       "format=mp4", f"outdir={out}", "device=cpu"]) == 0
    reader = imageio.get_reader(out / video.VIDEO_FILE, format="FFMPEG")
    try:
        assert reader.count_frames() == 3 * FRAMES
        assert reader.get_data(0).shape == (16, 16, 3)
    finally:
        reader.close()
    assert "12 frames" in capsys.readouterr().out


def test_png_frames(fastgan_ckpt: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "png"
    assert video.main([f"ckpt={fastgan_ckpt}", "seeds=1,2", f"frames={FRAMES}", "loop=false",
                       "format=png", f"outdir={out}"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame{i:05d}.png" for i in range(FRAMES + 1)]
    assert Image.open(out / names[0]).size == (32, 32)


@pytest.mark.parametrize(("args", "message"), [
    (["space=q"], "space='q' is not valid; expected one of z, w"),
    (["seeds=4"], "seeds=4: an interpolation needs at least 2 different seeds, e.g. seeds=0-5"),
    (["seeds=4-2"], "seeds='4-2': range 4-2 runs backwards; write 2-4"),
    (["space=w", "interp=slerp"], "interp=slerp: w is interpolated along straight lines"),
    (["frames=0"], "frames=0 is not valid; expected an integer in [1, "),
])
def test_bad_settings_are_one_line(stylegan2_ckpt: Path, tmp_path: Path, args: list[str],
                                   message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert video.main([f"ckpt={stylegan2_ckpt}", f"outdir={out}", "format=png", *args]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_fastgan_has_no_w_space(fastgan_ckpt: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert video.main([f"ckpt={fastgan_ckpt}", f"outdir={tmp_path / 'x'}", "space=w"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: space=w: FastGANGenerator has no w space (no mapping network); use space=z"]
    assert video.main([f"ckpt={fastgan_ckpt}", f"outdir={tmp_path / 'x'}", "trunc=0.5"]) == 2
    assert "truncation needs a StyleGAN2 generator" in capsys.readouterr().err


def test_mp4_without_imageio_ffmpeg_is_one_line(stylegan2_ckpt: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if missing
    out = tmp_path / "x"
    assert video.main([f"ckpt={stylegan2_ckpt}", f"outdir={out}", "format=mp4"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: format=mp4: an MP4 needs imageio and imageio-ffmpeg, but imageio_ffmpeg is not "
        "installed; pip install 'dgan[video]' (imageio and imageio-ffmpeg), or give format=png "
        "for PNG frames"]
    # Without format, PNG frames are written instead.
    assert video.main([f"ckpt={stylegan2_ckpt}", f"outdir={out}", "seeds=0,1",
                       f"frames={FRAMES}"]) == 0
    assert len(list(out.glob("frame*.png"))) == 2 * FRAMES


def test_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert video.main(["--help"]) == 0
    text = capsys.readouterr().out
    for key in ("seeds=0-5", "space=z", "interp=null", "frames=60", "loop=True", "format=null"):
        assert key in text

"""Style mixing (issue 26, item 5): the grid's layout and size, every cell equal to the synthesis
of the row seed's w with the column seed's layers, and one error line for layers G does not
have and for a FastGAN generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan import style_mixing
from dgan.files.pictures import to_uint8
from dgan.inference.sampling import seed_latent
from dgan.style_mixing import style_mixing_grid

from .generator_files import (
    FASTGAN_LITE,
    STYLEGAN2,
    STYLEGAN2_NUM_WS,
    loaded_generator,
    write_generator_checkpoint,
)

ROWS = [5, 9]
COLS = [1, 2, 3]
STYLES = [0, 1, 2]
RES = STYLEGAN2["img_resolution"]
TRUNC = 0.8


@pytest.fixture(scope="module")
def stylegan2_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generator_checkpoint(STYLEGAN2, tmp_path_factory.mktemp("sg2") / "g.ckpt")


def _mapped(G: torch.nn.Module, seed: int) -> torch.Tensor:
    return G.mapping(seed_latent(seed, G.z_dim), None, truncation_psi=TRUNC)[0]


@torch.no_grad()
def test_cells_are_the_mixed_synthesis(stylegan2_ckpt: Path) -> None:
    G = loaded_generator(stylegan2_ckpt)
    grid = style_mixing_grid(G, ROWS, COLS, STYLES, trunc=TRUNC)
    assert grid.images.shape == (len(ROWS) + 1, len(COLS) + 1, 3, RES, RES)
    assert (grid.images[0, 0] == -1).all()  # the corner no seed owns is black
    for j, col in enumerate(COLS, start=1):
        own = G.synthesis(_mapped(G, col)[None], noise_mode="const")[0]
        torch.testing.assert_close(grid.images[0, j], own)
    for i, row in enumerate(ROWS, start=1):
        w_row = _mapped(G, row)
        torch.testing.assert_close(grid.images[i, 0],
                                   G.synthesis(w_row[None], noise_mode="const")[0])
        for j, col in enumerate(COLS, start=1):
            w_col = _mapped(G, col)
            mixed = torch.cat([w_col[:3], w_row[3:]])  # layers 0-2 from the column
            expected = G.synthesis(mixed[None], noise_mode="const")[0]
            torch.testing.assert_close(grid.images[i, j], expected)
            # Mixing changed something: the cell is neither parent.
            assert not torch.allclose(grid.images[i, j], grid.images[i, 0])
            assert not torch.allclose(grid.images[i, j], grid.images[0, j])


def test_command_writes_the_grid_and_the_images(stylegan2_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    assert style_mixing.main([f"ckpt={stylegan2_ckpt}", "rows=5,9", "cols=1-3", "styles=0-2",
                              f"trunc={TRUNC}", "images=true", f"outdir={out}"]) == 0
    picture = np.asarray(Image.open(out / "grid.png"))
    assert picture.shape == ((len(ROWS) + 1) * RES, (len(COLS) + 1) * RES, 3)
    G = loaded_generator(stylegan2_ckpt)
    grid = style_mixing_grid(G, ROWS, COLS, STYLES, trunc=TRUNC)
    # Row 2 (seed 9), column 3 (seed 3) of the PNG is that cell's picture.
    cell = picture[2 * RES:3 * RES, 3 * RES:4 * RES]
    assert np.array_equal(cell, to_uint8(grid.images[2, 3]).permute(1, 2, 0).numpy())
    assert np.array_equal(np.asarray(Image.open(out / "9-3.png")), cell)
    names = {p.name for p in out.iterdir()}
    assert names == {"grid.png", *(f"{r}-{c}.png" for r in ROWS for c in COLS),
                     *(f"{s}-{s}.png" for s in ROWS + COLS)}


def test_default_styles_fit_a_generator_of_fewer_layers(stylegan2_ckpt: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # StyleGAN2-ADA's 0-6 asks for 7 layers; a 16 px generator has 6: the default takes those.
    assert STYLEGAN2_NUM_WS < 7
    assert style_mixing.main([f"ckpt={stylegan2_ckpt}", "rows=5", "cols=1", f"trunc={TRUNC}",
                              f"outdir={tmp_path / 'mix'}"]) == 0
    assert f"layers 0-{STYLEGAN2_NUM_WS - 1} of {STYLEGAN2_NUM_WS}" in capsys.readouterr().out
    G = loaded_generator(stylegan2_ckpt)
    expected = style_mixing_grid(G, [5], [1], range(STYLEGAN2_NUM_WS), trunc=TRUNC)
    cell = np.asarray(Image.open(tmp_path / "mix" / "grid.png"))[RES:, RES:]
    assert np.array_equal(cell, to_uint8(expected.images[1, 1]).permute(1, 2, 0).numpy())


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_layers_beyond_num_ws_are_one_line(stylegan2_ckpt: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert style_mixing.main([f"ckpt={stylegan2_ckpt}", "rows=1", "cols=2", "styles=0-6",
                              f"outdir={out}"]) == 2
    last = STYLEGAN2_NUM_WS - 1
    assert _error_lines(capsys.readouterr().err) == [
        f"error: styles=0-6: layer {STYLEGAN2_NUM_WS} does not exist; this generator has "
        f"{STYLEGAN2_NUM_WS} style layers, styles=0-{last}"]
    assert style_mixing.main([f"ckpt={stylegan2_ckpt}", "cols=2", f"outdir={out}"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: rows is required: the seeds of the grid's rows, e.g. rows=85,100,75"]
    assert style_mixing.main([f"ckpt={stylegan2_ckpt}", "rows=1", "cols=2", "styles=a",
                              f"outdir={out}"]) == 2
    assert "styles='a' is not valid" in capsys.readouterr().err
    assert not out.exists()


def test_fastgan_has_no_style_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_generator_checkpoint(FASTGAN_LITE, tmp_path / "fastgan.ckpt")
    assert style_mixing.main([f"ckpt={ckpt}", "rows=1", "cols=2",
                              f"outdir={tmp_path / 'x'}"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: FastGANGenerator has no style layers (no mapping network, no w); style mixing "
        "needs a StyleGAN2 generator"]


def test_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert style_mixing.main(["--help"]) == 0
    text = capsys.readouterr().out
    for key in ("rows=null", "cols=null", "styles=null", "trunc=1.0", "images=False"):
        assert key in text

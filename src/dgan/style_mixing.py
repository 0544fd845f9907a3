"""Style mixing grid: ``python -m dgan.style_mixing ckpt=PATH rows=85,100 cols=55,821 outdir=DIR``.

A StyleGAN2 generator gives each synthesis layer its own copy of w (``num_ws`` of them). The
grid's top row shows the column seeds' images, its left column the row seeds'; every other cell
is the row seed's w with the layers in ``styles`` taken from the column seed's w, so low layers
(``styles=0-3``) carry pose and shape over from the column, high layers colour and texture.
Latents and truncation as ``dgan.generate`` (``RandomState(seed).randn(z_dim)``; truncation on
every layer, before mixing).

Writes ``grid.png``, and with ``images=true`` every picture as ``ROW-COL.png`` (a seed's own
image as ``SEED-SEED.png``).

Arguments are ``key=value`` (see :mod:`dgan.config.cli_args`); ``python -m dgan.style_mixing
--help`` lists them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dgan.config.cli_args import key_value_main
from dgan.config.rules import CLASS_INDEX, OPTIONAL_TEXT, TRUNCATION, Choice, Rule
from dgan.core.errors import ConfigError
from dgan.files.pictures import GRID_FILE, save_image_grid, save_png, to_uint8
from dgan.files.writable import check_creatable_dir, check_writable_dir
from dgan.inference.loading import check_generator_source, load_generator_from, resolve_device
from dgan.inference.sampling import (
    NOISE_MODES,
    class_label,
    generator_kwargs,
    parse_seeds,
    seed_latent,
    seeded_rng,
)

# The top-left cell of the grid, which no seed owns: -1 is black in [-1, 1] images.
EMPTY_CELL = -1.0
# StyleGAN2-ADA's default layers for styles=null, cut to the layers a generator has (a 16 px
# generator has 6).
DEFAULT_STYLES = tuple(range(7))
CELL_FILE = "{row}-{col}.png"


@dataclasses.dataclass
class StyleMixingOptions:
    """Arguments of ``python -m dgan.style_mixing``.

    Args:
        ckpt: checkpoint written by dgan.train (RUN_DIR/checkpoints/last.ckpt or best.ckpt).
        pkl: a network pickle instead (converted on the fly), or a published network's name.
        outdir: directory for grid.png (and the images) (created if missing).
        rows: seeds of the rows, whose w each row keeps: 85,100,75 or 0-4.
        cols: seeds of the columns, whose w replaces the styles layers: 55,821 or 5-9.
        styles: layers taken from the column seed, 0 to num_ws-1 (num_ws is 2*log2(resolution)-2:
            6 at 16 px, 10 at 64 px): 0-3 coarse (pose, shape), 4 to num_ws-1 fine (colour,
            texture), e.g. 4-5 at 16 px, 4-9 at 64 px; null: StyleGAN2-ADA's 0-6, the layers of
            it that the generator has.
        trunc: truncation psi (1: no truncation).
        class_idx: class of every image for a conditional model (required there).
        noise_mode: per-layer noise: const (reproducible), random (seeded by the row seed) or none.
        images: also write every image as ROW-COL.png.
        device: cpu, cuda or cuda:N; null: CUDA when available, else CPU.
    """

    # What each value may be, beyond its type (checked as the arguments are read).
    RULES: ClassVar[dict[str, Rule]] = {
        "trunc": TRUNCATION,
        "class_idx": CLASS_INDEX,
        "noise_mode": Choice(NOISE_MODES),
        "outdir": OPTIONAL_TEXT,
    }

    ckpt: str | None = None
    pkl: str | None = None
    outdir: str | None = None
    rows: Any = None
    cols: Any = None
    styles: Any = None
    trunc: float = 1.0
    class_idx: int | None = None
    noise_mode: str = "const"
    images: bool = False
    device: str | None = None


@dataclasses.dataclass
class MixingGrid:
    """The pictures of a style mixing grid.

    Args:
        rows: the row seeds.
        cols: the column seeds.
        images: [len(rows) + 1, len(cols) + 1, C, H, W] in [-1, 1]: row 0 the column seeds'
            images, column 0 the row seeds', cell (i, j) row seed i-1 mixed with column seed
            j-1; cell (0, 0) is black.
    """

    rows: list[int]
    cols: list[int]
    images: torch.Tensor


def check_styles(G: nn.Module, styles: Sequence[int], spec: Any = None) -> None:
    """One error line unless ``G`` has style layers and every index in ``styles`` is one.

    Args:
        G: the generator.
        styles: the layer indices to take from the column seed.
        spec: the ``styles`` argument as given (for the message).
    """
    if not (hasattr(G, "mapping") and hasattr(G, "synthesis")):
        raise ConfigError(f"{type(G).__name__} has no style layers (no mapping network, no w); "
                          "style mixing needs a StyleGAN2 generator")
    num_ws = int(G.mapping.num_ws)
    outside = [layer for layer in styles if layer >= num_ws]
    if outside:
        shown = spec if spec is not None else ",".join(map(str, styles))
        raise ConfigError(f"styles={shown}: layer {outside[0]} does not exist; this generator "
                          f"has {num_ws} style layers, styles=0-{num_ws - 1}")


def _shown_layers(styles: Sequence[int]) -> str:
    """``0-5`` for a run of layers, else ``1,3,4``."""
    layers = list(styles)
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


@torch.no_grad()
def style_mixing_grid(
    G: nn.Module,
    rows: Sequence[int],
    cols: Sequence[int],
    styles: Sequence[int],
    *,
    trunc: float = 1.0,
    class_idx: int | None = None,
    noise_mode: str = "const",
    device: torch.device | str = "cpu",
) -> MixingGrid:
    """Every picture of the grid (see :class:`MixingGrid`), on the CPU.

    Args:
        G: a StyleGAN2 generator.
        rows: the row seeds.
        cols: the column seeds.
        styles: layers taken from the column seed.
        trunc: truncation psi, on every layer.
        class_idx: class for a conditional G.
        noise_mode: ``const``, ``random`` (seeded by the row seed; a seed's own image by the
            seed) or ``none``.
        device: where G lives.
    """
    check_styles(G, styles)
    generator_kwargs(G, trunc, noise_mode)
    c = class_label(G, class_idx).to(device)
    seeds = list(dict.fromkeys([*rows, *cols]))
    z = torch.cat([seed_latent(seed, int(G.z_dim)) for seed in seeds]).to(device)
    w_of = dict(zip(seeds, G.mapping(z, c.expand(len(z), -1), truncation_psi=trunc),
                    strict=True))

    def synthesize(ws: torch.Tensor, noise_seed: int) -> torch.Tensor:
        with seeded_rng(noise_seed, device):
            return G.synthesis(ws.unsqueeze(0), noise_mode=noise_mode)[0].float().cpu()

    own = {seed: synthesize(w_of[seed], seed) for seed in seeds}
    layers = torch.as_tensor(list(styles), dtype=torch.long, device=w_of[seeds[0]].device)
    empty = torch.full_like(own[seeds[0]], EMPTY_CELL)
    grid = [[empty, *(own[col] for col in cols)]]
    for row in rows:
        cells = [own[row]]
        for col in cols:
            mixed = w_of[row].clone()
            mixed[layers] = w_of[col][layers]
            cells.append(synthesize(mixed, row))
        grid.append(cells)
    images = torch.stack([torch.stack(line) for line in grid])
    return MixingGrid(rows=list(rows), cols=list(cols), images=images)


def write_grid(grid: MixingGrid, outdir: Path, images: bool) -> list[Path]:
    """``grid.png`` and, with ``images``, ``ROW-COL.png`` per picture; returns the paths.

    Args:
        grid: the pictures.
        outdir: an existing directory.
        images: write the single pictures too.
    """
    num_rows, num_cols = grid.images.shape[:2]
    written = [save_image_grid(grid.images.flatten(0, 1), outdir / GRID_FILE, num_cols)]
    if images:
        for j, col in enumerate(grid.cols, start=1):
            written.append(save_png(to_uint8(grid.images[0, j]),
                                    outdir / CELL_FILE.format(row=col, col=col)))
        for i, row in enumerate(grid.rows, start=1):
            written.append(save_png(to_uint8(grid.images[i, 0]),
                                    outdir / CELL_FILE.format(row=row, col=row)))
            for j, col in enumerate(grid.cols, start=1):
                written.append(save_png(to_uint8(grid.images[i, j]),
                                        outdir / CELL_FILE.format(row=row, col=col)))
    return written


def run(opts: StyleMixingOptions) -> list[Path]:
    """Check the options, load the generator, mix and write; returns the written files."""
    check_generator_source(opts.ckpt, opts.pkl)
    if opts.outdir is None:
        raise ConfigError("outdir is required: the directory for grid.png, e.g. outdir=out")
    for key, example in (("rows", "rows=85,100,75"), ("cols", "cols=55,821")):
        if getattr(opts, key) is None:
            raise ConfigError(f"{key} is required: the seeds of the grid's {key}, e.g. {example}")
    check_creatable_dir(opts.outdir, "outdir")
    rows = parse_seeds(opts.rows, "rows")
    cols = parse_seeds(opts.cols, "cols")
    styles = parse_seeds(opts.styles, "styles") if opts.styles is not None else None
    device = resolve_device(opts.device)
    loaded = load_generator_from(opts.ckpt, opts.pkl, device)
    if styles is None:
        check_styles(loaded.G, [])
        styles = [layer for layer in DEFAULT_STYLES if layer < int(loaded.G.mapping.num_ws)]
    check_styles(loaded.G, styles, opts.styles)
    generator_kwargs(loaded.G, opts.trunc, opts.noise_mode)
    class_label(loaded.G, opts.class_idx)
    grid = style_mixing_grid(loaded.G, rows, cols, styles, trunc=opts.trunc,
                             class_idx=opts.class_idx, noise_mode=opts.noise_mode, device=device)
    outdir = Path(opts.outdir)
    check_writable_dir(outdir, "outdir")
    written = write_grid(grid, outdir, opts.images)
    print(f"[dgan] style mixing of {len(rows)} rows x {len(cols)} columns, layers "
          f"{_shown_layers(styles)} of {loaded.G.mapping.num_ws}, from {loaded.path} -> "
          f"{written[0]}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    return key_value_main("dgan.style_mixing", StyleMixingOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())

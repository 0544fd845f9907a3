"""Images from a trained generator: ``python -m dgan.generate ckpt=PATH outdir=DIR seeds=0-63``.

One PNG per seed (``seed0007.png``) and a ``grid.png`` of them all, from G_ema of a checkpoint
written by ``dgan.train``. As in StyleGAN2-ADA, the latent of seed ``s`` is
``np.random.RandomState(s).randn(z_dim)``, so a seed names the same image whatever else is
generated with it, and per-layer noise is the network's constant noise unless
``noise_mode=random``. A generator of 2-D points (toy data) writes ``scatter.png`` (its points
over the training data), ``points.csv`` and ``toy_figure.png`` (the paper's toy figure: the
points, and sigmoid(D(y, t)) of the checkpoint's D over the plane at t = 0, T/2 and T) instead.

Arguments are ``key=value`` (see :mod:`dgan.config.cli_args`); ``python -m dgan.generate --help``
lists them.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dgan.config.cli_args import key_value_main
from dgan.config.instantiation import build
from dgan.config.rules import CLASS_INDEX, MAX_COUNT, OPTIONAL_TEXT, TRUNCATION, Int, Rule
from dgan.core.errors import ConfigError
from dgan.files.atomic import atomic_write_bytes
from dgan.files.pictures import GRID_FILE, save_image_grid, save_png, save_scatter, to_uint8
from dgan.files.toy_figure import (
    discriminator_maps,
    figure_timesteps,
    method_name,
    save_toy_figure,
)
from dgan.inference.loading import (
    LoadedGenerator,
    NoDiscriminatorWeights,
    check_generator_source,
    load_discriminator,
    load_generator_from,
    resolve_device,
)
from dgan.inference.sampling import (
    class_label,
    generator_kwargs,
    parse_seeds,
    seed_latent,
    seeded_rng,
)

SCATTER_FILE = "scatter.png"
POINTS_FILE = "points.csv"
TOY_FIGURE_FILE = "toy_figure.png"
# Training points drawn under a scatter of generated points (enough to show every mode).
SCATTER_REALS = 2500


@dataclasses.dataclass
class GenerateOptions:
    """Arguments of ``python -m dgan.generate``.

    Args:
        ckpt: checkpoint written by dgan.train (RUN_DIR/checkpoints/last.ckpt or best.ckpt).
        pkl: a network pickle instead (converted on the fly), or a published network's name.
        outdir: directory for seedNNNN.png and grid.png (created if missing).
        seeds: one image per seed: 0-63, 1,5,9, 0-3,10 or a single number.
        trunc: truncation psi (1: no truncation; StyleGAN2 generators only).
        class_idx: class of every image for a conditional model (required there).
        noise_mode: per-layer noise: const (reproducible), random (seeded by the seed) or none.
        device: cpu, cuda or cuda:N; null: CUDA when available, else CPU.
        grid_columns: columns of grid.png; null: about square.
        grid: write grid.png (false leaves only seed images, e.g. for evaluate images=DIR).
    """

    # What each value may be, beyond its type (checked as the arguments are read).
    RULES: ClassVar[dict[str, Rule]] = {
        "trunc": TRUNCATION,
        "grid_columns": Int(1, MAX_COUNT, null=True),
        "class_idx": CLASS_INDEX,
        "outdir": OPTIONAL_TEXT,
    }

    ckpt: str | None = None
    pkl: str | None = None
    outdir: str | None = None
    seeds: Any = "0-63"
    trunc: float = 1.0
    class_idx: int | None = None
    noise_mode: str = "const"
    device: str | None = None
    grid_columns: int | None = None
    grid: bool = True


@torch.no_grad()
def generate(
    G: nn.Module,
    seeds: Sequence[int],
    *,
    trunc: float = 1.0,
    class_idx: int | None = None,
    noise_mode: str = "const",
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """G's output for each seed, one seed at a time (a seed's image does not depend on the rest).

    Returns images [N, C, H, W] in [-1, 1] or points [N, D], on the CPU.

    Args:
        G: generator called as ``G(z, c, **kwargs)``.
        seeds: latent seeds.
        trunc: truncation psi.
        class_idx: class for a conditional G.
        noise_mode: ``const``, ``random`` (seeded by the seed) or ``none``.
        device: where G lives.
    """
    kwargs = generator_kwargs(G, trunc, noise_mode)
    c = class_label(G, class_idx).to(device)
    outputs = []
    for seed in seeds:
        z = seed_latent(seed, int(G.z_dim)).to(device)
        # Random noise comes from torch's RNG: seed it too, without touching the caller's.
        with seeded_rng(seed, device):
            outputs.append(G(z, c, **kwargs).float().cpu())
    return torch.cat(outputs)


def write_images(
    images: torch.Tensor,
    seeds: Sequence[int],
    outdir: Path,
    grid_columns: int | None = None,
    grid: bool = True,
) -> list[Path]:
    """``seedNNNN.png`` per image and ``grid.png``; returns the paths written.

    Args:
        images: [N, C, H, W] in [-1, 1].
        seeds: the seed of each image.
        outdir: output directory.
        grid_columns: columns of the grid (None: about square).
        grid: also write the grid.
    """
    paths = []
    for seed, image in zip(seeds, to_uint8(images), strict=True):
        paths.append(save_png(image, outdir / f"seed{seed:04d}.png"))
    if grid:
        paths.append(save_image_grid(images, outdir / GRID_FILE, grid_columns))
    return paths


def write_points(
    points: torch.Tensor, seeds: Sequence[int], outdir: Path, reals: torch.Tensor | None
) -> list[Path]:
    """``points.csv`` (seed and coordinates) and ``scatter.png`` over the training points.

    Args:
        points: generated points [N, D].
        seeds: the seed of each point.
        outdir: output directory.
        reals: training points drawn underneath (None: none).
    """
    header = "seed," + ",".join(f"x{i}" for i in range(points.shape[1]))
    rows = [f"{s}," + ",".join(f"{v:.6g}" for v in p.tolist()) for s, p in zip(seeds, points,
                                                                               strict=True)]
    csv = outdir / POINTS_FILE
    atomic_write_bytes(csv, ("\n".join([header, *rows]) + "\n").encode())
    limit = max(5.0, math.ceil(float(points.abs().max()) + 0.5)) if len(points) else 5.0
    scatter = save_scatter(points, reals, outdir / SCATTER_FILE,
                           title=f"{len(points)} seeds", lim=limit)
    return [csv, scatter]


def write_toy_figure(loaded: LoadedGenerator, points: torch.Tensor, reals: torch.Tensor | None,
                     outdir: Path, device: torch.device) -> Path:
    """``toy_figure.png``: the points over the data and the checkpoint's D maps.

    Args:
        loaded: the checkpoint's generator (its path names the checkpoint whose D is drawn).
        points: the generated points [N, 2].
        reals: training points drawn underneath (None: none).
        outdir: output directory.
        device: where D runs.
    """
    disc = load_discriminator(loaded.path, device)
    ts = figure_timesteps(disc.T)
    maps = discriminator_maps(disc.D, ts, c_dim=getattr(disc.D, "c_dim", 0), device=device)
    return save_toy_figure(points, reals, maps, ts, outdir / TOY_FIGURE_FILE,
                           method_name(disc.T is not None), loaded.kimg)


def _training_points(loaded: LoadedGenerator) -> torch.Tensor | None:
    node = loaded.config.get("dataset")
    if not isinstance(node, dict):
        return None
    points = getattr(build(node, "dataset"), "points", None)
    return None if points is None else points[:SCATTER_REALS]


def run(opts: GenerateOptions) -> list[Path]:
    """Check the options, load the checkpoint, generate and write; returns the written files."""
    check_generator_source(opts.ckpt, opts.pkl)
    if opts.outdir is None:
        raise ConfigError("outdir is required: the directory for the PNGs, e.g. outdir=out")
    from dgan.files.writable import check_creatable_dir

    check_creatable_dir(opts.outdir, "outdir")  # under a file, unwritable: before any work
    seeds = parse_seeds(opts.seeds)
    if opts.grid_columns is not None and opts.grid_columns < 1:
        raise ConfigError(f"grid_columns={opts.grid_columns} must be >= 1 (or null)")
    device = resolve_device(opts.device)
    loaded = load_generator_from(opts.ckpt, opts.pkl, device)
    # Label and kwargs are checked before any image is made or any file written.
    class_label(loaded.G, opts.class_idx)
    generator_kwargs(loaded.G, opts.trunc, opts.noise_mode)
    out = generate(loaded.G, seeds, trunc=opts.trunc, class_idx=opts.class_idx,
                   noise_mode=opts.noise_mode, device=device)
    outdir = Path(opts.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"outdir={outdir}: cannot make it ({err.strerror or err}); choose a "
                          "directory you can write to") from None
    if out.dim() == 2:
        reals = _training_points(loaded)
        written = write_points(out, seeds, outdir, reals)
        if opts.ckpt is not None and out.shape[1] == 2:
            try:
                written.append(write_toy_figure(loaded, out, reals, outdir, device))
            except NoDiscriminatorWeights as err:
                print(f"[dgan] no {TOY_FIGURE_FILE}: {err}", flush=True)
        print(f"[dgan] {len(seeds)} points of {loaded.path} (kimg {loaded.kimg:g}) -> "
              f"{outdir / SCATTER_FILE}, {outdir / POINTS_FILE}", flush=True)
        return written
    written = write_images(out, seeds, outdir, opts.grid_columns, opts.grid)
    grid_note = f" (grid: {outdir / GRID_FILE})" if opts.grid else ""
    print(f"[dgan] {len(seeds)} images of {loaded.path} (kimg {loaded.kimg:g}) -> {outdir}"
          f"{grid_note}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    return key_value_main("dgan.generate", GenerateOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())

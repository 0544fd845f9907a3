"""Interpolation videos between seeds: ``python -m dgan.video ckpt=PATH seeds=0-5 outdir=DIR``.

The latents of the seeds (``RandomState(seed).randn(z_dim)``, as ``dgan.generate``) are key
frames; ``frames`` frames lead from each key to the next, and with ``loop=true`` from the last
back to the first, so the video repeats without a jump. In ``space=z`` the latents are
interpolated on the sphere (``slerp``: the angle and the length each change evenly) or along the
straight line (``lerp``); in ``space=w`` (StyleGAN2 only) the mapped, truncated latents are
interpolated along the straight line, as StyleGAN's videos do. A FastGAN generator has no
mapping network, so it has z only.

The frames go into ``video.mp4`` (imageio with imageio-ffmpeg, the optional extra ``video``) or,
with ``format=png``, into ``frame00000.png``, ``frame00001.png``, ...

Arguments are ``key=value`` (see :mod:`dgan.config.cli_args`); ``python -m dgan.video --help``
lists them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dgan.config.cli_args import key_value_main
from dgan.config.rules import CLASS_INDEX, OPTIONAL_TEXT, SIZE, TRUNCATION, Choice, Num, Rule
from dgan.core.errors import ConfigError
from dgan.files.pictures import to_uint8
from dgan.files.video_frames import (
    MP4,
    PNG,
    VIDEO_FORMATS,
    check_mp4,
    mp4_problem,
    write_mp4,
    write_png_frames,
)
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

SPACES = ("z", "w")
SLERP = "slerp"
LERP = "lerp"
INTERPOLATIONS = (SLERP, LERP)
VIDEO_FILE = "video.mp4"
# Below this angle (radians) between two latents slerp and lerp agree to float precision, and
# slerp's division by sin(angle) would only add rounding.
SLERP_MIN_ANGLE = 1e-4


@dataclasses.dataclass
class VideoOptions:
    """Arguments of ``python -m dgan.video``.

    Args:
        ckpt: checkpoint written by dgan.train (RUN_DIR/checkpoints/last.ckpt or best.ckpt).
        pkl: a network pickle instead (converted on the fly), or a published network's name.
        outdir: directory for video.mp4 or the PNG frames (created if missing).
        seeds: the key frames, in order (at least 2): 0-5, 3,1,4 or 0-3,10.
        space: interpolate in z (any generator) or in w (StyleGAN2 only).
        interp: z: slerp (on the sphere) or lerp (straight line); w: lerp only; null: slerp in z.
        frames: frames from one key frame to the next.
        loop: lead the last key frame back to the first, so the video repeats seamlessly.
        trunc: truncation psi (1: no truncation; StyleGAN2 generators only).
        class_idx: class of every frame for a conditional model (required there).
        noise_mode: per-layer noise: const (steady), random (new in every frame) or none.
        format: mp4 or png (numbered frames); null: mp4 when imageio-ffmpeg is installed, else png.
        fps: frames per second of the MP4.
        device: cpu, cuda or cuda:N; null: CUDA when available, else CPU.
    """

    # What each value may be, beyond its type (checked as the arguments are read).
    RULES: ClassVar[dict[str, Rule]] = {
        "space": Choice(SPACES), "interp": Choice(INTERPOLATIONS, null=True), "frames": SIZE,
        "trunc": TRUNCATION, "class_idx": CLASS_INDEX, "noise_mode": Choice(NOISE_MODES),
        "format": Choice(VIDEO_FORMATS, null=True), "fps": Num(0, low_open=True),
        "outdir": OPTIONAL_TEXT}

    ckpt: str | None = None
    pkl: str | None = None
    outdir: str | None = None
    seeds: Any = "0-5"
    space: str = "z"
    interp: str | None = None
    frames: int = 60
    loop: bool = True
    trunc: float = 1.0
    class_idx: int | None = None
    noise_mode: str = "const"
    format: str | None = None
    fps: float = 30.0
    device: str | None = None


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The point a fraction ``t`` along the straight line from ``a`` to ``b``."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The point a fraction ``t`` of the way from ``a`` to ``b`` along the great circle, its
    length moving evenly from ``a``'s to ``b``'s (so both ends are the latents themselves).

    Args:
        a: start latent [..., D] (one vector: the angle is taken over all its entries).
        b: end latent, same shape.
        t: fraction in [0, 1].
    """
    norm_a, norm_b = a.norm(), b.norm()
    unit_a, unit_b = a / norm_a, b / norm_b
    angle = torch.acos((unit_a * unit_b).sum().clamp(-1.0, 1.0))
    length = lerp(norm_a, norm_b, t)
    sin = torch.sin(angle)
    if angle < SLERP_MIN_ANGLE or sin < SLERP_MIN_ANGLE:
        # Parallel or opposite: no unique circle; the straight line's direction is used.
        direction = lerp(unit_a, unit_b, t)
        return direction / direction.norm() * length
    direction = (torch.sin((1 - t) * angle) * unit_a + torch.sin(t * angle) * unit_b) / sin
    return direction * length


def interpolation_path(keys: torch.Tensor, frames: int, loop: bool,
                       interpolate: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
                       ) -> Iterator[torch.Tensor]:
    """The latents of the frames: each key, then ``frames - 1`` steps towards the next.

    Without ``loop`` the last key ends the path: ``(K - 1) * frames + 1`` latents. With ``loop``
    the path leads back towards the first key and stops one step short of it, so played in a
    loop no frame repeats: ``K * frames`` latents.

    Args:
        keys: the key latents [K, ...].
        frames: steps from one key to the next.
        loop: return to the first key.
        interpolate: ``(a, b, t) -> latent``.
    """
    order = [*range(len(keys)), 0] if loop else list(range(len(keys)))
    for start, end in zip(order[:-1], order[1:], strict=True):
        yield keys[start]  # the key itself, not an interpolation that rounds it
        for step in range(1, frames):
            yield interpolate(keys[start], keys[end], step / frames)
    if not loop:
        yield keys[-1]


def num_frames(num_keys: int, frames: int, loop: bool) -> int:
    """How many frames :func:`interpolation_path` yields."""
    return num_keys * frames if loop else (num_keys - 1) * frames + 1


def _has_w_space(G: nn.Module) -> bool:
    return hasattr(G, "mapping") and hasattr(G, "synthesis")


def check_video_settings(G: nn.Module, seeds: Sequence[int], space: str, interp: str | None,
                         trunc: float, noise_mode: str, class_idx: int | None) -> str:
    """One error line for settings ``G`` cannot follow; returns the interpolation to use.

    Args:
        G: the generator.
        seeds: the key frame seeds.
        space: ``z`` or ``w``.
        interp: ``slerp``, ``lerp`` or None (the space's default).
        trunc: truncation psi.
        noise_mode: ``const``, ``random`` or ``none``.
        class_idx: the class for a conditional G.
    """
    if not hasattr(G, "img_resolution"):
        raise ConfigError(f"{type(G).__name__} makes points, not images; a video needs an image "
                          "generator (for points use python -m dgan.generate)")
    if len(seeds) < 2:
        raise ConfigError(f"seeds={','.join(map(str, seeds))}: an interpolation needs at least "
                          "2 different seeds, e.g. seeds=0-5")
    if space not in SPACES:
        raise ConfigError(f"space={space!r} is not valid; choose one of {', '.join(SPACES)}")
    if space == "w" and not _has_w_space(G):
        raise ConfigError(f"space=w: {type(G).__name__} has no w space (no mapping network); "
                          "use space=z")
    if interp is not None and interp not in INTERPOLATIONS:
        raise ConfigError(f"interp={interp!r} is not valid; choose one of "
                          f"{', '.join(INTERPOLATIONS)}")
    if space == "w" and interp == SLERP:
        raise ConfigError("interp=slerp: w is interpolated along straight lines (interp=lerp); "
                          "slerp is for space=z")
    generator_kwargs(G, trunc, noise_mode)
    class_label(G, class_idx)
    return interp or (SLERP if space == "z" else LERP)


@torch.no_grad()
def video_frames(
    G: nn.Module,
    seeds: Sequence[int],
    *,
    space: str = "z",
    interp: str | None = None,
    frames: int = 60,
    loop: bool = True,
    trunc: float = 1.0,
    class_idx: int | None = None,
    noise_mode: str = "const",
    device: torch.device | str = "cpu",
) -> Iterator[torch.Tensor]:
    """The frames [C, H, W] in [-1, 1] (on the CPU) of the interpolation, one at a time.

    Args:
        G: the generator.
        seeds: key frame seeds (at least 2).
        space: ``z`` or ``w`` (StyleGAN2).
        interp: ``slerp`` or ``lerp`` in z; ``lerp`` in w; None: ``slerp`` in z, ``lerp`` in w.
        frames: frames from one key to the next.
        loop: lead back to the first key.
        trunc: truncation psi.
        class_idx: class for a conditional G.
        noise_mode: ``const``, ``random`` (new noise in each frame, seeded by its index) or
            ``none``.
        device: where G lives.
    """
    method = check_video_settings(G, seeds, space, interp, trunc, noise_mode, class_idx)
    interpolate = slerp if method == SLERP else lerp
    kwargs = generator_kwargs(G, trunc, noise_mode)
    c = class_label(G, class_idx).to(device)
    z = torch.cat([seed_latent(seed, int(G.z_dim)) for seed in seeds]).to(device)
    if space == "w":
        keys = G.mapping(z, c.expand(len(z), -1), truncation_psi=trunc)

        def render(latent: torch.Tensor) -> torch.Tensor:
            return G.synthesis(latent.unsqueeze(0), noise_mode=noise_mode)
    else:
        keys = z

        def render(latent: torch.Tensor) -> torch.Tensor:
            return G(latent.unsqueeze(0), c, **kwargs)
    for index, latent in enumerate(interpolation_path(keys, frames, loop, interpolate)):
        # Random noise comes from torch's RNG: seeded per frame, the caller's left untouched
        # (also while the caller holds the frame: the yield is outside the seeded block).
        with seeded_rng(index, device):
            frame = render(latent)[0].float().cpu()
        yield frame


def _video_format(requested: str | None) -> str:
    """The format to write: as asked (MP4 checked to be possible), or MP4 when it can be."""
    if requested is None:
        return MP4 if mp4_problem() is None else PNG
    if requested == MP4:
        check_mp4("format", MP4, "format=png for PNG frames")
    return requested


def run(opts: VideoOptions) -> list[Path]:
    """Check the options, load the generator, render and write; returns the written files."""
    check_generator_source(opts.ckpt, opts.pkl)
    if opts.outdir is None:
        raise ConfigError("outdir is required: the directory for video.mp4 or the frames, "
                          "e.g. outdir=out")
    check_creatable_dir(opts.outdir, "outdir")
    seeds = parse_seeds(opts.seeds)
    video_format = _video_format(opts.format)
    device = resolve_device(opts.device)
    loaded = load_generator_from(opts.ckpt, opts.pkl, device)
    check_video_settings(loaded.G, seeds, opts.space, opts.interp, opts.trunc, opts.noise_mode,
                         opts.class_idx)
    outdir = Path(opts.outdir)
    check_writable_dir(outdir, "outdir")
    images = (to_uint8(frame) for frame in video_frames(
        loaded.G, seeds, space=opts.space, interp=opts.interp, frames=opts.frames,
        loop=opts.loop, trunc=opts.trunc, class_idx=opts.class_idx, noise_mode=opts.noise_mode,
        device=device))
    count = num_frames(len(seeds), opts.frames, opts.loop)
    if video_format == MP4:
        written = [write_mp4(images, outdir / VIDEO_FILE, opts.fps)]
        where = str(written[0])
    else:
        written = write_png_frames(images, outdir)
        where = f"{outdir} (frame*.png)"
    seconds = count / opts.fps
    print(f"[dgan] {count} frames ({seconds:.1f} s at {opts.fps:g} fps) through seeds "
          f"{','.join(map(str, seeds))} in {opts.space} of {loaded.path} -> {where}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    return key_value_main("dgan.video", VideoOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())

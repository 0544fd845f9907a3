"""Projection of an image into a StyleGAN2 generator's w:
``python -m dgan.project ckpt=PATH target=IMG outdir=DIR``.

The method of StyleGAN2-ADA's projector: one w (shared by every layer) starts at the centre of
w (the mean of ``w_avg_samples`` mapped latents) and is fitted with Adam to make G's image close
to the target in LPIPS, measured with NVIDIA's VGG16 (``vgg16.pt``, the file the
precision/recall and PPL metrics use, found offline under ``weights_dir``; images above 256 px
are shrunk to 256 first). Gaussian noise on w, scaled by the spread of w and fading out over the
first three quarters, keeps the search from settling early; the learning rate ramps up over the
first 5 % of the steps and down, as a half cosine, over the last 25 %. With ``noise_mode=const``
the per-layer noise maps are fitted too, regularised towards white noise (their
autocorrelation at one pixel, on every scale down to 8 px, is pushed to zero) and rescaled to
zero mean and unit variance after every step.

The target is centre-cropped to a square and resized to G's resolution (grey for a one-channel
G). Writes ``target.png``, ``proj.png`` (the projection, rendered with the fitted noise),
``projected_w.npz`` (``w``: [1, num_ws, w_dim], as the reference's file, and the fitted noise
maps as ``noise.<layer>``) and with ``save_video=true`` ``proj.mp4``: the target beside the
projection of every step.

Arguments are ``key=value`` (see :mod:`dgan.config.cli_args`); ``python -m dgan.project --help``
lists them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from dgan.config.cli_args import key_value_main
from dgan.config.rules import (
    CLASS_INDEX,
    MAX_COUNT,
    OPTIONAL_TEXT,
    SEED,
    SIZE,
    Choice,
    Int,
    Num,
    Rule,
)
from dgan.core.errors import ConfigError
from dgan.files.atomic import atomic_write
from dgan.files.pictures import save_png, to_uint8
from dgan.files.video_frames import check_mp4, write_mp4
from dgan.files.writable import check_creatable_dir, check_writable_dir
from dgan.inference.loading import check_generator_source, load_generator_from, resolve_device
from dgan.inference.sampling import class_label, seeded_rng
from dgan.metrics.feature_extractors import (
    VGG16_NVIDIA,
    WeightsUnavailableError,
    build_feature_extractor,
    resolve_weights_path,
)

PROJECT_NOISE_MODES = ("const", "none")
TARGET_FILE = "target.png"
PROJECTED_FILE = "proj.png"
W_FILE = "projected_w.npz"
VIDEO_FILE = "proj.mp4"
W_KEY = "w"
NOISE_KEY_PREFIX = "noise."
NOISE_BUFFER = "noise_const"

# StyleGAN2-ADA's projector settings (its defaults, so that projections compare with its own).
DEFAULT_STEPS = 1000
DEFAULT_SEED = 303
DEFAULT_LR = 0.1
DEFAULT_NOISE_WEIGHT = 1e5  # weight of the noise maps' penalty towards white noise
DEFAULT_W_AVG_SAMPLES = 10000
DEFAULT_VIDEO_FPS = 10.0
W_AVG_SEED = 123  # the latents w's centre and spread are measured on
INITIAL_NOISE_FACTOR = 0.05  # w noise at step 0, in units of w's spread
NOISE_RAMP_LENGTH = 0.75  # fraction of the steps over which the w noise fades out
LR_RAMPUP_LENGTH = 0.05
LR_RAMPDOWN_LENGTH = 0.25
ADAM_BETAS = (0.9, 0.999)
# VGG16 was trained on 224 px images; larger ones are shrunk to this side before LPIPS.
LPIPS_MAX_SIDE = 256
# The noise regularisation's pyramid stops at this side.
NOISE_PYRAMID_MIN = 8
# Latents mapped at once while measuring w's centre (bounds the memory of [N, num_ws, w_dim]).
W_AVG_BATCH = 1000
# StyleGAN2-ADA's pixel scale: [-1, 1] images to [0, 255] for VGG16.
PIXEL_SCALE = 255 / 2
IMAGE_CHANNELS = {1: "L", 3: "RGB"}


@dataclasses.dataclass
class ProjectOptions:
    """Arguments of ``python -m dgan.project``.

    Args:
        ckpt: checkpoint written by dgan.train (RUN_DIR/checkpoints/last.ckpt or best.ckpt).
        pkl: a network pickle instead (converted on the fly), or a published network's name.
        target: the image to project (any size; centre-cropped and resized to G's resolution).
        outdir: directory for target.png, proj.png, projected_w.npz, proj.mp4 (created if missing).
        steps: optimisation steps (the reference's 1000).
        seed: seed of the initial noise maps and of the noise added to w.
        noise_mode: const: fit the per-layer noise maps too (the reference); none: w only, no noise.
        save_video: write proj.mp4, the target beside every step's projection (needs dgan[video]).
        fps: frames per second of proj.mp4.
        lr: the largest learning rate of Adam on w and the noise maps.
        noise_weight: weight of the noise maps' regularisation towards white noise.
        w_avg_samples: latents mapped to find the centre and spread of w.
        class_idx: class of the projection for a conditional model (required there).
        weights_dir: directory holding vgg16.pt; null: $DGAN_WEIGHTS_DIR, then torch's hub cache.
        device: cpu, cuda or cuda:N; null: CUDA when available, else CPU.
    """

    # What each value may be, beyond its type (checked as the arguments are read).
    RULES: ClassVar[dict[str, Rule]] = {
        "steps": SIZE, "seed": SEED, "noise_mode": Choice(PROJECT_NOISE_MODES),
        "fps": Num(0, low_open=True), "lr": Num(0, low_open=True), "noise_weight": Num(0),
        "w_avg_samples": Int(2, MAX_COUNT), "class_idx": CLASS_INDEX, "target": OPTIONAL_TEXT,
        "outdir": OPTIONAL_TEXT}

    ckpt: str | None = None
    pkl: str | None = None
    target: str | None = None
    outdir: str | None = None
    steps: int = DEFAULT_STEPS
    seed: int = DEFAULT_SEED
    noise_mode: str = "const"
    save_video: bool = False
    fps: float = DEFAULT_VIDEO_FPS
    lr: float = DEFAULT_LR
    noise_weight: float = DEFAULT_NOISE_WEIGHT
    w_avg_samples: int = DEFAULT_W_AVG_SAMPLES
    class_idx: int | None = None
    weights_dir: str | None = None
    device: str | None = None


@dataclasses.dataclass
class Projection:
    """What :func:`project` found.

    Args:
        ws: w after every step, broadcast to every layer: [steps, num_ws, w_dim].
        distances: the LPIPS distance of every step, measured before its update.
        G: a copy of the generator holding the fitted noise maps (render with noise_mode=const).
    """

    ws: torch.Tensor
    distances: list[float]
    G: nn.Module


def check_projectable(G: nn.Module) -> None:
    """One error line unless ``G`` has a w space (a StyleGAN2 generator) and 1 or 3 channels."""
    if not hasattr(G, "img_resolution"):
        raise ConfigError(f"{type(G).__name__} makes 2-D points, not images: it cannot be "
                          "projected; the projector needs a StyleGAN2 image generator")
    if not (hasattr(G, "mapping") and hasattr(G, "synthesis")):
        raise ConfigError(f"{type(G).__name__} has no w space (no mapping network); the "
                          "projector needs a StyleGAN2 generator")
    if int(G.img_channels) not in IMAGE_CHANNELS:
        raise ConfigError(f"the generator makes {G.img_channels}-channel images; the projector's "
                          "LPIPS compares grey (1) or colour (3) images")


def read_target(path: str | Path) -> Image.Image:
    """The target as a PIL image, fully read; one error line when it cannot be.

    Args:
        path: the ``target`` argument.
    """
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ConfigError(f"target={path}: no such file; give the image to project") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ConfigError(f"target={path}: not an image Pillow can read ({err})") from None
    return image


def target_tensor(image: Image.Image, resolution: int, channels: int) -> torch.Tensor:
    """The target as G sees it: uint8 [C, R, R], centre-cropped to a square, Lanczos-resized.

    Args:
        image: a PIL image (any size and mode).
        resolution: G's image side.
        channels: G's channels (1: grey, 3: RGB).
    """
    image = image.convert(IMAGE_CHANNELS[channels])
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((resolution, resolution), Image.LANCZOS)
    array = np.asarray(image, dtype=np.uint8).reshape(resolution, resolution, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def lpips_features(vgg: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """LPIPS features of images [N, C, H, W] in [0, 255] (grey repeated to RGB; above 256 px
    shrunk to 256 by area, as the reference)."""
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[2] > LPIPS_MAX_SIDE:
        images = F.interpolate(images, size=(LPIPS_MAX_SIDE, LPIPS_MAX_SIDE), mode="area")
    return vgg(images, resize_images=False, return_lpips=True)


@torch.no_grad()
def w_statistics(G: nn.Module, c: torch.Tensor, samples: int,
                 device: torch.device | str) -> tuple[torch.Tensor, float]:
    """The centre [1, 1, w_dim] of w over ``samples`` latents and its spread (root mean squared
    distance to the centre), the latents drawn from ``RandomState(123)`` as the reference.

    Args:
        G: a StyleGAN2 generator.
        c: the label [1, c_dim].
        samples: how many latents.
        device: where G lives.
    """
    z = np.random.RandomState(W_AVG_SEED).randn(samples, int(G.z_dim)).astype(np.float32)
    ws = []
    for start in range(0, samples, W_AVG_BATCH):
        batch = torch.from_numpy(z[start:start + W_AVG_BATCH]).to(device)
        ws.append(G.mapping(batch, c.expand(len(batch), -1))[:, 0].float())
    w = torch.cat(ws)
    centre = w.mean(dim=0)
    spread = float((w - centre).square().sum().div(samples).sqrt())
    return centre.view(1, 1, -1), spread


def noise_regularization(noise_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """How far the maps are from white noise: the squared mean product of each map with itself
    shifted by one pixel (across and down), summed over a pyramid of 2x2 averages down to 8 px.

    Args:
        noise_maps: [H, W] maps.
    """
    total = torch.zeros((), device=noise_maps[0].device) if noise_maps else torch.zeros(())
    for noise in noise_maps:
        level = noise[None, None]
        while True:
            for dim in (2, 3):
                total = total + (level * torch.roll(level, shifts=1, dims=dim)).mean().square()
            if level.shape[2] <= NOISE_PYRAMID_MIN:
                break
            level = F.avg_pool2d(level, kernel_size=2)
    return total


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5 % of the steps, half-cosine decay over the last 25 %."""
    t = step / steps
    down = min(1.0, (1.0 - t) / LR_RAMPDOWN_LENGTH)
    ramp = (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / LR_RAMPUP_LENGTH)
    return peak * ramp


def w_noise_scale(step: int, steps: int, spread: float) -> float:
    """The standard deviation of the noise added to w at ``step``: fades quadratically to 0."""
    t = step / steps
    return spread * INITIAL_NOISE_FACTOR * max(0.0, 1.0 - t / NOISE_RAMP_LENGTH) ** 2


def project(
    G: nn.Module,
    target: torch.Tensor,
    lpips: nn.Module,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = DEFAULT_SEED,
    noise_mode: str = "const",
    lr: float = DEFAULT_LR,
    noise_weight: float = DEFAULT_NOISE_WEIGHT,
    w_avg_samples: int = DEFAULT_W_AVG_SAMPLES,
    class_idx: int | None = None,
    device: torch.device | str = "cpu",
    log_every: int = 0,
) -> Projection:
    """Fit w (and with ``noise_mode=const`` the noise maps) of a copy of ``G`` to ``target``.

    Args:
        G: a StyleGAN2 generator (left unchanged).
        target: uint8 [C, R, R] at G's channels and resolution.
        lpips: NVIDIA's VGG16 TorchScript module (``vgg16.pt``) or one with its interface.
        steps: optimisation steps.
        seed: seed of the initial noise maps and the w noise.
        noise_mode: ``const`` (fit the noise maps) or ``none`` (w only, no noise).
        lr: the peak learning rate.
        noise_weight: weight of :func:`noise_regularization`.
        w_avg_samples: latents for w's centre and spread.
        class_idx: class for a conditional G.
        device: where G and ``lpips`` live.
        log_every: print the distance every this many steps (0: never).
    """
    check_projectable(G)
    if noise_mode not in PROJECT_NOISE_MODES:
        raise ConfigError(f"noise_mode={noise_mode!r} is not valid for the projector; choose one "
                          f"of {', '.join(PROJECT_NOISE_MODES)}")
    expected = (int(G.img_channels), int(G.img_resolution), int(G.img_resolution))
    if tuple(target.shape) != expected or target.dtype != torch.uint8:
        raise ValueError(f"target must be uint8 {list(expected)}, got {target.dtype} "
                         f"{list(target.shape)}")
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    c = class_label(G, class_idx).to(device)
    w_avg, w_std = w_statistics(G, c, w_avg_samples, device)
    num_ws = int(G.mapping.num_ws)
    noise_maps = ([buf for name, buf in G.synthesis.named_buffers()
                   if name.endswith(NOISE_BUFFER)] if noise_mode == "const" else [])
    with seeded_rng(seed, device):
        with torch.no_grad():
            target_features = lpips_features(lpips, target[None].to(device, torch.float32))
        w_opt = w_avg.clone().requires_grad_(True)
        for buf in noise_maps:
            with torch.no_grad():
                buf.copy_(torch.randn_like(buf))
            buf.requires_grad_(True)
        optimizer = torch.optim.Adam([w_opt, *noise_maps], betas=ADAM_BETAS, lr=lr)
        ws_out = torch.zeros(steps, w_avg.shape[-1], device=device)
        distances = []
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr)
            w_noise = torch.randn_like(w_opt) * w_noise_scale(step, steps, w_std)
            ws = (w_opt + w_noise).repeat(1, num_ws, 1)
            images = (G.synthesis(ws, noise_mode=noise_mode) + 1) * PIXEL_SCALE
            dist = (target_features - lpips_features(lpips, images)).square().sum()
            loss = dist + noise_weight * noise_regularization(noise_maps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            distances.append(float(dist.detach()))
            ws_out[step] = w_opt.detach()[0, 0]
            if log_every and (step + 1) % log_every == 0:
                print(f"[dgan] step {step + 1}/{steps}: LPIPS distance {distances[-1]:.4f}",
                      flush=True)
            with torch.no_grad():
                # Back to zero mean and unit variance, as the noise the network was trained on.
                for buf in noise_maps:
                    buf -= buf.mean()
                    buf *= buf.square().mean().rsqrt()
    for buf in noise_maps:
        buf.requires_grad_(False)
    return Projection(ws=ws_out.unsqueeze(1).repeat(1, num_ws, 1).cpu(), distances=distances,
                      G=G)


@torch.no_grad()
def render(projection: Projection, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
    """Images [N, C, H, W] in [-1, 1] (CPU) of ``ws`` [N, num_ws, w_dim] with the fitted noise.

    Args:
        projection: the result of :func:`project`.
        ws: the latents.
        noise_mode: the projection's noise mode.
    """
    G = projection.G
    device = next(G.parameters()).device
    return G.synthesis(ws.to(device), noise_mode=noise_mode).float().cpu()


def fitted_noise(projection: Projection) -> dict[str, np.ndarray]:
    """The fitted noise maps by ``noise.<layer>`` (the buffer's name in G.synthesis)."""
    return {NOISE_KEY_PREFIX + name[: -len("." + NOISE_BUFFER)]: buf.detach().cpu().numpy()
            for name, buf in projection.G.synthesis.named_buffers()
            if name.endswith(NOISE_BUFFER)}


def write_projection(projection: Projection, target: torch.Tensor, outdir: Path,
                     noise_mode: str, video_fps: float | None) -> list[Path]:
    """``target.png``, ``proj.png``, ``projected_w.npz`` and (``video_fps`` given) ``proj.mp4``.

    Args:
        projection: the result of :func:`project`.
        target: the target uint8 [C, R, R].
        outdir: an existing directory.
        noise_mode: the projection's noise mode.
        video_fps: frames per second of the progress video; None: no video.
    """
    final = projection.ws[-1:]
    written = [save_png(target, outdir / TARGET_FILE),
               save_png(to_uint8(render(projection, final, noise_mode))[0],
                        outdir / PROJECTED_FILE)]
    arrays = {W_KEY: final.numpy()}
    if noise_mode == "const":
        arrays.update(fitted_noise(projection))
    written.append(atomic_write(outdir / W_FILE, lambda f: np.savez(f, **arrays)))
    if video_fps is not None:
        frames = (torch.cat([target, to_uint8(render(projection, w[None], noise_mode))[0]], dim=2)
                  for w in projection.ws)
        written.append(write_mp4(frames, outdir / VIDEO_FILE, video_fps))
    return written


def load_lpips(weights_dir: str | None, device: torch.device) -> nn.Module:
    """NVIDIA's VGG16 TorchScript module as the metrics find it; one error line when missing.

    Args:
        weights_dir: the directory holding ``vgg16.pt`` (None: $DGAN_WEIGHTS_DIR, the hub cache).
        device: where to put it.
    """
    directory = weights_dir if weights_dir is not None else os.environ.get("DGAN_WEIGHTS_DIR")
    try:
        resolve_weights_path(VGG16_NVIDIA, directory, weights_key="weights_dir")
        return build_feature_extractor(VGG16_NVIDIA, device, directory).module.detector
    except WeightsUnavailableError as err:
        raise ConfigError(" ".join(str(err).split("\n"))) from None


def run(opts: ProjectOptions) -> list[Path]:
    """Check the options, load G and VGG16, project and write; returns the written files."""
    check_generator_source(opts.ckpt, opts.pkl)
    if opts.target is None:
        raise ConfigError("target is required: the image to project, e.g. target=face.png")
    if opts.outdir is None:
        raise ConfigError("outdir is required: the directory for the projection, e.g. "
                          "outdir=out")
    if opts.noise_mode not in PROJECT_NOISE_MODES:
        raise ConfigError(f"noise_mode={opts.noise_mode!r} is not valid for the projector; "
                          f"choose one of {', '.join(PROJECT_NOISE_MODES)}")
    check_creatable_dir(opts.outdir, "outdir")
    image = read_target(opts.target)
    if opts.save_video:
        check_mp4("save_video", "true", "save_video=false")
    device = resolve_device(opts.device)
    # G first: a generator that cannot be projected is said before any weights are looked up.
    loaded = load_generator_from(opts.ckpt, opts.pkl, device)
    check_projectable(loaded.G)
    lpips = load_lpips(opts.weights_dir, device)
    class_label(loaded.G, opts.class_idx)
    target = target_tensor(image, int(loaded.G.img_resolution), int(loaded.G.img_channels))
    print(f"[dgan] projecting {opts.target} into w of {loaded.path}: {opts.steps} steps",
          flush=True)
    projection = project(loaded.G, target, lpips, steps=opts.steps, seed=opts.seed,
                         noise_mode=opts.noise_mode, lr=opts.lr, noise_weight=opts.noise_weight,
                         w_avg_samples=opts.w_avg_samples, class_idx=opts.class_idx,
                         device=device, log_every=max(1, opts.steps // 10))
    outdir = Path(opts.outdir)
    check_writable_dir(outdir, "outdir")
    written = write_projection(projection, target, outdir, opts.noise_mode,
                               opts.fps if opts.save_video else None)
    print(f"[dgan] LPIPS distance {projection.distances[0]:.4f} -> "
          f"{projection.distances[-1]:.4f}; wrote {', '.join(p.name for p in written)} to "
          f"{outdir}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    return key_value_main("dgan.project", ProjectOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""What a digits FID value means: the metric of known image sets, as a table.

    python -m dgan.calibrate resolution=16
    python -m dgan.calibrate resolution=16 subsets=100,200 out=calibration.csv

Each row scores a set of real digits, changed in one known way, with the metric the digits runs
log (``fid_digits2k_full``: 2,000 samples against all 1,797 digits, in the feature space of the
small digits classifier). The rows: reals resampled, reals with pixel noise, reals blurred, reals
with classes missing, and a generator that memorised a training subset perfectly (2,000 draws
from the ``dataset.max_size`` subset a run trains on) beside that subset's floor (each of its
images once: the line ``sweep_report --curves`` draws). The sets go through the metric code of
training (the registered metric, its sample count set to the set's size), so the values are on
the scale of ``metrics.jsonl`` and the floors equal those of ``metric_floors.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dgan.config.cli_args import key_value_main
from dgan.core.errors import ConfigError
from dgan.data.digits import DigitsDataset
from dgan.data.images import DatasetError
from dgan.files.atomic import atomic_write_bytes
from dgan.metrics.registry import MetricOptions, lookup_metric

METRIC = "fid_digits2k_full"
SAMPLES = 2000
NOISE_STD = 20.0       # uint8 units: visible speckle on a 0..255 image
BLUR_SIZE = 3          # a 3x3 box filter
MISSING_ONE = (9,)     # classes left out of "one class missing"
MISSING_HALF = (5, 6, 7, 8, 9)
COLUMNS = ("set", "fid_digits2k_full")


@dataclasses.dataclass
class CalibrateOptions:
    """Arguments of ``python -m dgan.calibrate``.

    Args:
        resolution: side of the digits, as the run's model.generator.img_resolution (8, 16, 32).
        subsets: comma-separated dataset.max_size values whose memorised sets and floors to add.
        subset_seed: dataset.seed of those subsets (the digits experiments use 0).
        seed: seed of the resampling, the noise and the draws from a subset.
        out: also write the table as CSV here (null: print only).
        batch_size: images per forward pass of the classifier.
        cache_dir: cache of the reals' statistics (null: ~/.cache/dgan).
    """

    resolution: int = 16
    subsets: Any = "100,200,300"
    subset_seed: int = 0
    seed: int = 0
    out: str | None = None
    batch_size: int = 256
    cache_dir: str | None = None


class FixedImages(nn.Module):
    """uint8 images standing in for a generator: sample ``i`` is image ``i``."""

    z_dim = 0
    c_dim = 0

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images
        self.img_resolution = int(images.shape[-1])
        self.img_channels = int(images.shape[1])

    def uint8_images(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(list(indices), dtype=torch.long)]


def parse_subsets(value: Any) -> list[int]:
    """``subsets=`` as a list of sizes (an int, or a comma-separated string of them)."""
    parts = [value] if isinstance(value, int) else str(value).split(",") if value else []
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"subsets={value!r} is not a comma-separated list of sizes "
                          "(e.g. subsets=100,200)") from None
    bad = [n for n in sizes if not 0 < n < 1797]
    if bad:
        raise ConfigError(f"subsets={value!r}: {bad[0]} is not a subset size of the digits "
                          "(1 to 1,796)")
    return sizes


def all_uint8(dataset: DigitsDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's images (uint8 [N, 1, H, W]) and their classes."""
    images = torch.stack([torch.as_tensor(dataset.get_uint8(i)) for i in range(len(dataset))])
    classes = torch.tensor([dataset.class_of(i) for i in range(len(dataset))])
    return images, classes


def draw(images: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` images drawn from ``images`` with replacement."""
    return images[torch.randint(len(images), (count,), generator=generator)]


def blurred(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    kernel = torch.full((1, 1, BLUR_SIZE, BLUR_SIZE), 1.0 / BLUR_SIZE**2)
    x = F.conv2d(F.pad(x, [BLUR_SIZE // 2] * 4, mode="replicate"), kernel)
    return x.round().clamp(0, 255).to(torch.uint8)


def noisy(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator) * NOISE_STD
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def calibration_sets(opts: CalibrateOptions) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """(name, images) of every row, built lazily so that a row costs only when scored."""
    full = DigitsDataset(resolution=opts.resolution)
    images, classes = all_uint8(full)
    rng = torch.Generator().manual_seed(opts.seed)

    def without(missing: Sequence[int]) -> torch.Tensor:
        keep = ~torch.isin(classes, torch.tensor(list(missing)))
        return draw(images[keep], SAMPLES, rng)

    rows: list[tuple[str, Callable[[], torch.Tensor]]] = [
        ("2,000 real digits drawn with replacement", lambda: draw(images, SAMPLES, rng)),
        (f"real digits with pixel noise of std {NOISE_STD:g}",
         lambda: noisy(draw(images, SAMPLES, rng), rng)),
        (f"real digits, {BLUR_SIZE}x{BLUR_SIZE} blurred",
         lambda: blurred(draw(images, SAMPLES, rng))),
        ("real digits of 9 classes (one class missing)", lambda: without(MISSING_ONE)),
        ("real digits of 5 classes (half missing)", lambda: without(MISSING_HALF)),
    ]
    for size in parse_subsets(opts.subsets):
        subset = DigitsDataset(resolution=opts.resolution, max_size=size, seed=opts.subset_seed)
        sub_images, _ = all_uint8(subset)
        rows.append((f"{size} digits memorised (2,000 draws from the subset)",
                     lambda s=sub_images: draw(s, SAMPLES, rng)))
        rows.append((f"{size} digits, each once (the subset's floor)", lambda s=sub_images: s))
    return rows


def score(images: torch.Tensor, reference: DigitsDataset, opts: CalibrateOptions) -> float:
    """``fid_digits2k_full`` of ``images`` (its sample count is the number of images)."""
    fn, _ = lookup_metric(METRIC)
    metric_opts = MetricOptions(G=FixedImages(images), dataset=reference,
                                num_samples=len(images), batch_size=opts.batch_size,
                                cache_dir=None if opts.cache_dir is None else Path(opts.cache_dir))
    return float(next(iter(fn(metric_opts).values())))


def calibrate(opts: CalibrateOptions) -> list[tuple[str, float]]:
    """Score every calibration set; print the table (and write it when ``out`` is set)."""
    try:
        reference = DigitsDataset(resolution=opts.resolution)
    except DatasetError as err:
        raise ConfigError(f"resolution={opts.resolution}: {err}") from None
    sets = calibration_sets(opts)
    table = []
    print(f"| samples ({opts.resolution} px, seed {opts.seed}) | {METRIC} |\n|---|---|", flush=True)
    for name, build_images in sets:
        value = score(build_images(), reference, opts)
        table.append((name, value))
        print(f"| {name} | {value:.1f} |", flush=True)
    if opts.out is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        writer.writerows((name, f"{value:.4f}") for name, value in table)
        atomic_write_bytes(Path(opts.out), buffer.getvalue().encode())
        print(f"[dgan] wrote {opts.out}", flush=True)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    return key_value_main("dgan.calibrate", CalibrateOptions, calibrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())

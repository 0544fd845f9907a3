"""Loader throughput, what ``python -m dgan.bench --data`` reports (part of ``make bench``).

Images/s that ONE DataLoader worker delivers from a zip and from a folder of PNGs at 32, 256
and 1024 px, through the training pipeline (read, PNG decode, x-flip, uint8 -> float tensor,
collate, and the pinned copy when CUDA is present), beside the rate a GPU consumes real images
at, from the reference's published sec/kimg. The images are made here: smooth random fields with
a little noise, which compress about as photographs do (PNG decode time follows the compressed
size), at a fixed seed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dgan.data.datamodule import GANDataModule, available_cpus
from dgan.data.images import ImageDataset

RESOLUTIONS = (32, 256, 1024)
# Images per dataset: enough for a few seconds of decoding at each size, little to encode.
IMAGES = {32: 2048, 256: 256, 1024: 24}
BATCH = {32: 64, 256: 32, 1024: 8}
# Real images per second one GPU consumes, from StyleGAN2-ADA's README ("Expected training
# time", Tesla V100, --cfg=auto): sec/kimg on 1 GPU and on 8 GPUs (the per-GPU rate on 8 is
# 1000 / (8 * sec/kimg)). 128 px: 12.8 (1 GPU), 3.9 (8); 256 px: 21.6, 4.4; 1024 px: 154.3,
# 20.2. No 32 px figure is published: a 32 px run is faster than 128 px, so the 128 px rate is
# a lower bound there. An A100 / H100 runs about 1.5-3x a V100.
REFERENCE_SEC_PER_KIMG = {32: (12.8, 3.9), 256: (21.6, 4.4), 1024: (154.3, 20.2)}
REFERENCE_GPUS = (1, 8)
# Timed batches follow this many untimed ones (worker start-up, zip open, first decode).
WARMUP_BATCHES = 2


def gpu_demand(resolution: int) -> dict[str, float]:
    """Real images/s per GPU at the reference's speed (1 GPU, and each of 8)."""
    return {f"{gpus}gpu_images_per_s_per_gpu": 1000.0 / (sec * gpus)
            for gpus, sec in zip(REFERENCE_GPUS, REFERENCE_SEC_PER_KIMG[resolution], strict=True)}


def synthetic_image(rng: np.random.Generator, resolution: int) -> Image.Image:
    """A smooth random RGB field plus mild noise (compresses like a photograph, roughly)."""
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((resolution, resolution), Image.BICUBIC)
    noise = rng.integers(-6, 7, (resolution, resolution, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255)
                           .astype(np.uint8))


def make_datasets(root: Path, resolution: int, count: int, seed: int = 0) -> dict[str, Path]:
    """A folder and a zip (stored, as dgan.data.prepare writes) of ``count`` PNGs."""
    rng = np.random.default_rng(seed)
    folder = root / f"png{resolution}"
    folder.mkdir(parents=True)
    archive = root / f"png{resolution}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(count):
            name = f"{i:08d}.png"
            synthetic_image(rng, resolution).save(folder / name, format="PNG", compress_level=6)
            zf.write(folder / name, name)
    return {"zip": archive, "folder": folder}


def loader_rate(path: Path, resolution: int, batches: int, uint8: bool = False,
                preload: bool = False) -> float:
    """Images/s of ONE worker of the training datamodule over ``path`` (x-flip on), up to the
    float batch on the device (the CUDA copy from pinned memory when there is a GPU)."""
    dataset = ImageDataset(path, xflip=True)
    dm = GANDataModule(dataset, batch_size=BATCH[resolution], num_workers=1,
                       pin_memory=True, uint8=uint8, preload=preload)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    it = iter(dm.train_dataloader())

    def fetch() -> torch.Tensor:
        x, c = next(it)
        x, c = dm.on_after_batch_transfer((x.to(device, non_blocking=True), c), 0)
        return x

    for _ in range(WARMUP_BATCHES):
        fetch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        x = fetch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    assert x.dtype == torch.float32
    return batches * BATCH[resolution] / seconds


def stage_rates(path: Path, count: int) -> dict[str, float]:
    """Images/s of each stage in this process: PNG read + decode, -> uint8 CHW, flip + float."""
    dataset = ImageDataset(path, xflip=True)
    names = dataset.image_names[:count]
    out = {}
    start = time.perf_counter()
    images = [dataset.store.read_image(name) for name in names]
    out["read_decode"] = len(names) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(len(names)):
        dataset._decode(i, verify=False)
    out["decode_to_uint8"] = len(names) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(len(names)):
        dataset[dataset.raw_size + i]  # the flipped half: flip, float, scale
    out["full_item"] = len(names) / (time.perf_counter() - start)
    del images
    return out


def measure(resolutions: tuple[int, ...] = RESOLUTIONS, repeats: int = 3,
            scale: float = 1.0) -> dict[str, Any]:
    """Per-worker loader images/s for every resolution and storage, with the GPU demand.

    Args:
        resolutions: image sizes to measure (each of RESOLUTIONS).
        repeats: timed runs per case; the median is reported.
        scale: multiplies the image counts (a test uses a small one).
    """
    results: dict[str, Any] = {"cpus": available_cpus(), "pinned": torch.cuda.is_available(),
                               "resolutions": {}}
    with tempfile.TemporaryDirectory(prefix="dgan-bench-data-") as tmp:
        for res in resolutions:
            count = max(int(IMAGES[res] * scale), 2 * BATCH[res])
            paths = make_datasets(Path(tmp), res, count)
            batches = max(count * 2 // BATCH[res] - WARMUP_BATCHES, 1) // 2
            row: dict[str, Any] = {"images": count, "batch": BATCH[res],
                                   "png_kib": paths["folder"].joinpath("00000000.png")
                                   .stat().st_size / 1024, **gpu_demand(res)}
            for kind, path in paths.items():
                for name, uint8 in (("float", False), ("uint8", True)):
                    row[f"{kind}_{name}"] = statistics.median(
                        loader_rate(path, res, batches, uint8=uint8) for _ in range(repeats))
            row["zip_in_process_stages"] = stage_rates(paths["zip"], min(count, 64))
            probe = ImageDataset(paths["zip"])
            if probe.cache_bytes <= probe.cache_mb * 2**20:
                row["zip_uint8_cached"] = statistics.median(
                    loader_rate(paths["zip"], res, batches, uint8=True, preload=True)
                    for _ in range(repeats))
            results["resolutions"][res] = row
    return results


def format_table(results: dict[str, Any]) -> str:
    """The printed loader table."""
    pinned = "pinned copy to the GPU" if results["pinned"] else "no GPU: no pinned copy"
    lines = [f"data loader: images/s of ONE worker (read, PNG decode, x-flip, collate, {pinned},"
             f" to float; {results['cpus']} CPUs)",
             f"{'px':>5} {'zip f32':>8} {'zip u8':>8} {'dir f32':>8} {'dir u8':>8} "
             f"{'cached':>8} {'decode':>8}  GPU needs /s (1 V100 / each of 8)"]
    for res, row in results["resolutions"].items():
        cached = row.get("zip_uint8_cached")
        lines.append(
            f"{res:>5} {row['zip_float']:>8.0f} {row['zip_uint8']:>8.0f} "
            f"{row['folder_float']:>8.0f} {row['folder_uint8']:>8.0f} "
            f"{'-' if cached is None else f'{cached:.0f}':>8} "
            f"{row['zip_in_process_stages']['read_decode']:>8.0f}  "
            f"{row['1gpu_images_per_s_per_gpu']:.0f} / {row['8gpu_images_per_s_per_gpu']:.0f}"
            f"{' (128 px figures: a lower bound)' if res == 32 else ''}")
    lines += ["f32: float batches from the worker (speed=cpu); u8: uint8 batches scaled after the "
              "copy (speed=gpu); cached: u8 from the decoded copy in memory (preload);",
              "decode: PNG read + decode alone in one process; GPU needs: real images/s per GPU "
              "at the reference's published sec/kimg (dgan.data.loader_throughput)"]
    return "\n".join(lines)

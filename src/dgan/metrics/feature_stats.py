"""What every image metric shares: fakes and reals as uint8, features on torch-fidelity's
extractors, DDP sharding and gathering, and the on-disk cache of real statistics.

The metrics themselves live one family per file (``fid``, ``kid``, ``inception_score``,
``precision_recall``), on top of this module.

Registered names (``N`` is the number of generated images, e.g. ``50k``):

- ``fidNk_full``: FID, N fakes against every training image (x-flips included when the
  dataset mirrors), Inception-v3 pool features;
- ``kidNk_full``: KID, against up to 1M reals, 100 subsets of up to 1000;
- ``isNk``: Inception Score (``isNk_mean``, ``isNk_std``), 10 splits, unbiased logits;
- ``prNk3_full``: Kynkaanniemi et al. precision/recall with k=3 on VGG16 fc2 features, against
  as many reals as fakes (``prNk3_full_precision``, ``prNk3_full_recall``);
- ``fid_digitsN_full`` / ``pr_digitsN_k3_full``: the same on a digits classifier's features
  (:mod:`dgan.metrics.digits_features`), for scikit-learn's digits.

Protocol: the generator's [-1, 1] output becomes uint8 (``x * 127.5 + 128``), exactly what a
real image is, before any extractor sees it. Latent ``i`` (and its label) is drawn from a
generator seeded with ``(opts.seed, i)``, so the set of fakes is the same whatever the world
size; each rank generates a contiguous share of the indices and features are gathered in
index order. Real statistics are computed once per dataset fingerprint, extractor weights,
layer, resolution and count, and cached on disk (atomically) under ``opts.cache_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dgan.files.atomic import atomic_write
from dgan.files.pictures import to_uint8
from dgan.metrics.digits_features import build_digits_extractor, default_cache_dir
from dgan.metrics.feature_extractors import (
    FeatureExtractor,
    build_feature_extractor,
)
from dgan.metrics.registry import MetricOptions

DEFAULT_NUM_SAMPLES = 50_000
# Seed of the fixed random subset of reals used when a metric takes fewer than all of them.
REAL_SUBSET_SEED = 0
# Bump when the cached payload or its meaning changes.
CACHE_FORMAT = 1

FID_LAYER = "2048"
DIGITS_LAYER = "features"

Statistics = dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------
# Samples: latents, generation, real images
# --------------------------------------------------------------------------------------------


def count_tag(n: int) -> str:
    """Sample count as it appears in metric names: 50000 -> ``"50k"``, 250 -> ``"250"``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def shard(total: int, rank: int, world_size: int) -> range:
    """Contiguous share of ``range(total)`` for ``rank``; the remainder goes to the first ranks.

    Args:
        total: number of items over all ranks.
        rank: this process's rank.
        world_size: number of ranks.
    """
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def _label_vector(label: Any, c_dim: int) -> np.ndarray:
    # Datasets hand out one-hot vectors (StyleGAN2-ADA) or class indices; accept both.
    arr = np.asarray(label, dtype=np.float32)
    if arr.ndim == 0:
        onehot = np.zeros(c_dim, dtype=np.float32)
        onehot[int(arr)] = 1
        return onehot
    return arr.reshape(c_dim)


def sample_latents(
    indices: Sequence[int], z_dim: int, c_dim: int, seed: int, dataset: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and labels of global sample ``indices``, each from its own seeded generator.

    Args:
        indices: global sample indices (the same index gives the same sample on any rank).
        z_dim: latent size.
        c_dim: label size (0: unconditional, labels are [N, 0]).
        seed: evaluation seed (``opts.seed``).
        dataset: source of the label distribution when ``c_dim > 0``.
    """
    z = np.empty((len(indices), z_dim), dtype=np.float32)
    c = np.zeros((len(indices), c_dim), dtype=np.float32)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([seed % 2**63, int(index)])
        z[row] = rng.standard_normal(z_dim, dtype=np.float32)
        if c_dim > 0:
            # StyleGAN2-ADA: the label of a random training image, so classes follow the data.
            c[row] = _label_vector(dataset.get_label(int(rng.integers(len(dataset)))), c_dim)
    return torch.from_numpy(z), torch.from_numpy(c)


def batch_noise_seed(seed: int, first_index: int) -> int:
    """Seed of the generator's own noise (per-layer noise inputs) for the batch that starts at
    global sample ``first_index``.

    Args:
        seed: evaluation seed (``opts.seed``).
        first_index: global index of the batch's first sample.
    """
    return int(np.random.SeedSequence([seed % 2**63, int(first_index)]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | str) -> Iterator[None]:
    """Run the block with the global CPU and ``device`` random streams seeded with ``seed``,
    and give both back as they were afterwards.

    Networks draw their noise inputs from the global stream; seeding it makes a metric the same
    on every call, and restoring it leaves a training run's own stream untouched.

    Args:
        seed: the seed of the block.
        device: the device the network runs on (its CUDA stream is seeded too).
    """
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:  # this device only: torch.manual_seed would reseed every GPU
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def generate_uint8(opts: MetricOptions, indices: Sequence[int]) -> Iterator[torch.Tensor]:
    """uint8 fakes of global sample ``indices`` in batches of ``opts.batch_size``.

    The latents are the same whatever the batch size and world size; the generator's noise
    inputs are drawn per batch from a stream seeded by ``(opts.seed, first index of the
    batch)``, so the same checkpoint, seed, batch size and world size give the same fakes.

    Args:
        opts: metric options (generator, device, seed, truncation, batch size).
        indices: global sample indices to generate.
    """
    G = opts.G
    net = getattr(G, "module", G)  # z_dim / c_dim live on the bare network, not a DDP wrapper
    fixed_images = getattr(net, "uint8_images", None)
    if fixed_images is not None:
        # A fixed image set stands in for G (metrics.image_set): fake i is image i.
        for start in range(0, len(indices), opts.batch_size):
            yield fixed_images(indices[start : start + opts.batch_size])
        return
    was_training = G.training
    G.eval()
    kwargs = {} if opts.truncation_psi == 1 else {"truncation_psi": opts.truncation_psi}
    try:
        for start in range(0, len(indices), opts.batch_size):
            batch = indices[start : start + opts.batch_size]
            z, c = sample_latents(batch, net.z_dim, net.c_dim, opts.seed, opts.dataset)
            noise_seed = batch_noise_seed(opts.seed, batch[0])
            with torch.no_grad(), seeded_global_rng(noise_seed, opts.device):
                images = G(z.to(opts.device), c.to(opts.device), **kwargs)
            yield to_uint8(images)
    finally:
        G.train(was_training)


class _RealImages(torch.utils.data.Dataset):
    """The dataset's uint8 images at chosen indices (lets a DataLoader add workers)."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.dataset.get_uint8(self.indices[k])))


def real_uint8(opts: MetricOptions, indices: Sequence[int]) -> Iterator[torch.Tensor]:
    """uint8 reals at dataset ``indices`` in batches (``opts.extra["num_workers"]`` workers).

    Args:
        opts: metric options (dataset, batch size).
        indices: dataset indices to load.
    """
    loader = torch.utils.data.DataLoader(
        _RealImages(opts.dataset, indices),
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=int(opts.extra.get("num_workers", 0)),
    )
    yield from loader


def real_indices(num_real: int, count: int, seed: int = REAL_SUBSET_SEED) -> list[int]:
    """All indices, or a fixed random subset of ``count`` (sorted, for sequential reads).

    Args:
        num_real: dataset length (x-flips included).
        count: how many reals the metric uses.
        seed: seed of the subset.
    """
    if count >= num_real:
        return list(range(num_real))
    perm = np.random.default_rng(seed).permutation(num_real)[:count]
    return sorted(int(i) for i in perm)


# --------------------------------------------------------------------------------------------
# Distributed helpers: every rank calls each of these (they run collectives)
# --------------------------------------------------------------------------------------------


def distributed(opts: MetricOptions) -> bool:
    if opts.world_size <= 1:
        return False
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"world_size={opts.world_size} but torch.distributed is not initialised; every rank "
            "must call the metric inside an initialised process group"
        )
    return True


def _comm_device(opts: MetricOptions) -> torch.device:
    # NCCL moves CUDA tensors only; gloo (CPU tests, CPU clusters) moves CPU tensors.
    return torch.device(opts.device) if dist.get_backend() == "nccl" else torch.device("cpu")


def _gather_rows(local: torch.Tensor, total: int, opts: MetricOptions) -> torch.Tensor:
    """Concatenate every rank's share of rows, in global index order, on every rank (CPU)."""
    if not distributed(opts):
        return local.cpu()
    sizes = [len(shard(total, r, opts.world_size)) for r in range(opts.world_size)]
    device = _comm_device(opts)
    # all_gather needs equal shapes: shares differ by at most one row, so pad.
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size].cpu() for part, size in zip(parts, sizes, strict=True)])


def _all_ranks_agree(flag: bool, opts: MetricOptions) -> bool:
    """True only if ``flag`` is true on every rank (so all ranks take the same branch)."""
    if not distributed(opts):
        return flag
    value = torch.tensor([int(flag)], device=_comm_device(opts))
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


# --------------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------------


class FeatureMoments:
    """Running float64 sum and raw second moment: FID statistics without keeping features."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def add(self, features: torch.Tensor) -> None:
        """Accumulate a batch [N, D]."""
        f = features.double()
        if self.sum is None:
            self.sum = torch.zeros(f.shape[1], dtype=torch.float64, device=f.device)
            self.outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64, device=f.device)
        self.count += len(f)
        self.sum += f.sum(dim=0)
        self.outer += f.T @ f

    def all_reduce(self, opts: MetricOptions) -> None:
        """Sum the moments of all ranks (a collective)."""
        if not distributed(opts):
            return
        device = _comm_device(opts)
        for name in ("sum", "outer"):
            value = getattr(self, name).to(device)
            dist.all_reduce(value)
            setattr(self, name, value)
        count = torch.tensor([self.count], dtype=torch.float64, device=device)
        dist.all_reduce(count)
        self.count = int(count.item())

    def statistics(self) -> Statistics:
        """``mu`` and (unbiased, like ``np.cov``) ``sigma`` as float64 numpy arrays."""
        assert self.sum is not None and self.outer is not None and self.count > 1
        mu = self.sum / self.count
        sigma = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return {"mu": mu.cpu().numpy(), "sigma": sigma.cpu().numpy()}


def _extract_share(
    opts: MetricOptions,
    extractor: FeatureExtractor,
    layer: str,
    images_of: Callable[[Sequence[int]], Iterator[torch.Tensor]],
    keys: Sequence[int],
    moments: bool,
    dtype: torch.dtype,
) -> Statistics | torch.Tensor:
    """Features of ``keys`` (split over the ranks), reduced to moments or gathered in order."""
    total = len(keys)
    if total < max(opts.world_size, 2):
        raise ValueError(f"need at least {max(opts.world_size, 2)} samples, got {total}")
    mine = shard(total, opts.rank, opts.world_size)
    my_keys = [keys[i] for i in mine]
    if moments:
        acc = FeatureMoments()
        for images in images_of(my_keys):
            acc.add(extractor(images)[layer])
        acc.all_reduce(opts)
        return acc.statistics()
    # Kept on the CPU as they come: 50k x 4096 features fit, 50k images would not matter.
    parts = [extractor(images)[layer].to("cpu", dtype) for images in images_of(my_keys)]
    return _gather_rows(torch.cat(parts), total, opts)


def generator_features(
    opts: MetricOptions,
    extractor: FeatureExtractor,
    layer: str,
    num: int,
    *,
    moments: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Statistics | torch.Tensor:
    """Features of fakes ``0..num-1`` on every rank: FID moments or all rows in index order.

    Args:
        opts: metric options (generator, device, seed, ranks).
        extractor: feature extractor.
        layer: which of its outputs.
        num: number of fakes (over all ranks).
        moments: return ``{"mu", "sigma"}`` instead of the features.
        dtype: storage dtype of gathered features.
    """
    return _extract_share(
        opts,
        extractor,
        layer,
        lambda keys: generate_uint8(opts, keys),
        list(range(num)),
        moments,
        dtype,
    )


def extract_dataset_features(
    opts: MetricOptions,
    extractor: FeatureExtractor,
    layer: str,
    indices: Sequence[int],
    *,
    moments: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Statistics | torch.Tensor:
    """Features of the reals at ``indices`` (no cache; see :func:`dataset_features_cached`).

    Args:
        opts: metric options (dataset, device, ranks).
        extractor: feature extractor.
        layer: which of its outputs.
        indices: dataset indices to use.
        moments: return ``{"mu", "sigma"}`` instead of the features.
        dtype: storage dtype of gathered features.
    """
    return _extract_share(
        opts, extractor, layer, lambda keys: real_uint8(opts, keys), indices, moments, dtype
    )


# --------------------------------------------------------------------------------------------
# Real-statistics cache
# --------------------------------------------------------------------------------------------


def cache_root(opts: MetricOptions) -> Path:
    """``opts.cache_dir`` or ``~/.cache/dgan``."""
    return Path(opts.cache_dir) if opts.cache_dir is not None else default_cache_dir()


def real_cache_path(
    opts: MetricOptions, extractor: FeatureExtractor, layer: str, kind: str, count: int
) -> Path | None:
    """Cache file of real statistics; ``None`` when the dataset has no fingerprint.

    Args:
        opts: metric options (dataset, cache_dir).
        extractor: feature extractor (its weights identity is part of the key).
        layer: extractor output.
        kind: ``"moments"`` or ``"features-<dtype>"``.
        count: number of reals.
    """
    ds = opts.dataset
    fingerprint = getattr(ds, "fingerprint", None)
    if not fingerprint:
        return None
    key = {
        "format": CACHE_FORMAT,
        "dataset": str(fingerprint),
        "extractor": extractor.key,
        "layer": layer,
        "kind": kind,
        "resolution": int(getattr(ds, "resolution", 0)),
        "count": count,
        "subset_seed": REAL_SUBSET_SEED if count < len(ds) else None,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(ds, "name", "dataset")))
    return cache_root(opts) / "real_stats" / f"{name}-{extractor.name}-{kind}{count}-{digest}.pt"


def dataset_features_cached(
    opts: MetricOptions,
    extractor: FeatureExtractor,
    layer: str,
    count: int | None = None,
    *,
    moments: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Statistics | torch.Tensor:
    """Real statistics/features, from the disk cache or computed once and cached.

    Args:
        opts: metric options.
        extractor: feature extractor.
        layer: which of its outputs.
        count: number of reals (a fixed random subset); default: all (x-flips included).
        moments: FID ``{"mu", "sigma"}`` instead of the features.
        dtype: storage dtype of the features.
    """
    num_real = len(opts.dataset)
    count = num_real if count is None else min(count, num_real)
    kind = "moments" if moments else f"features-{str(dtype).removeprefix('torch.')}"
    path = real_cache_path(opts, extractor, layer, kind, count)
    # Every rank must see the file, or all recompute: the branches run different collectives.
    if _all_ranks_agree(path is not None and path.is_file(), opts):
        assert path is not None
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if moments:
            return {"mu": payload["mu"].numpy(), "sigma": payload["sigma"].numpy()}
        return payload["features"]
    result = extract_dataset_features(
        opts, extractor, layer, real_indices(num_real, count), moments=moments, dtype=dtype
    )
    if path is not None and opts.rank == 0:
        if isinstance(result, dict):
            payload = {k: torch.from_numpy(v) for k, v in result.items()}
        else:
            payload = {"features": result}
        # torch.save straight into the file: no second in-memory copy of large features.
        atomic_write(path, lambda f: torch.save(payload, f))
    return result


# --------------------------------------------------------------------------------------------
# Options shared by the metric files
# --------------------------------------------------------------------------------------------


def num_fakes(opts: MetricOptions) -> int:
    """Number of generated images of a metric (the name's count, else 50k)."""
    return opts.num_samples if opts.num_samples is not None else DEFAULT_NUM_SAMPLES


def pretrained_extractor(opts: MetricOptions, name: str) -> FeatureExtractor:
    """A torch-fidelity extractor, its weights found offline as ``opts`` says."""
    return build_feature_extractor(
        name, opts.device, opts.weights_dir, opts.extra.get("weights_paths")
    )


def digits_extractor(opts: MetricOptions) -> FeatureExtractor:
    """The digits classifier (trained once and cached; rank 0 trains, the others load)."""
    if distributed(opts):
        if opts.rank == 0:
            build_digits_extractor("cpu", cache_root(opts))
        dist.barrier()
    return build_digits_extractor(opts.device, cache_root(opts))

"""What every image metric shares: fakes and reals as uint8, the base class of the metrics on
features (a torchmetrics ``Metric``), the loop that feeds it on every rank, and the on-disk
cache of real statistics.

The metrics themselves live one family per file (``fid``, ``kid``, ``inception_score``,
``precision_recall``, ``ppl``), each a torchmetrics ``Metric``, on top of this module.

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
size; each rank generates a contiguous share of the indices and feeds it to the metric, whose
states torchmetrics reduces across the ranks (float64 moments summed; feature rows
concatenated in rank order, which is global index order). Real statistics are computed once
per dataset fingerprint, extractor weights, layer, resolution and count, and cached on disk
(atomically) under ``opts.cache_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dgan.files.atomic import atomic_write
from dgan.files.pictures import to_uint8
from dgan.metrics.base import MetricOptions
from dgan.metrics.digits_features import build_digits_extractor, default_cache_dir
from dgan.metrics.feature_extractors import (
    FeatureExtractor,
    build_feature_extractor,
)

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


def generate_uint8(opts: MetricOptions, indices: Sequence[int],
                   classes: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
    """uint8 fakes of global sample ``indices`` in batches of ``opts.batch_size``.

    The latents are the same whatever the batch size and world size; the generator's noise
    inputs are drawn per batch from a stream seeded by ``(opts.seed, first index of the
    batch)``, so the same checkpoint, seed, batch size and world size give the same fakes.

    Args:
        opts: metric options (generator, device, seed, truncation, batch size).
        indices: global sample indices to generate.
        classes: the class each sample is drawn for (one per index; a conditional generator);
            None: labels of random training images, as StyleGAN2-ADA.
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
            if classes is None:
                z, c = sample_latents(batch, net.z_dim, net.c_dim, opts.seed, opts.dataset)
            else:  # the same latents; the labels asked for instead of the dataset's
                z, _ = sample_latents(batch, net.z_dim, 0, opts.seed)
                wanted = torch.as_tensor(list(classes[start : start + opts.batch_size]))
                c = torch.nn.functional.one_hot(wanted, net.c_dim).float()
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
# Distributed: torchmetrics reduces the metric states; every rank calls each of these
# --------------------------------------------------------------------------------------------


def distributed(opts: MetricOptions) -> bool:
    """Whether the metric runs over several ranks (a process group must be initialised)."""
    if opts.world_size <= 1:
        return False
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"world_size={opts.world_size} but torch.distributed is not initialised; every rank "
            "must call the metric inside an initialised process group"
        )
    return True


def metric_device(opts: MetricOptions) -> torch.device:
    """Where a metric keeps its states: ``opts.device``, but the CPU when gloo reduces them
    (NCCL moves CUDA tensors only; gloo, on CPU tests and CPU clusters, CPU tensors)."""
    if distributed(opts) and dist.get_backend() != "nccl":
        return torch.device("cpu")
    return torch.device(opts.device)


class EveryRank(Metric):
    """True when a flag is true on every rank (torchmetrics' ``min`` reduction): lets all ranks
    take the same branch, e.g. read the real-statistics cache only if every rank sees it."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("flag", torch.tensor(1.0), dist_reduce_fx="min")

    def update(self, flag: bool) -> None:
        self.flag = torch.minimum(self.flag, torch.tensor(float(flag), device=self.flag.device))

    def compute(self) -> bool:
        return bool(self.flag >= 1)


def every_rank(flag: bool, opts: MetricOptions) -> bool:
    """``flag`` and-ed over the ranks (a collective when distributed)."""
    if not distributed(opts):
        return flag
    vote = EveryRank(sync_on_compute=True).to(metric_device(opts))
    vote.update(flag)
    return vote.compute()


# --------------------------------------------------------------------------------------------
# Metrics on features: the base class and the loop that feeds it
# --------------------------------------------------------------------------------------------


class FeatureMetric(Metric):
    """A torchmetrics ``Metric`` on one output of a feature extractor.

    ``update(images, real)`` takes uint8 images [N, C, H, W] (reals or fakes), extracts their
    features and adds them to the states; torchmetrics reduces the states over the ranks in
    ``compute`` (sums for moments, concatenation in rank order for feature rows). Subclasses
    declare the states (:meth:`add`) and the formula (``compute``).

    Real statistics may come from the on-disk cache instead (:meth:`load_real`); a ``compute``
    over reals fed through ``update`` leaves their reduced statistics in ``real_payload``, the
    payload of the cache file.

    Args:
        extractor: the loaded feature extractor (not a state: ``.to()`` leaves it alone).
        layer: which of its outputs.
        kwargs: torchmetrics' ``Metric`` options (``sync_on_compute``, ...).
    """

    full_state_update = False
    is_differentiable = False
    # Cache kind of the real statistics ("moments", "features-float32", ...); None: no reals.
    real_kind: str | None = None

    def __init__(self, extractor: FeatureExtractor, layer: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extractor = extractor
        self.layer = layer
        self.real_cached: dict[str, torch.Tensor] | None = None
        self.real_payload: dict[str, torch.Tensor] | None = None

    def update(self, images: torch.Tensor, real: bool = False) -> None:
        """Add the features of a uint8 batch to the real or the fake states."""
        if images.dtype != torch.uint8:
            raise TypeError(f"metrics take uint8 images, got {images.dtype}")
        self.add(self.extractor(images)[self.layer].to(self.device), real)

    def add(self, features: torch.Tensor, real: bool) -> None:
        """Add a batch of features [N, D] to the states."""
        raise NotImplementedError

    def load_real(self, payload: dict[str, torch.Tensor]) -> None:
        """Real statistics read from the cache (used by ``compute`` instead of the states)."""
        self.real_cached = payload

    def reset(self) -> None:
        super().reset()
        self.real_cached = None
        self.real_payload = None


class RowsMetric(FeatureMetric):
    """Keeps the feature rows themselves (``dist_reduce_fx="cat"``): KID, IS, precision/recall.

    Args:
        extractor: feature extractor.
        layer: which of its outputs.
        dtype: storage dtype of the rows (float16 for precision/recall, as StyleGAN2-ADA).
        reals: whether the metric compares with reals (has real states).
        kwargs: torchmetrics' ``Metric`` options.
    """

    def __init__(self, extractor: FeatureExtractor, layer: str,
                 dtype: torch.dtype = torch.float32, reals: bool = True, **kwargs: Any) -> None:
        super().__init__(extractor, layer, **kwargs)
        self.rows_dtype = dtype
        self.real_kind = f"features-{str(dtype).removeprefix('torch.')}" if reals else None
        self.add_state("fake_features", [], dist_reduce_fx="cat")
        if reals:
            self.add_state("real_features", [], dist_reduce_fx="cat")

    def add(self, features: torch.Tensor, real: bool) -> None:
        rows = features.to(dtype=self.rows_dtype)
        (self.real_features if real else self.fake_features).append(rows)

    def fake_rows(self) -> torch.Tensor:
        """Every rank's fakes, in global index order (inside ``compute``: reduced)."""
        return dim_zero_cat(self.fake_features)

    def real_rows(self) -> torch.Tensor:
        """The reals: from the cache, or the reduced states (then kept in ``real_payload``)."""
        if self.real_cached is not None:
            return self.real_cached["features"]
        rows = dim_zero_cat(self.real_features).cpu()
        self.real_payload = {"features": rows}
        return rows


def _feed(metric: FeatureMetric, opts: MetricOptions, keys: Sequence[int], real: bool) -> None:
    """``update`` with this rank's contiguous share of ``keys`` (fake or real indices)."""
    total = len(keys)
    if total < max(opts.world_size, 2):
        raise ValueError(f"need at least {max(opts.world_size, 2)} samples, got {total}")
    mine = [keys[i] for i in shard(total, opts.rank, opts.world_size)]
    batches = real_uint8(opts, mine) if real else generate_uint8(opts, mine)
    for images in batches:
        metric.update(images, real=real)


def evaluate_feature_metric(metric: FeatureMetric, opts: MetricOptions, num_fake: int,
                            num_real: int | None = None) -> Any:
    """Feed ``metric`` this rank's share of fakes ``0..num_fake-1`` and of the reals (or their
    cached statistics), and compute it over every rank (every rank calls this).

    Real statistics are read from the disk cache when every rank sees the file, else fed
    through the metric and written to the cache by rank 0 once computed.

    Args:
        metric: the metric (moved to :func:`metric_device` here).
        opts: metric options.
        num_fake: number of fakes over all ranks.
        num_real: number of reals (a fixed random subset); None: all (x-flips included).
    """
    metric = metric.to(metric_device(opts))
    path, from_cache = None, False
    if metric.real_kind is not None:
        total = len(opts.dataset)
        count = total if num_real is None else min(num_real, total)
        path = real_cache_path(opts, metric.extractor, metric.layer, metric.real_kind, count)
        # Every rank must take the same branch: the states of both are reduced together.
        from_cache = every_rank(path is not None and path.is_file(), opts)
        if from_cache:
            assert path is not None
            metric.load_real(torch.load(path, map_location="cpu", weights_only=True))
        else:
            _feed(metric, opts, real_indices(total, count), real=True)
    _feed(metric, opts, list(range(num_fake)), real=False)
    value = metric.compute()
    payload = metric.real_payload
    if not from_cache and path is not None and payload is not None and opts.rank == 0:
        # torch.save straight into the file: no second in-memory copy of large features.
        atomic_write(path, lambda f: torch.save(payload, f))
    metric.reset()
    return value

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

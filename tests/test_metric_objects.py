"""The metrics as torchmetrics ``Metric`` objects keep the numbers of the hand-written reduction
they replaced (issue 29, item 2): FID, KID, IS, precision and recall, on Inception, NVIDIA's
VGG16 (a TorchScript stand-in) and the digits CNN, equal within 1e-6 relative on one process and
on 2 gloo ranks; mode coverage equal.

The oracle is the old implementation itself, kept here as a small reference: the per-rank
shares, float64 moments summed with ``all_reduce``, feature rows gathered with a padded
``all_gather`` in index order (``dgan.metrics.feature_stats`` before issue 29, commit 2a9774a),
then torch-fidelity's formulas as ``fid.py``/``kid.py``/``inception_score.py`` called them. The
protocol pieces the old and the new code share (latents, uint8 fakes, real indices, the
extractors) are called, not copied: they did not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dgan.metrics import (
    feature_stats,
    fid,
    inception_score,
    kid,
    mode_coverage,
    precision_recall,
)
from dgan.metrics.feature_extractors import INCEPTION, VGG16_NVIDIA, FeatureExtractor
from dgan.metrics.registry import MetricOptions

from . import test_image_metrics as image_metrics
from .test_image_metrics import (
    INCEPTION_FILE,
    NVIDIA_VGG16_FILE,
    LookupGenerator,
    TinyDataset,
    _digits_dataset,
    _free_port,
    _StandInNvidiaVGG16,
    make_opts,
    smooth_images,
    to_uint8,
)

# The fixtures of the image-metric tests: the trained digits classifier, random Inception
# weights in torch-fidelity's format, and the smaller extractor inputs (autouse).
digits_cache = image_metrics.digits_cache
inception_dir = image_metrics.inception_dir
small_extractor_inputs = image_metrics.small_extractor_inputs

REL = 1e-6
DIGITS_SAMPLES = 51  # odd: shares of 26 and 25 on 2 ranks
INCEPTION_SAMPLES = 7  # shares of 4 and 3


# --------------------------------------------------------------------------------------------
# The oracle: the old reduction (hand-written gather and moments), verbatim in what it computes
# --------------------------------------------------------------------------------------------


def _old_distributed(opts: MetricOptions) -> bool:
    return opts.world_size > 1


def _old_gather_rows(local: torch.Tensor, total: int, opts: MetricOptions) -> torch.Tensor:
    if not _old_distributed(opts):
        return local.cpu()
    sizes = [len(feature_stats.shard(total, r, opts.world_size)) for r in range(opts.world_size)]
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


class _OldMoments:
    def __init__(self) -> None:
        self.count = 0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def add(self, features: torch.Tensor) -> None:
        f = features.double()
        if self.sum is None:
            self.sum = torch.zeros(f.shape[1], dtype=torch.float64)
            self.outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64)
        self.count += len(f)
        self.sum += f.sum(dim=0)
        self.outer += f.T @ f

    def all_reduce(self, opts: MetricOptions) -> None:
        if not _old_distributed(opts):
            return
        for name in ("sum", "outer"):
            value = getattr(self, name)
            dist.all_reduce(value)
        count = torch.tensor([self.count], dtype=torch.float64)
        dist.all_reduce(count)
        self.count = int(count.item())

    def statistics(self) -> dict:
        mu = self.sum / self.count
        sigma = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return {"mu": mu.numpy(), "sigma": sigma.numpy()}


def _old_share(opts: MetricOptions, extractor: FeatureExtractor, layer: str,
               images_of: Callable[[Sequence[int]], Iterator[torch.Tensor]], keys: Sequence[int],
               moments: bool, dtype: torch.dtype = torch.float32) -> dict | torch.Tensor:
    total = len(keys)
    mine = [keys[i] for i in feature_stats.shard(total, opts.rank, opts.world_size)]
    if moments:
        acc = _OldMoments()
        for images in images_of(mine):
            acc.add(extractor(images)[layer])
        acc.all_reduce(opts)
        return acc.statistics()
    parts = [extractor(images)[layer].to("cpu", dtype) for images in images_of(mine)]
    return _gather_rows_checked(torch.cat(parts), total, opts)


def _gather_rows_checked(local: torch.Tensor, total: int, opts: MetricOptions) -> torch.Tensor:
    rows = _old_gather_rows(local, total, opts)
    assert len(rows) == total
    return rows


def _old_fakes(opts, extractor, layer, num, **kw):
    return _old_share(opts, extractor, layer,
                      lambda keys: feature_stats.generate_uint8(opts, keys), list(range(num)), **kw)


def _old_reals(opts, extractor, layer, count, **kw):
    keys = feature_stats.real_indices(len(opts.dataset), min(count, len(opts.dataset)))
    return _old_share(opts, extractor, layer,
                      lambda keys: feature_stats.real_uint8(opts, keys), keys, **kw)


def _old_fid(opts: MetricOptions, extractor: FeatureExtractor, layer: str) -> float:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    real = _old_reals(opts, extractor, layer, len(opts.dataset), moments=True)
    fake = _old_fakes(opts, extractor, layer, opts.num_samples, moments=True)
    return float(fid_statistics_to_metric(fake, real, False)[KEY_METRIC_FID])


def _old_kid(opts: MetricOptions, extractor: FeatureExtractor) -> float:
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    real = _old_reals(opts, extractor, "2048", 1_000_000, moments=False)
    fake = _old_fakes(opts, extractor, "2048", opts.num_samples, moments=False)
    out = kid_features_to_metric(fake.float(), real.float(), kid_subsets=100,
                                 kid_subset_size=min(1000, len(fake), len(real)),
                                 rng_seed=opts.seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN])


def _old_is(opts: MetricOptions, extractor: FeatureExtractor, splits: int) -> tuple:
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )

    logits = _old_fakes(opts, extractor, "logits_unbiased", opts.num_samples, moments=False)
    out = isc_features_to_metric(logits.float(), min(splits, len(logits)), False)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def _old_pr(opts: MetricOptions, extractor: FeatureExtractor, layer: str) -> tuple:
    num = opts.num_samples
    real = _old_reals(opts, extractor, layer, num, moments=False, dtype=torch.float16)
    fake = _old_fakes(opts, extractor, layer, num, moments=False, dtype=torch.float16)
    # The k-NN formula itself (torch-fidelity behind the argument-order probe) is unchanged.
    return precision_recall.precision_recall(fake, real, 3, 10_000, opts.device)


# --------------------------------------------------------------------------------------------
# One fixed set of fakes and reals per extractor, both ways
# --------------------------------------------------------------------------------------------


def _setups(cache_dir: Path, weights_dir: Path, tag: str, **kwargs) -> dict[str, MetricOptions]:
    """Digits and small pictures; ``tag`` names their fingerprints (real-statistics cache)."""
    ds, x = _digits_dataset(fingerprint=f"digits-objects-{tag}")
    digits = make_opts(LookupGenerator(x[:DIGITS_SAMPLES], noise=0.3), ds, cache_dir,
                       num_samples=DIGITS_SAMPLES, batch_size=8, **kwargs)
    images = smooth_images(INCEPTION_SAMPLES, seed=4)
    pictures = make_opts(LookupGenerator(images, noise=0.3),
                         TinyDataset(to_uint8(images), fingerprint=f"objects-{tag}"),
                         cache_dir, num_samples=INCEPTION_SAMPLES, weights_dir=weights_dir,
                         batch_size=2, extra={"is_splits": 2}, **kwargs)
    return {"digits": digits, "pictures": pictures}


def old_values(setups: dict[str, MetricOptions]) -> dict[str, float]:
    digits, pictures = setups["digits"], setups["pictures"]
    n, m = DIGITS_SAMPLES, INCEPTION_SAMPLES
    digits_cnn = feature_stats.digits_extractor(digits)
    inception = feature_stats.pretrained_extractor(pictures, INCEPTION)
    vgg = feature_stats.pretrained_extractor(pictures, VGG16_NVIDIA)
    out = {f"fid_digits{n}_full": _old_fid(digits, digits_cnn, "features")}
    p, r = _old_pr(digits, digits_cnn, "features")
    out |= {f"pr_digits{n}_k3_full_precision": p, f"pr_digits{n}_k3_full_recall": r}
    out[f"fid{m}_full"] = _old_fid(pictures, inception, "2048")
    out[f"kid{m}_full"] = _old_kid(pictures, inception)
    out[f"is{m}_mean"], out[f"is{m}_std"] = _old_is(pictures, inception, 2)
    p, r = _old_pr(pictures, vgg, "features")
    out |= {f"pr{m}_k3_full_precision": p, f"pr{m}_k3_full_recall": r}
    return out


def new_values(setups: dict[str, MetricOptions]) -> dict[str, float]:
    digits, pictures = setups["digits"], setups["pictures"]
    out = {}
    out |= fid.fid_digits_full(digits)
    out |= precision_recall.pr_digits_k3_full(digits)
    out |= fid.fid_full(pictures)
    out |= kid.kid_full(pictures)
    out |= inception_score.is_metric(pictures)
    out |= precision_recall.pr_k3_full(pictures)
    return out


class _ToyModes:
    """A 5x5 grid of modes (std 0.05), as the toy datasets describe theirs."""

    name = "grid"
    std = 0.05

    def __init__(self) -> None:
        axis = torch.arange(-2, 3, dtype=torch.float32) * 2
        self.modes = torch.cartesian_prod(axis, axis)
        self.inner_modes = self.modes.abs().amax(dim=1) < 4


class _ToyG(nn.Module):
    """Points near the grid's modes (a learned offset, so that it is a network)."""

    z_dim = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.offset = nn.Linear(2, 2)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (z * 1.2).round().clamp(-2, 2) * 2 + 0.02 * self.offset(z)


def _old_mode_coverage(opts: MetricOptions) -> dict[str, float]:
    """The old mode_coverage: every rank draws and maps all the points itself."""
    gen = torch.Generator().manual_seed(opts.seed)
    z = torch.randn(opts.num_samples, opts.G.z_dim, generator=gen)
    with torch.no_grad():
        points = opts.G(z, torch.zeros(len(z), 0)).float().cpu()
    ds = opts.dataset
    return mode_coverage.mode_statistics(points, ds.modes, ds.std, inner=ds.inner_modes)


def _toy_opts(**kwargs) -> MetricOptions:
    return MetricOptions(G=_ToyG(), dataset=_ToyModes(), num_samples=501, seed=2, **kwargs)


def test_mode_coverage_object_equals_the_old_code() -> None:
    opts = _toy_opts()
    old = _old_mode_coverage(opts)
    assert old["modes_covered"] > 0
    assert mode_coverage.mode_coverage(opts) == old


def _weights(tmp: Path, inception: Path) -> Path:
    """A weights_dir with the test Inception and a stand-in of NVIDIA's vgg16.pt."""
    weights = tmp / "weights"
    weights.mkdir()
    (weights / INCEPTION_FILE).symlink_to(inception / INCEPTION_FILE)
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_StandInNvidiaVGG16()), weights / NVIDIA_VGG16_FILE)
    return weights


def _compare(old: dict[str, float], new: dict[str, float]) -> None:
    assert set(new) == set(old)
    for key, value in old.items():
        assert new[key] == pytest.approx(value, rel=REL, abs=1e-12), key


def test_metric_objects_equal_the_old_reduction_on_one_process(
    digits_cache: Path, inception_dir: Path, tmp_path: Path
) -> None:
    weights = _weights(tmp_path, inception_dir)
    setups = _setups(digits_cache, weights, "single")  # the cache holds the trained classifier
    old = old_values(setups)
    assert len(old) == 9 and all(v == v for v in old.values())
    stats = digits_cache / "real_stats"
    before = set(stats.glob("*.pt")) if stats.is_dir() else set()
    _compare(old, new_values(setups))  # reals fed through the metrics, cache written
    assert len(set(stats.glob("*.pt")) - before) == 5  # FID x2, KID, PR x2 (IS has no reals)
    _compare(old, new_values(setups))  # reals from the cache


def _worker(rank: int, world: int, port: int, cache: str, weights: str, out: str) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    inc.FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE = 75  # as the fixture does in the parent
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        setups = _setups(Path(cache), Path(weights), "ddp", rank=rank, world_size=world)
        results = {"old": old_values(setups), "new": new_values(setups),
                   "cached": new_values(setups)}
        toy = _toy_opts(rank=rank, world_size=world)
        results["modes_old"] = _old_mode_coverage(toy)
        results["modes_new"] = mode_coverage.mode_coverage(toy)
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_metric_objects_equal_the_old_reduction_on_two_gloo_ranks(
    digits_cache: Path, inception_dir: Path, tmp_path: Path
) -> None:
    weights = _weights(tmp_path, inception_dir)
    mp.spawn(_worker, args=(2, _free_port(), str(digits_cache), str(weights), str(tmp_path)),
             nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0] == ranks[1]  # every rank gets the reduced value
    _compare(ranks[0]["old"], ranks[0]["new"])
    _compare(ranks[0]["old"], ranks[0]["cached"])
    assert ranks[0]["modes_new"] == ranks[0]["modes_old"] == _old_mode_coverage(_toy_opts())
    # And the same fakes on one process: batches differ, so the features move in the last bits.
    single = old_values(_setups(digits_cache, weights, "single"))
    for key, value in single.items():
        assert ranks[0]["new"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key

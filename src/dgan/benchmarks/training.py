"""The measurements of ``python -m dgan.bench`` (see its docstring for what each one means):
the training step of a preset with and without the diffusion, run by a real Trainer on the
module the run assembly builds, the diffusion's own cost, generation and feature throughput,
peak memory, and the table and JSON of the results."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from dgan.assembly.builder import build_module
from dgan.callbacks.step_clock import StepClock, synchronize
from dgan.config.instantiation import build
from dgan.config.paths import CONFIG_DIR
from dgan.diffusion.adaptive import adjust_p
from dgan.diffusion.feature_noise import FeatureDiffusion

# Bench names of the presets and the experiment overlay each one composes.
PRESETS = {"cifar": "cifar10_stylegan2", "digits": "digits_stylegan2",
           "projected": "cifar10_projectedgan"}
DEFAULT_PRESETS = ("cifar", "digits")
# Per-device batch on CPU: cifar at full width costs seconds per image on a small CPU.
CPU_BATCH = {"cifar": 4, "digits": 32, "projected": 4}
PRECISIONS = ("32-true", "bf16-mixed")
# The training set a benchmarked module is sized for (InsGen's queues): CIFAR-10's 50,000.
BENCH_DATASET_SIZE = 50_000
# Widths of --tiny: every code path of the full bench, in seconds.
TINY_STYLEGAN2_G = (
    "model.generator.z_dim=32",
    "model.generator.w_dim=32",
    "model.generator.channel_base=256",
    "model.generator.channel_max=16",
)
TINY_STYLEGAN2_D = (
    "++model.discriminator.cmap_dim=16",
    "model.discriminator.mapping_layers=2",
)
TINY_OVERRIDES = TINY_STYLEGAN2_G + TINY_STYLEGAN2_D
# Diffusion-ProjectedGAN: a narrow FastGAN, D on 64 px inputs with 16-channel mini Ds (the
# pretrained feature network itself is what it is).
TINY_FASTGAN_G = ("model.generator.z_dim=32", "model.generator.ngf=8")
TINY_PROJECTED_D = (
    "model.discriminator.resize=64",
    "model.discriminator.disc_resolution=64",
    "model.discriminator.ndf=16",
)
TINY_BATCH = 4
BYTES_PER_MIB = 1024**2
# ru_maxrss is in kibibytes on Linux and in bytes on macOS.
MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024
IMAGES_PER_KIMG = 1000


# ----------------------------------------------------------------------------- set-up


@dataclasses.dataclass
class Options:
    """What to measure and how (the command-line flags, see :func:`parse_args`)."""

    presets: tuple[str, ...] = DEFAULT_PRESETS
    batch: int | None = None
    precision: str = "32-true"
    device: str = "auto"
    steps: int = 2
    repeats: int = 4
    warmup: int = 1
    channels_last: bool = False
    compile: bool = False
    tf32: bool = False
    fused_modconv: bool = False
    overrides: tuple[str, ...] = ()
    features: bool = True
    inception_weights: str | None = None
    sync_debug: bool = False
    tiny: bool = False
    out: str | None = None
    data: bool = False


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        _fail(f"--device={name} is not valid; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        _fail("--device cuda but no CUDA device is available")
    return device


def _fail(message: str) -> NoReturn:
    """One ``error:`` line and exit status 2, as every dgan command's bad input."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def preset_overrides(opts: Options, device: torch.device, model: DictConfig | None = None
                     ) -> list[str]:
    """Hydra overrides shared by every module of the run (device, precision, options).

    Args:
        opts: the bench options.
        device: the device measured on.
        model: the preset's composed ``model`` node, which says which generator and
            discriminator the options and ``--tiny`` widths must fit (None: StyleGAN2's).
    """
    stylegan2_g = model is None or "fused_modconv" in model.generator
    projected_d = model is not None and "feature_weights" in model.discriminator
    out = [f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}",
           f"trainer.precision={opts.precision}",
           f"model.channels_last={str(opts.channels_last).lower()}",
           f"model.compile={str(opts.compile).lower()}",
           f"callbacks.backend.tf32={str(opts.tf32).lower()}"]
    if stylegan2_g:
        out.append(f"model.generator.fused_modconv={str(opts.fused_modconv).lower()}")
    if opts.tiny:
        out += list(TINY_STYLEGAN2_G if stylegan2_g else TINY_FASTGAN_G)
        out += list(TINY_PROJECTED_D if projected_d else TINY_STYLEGAN2_D)
    return out + list(opts.overrides)


def compose_config(preset: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """conf/train.yaml composed as ``python -m dgan.train experiment=...`` would."""
    experiment = PRESETS.get(preset, preset)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}",
                                           f"paths.output_dir={output_dir}", *overrides])


class RandomImages(Dataset):
    """``count`` random images in [-1, 1] of the model's shape, with empty labels."""

    def __init__(self, count: int, channels: int, resolution: int, c_dim: int) -> None:
        self.images = torch.rand(count, channels, resolution, resolution) * 2 - 1
        self.labels = torch.zeros(count, c_dim)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]


def peak_memory_mib(device: torch.device) -> float:
    """CUDA max allocated since the last reset on a GPU; the process's max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT_BYTES / BYTES_PER_MIB


# ----------------------------------------------------------------------------- training steps


def step_kinds(module: Any) -> dict[tuple[str, ...], tuple[int, float]]:
    """The sets of reg phases a step can run, each with a step counter that runs exactly that
    set and its share of the steps (over one period of the reg intervals).

    Read from the module's own phase table; a reg phase whose loss computes nothing (the G
    reg phase without path length) is left out, as it costs nothing.
    """
    lazy = [phase for phase in module.phases if phase.name.endswith("reg")
            and module.loss.regularises(phase.network)]
    period = math.lcm(*(phase.interval for phase in lazy)) if lazy else 1
    kinds: dict[tuple[str, ...], list[int]] = {}
    for k in range(period):
        kind = ("main",) + tuple(phase.name for phase in lazy if phase.due(k))
        kinds.setdefault(kind, []).append(k)
    return {kind: (ks[0], len(ks) / period) for kind, ks in kinds.items()}


def run_steps(cfg: DictConfig, module: Any, plan: list[int], device: torch.device,
              root: Path, sync_debug: bool = False) -> list[float]:
    """Train ``module`` for ``len(plan)`` steps with a real Trainer; returns each step's time."""
    clock = StepClock(plan, device)
    extra: list[L.Callback] = [clock]
    if cfg.get("callbacks") and cfg.callbacks.get("backend") is not None:
        extra.append(build(cfg.callbacks.backend, "callbacks.backend"))
    trainer = build(cfg.trainer, "trainer", callbacks=extra, logger=False, max_epochs=1,
                    enable_progress_bar=False, log_every_n_steps=10**9, default_root_dir=str(root))
    per_rank = int(cfg.model.batch_size)
    data = RandomImages(per_rank * len(plan), module.G.img_channels, module.G.img_resolution,
                        getattr(module.G, "c_dim", 0))
    loader = DataLoader(data, batch_size=per_rank, shuffle=False, drop_last=True,
                        pin_memory=device.type == "cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers etc. is not the point
        with _sync_debug(device, sync_debug):
            trainer.fit(module, train_dataloaders=loader)
    return clock.durations


@contextlib.contextmanager
def _sync_debug(device: torch.device, enabled: bool) -> Iterator[None]:
    """CUDA's sync debug mode: warns at every host-device synchronisation."""
    if not enabled or device.type != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode("warn")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def measure_training(preset: str, opts: Options, device: torch.device, root: Path
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Step time of ``preset`` with and without diffusion (interleaved repeats)."""
    base = preset_overrides(opts, device, compose_config(preset, [], root).model)
    batch = opts.batch or (TINY_BATCH if opts.tiny else None)
    if batch is None and device.type == "cpu":
        batch = CPU_BATCH.get(preset)
    if batch is not None:
        # A smaller batch than the preset's runs in one pass: the whole batch per round.
        base += [f"model.batch_size={batch}", "model.batch_gpu=null"]
    variants = {"diffusion": [], "none": ["diffusion=none"]}
    cfgs = {name: compose_config(preset, base + extra, root) for name, extra in variants.items()}
    results: dict[str, dict[str, Any]] = {}
    module, name = None, None
    for repeat in range(opts.repeats):
        order = list(cfgs) if repeat % 2 == 0 else list(reversed(cfgs))  # ABBA: drift
        for name in order:
            # Built afresh for each block, with the other variant freed first: on CPU the
            # variant built second ran up to 25 % slower when both lived side by side.
            module = None
            gc.collect()
            module = build_module(cfgs[name], BENCH_DATASET_SIZE).to(device)
            kinds = step_kinds(module)
            result = results.setdefault(name, {
                "kinds": {"+".join(k): {"share": share, "times": [], "samples": []}
                          for k, (_, share) in kinds.items()},
                "step_s": [], "peak_mem_mib": 0.0})
            main = kinds[("main",)][0] if ("main",) in kinds else next(iter(kinds.values()))[0]
            plan = [main] * (opts.warmup + opts.steps)
            lazy = [(kind, k) for kind, (k, _) in kinds.items() if kind != ("main",)]
            plan += [k for _, k in lazy]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = run_steps(cfgs[name], module, plan, device, root, opts.sync_debug)
            timed = times[opts.warmup:]
            per_kind = {("main",): timed[:opts.steps]}
            for (kind, _), t in zip(lazy, timed[opts.steps:], strict=True):
                per_kind[kind] = [t]
            step = 0.0
            for kind, (_, share) in kinds.items():
                mean = statistics.fmean(per_kind[kind])
                result["kinds"]["+".join(kind)]["times"].append(mean)
                result["kinds"]["+".join(kind)]["samples"].extend(per_kind[kind])
                step += share * mean
            result["step_s"].append(step)
            result["peak_mem_mib"] = max(result["peak_mem_mib"], peak_memory_mib(device))
    summary: dict[str, Any] = {"batch": int(cfgs["diffusion"].model.batch_size),
                               "precision": opts.precision}
    for name, result in results.items():
        # Medians of every timed step of a kind, pooled over repeats: identical steps vary by
        # +-20 % on a shared CPU, and a median of a few per-repeat means follows that noise.
        step = sum(v["share"] * statistics.median(v["samples"])
                   for v in result["kinds"].values())
        n = summary["batch"]
        summary[name] = {
            "step_s": step,
            "step_s_repeats": result["step_s"],
            "images_per_s": n / step,
            "sec_per_kimg": step * IMAGES_PER_KIMG / n,
            "phases_s": {kind: statistics.median(v["samples"]) for kind, v in
                         result["kinds"].items()},
            "phase_shares": {kind: v["share"] for kind, v in result["kinds"].items()},
            "peak_mem_mib": result["peak_mem_mib"],
        }
    ratios = [a / b for a, b in zip(results["diffusion"]["step_s"], results["none"]["step_s"],
                                    strict=True)]
    summary["overhead"] = summary["diffusion"]["step_s"] / summary["none"]["step_s"]
    summary["overhead_repeats"] = ratios
    if name != "diffusion":
        module = None
        gc.collect()
        module = build_module(cfgs["diffusion"], BENCH_DATASET_SIZE).to(device)
    return summary, {"module": module, "cfg": cfgs["diffusion"]}


# ----------------------------------------------------------------------------- pieces


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int,
              inner: int = 1) -> float:
    """Median seconds of ``inner`` calls of ``fn`` over ``repeats`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


# Batches of D inputs each phase diffuses (and augments): G main the fakes, D main the fakes
# and the reals, D reg the reals (a fused Dboth scores them once for both); path length none.
PHASE_INPUT_BATCHES = {"Gmain": 1, "Gboth": 1, "Dmain": 2, "Dboth": 2, "Greg": 0, "Dreg": 1}


def input_calls_per_step(module: Any) -> float:
    """Batches that go through the diffusion (and augmentation) per step, from the phase
    table (reg phases at their share of the steps)."""
    calls = 0.0
    for phase in module.phases:
        if phase.name.endswith("reg") and not module.loss.regularises(phase.network):
            continue
        calls += PHASE_INPUT_BATCHES[phase.name] / phase.interval
    return calls


def measure_augmentation(module: Any, step_s: float, opts: Options, device: torch.device
                         ) -> dict[str, Any]:
    """Cost of DiffAugment and of ADA (at p 1 and at its cap 0.25), forward and backward, per
    call, per step and as a share of the step without augmentation."""
    from dgan.augment import AdaptiveAugment, DiffAugment

    G = module.G
    x = torch.randn(int(module.batch_size), G.img_channels, G.img_resolution, G.img_resolution,
                    device=device, requires_grad=True)
    calls = input_calls_per_step(module)
    out: dict[str, Any] = {}
    for name, augment in (("diffaug", DiffAugment()), ("ada_p1", AdaptiveAugment(p=1.0)),
                          ("ada_p0.25", AdaptiveAugment(p=0.25))):
        augment = augment.to(device)

        def call(augment: torch.nn.Module = augment) -> None:
            augment(x).sum().backward()

        per_call = time_call(call, device, opts.warmup, opts.repeats, inner=3)
        out[name] = {"per_call_s": per_call, "calls_per_step": calls,
                     "per_step_s": calls * per_call, "share_of_step": calls * per_call / step_s}
    return out


def measure_diffusion(module: Any, step_s: float, opts: Options, device: torch.device
                      ) -> dict[str, Any]:
    """Cost of t sampling + q_sample (forward and backward) per call, per step and its share.

    A feature diffusion (Diffusion-ProjectedGAN) is timed on D's four feature maps of a batch,
    where it acts, instead of on images.
    """
    diffusion = module.diffusion
    n = int(module.batch_size)
    G = module.G
    x = torch.randn(n, G.img_channels, G.img_resolution, G.img_resolution, device=device,
                    requires_grad=True)
    features = _feature_maps(module.D, x) if isinstance(diffusion, FeatureDiffusion) else None

    def call() -> None:
        if features is not None:
            sum(y.sum() for y in diffusion(features)).backward()
            return
        y, _ = diffusion(x)
        y.sum().backward()

    per_call = time_call(call, device, opts.warmup, opts.repeats, inner=10)
    calls = input_calls_per_step(module)
    adaptive = module.adaptive
    interval = adaptive.interval if adaptive is not None else 1
    target = adaptive.d_target if adaptive is not None else 0.0
    adapt = time_call(lambda: adjust_p(diffusion, torch.ones((), device=device), target, 0, 1.0),
                      device, opts.warmup, opts.repeats, inner=10)
    per_step = calls * per_call + adapt / interval
    return {"per_call_s": per_call, "calls_per_step": calls, "adapt_s": adapt,
            "per_step_s": per_step, "share_of_step": per_step / step_s}


@torch.no_grad()
def _feature_maps(D: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """The maps a ProjectedDiscriminator's feature noise sees for images ``x`` (leaf tensors
    that require grad, as G's graph would make them)."""
    from dgan.networks.projected.discriminator import RGB_CHANNELS

    if x.shape[1] != RGB_CHANNELS:  # grey images, repeated as the discriminator does
        x = x.repeat(1, RGB_CHANNELS, 1, 1)
    maps = D.feature_network(x)
    if D.diffusion_position == "last":
        maps = D.projections(maps)
    return [m.detach().requires_grad_(True) for m in maps]


def measure_generation(module: Any, opts: Options, device: torch.device) -> dict[str, Any]:
    """G_ema images/s (no grad, the trainer's precision as autocast)."""
    n = int(module.batch_size)
    z = torch.randn(n, module.G.z_dim, device=device)
    bf16 = opts.precision.startswith("bf16")

    def call() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            module.generate(z)

    seconds = time_call(call, device, opts.warmup, opts.repeats)
    return {"batch": n, "images_per_s": n / seconds}


def measure_features(batch: int, opts: Options, device: torch.device) -> dict[str, Any]:
    """Metric images/s: a batch through the FID metric object's ``update`` (feature extraction
    and the float64 moments, what an evaluation spends per image), on the digits CNN, and on
    Inception-v3 if its weights are here."""
    from dgan.metrics.digits_features import (
        DIGITS_EXTRACTOR,
        DIGITS_RESOLUTION,
        DigitsClassifier,
        DigitsFeatureNet,
    )
    from dgan.metrics.feature_extractors import (
        INCEPTION,
        FeatureExtractor,
        WeightsUnavailableError,
        build_feature_extractor,
        resolve_weights_path,
    )
    from dgan.metrics.fid import FrechetDistance

    out: dict[str, Any] = {}
    # Speed does not depend on the weights: a fresh network avoids training the classifier.
    net = DigitsFeatureNet(DigitsClassifier()).to(device).eval()
    digits = FeatureExtractor(name=DIGITS_EXTRACTOR, key="bench", module=net,
                              layers=("features",), rgb=False)
    metric = FrechetDistance(digits, "features").to(device)
    images = torch.randint(0, 256, (batch, 1, DIGITS_RESOLUTION, DIGITS_RESOLUTION),
                           dtype=torch.uint8, device=device)
    with torch.no_grad():
        seconds = time_call(lambda: metric.update(images), device, opts.warmup, opts.repeats)
    out["digits"] = {"batch": batch, "images_per_s": batch / seconds}
    try:
        path = resolve_weights_path(INCEPTION, opts.inception_weights, allow_download=False)
    except WeightsUnavailableError:
        out["inception"] = {"skipped": "Inception-v3 weights not found offline; pass "
                                       "--inception-weights DIR (python -m "
                                       "dgan.metrics.fetch_weights DIR)"}
        return out
    extractor = build_feature_extractor(INCEPTION, device, weights_paths={INCEPTION: path})
    metric = FrechetDistance(extractor).to(device)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    seconds = time_call(lambda: metric.update(images), device, opts.warmup, opts.repeats)
    out["inception"] = {"batch": batch, "images_per_s": batch / seconds}
    return out


# ----------------------------------------------------------------------------- report


def environment(device: torch.device, opts: Options) -> dict[str, Any]:
    """Where the numbers come from."""
    env = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "platform": platform.platform(),
           "options": dataclasses.asdict(opts)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def format_table(results: dict[str, Any]) -> str:
    """The printed summary."""
    lines = [f"dgan bench on {results['environment']['device']}"
             f" ({results['environment'].get('gpu', results['environment'].get('cpu', ''))},"
             f" torch {results['environment']['torch']}, "
             f"{results['environment']['threads']} threads)"]
    head = (f"{'preset':<8} {'diffusion':<9} {'batch':>5} {'step s':>8} {'img/s':>8} "
            f"{'sec/kimg':>9} {'peak MiB':>9}")
    lines += ["", "training step (lazy R1/PL amortised)", head, "-" * len(head)]
    for preset, r in results["training"].items():
        for name in ("diffusion", "none"):
            v = r[name]
            lines.append(f"{preset:<8} {name:<9} {r['batch']:>5} {v['step_s']:>8.3f} "
                         f"{v['images_per_s']:>8.2f} {v['sec_per_kimg']:>9.1f} "
                         f"{v['peak_mem_mib']:>9.0f}")
        d = results["diffusion"][preset]
        lines.append(f"{preset:<8} overhead x{r['overhead']:.3f} (with / without diffusion); "
                     f"diffusion itself {d['per_step_s'] * 1e3:.2f} ms/step = "
                     f"{d['share_of_step'] * 100:.2f}% of the step")
        for name, a in results.get("augmentation", {}).get(preset, {}).items():
            lines.append(f"{preset:<8} augment {name:<9} {a['per_step_s'] * 1e3:8.2f} ms/step "
                         f"= {a['share_of_step'] * 100:.2f}% of the step")
    lines += ["", "generation (G_ema) and metric features, images/s"]
    for preset, g in results["generation"].items():
        lines.append(f"  G_ema {preset:<8} batch {g['batch']:>4}: {g['images_per_s']:.1f}")
    for name, f in results.get("features", {}).items():
        if "skipped" in f:
            lines.append(f"  features {name}: skipped ({f['skipped']})")
        else:
            lines.append(f"  features {name:<9} batch {f['batch']:>4}: {f['images_per_s']:.1f}")
    lines += ["", *results["notes"]]
    return "\n".join(lines)


def default_out(device: torch.device) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("bench_results") / f"bench-{device.type}-{stamp}.json"


def run_data(opts: Options) -> dict[str, Any]:
    """``--data``: one loader worker's images/s (:mod:`dgan.data.loader_throughput`), as JSON."""
    from dgan.data import loader_throughput as bench_data

    results = bench_data.measure(repeats=1 if opts.tiny else 3, scale=0.05 if opts.tiny else 1.0)
    out = Path(opts.out) if opts.out else default_out(torch.device("cpu")).with_name(
        f"bench-data-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(bench_data.format_table(results))
    print(f"\nwrote {out}")
    return results


def run(opts: Options) -> dict[str, Any]:
    """Run every measurement of ``opts``; returns the results (also written as JSON)."""
    if opts.data:
        return run_data(opts)
    if opts.precision not in PRECISIONS:
        raise SystemExit(f"error: --precision {opts.precision!r} is not one of {PRECISIONS}")
    for name, value in (("steps", opts.steps), ("repeats", opts.repeats)):
        if value < 1:
            raise SystemExit(f"error: --{name} {value} must be >= 1")
    device = resolve_device(opts.device)
    results: dict[str, Any] = {"environment": environment(device, opts), "training": {},
                               "diffusion": {}, "augmentation": {}, "generation": {},
                               "notes": []}
    notes = results["notes"]
    if device.type == "cpu" and opts.batch is None and not opts.tiny:
        notes.append("CPU: small per-step batches (" + ", ".join(
            f"{p} {CPU_BATCH[p]}" for p in opts.presets if p in CPU_BATCH)
            + "); full presets use 32-64. Pass --batch N to change.")
    if opts.tiny:
        notes.append("--tiny: reduced widths, for testing the bench only; not a benchmark.")
    notes.append("Data are random in-memory images and logging is off: the step is the model's.")
    with tempfile.TemporaryDirectory(prefix="dgan-bench-") as tmp:
        for preset in opts.presets:
            summary, built = measure_training(preset, opts, device, Path(tmp))
            results["training"][preset] = summary
            module = built["module"]
            results["diffusion"][preset] = measure_diffusion(
                module, summary["diffusion"]["step_s"], opts, device)
            if hasattr(module.G, "img_resolution"):  # images, not 2-D points
                results["augmentation"][preset] = measure_augmentation(
                    module, summary["none"]["step_s"], opts, device)
            results["generation"][preset] = measure_generation(module, opts, device)
    if opts.features:
        batch = opts.batch or (TINY_BATCH if opts.tiny else 32)
        results["features"] = measure_features(batch, opts, device)
    out = Path(opts.out) if opts.out else default_out(device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(format_table(results))
    print(f"\nwrote {out}")
    return results

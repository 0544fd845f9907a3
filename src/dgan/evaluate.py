"""Metrics of a trained generator or of a folder of images.

    python -m dgan.evaluate ckpt=RUN/checkpoints/best.ckpt metrics=[fid50k_full,pr50k_k3_full]
    python -m dgan.evaluate images=DIR dataset=images dataset.path=DATA.zip metrics=[fid10k_full]

With ``ckpt`` the fakes come from its G_ema and the reals from the run's dataset, rebuilt from
the config stored in the checkpoint (``dataset.KEY=VALUE`` changes a key of it, e.g.
``dataset.path=`` when the data moved). With ``images`` the fakes are the images of a folder or
zip (image ``i`` is sample ``i``) and ``dataset=NAME`` (an entry of ``conf/dataset``) names the
reals. Either way the metrics go through :func:`dgan.metrics.registry.compute_metric`, the code
the training callback uses, with the run's own settings of everything that decides the fakes
and the reals (:data:`RUN_METRIC_SETTINGS`), so a checkpoint gives the value of the run's
``metrics.jsonl`` to the last digit. Results are printed as a table and written as JSON.

Everything that can be checked is checked before any feature is extracted: metric names,
extractor weights (the expected file name and the fetch command), the checkpoint and the data.
Runs in one process on one device.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import OmegaConf
from torch import nn

from dgan.config.cli_args import parse_key_values, run_command, usage
from dgan.config.instantiation import build
from dgan.config.rules import MAX_SEED, OPTIONAL_TEXT, SIZE, TRUNCATION, Int, Rule
from dgan.core.errors import ConfigError
from dgan.core.messages import listed
from dgan.files.atomic import atomic_path, atomic_write_bytes
from dgan.inference.loading import load_generator_from, resolve_device
from dgan.metrics.class_accuracy import check_class_accuracy
from dgan.metrics.domain import MetricDomainError, check_metric_domain
from dgan.metrics.feature_extractors import WeightsUnavailableError
from dgan.metrics.image_set import ImageSetGenerator
from dgan.metrics.registry import (
    MetricOptions,
    check_weights_available,
    compute_metric,
    lookup_metric,
    metric_name_forms,
)

IMAGE_SET_TARGET = "dgan.data.images.ImageDataset"
RESULT_PREFIX = "metrics-"
DEFAULT_BATCH_SIZE = 64
DEFAULT_SEED = 0
# The run's metrics keys that decide which fakes a metric sees, taken from the checkpoint unless
# given: the latents come from ``(seed, i)`` and the generator's noise inputs are drawn once per
# batch (dgan.metrics.feature_stats.generate_uint8), so another batch size gives other fakes.
RUN_METRIC_SETTINGS = {"seed": DEFAULT_SEED, "batch_size": DEFAULT_BATCH_SIZE}


@dataclasses.dataclass
class EvaluateOptions:
    """Arguments of ``python -m dgan.evaluate``.

    Args:
        ckpt: checkpoint written by dgan.train; its G_ema makes the fakes, its config the reals.
            A run directory or a folder of snapshots (kimgNNNNNN.ckpt, kept with
            callbacks.checkpoint.keep_snapshots=true) scores every snapshot: the metrics
            against kimg, in metrics-snapshots.jsonl and .png.
        pkl: a network pickle instead (converted on the fly), or a published network's name.
        images: folder or zip of generated images to evaluate instead of a checkpoint.
        metrics: metric names, e.g. [fid50k_full,pr50k_k3_full]; null: the run's own metrics.
        dataset: conf/dataset entry of the reals (digits, images, ...); null: the checkpoint's
            (without its max_size subset when the run's metrics.reference is full).
        outdir: directory of the JSON result; null: next to the checkpoint (images: cwd).
        batch_size: images per generation / extraction batch; null: the run's
            metrics.batch_size (the noise inputs are drawn per batch, so this is what
            reproduces its metrics.jsonl), else 64.
        seed: seed of the latents; null: the run's metrics.seed (as in its metrics.jsonl).
        trunc: truncation psi of the generator (1: none).
        device: cpu, cuda or cuda:N; null: CUDA when available, else CPU.
        cache_dir: cache of real statistics; null: the run's, $DGAN_CACHE_DIR or ~/.cache/dgan.
        weights_dir: pre-downloaded Inception/VGG16 weights; null: the run's or $DGAN_WEIGHTS_DIR.
        num_workers: data-loading workers for the real images.
    """

    # What each value may be, beyond its type (checked as the arguments are read).
    RULES: ClassVar[dict[str, Rule]] = {
        "trunc": TRUNCATION,
        "batch_size": SIZE,
        "seed": Int(0, MAX_SEED, null=True),
        "num_workers": Int(0, 256),
        "outdir": OPTIONAL_TEXT,
    }

    ckpt: str | None = None
    pkl: str | None = None
    images: str | None = None
    metrics: list[str] | None = None
    dataset: str | None = None
    outdir: str | None = None
    batch_size: int | None = None
    seed: int | None = None
    trunc: float = 1.0
    device: str | None = None
    cache_dir: str | None = None
    weights_dir: str | None = None
    num_workers: int = 0


@dataclasses.dataclass
class Evaluation:
    """What :func:`run` computed and wrote.

    Args:
        results: result name -> value (``fid50k_full``, ``pr50k_k3_full_precision``, ...).
        path: the JSON file.
        record: everything written to it.
    """

    results: dict[str, float]
    path: Path
    record: dict[str, Any]


# The metrics that fit a dataset, by the class that builds it: the digits and the toys need no
# download; Inception's FID needs its weights (offline: python -m dgan.metrics.fetch_weights).
SUGGESTED_METRICS = {
    "dgan.data.digits.DigitsDataset": "metrics=[fid_digits2k_full,pr_digits2k_k3_full]",
    "dgan.data.toy.ToyDataset": "metrics=[mode_coverage2500]",
}
IMAGE_METRICS_HINT = ("metrics=[fid50k_full] (Inception weights: on a machine with internet "
                      "`python -m dgan.metrics.fetch_weights DIR`, then weights_dir=DIR)")


def suggested_metrics(dataset: dict[str, Any] | None) -> str:
    """The ``metrics=[...]`` argument that fits the dataset ``dataset`` (a dataset config).

    Args:
        dataset: the run's dataset config (None: unknown, an image dataset is assumed).
    """
    target = str((dataset or {}).get("_target_", ""))
    return SUGGESTED_METRICS.get(target, IMAGE_METRICS_HINT)


def check_metric_names(names: Sequence[str], suggestion: str = IMAGE_METRICS_HINT
                       ) -> dict[str, int | None]:
    """Sample count of each metric name (None: the metric's default); unknown names fail.

    Args:
        names: metric names.
        suggestion: the ``metrics=[...]`` to suggest when ``names`` is empty.
    """
    if not names:
        raise ConfigError(f"metrics is empty; name at least one, e.g. {suggestion}")
    counts = {}
    for name in names:
        try:
            counts[name] = lookup_metric(name)[1]
        except ValueError:
            raise ConfigError(listed(f"metrics: unknown metric {name!r}", "valid",
                                     metric_name_forms())
                              + " (<N>: a sample count such as 2000, <N>k: thousands such as 50k)"
                              ) from None
        if counts[name] == 0:
            # A metric of no samples would be written as a number (mode_kl: Infinity).
            example = re.sub(r"(?<!\d)0(k?)(?!\d)",
                             lambda m: "50k" if m.group(1) else "2000", name, count=1)
            raise ConfigError(f"metrics: {name} selects 0 samples; give a count, e.g. {example}")
    return counts


def dataset_preset(name: str) -> dict[str, Any]:
    """The config of ``conf/dataset/<name>.yaml`` as a plain dict.

    Args:
        name: entry of the dataset group (digits, images, gaussians25 ...).
    """
    from dgan.config.paths import CONFIG_DIR  # imported here: only this branch needs the config dir

    group = Path(CONFIG_DIR) / "dataset"
    path = group / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in group.glob("*.yaml")))
        raise ConfigError(f"dataset={name!r} is not a dataset config; choose one of {names}")
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(node, dict)
    return node


def dataset_config(
    opts: EvaluateOptions, run_config: dict[str, Any] | None, changes: dict[str, Any]
) -> dict[str, Any]:
    """The reals' dataset config: the preset or the run's, with ``dataset.KEY`` changes."""
    if opts.dataset is not None:
        node = dataset_preset(opts.dataset)
    elif run_config is not None and isinstance(run_config.get("dataset"), dict):
        node = dict(run_config["dataset"])
        if _run_setting(run_config, "metrics", "reference") == "full" and "max_size" in node:
            node["max_size"] = None  # the run's metrics compared with the whole dataset
    else:
        raise ConfigError(
            "dataset is required with images= (and a pickle without training_set_kwargs): the "
            "real images to compare with, e.g. dataset=digits, or dataset=images "
            "dataset.path=DATA.zip"
        )
    node.update(changes)  # unknown keys fail when the dataset is built, named
    return node


def _run_setting(config: dict[str, Any] | None, *path: str) -> Any:
    node: Any = config or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _fakes_from_images(path: str, reals: Any) -> ImageSetGenerator:
    images = build({"_target_": IMAGE_SET_TARGET, "path": path}, "images")
    if not hasattr(reals, "get_uint8"):
        raise ConfigError(
            f"images={path}: the dataset {getattr(reals, 'name', '?')!r} is not made of images; "
            "choose an image dataset (dataset=digits or dataset=images dataset.path=...)"
        )
    for attr in ("resolution", "num_channels"):
        want, have = getattr(reals, attr, None), getattr(images, attr)
        if want is not None and int(want) != int(have):
            raise ConfigError(
                f"images={path}: {attr} {have} does not match the real images' {want}"
            )
    return ImageSetGenerator(images, path)


def _check_counts(counts: dict[str, int | None], fakes: nn.Module, source: str) -> None:
    available = len(fakes) if isinstance(fakes, ImageSetGenerator) else None
    for name, num in counts.items():
        if available is not None and num is not None and num > available:
            raise ConfigError(
                f"metrics: {name} needs {num} images but images={source} holds {available}; "
                "use a smaller count in the metric name"
            )


def format_table(results: dict[str, float]) -> str:
    """Results as an aligned two-column text table."""
    width = max([len("metric"), *(len(k) for k in results)])
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in results.items()]
    return "\n".join(lines)


SNAPSHOTS_STEM = "snapshots"
SNAPSHOT_PANEL_INCHES = (4.0, 3.0)  # metrics-snapshots.jsonl / .png: the metrics against kimg


def snapshot_files(folder: Path) -> list[Path]:
    """The snapshots of a run directory (its ``checkpoints/``) or of a folder, by kimg.

    Args:
        folder: a run directory or a folder of ``kimg*.ckpt`` files.
    """
    from dgan.callbacks.checkpoint import snapshot_kimg

    if (folder / "checkpoints").is_dir():
        folder = folder / "checkpoints"
    found = [(kimg, path) for path in folder.glob("*.ckpt")
             if (kimg := snapshot_kimg(path)) is not None]
    if not found:
        raise ConfigError(
            f"ckpt={folder}: no snapshots (kimgNNNNNN.ckpt) in it; train with "
            "callbacks.checkpoint.keep_snapshots=true, or give one checkpoint file "
            f"(ckpt={folder / 'last.ckpt'})")
    return [path for _, path in sorted(found)]


def plot_against_kimg(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One panel per result: its value at each snapshot's kimg."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters and CI
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if k not in ("kimg", "ckpt")]
    fig, axes = plt.subplots(1, len(keys), squeeze=False,
                             figsize=(SNAPSHOT_PANEL_INCHES[0] * len(keys),
                                      SNAPSHOT_PANEL_INCHES[1]))
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot([row["kimg"] for row in rows], [row[key] for row in rows], marker="o")
        ax.set_xlabel("kimg")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def run_snapshots(opts: EvaluateOptions, dataset_changes: dict[str, Any] | None = None
                  ) -> Evaluation:
    """Score every snapshot of a run directory or folder (``opts.ckpt``), as StyleGAN2-ADA's
    calc_metrics.py does over its network snapshots, and write the metrics against kimg.

    Each snapshot goes through :func:`run` (its table and ``metrics-kimgNNNNNN.json``); the real
    statistics are cached after the first. ``metrics-snapshots.jsonl`` gets one row per
    snapshot (kimg, file, results), ``metrics-snapshots.png`` one panel per result.

    Args:
        opts: the parsed arguments; ``ckpt`` is the directory.
        dataset_changes: ``dataset.KEY=VALUE`` arguments, applied to the reals' config.
    """
    snapshots = snapshot_files(Path(str(opts.ckpt)))
    outdir = Path(opts.outdir) if opts.outdir is not None else snapshots[0].parent
    rows = []
    for path in snapshots:
        print(f"[dgan] snapshot {path.name}", flush=True)
        done = run(dataclasses.replace(opts, ckpt=str(path)), dataset_changes)
        rows.append({"kimg": done.record["source"]["kimg"], "ckpt": str(path), **done.results})
    jsonl = outdir / f"{RESULT_PREFIX}{SNAPSHOTS_STEM}.jsonl"
    atomic_write_bytes(jsonl, "".join(json.dumps(row) + "\n" for row in rows).encode())
    plot_against_kimg(rows, jsonl.with_suffix(".png"))
    print(format_table_against_kimg(rows), flush=True)
    print(f"[dgan] metrics against kimg: {jsonl} (plot: {jsonl.with_suffix('.png').name})",
          flush=True)
    return Evaluation(results=done.results, path=jsonl, record={"snapshots": rows})


def format_table_against_kimg(rows: Sequence[dict[str, Any]]) -> str:
    """The snapshots' results as an aligned table, one line per snapshot."""
    keys = [k for k in rows[0] if k not in ("kimg", "ckpt")]
    widths = [max(len(k), 10) for k in keys]
    lines = ["kimg      " + "  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    lines += [f"{row['kimg']:<10.3f}" + "  ".join(f"{row[k]:>{w}.6g}" for k, w in
                                                   zip(keys, widths, strict=True))
              for row in rows]
    return "\n".join(lines)


def run(opts: EvaluateOptions, dataset_changes: dict[str, Any] | None = None) -> Evaluation:
    """Check everything, compute the metrics, print the table and write the JSON file.

    Args:
        opts: the parsed arguments.
        dataset_changes: ``dataset.KEY=VALUE`` arguments, applied to the reals' config.
    """
    if sum(x is not None for x in (opts.ckpt, opts.pkl, opts.images)) != 1:
        raise ConfigError("give exactly one of ckpt=PATH (a dgan checkpoint), pkl=PATH (a "
                          "network pickle) or images=DIR")
    if opts.ckpt is not None and Path(opts.ckpt).is_dir():
        return run_snapshots(opts, dataset_changes)
    if opts.batch_size is not None and opts.batch_size < 1:
        raise ConfigError(f"batch_size={opts.batch_size} must be >= 1")
    if opts.outdir is not None:
        from dgan.files.writable import check_creatable_dir

        check_creatable_dir(opts.outdir, "outdir")  # before the metrics take their time
    device = resolve_device(opts.device)

    loaded = None
    run_config: dict[str, Any] | None = None
    if opts.ckpt is not None or opts.pkl is not None:
        loaded = load_generator_from(opts.ckpt, opts.pkl, device)
        run_config = loaded.config
    elif opts.images is not None and not Path(opts.images).exists():
        raise ConfigError(f"images={opts.images}: no such folder or zip of images")

    names = opts.metrics if opts.metrics is not None else _run_setting(
        run_config, "metrics", "metrics")
    suggestion = suggested_metrics(
        dataset_preset(opts.dataset) if opts.dataset is not None
        else _run_setting(run_config, "dataset"))
    if names is None:
        raise ConfigError(f"metrics is required with images=, e.g. {suggestion}")
    counts = check_metric_names(list(names), suggestion)
    weights_dir = _first(opts.weights_dir, _run_setting(run_config, "metrics", "weights_dir"),
                         os.environ.get("DGAN_WEIGHTS_DIR"))
    try:
        check_weights_available(counts, weights_dir)
    except WeightsUnavailableError as err:
        raise ConfigError(" ".join(str(err).split("\n"))) from None

    reals = build(dataset_config(opts, run_config, dict(dataset_changes or {})), "dataset")
    try:
        check_metric_domain(counts, reals)
    except MetricDomainError as err:
        raise ConfigError(str(err)) from None
    if loaded is not None:
        G: nn.Module = loaded.G
        source: dict[str, Any] = {"ckpt": str(loaded.path), "kimg": loaded.kimg}
        if opts.trunc != 1 and not hasattr(G, "mapping"):
            raise ConfigError(f"trunc={opts.trunc}: truncation needs a StyleGAN2 generator")
    else:
        assert opts.images is not None
        G = _fakes_from_images(opts.images, reals)
        source = {"images": str(opts.images), "num_images": len(G)}
    _check_counts(counts, G, str(opts.images))
    for name in counts:
        if name.startswith(("ppl_", "ppl2_")) and not hasattr(G, "mapping"):
            kind = "a folder of images" if opts.images is not None else type(G).__name__
            raise ConfigError(f"metrics: {name} needs a StyleGAN2 generator (mapping and "
                              f"synthesis networks); {kind} has no mapping network")
    try:
        check_class_accuracy(counts, G, reals)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    cache_dir = _first(opts.cache_dir, _run_setting(run_config, "metrics", "cache_dir"),
                       _run_setting(run_config, "paths", "cache_dir"),
                       os.environ.get("DGAN_CACHE_DIR"))
    seed, batch_size = (
        int(_first(getattr(opts, key), _run_setting(run_config, "metrics", key), default))
        for key, default in RUN_METRIC_SETTINGS.items()
    )
    metric_opts = MetricOptions(
        G=G, dataset=reals, device=device, batch_size=batch_size,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        weights_dir=Path(weights_dir) if weights_dir is not None else None,
        seed=seed, truncation_psi=float(opts.trunc), extra={"num_workers": opts.num_workers},
    )
    results: dict[str, float] = {}
    seconds: dict[str, float] = {}
    with torch.no_grad():
        for name in counts:
            start = time.perf_counter()
            results.update({k: float(v) for k, v in compute_metric(name, metric_opts).items()})
            seconds[name] = round(time.perf_counter() - start, 3)

    record = {
        "results": results,
        "metrics": list(counts),
        "source": source,
        "dataset": {"name": getattr(reals, "name", None),
                    "fingerprint": getattr(reals, "fingerprint", None), "size": len(reals)},
        "options": {"seed": seed, "trunc": float(opts.trunc), "batch_size": batch_size,
                    "device": str(device)},
        "seconds": seconds,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if loaded is not None:
        outdir = Path(opts.outdir) if opts.outdir is not None else loaded.path.parent
        stem = loaded.path.stem
    else:
        outdir = Path(opts.outdir) if opts.outdir is not None else Path.cwd()
        stem = Path(str(opts.images)).stem
    path = outdir / f"{RESULT_PREFIX}{stem}.json"
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    print(format_table(results), flush=True)
    print(f"[dgan] results: {path}", flush=True)
    return Evaluation(results=results, path=path, record=record)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(usage("dgan.evaluate", EvaluateOptions))
        print("  dataset.KEY=VALUE\n      change one key of the reals' dataset config")
        print(f"\nmetrics: {', '.join(metric_name_forms())}")
        return 0

    def action() -> None:
        opts, extra = parse_key_values(argv, EvaluateOptions, passthrough=("dataset",))
        run(opts, extra["dataset"])

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of training, generation and metric features: ``python -m dgan.bench [options]``.

Measures on whatever device is present, with warm-up and repeats, prints a table and writes a
JSON file (default ``bench_results/bench-<device>-<time>.json``):

- training throughput (images/s, sec/kimg) of the full training step of each preset, with the
  diffusion and with ``diffusion=none``, and their ratio (the diffusion overhead);
- the cost of the diffusion itself (t sampling + q_sample, forward and backward) per step;
- G_ema generation throughput and metric throughput (the FID metric object's `update`:
  feature extraction and moments);
- peak memory (CUDA max allocated on a GPU, the process's max RSS on CPU).

The networks and the module are built from the real configs (Hydra's compose API on conf/) and
trained by a real Lightning ``Trainer`` running ``DiffusionGAN.training_step``, so precision,
manual backward, optimizers and the adaptive-diffusion callback are all the ones of training.
Only the data is synthetic (random images in memory) and logging is off.

Lazy regularisation is amortised exactly: before each timed step the module's step counter is
set so that the step runs a chosen set of phases (main only, + R1, + path length, ...). Each set
is timed and weighted by how often it occurs in one period of the lazy intervals, which gives
the average step without timing a whole period of a slow preset.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from dgan.benchmarks.training import (
    DEFAULT_PRESETS,
    PRECISIONS,
    PRESETS,
    Options,
    run,
)
from dgan.config.paths import CONFIG_DIR


def _count(low: int) -> Any:
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text}")
        return value
    return parse


def _check_presets(presets: tuple[str, ...]) -> str | None:
    """What is wrong with ``--presets`` (None: every name is a preset or an experiment)."""
    from dgan.core.messages import closest_text, listed

    experiments = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
    if not presets:
        return "--presets is empty; give e.g. --presets cifar,digits"
    for name in presets:
        if name not in PRESETS and name not in experiments:
            return listed(f"--presets: {name!r} is neither a preset ({', '.join(PRESETS)}) "
                          f"nor an experiment{closest_text(name, experiments)}", "experiments",
                          experiments)
    return None


# Options whose value is itself KEY=VALUE (--override seed=1, the form --help shows).
VALUED_OPTIONS = ("--override",)


def parse_args(argv: list[str] | None = None) -> Options:
    from dgan.config.cli_args import OneLineParser
    from dgan.core.errors import ConfigError
    from dgan.files.writable import check_creatable_dir

    p = OneLineParser(prog="python -m dgan.bench", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default=",".join(DEFAULT_PRESETS),
                   help="comma-separated presets: cifar, digits, projected "
                        "(cifar10_projectedgan), or any experiment name")
    p.add_argument("--batch", type=_count(1), default=None,
                   help="batch per step (default: the preset's on GPU; cifar 4, digits 32, "
                        "projected 4 on CPU)")
    p.add_argument("--precision", default="32-true", choices=PRECISIONS,
                   help="trainer.precision of the step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--steps", type=_count(1), default=2, help="timed main steps per repeat")
    p.add_argument("--repeats", type=_count(1), default=4,
                   help="repeats, alternating with/without diffusion (medians are reported)")
    p.add_argument("--warmup", type=_count(0), default=1,
                   help="untimed steps/calls before timing")
    p.add_argument("--channels-last", action="store_true", help="model.channels_last=true")
    p.add_argument("--compile", action="store_true", help="model.compile=true (torch.compile)")
    p.add_argument("--tf32", action="store_true", help="callbacks.backend.tf32=true (CUDA)")
    p.add_argument("--fused-modconv", action="store_true",
                   help="model.generator.fused_modconv=true (grouped per-sample kernels)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for every module (repeatable)")
    p.add_argument("--no-features", dest="features", action="store_false",
                   help="skip the feature-extraction measurement")
    p.add_argument("--inception-weights", default=None, metavar="DIR",
                   help="directory with torch-fidelity's Inception-v3 weights (never downloads)")
    p.add_argument("--sync-debug", action="store_true",
                   help="CUDA: warn at every host-device synchronisation during the steps")
    p.add_argument("--tiny", action="store_true",
                   help="reduced widths, batch 4, one repeat: tests the bench in seconds")
    p.add_argument("--data", action="store_true",
                   help="only the data loader: images/s of one worker at 32, 256 and 1024 px "
                        "from a zip and a folder of PNGs, beside what a GPU consumes")
    p.add_argument("--out", default=None, help="JSON path (default bench_results/bench-*.json)")
    a = p.parse_args(argv)
    opts = Options(presets=tuple(s for s in a.presets.split(",") if s), batch=a.batch,
                   precision=a.precision, device=a.device, steps=a.steps, repeats=a.repeats,
                   warmup=a.warmup, channels_last=a.channels_last, compile=a.compile,
                   tf32=a.tf32, fused_modconv=a.fused_modconv, overrides=tuple(a.override),
                   features=a.features, inception_weights=a.inception_weights,
                   sync_debug=a.sync_debug, tiny=a.tiny, out=a.out, data=a.data)
    problem = _check_presets(opts.presets)
    if problem:
        p.error(problem)
    try:
        check_creatable_dir(Path(a.out).parent if a.out else Path("bench_results"), "--out")
    except ConfigError as err:
        p.error(str(err))
    if a.tiny:
        explicit = {arg.partition("=")[0] for arg in (argv if argv is not None else sys.argv[1:])}
        if "--steps" not in explicit:
            opts.steps = 1
        if "--repeats" not in explicit:
            opts.repeats = 1
    return opts


def main(argv: list[str] | None = None) -> None:
    # Lightning's start-up banners would be printed once per timed fit.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    run(parse_args(command_line(sys.argv[1:] if argv is None else argv)))


def command_line(argv: list[str]) -> list[str]:
    """The arguments as argparse takes them: ``key=value`` -> ``--key=value``, but the value
    of ``--override KEY=VALUE`` left as it is."""
    from dgan.config.cli_args import dashed

    return dashed(argv, valued=VALUED_OPTIONS)


if __name__ == "__main__":
    main()

"""``python -m dgan.train --help``: dgan's own page, built from the configs on disk.

Hydra's stock ``--help`` prints the whole composed config (about 200 lines) and nothing on what
to type. This page names the commands, the keys most runs change, the experiments and config
groups found in ``conf/`` (so a new experiment file appears without editing this module), where
a run writes, and how to continue one. Hydra's own output stays one flag away: ``--cfg job``
prints the composed config, ``--hydra-help`` Hydra's flags.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

# Flags that show this page (Hydra's own --help is replaced; --hydra-help is left to Hydra).
HELP_FLAGS = ("--help", "-h")
# Groups that are Hydra plumbing rather than choices a user makes.
HIDDEN_GROUPS = ("hydra", "paths", "experiment")
DESCRIPTION_WIDTH = 72
PAGE_WIDTH = 100

COMMANDS = """\
Commands (each also a console script: dgan-train, dgan-generate, ...; --help on each)
  python -m dgan.train [key=value ...]     train; -m [key=a,b ...] runs a sweep (multirun)
  python -m dgan.generate ckpt=RUN/checkpoints/best.ckpt seeds=0-63 outdir=out
  python -m dgan.evaluate ckpt=RUN/checkpoints/best.ckpt metrics=[fid_digits2k_full]
  python -m dgan.data.prepare source=DIR_OR_ARCHIVE dest=data.zip [resolution=N]
  python -m dgan.sweep_report MULTIRUN_DIR [--group-by KEYS]      (dgan-sweep-report)
  python -m dgan.convert network-snapshot.pkl out.ckpt             (StyleGAN2-ADA pickles)
  python -m dgan.bench                                             (step time here)
  python -m dgan.metrics.fetch_weights DIR   Inception/VGG16 weights for offline machines
"""

KEYS = """\
Most used keys (key=value or --key=value)
  experiment=NAME          what to train (list below; default digits_stylegan2)
  debug=default            any experiment in seconds on a CPU: a smoke test
  kimg=N                   length, in thousands of real images shown
  seed=N                   seeds everything
  points_per_run=N         metrics, samples, checkpoints N times per run (default 10)
  dataset.path=PATH        a folder or zip of images (image experiments)
  dataset.max_size=N       a seeded subset of N images (limited data)
  trainer=gpu | ddp trainer.devices=8 [trainer.num_nodes=2] | ddp_cpu
  model.batch_size=N       the global batch (model.batch_gpu: per forward pass)
  diffusion=none           the plain GAN (no diffusion); diffusion.noise_std, diffusion.t_max
  adaptive.d_target=0.6    the adaptive chain's target
  augment=diffaug | ada    augmentation before the diffusion
  metrics=none | digits | toy | fid50k | paper   metrics.every_kimg=N
  metrics.weights_dir=DIR  pre-fetched Inception/VGG16 weights (offline)
  logger=csv | wandb | tensorboard | none
  hydra.run.dir=DIR        the run directory (default outputs/EXPERIMENT/DATE_TIME)
  hydra/launcher=slurm     submit a -m sweep to SLURM (hydra.launcher.partition=...)
"""

OUTPUTS = """\
Outputs (the run directory, printed at start and end)
  train.log                everything printed, with a status line every few kimg
  metrics.csv              every scalar (losses, p, T, metrics) by step and kimg
  metrics.jsonl            one record per evaluation; metrics_summary.json: final and best
  samples/                 image grids from fixed latents, fakes_init.png before training
                           (toy runs: toy figures)
  diagnostics/             D's logits by diffusion step t, p and T against kimg
  checkpoints/last.ckpt    written every callbacks.checkpoint.every_kimg, at the end and on
                           SIGTERM/SIGUSR1/Ctrl-C; best.ckpt at the best headline metric
  .hydra/, hparams.yaml    the config of the run

Resume and init
  resume=auto hydra.run.dir=RUN_DIR      continue a run from its last.ckpt (kimg is the
                                         total length, so the same command continues it)
  resume=RUN_DIR/checkpoints/last.ckpt   continue from a given checkpoint
  overwrite=true hydra.run.dir=RUN_DIR   a NEW run in RUN_DIR: the old run there is moved to
                                         RUN_DIR.old-DATE (without it a fresh start
                                         refuses a directory that holds a run)
  init=PATH                              a NEW run from weights: a dgan .ckpt or a
                                         StyleGAN2-ADA network .pkl (fine-tuning), or
                                         a published network's name (diffusion-...)

More
  --cfg job                the composed config (with your overrides), without running
  --hydra-help             Hydra's own flags; -m / --multirun for sweeps
  README.md and docs/      the user guide
"""


def describe(path: Path) -> str:
    """The first sentence of a config file's leading comment (after ``# @package``)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        lines.append(text)
    text = " ".join(lines)
    for end in (". ", "; "):
        if end in text:
            text = text.split(end)[0]
    text = text.rstrip(".")
    if len(text) > DESCRIPTION_WIDTH:
        text = text[:DESCRIPTION_WIDTH - 3].rstrip() + "..."
    return text


def experiments(config_dir: str | Path) -> list[tuple[str, str]]:
    """``(name, description)`` of every file in ``conf/experiment``, sorted by name."""
    folder = Path(config_dir) / "experiment"
    return [(p.stem, describe(p)) for p in sorted(folder.glob("*.yaml"))]


def config_groups(config_dir: str | Path) -> list[tuple[str, list[str]]]:
    """``(group, choices)`` of the config groups a user chooses from (``model``,
    ``hydra/launcher`` ...), sorted."""
    root = Path(config_dir)
    groups = []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        group = folder.relative_to(root).as_posix()
        if group.split("/")[0] in HIDDEN_GROUPS and group != "hydra/launcher":
            continue
        choices = sorted(p.relative_to(folder).with_suffix("").as_posix()
                         for p in folder.glob("*.yaml"))
        if choices:
            groups.append((group, choices))
    return groups


def help_page(config_dir: str | Path) -> str:
    """The text of ``python -m dgan.train --help``."""
    width = max(len(name) for name, _ in experiments(config_dir)) + 2
    listed = "\n".join(f"  {name:<{width}}{text}" for name, text in experiments(config_dir))
    groups = "\n".join(
        textwrap.fill(" | ".join(choices), width=PAGE_WIDTH, break_on_hyphens=False,
                      initial_indent=f"  {group + '=':<16}", subsequent_indent=" " * 18)
        for group, choices in config_groups(config_dir))
    return (
        "dgan.train: train a Diffusion-GAN (or a plain GAN) with PyTorch Lightning and Hydra.\n"
        "  python -m dgan.train [experiment=NAME] [key=value ...]\n"
        "  python -m dgan.train experiment=gaussians25 debug=default   # a smoke test\n\n"
        f"{COMMANDS}\n{KEYS}\n"
        f"Experiments (conf/experiment; experiment=NAME)\n{listed}\n\n"
        f"Config groups (conf/; group=choice)\n{groups}\n\n"
        f"{OUTPUTS}"
    )


def wants_help(argv: list[str]) -> bool:
    """Whether the arguments ask for this page."""
    return any(arg in HELP_FLAGS for arg in argv)

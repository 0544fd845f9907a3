"""Writes the notebooks of this folder (without outputs): ``python notebooks/build_notebooks.py``.

The notebooks are generated so that their source lives in one reviewable Python file. Each has
a small mode (``DGAN_NOTEBOOK_SMALL=1``: tiny runs, few points) that tests/test_notebooks.py
executes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

SETUP = '''import os

import matplotlib.pyplot as plt
import torch

# DGAN_NOTEBOOK_SMALL=1: a quick pass (the test suite runs every notebook like this).
SMALL = os.environ.get("DGAN_NOTEBOOK_SMALL") == "1"
torch.manual_seed(0)'''

FORWARD_DIFFUSION = [
    ("md", """# 01 · The forward diffusion q(y | x, t)

Diffusion-GAN never shows its discriminator clean data only: real and generated samples both go
through

    y ~ q(y | x, t) = N( sqrt(abar_t) x , (1 - abar_t) sigma^2 I )
    abar_t = prod_{s<=t} (1 - beta_s)

with t drawn from {1..T} (and, in the reference implementation, about half of each batch at
t = 0, clean). This notebook looks at q on an image and on 2-D data, at the beta schedules,
and at the t distributions, with `dgan.diffusion.Diffusion` and `dgan.diffusion.schedules`."""),
    ("code", SETUP + '''

from dgan.data.digits import DigitsDataset
from dgan.data.toy import ToyDataset
from dgan.diffusion import Diffusion
from dgan.diffusion.schedules import SCHEDULES

N_POINTS = 500 if SMALL else 5000  # 2-D points drawn
N_T = 2000 if SMALL else 50_000  # timesteps drawn for the histograms'''),
    ("md", """## q(y | x, t) on an image

A digit (32x32, values in [-1, 1]) at growing t, with p = 1 so that T = t_max = 1000. With the
image default sigma = 0.05 the signal mostly *shrinks* (sqrt(abar_t) -> 0) while the noise stays
small; with sigma = 0.5 the image drowns in noise."""),
    ("code", '''digits = DigitsDataset(resolution=32)
x0 = digits[0][0][None]  # [1, 1, 32, 32]
ts = [0, 10, 50, 100, 250, 500, 1000]
sigmas = [0.05, 0.5]
fig, axes = plt.subplots(len(sigmas), len(ts), figsize=(1.8 * len(ts), 2.1 * len(sigmas)))
for row, sigma in zip(axes, sigmas):
    diffusion = Diffusion(t_min=10, t_max=1000, noise_std=sigma, p_init=1.0)
    assert int(diffusion.T) == 1000
    for ax, t in zip(row, ts):
        y = diffusion.q_sample(x0, torch.tensor([t]))
        ax.imshow(y[0, 0], cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"sigma={sigma}, t={t}", fontsize=8)
        ax.axis("off")
plt.tight_layout()
plt.show()'''),
    ("md", """## q(y | x, t) on 2-D data

The 25 Gaussians with the toy settings (sigma = 0.5, T up to 100): the modes blur into one blob
as t grows, which is what lets D's gradient reach G between the modes."""),
    ("code", '''toy = ToyDataset("gaussians25", size=N_POINTS)
diffusion = Diffusion(t_min=5, t_max=100, noise_std=0.5, p_init=1.0)
ts = [0, 5, 20, 50, 100]
fig, axes = plt.subplots(1, len(ts), figsize=(3 * len(ts), 3))
for ax, t in zip(axes, ts):
    y = diffusion.q_sample(toy.points, torch.full((len(toy),), t))
    ax.scatter(y[:, 0], y[:, 1], s=1, alpha=0.5)
    ax.set_title(f"t = {t}")
    ax.set_xlim(-5, 5)
    ax.set_ylim(-5, 5)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()'''),
    ("md", """## The beta schedules

Signal scale sqrt(abar_t) and noise scale sigma sqrt(1 - abar_t) over t for every schedule of
the reference implementation, at T = 1000. The schedule is rebuilt over T steps whenever the
adaptive update changes T, so the right panel repeats the linear schedule for several T."""),
    ("code", '''t = torch.arange(0, 1001)
fig, (ax_signal, ax_noise, ax_T) = plt.subplots(1, 3, figsize=(15, 3.8))
for name in SCHEDULES:
    diffusion = Diffusion(beta_schedule=name, t_min=10, t_max=1000, p_init=1.0)
    ax_signal.plot(t, diffusion.sqrt_abar, label=name)
    ax_noise.plot(t, diffusion.sqrt_one_minus_abar * diffusion.noise_std, label=name)
ax_signal.set(xlabel="t", ylabel="sqrt(abar_t)", title="signal scale, T = 1000")
ax_noise.set(xlabel="t", ylabel="sigma sqrt(1 - abar_t)", title="noise scale (sigma = 0.05)")
ax_signal.legend(fontsize=8)
for p in (0.0, 0.25, 0.5, 1.0):
    diffusion = Diffusion(t_min=10, t_max=1000, p_init=p)
    T = int(diffusion.T)
    assert T == 10 + round(p * 990)
    ax_T.plot(t[: T + 1], diffusion.sqrt_abar[: T + 1], label=f"p={p}, T={T}")
ax_T.set(xlabel="t", ylabel="sqrt(abar_t)", title="linear schedule over T steps")
ax_T.legend(fontsize=8)
plt.tight_layout()
plt.show()'''),
    ("md", """## The t distributions

`priority` draws t with weight t - 1 (long chains favoured, t = 1 never), `uniform` draws all of
{1..T} alike. With `t_sampling=pool` (the reference), 64 slots are drawn when T changes, half of
them fixed at 0; every image picks a slot, so a batch sees at most 33 distinct t and about half of
it is clean. `per_sample` (the paper's equation) draws a fresh t for every image."""),
    ("code", '''fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
panels = [(dist, sampling) for sampling in ("pool", "per_sample")
          for dist in ("priority", "uniform")]
for ax, (dist, sampling) in zip(axes, panels):
    diffusion = Diffusion(ts_dist=dist, t_sampling=sampling, t_min=10, t_max=1000, p_init=0.5)
    draws = diffusion.sample_t(N_T)
    clean = (draws == 0).float().mean().item()
    ax.hist(draws.numpy(), bins=60, range=(0, int(diffusion.T)))
    ax.set_title(f"{dist} / {sampling}: T={int(diffusion.T)}, clean {clean:.0%}", fontsize=9)
    if dist == "priority":
        assert not (draws == 1).any()
    if sampling == "pool":
        assert abs(clean - 0.5) < 0.1
    else:
        assert clean == 0
plt.tight_layout()
plt.show()'''),
]

MODE_COVERAGE = [
    ("md", """# 02 · Mode coverage on 25 Gaussians: Diffusion-GAN against a plain GAN

The paper claims that on a 2-D mixture of 25 Gaussians Diffusion-GAN covers every mode where a
plain GAN drops some. dgan has **not** been able to test that claim: it needs a plain GAN that
drops modes by concentrating on a subset of them (fewer than 5 of the 9 inner modes, under 70 %
of its samples in the border band), and no plain setting searched meets that (docs/results.md,
"25 Gaussians"). Without R1, with the paper's toy networks, the plain GAN below spreads along
the border of the grid, and Diffusion-GAN does the same; with a stronger D trained 4 to 8 times
longer, the plain GAN collapses onto the four corner modes, which lie in the border band.

This notebook runs the comparison of the docs: `experiment=gaussians25_collapse`, the plain GAN
(`diffusion=none`) against Diffusion-GAN (`diffusion=toy_overlap`), with the same networks,
data, seed and length, built through dgan's own API (`dgan.config.compose.compose_config` +
`dgan.assembly.builder.build_run`, the objects `python -m dgan.train
experiment=gaussians25_collapse diffusion=none|toy_overlap` builds). `make -j2 reproduce-toy`
runs the same over 5 seeds.

Small mode trains for a few hundred images only: the pictures show the plumbing, not the
result. Full mode (the default) trains each model with the experiment's own recipe (kimg 1600
at batch 256, about 3 minutes per run on a 2-core CPU)."""),
    ("code", SETUP + '''
import tempfile
from pathlib import Path

from IPython.display import Image, display

from dgan.assembly.builder import build_run
from dgan.config.compose import compose_config
from dgan.files.run_files import read_metrics

OUT = Path(os.environ.get("DGAN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="dgan-nb02-"))
TINY = ["kimg=0.5", "model.batch_size=64", "model.generator.hidden=32",
        "model.discriminator.hidden=32", "metrics.every_kimg=0.25",
        "callbacks.samples.every_kimg=0.25"]
COMMON = [
    "experiment=gaussians25_collapse", *(TINY if SMALL else []),
    "callbacks.checkpoint.every_kimg=0", "callbacks.progress.refresh_rate=0", "logger=csv",
]
MODELS = {"Diffusion-GAN": ["diffusion=toy_overlap"], "GAN": ["diffusion=none"]}
print("runs in", OUT)'''),
    ("code", '''runs = {}
for name, extra in MODELS.items():
    cfg = compose_config(COMMON + extra, OUT / name)
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    runs[name] = run
assert runs["GAN"].module.diffusion is None
assert runs["Diffusion-GAN"].module.diffusion is not None'''),
    ("md", "## Samples of G_ema over the data"),
    ("code", '''N = 2500
z = torch.randn(N, runs["GAN"].module.G_ema.z_dim, generator=torch.Generator().manual_seed(1))
data = runs["GAN"].datamodule.dataset
fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5))
for ax, (name, run) in zip(axes, runs.items()):
    fakes = run.module.generate(z).cpu()
    ax.scatter(data.points[:N, 0], data.points[:N, 1], s=2, alpha=0.3, label="data")
    ax.scatter(fakes[:, 0], fakes[:, 1], s=2, alpha=0.5, c="tab:red", label="generated")
    final = read_metrics(run.run_dir)[-1]
    ax.set_title(f"{name}: {final['modes_covered']}/25 modes")
    ax.set_xlim(-5, 5)
    ax.set_ylim(-5, 5)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
plt.show()'''),
    ("md", """## Mode-coverage metrics

`modes_covered`: modes with at least 20 of 2,500 samples within 3 std; `hq_fraction`: share of
samples within 3 std of some mode; `mode_kl`: KL of the per-mode histogram from uniform (lower
is better); `border_fraction`: share of samples in the border band, max(|x|, |y|) > 3.5 (the
data put 0.64 there); `inner_modes_covered`: covered modes among the 9 inside the outer ring. A
G that drops modes by concentrating on a subset covers few inner modes with a border share
under 0.7; a G spread along the border covers few inner modes with a border share above it.
Written by the metrics callback to each run's `metrics.jsonl`."""),
    ("code", '''KEYS = ("modes_covered", "hq_fraction", "mode_kl", "border_fraction", "inner_modes_covered")
print(f"{'model':<14}" + "".join(f"{k:>20}" for k in KEYS))
for name, run in runs.items():
    final = read_metrics(run.run_dir)[-1]
    print(f"{name:<14}" + "".join(f"{final[k]:>20.4g}" for k in KEYS))

fig, axes = plt.subplots(1, len(KEYS), figsize=(4 * len(KEYS), 3.5))
for ax, key in zip(axes, KEYS):
    for name, run in runs.items():
        records = read_metrics(run.run_dir)
        ax.plot([r["kimg"] for r in records], [r[key] for r in records], "o-", label=name)
    ax.set(xlabel="kimg", ylabel=key)
    ax.legend()
plt.tight_layout()
plt.show()'''),
    ("md", """## What the diffusion did

r_d against its target, r_t, p and T over the run, with D's logits on training and generated
points (`diagnostics/dynamics.png`, from the overfitting callback), and D's accuracy per noise
level at the end of training (the diagnostics callback); both in `diagnostics/` of the run."""),
    ("code", '''import csv

run_dir = runs["Diffusion-GAN"].run_dir
with open(run_dir / "diagnostics" / "dynamics.csv") as f:
    history = list(csv.DictReader(f))
assert history, "the overfitting callback recorded no history"
display(Image(filename=str(run_dir / "diagnostics" / "dynamics.png")))
display(Image(filename=str(sorted((run_dir / "diagnostics").glob("d_by_t_kimg*.png"))[-1])))'''),
]

SWEEP_ANALYSIS = [
    ("md", """# 03 · Sweep analysis: the metric against sigma, T_max and d_target

Reads a Hydra multirun directory: every job folder holds `.hydra/overrides.yaml`,
`.hydra/config.yaml` and `metrics.jsonl`. Jobs run with `logger=wandb` also hold a W&B offline
run (`wandb/offline-run-*/run-*.wandb`), read here without a network by
`dgan.tracking.wandb_offline`. (`python -m dgan.sweep_report DIR` writes the same kind of table and plot
from the command line.)

Set `DGAN_SWEEP_DIR` to your multirun directory, e.g. after

    python -m dgan.train -m experiment=gaussians25 diffusion.noise_std=0.1,0.5,1.0 \\
        diffusion.t_max=50,200 adaptive.d_target=0.45,0.6 logger=wandb

Without it, this notebook runs a sweep of its own first: two tiny jobs in small mode, twelve
jobs of 100 kimg otherwise."""),
    ("code", SETUP + '''
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from dgan.files.run_files import read_metrics
from dgan.tracking.wandb_offline import find_offline_runs, read_offline_run

METRIC = os.environ.get("DGAN_SWEEP_METRIC", "modes_covered")
AXES = {"sigma": "diffusion.noise_std", "T_max": "diffusion.t_max",
        "d_target": "adaptive.d_target"}'''),
    ("code", '''sweep_dir = os.environ.get("DGAN_SWEEP_DIR")
if sweep_dir is None:
    root = os.environ.get("DGAN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="dgan-nb03-")
    sweep_dir = Path(root) / "sweep"
    if SMALL:
        grid = ["diffusion.noise_std=0.25,0.5"]
        length = ["kimg=0.5", "model.batch_size=64", "model.generator.hidden=32",
                  "model.discriminator.hidden=32", "metrics.every_kimg=0.25"]
    else:
        grid = ["diffusion.noise_std=0.1,0.5,1.0", "diffusion.t_max=50,200",
                "adaptive.d_target=0.45,0.6"]
        length = ["kimg=100", "metrics.every_kimg=25"]
    command = [sys.executable, "-m", "dgan.train", "-m", "experiment=gaussians25", *grid,
               *length, "callbacks.samples.every_kimg=0", "callbacks.checkpoint.every_kimg=0",
               "callbacks.progress.refresh_rate=0", "logger=wandb", "logger.wandb.mode=offline",
               f"hydra.sweep.dir={sweep_dir}"]
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "WANDB_SILENT": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
sweep_dir = Path(sweep_dir)
print("multirun:", sweep_dir)'''),
    ("md", """## The jobs, from the multirun directory

The value of each axis comes from the job's saved config (so keys that were not swept show
their default), the metric from its `metrics.jsonl` (the last evaluation)."""),
    ("code", '''def config_value(config, dotted):
    for part in dotted.split("."):
        config = (config or {}).get(part)
    return config


jobs = []
for overrides_file in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
    job_dir = overrides_file.parent.parent
    config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
    records = [r for r in read_metrics(job_dir) if METRIC in r]
    jobs.append({
        "job": job_dir.relative_to(sweep_dir).as_posix(),
        **{axis: config_value(config, key) for axis, key in AXES.items()},
        "overrides": yaml.safe_load(overrides_file.read_text()),
        METRIC: records[-1][METRIC] if records else None,
        "kimg": records[-1]["kimg"] if records else None,
    })
assert jobs, f"no jobs under {sweep_dir}"
for job in jobs:
    print(job["job"], {axis: job[axis] for axis in AXES}, METRIC, job[METRIC],
          "at kimg", job["kimg"])'''),
    ("code", '''def plot_against_axes(rows, title):
    fig, axes = plt.subplots(1, len(AXES), figsize=(4.5 * len(AXES), 3.5), squeeze=False)
    done = [row for row in rows if row[METRIC] is not None]
    for ax, axis in zip(axes[0], AXES):
        ax.scatter([row[axis] for row in done], [row[METRIC] for row in done])
        ax.set(xlabel=axis, ylabel=METRIC)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


plot_against_axes(jobs, f"{METRIC} over {len(jobs)} job(s), from metrics.jsonl")'''),
    ("md", """## The same jobs, from their W&B offline runs

Each job's W&B run holds its config (with the command-line overrides and the git revision) and
its history with kimg as the step; the metric is logged as `metrics/<name>`."""),
    ("code", '''wandb_rows = []
for path in find_offline_runs(sweep_dir):
    run = read_offline_run(path)
    series = run.series(f"metrics/{METRIC}")
    wandb_rows.append({
        "job": run.config["output_dir"],
        **{axis: config_value(run.config, key) for axis, key in AXES.items()},
        METRIC: series[-1][1] if series else None,
        "git": run.config.get("git_revision"),
    })
print(f"{len(wandb_rows)} W&B offline run(s)")
if wandb_rows:
    plot_against_axes(wandb_rows, f"{METRIC} over {len(wandb_rows)} run(s), from W&B")
    # Both records of a job agree.
    from_files = {str((sweep_dir / job["job"]).resolve()): job[METRIC] for job in jobs}
    for row in wandb_rows:
        assert row[METRIC] == from_files[str(Path(row["job"]).resolve())], row'''),
]


def build(cells: list[tuple[str, str]], path: Path) -> None:
    nb = new_notebook(metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in cells]
    for i, cell in enumerate(nb.cells):
        cell.id = f"{path.stem[:2]}-{i:02d}"  # fixed ids: rebuilding changes only what changed
    nbformat.validate(nb)
    nbformat.write(nb, path)


NOTEBOOKS = {
    "01_forward_diffusion.ipynb": FORWARD_DIFFUSION,
    "02_toy_mode_coverage.ipynb": MODE_COVERAGE,
    "03_sweep_analysis.ipynb": SWEEP_ANALYSIS,
}

if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        build(cells, HERE / name)
        print("wrote", HERE / name)

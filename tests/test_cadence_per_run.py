"""Cadences that follow the run: metrics, samples, diagnostics and checkpoints come a number of
times per run (``points_per_run``) unless their ``every_kimg`` is given, and a fresh run draws
its untrained samples (``fakes_init.png``) without touching the training's random stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import dgan  # noqa: F401  - registers the resolvers the configs use
from dgan.assembly.builder import build_run
from dgan.assembly.resolvers import DEFAULT_POINTS_PER_RUN
from dgan.callbacks.cadence import kimg_tag
from dgan.callbacks.samples import SamplesCallback

from .conftest import compose_train, fit_in_process

SHORT_KIMG = 8
# The default job's cadences, on which docs/results' numbers rest, at its own length.
DEFAULT_JOB = {"kimg": 80, "metrics": 8, "samples": 20, "checkpoint": 20, "diagnostics": 20}


def _cadences(cfg: Any) -> dict[str, float]:
    callbacks = cfg.callbacks
    return {"kimg": cfg.kimg, "metrics": cfg.metrics.every_kimg,
            "samples": callbacks.samples.every_kimg, "checkpoint": callbacks.checkpoint.every_kimg,
            "diagnostics": callbacks.diagnostics.every_kimg}


def test_unset_cadences_follow_kimg() -> None:
    cfg = compose_train(["~experiment", "run_name=short", f"kimg={SHORT_KIMG}"])
    period = SHORT_KIMG / DEFAULT_POINTS_PER_RUN
    assert _cadences(cfg) == {"kimg": SHORT_KIMG, "metrics": period, "samples": period,
                              "checkpoint": period, "diagnostics": period}
    # A long run keeps the former fixed periods as its longest gaps.
    long = compose_train(["experiment=cifar10_stylegan2"])
    assert _cadences(long)["metrics"] == 1000 and _cadences(long)["samples"] == 50
    assert compose_train(["~experiment", "run_name=few", "kimg=8",
                          "points_per_run=2"]).callbacks.samples.every_kimg == 4


def test_experiments_of_the_results_keep_their_cadences() -> None:
    assert _cadences(compose_train(["experiment=digits_stylegan2"])) == DEFAULT_JOB
    toy = compose_train(["experiment=gaussians25"])
    assert (toy.metrics.every_kimg, toy.callbacks.samples.every_kimg) == (320, 320)
    short_toy = compose_train(["experiment=gaussians25", "kimg=80"])
    assert short_toy.metrics.every_kimg == 16  # five points, as at its own 1600 kimg


def test_a_short_run_writes_metrics_and_samples_at_several_points(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    fit_in_process(["experiment=ring8", f"kimg={SHORT_KIMG}", "model.generator.hidden=32",
                    "model.discriminator.hidden=32", "metrics.metrics=[mode_coverage500]",
                    "logger=none", "callbacks.progress=null", "callbacks.toy_figure=null",
                    "callbacks.diagnostics=null"], run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    kimgs = [row["kimg"] for row in rows]
    # Every 0.8 kimg, on a clock of 0.256 kimg steps: 9 points before the end, and the end.
    assert len(kimgs) >= DEFAULT_POINTS_PER_RUN - 1 and kimgs == sorted(set(kimgs))
    scatters = {p.name for p in (run_dir / "samples").glob("scatter*.png")}
    assert "scatter_init.png" in scatters
    assert {f"scatter{kimg_tag(k)}.png" for k in kimgs} <= scatters


class _RngProbe(L.Callback):
    """Records the global random state at train start (before) or compares with it (after)."""

    def __init__(self, before: _RngProbe | None = None) -> None:
        self.before = before
        self.state: torch.Tensor | None = None
        self.same: bool | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = torch.random.get_rng_state()
        if self.before is not None:
            self.same = torch.equal(self.state, self.before.state)


def test_the_init_grid_is_drawn_outside_the_training_stream(tmp_path: Path) -> None:
    run = build_run(compose_train(["experiment=digits_stylegan2", "debug=default",
                                   "logger=none"], tmp_path / "run"))
    callbacks = run.trainer.callbacks
    index = next(i for i, c in enumerate(callbacks) if isinstance(c, SamplesCallback))
    before = _RngProbe()
    after = _RngProbe(before)
    callbacks.insert(index + 1, after)
    callbacks.insert(index, before)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert (run.run_dir / "samples" / "fakes_init.png").is_file()
    assert after.same is True


def test_kimg_tags_keep_the_points_of_a_short_run_apart() -> None:
    assert kimg_tag(80) == "000080"  # StyleGAN2-ADA's names where kimg is whole
    tags = [kimg_tag(k * 0.256) for k in range(1, 40)]
    assert len(set(tags)) == len(tags) and tags == sorted(tags)
    with pytest.raises(Exception, match="points_per_run"):
        build_run(compose_train(["experiment=ring8", "points_per_run=0"], Path("unused")))

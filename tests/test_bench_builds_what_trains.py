"""dgan.bench times the module dgan.train trains: both come from the run assembly's
build_module, so parameter counts, D's timestep input and the diffusion wiring agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgan.assembly.builder import build_module, build_run
from dgan.benchmarks.training import BENCH_DATASET_SIZE, PRESETS, compose_config
from tests.conftest import compose_train


def _counts(module: torch.nn.Module) -> dict[str, int]:
    return {name: sum(p.numel() for p in getattr(module, name).parameters())
            for name in ("G", "D", "G_ema")}


@pytest.mark.parametrize("preset", ["digits", "digits_insgen"])
def test_bench_and_train_build_the_same_module(tmp_path: Path, preset: str) -> None:
    experiment = PRESETS.get(preset, preset)
    trained = build_run(compose_train([f"experiment={experiment}"], tmp_path / "run")).module
    timed = build_module(compose_config(preset, [], tmp_path / "bench"), BENCH_DATASET_SIZE)
    assert _counts(timed) == _counts(trained)
    assert type(timed.diffusion) is type(trained.diffusion)
    assert timed.diffusion.t_max == trained.diffusion.t_max
    assert timed.adaptive is not None and trained.adaptive is not None
    assert (timed.adaptive.d_target, timed.adaptive.interval) == \
        (trained.adaptive.d_target, trained.adaptive.interval)
    # D is told t the same way (its conditioning input sized from the diffusion's t_max).
    assert [tuple(p.shape) for p in timed.D.parameters()] == \
        [tuple(p.shape) for p in trained.D.parameters()]

"""The ProjectedGAN preset of ``dgan.bench``: step time with and without the feature diffusion
and the diffusion's share (tiny widths), and the overrides that fit its networks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgan.benchmarks.training import Options, compose_config, preset_overrides

REPO = Path(__file__).resolve().parents[1]


def test_overrides_fit_the_projected_networks(tmp_path: Path) -> None:
    model = compose_config("projected", [], tmp_path).model
    out = preset_overrides(Options(tiny=True), torch.device("cpu"), model)
    assert not any("fused_modconv" in o or "channel_base" in o or "mapping_layers" in o
                   for o in out)
    assert "model.generator.ngf=8" in out and "model.discriminator.resize=64" in out
    # The StyleGAN2 presets keep their options.
    sg2 = preset_overrides(Options(tiny=True), torch.device("cpu"))
    assert "model.generator.fused_modconv=false" in sg2 and "model.generator.ngf=8" not in sg2


def test_bench_tiny_projected_preset(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dgan.bench", "--tiny", "--presets", "projected",
         "--no-features", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "projected" in proc.stdout and "overhead x" in proc.stdout
    results = json.loads(out.read_text())
    training = results["training"]["projected"]
    for variant in ("diffusion", "none"):
        v = training[variant]
        assert v["step_s"] > 0 and v["images_per_s"] > 0 and v["peak_mem_mib"] > 0
        # No R1, no path length: every step is a main step.
        assert v["phase_shares"] == {"main": 1.0}
    assert training["overhead"] == pytest.approx(
        training["diffusion"]["step_s"] / training["none"]["step_s"])
    d = results["diffusion"]["projected"]
    # G's fakes, D's fakes and reals: three batches of four feature maps per step.
    assert d["calls_per_step"] == pytest.approx(3)
    assert d["per_call_s"] > 0 and 0 < d["share_of_step"] < 1
    assert results["generation"]["projected"]["images_per_s"] > 0

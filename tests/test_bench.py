"""The benchmark command (tiny mode) and the speed options it measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgan.benchmarks.training import step_kinds
from dgan.networks.stylegan2 import Generator
from dgan.networks.stylegan2.layers import modulated_conv2d
from dgan.networks.stylegan2.resample import setup_filter
from dgan.training.losses import StyleGAN2Loss
from dgan.training.phases import build_phases

REPO = Path(__file__).resolve().parents[1]


def _positive_numbers(node: object, path: str = "") -> list[tuple[str, float]]:
    """Every number in a JSON tree, with its path."""
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _positive_numbers(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _positive_numbers(v, f"{path}[{i}]")]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [(path, float(node))]
    return []


def test_bench_tiny_writes_json_and_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dgan.bench", "--tiny", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for text in ("training step", "cifar", "digits", "overhead x", "G_ema", "features digits",
                 "features inception", f"wrote {out}"):
        assert text in table, text
    results = json.loads(out.read_text())
    for section in ("environment", "training", "diffusion", "generation", "features", "notes"):
        assert section in results, section
    for preset in ("cifar", "digits"):
        training = results["training"][preset]
        for variant in ("diffusion", "none"):
            v = training[variant]
            assert v["step_s"] > 0 and v["images_per_s"] > 0 and v["sec_per_kimg"] > 0
            assert v["peak_mem_mib"] > 0
            # Lazy R1 is amortised: main steps, D reg steps every d_reg_interval (16).
            assert v["phase_shares"] == {"main": 15 / 16, "main+Dreg": 1 / 16}
            assert abs(v["images_per_s"] * v["step_s"] - training["batch"]) < 1e-6
            # The step is the share-weighted median of each phase's pooled step times.
            assert v["step_s"] == pytest.approx(
                sum(v["phase_shares"][k] * v["phases_s"][k] for k in v["phase_shares"]))
        assert training["overhead"] == pytest.approx(
            training["diffusion"]["step_s"] / training["none"]["step_s"])
        d = results["diffusion"][preset]
        # The cost of each augmentation: G main, D main (fakes and reals), D reg every 16.
        augmentation = results["augmentation"][preset]
        assert set(augmentation) == {"diffaug", "ada_p1", "ada_p0.25"}
        assert all(a["per_step_s"] > 0 and a["calls_per_step"] == pytest.approx(3 + 1 / 16)
                   for a in augmentation.values())
        assert "augment ada_p1" in table
        assert d["per_call_s"] > 0 and 0 < d["share_of_step"] < 1
        assert results["generation"][preset]["images_per_s"] > 0
    assert results["features"]["digits"]["images_per_s"] > 0
    inception = results["features"]["inception"]
    assert "skipped" in inception or inception["images_per_s"] > 0
    numbers = _positive_numbers({k: results[k] for k in ("training", "diffusion", "generation")})
    assert numbers and all(value > 0 for _, value in numbers), [n for n in numbers if n[1] <= 0]


class _Lazy:
    """A module's phase table and loss flags, as step_kinds reads them."""

    def __init__(self, r1_gamma: float, r1_interval: int, pl_weight: float, pl_interval: int):
        self.phases = build_phases([pl_interval, r1_interval])
        self.loss = StyleGAN2Loss(r1_gamma=r1_gamma, pl_weight=pl_weight)


def test_step_kinds_weight_each_phase_set_by_its_frequency() -> None:
    kinds = step_kinds(_Lazy(1.0, 16, 2.0, 4))
    assert kinds[("main",)][1] == 12 / 16
    assert kinds[("main", "Greg")][1] == 3 / 16
    assert kinds[("main", "Greg", "Dreg")][1] == 1 / 16
    # Each representative step counter really runs that set of phases.
    k = kinds[("main", "Greg")][0]
    assert k % 4 == 0 and k % 16 != 0
    assert step_kinds(_Lazy(0.0, 16, 0.0, 4)) == {("main",): (0, 1.0)}
    # The cifar recipe: the G reg phase exists (lr scaling) but computes nothing.
    assert set(step_kinds(_Lazy(0.01, 16, 0.0, 4))) == {("main",), ("main", "Dreg")}


def test_input_modulation_equals_grouped_convolution() -> None:
    torch.manual_seed(0)
    f = setup_filter()
    for up, demod, k in ((1, True, 3), (2, True, 3), (1, False, 1)):
        x = torch.randn(3, 6, 8, 8, requires_grad=True)
        w = torch.randn(5, 6, k, k, requires_grad=True)
        s = torch.randn(3, 6, requires_grad=True)
        outs, grads = [], []
        for fused in (False, True):
            y = modulated_conv2d(x, w, s, demodulate=demod, up=up, padding=k // 2,
                                 resample_filter=f, fused=fused)
            outs.append(y)
            grads.append(torch.autograd.grad(y.square().sum(), (x, w, s)))
        torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=1e-4)
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_generator_fused_modconv_switch_reaches_every_layer() -> None:
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                  channel_max=16, mapping_layers=2)
    z = torch.randn(2, 16)
    a = G(z, noise_mode="const")
    G.fused_modconv = True
    flags = [m.fused_modconv for m in G.modules() if hasattr(m, "fused_modconv")
             and m is not G]
    assert flags and all(flags)
    torch.testing.assert_close(G(z, noise_mode="const"), a, atol=1e-4, rtol=1e-4)

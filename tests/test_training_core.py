"""The training core is the reference's recipe by construction: the phase table, the lazy
regularisation's optimizer steps and lr/beta scaling, the presets' batch_gpu and minibatch-std
groups, w_avg tracking, and each phase of the StyleGAN2 loss on its own."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from dgan.assembly.builder import build_run
from dgan.diffusion import Diffusion
from dgan.networks.mlp import MLPDiscriminator, MLPGenerator
from dgan.networks.stylegan2.presets import preset
from dgan.training.losses import GANNetworks, StyleGAN2Loss
from dgan.training.losses.base import REAL_COUNT, REAL_SIGNS
from dgan.training.phases import build_phases, optimizer_steps, scaled_optimizer

from .conftest import compose_train

QUIET = ["metrics=none", "logger=none", "callbacks.samples.every_kimg=0",
         "callbacks.checkpoint.every_kimg=0", "callbacks.diagnostics=null"]
# A StyleGAN2 small enough for 32 steps on a CPU in seconds: digits at 8-16 channels, batch 4.
TINY_STYLEGAN2 = ["experiment=digits_stylegan2", "model.batch_size=4",
                  "model.generator.channel_base=128", "model.generator.channel_max=16",
                  "model.generator.z_dim=16", "model.generator.w_dim=16",
                  "model.discriminator.cmap_dim=16", "model.discriminator.mbstd_group_size=2"]
ITERATIONS = 32


def _train(tmp_path, *overrides: str):
    run = build_run(compose_train([*TINY_STYLEGAN2, *QUIET, *overrides], tmp_path / "run"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return run.module


def _adam_steps(optimizer: torch.optim.Optimizer) -> int:
    # Every parameter of the network takes part in every phase (the losses keep all weights in
    # the graph), so the first one's Adam step count is the optimizer's.
    first = optimizer.param_groups[0]["params"][0]
    return int(optimizer.state[first]["step"])


def test_lazy_phases_take_their_own_optimizer_steps(tmp_path) -> None:
    # R1 every 16 and path length every 4: over 32 iterations D steps 32 + 2, G 32 + 8.
    kimg = f"kimg={ITERATIONS * 4 / 1000}"
    module = _train(tmp_path / "pl", kimg, "model.loss.pl_weight=2.0")
    assert module.cur_step == ITERATIONS
    g_opt, d_opt = module.trainer.optimizers
    assert (_adam_steps(g_opt), _adam_steps(d_opt)) == (40, 34)
    assert module.optimizer_steps == {"G": 40, "D": 34}
    assert optimizer_steps(module.phases, ITERATIONS, module.loss.regularises) == {"G": 40, "D": 34}
    # The cifar recipe: path length off, G's reg phase computes nothing and takes no step.
    module = _train(tmp_path / "nopl", kimg)
    g_opt, d_opt = module.trainer.optimizers
    assert (_adam_steps(g_opt), _adam_steps(d_opt)) == (32, 34)
    assert module.optimizer_steps == {"G": 32, "D": 34}


def test_phase_table_of_the_reference() -> None:
    names = [(p.name, p.interval) for p in build_phases([4, 16])]
    assert names == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    assert [p.name for p in build_phases([None, None])] == ["Gboth", "Dboth"]
    with pytest.raises(ValueError, match="reg interval 0"):
        build_phases([0, 16])


def test_cifar_learning_rates_and_betas_equal_the_reference() -> None:
    cfg = compose_train(["model=stylegan2_cifar"])
    param = [torch.nn.Parameter(torch.zeros(1))]
    g = scaled_optimizer(instantiate(cfg.model.g_optimizer), cfg.model.g_reg_interval)(param)
    d = scaled_optimizer(instantiate(cfg.model.d_optimizer), cfg.model.d_reg_interval)(param)
    assert g.defaults["lr"] == pytest.approx(0.002)
    assert g.defaults["betas"] == pytest.approx((0.0, 0.99199), abs=1e-5)
    assert d.defaults["lr"] == pytest.approx(0.0023529, abs=1e-7)
    assert d.defaults["betas"] == pytest.approx((0.0, 0.990585), abs=1e-6)
    assert g.defaults["eps"] == d.defaults["eps"] == 1e-8


# model config -> (reference preset, resolution, the reference's minibatch-std group)
PRESET_CONFIGS = {
    "stylegan2_cifar": ("cifar", 32, 16),
    "stylegan2_stl10": ("stl10", 64, 16),
    "stylegan2_paper256": ("paper256", 256, 8),
    "stylegan2_paper512": ("paper512", 512, 8),
    "stylegan2_paper1024": ("paper1024", 1024, 4),
    "stylegan2_config_f": ("stylegan2", 1024, 4),
}


@pytest.mark.parametrize("model", sorted(PRESET_CONFIGS))
def test_preset_batch_gpu_and_minibatch_std_group(model: str) -> None:
    name, resolution, group = PRESET_CONFIGS[model]
    cfg = compose_train([f"model={model}"]).model
    reference = preset(name, resolution)
    assert cfg.batch_size == reference["batch"]
    assert cfg.batch_gpu == reference["batch_gpu"] == reference["batch"] // reference["ref_gpus"]
    # D's minibatch-std layer groups min(group size, samples per forward pass).
    assert min(cfg.discriminator.mbstd_group_size, cfg.batch_gpu) == group


def test_w_avg_is_the_moving_average_of_w(tmp_path) -> None:
    run = build_run(compose_train([*TINY_STYLEGAN2, *QUIET, "kimg=0.02"], tmp_path / "run"))
    module = run.module
    mapping = module.G.mapping
    recorded: list[torch.Tensor] = []

    def record(_module, args, kwargs, output):
        if kwargs.get("update_emas"):
            recorded.append(output[:, 0].detach().clone())

    mapping.register_forward_hook(record, with_kwargs=True)
    run.trainer.fit(module, datamodule=run.datamodule)
    expected = torch.zeros_like(mapping.w_avg)
    for ws in recorded:
        expected = ws.mean(0).lerp(expected, mapping.w_avg_beta)
    # Gmain and Dmain of 5 iterations (no path length): 10 updating calls.
    assert len(recorded) == 2 * module.cur_step
    assert mapping.w_avg.abs().sum() > 0
    torch.testing.assert_close(mapping.w_avg, expected)
    torch.testing.assert_close(module.G_ema.mapping.w_avg, mapping.w_avg)


# ----------------------------------------------------------------------------- single phases


def _toy_loss(c_dim: int = 0, diffusion: Diffusion | None = None):
    torch.manual_seed(0)
    G = MLPGenerator(z_dim=4, out_dim=2, hidden=16, num_layers=2, c_dim=c_dim)
    D = MLPDiscriminator(in_dim=2, hidden=16, num_layers=2, c_dim=c_dim,
                         t_conditioning="raw" if diffusion else "none", t_max=100,
                         cmap_dim=8, mapping_layers=1)
    loss = StyleGAN2Loss(r1_gamma=1.0)
    loss.bind(GANNetworks(G=G, D=D, diffusion=diffusion, augment=None,
                          backward=lambda value: value.backward()))
    return loss, G, D


def test_g_phase_leaves_d_gradients_none() -> None:
    loss, G, D = _toy_loss()
    D.requires_grad_(False)
    loss.accumulate_gradients("Gmain", torch.randn(8, 2), torch.zeros(8, 0), torch.randn(8, 4),
                              torch.zeros(8, 0), gain=1.0)
    assert all(p.grad is None for p in D.parameters())
    assert all(p.grad is not None for p in G.parameters())


def test_d_phases_leave_g_gradients_none_and_report_real_signs() -> None:
    loss, G, D = _toy_loss()
    G.requires_grad_(False)
    real = torch.randn(8, 2)
    main = loss.accumulate_gradients("Dmain", real, torch.zeros(8, 0), torch.randn(8, 4),
                                     torch.zeros(8, 0), gain=1.0)
    reg = loss.accumulate_gradients("Dreg", real, torch.zeros(8, 0), torch.randn(8, 4),
                                    torch.zeros(8, 0), gain=16.0)
    assert all(p.grad is None for p in G.parameters())
    # Both phases that score reals report them to the adaptive update (the reference's r_d).
    assert main[REAL_COUNT] == reg[REAL_COUNT] == 8
    signs = D(real, torch.zeros(8, 0), None).sign().sum()
    assert main[REAL_SIGNS] == reg[REAL_SIGNS] == signs
    assert "loss/D_r1" in reg and "loss/D" in main


def test_r_d_counts_the_reals_of_the_d_reg_phase(tmp_path) -> None:
    run = build_run(compose_train(["experiment=gaussians25", "model.generator.hidden=16",
                                   "model.discriminator.hidden=16", "model.batch_size=32",
                                   "kimg=0.064", *QUIET], tmp_path / "run"))
    outputs = []
    original = run.module.training_step

    def step(batch, batch_idx):
        out = original(batch, batch_idx)
        outputs.append({k: float(v) for k, v in out.items()})
        return out

    run.module.training_step = step
    run.trainer.fit(run.module, datamodule=run.datamodule)
    # Step 0 runs Dmain and Dreg (interval 16): twice the batch; step 1 Dmain only.
    assert [o[REAL_COUNT] for o in outputs] == [64.0, 32.0]


def test_conditional_fakes_are_scored_with_their_own_labels() -> None:
    loss, G, D = _toy_loss(c_dim=3)
    seen: list[torch.Tensor] = []
    D.register_forward_hook(lambda _m, args, _out: seen.append(args[1].clone()))
    real_c = torch.eye(3)[torch.zeros(6, dtype=torch.long)]  # every real is class 0
    gen_c = torch.eye(3)[torch.tensor([1, 2, 1, 2, 1, 2])]
    for phase in ("Gmain", "Dmain"):
        seen.clear()
        loss.accumulate_gradients(phase, torch.randn(6, 2), real_c, torch.randn(6, 4), gen_c, 1.0)
        assert torch.equal(seen[0], gen_c)  # the fake batch
    assert torch.equal(seen[1], real_c)  # Dmain then scores the reals with theirs


def test_r1_through_the_diffusion_matches_finite_differences() -> None:
    diffusion = Diffusion(t_min=5, t_max=100, noise_std=0.5, seed=1)
    diffusion.set_p(1.0)
    loss, _, D = _toy_loss(diffusion=diffusion)
    x = torch.randn(4, 2)
    c = torch.zeros(4, 0)

    def logits(inputs: torch.Tensor) -> torch.Tensor:
        diffusion.reseed(7)  # the same t and noise for every evaluation
        return loss.run_D(inputs, c, compiled=False)[0].flatten()

    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(logits(x_var).sum(), x_var)
    # D is a ReLU MLP, piecewise linear in its input, so central differences are exact up to
    # float32 rounding while no kink lies within eps.
    eps = 1e-3
    numeric = torch.stack([(logits(x + eps * e) - logits(x - eps * e)) / (2 * eps)
                           for e in torch.eye(2)], dim=1)
    torch.testing.assert_close(grad, numeric, atol=1e-3, rtol=1e-3)
    # The penalty the Dreg phase adds is the squared norm of that gradient.
    from dgan.training.losses.penalties import r1_penalty

    x_var = x.clone().requires_grad_(True)
    torch.testing.assert_close(r1_penalty(x_var, logits(x_var)), numeric.square().sum(1),
                               atol=1e-3, rtol=1e-3)
    assert not math.isclose(float(numeric.abs().sum()), 0.0)


def test_conditional_digits_train_and_generate_by_class(tmp_path) -> None:
    from PIL import Image

    from dgan import generate

    run = build_run(compose_train(["experiment=digits_stylegan2_cond", *TINY_STYLEGAN2[1:],
                                   *QUIET, "kimg=0.012"], tmp_path / "run"))
    assert run.module.G.c_dim == run.module.D.c_dim == 10
    real, real_c = next(iter(run.datamodule.train_dataloader()))
    assert real_c.shape == (4, 10) and torch.equal(real_c.sum(1), torch.ones(4))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    images = {}
    for class_idx in (3, 7):
        out = tmp_path / f"class{class_idx}"
        assert generate.main([f"ckpt={ckpt}", "seeds=0-1", f"class_idx={class_idx}",
                              f"outdir={out}", "grid=false"]) == 0
        images[class_idx] = [np.asarray(Image.open(out / f"seed{s:04d}.png")) for s in (0, 1)]
    # The same latents with another label give other images: the label reaches G.
    assert not np.array_equal(images[3][0], images[7][0])


def test_generate_trunc_zero_gives_the_image_of_w_avg(tmp_path) -> None:
    from PIL import Image

    from dgan import generate

    run = build_run(compose_train([*TINY_STYLEGAN2, *QUIET, "kimg=0.012"], tmp_path / "run"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = tmp_path / "trunc0"
    assert generate.main([f"ckpt={ckpt}", "seeds=0-1", "trunc=0", f"outdir={out}",
                          "grid=false"]) == 0
    first, second = (np.asarray(Image.open(out / f"seed{s:04d}.png")) for s in (0, 1))
    assert np.array_equal(first, second)  # every latent truncates onto w_avg
    G = run.module.G_ema
    ws = G.w_avg.view(1, 1, -1).expand(1, G.mapping.num_ws, -1)
    from dgan.files.pictures import to_uint8

    expected = to_uint8(G.synthesis(ws, noise_mode="const"))[0, 0].numpy()
    assert np.abs(first.astype(int) - expected.astype(int)).max() <= 1


def test_progress_bar_shows_the_losses_from_the_first_step(tmp_path) -> None:
    run = build_run(compose_train(["experiment=gaussians25", "model.generator.hidden=16",
                                   "model.discriminator.hidden=16", "model.batch_size=32",
                                   "kimg=0.032", *(o for o in QUIET if o != "logger=none")],
                                  tmp_path / "run"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.module.cur_step == 1 < run.trainer.log_every_n_steps
    assert {"lossG", "lossD"} <= set(run.trainer.progress_bar_metrics)
    # A run shorter than log_every_n_steps still records its losses, at its last step (the
    # losses reach the loggers through dgan's records, not Lightning's logged_metrics; the
    # one step is numbered 0, as Lightning numbers the first).
    rows = list(csv.DictReader((run.run_dir / "metrics.csv").open()))
    assert [row["step"] for row in rows if row.get("loss/G")] == ["0"]

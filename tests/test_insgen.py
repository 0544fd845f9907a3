"""Diffusion-InsGen: the contrastive loss, the queues, the momentum copy, keys gathered over DDP
ranks, exact resume with the queues, the experiments, and a short digits_insgen fit."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from dgan.assembly.builder import build_run
from dgan.callbacks.preemption import Preempted
from dgan.core.errors import ConfigError
from dgan.networks.insgen import FAKE_HEAD, REAL_HEAD, InstanceDiscriminator
from dgan.networks.stylegan2 import Discriminator
from dgan.training.losses import InsGenLoss
from dgan.training.losses.insgen import KeyQueue, gather_keys, instance_nce

from .conftest import CONF, compose_train, fit_in_process
from .test_ddp_resume import _ddp_run, _SignalAt, _weights

QUIET = ["metrics=none", "logger=none", "callbacks.samples.every_kimg=0",
         "callbacks.checkpoint.every_kimg=0", "callbacks.diagnostics=null"]
# digits_insgen at 8-16 channels and batch 4: a few steps in seconds on a CPU.
TINY = ["experiment=digits_insgen", "model.batch_size=4",
        "model.generator.channel_base=128", "model.generator.channel_max=16",
        "model.generator.z_dim=16", "model.generator.w_dim=16",
        "model.discriminator.cmap_dim=16", "model.discriminator.mbstd_group_size=2", *QUIET]
INSGEN_EXPERIMENTS = ["afhq_cat_insgen", "afhq_dog_insgen", "afhq_wild_insgen", "digits_insgen"]
QUEUES = ("loss.queues.real.keys", "loss.queues.real.ptr",
          "loss.queues.fake.keys", "loss.queues.fake.ptr")
TINY_D = dict(img_resolution=8, img_channels=1, channel_base=64, channel_max=8, num_fp16_res=0,
              mbstd_group_size=2, mapping_layers=1)


# ----------------------------------------------------------------------------- the pieces


def test_instance_nce_equals_the_hand_computed_value() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    negatives = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    # Row 0: logits (0.6, 1, 0) / 0.2 = (3, 5, 0); row 1: (1, 0, -1) / 0.2 = (5, 0, -5).
    row0 = -3 + math.log(math.exp(3) + math.exp(5) + math.exp(0))
    row1 = -5 + math.log(math.exp(5) + math.exp(0) + math.exp(-5))
    loss = instance_nce(q, k, negatives, temperature=0.2)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_queue_wraps_around_and_keeps_the_newest() -> None:
    queue = KeyQueue(size=5, dim=2)
    assert torch.allclose(queue.keys.norm(dim=1), torch.ones(5))  # random unit keys at first
    first = torch.arange(6.0).view(3, 2)
    second = torch.arange(6.0, 12.0).view(3, 2)
    queue.push(first)
    assert int(queue.ptr) == 3 and torch.equal(queue.keys[:3], first)
    queue.push(second)  # slots 3, 4, then 0
    assert int(queue.ptr) == 1
    assert torch.equal(queue.keys, torch.cat([second[2:], first[1:], second[:2]]))
    many = torch.arange(14.0).view(7, 2)  # more keys than slots: the newest 5, in ring order
    queue.push(many)
    assert int(queue.ptr) == (1 + 7) % 5
    expected = torch.empty(5, 2)
    for j in range(2, 7):
        expected[(1 + j) % 5] = many[j]
    assert torch.equal(queue.keys, expected)


def test_gather_keys_without_ddp_is_the_identity() -> None:
    keys = torch.randn(3, 4)
    assert gather_keys(keys) is keys


def test_the_heads_leave_the_stylegan2_logits_unchanged() -> None:
    torch.manual_seed(0)
    plain = Discriminator(**TINY_D)
    torch.manual_seed(0)
    insgen = InstanceDiscriminator(head_dim=16, **TINY_D)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 7, 9])
    assert torch.equal(plain(x, None, t), insgen(x, None, t))
    # Heads: MLP features -> features -> head_dim, unit-length embeddings.
    head = insgen.heads[REAL_HEAD].mlp
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (8, 8, 16)
    embedded = insgen.embed(x, FAKE_HEAD)
    assert embedded.shape == (4, 16)
    assert torch.allclose(embedded.norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="head='other'"):
        insgen.embed(x, "other")


def _tiny_module(tmp_path: Path, *overrides: str):
    module = build_run(compose_train([*TINY, *overrides], tmp_path / "run")).module
    # Phases called by hand, outside a Trainer: a plain backward for Lightning's.
    module.loss.nets.backward = lambda loss: loss.backward()
    return module


def test_momentum_update_once_per_iteration(tmp_path: Path) -> None:
    module = _tiny_module(tmp_path)
    loss, D = module.loss, module.D
    assert loss.momentum == 0.999
    # D_ema is the loss's, not D's optimizer's, and never needs gradients.
    d_params = {id(p) for p in module.configure_optimizers()[1].param_groups[0]["params"]}
    assert {id(p) for p in D.parameters()} <= d_params
    assert not any(id(p) in d_params or p.requires_grad for p in loss.D_ema.parameters())
    with torch.no_grad():
        for p in D.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in loss.D_ema.parameters()]
    loss.begin_iteration()
    for old, ema, new in zip(before, loss.D_ema.parameters(), D.parameters(), strict=True):
        torch.testing.assert_close(ema, 0.999 * old + 0.001 * new, rtol=1e-6, atol=1e-6)
    loss.start_run(rank=0)  # a fresh run starts with D_ema = D (e.g. after init=)
    for ema, own in zip(loss.D_ema.state_dict().values(), D.state_dict().values(), strict=True):
        assert torch.equal(ema, own)


def test_losses_are_switchable_and_fill_their_queues(tmp_path: Path) -> None:
    def dmain(module) -> dict[str, torch.Tensor]:
        res = module.G.img_resolution
        real = torch.randn(4, 1, res, res).clamp(-1, 1)
        c, z = torch.zeros(4, 0), torch.randn(4, module.G.z_dim)
        return module.loss.accumulate_gradients("Dmain", real, c, z, c, 1.0)

    module = _tiny_module(tmp_path / "on")
    # 5% of the 300 digits of the subset.
    assert {h: q.size for h, q in module.loss.queues.items()} == {REAL_HEAD: 15, FAKE_HEAD: 15}
    logs = dmain(module)
    assert {"loss/D_real_cl", "loss/D_fake_cl"} <= logs.keys()
    assert [int(q.ptr) for q in module.loss.queues.values()] == [4, 4]
    assert module.D.heads[REAL_HEAD].mlp[0].weight.grad.abs().sum() > 0
    g_logs = module.loss.accumulate_gradients(
        "Gmain", torch.zeros(4, 1, module.G.img_resolution, module.G.img_resolution),
        torch.zeros(4, 0), torch.randn(4, 16),
        torch.zeros(4, 0), 1.0)
    assert "loss/G_fake_cl" in g_logs
    assert int(module.loss.queues[FAKE_HEAD].ptr) == 4  # G's term reads the queue only

    off = _tiny_module(tmp_path / "off", "model.loss.real_weight=0", "model.loss.fake_weight=0",
                       "model.loss.fake_on_g_weight=0", "model.loss.real_queue_size=7")
    assert off.loss.queues[REAL_HEAD].size == 7
    logs = dmain(off)
    assert not any(key.endswith("_cl") for key in logs)
    assert [int(q.ptr) for q in off.loss.queues.values()] == [0, 0]
    assert off.D.heads[REAL_HEAD].mlp[0].weight.grad is None


def test_insgen_loss_refuses_a_discriminator_without_heads(tmp_path: Path) -> None:
    cfg = compose_train([*TINY, "model.discriminator._target_=dgan.networks.stylegan2."
                         "Discriminator", "~model.discriminator.head_dim"], tmp_path / "run")
    with pytest.raises(ValueError, match="InstanceDiscriminator"):
        build_run(cfg)
    with pytest.raises(ValueError, match="dataset_size"):
        InsGenLoss()


# ----------------------------------------------------------------------------- DDP and resume


def test_ddp_ranks_enqueue_the_same_gathered_keys(tmp_path: Path) -> None:
    steps, batch = 4, 4  # global batch 4 over 2 ranks
    common = [*TINY, f"kimg={steps * batch / 1000}", "callbacks.throughput=null",
              "callbacks.progress=null"]
    ranks = _ddp_run(tmp_path, "insgen", common, tmp_path / "run")
    assert [r["cur_step"] for r in ranks] == [steps, steps]
    first, second = (r["state"] for r in ranks)
    for key in QUEUES:
        assert torch.equal(first[key], second[key]), key
    # Every step each rank pushes the keys of both ranks (2 x 2 per queue): 16 keys, ring of 15.
    assert int(first["loss.queues.real.ptr"]) == (steps * batch) % 15
    # The ranks drew their own streams (t pools differ) on their own shares of the data, so
    # equal queues mean gathered keys; D_ema follows the all-reduced D and is equal too.
    assert not torch.equal(first["diffusion.pool"], second["diffusion.pool"])
    for key in (k for k in first if k.startswith("loss.D_ema.")):
        assert torch.equal(first[key], second[key]), key


def test_resume_with_the_queues_is_exact(tmp_path: Path) -> None:
    common = [*TINY, "kimg=0.04", "seed=5"]
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted):
        fit_in_process(common, run_dir, _SignalAt(step=6, signum=signal.SIGUSR1))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    assert set(QUEUES) <= state.keys() and "loss.view_augment._extra_state" in state
    assert any(k.startswith("loss.D_ema.heads.") for k in state)
    assert int(state["loss.queues.real.ptr"]) == 6 * 4 % 15
    resumed = fit_in_process([*common, f"resume={run_dir / 'checkpoints' / 'last.ckpt'}"],
                             tmp_path / "resumed")
    reference = fit_in_process(common, tmp_path / "reference")
    ref, got = _weights(reference.module), _weights(resumed.module)
    assert ref.keys() == got.keys() and set(QUEUES) <= ref.keys()
    for key in ref:  # weights, G_ema, D_ema with its heads, queues and pointers
        assert torch.equal(ref[key], got[key]), key


# ----------------------------------------------------------------------------- experiments


@pytest.mark.parametrize("experiment", INSGEN_EXPERIMENTS)
def test_every_insgen_experiment_composes(compose_cfg, experiment: str) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    assert cfg.model.discriminator._target_ == "dgan.networks.insgen.InstanceDiscriminator"
    assert cfg.model.loss._target_ == "dgan.training.losses.InsGenLoss"
    loss = cfg.model.loss
    assert (loss.real_weight, loss.fake_weight, loss.fake_on_g_weight) == (1.0, 1.0, 0.1)
    assert (loss.temperature, loss.momentum, loss.queue_fraction) == (0.2, 0.999, 0.05)
    assert cfg.augment._target_ == "dgan.augment.AdaptiveAugment"
    # The reference InsGen code sets no ada_maxp: ADA's p follows the diffusion's up to 1.
    assert cfg.augment_p.ada_maxp == 1.0
    d = cfg.diffusion
    assert (d.ts_dist, d.t_min, d.t_max, d.noise_std, cfg.adaptive.d_target) == \
        ("uniform", 10, 500, 0.05, 0.6)
    if experiment.startswith("afhq"):
        assert cfg.model.generator.img_resolution == 512 and cfg.model.batch_size == 64
        assert cfg.model.loss.r1_gamma == 0.5 and cfg.dataset.xflip
    else:
        assert cfg.dataset.max_size == 300 and cfg.kimg == 40


@pytest.mark.parametrize("experiment", [e for e in INSGEN_EXPERIMENTS if e.startswith("afhq")])
def test_afhq_insgen_without_dataset_path_fails_in_one_line(compose_cfg, experiment) -> None:
    assert "override /dataset: images" in (CONF / "experiment" / f"{experiment}.yaml").read_text()
    with pytest.raises(ConfigError) as excinfo:
        build_run(compose_cfg(f"experiment={experiment}"))
    message = str(excinfo.value)
    assert "\n" not in message and "dataset.path" in message


def test_paper512_instance_discriminator_is_the_reference_d_plus_two_heads(compose_cfg) -> None:
    cfg = compose_cfg("experiment=afhq_cat_insgen")
    D = instantiate(cfg.model.discriminator, t_max=500)
    trunk_and_epilogue = 31_347_264  # the reference's paper512 D (design.md section 2)
    head = 512 * 512 + 512 + 512 * 128 + 128
    assert sum(p.numel() for p in D.parameters()) == trunk_and_epilogue + 2 * head


def test_digits_insgen_short_fit(compose_cfg) -> None:
    cfg = compose_cfg("experiment=digits_insgen", "kimg=0.024", "model.batch_size=8",
                      "trainer.log_every_n_steps=1", "metrics=none",
                      "callbacks.samples.every_kimg=0", "callbacks.checkpoint.every_kimg=0")
    run = build_run(cfg)
    module = run.module
    g_before = torch.cat([p.detach().flatten() for p in module.G.parameters()])
    heads_before = torch.cat([p.detach().flatten() for p in module.D.heads.parameters()])
    ema_before = torch.cat([p.detach().flatten() for p in module.loss.D_ema.parameters()])
    run.trainer.fit(module, datamodule=run.datamodule)
    assert module.cur_step == 3
    assert not torch.equal(g_before, torch.cat([p.flatten() for p in module.G.parameters()]))
    assert not torch.equal(heads_before,
                           torch.cat([p.flatten() for p in module.D.heads.parameters()]))
    assert not torch.equal(ema_before,
                           torch.cat([p.flatten() for p in module.loss.D_ema.parameters()]))
    assert int(module.loss.queues[REAL_HEAD].ptr) == 3 * 8 % 15
    header = (run.run_dir / "metrics.csv").read_text().splitlines()[0]
    for key in ("loss/D_real_cl", "loss/D_fake_cl", "loss/G_fake_cl"):
        assert key in header, header

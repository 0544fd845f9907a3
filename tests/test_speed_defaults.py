"""The GPU speed defaults (issue 28), each checked on CPU through the code path a GPU runs:
loader workers / pinned memory / decoded-image cache, bf16 blocks with the conv clamp, R1 in
fp32, fused Adam and channels-last, and what trainer=gpu / trainer=cpu compose to."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dgan.data.datamodule import GANDataModule, loader_workers
from dgan.data.images import ImageDataset
from dgan.networks.stylegan2 import Discriminator, Generator
from dgan.networks.stylegan2.layers import Conv2dLayer, SynthesisLayer, ToRGB
from dgan.training.losses.stylegan2 import fp32_only

SMALL = {"channel_base": 1024, "channel_max": 32}
SMALL_G = {**SMALL, "z_dim": 32, "w_dim": 32, "mapping_layers": 2}
# bf16 keeps 8 mantissa bits (relative step 2**-8 = 0.4 %). Stated tolerance: the relative L2
# error ||bf16 - fp32|| / ||fp32|| of images and logits. Measured on these small nets: 0.5 % for
# G's images (0.7 % with every layer on the clamp), 0.05 % for D's logits; a clamp of 128
# instead of 256 gives 46 %.
REL_L2_TOL = 0.02
CLAMP = 256.0


# --------------------------------------------------------------------------------------------
# Data pipeline


def _zip_of_pngs(path: Path, count: int = 6, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            with zf.open(f"{i:05d}.png", "w") as f:
                image.save(f, format="PNG")
    return path


def test_loader_workers_per_rank_from_cpus():
    assert loader_workers(0, 1, cpus=64) == 0                # 0 stays 0 (CPU runs)
    assert loader_workers(3, 1, cpus=64) == 3                # the reference's 3 when CPUs allow
    assert loader_workers(3, 8, cpus=16) == 1                # 2 CPUs per rank: 1 left over
    assert loader_workers(3, 8, cpus=8) == 1                 # never fewer than one when asked
    assert loader_workers(3, 1, cpus=2) == 1                 # this 2-core machine


def test_datamodule_passes_worker_settings(tmp_path: Path):
    ds = ImageDataset(_zip_of_pngs(tmp_path / "d.zip"), xflip=True)
    dm = GANDataModule(ds, batch_size=4, num_workers=1, pin_memory=True, prefetch_factor=3,
                       preload=True)
    loader = dm.train_dataloader()
    assert loader.num_workers == 1 and loader.persistent_workers and loader.prefetch_factor == 3
    assert loader.pin_memory == torch.cuda.is_available()    # pinning needs CUDA
    assert ds.cached                                          # decoded before the workers
    x, _ = next(iter(loader))
    assert x.shape == (4, 3, 16, 16)
    plain = GANDataModule(ImageDataset(tmp_path / "d.zip"), batch_size=4).train_dataloader()
    assert plain.num_workers == 0 and not plain.persistent_workers and not plain.pin_memory
    assert not plain.dataset.cached                           # the CPU default decodes per item


def test_cached_items_equal_decoded_items(tmp_path: Path):
    path = _zip_of_pngs(tmp_path / "d.zip", count=9)
    decoded = ImageDataset(path, xflip=True, max_size=5, seed=3)
    cached = ImageDataset(path, xflip=True, max_size=5, seed=3)
    assert cached.preload() and cached.cached
    for i in range(len(decoded)):
        torch.testing.assert_close(cached[i][0], decoded[i][0], atol=0, rtol=0)
    # Forked workers read the parent's cache.
    a = torch.cat([x for x, _ in DataLoader(cached, batch_size=5, num_workers=1)])
    torch.testing.assert_close(a, torch.stack([decoded[i][0] for i in range(len(decoded))]))
    # A cache that cannot hold the subset is not made.
    assert not ImageDataset(path, cache_mb=0).preload()
    assert not ImageDataset(path, cache_mb=(9 * 3 * 16 * 16 - 1) / 1024**2).preload()


# --------------------------------------------------------------------------------------------
# What the trainers compose to


def _speed(cfg) -> tuple:
    dm = cfg.datamodule
    return (dm.num_workers, dm.pin_memory, dm.preload, cfg.model.generator.use_reduced_precision,
            cfg.model.discriminator.use_reduced_precision)


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainers_choose_the_speed_defaults(compose_cfg, trainer: str):
    cfg = compose_cfg("experiment=cifar10_stylegan2", f"trainer={trainer}")
    assert _speed(cfg) == (3, True, True, True, True)
    assert cfg.datamodule.persistent_workers and cfg.datamodule.prefetch_factor == 2
    assert cfg.model.fused_adam and cfg.callbacks.backend.cudnn_benchmark
    assert cfg.model.generator.conv_clamp == CLAMP and cfg.model.generator.num_fp16_res == 4
    # speed=cpu turns them all off on a GPU.
    off = compose_cfg("experiment=cifar10_stylegan2", f"trainer={trainer}", "speed=cpu")
    assert _speed(off) == (0, False, False, False, False)


@pytest.mark.parametrize("trainer", ["cpu", "ddp_cpu"])
def test_cpu_trainers_keep_todays_defaults(compose_cfg, trainer: str):
    for experiment in ("digits_stylegan2", "cifar10_stylegan2"):
        cfg = compose_cfg(f"experiment={experiment}", f"trainer={trainer}")
        assert _speed(cfg) == (0, False, False, False, False)


# --------------------------------------------------------------------------------------------
# Reduced precision with the clamp, on CPU through the CUDA code path


def _reduced(*nets: torch.nn.Module, on: bool = True) -> None:
    for net in nets:
        target = net.synthesis if isinstance(net, Generator) else net
        target.use_reduced_precision = on
        target.reduced_precision_devices = ("cpu",)


def _saturate(net: torch.nn.Module, factor: float) -> None:
    """Scale every conv weight so that activations run far past the clamp."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, Conv2dLayer | SynthesisLayer | ToRGB):
                m.weight.mul_(factor)


def _clamped_outputs(*nets: torch.nn.Module) -> list[torch.Tensor]:
    """Outputs of every clamped layer of ``nets``, collected from now on."""
    seen: list[torch.Tensor] = []
    for m in (m for net in nets for m in net.modules()):
        if isinstance(m, Conv2dLayer | SynthesisLayer | ToRGB) and m.conv_clamp is not None:
            m.register_forward_hook(lambda _m, _i, o: seen.append(o.detach().float()))
    return seen


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _nets(saturate: float) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    G = Generator(**SMALL_G, img_resolution=32, num_fp16_res=2, conv_clamp=CLAMP)
    D = Discriminator(**SMALL, img_resolution=32, num_fp16_res=2, conv_clamp=CLAMP,
                      mbstd_group_size=2)
    _saturate(G, saturate)
    _saturate(D, saturate)
    return G.requires_grad_(False), D.requires_grad_(False)


@pytest.mark.parametrize("saturate", [1.0, 1e3])
def test_reduced_precision_matches_fp32_with_the_clamp(saturate: float):
    G, D = _nets(saturate)
    z, t = torch.randn(2, G.z_dim), torch.tensor([3, 700])
    ref_img = G(z, noise_mode="const")
    ref_logits = D(ref_img, None, t)
    seen = _clamped_outputs(G, D)
    _reduced(G, D)
    img = G(z, noise_mode="const")
    logits = D(ref_img, None, t)
    assert img.dtype == torch.float32 and logits.dtype == torch.float32
    # Every clamped layer stays within +-conv_clamp; with saturated weights some sit on it.
    peak = max(float(o.abs().max()) for o in seen)
    assert peak <= CLAMP and (peak == CLAMP) == (saturate > 1)
    assert _rel_l2(img, ref_img) <= REL_L2_TOL
    if saturate == 1.0:  # a saturated D's logits are the clamp's, at any precision
        assert _rel_l2(logits, ref_logits) <= REL_L2_TOL


def test_a_wrong_clamp_fails_the_comparison():
    # The test above fails for a reduced-precision path that clamps at another value.
    G, _ = _nets(1e3)
    z = torch.randn(2, G.z_dim)
    ref_img = G(z, noise_mode="const")
    for m in G.synthesis.modules():
        if getattr(m, "conv_clamp", None) is not None:
            m.conv_clamp = CLAMP / 2
    _reduced(G)
    assert _rel_l2(G(z, noise_mode="const"), ref_img) > 10 * REL_L2_TOL


def test_r1_runs_d_in_fp32():
    torch.manual_seed(0)
    D = Discriminator(**SMALL, img_resolution=32, num_fp16_res=2, mbstd_group_size=2)
    _reduced(D)
    dtypes: list[torch.dtype] = []
    D.blocks["b32"].register_forward_hook(lambda _m, _i, o: dtypes.append(o[0].dtype))
    x = torch.randn(2, 3, 32, 32)
    D(x)
    with fp32_only("cpu", D):
        D(x)
    D(x)
    assert dtypes == [torch.bfloat16, torch.float32, torch.bfloat16]
    assert D.use_reduced_precision                              # restored


# --------------------------------------------------------------------------------------------
# Fused Adam and channels-last


def test_fused_adam_matches_adam():
    torch.manual_seed(0)
    nets = [Discriminator(**SMALL, img_resolution=16, mbstd_group_size=2) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    # The presets' Adam, lr and betas as lazy regularisation scales them (c = 16 / 17).
    c = 16 / 17
    opts = [torch.optim.Adam(net.parameters(), lr=0.0025 * c, betas=(0.0, 0.99**c), eps=1e-8,
                             fused=fused) for net, fused in zip(nets, (False, True), strict=True)]
    x = torch.randn(4, 3, 16, 16)
    for _ in range(3):
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    G = Generator(**SMALL_G, img_resolution=16)
    D = Discriminator(**SMALL, img_resolution=16, mbstd_group_size=2)
    z = torch.randn(2, G.z_dim)
    ref_img = G(z, noise_mode="const")
    ref_logits = D(ref_img, None, None)
    for net in (G, D):
        net.to(memory_format=torch.channels_last)
    img = G(z, noise_mode="const")
    logits = D(img.contiguous(memory_format=torch.channels_last), None, None)
    torch.testing.assert_close(img, ref_img, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)


def test_datamodule_workers_follow_the_trainer_ranks(tmp_path: Path, monkeypatch):
    import dgan.data.datamodule as datamodule

    monkeypatch.setattr(datamodule, "available_cpus", lambda: 16)
    dm = GANDataModule(ImageDataset(_zip_of_pngs(tmp_path / "d.zip")), num_workers=3)
    dm.trainer = SimpleNamespace(num_devices=8)
    assert dm.workers() == 1
    dm.trainer = SimpleNamespace(num_devices=2)
    assert dm.workers() == 3


def test_uint8_batches_give_the_same_floats(tmp_path: Path):
    ds = ImageDataset(_zip_of_pngs(tmp_path / "d.zip"), xflip=True)
    floats = GANDataModule(ds, batch_size=4).train_dataloader()
    dm = GANDataModule(ds, batch_size=4, uint8=True)
    x8, c8 = next(iter(dm.train_dataloader()))
    assert x8.dtype == torch.uint8
    x, c = dm.on_after_batch_transfer((x8, c8), 0)
    ref, ref_c = next(iter(floats))
    torch.testing.assert_close(x, ref, atol=0, rtol=0)
    torch.testing.assert_close(c, ref_c)
    # Datasets without get_uint8 (toy points, tensors) keep their items.
    assert not GANDataModule([(torch.zeros(2), torch.zeros(0))] * 4, uint8=True).uint8

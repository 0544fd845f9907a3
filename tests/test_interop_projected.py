"""Diffusion-ProjectedGAN network pickles: read as data, mapped onto dgan's networks.

The pickles are written here (:mod:`tests.projected_gan_pickles`) the way the reference's
training loop writes them, plain ``pickle.dump`` of modules with the reference's class paths,
from small dgan networks; the reference code is never needed, and the stand-in classes are
gone from ``sys.modules`` before anything is read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan import convert, evaluate, generate
from dgan.assembly.builder import build_run
from dgan.inference.loading import load_discriminator, load_generator
from dgan.interop import (
    MappingError,
    UnsafePickleError,
    load_network_pickle,
    loads_network_pickle,
)
from dgan.interop.projected_gan import (
    FASTGAN_TARGET,
    STYLEGAN2_TARGET,
    config_from_pickle,
    is_projected_gan_pickle,
    networks_from_pickle,
)
from dgan.networks.projected import FastGANGenerator, ProjectedDiscriminator
from dgan.networks.stylegan2 import Generator

from .conftest import compose_train
from .projected_gan_pickles import (
    dump_projected_gan_pickle,
    dumps_plain,
    reference_discriminator,
    reference_fastgan,
    stand_in,
)
from .shell_payload import ShellPayload

Z_DIM = 8
NGF = 4
RESOLUTION = 32
LABELS = 3
BATCH = 2
PERTURBATION = 0.1
CUR_P = 0.25  # exactly representable in float32, as progress.cur_p is stored
CUR_NIMG = 3000
SMALL_STYLEGAN2 = {"z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": RESOLUTION,
                   "img_channels": 3, "channel_base": 128, "channel_max": 16,
                   "num_fp16_res": 0, "conv_clamp": None, "mapping_layers": 2,
                   "w_avg_beta": 0.998}


def perturbed(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``net`` with every float parameter and buffer moved off its initial value (noise
    strengths, BatchNorm statistics and biases start at constants that would hide a mix-up)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if t.dtype.is_floating_point and "resample_filter" not in name:
                t.add_(torch.randn(t.shape, generator=gen).abs() * PERTURBATION)
    return net.eval()


def fastgan(lite: bool, c_dim: int, seed: int = 0, img_channels: int = 3) -> FastGANGenerator:
    G = perturbed(FastGANGenerator(z_dim=Z_DIM, ngf=NGF, img_resolution=RESOLUTION,
                                   img_channels=img_channels, lite=lite, c_dim=c_dim, tanh=False),
                  seed)
    if not lite and c_dim:  # the reference's conditional block has one noise strength
        with torch.no_grad():
            for block in G.up.values():
                block.noises[1].weight.copy_(block.noises[0].weight)
    return G


def projected_d(c_dim: int, separable: bool = False, seed: int = 1,
                img_channels: int = 3) -> ProjectedDiscriminator:
    D = ProjectedDiscriminator(c_dim=c_dim, img_resolution=RESOLUTION, separable=separable,
                               img_channels=img_channels)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the trained and the random parts; the ImageNet features stay
        for t in [*D.mini_discs.parameters(), *D.mini_discs.buffers(),
                  *D.projections.parameters()]:
            if t.dtype.is_floating_point:
                t.add_(torch.randn(t.shape, generator=gen).abs() * PERTURBATION)
    return D.eval()


def labels(c_dim: int) -> torch.Tensor | None:
    return torch.eye(c_dim)[torch.arange(BATCH) % c_dim] if c_dim else None


def progress() -> dict:
    return {"cur_nimg": torch.LongTensor([CUR_NIMG]), "cur_p": torch.FloatTensor([CUR_P])}


def write_fastgan_pickle(path: Path, G: FastGANGenerator, D: ProjectedDiscriminator | None
                         ) -> Path:
    nets = {"G": reference_fastgan(G), "G_ema": reference_fastgan(G)}
    if D is not None:
        nets["D"] = reference_discriminator(D)
    dump_projected_gan_pickle(path, nets, progress=progress(),
                              training_set_kwargs={"resolution": RESOLUTION,
                                                   "use_labels": bool(G.c_dim), "xflip": True})
    assert not any(name.startswith("pg_modules") for name in sys.modules)
    return path


@pytest.fixture(scope="module")
def lite_pickle(tmp_path_factory: pytest.TempPathFactory):
    """An unconditional FastGAN-lite with its D, written as the reference does."""
    G, D = fastgan(lite=True, c_dim=0), projected_d(c_dim=0)
    path = write_fastgan_pickle(tmp_path_factory.mktemp("pg") / "network-snapshot.pkl", G, D)
    return path, G, D


@pytest.mark.parametrize(("lite", "c_dim"), [(False, 0), (True, 0), (True, LABELS),
                                             (False, LABELS)],
                         ids=["fastgan", "fastgan_lite", "fastgan_lite_cond", "fastgan_cond"])
def test_fastgan_images_equal_the_source_network(tmp_path, lite, c_dim):
    torch.manual_seed(0)  # the raw-output check below reads the values of one fixed network
    G = fastgan(lite, c_dim)
    path = write_fastgan_pickle(tmp_path / "g.pkl", G, None)
    loaded = load_generator(path, key="pkl")
    node = loaded.config["model"]["generator"]
    assert node["_target_"] == FASTGAN_TARGET and node["lite"] is lite
    assert node["tanh"] is False and node["c_dim"] == c_dim and node["ngf"] == NGF
    z = torch.randn(BATCH, Z_DIM)
    with torch.no_grad():
        expected = G(z, labels(c_dim), noise_mode="const")
        got = loaded.G(z, labels(c_dim), noise_mode="const")
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert expected.abs().max() > 1  # raw output: no tanh on either side


@pytest.mark.parametrize(("c_dim", "separable"), [(0, False), (LABELS, True)],
                         ids=["plain", "conditional_separable"])
def test_discriminator_logits_equal_the_source_network(tmp_path, c_dim, separable):
    G, D = fastgan(lite=True, c_dim=c_dim), projected_d(c_dim, separable)
    path = write_fastgan_pickle(tmp_path / "gd.pkl", G, D)
    dest = tmp_path / "converted.ckpt"
    assert convert.main([str(path), str(dest)]) == 0
    loaded = load_discriminator(dest)
    x = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        torch.testing.assert_close(loaded.D(x, labels(c_dim)), D(x, labels(c_dim)),
                                   atol=0, rtol=0)
    assert loaded.D.mini_discs[0].main[0].main[0].__class__.__name__ == (
        "SeparableConv2d" if separable else "ParametrizedConv2d")


def test_config_records_progress_diffusion_and_model_config(lite_pickle):
    path, G, _ = lite_pickle
    net_pkl = load_network_pickle(path, opaque_classes=True)
    assert is_projected_gan_pickle(net_pkl)
    info = config_from_pickle(net_pkl)
    assert info["p"] == CUR_P and info["presets"] == []  # dgan's config has z 256, ngf 128
    assert info["diffusion"]["t_max"] == 500 and info["diffusion"]["d_pos"] == "first"
    d_node = info["discriminator"]
    assert d_node["disc_resolution"] == 256 and not d_node["separable"]
    nets = networks_from_pickle(net_pkl)
    assert set(nets) == {"G", "G_ema", "D"}


def test_stylegan2_generator_of_projected_gan(tmp_path):
    G = perturbed(Generator(**SMALL_STYLEGAN2), seed=2)
    D = projected_d(c_dim=0, separable=True)
    path = tmp_path / "sg2.pkl"
    dump_projected_gan_pickle(path, {"G_ema": G, "D": reference_discriminator(D)},
                              stylegan2_kwargs={"G_ema": SMALL_STYLEGAN2}, progress=progress())
    info = config_from_pickle(load_network_pickle(path, opaque_classes=True))
    assert info["generator"]["_target_"] == STYLEGAN2_TARGET
    assert info["generator"]["w_avg_beta"] == SMALL_STYLEGAN2["w_avg_beta"]
    assert info["discriminator"]["separable"]
    loaded = load_generator(path, key="pkl")
    z = torch.randn(BATCH, SMALL_STYLEGAN2["z_dim"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.G(z, None, noise_mode="const"),
                                   G(z, None, noise_mode="const"), atol=1e-6, rtol=0)


def test_generate_pkl_equals_generate_of_the_converted_checkpoint(lite_pickle, tmp_path, capsys):
    path, _, _ = lite_pickle
    dest = tmp_path / "converted.ckpt"
    assert convert.main([str(path), str(dest)]) == 0
    out = capsys.readouterr().out
    assert "D+G+G_ema at 32 px" in out and "kimg 3" in out
    args = ["seeds=0-1", "grid=false"]
    assert generate.main([f"pkl={path}", f"outdir={tmp_path / 'a'}", *args]) == 0
    assert generate.main([f"ckpt={dest}", f"outdir={tmp_path / 'b'}", *args]) == 0
    for seed in (0, 1):
        name = f"seed{seed:04d}.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)),
                              np.asarray(Image.open(tmp_path / "b" / name)))


@pytest.fixture(scope="module")
def digits_pickle(tmp_path_factory: pytest.TempPathFactory):
    """A one-channel FastGAN-lite with its D, for dgan's digits configs."""
    G = fastgan(lite=True, c_dim=0, img_channels=1)
    D = projected_d(c_dim=0, img_channels=1)
    path = write_fastgan_pickle(tmp_path_factory.mktemp("digits") / "digits.pkl", G, D)
    return path, G, D


def test_evaluate_pkl_prints_the_metric_table(digits_pickle, tmp_path, capsys):
    path, _, _ = digits_pickle
    code = evaluate.main([f"pkl={path}", "metrics=[fid_digits100_full]", "dataset=digits",
                          f"outdir={tmp_path}", f"cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fid_digits100_full"))
    assert float(line.split()[1]) > 0


def test_train_init_copies_the_pickles_networks(digits_pickle, tmp_path):
    path, G, D = digits_pickle
    cfg = compose_train(["experiment=digits_projectedgan", f"model.generator.z_dim={Z_DIM}",
                         f"model.generator.ngf={NGF}", "model.discriminator.resize=224",
                         "model.discriminator.disc_resolution=256",
                         "model.discriminator.ndf=null", "metrics=none", "logger=none",
                         f"init={path}"], tmp_path / "run")
    module = build_run(cfg).module
    for name, source in (("G", G), ("G_ema", G), ("D", D)):
        ours = getattr(module, name).state_dict()
        for key, value in source.state_dict().items():
            assert torch.equal(ours[key], value), f"{name}.{key}"
    assert module.ema_rampup is None




def test_a_payload_nested_in_a_module_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    G, D = fastgan(lite=True, c_dim=0), projected_d(c_dim=0)
    ref_d = reference_discriminator(D)
    # Deep in the state of one mini discriminator's DownBlock, as an attribute.
    ref_d.discriminator.mini_discs["2"].main[1].payload = ShellPayload(marker)
    path = tmp_path / "evil.pkl"
    dump_projected_gan_pickle(path, {"G_ema": reference_fastgan(G), "D": ref_d})
    assert convert.main([str(path), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing global" in err[0] and "system" in err[0]
    assert generate.main([f"pkl={path}", f"outdir={tmp_path / 'img'}", "seeds=0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.ckpt").exists()


def test_calling_a_reference_class_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Called:
        def __reduce__(self):
            return stand_in_cls, (str(marker),)

    stand_in_cls = type(stand_in("pg_modules.blocks", "InitLayer"))
    data = dumps_plain({"G": Called()})
    with pytest.raises(UnsafePickleError, match="refusing to call pg_modules.blocks.InitLayer"):
        loads_network_pickle(data, opaque_classes=True)
    assert not marker.exists()


def test_a_wrong_shape_is_one_line_naming_the_tensor(tmp_path, capsys):
    G = fastgan(lite=True, c_dim=0)
    ref_g = reference_fastgan(G)
    to_big = ref_g.synthesis.to_big
    to_big.weight_orig = torch.nn.Parameter(torch.zeros(3, NGF, 5, 5))
    path = tmp_path / "bad.pkl"
    dump_projected_gan_pickle(path, {"G_ema": ref_g})
    with pytest.raises(MappingError, match=r"synthesis\.to_big\.weight_orig .*shape|shape.*"
                                           r"synthesis\.to_big\.weight_orig"):
        networks_from_pickle(load_network_pickle(path, opaque_classes=True))
    assert convert.main([str(path), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "synthesis.to_big.weight_orig" in err[0] and "[3, 4, 5, 5]" in err[0]


def test_a_feature_network_unlike_dgans_is_named_and_the_pickles_values_used(tmp_path):
    G, D = fastgan(lite=True, c_dim=0), projected_d(c_dim=0)
    ref_d = reference_discriminator(D)
    with torch.no_grad():
        ref_d.feature_network.pretrained.layer1[0][0].conv_pw.weight.add_(PERTURBATION)
    path = tmp_path / "features.pkl"
    dump_projected_gan_pickle(path, {"G_ema": reference_fastgan(G), "D": ref_d})
    with pytest.warns(UserWarning, match=r"frozen feature network differs .* 1 tensors "
                                         r"\(first: feature_network\.pretrained\.layer1\.0\.0\."
                                         r"conv_pw"):
        nets = networks_from_pickle(load_network_pickle(path, opaque_classes=True))
    loaded = dict(nets["D"].named_parameters())
    changed = [n for n, t in loaded.items() if n.startswith("feature_network.")
               and not torch.equal(t, dict(D.named_parameters())[n])]
    assert len(changed) == 1 and torch.equal(
        loaded[changed[0]], ref_d.feature_network.pretrained.layer1[0][0].conv_pw.weight)


def test_a_generator_dgan_has_no_network_for_is_named(tmp_path):
    G = fastgan(lite=True, c_dim=0)
    ref_g = reference_fastgan(G)
    ref_g.synthesis = stand_in("pg_modules.networks_fastgan", "OtherSynthesis")
    path = tmp_path / "other.pkl"
    dump_projected_gan_pickle(path, {"G_ema": ref_g})
    with pytest.raises(MappingError, match="OtherSynthesis; dgan maps .*FastganSynthesis"):
        networks_from_pickle(load_network_pickle(path, opaque_classes=True))


def test_a_child_that_is_not_a_module_is_one_line(tmp_path, capsys):
    ref_g = reference_fastgan(fastgan(lite=True, c_dim=0))
    ref_g.synthesis._modules["feat_16"] = 3  # plain data where a block should be
    path = tmp_path / "malformed.pkl"
    dump_projected_gan_pickle(path, {"G_ema": ref_g})
    assert convert.main([str(path), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "child 'synthesis.feat_16' is a int, not a module" in err[0]
    assert not (tmp_path / "out.ckpt").exists()

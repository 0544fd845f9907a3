"""``dgan.convert --to-pkl``: a dgan StyleGAN2 checkpoint written as a StyleGAN2-ADA /
Diffusion-GAN network pickle, read back by dgan's own safe reader (never by running it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan import convert, generate
from dgan.assembly.builder import build_run
from dgan.inference.loading import load_generator
from dgan.interop.export import IMAGE_DATASET_TARGET, REFERENCE_MODULE, REFERENCE_MODULE_SRC
from dgan.interop.persistence import load_network_pickle, named_modules, state_dict
from dgan.networks.stylegan2 import Discriminator

from .conftest import compose_train
from .generator_files import FASTGAN_LITE, STYLEGAN2, write_generator_checkpoint
from .test_convert import TINY_COND

CUR_NIMG = 3000
P = 0.25
SEEDS = "0-2"
# Tensors the reference names this way (noise on the layer, mapping fc<i>, blocks b<res>).
G_NAMES = ("mapping.fc0.weight", "mapping.embed.weight", "mapping.w_avg",
           "synthesis.b4.const", "synthesis.b4.conv1.noise_const",
           "synthesis.b4.conv1.noise_strength", "synthesis.b4.conv1.affine.weight",
           "synthesis.b8.conv0.resample_filter", "synthesis.b16.torgb.weight")
D_NAMES = ("b16.fromrgb.weight", "b16.conv0.weight", "b8.conv1.resample_filter",
           "mapping.embed.weight", "mapping.fc7.weight", "b4.conv.weight", "b4.fc.weight",
           "b4.out.weight")
G_CLASSES = {"Generator", "MappingNetwork", "FullyConnectedLayer", "SynthesisNetwork",
             "SynthesisBlock", "SynthesisLayer", "ToRGBLayer"}
D_CLASSES = {"Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
             "MappingNetwork", "FullyConnectedLayer", "Conv2dLayer"}


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A checkpoint of a small conditional Diffusion-StyleGAN2 (G, G_ema, D), and its module."""
    root = tmp_path_factory.mktemp("export")
    module = build_run(compose_train([*TINY_COND, "kimg=0.008"], root / "run")).module
    torch.manual_seed(2)
    with torch.no_grad():  # G_ema differs from G, and the noise maps matter
        for p in module.G_ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
        module.diffusion.p.fill_(P)
    path = root / "last.ckpt"
    torch.save({"state_dict": module.state_dict(),
                "dgan": {"cur_nimg": CUR_NIMG, "cur_step": 0, "config": module.run_config}}, path)
    return path, module


@pytest.fixture(scope="module")
def exported(run_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("pkl") / "network-snapshot.pkl"
    assert convert.main(["--to-pkl", str(run_checkpoint[0]), str(dest)]) == 0
    return dest


def _pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("seed*.png"))}


def test_export_then_convert_gives_bit_identical_images_and_logits(run_checkpoint, exported,
                                                                   tmp_path):
    ckpt, module = run_checkpoint
    back = tmp_path / "back.ckpt"
    assert convert.main([str(exported), str(back)]) == 0
    original, converted = load_generator(ckpt), load_generator(back)
    torch.manual_seed(0)
    z, c = torch.randn(4, 16), torch.eye(10)[[0, 3, 5, 9]]
    ours = original.G(z, c, noise_mode="const")
    assert torch.equal(converted.G(z, c, noise_mode="const"), ours)
    assert not torch.equal(module.G(z, c, noise_mode="const"), ours)  # G_ema, not G, came back
    state = torch.load(back, weights_only=True)
    node = dict(state["dgan"]["config"]["model"]["discriminator"])
    node.pop("_target_")
    D = Discriminator(**node).eval()
    D.load_state_dict({k[2:]: v for k, v in state["state_dict"].items() if k.startswith("D.")})
    x, t = torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 7, 12])
    assert torch.equal(D(x, c, t), module.D.eval()(x, c, t))
    assert state["dgan"]["cur_nimg"] == CUR_NIMG
    assert state["dgan"]["config"]["p"] == pytest.approx(P)


def test_exported_records_name_the_reference_modules_and_tensors(run_checkpoint, exported):
    net_pkl = load_network_pickle(exported)  # the safe reader: nothing embedded runs
    assert set(net_pkl.networks) == {"G", "D", "G_ema"}
    assert REFERENCE_MODULE == "training.networks"
    assert f"from {REFERENCE_MODULE} import *" in REFERENCE_MODULE_SRC
    digest = hashlib.sha256(REFERENCE_MODULE_SRC.encode()).hexdigest()
    for key, classes, names in (("G_ema", G_CLASSES, G_NAMES), ("G", G_CLASSES, G_NAMES),
                                ("D", D_CLASSES, D_NAMES)):
        net = net_pkl[key]
        modules = dict(named_modules(net))
        assert {m.class_name for m in modules.values()} == classes, key
        assert {m.module_src_digest for m in modules.values()} == {digest}, key
        assert {m.version for m in modules.values()} == {6}, key
        tensors = state_dict(net)
        assert set(names) <= set(tensors), (key, sorted(set(names) - set(tensors)))
        assert not any(".blocks." in n or ".noise.noise" in n or ".net." in n for n in tensors)
    g = net_pkl["G_ema"]
    assert g.init_kwargs["mapping_kwargs"]["num_layers"] == 2
    assert set(g.init_kwargs["synthesis_kwargs"]) >= {"channel_base", "channel_max"}
    assert dict(named_modules(g))["synthesis"].state["img_resolution_log2"] == 4
    assert net_pkl["D"].state["t_dim"] == 1 and net_pkl["D"].state["c_dim"] == 11
    d_mapping = dict(named_modules(net_pkl["D"]))["mapping"].state
    assert d_mapping["num_ws"] is None and d_mapping["w_avg_beta"] is None
    assert dict(named_modules(g))["mapping"].state["w_avg_beta"] == pytest.approx(0.995)
    module = run_checkpoint[1]
    assert torch.equal(state_dict(g)["mapping.w_avg"], module.G_ema.mapping.w_avg)
    assert net_pkl.progress["cur_nimg"] == CUR_NIMG
    assert net_pkl.cur_p == pytest.approx(P)
    assert "training_set_kwargs" in net_pkl.extra  # digits: None, as the reference writes it


def test_generate_reads_the_exported_pickle(tmp_path, capsys):
    ckpt = write_generator_checkpoint(STYLEGAN2, tmp_path / "g.ckpt")
    state = torch.load(ckpt, weights_only=True)
    state["dgan"]["config"]["dataset"] = {"_target_": IMAGE_DATASET_TARGET,
                                          "path": "/data/shapes.zip", "resolution": 16,
                                          "use_labels": False, "xflip": True}
    torch.save(state, ckpt)
    pkl = tmp_path / "g.pkl"
    assert convert.main(["--to-pkl", str(ckpt), str(pkl)]) == 0
    out = capsys.readouterr().out
    assert "G not in the checkpoint" in out and "D not exported" in out
    kwargs = load_network_pickle(pkl).training_set_kwargs
    assert kwargs == {"class_name": "training.dataset.ImageFolderDataset",
                      "path": "/data/shapes.zip", "resolution": 16, "use_labels": False,
                      "xflip": True}
    args = [f"seeds={SEEDS}", "grid=false"]
    assert generate.main([f"pkl={pkl}", f"outdir={tmp_path / 'a'}", *args]) == 0
    assert generate.main([f"ckpt={ckpt}", f"outdir={tmp_path / 'b'}", *args]) == 0
    a, b = _pngs(tmp_path / "a"), _pngs(tmp_path / "b")
    assert len(a) == 3 and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_generator_other_than_stylegan2_is_refused_in_one_line(tmp_path, capsys):
    ckpt = write_generator_checkpoint(FASTGAN_LITE, tmp_path / "fastgan.ckpt")
    dest = tmp_path / "fastgan.pkl"
    assert convert.main(["--to-pkl", str(ckpt), str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 300, err
    assert "FastGANGenerator" in err[0] and "only StyleGAN2" in err[0]
    assert not dest.exists()


def test_to_pkl_usage_errors(tmp_path, capsys):
    assert convert.main(["--to-pkl", str(tmp_path / "x.ckpt")]) == 2
    assert "expects a checkpoint and a destination" in capsys.readouterr().err
    assert convert.main(["--to-pkl", str(tmp_path / "x.ckpt"), str(tmp_path / "x.ckpt")]) == 2
    assert "must end in .pkl" in capsys.readouterr().err

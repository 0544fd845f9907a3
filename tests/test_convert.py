"""Network pickles in: ``dgan.convert``, ``generate pkl=``, ``evaluate pkl=`` and
``train init=``, on pickles in the torch_utils.persistence format written by the tests
(tests/network_pickles.py) from a small conditional Diffusion-StyleGAN2 of digits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from dgan import convert, evaluate, generate
from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.inference.loading import load_generator
from tests.network_pickles import dump_network_pickle

from .conftest import compose_train
from .shell_payload import ShellPayload

TINY_COND = ["experiment=digits_stylegan2_cond", "model.batch_size=4",
             "model.generator.channel_base=128", "model.generator.channel_max=16",
             "model.generator.z_dim=16", "model.generator.w_dim=16",
             "model.discriminator.cmap_dim=16", "model.discriminator.mbstd_group_size=2",
             # the reference's encoding: these nets go to and come from its pickles
             "model.discriminator.t_conditioning=raw",
             "metrics=none", "logger=none", "callbacks.samples.every_kimg=0",
             "callbacks.checkpoint.every_kimg=0", "callbacks.diagnostics=null"]
CUR_P = 0.125


def _kwargs(node) -> dict:
    kwargs = OmegaConf.to_container(node, resolve=True)
    kwargs.pop("_target_")
    return kwargs


@pytest.fixture(scope="module")
def network_pickle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A pickle of a freshly built module's G, G_ema and D, and that module."""
    root = tmp_path_factory.mktemp("pkl")
    cfg = compose_train([*TINY_COND, "kimg=0.008"], root / "source")
    module = build_run(cfg).module
    torch.manual_seed(1)
    with torch.no_grad():  # G_ema differs from G, so the test sees which one is used
        for p in module.G_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    d_kwargs = {**_kwargs(cfg.model.discriminator), "t_max": int(cfg.diffusion.t_max)}
    path = root / "network-snapshot.pkl"
    dump_network_pickle(
        path,
        {"G": (module.G, _kwargs(cfg.model.generator)),
         "G_ema": (module.G_ema, _kwargs(cfg.model.generator)),
         "D": (module.D, d_kwargs)},
        training_set_kwargs={"path": "/nonexistent/digits.zip", "use_labels": True,
                             "xflip": False, "resolution": 32},
        progress={"cur_nimg": torch.tensor(2000), "cur_p": torch.tensor([CUR_P])},
    )
    return path, module


def test_convert_writes_a_checkpoint_with_the_same_images(network_pickle, tmp_path, capsys):
    src, module = network_pickle
    dest = tmp_path / "converted.ckpt"
    assert convert.main([str(src), str(dest)]) == 0
    assert "wrote" in capsys.readouterr().out
    state = torch.load(dest, weights_only=True)  # plain data only
    config = state["dgan"]["config"]
    assert config["p"] == pytest.approx(CUR_P) and state["dgan"]["cur_nimg"] == 2000
    assert config["model"]["generator"]["c_dim"] == 10
    assert {k.split(".", 1)[0] for k in state["state_dict"]} == {"G", "G_ema", "D"}
    loaded = load_generator(dest)
    z = torch.randn(3, 16)
    c = torch.eye(10)[[3, 5, 7]]
    expected = module.G_ema(z, c, noise_mode="const")
    torch.testing.assert_close(loaded.G(z, c, noise_mode="const"), expected, atol=1e-6, rtol=0)
    # And on the fly, straight from the pickle.
    direct = load_generator(src, key="pkl")
    torch.testing.assert_close(direct.G(z, c, noise_mode="const"), expected, atol=1e-6, rtol=0)


def test_generate_pkl_equals_generate_of_the_converted_checkpoint(network_pickle, tmp_path):
    src, _ = network_pickle
    dest = tmp_path / "converted.ckpt"
    assert convert.main([str(src), str(dest)]) == 0
    args = ["seeds=0-1", "class_idx=3", "grid=false"]
    assert generate.main([f"pkl={src}", f"outdir={tmp_path / 'a'}", *args]) == 0
    assert generate.main([f"ckpt={dest}", f"outdir={tmp_path / 'b'}", *args]) == 0
    for seed in (0, 1):
        name = f"seed{seed:04d}.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)),
                              np.asarray(Image.open(tmp_path / "b" / name)))


def test_evaluate_pkl_prints_the_metric_table(network_pickle, tmp_path, capsys):
    src, _ = network_pickle
    code = evaluate.main([f"pkl={src}", "metrics=[fid_digits100_full]", "dataset=digits",
                          "dataset.use_labels=true", f"outdir={tmp_path}",
                          f"cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fid_digits100_full"))
    assert float(line.split()[1]) > 0


def test_train_init_starts_a_new_run_from_the_pickle(network_pickle, tmp_path):
    src, source_module = network_pickle
    run = build_run(compose_train([*TINY_COND, "kimg=0.008", "seed=5", f"init={src}"],
                                  tmp_path / "run"))
    module = run.module
    for net in ("G", "G_ema", "D"):
        ours, theirs = getattr(module, net).state_dict(), getattr(source_module, net).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), net
    assert module.ema_rampup is None and module.cur_nimg == 0
    run.trainer.fit(module, datamodule=run.datamodule)
    assert module.cur_step == 2


def test_init_of_another_model_is_one_line(network_pickle, tmp_path):
    src, _ = network_pickle
    cfg = compose_train([*TINY_COND, "model.generator.channel_max=32", f"init={src}"],
                        tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^init=.*: G does not fit this model \(.*shape"):
        build_run(cfg)




def test_convert_refuses_a_pickle_with_other_callables_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps({"G": ShellPayload(marker)}))
    assert convert.main([str(src), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "system" in err[0] and err[0].startswith("error: SRC=")
    assert not marker.exists() and not (tmp_path / "out.ckpt").exists()


def test_convert_usage_errors(tmp_path, capsys):
    assert convert.main([str(tmp_path / "missing.pkl"), str(tmp_path / "x.ckpt")]) == 2
    assert "no such network pickle" in capsys.readouterr().err
    assert convert.main(["only-one"]) == 2
    assert "usage: python -m dgan.convert SRC.pkl DEST.ckpt" in capsys.readouterr().err

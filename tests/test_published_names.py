"""The authors' 13 published networks by name (``pkl=diffusion-stylegan2-cifar10``...), through a
Hugging Face cache each test fills itself in the hub's layout. Nothing is downloaded: every test
runs with HF_HUB_OFFLINE=1 or with sockets refused."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from dgan import convert, generate
from dgan.assembly.builder import build_run
from dgan.interop.hub import HUB_REPO, PUBLISHED_NETWORKS, hub_filename
from tests.network_pickles import dump_network_pickle

from .conftest import compose_train
from .test_convert import TINY_COND

NAME = "diffusion-stylegan2-cifar10"
# A revision as the hub names them (40 hex digits); refs/main points at it.
REVISION = "0123456789abcdef0123456789abcdef01234567"
GENERATE = ["seeds=0-1", "class_idx=3", "grid=false"]


def _kwargs(node) -> dict:
    kwargs = OmegaConf.to_container(node, resolve=True)
    kwargs.pop("_target_")
    return kwargs


@pytest.fixture(scope="module")
def stylegan2_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Diffusion-StyleGAN2-format pickle (G, G_ema, D) of a small conditional digits run."""
    root = tmp_path_factory.mktemp("published")
    cfg = compose_train([*TINY_COND, "kimg=0.008"], root / "source")
    module = build_run(cfg).module
    d_kwargs = {**_kwargs(cfg.model.discriminator), "t_max": int(cfg.diffusion.t_max)}
    path = root / f"{NAME}.pkl"
    dump_network_pickle(path, {"G": (module.G, _kwargs(cfg.model.generator)),
                               "G_ema": (module.G_ema, _kwargs(cfg.model.generator)),
                               "D": (module.D, d_kwargs)})
    return path


def _refuse(*args, **kwargs):
    raise OSError("network access is disabled in the tests")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache under tmp_path, offline, and no socket can connect or resolve."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    return cache


def _fill(cache: Path, name: str, source: Path) -> Path:
    """Place ``source`` as the hub's ``checkpoints/<name>.pkl`` in the cache, as a download
    leaves it: models--<owner>--<repo>/refs/main and snapshots/<revision>/<file>."""
    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    dest = repo / "snapshots" / REVISION / hub_filename(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


def _error_line(capture: pytest.CaptureFixture) -> str:
    err = capture.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_the_13_names_are_the_readme_files() -> None:
    assert len(PUBLISHED_NETWORKS) == len(set(PUBLISHED_NETWORKS)) == 13
    assert {n.split("-")[1] for n in PUBLISHED_NETWORKS} == {"stylegan2", "projectedgan",
                                                             "insgen"}
    assert hub_filename(NAME) == f"checkpoints/{NAME}.pkl"


def test_generate_by_name_from_a_filled_cache_offline(stylegan2_pickle, hub_cache, tmp_path
                                                      ) -> None:
    _fill(hub_cache, NAME, stylegan2_pickle)
    assert generate.main([f"pkl={NAME}", f"outdir={tmp_path / 'by-name'}", *GENERATE]) == 0
    assert generate.main([f"pkl={stylegan2_pickle}", f"outdir={tmp_path / 'by-path'}",
                          *GENERATE]) == 0
    for seed in (0, 1):
        file = f"seed{seed:04d}.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "by-name" / file)),
                              np.asarray(Image.open(tmp_path / "by-path" / file)))


def test_convert_and_init_take_the_name(stylegan2_pickle, hub_cache, tmp_path) -> None:
    _fill(hub_cache, NAME, stylegan2_pickle)
    dest = tmp_path / "cifar10.ckpt"
    assert convert.main([NAME, str(dest)]) == 0
    assert torch.load(dest, weights_only=True)["dgan"]["config"]["converted_from"].endswith(
        hub_filename(NAME))
    module = build_run(compose_train([*TINY_COND, "kimg=0.008", f"init={NAME}"],
                                     tmp_path / "run")).module
    theirs = torch.load(dest, weights_only=True)["state_dict"]
    ours = module.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.items() if k.startswith("G_ema."))


def test_an_empty_cache_offline_stops_in_one_line(hub_cache, tmp_path, capsys) -> None:
    assert generate.main([f"pkl={NAME}", f"outdir={tmp_path}", *GENERATE]) == 2
    err = _error_line(capsys)
    for part in (f"pkl={NAME}", f"checkpoints/{NAME}.pkl of {HUB_REPO}", str(hub_cache),
                 "HF_HUB_OFFLINE is set", f"hf download {HUB_REPO} checkpoints/{NAME}.pkl",
                 f"pkl=PATH/{NAME}.pkl"):
        assert part in err, part
    assert not list(tmp_path.glob("*.png"))


def test_no_connection_stops_in_one_line(hub_cache, tmp_path, capfd,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # capfd: the library's own log lines (its retries) would reach the error stream too.
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # The library backs off between its retries (23 s in all); the sockets still refuse.
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    assert generate.main([f"pkl={NAME}", f"outdir={tmp_path}", *GENERATE]) == 2
    err = _error_line(capfd)
    assert "the hub cannot be reached" in err and f"hf download {HUB_REPO}" in err


def test_an_unknown_name_lists_the_13(hub_cache, tmp_path, capsys) -> None:
    assert generate.main(["pkl=diffusion-insgen-afhq-cat", f"outdir={tmp_path}",
                          *GENERATE]) == 2
    err = _error_line(capsys)
    assert "pkl=diffusion-insgen-afhq-cat: no such file, nor one of the 13 published" in err
    assert all(name in err for name in PUBLISHED_NETWORKS)
    # The closest names first.
    assert err.index("diffusion-insgen-afhqcat") < err.index("diffusion-stylegan2-cifar10")


def test_a_local_file_of_the_same_name_wins(stylegan2_pickle, hub_cache, tmp_path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A file (here without suffix) in the working directory is a path, not a name: the empty
    # cache is never asked.
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(stylegan2_pickle, tmp_path / NAME)
    assert convert.main([NAME, str(tmp_path / "local.ckpt")]) == 0

"""Diffusion-InsGen network pickles: D's contrastive heads, their momentum copies, D_ema and
the queues, read from a pickle the test writes in the reference's layout (``DHead`` / ``GHead``
``CLHead`` objects holding torch ``nn.Sequential`` MLPs) from a small dgan InsGen run, and
carried by ``convert`` and ``train init=``."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dgan import convert
from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.inference.loading import load_generator, read_pickle_checkpoint
from dgan.interop.insgen import (
    has_contrastive_heads,
    instance_discriminator_from_pickle,
    loss_state_from_pickle,
)
from dgan.interop.persistence import load_network_pickle
from dgan.networks.insgen import FAKE_HEAD, HEADS, REAL_HEAD
from dgan.networks.stylegan2 import Discriminator
from tests.network_pickles import EasyDict, PersistentRecord, dump_network_pickle

from .conftest import compose_train
from .shell_payload import ShellPayload
from .test_insgen import QUEUES, TINY

RUN = [*TINY, "kimg=0.008"]
# The reference's CLHead options (diffusion-insgen/train.py).
TEMPERATURE, MOMENTUM = 0.2, 0.999
REFERENCE_HEAD_KEYS = {REAL_HEAD: "DHead", FAKE_HEAD: "GHead"}
# Keys pushed into each queue before writing, so the pointer is not at its start.
PUSHED = 6


def _kwargs(node) -> dict:
    kwargs = OmegaConf.to_container(node, resolve=True)
    kwargs.pop("_target_")
    return kwargs


def _without_heads(D: torch.nn.Module, d_kwargs: dict) -> Discriminator:
    """The reference's D: dgan's InsGen D without its heads (they live in DHead / GHead)."""
    plain = Discriminator(**{k: v for k, v in d_kwargs.items() if k != "head_dim"})
    plain.load_state_dict({k: v for k, v in D.state_dict().items() if not k.startswith("heads.")})
    return plain.eval()


def _clhead(D, D_ema, queue, head: str) -> PersistentRecord:
    """A reference CLHead: the head's MLP, its momentum copy, the queue one key per column."""
    mlp = copy.deepcopy(D.heads[head].mlp)
    momentum_mlp = copy.deepcopy(D_ema.heads[head].mlp)
    size = queue.size
    state = {
        "training": False,
        "_parameters": OrderedDict(),
        "_buffers": OrderedDict(queue=queue.keys.t().contiguous().clone(),
                                queue_ptr=queue.ptr.reshape(1).clone()),
        "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict(mlp=mlp, momentum_mlp=momentum_mlp),
        "inplanes": mlp[0].in_features, "temperature": TEMPERATURE, "queue_size": size,
        "m": MOMENTUM, "_init_args": (),
        "_init_kwargs": EasyDict(inplanes=mlp[0].in_features, temperature=TEMPERATURE,
                                 queue_size=size, momentum=MOMENTUM),
    }
    return PersistentRecord("CLHead", state)


def _perturb(module: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.fixture(scope="module")
def insgen_run(tmp_path_factory: pytest.TempPathFactory):
    """A built tiny InsGen run whose D_ema, heads and queues all differ from a fresh one's."""
    root = tmp_path_factory.mktemp("insgen")
    cfg = compose_train(RUN, root / "source")
    module = build_run(cfg).module
    _perturb(module.D, 1)
    _perturb(module.loss.D_ema, 2)  # D_ema != D: the test sees which one lands where
    torch.manual_seed(3)
    for queue in module.loss.queues.values():
        queue.push(torch.nn.functional.normalize(torch.randn(PUSHED, queue.keys.shape[1]), dim=1))
    d_kwargs = {**_kwargs(cfg.model.discriminator), "t_max": int(cfg.diffusion.t_max)}
    return cfg, module, d_kwargs, root


def _write(path: Path, insgen_run, *, heads: tuple[str, ...] = HEADS, d_ema: bool = True,
           head_override: dict | None = None) -> Path:
    cfg, module, d_kwargs, _ = insgen_run
    g_kwargs = _kwargs(cfg.model.generator)
    networks = {"G": (module.G, g_kwargs), "G_ema": (module.G_ema, g_kwargs),
                "D": (_without_heads(module.D, d_kwargs), d_kwargs)}
    if d_ema:
        networks["D_ema"] = (_without_heads(module.loss.D_ema, d_kwargs), d_kwargs)
    for head in heads:
        record = _clhead(module.D, module.loss.D_ema, module.loss.queues[head], head)
        record.state.update((head_override or {}).get(head, {}))
        networks[REFERENCE_HEAD_KEYS[head]] = record
    dump_network_pickle(path, networks,
                        progress={"cur_nimg": torch.tensor(4000), "cur_p": torch.tensor([0.1])})
    return path


@pytest.fixture(scope="module")
def insgen_pickle(insgen_run) -> Path:
    return _write(insgen_run[3] / "insgen-snapshot.pkl", insgen_run)


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_same(ours: dict, theirs: dict, what: str) -> None:
    assert ours.keys() == theirs.keys(), what
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), f"{what}: {key}"


# ----------------------------------------------------------------------------- reading


def test_d_and_its_heads_equal_the_network_written(insgen_run, insgen_pickle) -> None:
    _, module, _, _ = insgen_run
    net_pkl = load_network_pickle(insgen_pickle, opaque_classes=True)
    assert has_contrastive_heads(net_pkl)
    D = instance_discriminator_from_pickle(net_pkl)
    source = module.D.eval()
    res = source.img_resolution
    torch.manual_seed(4)
    x = torch.randn(4, source.img_channels, res, res)
    c, t = torch.zeros(4, 0), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        torch.testing.assert_close(D(x, c, t), source(x, c, t), rtol=0, atol=0)
        for head in HEADS:
            torch.testing.assert_close(D.embed(x, head), source.embed(x, head), rtol=0, atol=0)
    _assert_same(_state(D), _state(source), "D")


def test_d_ema_with_the_momentum_heads_and_the_queues(insgen_run, insgen_pickle) -> None:
    _, module, _, _ = insgen_run
    state = loss_state_from_pickle(load_network_pickle(insgen_pickle, opaque_classes=True))
    d_ema = {k[len("loss.D_ema."):]: v for k, v in state.items() if k.startswith("loss.D_ema.")}
    _assert_same(d_ema, _state(module.loss.D_ema), "D_ema")
    assert not torch.equal(d_ema["heads.real.mlp.0.weight"],
                           module.D.state_dict()["heads.real.mlp.0.weight"])  # momentum copy
    for key in QUEUES:
        assert torch.equal(state[key], module.loss.state_dict()[key[len("loss."):]]), key
    assert int(state["loss.queues.real.ptr"]) == PUSHED


# ----------------------------------------------------------------------------- convert, init=


def test_convert_keeps_heads_d_ema_and_queues(insgen_run, insgen_pickle, tmp_path,
                                              capsys) -> None:
    _, module, _, _ = insgen_run
    dest = tmp_path / "insgen.ckpt"
    assert convert.main([str(insgen_pickle), str(dest)]) == 0
    assert "D+G+G_ema (InsGen: heads, D_ema, queues)" in capsys.readouterr().out
    saved = torch.load(dest, weights_only=True)
    node = saved["dgan"]["config"]["model"]["discriminator"]
    assert node["_target_"] == "dgan.networks.insgen.InstanceDiscriminator"
    assert node["head_dim"] == module.D.head_dim
    assert set(QUEUES) <= saved["state_dict"].keys()
    # generate pkl= reads the same pickle for its G_ema.
    z = torch.randn(2, module.G.z_dim)
    c = torch.zeros(2, 0)
    loaded = load_generator(insgen_pickle, key="pkl")
    with torch.no_grad():
        torch.testing.assert_close(loaded.G(z, c, noise_mode="const"),
                                   module.G_ema(z, c, noise_mode="const"), rtol=0, atol=1e-6)


def test_init_continues_insgen_from_the_pickle(insgen_run, insgen_pickle, tmp_path,
                                               capsys) -> None:
    _, source, _, _ = insgen_run
    run = build_run(compose_train([*RUN, "seed=5", f"init={insgen_pickle}"], tmp_path / "run"))
    module = run.module
    out = capsys.readouterr().out
    assert "init: G, G_ema, D, D_ema, real queue, fake queue from" in out
    _assert_same(_state(module.D), _state(source.D), "D with its heads")
    _assert_same(_state(module.loss.D_ema), _state(source.loss.D_ema), "D_ema")
    for key in QUEUES:
        assert torch.equal(module.state_dict()[key], source.state_dict()[key]), key
    # The fresh run keeps the pretrained D_ema instead of starting it as D.
    module.loss.start_run(rank=0)
    _assert_same(_state(module.loss.D_ema), _state(source.loss.D_ema), "D_ema after start")
    run.trainer.fit(module, datamodule=run.datamodule)
    assert module.cur_step == 2
    assert int(module.loss.queues[REAL_HEAD].ptr) == (PUSHED + 2 * 4) % 15


def test_init_from_a_pickle_without_heads_builds_them(insgen_run, tmp_path, capsys) -> None:
    # A snapshot of the reference's code before it saved its heads: G, D and G_ema only.
    _, source, _, _ = insgen_run
    path = _write(tmp_path / "no-heads.pkl", insgen_run, heads=(), d_ema=False)
    assert not has_contrastive_heads(load_network_pickle(path, opaque_classes=True))
    module = build_run(compose_train([*RUN, f"init={path}"], tmp_path / "run")).module
    assert "init: G, G_ema, D (heads as built) from" in capsys.readouterr().out
    ours, theirs = _state(module.D), _state(source.D)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]) != key.startswith("heads."), key
    module.loss.start_run(rank=0)  # no D_ema in the source: it starts as D
    _assert_same(_state(module.loss.D_ema), _state(module.D), "D_ema = D")


def test_a_queue_of_another_length_starts_random(insgen_run, insgen_pickle, tmp_path,
                                                 capsys) -> None:
    _, source, _, _ = insgen_run
    module = build_run(compose_train([*RUN, "model.loss.real_queue_size=7",
                                      f"init={insgen_pickle}"], tmp_path / "run")).module
    out = capsys.readouterr().out
    assert "the real queue of" in out and "starts with random keys" in out
    assert "init: G, G_ema, D, D_ema, fake queue from" in out
    assert module.loss.queues[REAL_HEAD].size == 7 and int(module.loss.queues[REAL_HEAD].ptr) == 0
    assert torch.equal(module.loss.queues[FAKE_HEAD].keys, source.loss.queues[FAKE_HEAD].keys)


# ----------------------------------------------------------------------------- refusals


def test_one_head_without_the_other_is_one_line(insgen_run, tmp_path) -> None:
    path = _write(tmp_path / "one-head.pkl", insgen_run, heads=(REAL_HEAD,))
    with pytest.raises(ConfigError, match=r"DHead but not GHead") as excinfo:
        read_pickle_checkpoint(path)
    assert "\n" not in str(excinfo.value)


def test_a_head_of_the_wrong_width_is_named(insgen_run, tmp_path) -> None:
    _, module, _, _ = insgen_run
    width = module.D.feature_channels + 1
    wrong = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, module.D.head_dim))
    path = _write(tmp_path / "wide.pkl", insgen_run,
                  head_override={FAKE_HEAD: {"_modules": OrderedDict(mlp=wrong,
                                                                     momentum_mlp=wrong)}})
    with pytest.raises(ConfigError, match=rf"shape mismatch: .*GHead\.0\.weight \(-> heads\.fake"
                       rf"\.mlp\.0\.weight\): \[{width}, {width}\] vs dgan"):
        read_pickle_checkpoint(path)




def test_a_head_naming_os_system_is_refused_and_never_run(insgen_run, tmp_path) -> None:
    marker = tmp_path / "ran"
    path = _write(tmp_path / "payload.pkl", insgen_run,
                  head_override={REAL_HEAD: {"temperature": ShellPayload(marker)}})
    with pytest.raises(ConfigError, match=r"refusing global (posix|nt|os)\.system"):
        read_pickle_checkpoint(path)
    assert not marker.exists()

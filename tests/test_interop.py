"""Reading StyleGAN2-ADA / Diffusion-GAN network pickles safely and mapping them onto dgan."""

from __future__ import annotations

import copy
import pickle
import sys
import types
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dgan.interop import (
    DISCRIMINATOR_NAME_TABLE,
    GENERATOR_NAME_TABLE,
    MappingError,
    OpaqueObject,
    PersistentObject,
    UnsafePickleError,
    config_from_pickle,
    discriminator_from_pickle,
    find_module,
    generator_from_pickle,
    load_network_pickle,
    loads_network_pickle,
    map_name,
    state_dict,
)
from dgan.networks.stylegan2 import Discriminator, Generator, preset
from tests.network_pickles import PersistentRecord, dump_network_pickle, dumps_network_pickle

# Parameter counts of the reference networks (t-conditioned D), design.md section 2.
REFERENCE_PARAMS = {"cifar": (19_947_539, 23_085_056), "stl10": (25_456_664, 28_853_248)}
PRESET_RESOLUTION = {"cifar": 32, "stl10": 64}
# The reference D's mapping network has 8 layers whatever the preset.
D_MAPPING_LAYERS = 8
BATCH = 4
# Full-width forwards are the slow part of this file: fewer images there.
FULL_WIDTH_BATCH = 2
# Raw integer timesteps, as Diffusion-GAN feeds them; a batch of n takes the first n.
TIMESTEPS = torch.tensor([999, 37, 1, 0])
ATOL = 1e-6
CUR_P = 0.375  # exactly representable in float32, as progress.cur_p is stored
# Reduced-width networks: presets divided by this, or the small nets below.
REDUCED_WIDTH_DIVISOR = 16
SMALL_WIDTH = 16
SMALL_CHANNEL_BASE = 128
SMALL_MAPPING_LAYERS = 2
SMALL_MBSTD_GROUP = 2
LABELS = 10
# Scale of the noise added to initial weights (see perturbed) and to D's input images.
PERTURBATION = 0.1
TRUNCATION_PSI = 0.5


def preset_kwargs(name: str, c_dim: int = 0, width_divisor: int = 1) -> tuple[dict, dict]:
    """dgan G and D keyword arguments of a preset (the widths divided by ``width_divisor``)."""
    res = PRESET_RESOLUTION[name]
    spec = preset(name, res)
    g = {
        "z_dim": spec["z_dim"] // width_divisor,
        "w_dim": spec["w_dim"] // width_divisor,
        "c_dim": c_dim,
        "img_resolution": res,
        "img_channels": 3,
        "channel_base": spec["channel_base"] // width_divisor,
        "channel_max": spec["channel_max"] // width_divisor,
        "num_fp16_res": spec["num_fp16_res"],
        "conv_clamp": spec["conv_clamp"],
        "mapping_layers": spec["map_layers"],
        "architecture": spec["g_architecture"],
    }
    d = {
        "c_dim": c_dim,
        "img_resolution": res,
        "img_channels": 3,
        "architecture": spec["d_architecture"],
        "channel_base": g["channel_base"],
        "channel_max": g["channel_max"],
        "num_fp16_res": g["num_fp16_res"],
        "conv_clamp": g["conv_clamp"],
        "mbstd_group_size": spec["mbstd_group"],
        "mbstd_num_channels": spec["mbstd_num_channels"],
        "t_conditioning": "raw",
        "mapping_layers": D_MAPPING_LAYERS,
    }
    return g, d


def perturbed(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``net`` with every parameter and buffer moved off its initial value (noise strengths,
    biases and w_avg start at constants that would hide a mix-up)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if "resample_filter" not in name:
                t.add_(torch.randn(t.shape, generator=gen) * PERTURBATION)
    return net.eval()


def small_kwargs(c_dim: int = 0, res: int = 8, architecture: str = "resnet") -> tuple[dict, dict]:
    """dgan G and D keyword arguments of a tiny network pair."""
    g = {
        "z_dim": SMALL_WIDTH,
        "w_dim": SMALL_WIDTH,
        "c_dim": c_dim,
        "img_resolution": res,
        "channel_base": SMALL_CHANNEL_BASE,
        "channel_max": SMALL_WIDTH,
        "mapping_layers": SMALL_MAPPING_LAYERS,
    }
    d = {
        "c_dim": c_dim,
        "img_resolution": res,
        "channel_base": SMALL_CHANNEL_BASE,
        "channel_max": SMALL_WIDTH,
        "mbstd_group_size": SMALL_MBSTD_GROUP,
        "architecture": architecture,
        "mapping_layers": SMALL_MAPPING_LAYERS,
    }
    return g, d


def small_pickle(c_dim: int = 0, **dump_kwargs: Any) -> tuple[Generator, Discriminator, bytes]:
    g_kw, d_kw = small_kwargs(c_dim)
    G = perturbed(Generator(**g_kw), seed=1)
    D = perturbed(Discriminator(**d_kw), seed=2)
    return G, D, dumps_network_pickle({"G": (G, g_kw), "D": (D, d_kw)}, **dump_kwargs)


def inputs(
    g: Generator, seed: int = 0, batch: int = BATCH
) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, g.z_dim, generator=gen)
    c = None
    if g.c_dim:
        c = torch.nn.functional.one_hot(torch.arange(batch) % g.c_dim, g.c_dim).float()
    return z, c


def assert_same_generator(
    a: Generator, b: Generator, batch: int = BATCH, truncation: bool = True
) -> torch.Tensor:
    z, c = inputs(a, batch=batch)
    with torch.no_grad():
        img = a(z, c, noise_mode="const")
        torch.testing.assert_close(b(z, c, noise_mode="const"), img, rtol=0, atol=ATOL)
        if truncation:
            # Truncation pulls towards w_avg: checks that buffer too.
            torch.testing.assert_close(
                b(z, c, truncation_psi=TRUNCATION_PSI, noise_mode="const"),
                a(z, c, truncation_psi=TRUNCATION_PSI, noise_mode="const"),
                rtol=0,
                atol=ATOL,
            )
    return img


def assert_same_discriminator(a: Discriminator, b: Discriminator, img: torch.Tensor, c) -> None:
    x = img + PERTURBATION * torch.randn(img.shape, generator=torch.Generator().manual_seed(3))
    t = TIMESTEPS[: x.shape[0]]
    with torch.no_grad():
        logits = a(x, c, t)
        torch.testing.assert_close(b(x, c, t), logits, rtol=0, atol=ATOL)
        if a.head.t_dim:
            # The logits really depend on t, so the t path was compared too.
            assert not torch.allclose(logits, a(x, c, torch.zeros_like(t)))


def param_count(obj: PersistentObject) -> int:
    return sum(t.numel() for t in state_dict(obj, buffers=False).values())


# ---------------------------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("name", ["cifar", "stl10"])
def test_full_width_preset_round_trip(name: str, tmp_path: Path):
    g_kw, d_kw = preset_kwargs(name)
    G = perturbed(Generator(**g_kw), seed=10)
    D = perturbed(Discriminator(**d_kw), seed=11)
    path = tmp_path / "network-snapshot.pkl"
    dump_network_pickle(
        path,
        {"G": (G, g_kw), "D": (D, d_kw)},
        training_set_kwargs={"resolution": g_kw["img_resolution"], "use_labels": False},
        progress={"cur_nimg": torch.LongTensor([1000]), "cur_p": torch.FloatTensor([CUR_P])},
        protocol=4 if name == "cifar" else 3,
    )
    net_pkl = load_network_pickle(path)

    # The pickle holds the reference's parameter set, not only dgan's.
    assert (param_count(net_pkl["G"]), param_count(net_pkl["D"])) == REFERENCE_PARAMS[name]
    config = config_from_pickle(net_pkl)
    assert config["presets"] == [name]
    assert config["p"] == CUR_P
    assert config["resolution"] == g_kw["img_resolution"]
    assert config["t_conditioning"] == "raw"

    G2 = generator_from_pickle(net_pkl)
    img = assert_same_generator(G, G2, batch=FULL_WIDTH_BATCH, truncation=False)
    del G, G2
    assert_same_discriminator(D, discriminator_from_pickle(net_pkl), img, None)


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_conditional_reduced_width_round_trip(protocol: int):
    g_kw, d_kw = preset_kwargs("stl10", c_dim=LABELS, width_divisor=REDUCED_WIDTH_DIVISOR)
    G = perturbed(Generator(**g_kw), seed=20)
    G_ema = perturbed(copy.deepcopy(G), seed=21)
    D = perturbed(Discriminator(**d_kw), seed=22)
    data = dumps_network_pickle(
        {"G": (G, g_kw), "D": (D, d_kw), "G_ema": (G_ema, g_kw)}, protocol=protocol
    )
    net_pkl = loads_network_pickle(data)
    assert set(net_pkl.networks) == {"G", "D", "G_ema"}
    assert config_from_pickle(net_pkl)["c_dim"] == LABELS

    # The pickle's G_ema is the default generator; G is there too.
    img = assert_same_generator(G_ema, generator_from_pickle(net_pkl))
    assert_same_generator(G, generator_from_pickle(net_pkl["G"]))
    z, c = inputs(G)
    with torch.no_grad():
        assert not torch.allclose(G(z, c, noise_mode="const"), img)
    D2 = discriminator_from_pickle(net_pkl)
    assert D2.c_dim == LABELS and D2.head.t_dim == 1
    assert_same_discriminator(D, D2, img, c)


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_architectures_and_plain_stylegan2_ada_d(architecture: str):
    # t_conditioning 'none' is written as a StyleGAN2-ADA D: no t_dim, mapping of c only.
    g_kw, d_kw = small_kwargs(c_dim=3, architecture=architecture)
    d_kw["t_conditioning"] = "none"
    G = perturbed(Generator(**g_kw), seed=30)
    D = perturbed(Discriminator(**d_kw), seed=31)
    net_pkl = loads_network_pickle(dumps_network_pickle({"G": (G, g_kw), "D": (D, d_kw)}))
    assert "t_dim" not in net_pkl["D"].state
    # Embedding of the 3 labels into cmap_dim (the 4x4 channels) features.
    assert tuple(state_dict(net_pkl["D"])["mapping.embed.weight"].shape) == (SMALL_WIDTH, 3)
    D2 = discriminator_from_pickle(net_pkl)
    assert D2.head.mode == "none"
    z, c = inputs(G)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
    assert_same_discriminator(D, D2, img, c)


def test_reference_names_and_kinds():
    """A res-8 network has exactly the tensor names of training/networks.py."""
    _, _, data = small_pickle(c_dim=2)
    net_pkl = loads_network_pickle(data)
    layer = ["weight", "bias", "affine.weight", "affine.bias"]
    noisy = [*layer, "noise_strength", "noise_const", "resample_filter"]
    g_names = {
        "mapping.w_avg",
        *(f"mapping.{fc}.{p}" for fc in ("embed", "fc0", "fc1") for p in ("weight", "bias")),
        "synthesis.b4.const",
        *(f"synthesis.b{r}.resample_filter" for r in (4, 8)),
        *(f"synthesis.b4.conv1.{p}" for p in noisy),
        *(f"synthesis.b8.{conv}.{p}" for conv in ("conv0", "conv1") for p in noisy),
        *(f"synthesis.b{r}.torgb.{p}" for r in (4, 8) for p in layer),
    }
    conv = ["weight", "bias", "resample_filter"]
    d_names = {
        "b8.resample_filter",
        *(f"b8.{m}.{p}" for m in ("fromrgb", "conv0", "conv1") for p in conv),
        "b8.skip.weight",
        "b8.skip.resample_filter",
        *(f"b4.conv.{p}" for p in conv),
        *(f"b4.{m}.{p}" for m in ("fc", "out") for p in ("weight", "bias")),
        *(f"mapping.{m}.{p}" for m in ("embed", "fc0", "fc1") for p in ("weight", "bias")),
    }
    assert set(state_dict(net_pkl["G"])) == g_names
    assert set(state_dict(net_pkl["D"])) == d_names
    # noise_const is a buffer, noise_strength a parameter, as in the reference.
    g_params = state_dict(net_pkl["G"], buffers=False)
    assert "synthesis.b8.conv0.noise_strength" in g_params
    assert "synthesis.b8.conv0.noise_const" not in g_params
    # Diffusion-GAN's D: mapping input is label (2) + t (1); its c_dim attribute says 3.
    d = net_pkl["D"]
    assert state_dict(d)["mapping.embed.weight"].shape[1] == 3
    assert (d.state["c_dim"], d.state["t_dim"], d.init_kwargs["c_dim"]) == (3, 1, 2)
    assert d.class_name == "Discriminator"
    assert find_module(d, "b4.out").class_name == "FullyConnectedLayer"
    assert find_module(net_pkl["G"], "synthesis.b8.torgb").class_name == "ToRGBLayer"


def test_name_tables():
    assert map_name("synthesis.b64.conv0.noise_const", GENERATOR_NAME_TABLE) == (
        "synthesis.blocks.b64.conv0.noise.noise_const"
    )
    assert map_name("synthesis.b64.torgb.affine.weight", GENERATOR_NAME_TABLE) == (
        "synthesis.blocks.b64.torgb.affine.weight"
    )
    assert map_name("mapping.fc7.bias", GENERATOR_NAME_TABLE) == "mapping.net.layers.7.bias"
    assert map_name("mapping.fc7.bias", DISCRIMINATOR_NAME_TABLE) == "head.mapping.layers.7.bias"
    assert map_name("b4.out.weight", DISCRIMINATOR_NAME_TABLE) == "b4.out.weight"
    assert map_name("b32.skip.weight", DISCRIMINATOR_NAME_TABLE) == "blocks.b32.skip.weight"
    assert map_name("mapping.fc0.extra", GENERATOR_NAME_TABLE) is None


# ---------------------------------------------------------------------------------------------
# Progress, diffusion state and other contents.


def test_progress_cur_p_and_diffusion_state():
    g_kw, d_kw = small_kwargs()
    G, D = Generator(**g_kw), Discriminator(**d_kw)
    diffusion_state = {
        "p": 0.25,
        "t_min": 10,
        "t_max": 1000,
        "noise_std": 0.05,
        "beta_schedule": "linear",
        "ts_dist": "priority",
        # NumPy arrays and scalars as the reference's Diffusion object holds them.
        "t_epl": np.arange(64, dtype=np.int64),
        "t_add": np.float64(990.0),
    }
    progress = {
        "cur_nimg": torch.LongTensor([123_456]),
        "cur_tick": torch.LongTensor([7]),
        "cur_p": torch.FloatTensor([CUR_P]),
        "batch_idx": torch.LongTensor([42]),
        "best_fid": 3.5,
    }
    record = PersistentRecord("Diffusion", diffusion_state)
    networks = {"G": (G, g_kw), "D": (D, d_kw), "diffusion": record}
    net_pkl = loads_network_pickle(
        dumps_network_pickle(networks, progress=progress, extra={"note": "kept"})
    )
    assert net_pkl.cur_p == CUR_P
    assert net_pkl.progress == {
        "cur_nimg": 123_456, "cur_tick": 7, "cur_p": CUR_P, "batch_idx": 42, "best_fid": 3.5,
    }  # fmt: skip
    assert net_pkl.extra == {"note": "kept"}
    state = net_pkl["diffusion"].state
    np.testing.assert_array_equal(state["t_epl"], np.arange(64))
    assert state["t_add"] == 990.0 and isinstance(state["t_add"], float)
    config = config_from_pickle(net_pkl)
    assert config["p"] == CUR_P
    assert config["diffusion"]["t_max"] == 1000 and config["diffusion"]["p"] == 0.25

    # Without progress the diffusion object's own p is the fallback.
    no_progress = loads_network_pickle(dumps_network_pickle(networks))
    assert no_progress.cur_p is None
    assert config_from_pickle(no_progress)["p"] == 0.25


# ---------------------------------------------------------------------------------------------
# Refusing code.


class _Payload:
    """Pickles as ``func(*args)``: the unpickler would call ``func``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _network_pickle_with(payload: Any) -> bytes:
    """A valid network pickle with ``payload`` deep inside G's state."""
    g_kw, d_kw = small_kwargs()
    G = Generator(**g_kw)
    G.synthesis.evil = payload  # a plain attribute: lands in the pickled __dict__
    return dumps_network_pickle({"G": (G, g_kw), "D": (Discriminator(**d_kw), d_kw)})


def _touch_code(path: Path) -> str:
    return f"open({str(path)!r}, 'w').close()"


def test_refuses_os_system(tmp_path: Path):
    import os

    marker = tmp_path / "ran"
    data = _network_pickle_with(_Payload(os.system, f"touch {marker}"))
    with pytest.raises(UnsafePickleError, match=rf"{os.system.__module__}\.system") as err:
        loads_network_pickle(data)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_refuses_eval_and_the_payload_is_live(tmp_path: Path):
    control, marker = tmp_path / "control", tmp_path / "ran"
    # The standard unpickler runs the payload ...
    pickle.loads(pickle.dumps(_Payload(eval, _touch_code(control))))
    assert control.exists()
    # ... the safe loader refuses it, and it did not run.
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        loads_network_pickle(_network_pickle_with(_Payload(eval, _touch_code(marker))))
    assert not marker.exists()


@pytest.fixture
def embedded_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> types.ModuleType:
    """A module named like the ones the reference execs from ``module_src``, whose classes write
    a marker file when constructed or restored."""
    name = f"_imported_module_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    exec(
        "import torch\n"
        "class Evil:\n"
        "    def __init__(self, path):\n"
        "        self.path = path\n"
        "        open(path, 'w').close()\n"
        "    def __reduce__(self):\n"
        "        return Evil, (self.path,)\n"
        "class Identity(torch.nn.Module):\n"
        "    def __setstate__(self, state):\n"
        "        open(state['path'], 'w').close()\n"
        "        super().__setstate__(state)\n",
        module.__dict__,
    )
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.mark.parametrize("opaque_classes", [False, True])
def test_refuses_calling_an_embedded_class(
    embedded_module: types.ModuleType, tmp_path: Path, opaque_classes: bool
):
    control, marker = tmp_path / "control", tmp_path / "ran"
    evil = embedded_module.Evil(str(control))
    control.unlink()
    pickle.loads(pickle.dumps(evil))
    assert control.exists()
    evil.path = str(marker)
    data = _network_pickle_with(evil)
    with pytest.raises(UnsafePickleError, match=rf"{embedded_module.__name__}\.Evil"):
        loads_network_pickle(data, opaque_classes=opaque_classes)
    assert not marker.exists()


def test_plain_instance_of_an_embedded_class(embedded_module: types.ModuleType, tmp_path: Path):
    """Diffusion-GAN's ``diffusion.aug = Identity()``: refused by default, inert data on request."""
    control, marker = tmp_path / "control", tmp_path / "ran"
    aug = embedded_module.Identity()
    aug.path = str(control)
    pickle.loads(pickle.dumps(aug))
    assert control.exists()
    aug.path = str(marker)
    record = PersistentRecord("Diffusion", {"p": 0.5, "aug": aug})
    data = dumps_network_pickle({"diffusion": record})
    with pytest.raises(UnsafePickleError, match=rf"{embedded_module.__name__}\.Identity"):
        loads_network_pickle(data)
    opaque = loads_network_pickle(data, opaque_classes=True)["diffusion"].state["aug"]
    assert isinstance(opaque, OpaqueObject)
    assert (type(opaque).module, type(opaque).class_name) == (embedded_module.__name__, "Identity")
    assert opaque.state["path"] == str(marker)
    assert not marker.exists()


def test_embedded_source_is_never_executed(tmp_path: Path):
    control, marker = tmp_path / "control", tmp_path / "ran"
    exec(_touch_code(control), {})
    assert control.exists()
    g_kw, d_kw = small_kwargs()
    G = Generator(**g_kw)
    data = dumps_network_pickle({"G": (G, g_kw)}, module_src=_touch_code(marker))
    net_pkl = loads_network_pickle(data)
    assert net_pkl["G"].class_name == "Generator"
    assert len(net_pkl["G"].module_src_digest) == 64
    assert not marker.exists()
    generator_from_pickle(net_pkl)
    assert not marker.exists()


def test_refuses_tensor_beyond_its_storage():
    storage = torch.arange(4.0)._typed_storage()
    rebuild = torch._utils._rebuild_tensor_v2
    too_big = _Payload(rebuild, storage, 0, (100,), (1,), False, OrderedDict())
    with pytest.raises(UnsafePickleError, match="exceeds its storage"):
        loads_network_pickle(pickle.dumps({"G": too_big}))
    fine = _Payload(rebuild, storage, 1, (3,), (1,), False, OrderedDict())
    rebuilt = loads_network_pickle(pickle.dumps({"x": fine})).extra["x"]
    assert torch.equal(rebuilt, torch.arange(1.0, 4.0))


class _Rebuilt:
    """Pickles as ``func(*args)`` followed by BUILD with ``state`` (``__setstate__``)."""

    def __init__(self, func: Any, args: tuple, state: Any) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return self.func, self.args, self.state


def test_refuses_tensor_repointed_by_setstate():
    # BUILD on a tensor calls Tensor.__setstate__, whose 4-tuple form is set_(): it would grow
    # the storage with uninitialised memory.
    storage = torch.arange(4.0)._typed_storage()
    args = (storage, 0, (4,), (1,), False, OrderedDict())
    payload = _Rebuilt(torch._utils._rebuild_tensor_v2, args, (storage, 0, (100,), (1,)))
    assert pickle.loads(pickle.dumps(payload)).shape == (100,)  # what the standard loader does
    with pytest.raises(UnsafePickleError, match="altered after it was rebuilt"):
        loads_network_pickle(pickle.dumps({"G": payload}))


def test_refuses_setting_state_on_an_admitted_function():
    # GLOBAL torch._utils._rebuild_tensor_v2; {'__defaults__': 1}; BUILD: would alter it for
    # every later load.
    data = b"ctorch._utils\n_rebuild_tensor_v2\n}(V__defaults__\nI1\nub."
    with pytest.raises(UnsafePickleError, match="refusing to set state"):
        loads_network_pickle(data)
    rebuild = torch._utils._rebuild_tensor_v2
    fine = _Payload(rebuild, torch.arange(2.0)._typed_storage(), 0, (2,), (1,), False, {})
    assert torch.equal(
        loads_network_pickle(pickle.dumps({"x": fine})).extra["x"], torch.arange(2.0)
    )


def test_refuses_a_real_torch_pickle_of_a_module():
    # torch.nn classes are code too: a plain pickled nn.Module is refused.
    with pytest.raises(UnsafePickleError, match=r"torch\.nn\.modules\.linear\.Linear"):
        loads_network_pickle(pickle.dumps({"G": torch.nn.Linear(2, 2)}))


# ---------------------------------------------------------------------------------------------
# Mapping errors.


def _tensors(obj: PersistentObject, module: str) -> tuple[dict, dict]:
    state = find_module(obj, module).state
    return state["_parameters"], state["_buffers"]


def test_shape_mismatch_names_the_tensor():
    _, _, data = small_pickle()
    net_pkl = loads_network_pickle(data)
    params, _ = _tensors(net_pkl["G"], "mapping.fc0")
    params["weight"] = torch.zeros(3, 3)
    with pytest.raises(MappingError, match=r"shape mismatch: mapping\.fc0\.weight") as err:
        generator_from_pickle(net_pkl)
    assert "\n" not in str(err.value)

    params, _ = _tensors(net_pkl["D"], "b4.out")
    params["bias"] = torch.zeros(5)
    with pytest.raises(MappingError, match=rf"b4\.out\.bias .*\[5\] vs dgan \[{SMALL_WIDTH}\]"):
        discriminator_from_pickle(net_pkl)


def test_missing_and_extra_tensors_are_named():
    _, _, data = small_pickle()
    net_pkl = loads_network_pickle(data)
    _, buffers = _tensors(net_pkl["G"], "synthesis.b8.conv0")
    del buffers["noise_const"]
    buffers["surprise"] = torch.zeros(2)
    with pytest.raises(MappingError) as err:
        generator_from_pickle(net_pkl)
    message = str(err.value)
    assert "missing in the pickle: synthesis.blocks.b8.conv0.noise.noise_const" in message
    assert "extra in the pickle: synthesis.b8.conv0.surprise" in message

    _, d_buffers = _tensors(net_pkl["D"], "b8.conv1")
    d_buffers["resample_filter"] = d_buffers["resample_filter"].flip(0) * 2
    with pytest.raises(MappingError, match=r"constant differs.*b8\.conv1\.resample_filter"):
        discriminator_from_pickle(net_pkl)


def test_options_and_init_kwargs_are_checked():
    _, _, data = small_pickle()
    net_pkl = loads_network_pickle(data)
    # Init kwargs saying half the channels cannot hold the tensors written.
    net_pkl["G"].state["_init_kwargs"]["synthesis_kwargs"]["channel_max"] = SMALL_WIDTH // 2
    with pytest.raises(MappingError, match="shape mismatch"):
        generator_from_pickle(net_pkl)
    net_pkl["G"].state["_init_kwargs"]["synthesis_kwargs"]["use_noise"] = False
    with pytest.raises(MappingError, match="use_noise=False"):
        generator_from_pickle(net_pkl)
    net_pkl["D"].state["t_dim"] = 2
    with pytest.raises(MappingError, match="t_dim"):
        discriminator_from_pickle(net_pkl)

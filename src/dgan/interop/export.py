"""Write dgan's StyleGAN2 networks as StyleGAN2-ADA / Diffusion-GAN network pickles.

The persistence format is public: a network is the call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class',
version=6, module_src=..., class_name=..., state=...)``, where ``state`` becomes the object's
``__dict__``. :func:`dump_network_pickle` emits that call for every dgan module, with the module's
``__dict__`` rearranged into the reference's layout: blocks ``b<res>`` directly under the network,
noise tensors on the synthesis layer, mapping layers ``fc<i>``, the discriminator's mapping
network as ``D.mapping``, every FIR filter a persistent buffer, and the attributes the
reference's ``forward`` methods read (``img_resolution_log2``, ``use_fp16``...). The
rearrangement works on modules, not on names, so reading such a pickle back through the name
tables of :mod:`dgan.interop.stylegan2_ada` checks those tables against an independent
construction.

:func:`export_checkpoint` writes G, D and G_ema of a dgan checkpoint this way, with
:data:`REFERENCE_MODULE_SRC` as every record's module source: it imports the classes from
``training.networks`` of the StyleGAN2-ADA / Diffusion-GAN checkout that loads the pickle, so the
file carries no code of theirs, and dgan runs none.
"""

from __future__ import annotations

import copyreg
import inspect
import io
import os
import pickle
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from dgan.core.errors import ConfigError
from dgan.interop.persistence import (
    BUFFERS,
    INIT_ARGS,
    INIT_KWARGS,
    MODULES,
    NON_PERSISTENT,
    PARAMETERS,
    PROGRESS_KEY,
    RECONSTRUCT_GLOBAL,
    TRAINING_SET_KEY,
)
from dgan.interop.stylegan2_ada import (
    REF_D_ARCHITECTURE,
    REF_G_ARCHITECTURE,
    REF_MAPPING_LAYERS,
    REF_MAPPING_LR_MULTIPLIER,
    REF_MBSTD_NUM_CHANNELS,
    REF_W_AVG_BETA,
)
from dgan.networks.stylegan2 import Discriminator, Generator

__all__ = [
    "EXPORTABLE_GENERATORS",
    "REFERENCE_MODULE_SRC",
    "EasyDict",
    "PersistentRecord",
    "dump_network_pickle",
    "dumps_network_pickle",
    "export_checkpoint",
    "reference_discriminator_kwargs",
    "reference_generator_kwargs",
]

PERSISTENCE_VERSION = 6
# Python 3.7, which the reference ran on, pickles with protocol 3 by default.
DEFAULT_PROTOCOL = 3
# The reference's loader execs this in a fresh module and looks the class names up in it: the
# star import hands it the persistent classes of the checkout that reads the pickle.
REFERENCE_MODULE = "training.networks"
REFERENCE_MODULE_SRC = (
    "# Written by dgan's export: the classes are those of StyleGAN2-ADA's / Diffusion-GAN's\n"
    f"# {REFERENCE_MODULE.replace('.', '/')}.py in the checkout that loads this pickle.\n"
    f"from {REFERENCE_MODULE} import *  # noqa: F401,F403\n"
)
EASYDICT_GLOBAL = ("dnnlib.util", "EasyDict")
# Constructor keywords of dgan's networks that only choose how they run, absent in the reference.
RUNTIME_KWARGS = ("use_reduced_precision", "fused_modconv")
# Both networks end at 4x4 (the synthesis constant, the discriminator's epilogue).
EPILOGUE_RESOLUTION = 4


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> None:
    """Placeholder pickled as ``torch_utils.persistence._reconstruct_persistent_obj``."""
    raise NotImplementedError("written into pickles only, never called")


class EasyDict(dict):
    """A dict pickled as ``dnnlib.util.EasyDict`` (the reference's init kwargs use it)."""


@dataclass
class PersistentRecord:
    """An arbitrary persistent object to write (e.g. Diffusion-GAN's ``diffusion``).

    Args:
        class_name: class name recorded in the meta dict.
        state: the ``__dict__`` to record (pickled as it is).
    """

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)


def _full_kwargs(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    full = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(kwargs)
    return full


def reference_generator_kwargs(dgan_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Reference ``Generator`` init kwargs of a dgan ``Generator(**dgan_kwargs)``.

    Written as StyleGAN2-ADA's ``train.py`` does: mapping layers and the synthesis numbers
    always, the rest only where they differ from the reference's defaults.

    Args:
        dgan_kwargs: keyword arguments the dgan generator was built with.
    """
    kw = _full_kwargs(Generator, dgan_kwargs)
    mapping = EasyDict(num_layers=kw["mapping_layers"])
    if kw["mapping_lr_multiplier"] != REF_MAPPING_LR_MULTIPLIER:
        mapping["lr_multiplier"] = kw["mapping_lr_multiplier"]
    if kw["w_avg_beta"] != REF_W_AVG_BETA:
        mapping["w_avg_beta"] = kw["w_avg_beta"]
    synthesis = EasyDict(
        channel_base=kw["channel_base"],
        channel_max=kw["channel_max"],
        num_fp16_res=kw["num_fp16_res"],
        conv_clamp=kw["conv_clamp"],
    )
    if kw["architecture"] != REF_G_ARCHITECTURE:
        synthesis["architecture"] = kw["architecture"]
    return {
        "z_dim": kw["z_dim"],
        "c_dim": kw["c_dim"],
        "w_dim": kw["w_dim"],
        "img_resolution": kw["img_resolution"],
        "img_channels": kw["img_channels"],
        "mapping_kwargs": mapping,
        "synthesis_kwargs": synthesis,
    }


def reference_discriminator_kwargs(dgan_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Reference (Diffusion-GAN) ``Discriminator`` init kwargs of a dgan discriminator.

    ``c_dim`` is the label width; Diffusion-GAN's ``t_dim`` is not an init kwarg of the
    training script (its default, 1, is used) and is written as an attribute instead.

    Args:
        dgan_kwargs: keyword arguments the dgan discriminator was built with.
    """
    kw = _full_kwargs(Discriminator, dgan_kwargs)
    mapping = EasyDict()
    if kw["mapping_layers"] != REF_MAPPING_LAYERS:
        mapping["num_layers"] = kw["mapping_layers"]
    if kw["mapping_lr_multiplier"] != REF_MAPPING_LR_MULTIPLIER:
        mapping["lr_multiplier"] = kw["mapping_lr_multiplier"]
    epilogue = EasyDict(mbstd_group_size=kw["mbstd_group_size"])
    if kw["mbstd_num_channels"] != REF_MBSTD_NUM_CHANNELS:
        epilogue["mbstd_num_channels"] = kw["mbstd_num_channels"]
    out = {
        "c_dim": kw["c_dim"],
        "img_resolution": kw["img_resolution"],
        "img_channels": kw["img_channels"],
        "architecture": kw.get("architecture", REF_D_ARCHITECTURE),
        "channel_base": kw["channel_base"],
        "channel_max": kw["channel_max"],
        "num_fp16_res": kw["num_fp16_res"],
        "conv_clamp": kw["conv_clamp"],
        "block_kwargs": EasyDict(),
        "mapping_kwargs": mapping,
        "epilogue_kwargs": epilogue,
    }
    if kw["cmap_dim"] is not None:
        out["cmap_dim"] = kw["cmap_dim"]
    return out


# ---------------------------------------------------------------------------------------------
# dgan module -> (reference class name, reference-layout state).


def _base_state(module: nn.Module) -> dict[str, Any]:
    state = dict(module.__dict__)
    state[PARAMETERS] = OrderedDict(module._parameters)
    # The reference registers every buffer as persistent (FIR filters included).
    state[BUFFERS] = OrderedDict(module._buffers)
    state[NON_PERSISTENT] = set()
    state[MODULES] = OrderedDict(module._modules)
    return state


def _plain(name: str) -> Callable[[nn.Module], tuple[str, dict[str, Any]]]:
    return lambda module: (name, _base_state(module))


def _mapping_children(mlp: Any) -> OrderedDict[str, nn.Module]:
    children: OrderedDict[str, nn.Module] = OrderedDict()
    if mlp.embed is not None:
        children["embed"] = mlp.embed
    for i, layer in enumerate(mlp.layers):
        children[f"fc{i}"] = layer
    return children


def _mapping_mlp(mlp: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(mlp)
    state[MODULES] = _mapping_children(mlp)
    state["num_layers"] = len(mlp.layers)
    # The reference's D mapping: no broadcast, no w_avg (the generator's values replace these).
    state.update(w_dim=mlp.out_dim, num_ws=None, w_avg_beta=None)
    return "MappingNetwork", state


def _g_mapping(module: Any) -> tuple[str, dict[str, Any]]:
    _, state = _mapping_mlp(module.net)
    state.update({k: v for k, v in module.__dict__.items() if not k.startswith("_")})
    state[BUFFERS] = OrderedDict(module._buffers)
    return "MappingNetwork", state


def _synthesis_network(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    state[MODULES] = OrderedDict(module.blocks.items())
    state["img_resolution_log2"] = module.img_resolution.bit_length() - 1
    return "SynthesisNetwork", state


def _synthesis_block(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    # Attributes the reference's forward reads that dgan's block keeps elsewhere.
    state["use_fp16"] = module.reduced_precision
    state["channels_last"] = False
    state["w_dim"] = module.conv1.affine.in_features
    torgb = getattr(module, "torgb", None)
    state["img_channels"] = None if torgb is None else torgb.out_channels
    return "SynthesisBlock", state


def _synthesis_layer(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    noise = state[MODULES].pop("noise")
    state["use_noise"] = noise is not None
    if noise is not None:
        state[BUFFERS]["noise_const"] = noise.noise_const
        state[PARAMETERS]["noise_strength"] = noise.noise_strength
    return "SynthesisLayer", state


def _discriminator(module: Any) -> tuple[str, dict[str, Any]]:
    head = module.head
    if head.mode not in ("raw", "none"):
        raise ValueError(f"t_conditioning={head.mode!r} has no Diffusion-GAN counterpart")
    state = _base_state(module)
    children: OrderedDict[str, nn.Module] = OrderedDict(module.blocks.items())
    if head.mapping is not None:
        children["mapping"] = head.mapping
    children["b4"] = module.b4
    state[MODULES] = children
    if head.t_dim:
        # Diffusion-GAN: the mapping network's input is label + t, and c_dim says so.
        state["t_dim"] = head.t_dim
        state["c_dim"] = module.c_dim + head.t_dim
    state["img_resolution_log2"] = module.img_resolution.bit_length() - 1
    return "Discriminator", state


def _discriminator_block(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    state["use_fp16"] = module.reduced_precision
    state["channels_last"] = False
    fromrgb = getattr(module, "fromrgb", None)
    state["img_channels"] = None if fromrgb is None else fromrgb.in_channels
    return "DiscriminatorBlock", state


def _discriminator_epilogue(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    # The reference's epilogue convolution maps in_channels (+ mbstd) to in_channels.
    state["in_channels"] = module.conv.out_channels
    state["resolution"] = EPILOGUE_RESOLUTION
    # Its output layer is 1 wide without a projection, cmap_dim wide with one.
    width = module.out.out_features
    state["cmap_dim"] = 0 if width == 1 else width
    fromrgb = getattr(module, "fromrgb", None)
    state["img_channels"] = None if fromrgb is None else fromrgb.in_channels
    return "DiscriminatorEpilogue", state


# Keyed by class name, not class: dgan's layers move between modules, their names stay.
HANDLERS: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "Generator": _plain("Generator"),
    "SynthesisNetwork": _synthesis_network,
    "SynthesisBlock": _synthesis_block,
    "SynthesisLayer": _synthesis_layer,
    "ToRGB": _plain("ToRGBLayer"),
    "MappingNetwork": _g_mapping,
    "MappingMLP": _mapping_mlp,
    "EqualLinear": _plain("FullyConnectedLayer"),
    "OutputLayer": _plain("FullyConnectedLayer"),
    "Conv2dLayer": _plain("Conv2dLayer"),
    "Discriminator": _discriminator,
    "DiscriminatorBlock": _discriminator_block,
    "DiscriminatorEpilogue": _discriminator_epilogue,
    "MinibatchStdLayer": _plain("MinibatchStdLayer"),
}


class _ReferencePickler(pickle._Pickler):
    """Pure-Python pickler (its globals can be written by name) emitting persistence calls."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(
        self,
        file: IO[bytes],
        protocol: int,
        module_src: str,
        init_kwargs: Mapping[int, dict[str, Any]],
    ) -> None:
        super().__init__(file, protocol)
        self._module_src = module_src
        self._init_kwargs = init_kwargs

    def _meta(self, class_name: str, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "class",
            "version": PERSISTENCE_VERSION,
            "module_src": self._module_src,
            "class_name": class_name,
            "state": state,
        }

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, PersistentRecord):
            return _reconstruct_persistent_obj, (self._meta(obj.class_name, dict(obj.state)),)
        if type(obj) is EasyDict:
            return copyreg.__newobj__, (EasyDict,), None, None, iter(obj.items())
        if isinstance(obj, nn.Module) and type(obj).__module__.startswith("dgan."):
            handler = HANDLERS.get(type(obj).__name__)
            if handler is None:
                raise TypeError(f"no reference layout for dgan module {type(obj).__name__}")
            class_name, state = handler(obj)
            state[INIT_ARGS] = ()
            state[INIT_KWARGS] = self._init_kwargs.get(id(obj), {})
            return _reconstruct_persistent_obj, (self._meta(class_name, state),)
        return NotImplemented

    def _write_global(self, module: str, name: str) -> None:
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))

    def save_global(self, obj: Any, name: str | None = None) -> None:
        known = {id(_reconstruct_persistent_obj): RECONSTRUCT_GLOBAL, id(EasyDict): EASYDICT_GLOBAL}
        if id(obj) in known:
            self._write_global(*known[id(obj)])
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def _save_function(self, obj: Any) -> None:
        # The base dispatch table holds the base save_global; route functions to ours.
        self.save_global(obj)

    dispatch[types.FunctionType] = _save_function


def dump_network_pickle(
    file: str | os.PathLike[str] | IO[bytes],
    networks: Mapping[str, tuple[nn.Module, Mapping[str, Any]] | PersistentRecord],
    *,
    training_set_kwargs: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    module_src: str = REFERENCE_MODULE_SRC,
    protocol: int = DEFAULT_PROTOCOL,
) -> None:
    """Write dgan networks as a StyleGAN2-ADA / Diffusion-GAN network pickle.

    Args:
        file: path to write, or a binary file object open for writing.
        networks: key (``G``, ``D``, ``G_ema``...) -> (dgan network, the keyword arguments it
            was built with), or a :class:`PersistentRecord` for other persistent objects.
        training_set_kwargs: written under ``training_set_kwargs`` when given.
        progress: written under ``progress`` when given (e.g. ``cur_p`` as a 1-element tensor).
        extra: further top-level keys, pickled as they are.
        module_src: the module source recorded in every meta dict (never run by dgan).
        protocol: pickle protocol (2 to 5).
    """
    data: dict[str, Any] = {}
    if training_set_kwargs is not None:
        data[TRAINING_SET_KEY] = dict(training_set_kwargs)
    init_kwargs: dict[int, dict[str, Any]] = {}
    for key, value in networks.items():
        if isinstance(value, PersistentRecord):
            data[key] = value
            continue
        module, kwargs = value
        kwargs = {k: v for k, v in kwargs.items() if k not in RUNTIME_KWARGS}
        if isinstance(module, Generator):
            init_kwargs[id(module)] = reference_generator_kwargs(kwargs)
        elif isinstance(module, Discriminator):
            init_kwargs[id(module)] = reference_discriminator_kwargs(kwargs)
        else:
            raise TypeError(f"{key}: expected a dgan Generator or Discriminator")
        data[key] = module
    if progress is not None:
        data[PROGRESS_KEY] = dict(progress)
    data.update(extra or {})
    if hasattr(file, "write"):
        _ReferencePickler(file, protocol, module_src, init_kwargs).dump(data)  # type: ignore[arg-type]
        return
    with open(file, "wb") as f:
        _ReferencePickler(f, protocol, module_src, init_kwargs).dump(data)


def dumps_network_pickle(
    networks: Mapping[str, tuple[nn.Module, Mapping[str, Any]] | PersistentRecord],
    **kwargs: Any,
) -> bytes:
    """:func:`dump_network_pickle` into bytes.

    Args:
        networks: as for :func:`dump_network_pickle`.
        **kwargs: the keyword arguments of :func:`dump_network_pickle`.
    """
    buf = io.BytesIO()
    dump_network_pickle(buf, networks, **kwargs)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# A dgan checkpoint -> a network pickle.

# What the format holds: dgan's StyleGAN2 networks (the stylegan2_* models; not the MLP,
# FastGAN or Projected GAN discriminators).
EXPORTABLE_GENERATORS = ("dgan.networks.stylegan2.Generator",)
EXPORTABLE_T_CONDITIONING = ("raw", "none")
GENERATOR_EXPORT_KEYS = ("G", "G_ema")
DISCRIMINATOR_EXPORT_KEY = "D"
IMAGE_DATASET_TARGET = "dgan.data.images.ImageDataset"
REFERENCE_DATASET_CLASS = "training.dataset.ImageFolderDataset"
# ImageDataset keys the reference's ImageFolderDataset takes under the same names.
DATASET_EXPORT_KEYS = ("path", "resolution", "use_labels", "xflip", "max_size")
DIFFUSION_P_KEY = "diffusion.p"


def _node_class(node: Any, where: str) -> type | None:
    from hydra.utils import get_class

    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        return None
    try:
        return get_class(node["_target_"])
    except Exception as err:  # noqa: BLE001 - an unimportable target: say which
        raise ConfigError(f"{where}: _target_ {node['_target_']!r} cannot be imported") from err


def _kwargs(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "_target_"}


def _training_set_kwargs(dataset: Any) -> dict[str, Any] | None:
    # The reference's convention for a dataset it cannot rebuild (dgan's digits, toy sets):
    # None, and its tools then ask for --data.
    if not isinstance(dataset, dict) or dataset.get("_target_") != IMAGE_DATASET_TARGET:
        return None
    kwargs = {"class_name": REFERENCE_DATASET_CLASS}
    kwargs.update({k: dataset[k] for k in DATASET_EXPORT_KEYS if k in dataset})
    return kwargs


def export_checkpoint(
    ckpt: str | os.PathLike[str], dest: str | os.PathLike[str], key: str = "CKPT"
) -> tuple[Path, list[str]]:
    """Write G, D and G_ema of a dgan StyleGAN2 checkpoint as a StyleGAN2-ADA network pickle.

    Returns the written path and one line per note (a network left out, and why).

    Args:
        ckpt: a ``.ckpt`` written by ``dgan.train`` (or ``dgan.convert``).
        dest: the ``.pkl`` to write (atomically).
        key: the argument name used in error messages.

    Raises:
        ConfigError: not a dgan checkpoint, or its generator is not dgan's StyleGAN2 (one line
            naming the generator and what can be exported).
    """
    from dgan.config.timestep_input import discriminator_t_settings
    from dgan.files.atomic import atomic_write
    from dgan.files.checkpoints import load_prefixed, read_checkpoint

    where = f"{key}={ckpt}"
    state = read_checkpoint(ckpt, key)
    config = state["dgan"]["config"]
    model = config.get("model") or {}
    g_node = model.get("generator")
    if _node_class(g_node, f"{where}: model.generator") is not Generator:
        target = g_node.get("_target_") if isinstance(g_node, dict) else None
        raise ConfigError(
            f"{where}: the generator is {target or 'missing'}; only StyleGAN2 runs "
            f"({', '.join(EXPORTABLE_GENERATORS)}, the *_stylegan2 experiments) can be exported")
    weights = state["state_dict"]
    networks: dict[str, tuple[nn.Module, Mapping[str, Any]]] = {}
    notes: list[str] = []
    for name in GENERATOR_EXPORT_KEYS:
        net = Generator(**_kwargs(g_node))
        if load_prefixed(net, weights, f"{name}.", "model.generator", where):
            networks[name] = (net.eval(), _kwargs(g_node))
    if "G_ema" not in networks:
        raise ConfigError(f"{where}: the checkpoint holds no G_ema weights to export")
    if "G" not in networks:
        notes.append("G not in the checkpoint: the pickle's G is a copy of G_ema")
        networks["G"] = networks["G_ema"]
    d_node = model.get("discriminator")
    diffusion = config.get("diffusion")
    t_max = diffusion.get("t_max") if isinstance(diffusion, dict) else None
    d_kwargs = (_kwargs({**d_node, **discriminator_t_settings(d_node, t_max)})
                if isinstance(d_node, dict) else {})
    d_mode = d_kwargs.get("t_conditioning", "raw")
    if not isinstance(d_node, dict):
        notes.append("D not exported: the checkpoint's config has no discriminator")
    elif _node_class(d_node, f"{where}: model.discriminator") is not Discriminator:
        notes.append(f"D not exported: {d_node.get('_target_')} has no StyleGAN2-ADA counterpart")
    elif d_mode not in EXPORTABLE_T_CONDITIONING:
        notes.append(f"D not exported: t_conditioning={d_mode} has no Diffusion-GAN counterpart "
                     f"(exportable: {', '.join(EXPORTABLE_T_CONDITIONING)})")
    else:
        D = Discriminator(**d_kwargs)
        if load_prefixed(D, weights, f"{DISCRIMINATOR_EXPORT_KEY}.", "model.discriminator",
                         where):
            networks[DISCRIMINATOR_EXPORT_KEY] = (D.eval(), d_kwargs)
        else:
            notes.append("D not in the checkpoint: the pickle has G and G_ema only")
    progress: dict[str, Any] = {"cur_nimg": torch.tensor(int(state["dgan"].get("cur_nimg", 0)))}
    if DIFFUSION_P_KEY in weights:
        progress["cur_p"] = weights[DIFFUSION_P_KEY].detach().reshape(1).float().clone()
    ordered = {k: networks[k] for k in ("G", "D", "G_ema") if k in networks}
    dataset = _training_set_kwargs(config.get("dataset"))
    # The reference writes the key even when it has no dataset options (None).
    extra = {TRAINING_SET_KEY: None} if dataset is None else None
    path = atomic_write(dest, lambda f: dump_network_pickle(
        f, ordered, training_set_kwargs=dataset, progress=progress, extra=extra))
    return path, notes

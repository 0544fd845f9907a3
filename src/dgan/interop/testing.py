"""Write dgan networks as StyleGAN2-ADA-style network pickles, to test the safe reader.

The persistence format is public: a network is the call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class',
version=6, module_src=..., class_name=..., state=...)``. :func:`dump_network_pickle` emits that
call for every dgan module, with the module's ``__dict__`` rearranged into the reference's
layout: blocks ``b<res>`` directly under the network, noise tensors on the synthesis layer,
mapping layers ``fc<i>``, the discriminator's mapping network as ``D.mapping``, and every FIR
filter a persistent buffer, as in ``training/networks.py``. The rearrangement works on modules,
not on names, so reading such a pickle back through the name tables of
:mod:`dgan.interop.stylegan2_ada` checks those tables against an independent construction.

The embedded ``module_src`` is a placeholder (or whatever the caller passes, e.g. a payload
that must never run): these pickles are for dgan's reader, the reference cannot load them.
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
from typing import IO, Any

from torch import nn

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
    "DEFAULT_MODULE_SRC",
    "EasyDict",
    "PersistentRecord",
    "dump_network_pickle",
    "dumps_network_pickle",
    "reference_discriminator_kwargs",
    "reference_generator_kwargs",
]

PERSISTENCE_VERSION = 6
# Python 3.7, which the reference ran on, pickles with protocol 3 by default.
DEFAULT_PROTOCOL = 3
DEFAULT_MODULE_SRC = "# training/networks.py of the reference: not embedded by dgan's writer\n"
EASYDICT_GLOBAL = ("dnnlib.util", "EasyDict")
# Constructor keywords of dgan's networks that only choose how they run, absent in the reference.
RUNTIME_KWARGS = ("use_reduced_precision", "fused_modconv")


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
    return "MappingNetwork", state


def _g_mapping(module: Any) -> tuple[str, dict[str, Any]]:
    _, state = _mapping_mlp(module.net)
    state.update({k: v for k, v in module.__dict__.items() if not k.startswith("_")})
    state[BUFFERS] = OrderedDict(module._buffers)
    return "MappingNetwork", state


def _synthesis_network(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    state[MODULES] = OrderedDict(module.blocks.items())
    return "SynthesisNetwork", state


def _synthesis_block(module: Any) -> tuple[str, dict[str, Any]]:
    state = _base_state(module)
    state["use_fp16"] = module.reduced_precision
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
    return "Discriminator", state


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
    "DiscriminatorBlock": _plain("DiscriminatorBlock"),
    "DiscriminatorEpilogue": _plain("DiscriminatorEpilogue"),
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
    module_src: str = DEFAULT_MODULE_SRC,
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

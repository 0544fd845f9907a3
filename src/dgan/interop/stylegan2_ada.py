"""Map StyleGAN2-ADA / Diffusion-GAN networks read from a pickle onto dgan's StyleGAN2.

The reference (``training/networks.py`` of StyleGAN2-ADA, extended by Diffusion-GAN) and dgan
compute the same functions with the same tensors, arranged differently: the reference names
blocks ``b<res>`` directly under the network, keeps a layer's noise on the layer itself and
numbers mapping layers ``fc<i>``; dgan groups blocks in ``blocks``, gives noise its own module
and keeps mapping layers in a list. :data:`GENERATOR_NAME_TABLE` and
:data:`DISCRIMINATOR_NAME_TABLE` spell out the correspondence; the loaders build the dgan network
from the pickle's constructor arguments, rename every tensor through the table, check that the
two sets of names and every shape agree and copy the values.

Diffusion-GAN's discriminator concatenates the timestep t (``t_dim`` = 1 features) to the class
label before its mapping network; dgan's ``t_conditioning='raw'`` does the same, so a pickled
Diffusion-GAN D becomes a dgan D with raw t conditioning, and a StyleGAN2-ADA D (no t) one with
``t_conditioning='none'``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from dgan.interop.persistence import NetworkPickle, PersistentObject, init_kwargs, state_dict
from dgan.networks.stylegan2 import PRESETS, Discriminator, Generator, preset

__all__ = [
    "DISCRIMINATOR_NAME_TABLE",
    "GENERATOR_NAME_TABLE",
    "MappingError",
    "config_from_pickle",
    "discriminator_from_pickle",
    "discriminator_kwargs_from_pickle",
    "generator_from_pickle",
    "generator_kwargs_from_pickle",
    "load_tensors",
    "map_name",
]

# Reference name (full match) -> dgan name; the first matching row wins.
GENERATOR_NAME_TABLE: tuple[tuple[str, str], ...] = (
    (
        r"synthesis\.b(\d+)\.(conv[01])\.noise_(const|strength)",
        r"synthesis.blocks.b\1.\2.noise.noise_\3",
    ),
    (r"synthesis\.b(\d+)\.(.+)", r"synthesis.blocks.b\1.\2"),
    (r"mapping\.embed\.(weight|bias)", r"mapping.net.embed.\1"),
    (r"mapping\.fc(\d+)\.(weight|bias)", r"mapping.net.layers.\1.\2"),
    (r"mapping\.w_avg", r"mapping.w_avg"),
)
DISCRIMINATOR_NAME_TABLE: tuple[tuple[str, str], ...] = (
    (r"b4\.(.+)", r"b4.\1"),
    (r"b(\d+)\.(.+)", r"blocks.b\1.\2"),
    (r"mapping\.embed\.(weight|bias)", r"head.mapping.embed.\1"),
    (r"mapping\.fc(\d+)\.(weight|bias)", r"head.mapping.layers.\1.\2"),
)

# Defaults of the reference constructors, used where the pickle's init kwargs omit a value
# (they differ from dgan's: the reference defaults to fp32 everywhere and no clamping).
REF_CHANNEL_BASE = 32768
REF_CHANNEL_MAX = 512
REF_NUM_FP16_RES = 0
REF_CONV_CLAMP = None
REF_MAPPING_LAYERS = 8
REF_MAPPING_LR_MULTIPLIER = 0.01
REF_W_AVG_BETA = 0.995
REF_G_ARCHITECTURE = "skip"
REF_D_ARCHITECTURE = "resnet"
REF_MBSTD_GROUP_SIZE = 4
REF_MBSTD_NUM_CHANNELS = 1
REF_ACTIVATION = "lrelu"
REF_RESAMPLE_FILTER = [1, 3, 3, 1]
# Diffusion-GAN feeds t as one raw feature; dgan's matching encoding.
RAW_T_DIM = 1
T_CONDITIONING = {0: "none", RAW_T_DIM: "raw"}
# Keys whose values only change memory layout or training, not what the network computes.
LAYOUT_KEYS = frozenset({"channels_last", "fp16_channels_last"})
TRAINING_ONLY_KEYS = frozenset({"freeze_layers"})
# Network pickle keys, in the order a generator is looked for.
GENERATOR_KEYS = ("G_ema", "G")
DISCRIMINATOR_KEY = "D"
DIFFUSION_KEYS = ("diffusion", "augment_pipe")
# Diffusion attributes of Diffusion-GAN's Diffusion object that dgan's config also has.
DIFFUSION_ATTRS = (
    "p", "beta_schedule", "beta_start", "beta_end", "t_min", "t_max", "noise_std", "ts_dist",
    "aug_type", "ada_maxp",
)  # fmt: skip
# Network numbers a preset fixes (dgan preset key, source in the network config).
PRESET_NETWORK_KEYS = ("channel_base", "map_layers", "mbstd_group", "d_architecture")


class MappingError(ValueError):
    """The pickled network does not map onto dgan's (names, shapes or options differ)."""


def map_name(name: str, table: Iterable[tuple[str, str]]) -> str | None:
    """dgan name of the reference tensor ``name`` under ``table`` (None: no row matches).

    Args:
        name: dotted reference name, e.g. ``synthesis.b8.conv0.noise_const``.
        table: (regular expression, replacement) rows; the first full match wins.
    """
    for pattern, replacement in table:
        match = re.fullmatch(pattern, name)
        if match is not None:
            return match.expand(replacement)
    return None


def _check_options(where: str, kwargs: Mapping[str, Any], supported: Mapping[str, Any]) -> None:
    # ``supported`` maps each key dgan can honour to the only value it supports (None: any).
    bad = []
    for key, value in kwargs.items():
        if key in LAYOUT_KEYS or key in TRAINING_ONLY_KEYS:
            continue
        if key not in supported:
            bad.append(f"{key}={value!r}")
        elif supported[key] is not None and value is not None and value != supported[key]:
            bad.append(f"{key}={value!r} (dgan supports {supported[key]!r})")
    if bad:
        raise MappingError(f"{where}: options dgan's StyleGAN2 does not have: {', '.join(bad)}")


def _require(kwargs: Mapping[str, Any], keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in kwargs]
    if missing:
        raise MappingError(f"{what} init kwargs lack {', '.join(missing)}")


def _persistent(obj: Any, keys: Iterable[str], what: str) -> PersistentObject:
    if isinstance(obj, NetworkPickle):
        for key in keys:
            if key in obj.networks:
                return obj.networks[key]
        raise MappingError(f"the network pickle has no {what} (looked for {', '.join(keys)})")
    if not isinstance(obj, PersistentObject):
        raise TypeError(f"expected a PersistentObject or NetworkPickle, got {type(obj).__name__}")
    return obj


def generator_kwargs_from_pickle(obj: PersistentObject | NetworkPickle) -> dict[str, Any]:
    """dgan ``Generator`` keyword arguments of a pickled reference generator.

    Args:
        obj: the generator read from a pickle, or the pickle (``G_ema``, else ``G``).
    """
    g = _persistent(obj, GENERATOR_KEYS, "generator")
    kw = init_kwargs(g)
    _require(kw, ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"), "generator")
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    synthesis = dict(kw.pop("synthesis_kwargs", None) or {})
    _check_options(
        "generator",
        kw,
        dict.fromkeys(("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")),
    )
    _check_options(
        "generator mapping_kwargs",
        mapping,
        {
            "num_layers": None,
            "lr_multiplier": None,
            "w_avg_beta": None,
            "activation": REF_ACTIVATION,
            "embed_features": kw["w_dim"],
            "layer_features": kw["w_dim"],
        },
    )
    if mapping.get("w_avg_beta", REF_W_AVG_BETA) is None:
        raise MappingError("generator mapping_kwargs: w_avg_beta=None (no w_avg) is not supported")
    _check_options(
        "generator synthesis_kwargs",
        synthesis,
        {
            "channel_base": None,
            "channel_max": None,
            "num_fp16_res": None,
            "conv_clamp": None,
            "architecture": None,
            "resample_filter": REF_RESAMPLE_FILTER,
            "use_noise": True,
            "activation": REF_ACTIVATION,
            "kernel_size": 3,
        },
    )
    return {
        "z_dim": kw["z_dim"],
        "c_dim": kw["c_dim"],
        "w_dim": kw["w_dim"],
        "img_resolution": kw["img_resolution"],
        "img_channels": kw["img_channels"],
        "channel_base": synthesis.get("channel_base", REF_CHANNEL_BASE),
        "channel_max": synthesis.get("channel_max", REF_CHANNEL_MAX),
        "num_fp16_res": synthesis.get("num_fp16_res", REF_NUM_FP16_RES),
        "conv_clamp": synthesis.get("conv_clamp", REF_CONV_CLAMP),
        "mapping_layers": mapping.get("num_layers", REF_MAPPING_LAYERS),
        "mapping_lr_multiplier": mapping.get("lr_multiplier", REF_MAPPING_LR_MULTIPLIER),
        "w_avg_beta": mapping.get("w_avg_beta", REF_W_AVG_BETA),
        "architecture": synthesis.get("architecture", REF_G_ARCHITECTURE),
    }


def _t_dim(d: PersistentObject, kw: Mapping[str, Any]) -> int:
    # Diffusion-GAN's D stores t_dim as an attribute and its c_dim attribute as label + t
    # widths; the init kwargs hold the label width only. A StyleGAN2-ADA D has neither.
    t_dim = d.state.get("t_dim", kw.get("t_dim", 0))
    total = d.state.get("c_dim")
    if total is not None and total != kw["c_dim"] + t_dim:
        raise MappingError(
            f"discriminator c_dim attribute {total} != label c_dim {kw['c_dim']} + t_dim {t_dim}"
        )
    if t_dim not in T_CONDITIONING:
        raise MappingError(f"discriminator t_dim={t_dim}: dgan reads t as one raw feature only")
    return t_dim


def discriminator_kwargs_from_pickle(obj: PersistentObject | NetworkPickle) -> dict[str, Any]:
    """dgan ``Discriminator`` keyword arguments of a pickled reference discriminator.

    Args:
        obj: the discriminator read from a pickle, or the pickle (its ``D``).
    """
    d = _persistent(obj, (DISCRIMINATOR_KEY,), "discriminator")
    kw = init_kwargs(d)
    _require(kw, ("c_dim", "img_resolution", "img_channels"), "discriminator")
    t_dim = _t_dim(d, kw)
    block = dict(kw.pop("block_kwargs", None) or {})
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    epilogue = dict(kw.pop("epilogue_kwargs", None) or {})
    _check_options(
        "discriminator",
        kw,
        dict.fromkeys(
            (
                "c_dim", "img_resolution", "img_channels", "t_dim", "architecture",
                "channel_base", "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim",
            )
        ),
    )  # fmt: skip
    _check_options(
        "discriminator block_kwargs",
        block,
        {"activation": REF_ACTIVATION, "resample_filter": REF_RESAMPLE_FILTER},
    )
    cmap_dim = kw.get("cmap_dim")
    _check_options(
        "discriminator mapping_kwargs",
        mapping,
        {
            "num_layers": None,
            "lr_multiplier": None,
            "activation": REF_ACTIVATION,
            "embed_features": cmap_dim,
            "layer_features": cmap_dim,
        },
    )
    _check_options(
        "discriminator epilogue_kwargs",
        epilogue,
        {"mbstd_group_size": None, "mbstd_num_channels": None, "activation": REF_ACTIVATION},
    )
    return {
        "c_dim": kw["c_dim"],
        "img_resolution": kw["img_resolution"],
        "img_channels": kw["img_channels"],
        "architecture": kw.get("architecture", REF_D_ARCHITECTURE),
        "channel_base": kw.get("channel_base", REF_CHANNEL_BASE),
        "channel_max": kw.get("channel_max", REF_CHANNEL_MAX),
        "num_fp16_res": kw.get("num_fp16_res", REF_NUM_FP16_RES),
        "conv_clamp": kw.get("conv_clamp", REF_CONV_CLAMP),
        "mbstd_group_size": epilogue.get("mbstd_group_size", REF_MBSTD_GROUP_SIZE),
        "mbstd_num_channels": epilogue.get("mbstd_num_channels", REF_MBSTD_NUM_CHANNELS),
        "cmap_dim": cmap_dim,
        "t_conditioning": T_CONDITIONING[t_dim],
        "mapping_layers": mapping.get("num_layers", REF_MAPPING_LAYERS),
        "mapping_lr_multiplier": mapping.get("lr_multiplier", REF_MAPPING_LR_MULTIPLIER),
    }


def _format_names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "-"


def check_mapping(
    net: nn.Module,
    *,
    missing: Iterable[str] = (),
    extra: Iterable[str] = (),
    unmapped: Iterable[str] = (),
    shape_errors: Iterable[str] = (),
    constant_errors: Iterable[str] = (),
) -> None:
    """Raise one :class:`MappingError` line listing every problem of a name mapping, if any.

    Args:
        net: the dgan network being filled (named in the message).
        missing: dgan tensors the pickle does not provide.
        extra: pickle tensors with no room in ``net`` (``ref (-> dgan)``).
        unmapped: pickle tensors no mapping row names.
        shape_errors: one description per misshapen tensor.
        constant_errors: constants whose values differ from dgan's.
    """
    parts = [f"{label}: {text}" for label, text in (
        ("missing in the pickle", _format_names(missing)),
        ("extra in the pickle", _format_names(extra)),
        ("no dgan name for", _format_names(unmapped)),
        ("shape mismatch", "; ".join(sorted(shape_errors))),
        ("constant differs from dgan's", _format_names(constant_errors)),
    ) if text not in ("", "-")]
    if parts:
        raise MappingError(f"{type(net).__name__}: " + " | ".join(parts))


def load_tensors(
    net: nn.Module, source: Mapping[str, torch.Tensor], table: Iterable[tuple[str, str]]
) -> None:
    """Copy reference-named tensors into ``net`` through ``table``, checking names and shapes.

    ``net``'s non-persistent buffers (the FIR filters, constants in dgan) need not be in
    ``source``; when they are, their values must equal dgan's.

    Args:
        net: the dgan network to fill (its parameters and buffers are overwritten in place).
        source: reference name -> tensor, e.g. :func:`~dgan.interop.persistence.state_dict`.
        table: reference -> dgan name rows (:data:`GENERATOR_NAME_TABLE`...).

    Raises:
        MappingError: a tensor is missing, extra, unmapped, of the wrong shape, or a constant
            differs; the message names every such tensor.
    """
    table = tuple(table)
    targets: dict[str, torch.Tensor] = dict(net.named_parameters())
    targets.update(net.named_buffers())
    persistent = set(net.state_dict())
    mapped: dict[str, torch.Tensor] = {}
    seen: dict[str, str] = {}  # dgan name -> the reference name that claimed it
    unmapped, extra, shape_errors, constant_errors = [], [], [], []
    for ref_name, tensor in source.items():
        name = map_name(ref_name, table)
        if name is None:
            unmapped.append(ref_name)
            continue
        if name not in targets:
            extra.append(f"{ref_name} (-> {name})")
            continue
        if name in seen:
            extra.append(f"{ref_name} (-> {name}, already given by {seen[name]})")
            continue
        seen[name] = ref_name
        target = targets[name]
        if not isinstance(tensor, torch.Tensor):
            shape_errors.append(f"{ref_name}: a {type(tensor).__name__}, not a tensor")
        elif tuple(tensor.shape) != tuple(target.shape):
            shape_errors.append(
                f"{ref_name} (-> {name}): {list(tensor.shape)} vs dgan {list(target.shape)}"
            )
        elif name not in persistent:
            if not torch.equal(tensor.to(target.dtype), target.cpu()):
                constant_errors.append(f"{ref_name} (-> {name})")
        else:
            mapped[name] = tensor
    check_mapping(net, missing=persistent - set(seen), extra=extra, unmapped=unmapped,
                  shape_errors=shape_errors, constant_errors=constant_errors)
    with torch.no_grad():
        for name, tensor in mapped.items():
            targets[name].copy_(tensor.to(targets[name].dtype))


def generator_from_pickle(obj: PersistentObject | NetworkPickle) -> Generator:
    """dgan ``Generator`` with the weights of a pickled reference generator (eval mode).

    Args:
        obj: the generator read from a pickle, or the pickle (``G_ema``, else ``G``).

    Raises:
        MappingError: the options or tensors do not map onto dgan's generator.
    """
    g = _persistent(obj, GENERATOR_KEYS, "generator")
    net = Generator(**generator_kwargs_from_pickle(g))
    load_tensors(net, state_dict(g), GENERATOR_NAME_TABLE)
    return net.eval()


def discriminator_from_pickle(obj: PersistentObject | NetworkPickle) -> Discriminator:
    """dgan ``Discriminator`` with the weights of a pickled reference discriminator (eval mode).

    Args:
        obj: the discriminator read from a pickle, or the pickle (its ``D``).

    Raises:
        MappingError: the options or tensors do not map onto dgan's discriminator.
    """
    d = _persistent(obj, (DISCRIMINATOR_KEY,), "discriminator")
    net = Discriminator(**discriminator_kwargs_from_pickle(d))
    load_tensors(net, state_dict(d), DISCRIMINATOR_NAME_TABLE)
    return net.eval()


def _matching_presets(g: Mapping[str, Any], d: Mapping[str, Any] | None) -> list[str]:
    found = {
        "channel_base": g["channel_base"],
        "map_layers": g["mapping_layers"],
        "mbstd_group": None if d is None else d["mbstd_group_size"],
        "d_architecture": None if d is None else d["architecture"],
    }
    common = {
        "z_dim": g["z_dim"],
        "w_dim": g["w_dim"],
        "channel_max": g["channel_max"],
        "num_fp16_res": g["num_fp16_res"],
        "conv_clamp": g["conv_clamp"],
        "g_architecture": g["architecture"],
    }
    names = []
    for name in PRESETS:
        try:
            spec = preset(name, g["img_resolution"])
        except ValueError:  # a resolution no preset is defined for
            return []
        if any(spec[k] != v for k, v in common.items()):
            continue
        if all(found[k] is None or spec[k] == found[k] for k in PRESET_NETWORK_KEYS):
            names.append(name)
    return names


def config_from_pickle(net_pkl: NetworkPickle) -> dict[str, Any]:
    """dgan model configuration values of a network pickle.

    Returns a dict with ``generator`` and ``discriminator`` (dgan keyword arguments; the latter
    None when the pickle has no ``D``), the preset numbers (``fmaps``, ``channel_base``,
    ``map_layers``, ``mbstd_group``, ``d_architecture``, ``g_architecture``), ``resolution``,
    ``img_channels``, ``c_dim``, ``presets`` (dgan presets whose network numbers match), ``p``
    (``progress.cur_p``, else the diffusion object's ``p``), ``diffusion`` (the Diffusion-GAN
    diffusion options found, or None) and ``training_set_kwargs``.

    Args:
        net_pkl: the pickle read by :func:`~dgan.interop.persistence.load_network_pickle`.

    Raises:
        MappingError: the pickle has no generator, or its options do not map onto dgan's.
    """
    g = generator_kwargs_from_pickle(net_pkl)
    d = discriminator_kwargs_from_pickle(net_pkl) if DISCRIMINATOR_KEY in net_pkl.networks else None
    diffusion = None
    for key in DIFFUSION_KEYS:
        if key in net_pkl.networks:
            state = net_pkl.networks[key].state
            diffusion = {a: state[a] for a in DIFFUSION_ATTRS if a in state}
            break
    p = net_pkl.cur_p
    if p is None and diffusion is not None and "p" in diffusion:
        p = float(diffusion["p"])
    return {
        "generator": g,
        "discriminator": d,
        "resolution": g["img_resolution"],
        "img_channels": g["img_channels"],
        "c_dim": g["c_dim"],
        "z_dim": g["z_dim"],
        "w_dim": g["w_dim"],
        "fmaps": g["channel_base"] / REF_CHANNEL_BASE,
        "channel_base": g["channel_base"],
        "channel_max": g["channel_max"],
        "num_fp16_res": g["num_fp16_res"],
        "conv_clamp": g["conv_clamp"],
        "map_layers": g["mapping_layers"],
        "g_architecture": g["architecture"],
        "mbstd_group": None if d is None else d["mbstd_group_size"],
        "d_architecture": None if d is None else d["architecture"],
        "t_conditioning": None if d is None else d["t_conditioning"],
        "presets": _matching_presets(g, d),
        "p": p,
        "diffusion": diffusion,
        "training_set_kwargs": net_pkl.training_set_kwargs,
    }

"""Map Diffusion-ProjectedGAN networks read from a pickle onto dgan's Projected GAN networks.

Projected GAN's training loop (and Diffusion-GAN's copy of it) pickles its networks as plain
torch modules, classes by reference; :mod:`dgan.interop.persistence` reads them as inert
:class:`~dgan.interop.persistence.OpaqueObject` records. The generators are either FastGAN /
FastGAN-lite (``pg_modules.networks_fastgan.Generator``, unconditional or conditional), which
map onto :class:`~dgan.networks.projected.FastGANGenerator` with ``tanh=False`` (the reference
returns the raw convolution output), or the StyleGAN2 of the StyleGAN3 code base
(``pg_modules.networks_stylegan2``, a ``torch_utils.persistence`` object whose synthesis options
are flat keyword arguments), which maps onto dgan's StyleGAN2 through
:mod:`dgan.interop.stylegan2_ada`. The discriminator maps onto
:class:`~dgan.networks.projected.ProjectedDiscriminator`.

How the names differ, and why some tensors are not copied one to one:

- The reference's spectral norm is the hook version (``weight_orig``, ``weight_u``,
  ``weight_v``); dgan's is the parametrisation (``parametrizations.weight.original``, ``._u``,
  ``._v``). In eval mode both divide the weight by u^T W v with the stored vectors.
- Its conditional BatchNorm keeps ``stored_mean`` / ``stored_var`` and no batch counter; dgan's
  holds them in a BatchNorm without affine parameters, whose counter is left at zero (it only
  matters with ``momentum=None``, which neither uses).
- Its conditional two-convolution block shares one noise strength between both convolutions;
  dgan has one per convolution, and both receive it.
- Its class embeddings have 1000 rows whatever the labels (the constructors' default); a
  one-hot label of width ``c_dim`` only ever selects the first ``c_dim``, which dgan keeps.
- The pretrained EfficientNet-Lite0 is frozen in both; the pickle's weights must equal
  dgan's own ImageNet weights (to float rounding), and a mismatch names the tensor. The random
  projections are frozen but random, so they come from the pickle.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from dgan.interop.persistence import (
    INIT_KWARGS,
    NetworkPickle,
    OpaqueObject,
    PersistentObject,
    init_kwargs,
    is_module,
    named_modules,
    state_dict,
)
from dgan.interop.stylegan2_ada import (
    MappingError,
    check_mapping,
    generator_from_pickle,
    generator_kwargs_from_pickle,
)
from dgan.networks.projected import FastGANGenerator, FeatureWeightsUnavailable
from dgan.networks.projected.discriminator import (
    CMAP_DIM,
    EMBED_DIM,
    REFERENCE_RESOLUTION,
    ProjectedDiscriminator,
)
from dgan.networks.projected.fastgan import CHANNEL_MULTIPLIER, GLU_SPLIT, SEED_TABLE_KEY
from dgan.networks.projected.feature_network import DEFAULT_RESIZE, STAGE_STRIDES
from dgan.networks.projected.projections import CSM_UPSAMPLE, DEFAULT_COUT, NUM_STAGES

__all__ = [
    "FASTGAN_TARGET",
    "PROJECTED_D_TARGET",
    "STYLEGAN2_TARGET",
    "class_path",
    "config_from_pickle",
    "discriminator_from_pickle",
    "generator_from_projected_pickle",
    "generator_kwargs_from_projected_pickle",
    "is_projected_gan_pickle",
    "networks_from_pickle",
]

FASTGAN_TARGET = "dgan.networks.projected.FastGANGenerator"
STYLEGAN2_TARGET = "dgan.networks.stylegan2.Generator"
PROJECTED_D_TARGET = "dgan.networks.projected.ProjectedDiscriminator"
REFERENCE_PACKAGE = "pg_modules."
FASTGAN_GENERATOR = "pg_modules.networks_fastgan.Generator"
FASTGAN_SYNTHESES = {
    "pg_modules.networks_fastgan.FastganSynthesis": False,
    "pg_modules.networks_fastgan.FastganSynthesisCond": True,
}
PROJECTED_DISCRIMINATOR = "pg_modules.discriminator.ProjectedDiscriminator"
FEATURE_NETWORK = "pg_modules.projector.F_RandomProj"
MINI_DISCRIMINATORS = {
    "pg_modules.discriminator.SingleDisc": False,
    "pg_modules.discriminator.SingleDiscCond": True,
}
NOISE_INJECTION = "pg_modules.blocks.NoiseInjection"
SEPARABLE_CONV = "pg_modules.blocks.SeparableConv2d"
GENERATOR_KEYS = ("G_ema", "G")
# Attributes of the reference's Diffusion that dgan's config also has.
DIFFUSION_ATTRS = ("p", "beta_start", "beta_end", "t_min", "t_max")
DISCRIMINATOR_KEY = "D"
# Stage 0 of the reference's feature network and where timm 0.4 kept its stem activation.
REFERENCE_STAGE0_LENGTH = 5
REFERENCE_ACT1_INDEX = 2
# The reference's only projection: cross-channel then cross-scale mixing (proj_type 2).
CROSS_SCALE_PROJECTION = 2

# Network pickle keys of the StyleGAN3 code base's StyleGAN2 (flat synthesis options), the
# defaults its constructors use where the pickle omits a key, and the option that only chooses
# how the convolutions run.
FLAT_SYNTHESIS_KEYS = (
    "channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture",
    "resample_filter", "use_noise", "activation", "kernel_size", "fused_modconv_default",
)  # fmt: skip
STYLEGAN3_SYNTHESIS_DEFAULTS = {
    "channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256,
    "architecture": "skip",
}  # fmt: skip
STYLEGAN3_W_AVG_BETA = 0.998
RUNTIME_SYNTHESIS_KEYS = ("fused_modconv_default",)
GENERATOR_BASE_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")

# dgan's model configs (conf/model/projected_*.yaml) and the numbers that identify them.
FASTGAN_MODEL_CONFIGS = {False: "projected_fastgan", True: "projected_fastgan_lite"}
FASTGAN_CONFIG_NUMBERS = {"z_dim": 256, "ngf": 128}
STYLEGAN2_MODEL_CONFIG = "projected_stylegan2"
STYLEGAN2_CONFIG_NUMBERS = {"z_dim": 64, "w_dim": 128, "mapping_layers": 2}

# Leaf renames: the hook spectral norm and the reference's conditional BatchNorm.
LEAF_RENAMES = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
    "stored_mean": "norm.running_mean",
    "stored_var": "norm.running_var",
}
# BatchNorm counters: absent from the reference's conditional BatchNorm, unused in eval mode.
COUNTER_SUFFIX = "num_batches_tracked"
# Class embeddings whose surplus rows (beyond c_dim) are dropped.
EMBEDDING_SUFFIX = "embed.weight"
# The frozen feature network is compared with dgan's ImageNet weights up to float rounding. A
# difference is warned about, not refused: the pickle's values are what its D was trained with,
# and timm's port of the weights may differ in rounding from the package dgan ships.
FROZEN_ATOL = 1e-6
FROZEN_RTOL = 1e-5

Row = tuple[str, str | tuple[str, ...]]

FASTGAN_COMMON: tuple[Row, ...] = (
    (r"synthesis\.init\.init\.0\.(.+)", r"init.\1"),
    (r"synthesis\.init\.init\.1\.(.+)", r"init_norm.\1"),
    (r"synthesis\.se_(\d+)\.main\.([13])\.(.+)", r"sle.\1.main.\2.\3"),
    (r"synthesis\.to_big\.(.+)", r"to_rgb.\1"),
    (r"synthesis\.embed\.weight", r"embed.weight"),
)
# Upsampling blocks by (two convolutions, conditional). The unconditional ones are Sequentials
# (upsample, conv, [noise], BN, GLU, ...); the conditional ones name their layers.
FASTGAN_UP_BLOCKS: dict[tuple[bool, bool], tuple[Row, ...]] = {
    (False, False): (
        (r"synthesis\.feat_(\d+)\.1\.(.+)", r"up.\1.convs.0.\2"),
        (r"synthesis\.feat_(\d+)\.2\.(.+)", r"up.\1.norms.0.bn.\2"),
    ),
    (True, False): (
        (r"synthesis\.feat_(\d+)\.1\.(.+)", r"up.\1.convs.0.\2"),
        (r"synthesis\.feat_(\d+)\.2\.(.+)", r"up.\1.noises.0.\2"),
        (r"synthesis\.feat_(\d+)\.3\.(.+)", r"up.\1.norms.0.bn.\2"),
        (r"synthesis\.feat_(\d+)\.5\.(.+)", r"up.\1.convs.1.\2"),
        (r"synthesis\.feat_(\d+)\.6\.(.+)", r"up.\1.noises.1.\2"),
        (r"synthesis\.feat_(\d+)\.7\.(.+)", r"up.\1.norms.1.bn.\2"),
    ),
    (False, True): (
        (r"synthesis\.feat_(\d+)\.conv\.(.+)", r"up.\1.convs.0.\2"),
        (r"synthesis\.feat_(\d+)\.bn\.(.+)", r"up.\1.norms.0.bn.\2"),
    ),
    (True, True): (
        (r"synthesis\.feat_(\d+)\.conv1\.(.+)", r"up.\1.convs.0.\2"),
        (r"synthesis\.feat_(\d+)\.conv2\.(.+)", r"up.\1.convs.1.\2"),
        (r"synthesis\.feat_(\d+)\.bn1\.(.+)", r"up.\1.norms.0.bn.\2"),
        (r"synthesis\.feat_(\d+)\.bn2\.(.+)", r"up.\1.norms.1.bn.\2"),
        (r"synthesis\.feat_(\d+)\.noise\.weight", (r"up.\1.noises.0.weight",
                                                   r"up.\1.noises.1.weight")),
    ),
}
# The discriminator without its mini discriminators' layer lists (see _mini_disc_rows) and its
# feature network (see _feature_rows).
DISCRIMINATOR_COMMON: tuple[Row, ...] = (
    (r"feature_network\.scratch\.layer(\d)_ccm\.(weight|bias)", r"projections.ccm.\1.\2"),
    (r"feature_network\.scratch\.layer(\d)_csm\.out_conv\.(weight|bias)",
     r"projections.csm.\1.out_conv.\2"),
    (r"discriminator\.mini_discs\.(\d)\.cls\.(.+)", r"mini_discs.\1.logits.\2"),
    (r"discriminator\.mini_discs\.(\d)\.embed\.weight", r"mini_discs.\1.embed.weight"),
    (r"discriminator\.mini_discs\.(\d)\.embed_proj\.0\.(weight|bias)",
     r"mini_discs.\1.embed_proj.0.\2"),
)


def class_path(obj: Any) -> str:
    """``module.Class`` of a module read from a pickle (persistent ones by class name only)."""
    if isinstance(obj, OpaqueObject):
        return f"{type(obj).module}.{type(obj).class_name}"
    if isinstance(obj, PersistentObject):
        return f"torch_utils.persistence object {obj.class_name}"
    return type(obj).__name__


def _is_stylegan3_layout(obj: Any) -> bool:
    # The StyleGAN3 code base's Generator takes its synthesis options as flat keyword arguments.
    if not isinstance(obj, PersistentObject) or obj.class_name != "Generator":
        return False
    kwargs = obj.state.get(INIT_KWARGS) or {}
    return "synthesis_kwargs" not in kwargs and any(k in kwargs for k in FLAT_SYNTHESIS_KEYS)


def is_projected_gan_pickle(net_pkl: NetworkPickle) -> bool:
    """Whether ``net_pkl`` holds Projected GAN networks (``pg_modules`` classes, or the StyleGAN3
    code base's StyleGAN2 generator) rather than StyleGAN2-ADA ones.

    Args:
        net_pkl: the pickle as read by :func:`~dgan.interop.persistence.load_network_pickle`.
    """
    for net in net_pkl.networks.values():
        if isinstance(net, OpaqueObject) and type(net).module.startswith(REFERENCE_PACKAGE):
            return True
    return any(_is_stylegan3_layout(net_pkl.networks.get(k)) for k in GENERATOR_KEYS)


# ---------------------------------------------------------------------------------------------
# Copying named tensors with every name and shape checked.


def _map(name: str, rows: Iterable[Row]) -> tuple[str, ...]:
    for pattern, replacement in rows:
        match = re.fullmatch(pattern, name)
        if match is None:
            continue
        targets = (replacement,) if isinstance(replacement, str) else replacement
        return tuple(_rename_leaf(match.expand(t)) for t in targets)
    return ()


def _rename_leaf(name: str) -> str:
    head, _, leaf = name.rpartition(".")
    renamed = LEAF_RENAMES.get(leaf)
    return name if renamed is None else f"{head}.{renamed}" if head else renamed


def _fit(ref_name: str, name: str, tensor: Any, target: torch.Tensor) -> tuple[Any, str | None]:
    if not isinstance(tensor, torch.Tensor):
        return None, f"{ref_name}: a {type(tensor).__name__}, not a tensor"
    shape, want = tuple(tensor.shape), tuple(target.shape)
    if shape == want:
        return tensor, None
    if (name.endswith(EMBEDDING_SUFFIX) and len(shape) == len(want) == 2
            and shape[1] == want[1] and shape[0] >= want[0]):
        return tensor[: want[0]], None  # rows beyond c_dim are never selected by a label
    return None, f"{ref_name} (-> {name}): {list(shape)} vs dgan {list(want)}"


def _load(
    net: nn.Module,
    source: Mapping[str, Any],
    mapping: Callable[[str], tuple[str, ...]],
    frozen_prefix: str | None = None,
) -> None:
    """Copy reference-named tensors into ``net``; every name, shape (and frozen value) checked.

    Raises:
        MappingError: one line naming every missing, extra, unmapped or misshapen tensor.

    A frozen tensor that differs from dgan's is copied too, with a warning naming it.
    """
    targets: dict[str, torch.Tensor] = dict(net.named_parameters())
    targets.update(net.named_buffers())
    persistent = set(net.state_dict())
    copies: dict[str, torch.Tensor] = {}
    given: dict[str, str] = {}
    unmapped, extra, shape_errors, frozen_differences = [], [], [], []
    for ref_name, tensor in source.items():
        names = mapping(ref_name)
        if not names:
            unmapped.append(ref_name)
        for name in names:
            if name not in persistent or name in given:
                extra.append(f"{ref_name} (-> {name})")
                continue
            given[name] = ref_name
            value, problem = _fit(ref_name, name, tensor, targets[name])
            if problem is not None:
                shape_errors.append(problem)
            else:
                if (frozen_prefix is not None and name.startswith(frozen_prefix)
                        and not name.endswith(COUNTER_SUFFIX)
                        and not torch.allclose(value.to(targets[name].dtype), targets[name],
                                               atol=FROZEN_ATOL, rtol=FROZEN_RTOL)):
                    frozen_differences.append(f"{ref_name} (-> {name})")
                copies[name] = value
    check_mapping(net, missing=[n for n in persistent - set(given)
                                if not n.endswith(COUNTER_SUFFIX)],
                  extra=extra, unmapped=unmapped, shape_errors=shape_errors)
    if frozen_differences:
        warnings.warn(f"{type(net).__name__}: the pickle's frozen feature network differs from "
                      f"dgan's ImageNet EfficientNet-Lite0 in {len(frozen_differences)} tensors "
                      f"(first: {min(frozen_differences)}); the pickle's values are used",
                      stacklevel=2)
    with torch.no_grad():
        for name, value in copies.items():
            targets[name].copy_(value.to(targets[name].dtype))


# ---------------------------------------------------------------------------------------------
# Generators.


def _child(obj: Any, name: str, where: str) -> Any:
    child = obj.state.get("_modules", {}).get(name) if is_module(obj) else None
    if child is None:
        raise MappingError(f"{where}: no module {name!r} in {class_path(obj)}")
    return child


def _attr(obj: Any, name: str, where: str) -> Any:
    value = obj.state.get(name)
    if value is None:
        raise MappingError(f"{where}: {class_path(obj)} has no attribute {name!r}")
    return value


def _generator(net_pkl: NetworkPickle) -> Any:
    for key in GENERATOR_KEYS:
        if key in net_pkl.networks:
            return net_pkl.networks[key]
    raise MappingError("the network pickle has no generator (looked for "
                       f"{', '.join(GENERATOR_KEYS)})")


def _fastgan_layout(g: Any) -> dict[str, Any]:
    """dgan ``FastGANGenerator`` keyword arguments and the reference's layout of ``g``."""
    synthesis = _child(g, "synthesis", "generator")
    cond = FASTGAN_SYNTHESES.get(class_path(synthesis))
    if cond is None:
        raise MappingError(f"generator synthesis is a {class_path(synthesis)}; dgan maps "
                           f"{', '.join(FASTGAN_SYNTHESES)}")
    first_block = _child(synthesis, "feat_8", "generator synthesis")
    two_convs = any(class_path(m) == NOISE_INJECTION for _, m in named_modules(first_block))
    seed_weight = state_dict(_child(_child(synthesis, "init", "generator"), "init", "generator"))
    seed = seed_weight.get("0.weight_orig")
    per_ngf = GLU_SPLIT * CHANNEL_MULTIPLIER[SEED_TABLE_KEY]
    if not isinstance(seed, torch.Tensor) or seed.ndim != 4 or seed.shape[1] % per_ngf:
        raise MappingError("generator synthesis.init.init.0.weight_orig: not the seed "
                           f"convolution of a FastGAN (output width a multiple of {per_ngf})")
    c_dim = int(_attr(g, "c_dim", "generator")) if cond else 0
    if cond and c_dim <= 0:
        raise MappingError(f"generator: a conditional FastGAN with c_dim={c_dim}")
    return {
        "kwargs": {
            "z_dim": int(_attr(g, "z_dim", "generator")),
            "ngf": seed.shape[1] // per_ngf,
            "img_resolution": int(_attr(g, "img_resolution", "generator")),
            "img_channels": int(_attr(g, "img_channels", "generator")),
            "lite": not two_convs,
            "c_dim": c_dim,
            "tanh": False,
        },
        "rows": FASTGAN_COMMON + FASTGAN_UP_BLOCKS[(two_convs, cond)],
    }


def _as_stylegan2_ada(g: PersistentObject) -> PersistentObject:
    """The StyleGAN3 code base's StyleGAN2 ``g`` with StyleGAN2-ADA's init kwargs layout."""
    kwargs = init_kwargs(g)
    base = {k: kwargs.pop(k) for k in GENERATOR_BASE_KEYS if k in kwargs}
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    mapping.setdefault("w_avg_beta", STYLEGAN3_W_AVG_BETA)
    synthesis = {**STYLEGAN3_SYNTHESIS_DEFAULTS, **kwargs}
    for key in RUNTIME_SYNTHESIS_KEYS:
        synthesis.pop(key, None)
    state = dict(g.state)
    state[INIT_KWARGS] = {**base, "mapping_kwargs": mapping, "synthesis_kwargs": synthesis}
    return PersistentObject(g.class_name, g.module_src_digest, g.version, state)


def _generator_kind(g: Any) -> str:
    if isinstance(g, OpaqueObject) and class_path(g) == FASTGAN_GENERATOR:
        return "fastgan"
    if _is_stylegan3_layout(g):
        return "stylegan2"
    raise MappingError(
        f"generator is a {class_path(g)}; dgan maps Projected GAN's {FASTGAN_GENERATOR} "
        "(FastGAN, FastGAN-lite, conditional too) and pg_modules.networks_stylegan2.Generator"
    )


def generator_kwargs_from_projected_pickle(g: Any) -> tuple[str, dict[str, Any]]:
    """(dgan ``_target_``, keyword arguments) of a Projected GAN generator read from a pickle.

    Args:
        g: the generator (an :class:`OpaqueObject` FastGAN or a StyleGAN2 persistent object).
    """
    if _generator_kind(g) == "fastgan":
        return FASTGAN_TARGET, _fastgan_layout(g)["kwargs"]
    return STYLEGAN2_TARGET, generator_kwargs_from_pickle(_as_stylegan2_ada(g))


def generator_from_projected_pickle(g: Any) -> nn.Module:
    """dgan generator with the weights of a Projected GAN generator read from a pickle (eval).

    Args:
        g: the generator (an :class:`OpaqueObject` FastGAN or a StyleGAN2 persistent object).

    Raises:
        MappingError: an unsupported generator, or tensors that do not fit dgan's (named).
    """
    if _generator_kind(g) == "stylegan2":
        return generator_from_pickle(_as_stylegan2_ada(g))
    layout = _fastgan_layout(g)
    net = FastGANGenerator(**layout["kwargs"])
    _load(net, state_dict(g), lambda name: _map(name, layout["rows"]))
    return net.eval()


# ---------------------------------------------------------------------------------------------
# The discriminator.


def _discriminator_layout(d: Any, c_dim: int) -> dict[str, Any]:
    """dgan ``ProjectedDiscriminator`` options of the reference D ``d`` (checked)."""
    if class_path(d) != PROJECTED_DISCRIMINATOR:
        raise MappingError(f"discriminator is a {class_path(d)}; dgan maps "
                           f"{PROJECTED_DISCRIMINATOR}")
    if d.state.get("interp224") is not True:
        raise MappingError("discriminator interp224=False: dgan's D always resizes its input "
                           f"for the feature network (to {DEFAULT_RESIZE} px)")
    features = _child(d, "feature_network", "discriminator")
    if class_path(features) != FEATURE_NETWORK:
        raise MappingError(f"discriminator feature_network is a {class_path(features)}; dgan "
                           f"maps {FEATURE_NETWORK}")
    proj_type = features.state.get("proj_type")
    if proj_type != CROSS_SCALE_PROJECTION:
        raise MappingError(f"discriminator proj_type={proj_type!r}: dgan has the cross-channel "
                           f"and cross-scale projections only (proj_type={CROSS_SCALE_PROJECTION})")
    minis = _child(_child(d, "discriminator", "discriminator"), "mini_discs", "discriminator")
    discs = [v for v in minis.state.get("_modules", {}).values() if v is not None]
    if len(discs) != NUM_STAGES:
        raise MappingError(f"discriminator has {len(discs)} mini discriminators; dgan's has "
                           f"{NUM_STAGES} (num_discs={NUM_STAGES})")
    kinds = {class_path(m) for m in discs}
    if len(kinds) != 1 or next(iter(kinds)) not in MINI_DISCRIMINATORS:
        raise MappingError(f"mini discriminators are {', '.join(sorted(kinds))}; dgan maps "
                           f"{', '.join(MINI_DISCRIMINATORS)}")
    cond = MINI_DISCRIMINATORS[next(iter(kinds))]
    if cond != bool(c_dim):
        raise MappingError(f"the mini discriminators are {'' if cond else 'un'}conditional "
                           f"but the generator has c_dim={c_dim}")
    # Projected GAN sizes its mini discriminators for 256 px input whatever the data.
    expected_start = REFERENCE_RESOLUTION // STAGE_STRIDES[0] * CSM_UPSAMPLE
    start = discs[0].state.get("start_sz")
    if start is not None and int(start) != expected_start:
        raise MappingError(f"mini discriminator 0 start_sz={start}; dgan's is sized for "
                           f"{REFERENCE_RESOLUTION} px ({expected_start})")
    embed = state_dict(discs[0]).get("embed.weight") if cond else None
    return {
        "separable": any(class_path(m) == SEPARABLE_CONV for _, m in named_modules(discs[0])),
        "diffusion_position": features.state.get("d_pos", "first"),
        "cout": int(features.state.get("cout", DEFAULT_COUT)),
        "expand": bool(features.state.get("expand", True)),
        "cmap_dim": int(discs[0].state.get("cmap_dim", CMAP_DIM)) if cond else CMAP_DIM,
        "embed_dim": int(embed.shape[1]) if isinstance(embed, torch.Tensor) else EMBED_DIM,
        "disc_resolution": REFERENCE_RESOLUTION,
        "resize": DEFAULT_RESIZE,
        "feature_weights": "package",
        "ndf": None,
    }


def _feature_rows(net: ProjectedDiscriminator) -> Callable[[str], str | None]:
    # The reference's stage 0 is (conv_stem, bn1, act1, blocks[0], blocks[1]) of timm 0.4;
    # timm >= 0.9 folds act1 into bn1, so dgan's stage 0 may hold one module fewer.
    shift = REFERENCE_STAGE0_LENGTH - len(net.feature_network.stages[0])

    def rename(name: str) -> str | None:
        match = re.fullmatch(r"feature_network\.pretrained\.layer(\d)\.(\d+)\.(.+)", name)
        if match is None:
            return None
        stage, index, rest = int(match[1]), int(match[2]), match[3]
        if stage == 0 and index > REFERENCE_ACT1_INDEX:
            index -= shift
        return f"feature_network.stages.{stage}.{index}.{rest}"

    return rename


def _mini_disc_rows(net: ProjectedDiscriminator, cond: bool) -> Callable[[str], str | None]:
    # The reference's SingleDisc ends its ``main`` with the logit convolution; dgan keeps it
    # apart as ``logits`` (SingleDiscCond calls it ``cls``, see DISCRIMINATOR_COMMON).
    blocks = [len(m.main) for m in net.mini_discs]

    def rename(name: str) -> str | None:
        match = re.fullmatch(r"discriminator\.mini_discs\.(\d)\.main\.(\d+)\.(.+)", name)
        if match is None:
            return None
        disc, index, rest = int(match[1]), int(match[2]), match[3]
        if not cond and disc < len(blocks) and index == blocks[disc]:
            return f"mini_discs.{disc}.logits.{rest}"
        return f"mini_discs.{disc}.main.{index}.{rest}"

    return rename


def discriminator_from_pickle(d: Any, c_dim: int, img_resolution: int,
                              img_channels: int) -> tuple[ProjectedDiscriminator, dict[str, Any]]:
    """dgan ``ProjectedDiscriminator`` with the weights of a reference D, and its options.

    The frozen EfficientNet-Lite0 weights in the pickle must equal dgan's ImageNet weights.

    Args:
        d: the discriminator read from the pickle (``pg_modules.discriminator``).
        c_dim: label width of the generator (the reference D does not record it).
        img_resolution: image side of the generator.
        img_channels: image channels of the generator.

    Raises:
        MappingError: an unsupported option, or tensors that do not fit (named).
    """
    options = _discriminator_layout(d, c_dim)
    kwargs = {"c_dim": c_dim, "img_resolution": img_resolution, "img_channels": img_channels,
              **options}
    try:
        net = ProjectedDiscriminator(**kwargs)
    except FeatureWeightsUnavailable as err:
        raise MappingError(f"discriminator: {err}") from err
    features, minis = _feature_rows(net), _mini_disc_rows(net, bool(c_dim))

    def mapping(name: str) -> tuple[str, ...]:
        renamed = features(name) or minis(name)
        if renamed is not None:
            return (_rename_leaf(renamed),)
        return _map(name, DISCRIMINATOR_COMMON)

    _load(net, state_dict(d), mapping, frozen_prefix="feature_network.")
    return net.eval(), kwargs


# ---------------------------------------------------------------------------------------------
# The whole pickle.


def _diffusion(d: Any) -> dict[str, Any] | None:
    # Diffusion-ProjectedGAN's Diffusion (a persistent object) sits in D's feature network.
    features = d.state.get("_modules", {}).get("feature_network") if is_module(d) else None
    diffusion = features.state.get("_modules", {}).get("diffusion") if is_module(features) \
        else None
    if not isinstance(diffusion, PersistentObject):
        return None
    found = {k: diffusion.state[k] for k in DIFFUSION_ATTRS if k in diffusion.state}
    # The feature network passes its own noise_sd at call time.
    found["noise_std"] = features.state.get("noise_sd", diffusion.state.get("noise_std"))
    found["d_pos"] = features.state.get("d_pos")
    return found


def _model_configs(target: str, kwargs: Mapping[str, Any]) -> list[str]:
    if target == FASTGAN_TARGET:
        numbers, name = FASTGAN_CONFIG_NUMBERS, FASTGAN_MODEL_CONFIGS[bool(kwargs["lite"])]
    else:
        numbers, name = STYLEGAN2_CONFIG_NUMBERS, STYLEGAN2_MODEL_CONFIG
    if all(kwargs.get(k) == v for k, v in numbers.items()):
        return [f"model={name}"]
    return []


def config_from_pickle(net_pkl: NetworkPickle) -> dict[str, Any]:
    """dgan model configuration values of a Diffusion-ProjectedGAN network pickle.

    Returns a dict with ``generator`` (``_target_`` and keyword arguments), ``discriminator``
    (the same, or None when the pickle has no ``D``; checked against the pickle's D by
    :func:`discriminator_from_pickle`), ``presets`` (the dgan model config whose numbers
    match, as ``model=NAME``), ``p`` (``progress.cur_p``, else the diffusion's ``p``),
    ``diffusion`` (the reference diffusion's options found in D, or None) and
    ``training_set_kwargs``.

    Args:
        net_pkl: the pickle read by :func:`~dgan.interop.persistence.load_network_pickle`.

    Raises:
        MappingError: the pickle has no generator, or one dgan has no network for.
    """
    target, g_kwargs = generator_kwargs_from_projected_pickle(_generator(net_pkl))
    d = net_pkl.networks.get(DISCRIMINATOR_KEY)
    diffusion = None if d is None else _diffusion(d)
    p = net_pkl.cur_p
    if p is None and diffusion is not None and diffusion.get("p") is not None:
        p = float(diffusion["p"])
    d_options = None
    if d is not None:
        d_options = {"c_dim": g_kwargs["c_dim"], "img_resolution": g_kwargs["img_resolution"],
                     "img_channels": g_kwargs["img_channels"],
                     **_discriminator_layout(d, g_kwargs["c_dim"])}
    return {
        "generator": {"_target_": target, **g_kwargs},
        "discriminator": None if d_options is None else {"_target_": PROJECTED_D_TARGET,
                                                         **d_options},
        "presets": _model_configs(target, g_kwargs),
        "p": p,
        "diffusion": diffusion,
        "training_set_kwargs": copy.deepcopy(net_pkl.training_set_kwargs),
    }


def networks_from_pickle(net_pkl: NetworkPickle) -> dict[str, nn.Module]:
    """dgan's ``G_ema``, ``G`` (and ``D`` when the pickle has one) with the pickle's weights.

    A pickle with one generator gives it as both ``G`` and ``G_ema``.

    Args:
        net_pkl: the pickle read by :func:`~dgan.interop.persistence.load_network_pickle`.

    Raises:
        MappingError: a network does not map onto dgan's (names the tensors).
    """
    G_ema = generator_from_projected_pickle(_generator(net_pkl))
    G = generator_from_projected_pickle(net_pkl.networks["G"]) if "G" in net_pkl.networks \
        else G_ema
    nets: dict[str, nn.Module] = {"G": G, "G_ema": G_ema}
    if DISCRIMINATOR_KEY in net_pkl.networks:
        nets["D"], _ = discriminator_from_pickle(
            net_pkl.networks[DISCRIMINATOR_KEY], G_ema.c_dim, G_ema.img_resolution,
            G_ema.img_channels)
    return nets

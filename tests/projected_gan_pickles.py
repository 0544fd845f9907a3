"""Write Diffusion-ProjectedGAN-format network pickles from dgan networks, without its code.

Projected GAN's training loop writes ``dict(G=..., D=..., G_ema=..., training_set_kwargs=...,
progress=...)`` with plain ``pickle.dump``: every module is its class by reference plus its
``__dict__``. This writer rebuilds the reference's module tree from a dgan network module by
module: stand-in classes under the reference's module paths (``pg_modules.*``, registered in
``sys.modules`` while writing only), torch's own layers, the hook-style spectral norm
(``weight_orig``, ``weight_u``, ``weight_v``) and a persistent ``Diffusion`` inside the feature
network, all holding the dgan network's weights. The reader's name tables are thus checked
against an independent construction. The StyleGAN2 generator of Projected GAN is a
``torch_utils.persistence`` object with flat synthesis keyword arguments.
"""

from __future__ import annotations

import copy
import pickle
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.networks.projected import FastGANGenerator, ProjectedDiscriminator
from dgan.networks.projected.discriminator import REFERENCE_RESOLUTION
from dgan.networks.projected.projections import CSM_UPSAMPLE
from tests.network_pickles import (
    DEFAULT_MODULE_SRC,
    EasyDict,
    PersistentRecord,
    _ReferencePickler,
)

BLOCKS = "pg_modules.blocks"
NETWORKS_FASTGAN = "pg_modules.networks_fastgan"
DISCRIMINATOR = "pg_modules.discriminator"
PROJECTOR = "pg_modules.projector"
# Python 3.9's pickle.dump default, which the reference ran on.
PROTOCOL = 4
# The reference's class embeddings default to 1000 rows whatever the labels.
REFERENCE_NUM_CLASSES = 1000
# Stage 0 of timm 0.4's feature network keeps its stem activation at this index.
ACT1_INDEX = 2
TIMM04_STAGE0_LENGTH = 5
CCBN_MOMENTUM = 0.1
# Diffusion-ProjectedGAN's diffusion as it sits in D (pg_modules/diffusion.py's defaults).
DIFFUSION_STATE = {"p": 0.25, "beta_start": 1e-4, "beta_end": 1e-2, "t_min": 5, "t_max": 500,
                   "noise_std": 0.5, "base_schedule": "linear"}
NOISE_SD = 0.5

_CLASSES: dict[tuple[str, str], type] = {}


def stand_in(module: str, name: str, **attrs: Any) -> nn.Module:
    """An instance of the stand-in class ``module.name`` (an empty ``nn.Module``) with ``attrs``
    (modules become children, everything else plain attributes)."""
    key = (module, name)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (nn.Module,), {"__module__": module, "__qualname__": name})
    obj = _CLASSES[key]()
    for attr, value in attrs.items():
        setattr(obj, attr, value)
    return obj


@contextmanager
def reference_modules_registered() -> Iterator[None]:
    """The stand-in classes importable under their module paths, for pickle's writer only."""
    added = []
    for (module, name), cls in _CLASSES.items():
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            path = ".".join(parts[:i])
            if path not in sys.modules:
                sys.modules[path] = types.ModuleType(path)
                added.append(path)
        setattr(sys.modules[module], name, cls)
    try:
        yield
    finally:
        for path in reversed(added):
            del sys.modules[path]


def hook_spectral_norm(module: nn.Module) -> nn.Module:
    """A copy of a dgan spectrally normalised layer with the hook spectral norm instead."""
    sn = module.parametrizations.weight
    original, u, v = sn.original.detach(), sn[0]._u.detach(), sn[0]._v.detach()
    base = type(module).__bases__[0]  # parametrize subclasses the layer's class
    has_bias = module.bias is not None
    if issubclass(base, nn.Linear):
        plain = base(module.in_features, module.out_features, bias=has_bias)
    else:
        plain = base(module.in_channels, module.out_channels, module.kernel_size,
                     stride=module.stride, padding=module.padding, dilation=module.dilation,
                     groups=module.groups, bias=has_bias)
    if has_bias:
        with torch.no_grad():
            plain.bias.copy_(module.bias)
    ref = torch.nn.utils.spectral_norm(plain)
    with torch.no_grad():
        ref.weight_orig.copy_(original)
        ref.weight_u.copy_(u)
        ref.weight_v.copy_(v)
    return ref


def padded_embedding(embed: nn.Embedding, rows: int = REFERENCE_NUM_CLASSES) -> nn.Embedding:
    """An embedding of ``rows`` rows whose first ones are ``embed``'s (the rest random)."""
    out = nn.Embedding(rows, embed.embedding_dim)
    with torch.no_grad():
        out.weight[: embed.num_embeddings] = embed.weight
    return out


def _glu() -> nn.Module:
    return stand_in(BLOCKS, "GLU")


def _noise(noise: nn.Module) -> nn.Module:
    return stand_in(BLOCKS, "NoiseInjection", weight=nn.Parameter(noise.weight.detach().clone()))


def _ccbn(cbn: nn.Module) -> nn.Module:
    ccbn = stand_in(BLOCKS, "CCBN", output_size=cbn.norm.num_features,
                    input_size=cbn.gain.in_features, eps=cbn.norm.eps, momentum=CCBN_MOMENTUM,
                    gain=hook_spectral_norm(cbn.gain), bias=hook_spectral_norm(cbn.bias))
    ccbn.register_buffer("stored_mean", cbn.norm.running_mean.detach().clone())
    ccbn.register_buffer("stored_var", cbn.norm.running_var.detach().clone())
    return ccbn


def _up_block(block: nn.Module, two_convs: bool, cond: bool) -> nn.Module:
    up = nn.Upsample(scale_factor=2, mode="nearest")
    if not cond:
        layers: list[nn.Module] = [up]
        for i, conv in enumerate(block.convs):
            layers.append(hook_spectral_norm(conv))
            if two_convs:
                layers.append(_noise(block.noises[i]))
            layers += [copy.deepcopy(block.norms[i].bn), _glu()]
        return nn.Sequential(*layers)
    if not two_convs:
        return stand_in(BLOCKS, "UpBlockSmallCond", up=up, conv=hook_spectral_norm(block.convs[0]),
                        bn=_ccbn(block.norms[0].bn), act=_glu())
    if not torch.equal(block.noises[0].weight, block.noises[1].weight):
        raise ValueError("the reference's conditional block has one noise strength for both "
                         "convolutions: give both noise layers the same weight")
    return stand_in(BLOCKS, "UpBlockBigCond", up=up, conv1=hook_spectral_norm(block.convs[0]),
                    conv2=hook_spectral_norm(block.convs[1]), bn1=_ccbn(block.norms[0].bn),
                    bn2=_ccbn(block.norms[1].bn), act=_glu(), noise=_noise(block.noises[0]))


def reference_fastgan(G: FastGANGenerator) -> nn.Module:
    """``pg_modules.networks_fastgan.Generator`` with the weights of the dgan FastGAN ``G``."""
    cond = G.c_dim > 0
    synthesis = stand_in(NETWORKS_FASTGAN, "FastganSynthesisCond" if cond else "FastganSynthesis",
                         img_resolution=G.img_resolution, z_dim=G.z_dim)
    synthesis.init = stand_in(BLOCKS, "InitLayer", init=nn.Sequential(
        hook_spectral_norm(G.init), copy.deepcopy(G.init_norm), _glu()))
    for res, block in G.up.items():
        synthesis.add_module(f"feat_{res}", _up_block(block, not G.lite, cond))
    for res, sle in G.sle.items():
        main = nn.Sequential(copy.deepcopy(sle.main[0]), hook_spectral_norm(sle.main[1]),
                             stand_in(BLOCKS, "Swish"), hook_spectral_norm(sle.main[3]),
                             nn.Sigmoid())
        synthesis.add_module(f"se_{res}", stand_in(BLOCKS, "SEBlock", main=main))
    synthesis.to_big = hook_spectral_norm(G.to_rgb)
    if cond:
        synthesis.embed = padded_embedding(G.embed)
    return stand_in(NETWORKS_FASTGAN, "Generator", z_dim=G.z_dim, c_dim=G.c_dim, w_dim=0,
                    img_resolution=G.img_resolution, img_channels=G.img_channels,
                    mapping=stand_in(NETWORKS_FASTGAN, "DummyMapping"), synthesis=synthesis)


def _down_block(block: nn.Module) -> nn.Module:
    first, bn, act = block.main[0], block.main[1], block.main[2]
    if hasattr(first, "depthwise"):
        conv = stand_in(BLOCKS, "SeparableConv2d", depthwise=hook_spectral_norm(first.depthwise),
                        pointwise=hook_spectral_norm(first.pointwise))
        main = nn.Sequential(conv, copy.deepcopy(bn), copy.deepcopy(act),
                             copy.deepcopy(block.main[3]))
    else:
        main = nn.Sequential(hook_spectral_norm(first), copy.deepcopy(bn), copy.deepcopy(act))
    return stand_in(BLOCKS, "DownBlock", main=main)


def reference_discriminator(D: ProjectedDiscriminator, p: float = DIFFUSION_STATE["p"]
                            ) -> nn.Module:
    """``pg_modules.discriminator.ProjectedDiscriminator`` with the weights of the dgan ``D``."""
    stages = [list(copy.deepcopy(stage)) for stage in D.feature_network.stages]
    if len(stages[0]) < TIMM04_STAGE0_LENGTH:  # timm >= 0.9 folded act1 into bn1
        stages[0].insert(ACT1_INDEX, nn.ReLU6(inplace=True))
    pretrained = nn.Module()
    for i, stage in enumerate(stages):
        pretrained.add_module(f"layer{i}", nn.Sequential(*stage))
    scratch = nn.Module()
    for i, ccm in enumerate(D.projections.ccm):
        scratch.add_module(f"layer{i}_ccm", copy.deepcopy(ccm))
    for i, csm in enumerate(D.projections.csm):
        scratch.add_module(f"layer{i}_csm", stand_in(
            BLOCKS, "FeatureFusionBlock", deconv=False, align_corners=True, expand=i > 0,
            out_conv=copy.deepcopy(csm.out_conv), skip_add=torch.ao.nn.quantized.FloatFunctional()))
    features = stand_in(PROJECTOR, "F_RandomProj", proj_type=2, cout=D.projections.out_channels[0],
                        expand=True, d_pos=D.diffusion_position, noise_sd=NOISE_SD,
                        pretrained=pretrained, scratch=scratch)
    features._modules["diffusion"] = PersistentRecord(
        "Diffusion", {"_parameters": {}, "_buffers": {}, "_modules": {}, "training": True,
                      **DIFFUSION_STATE, "p": p, "betas": torch.linspace(1e-4, 1e-2, 5)})
    minis = nn.ModuleDict()
    for i, (mini, stride) in enumerate(zip(D.mini_discs, D.feature_network.strides, strict=True)):
        blocks = [_down_block(b) for b in mini.main]
        start = REFERENCE_RESOLUTION // stride * CSM_UPSAMPLE
        if mini.c_dim:
            minis[str(i)] = stand_in(
                DISCRIMINATOR, "SingleDiscCond", start_sz=start, cmap_dim=mini.cmap_dim,
                main=nn.Sequential(*blocks), cls=hook_spectral_norm(mini.logits),
                embed=padded_embedding(mini.embed), embed_proj=copy.deepcopy(mini.embed_proj))
        else:
            minis[str(i)] = stand_in(DISCRIMINATOR, "SingleDisc", start_sz=start,
                                     main=nn.Sequential(*blocks, hook_spectral_norm(mini.logits)))
    return stand_in(DISCRIMINATOR, "ProjectedDiscriminator", diffaug=True, interp224=True,
                    feature_network=features,
                    discriminator=stand_in(DISCRIMINATOR, "MultiScaleD", mini_discs=minis))


def stylegan3_generator_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Init kwargs of ``pg_modules.networks_stylegan2.Generator`` for dgan StyleGAN2 kwargs, as
    Diffusion-ProjectedGAN's train.py writes them (synthesis options flat)."""
    return {
        "z_dim": kwargs["z_dim"], "w_dim": kwargs["w_dim"], "c_dim": kwargs.get("c_dim", 0),
        "img_resolution": kwargs["img_resolution"], "img_channels": kwargs["img_channels"],
        "mapping_kwargs": EasyDict(num_layers=kwargs["mapping_layers"]),
        "channel_base": kwargs["channel_base"], "channel_max": kwargs["channel_max"],
        "fused_modconv_default": "inference_only", "num_fp16_res": kwargs["num_fp16_res"],
        "conv_clamp": kwargs["conv_clamp"],
    }  # fmt: skip


def dump_projected_gan_pickle(
    path: Path,
    networks: Mapping[str, Any],
    *,
    stylegan2_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    training_set_kwargs: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
) -> None:
    """Write ``networks`` (reference trees, or dgan StyleGAN2 generators) as the reference does.

    Args:
        path: the ``.pkl`` to write.
        networks: key -> a tree from :func:`reference_fastgan` / :func:`reference_discriminator`,
            or a dgan StyleGAN2 ``Generator`` (written as a persistent object).
        stylegan2_kwargs: key -> the dgan kwargs of each StyleGAN2 generator in ``networks``.
        training_set_kwargs: written under ``training_set_kwargs``.
        progress: written under ``progress``.
    """
    init_kwargs = {id(networks[k]): stylegan3_generator_kwargs(v)
                   for k, v in (stylegan2_kwargs or {}).items()}
    data: dict[str, Any] = dict(networks)
    if training_set_kwargs is not None:
        data["training_set_kwargs"] = dict(training_set_kwargs)
    if progress is not None:
        data["progress"] = dict(progress)
    with reference_modules_registered(), open(path, "wb") as f:
        _ReferencePickler(f, PROTOCOL, DEFAULT_MODULE_SRC, init_kwargs).dump(data)
    assert not any(name.startswith("pg_modules") for name in sys.modules)


def dumps_plain(obj: Any) -> bytes:
    """``pickle.dumps`` with the stand-in classes importable (for hand-made payload pickles)."""
    with reference_modules_registered():
        return pickle.dumps(obj, protocol=PROTOCOL)

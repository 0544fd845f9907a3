"""Tests of dgan.augment: DiffAugment, the ADA pipeline, how its p moves, the preview grid."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from dgan.augment import (
    BLIT_OPS,
    COLOR_OPS,
    GEOMETRIC_OPS,
    OPS,
    POLICIES,
    AdaptiveAugment,
    DiffAugment,
    augmentation_grid,
    lowpass_filter,
    preset_multipliers,
    resample,
)
from dgan.augment.ada import DEFAULT_FILTER_BETA, DEFAULT_FILTER_TAPS
from dgan.callbacks.adaptive_probability import AdaptiveProbability

SIZE = 16
SMALL = 8
BATCH = 8
STAT_SAMPLES = 2000
STAT_P = 0.5
STAT_MULTIPLIER = 0.6
STD_ERRORS = 3
DTYPES = (torch.float32, torch.float64)
# Ops that fire a random choice which may be the identity, and the chance of that choice.
IDENTITY_DRAW = {"xflip": 1 / 2, "rotate90": 1 / 4, "lumaflip": 1 / 2}
FLOAT_TOL = 1e-5
# Overshoot allowed from the resampling filter's ringing on a smooth image.
RINGING = 0.05
# Largest difference from an exact pixel op allowed on a smooth image (the filter's passband).
PASSBAND_TOL = 0.01


def _images(n: int = BATCH, size: int = SIZE, dtype: torch.dtype = torch.float32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=gen) * 2 - 1).to(dtype)


def _only(op: str, p: float = 1.0, multiplier: float = 1.0, **kwargs) -> AdaptiveAugment:
    """The ADA pipeline with ``op`` alone switched on."""
    multipliers = {name: multiplier if name == op else 0.0 for name in OPS}
    return AdaptiveAugment(p=p, **multipliers, **kwargs)


def _changed(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample flag: did the augmentation touch this sample at all?"""
    return (out - x).abs().flatten(1).amax(dim=1) > 0


def _smooth(size: int = SIZE, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    """A smooth colour image with values in [low, high]."""
    coords = (torch.arange(size) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    mid, amp = (low + high) / 2, (high - low) / 2
    channels = [
        torch.sin(2 * math.pi * xx) * torch.cos(math.pi * yy),
        torch.cos(2 * math.pi * (xx + yy)),
        torch.sin(math.pi * xx * yy),
    ]
    return (mid + amp * torch.stack(channels)).unsqueeze(0)


def _gradcheck(module: torch.nn.Module, x: torch.Tensor) -> bool:
    # The same random draws on every evaluation, so that gradcheck sees a fixed function.
    state = copy.deepcopy(module.state_dict())

    def fn(inp: torch.Tensor) -> torch.Tensor:
        module.load_state_dict(state)
        return module(inp)

    return torch.autograd.gradcheck(fn, (x,), fast_mode=True)


def _check_gradient(module: torch.nn.Module, dtype: torch.dtype) -> None:
    x = _images(dtype=dtype).requires_grad_(True)
    out = module(x)
    assert out.shape == x.shape
    assert out.dtype == dtype
    weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    (out * weights).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


# ------------------------------------------------------------------------ differentiability


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_ada_op_keeps_shape_dtype_and_is_differentiable(op: str, dtype: torch.dtype) -> None:
    _check_gradient(_only(op), dtype)


@pytest.mark.parametrize("op", OPS)
def test_ada_op_passes_gradcheck(op: str) -> None:
    x = _images(n=2, size=SMALL, dtype=torch.float64).requires_grad_(True)
    assert _gradcheck(_only(op, seed=1), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("policy", POLICIES)
def test_diffaugment_op_keeps_shape_dtype_and_is_differentiable(
    policy: str, dtype: torch.dtype
) -> None:
    _check_gradient(DiffAugment(policy=(policy,)), dtype)


@pytest.mark.parametrize("policy", POLICIES)
def test_diffaugment_op_passes_gradcheck(policy: str) -> None:
    x = _images(n=2, size=SMALL, dtype=torch.float64).requires_grad_(True)
    assert _gradcheck(DiffAugment(policy=(policy,), seed=1), x)


def test_full_pipelines_differentiable_in_half_the_batch() -> None:
    # Samples that are left alone get the identity gradient, the others a real one.
    for module in (AdaptiveAugment(p=STAT_P), DiffAugment(p=STAT_P)):
        x = _images(n=32).requires_grad_(True)
        module(x).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------ p = 0 and p = 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_p_zero_is_exact_identity(dtype: torch.dtype) -> None:
    x = _images(n=32, dtype=dtype)
    assert torch.equal(AdaptiveAugment(p=0.0)(x), x)
    assert torch.equal(DiffAugment(p=0.0)(x), x)
    ada = AdaptiveAugment(p=0.7)
    ada.set_p(0.0)
    assert torch.equal(ada(x), x)


@pytest.mark.parametrize("op", OPS)
def test_ada_op_at_p_one_changes_the_image(op: str) -> None:
    x = _images(n=64)
    module = _only(op)
    changed = _changed(module(x), x)
    if _identity_chance(op, SIZE, module.xint_max) > 0:
        # The op fired everywhere, but some of its draws are the identity.
        assert changed.any() and not changed.all()
    else:
        assert changed.all()


@pytest.mark.parametrize("policy", POLICIES)
def test_diffaugment_op_changes_the_image(policy: str) -> None:
    x = _images(n=32)
    assert _changed(DiffAugment(policy=(policy,))(x), x).float().mean() > 0.5


# ------------------------------------------------------------------------ geometry


@pytest.mark.parametrize("op", BLIT_OPS + GEOMETRIC_OPS)
def test_geometric_op_keeps_constant_image_constant(op: str) -> None:
    value = 0.37
    x = torch.full((BATCH, 3, SIZE, SIZE), value)
    out = _only(op)(x)
    # Reflection padding and a filter with unit gain per polyphase leave the constant intact,
    # in the interior and at the borders alike.
    interior = out[..., 2:-2, 2:-2]
    assert (interior - value).abs().max() < FLOAT_TOL
    assert (out - value).abs().max() < FLOAT_TOL


def test_geometric_pipeline_has_no_border_leaks() -> None:
    low, high = 0.2, 0.8
    x = _smooth(low=low, high=high).expand(64, -1, -1, -1).contiguous()
    out = AdaptiveAugment.from_preset("bg", p=1.0, scale_std=0.5)(x)
    # Reflection keeps every pixel within the range of the image (up to the filter's ringing);
    # a zero fill would pull the borders down towards 0.
    assert out.min() > low - RINGING and out.max() < high + RINGING
    borders = torch.cat([out[..., 0, :], out[..., -1, :], out[..., :, 0], out[..., :, -1]], -1)
    assert borders.min() > low - RINGING


def _rotation(angle: float) -> torch.Tensor:
    cos, sin = math.cos(angle), math.sin(angle)
    return torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def test_resample_reads_far_outside_through_repeated_reflection() -> None:
    low, high = 0.2, 0.8
    x = _smooth(low=low, high=high)
    kernel = lowpass_filter(DEFAULT_FILTER_TAPS, DEFAULT_FILTER_BETA)
    rotation = _rotation(math.pi / 4)
    zoom_out = torch.diag(torch.tensor([3.0, 3.0, 1.0]))  # reads 3x beyond the image
    for g_inv in (rotation, zoom_out, rotation @ zoom_out):
        out = resample(x, g_inv[None], kernel)
        assert out.shape == x.shape
        assert out.min() > low - RINGING and out.max() < high + RINGING
    # A plain bilinear warp with zeros outside, for contrast: the corners go dark.
    grid = torch.nn.functional.affine_grid(rotation[None, :2], list(x.shape), align_corners=False)
    naive = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    assert naive.min() < low / 2


def test_integer_ops_match_exact_pixel_ops_on_a_smooth_image() -> None:
    x = _smooth(size=32)
    kernel = lowpass_filter(DEFAULT_FILTER_TAPS, DEFAULT_FILTER_BETA)
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    assert (resample(x, flip[None], kernel) - x.flip(-1)).abs().max() < PASSBAND_TOL
    # Output (x, y) reads input (y, -x): a quarter turn clockwise.
    quarter = _rotation(-math.pi / 2).round()
    exact = torch.rot90(x, -1, dims=(-2, -1))
    assert (resample(x, quarter[None], kernel) - exact).abs().max() < PASSBAND_TOL
    shift = torch.tensor([[1.0, 0.0, -3.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]])
    rolled = torch.roll(x, shifts=(-2, 3), dims=(-2, -1))
    # Compare away from the borders, where roll wraps around and the warp reflects.
    margin = 4
    diff = resample(x, shift[None], kernel) - rolled
    assert diff[..., margin:-margin, margin:-margin].abs().max() < PASSBAND_TOL


# ------------------------------------------------------------------------ probabilities


def _identity_chance(op: str, size: int, xint_max: float) -> float:
    """Chance that op, once fired, draws parameters that leave the image as it is."""
    if op == "xint":
        # The shift on one axis rounds to zero when |u * xint_max * size| < 1/2, u ~ U(-1, 1).
        return min(1.0, 0.5 / (xint_max * size)) ** 2
    return IDENTITY_DRAW.get(op, 0.0)


@pytest.mark.parametrize("op", OPS)
def test_ada_op_fires_with_probability_p_times_multiplier(op: str) -> None:
    x = _images(n=STAT_SAMPLES, size=SMALL, seed=2)
    module = _only(op, p=STAT_P, multiplier=STAT_MULTIPLIER, seed=3)
    rate = _changed(module(x), x).double().mean().item()
    expected = STAT_P * STAT_MULTIPLIER * (1 - _identity_chance(op, SMALL, module.xint_max))
    std_error = math.sqrt(expected * (1 - expected) / STAT_SAMPLES)
    assert abs(rate - expected) < STD_ERRORS * std_error, (op, rate, expected)


def test_diffaugment_applies_with_probability_p() -> None:
    x = _images(n=STAT_SAMPLES, size=SMALL, seed=4)
    p = 0.3
    rate = _changed(DiffAugment(p=p, seed=6)(x), x).double().mean().item()
    assert abs(rate - p) < STD_ERRORS * math.sqrt(p * (1 - p) / STAT_SAMPLES)


def test_draws_do_not_depend_on_p_so_augmented_sets_are_nested() -> None:
    x = _images(n=256)
    low = _changed(AdaptiveAugment(p=0.2, seed=7)(x), x)
    high_out = AdaptiveAugment(p=0.6, seed=7)(x)
    high = _changed(high_out, x)
    assert low.sum() < high.sum()
    assert (high | ~low).all()  # every sample augmented at p = 0.2 is augmented at 0.6


# ------------------------------------------------------------------------ state and RNG


def _advance(module: torch.nn.Module) -> None:
    for seed in range(3):
        module(_images(seed=seed))


def _make_ada(seed: int) -> AdaptiveAugment:
    return AdaptiveAugment(p=0.6, seed=seed)


def _make_diffaugment(seed: int) -> DiffAugment:
    return DiffAugment(p=0.8, seed=seed)


MAKERS = pytest.mark.parametrize("make", [_make_ada, _make_diffaugment], ids=["ada", "diffaug"])


@MAKERS
def test_state_round_trips_through_state_dict(make) -> None:
    source = make(11)
    _advance(source)
    source.set_p(0.45)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target = make(99)
    target.set_p(0.0)
    _advance(target)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(target.p, source.p)
    x = _images(n=32, seed=8)
    for _ in range(2):
        assert torch.equal(target(x), source(x))


def test_fresh_state_round_trips_and_reseed_restarts() -> None:
    fresh = AdaptiveAugment(p=1.0, seed=5)
    used = AdaptiveAugment(p=1.0, seed=5)
    _advance(used)
    used.load_state_dict(fresh.state_dict())
    x = _images(seed=9)
    first = fresh(x)
    assert torch.equal(used(x), first)
    fresh.reseed(5)
    assert torch.equal(fresh(x), first)


def test_augmentation_leaves_the_global_random_stream_alone() -> None:
    x = _images()
    before = torch.get_rng_state()
    AdaptiveAugment(p=1.0)(x)
    DiffAugment()(x)
    assert torch.equal(torch.get_rng_state(), before)


def test_set_p_clamps_and_p_is_a_buffer() -> None:
    module = AdaptiveAugment()
    assert "p" in dict(module.named_buffers())
    assert module.p.dtype == torch.float32
    module.set_p(1.5)
    assert module.p.item() == 1.0
    module.set_p(torch.tensor(-0.2))
    assert module.p.item() == 0.0


# ------------------------------------------------------------------------ configuration


def test_diffaugment_policy_validation_names_the_bad_policy() -> None:
    with pytest.raises(ValueError, match="'bogus'") as info:
        DiffAugment(policy=("color", "bogus"))
    for name in POLICIES:
        assert name in str(info.value)
    assert DiffAugment(policy="color, cutout").policy == ("color", "cutout")


def test_presets() -> None:
    assert preset_multipliers("bgc") == {op: 1.0 for op in OPS}
    bg = AdaptiveAugment.from_preset("bg")
    assert all(bg.multipliers[op] == 1.0 for op in BLIT_OPS + GEOMETRIC_OPS)
    assert all(bg.multipliers[op] == 0.0 for op in COLOR_OPS)
    blit = AdaptiveAugment.from_preset("b", xfrac=0.5)
    assert [op for op, m in blit.multipliers.items() if m > 0] == [*BLIT_OPS, "xfrac"]
    assert AdaptiveAugment.from_preset("color").multipliers == preset_multipliers("c")
    assert AdaptiveAugment().multipliers == preset_multipliers("bgc")
    with pytest.raises(ValueError, match="'bx'"):
        AdaptiveAugment.from_preset("bx")
    # With the colour ops off, an image needs no colour channels.
    x = torch.rand(4, 5, SIZE, SIZE)
    assert AdaptiveAugment.from_preset("bg", p=1.0)(x).shape == x.shape


def test_grey_images_get_colour_ops() -> None:
    x = _images()[:, :1]
    out = AdaptiveAugment.from_preset("c", p=1.0)(x)
    assert out.shape == x.shape and _changed(out, x).all()


# ------------------------------------------------------------------------ ADA's p


class _Strategy:
    def reduce(self, value: torch.Tensor, reduce_op: str = "sum") -> torch.Tensor:
        return value  # one process


class _Trainer:
    """What the p callbacks read of a Lightning trainer."""

    strategy = _Strategy()
    log_every_n_steps = 1000
    should_stop = False
    is_global_zero = True
    global_step = 0
    loggers: list = []


class _Module(torch.nn.Module):
    """What the p callbacks read of the training module."""

    def __init__(self, diffusion: torch.nn.Module | None = None, batch_size: int = 16) -> None:
        super().__init__()
        self.augment = AdaptiveAugment()
        self.diffusion = diffusion
        self.batch_size = batch_size
        self.cur_step = 0
        self.kimg = 0.0

    def log_dict(self, *args, **kwargs) -> None:
        pass


def _ada_p(module: _Module, **kwargs) -> AdaptiveProbability:
    """The controller of ``module.augment``'s p, as the run builder makes it."""
    return AdaptiveProbability(module.augment, drives="augment", follow=module.diffusion,
                               **kwargs)


def _step(callback: AdaptiveProbability, module: _Module, real_sign: float, n: int = 16) -> None:
    signs = real_sign * torch.ones(n)
    outputs = {"real_signs": signs.sum(), "real_count": torch.tensor(float(n))}
    callback.on_train_batch_start(_Trainer(), module, None, 0)
    callback.on_train_batch_end(_Trainer(), module, outputs, None, 0)
    module.cur_step += 1


def test_without_diffusion_ada_p_follows_its_own_heuristic() -> None:
    batch, interval, ada_kimg = 16, 4, 2.0
    step = batch * interval / (ada_kimg * 1000)
    module = _Module(batch_size=batch)
    callback = _ada_p(module, interval=interval, ada_kimg=ada_kimg)
    for i in range(interval):
        _step(callback, module, +1.0, batch)  # r_t = 1 > target 0.6: D overfits
        expected = step if i == interval - 1 else 0.0  # nothing moves between updates
        assert module.augment.p.item() == pytest.approx(expected)
    for _ in range(interval):
        _step(callback, module, -1.0, batch)
    assert module.augment.p.item() == pytest.approx(0.0)
    for _ in range(interval):  # clamped at 0
        _step(callback, module, -1.0, batch)
    assert module.augment.p.item() == 0.0


def test_with_diffusion_ada_p_is_the_diffusions_capped() -> None:
    from dgan.diffusion import Diffusion

    diffusion = Diffusion()
    module = _Module(diffusion=diffusion)
    callback = _ada_p(module, ada_maxp=0.25)
    for p, expected in ((0.1, 0.1), (0.9, 0.25)):
        diffusion.set_p(p)
        _step(callback, module, +1.0)
        assert module.augment.p.item() == pytest.approx(expected)


def test_ada_p_state_round_trips() -> None:
    module = _Module()
    source = _ada_p(module, interval=4, ada_kimg=1.0)
    for _ in range(6):  # one update and two steps into the next interval
        _step(source, module, +1.0)
    copy = _Module()
    target = _ada_p(copy, interval=4, ada_kimg=1.0)
    target.load_state_dict(source.state_dict())
    copy.augment.load_state_dict(module.augment.state_dict())
    for _ in range(2):
        _step(source, module, +1.0)
        _step(target, copy, +1.0)
    assert torch.equal(copy.augment.p, module.augment.p) and module.augment.p.item() > 0


# ------------------------------------------------------------------------ grid


@MAKERS
def test_augmentation_grid_restores_state(make) -> None:
    module, twin = make(4), make(4)
    _advance(module)
    _advance(twin)
    x = _images(n=4, seed=12)
    ps = (0.0, 0.25, 0.5, 1.0)
    grid = augmentation_grid(module, x, ps)
    assert grid.shape == (len(ps) * x.shape[0], *x.shape[1:])
    assert torch.equal(grid[: x.shape[0]], x)  # the p = 0 row is the batch itself
    assert _changed(grid[-x.shape[0] :], x).all()
    assert torch.equal(module.p, twin.p)
    assert torch.equal(module(x), twin(x))  # the random stream is where it was


def test_the_two_controllers_have_their_own_checkpoint_keys() -> None:
    # One class drives both p's; their states must not overwrite each other in a checkpoint,
    # and checkpoints written when they were two classes keep resuming under these keys.
    from dgan.diffusion import Diffusion

    module = _Module(diffusion=Diffusion())
    keys = [AdaptiveProbability(module.diffusion).state_key, _ada_p(module).state_key]
    assert keys == ["AdaptiveDiffusion", "AugmentProbability"]

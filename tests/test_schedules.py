import math

import numpy as np
import pytest
import torch

from dgan.diffusion.schedules import SCHEDULES, alphas_bar, beta_schedule, betas_on_grid


def reference_betas(name: str, T: int, bs: float = 1e-4, be: float = 2e-2) -> np.ndarray:
    """Closed forms written independently with numpy, as the reference defines them."""
    if name == "linear":
        return np.linspace(bs, be, T)
    if name == "quad":
        return np.linspace(bs**0.5, be**0.5, T) ** 2
    if name == "const":
        return be * np.ones(T)
    if name == "jsd":
        return 1.0 / np.linspace(T, 1, T)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-np.linspace(-6, 6, T))) * (be - bs) + bs
    if name == "cosine":
        f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    if name == "continuous_t":
        t = np.arange(1, T + 1)
        return 1 - np.exp(-0.1 / T - 0.5 * (5.0 - 0.1) * (2 * t - 1) / T**2)
    raise AssertionError(name)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [1, 10, 137, 1000])
def test_schedule_matches_closed_form(name: str, T: int) -> None:
    ours = beta_schedule(name, T).numpy()
    expected = reference_betas(name, T)
    assert ours.shape == (T,)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test_grid_is_zero_beyond_T_and_abar_starts_clean(name: str) -> None:
    betas = betas_on_grid(name, torch.tensor(40), 100)
    assert torch.all(betas[40:] == 0)
    abar = alphas_bar(betas)
    assert abar.shape == (101,)
    assert abar[0] == 1.0
    assert torch.all(abar[41:] == abar[40])  # steps beyond T leave abar unchanged
    assert torch.all(abar[1:41] < 1)


def test_continuous_t_matches_vp_sde_marginal() -> None:
    T = 200
    abar = alphas_bar(beta_schedule("continuous_t", T))
    t = torch.arange(T + 1, dtype=torch.float64) / T
    expected = torch.exp(-0.1 * t - 0.5 * (5.0 - 0.1) * t**2)
    torch.testing.assert_close(abar, expected)


def test_unknown_schedule_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="beta_schedule='cosin'.*linear"):
        beta_schedule("cosin", 10)

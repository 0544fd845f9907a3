import pytest
import torch

from dgan.callbacks.adaptive_probability import AdaptiveProbability
from dgan.diffusion import Diffusion
from dgan.diffusion.adaptive import adjust_p


def test_q_sample_mean_and_variance_per_t() -> None:
    d = Diffusion(t_min=50, t_max=50, noise_std=0.3, seed=1)
    x0 = torch.full((20000, 2), 1.5)
    for t in (0, 1, 10, 50):
        tt = torch.full((x0.shape[0],), t, dtype=torch.long)
        y = d.q_sample(x0, tt)
        abar = d.sqrt_abar[t] ** 2
        assert y.mean().item() == pytest.approx(1.5 * abar.sqrt().item(), abs=0.01)
        assert y.var().item() == pytest.approx(((1 - abar) * 0.3**2).item(), rel=0.05, abs=1e-6)


def test_bernoulli_noise_is_plus_minus_sigma() -> None:
    d = Diffusion(noise_type="bernoulli", noise_std=0.2)
    noise = d.sample_noise(torch.zeros(1000))
    torch.testing.assert_close(noise.abs(), torch.full_like(noise, 0.2))
    assert 0.4 < (noise > 0).float().mean() < 0.6


def test_q_sample_any_shape_and_differentiable() -> None:
    d = Diffusion()
    for shape in [(4, 2), (4, 3, 8, 8), (4, 16, 5)]:
        x = torch.randn(shape, requires_grad=True)
        y, t = d(x)
        assert y.shape == x.shape and t.shape == (4,)
        y.sum().backward()
        expected = d.sqrt_abar[t].reshape((-1,) + (1,) * (len(shape) - 1)).expand(shape)
        torch.testing.assert_close(x.grad, expected)


def test_priority_pool_weights_and_clean_fraction() -> None:
    d = Diffusion(t_min=20, t_max=20, pool_size=20000, clean_fraction=0.5, ts_dist="priority")
    pool = d.pool
    assert (pool == 0).float().mean().item() == pytest.approx(0.5, abs=1e-6)
    noisy = pool[pool > 0]
    assert noisy.min() >= 2 and noisy.max() <= 20  # weight t-1: t = 1 never drawn
    freq = torch.bincount(noisy, minlength=21)[1:].float() / noisy.numel()
    expected = torch.arange(20).float() / torch.arange(20).sum()
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)


def test_uniform_per_sample_has_no_clean_slots() -> None:
    d = Diffusion(t_min=30, t_max=30, ts_dist="uniform", t_sampling="per_sample")
    t = d.sample_t(30000)
    assert t.min() == 1 and t.max() == 30
    freq = torch.bincount(t, minlength=31)[1:].float() / t.numel()
    torch.testing.assert_close(freq, torch.full((30,), 1 / 30), atol=0.01, rtol=0)


def test_pool_sampling_picks_slots_uniformly() -> None:
    d = Diffusion(t_min=100, t_max=100, pool_size=64)
    t = d.sample_t(64000)
    assert (t == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert set(t.unique().tolist()) <= set(d.pool.tolist())


def test_adaptive_update_direction_rate_clipping_and_T() -> None:
    d = Diffusion(t_min=10, t_max=1000)

    def adapt(r_d: torch.Tensor, num_images: int) -> None:
        adjust_p(d, r_d, d_target=0.6, num_images=num_images, ada_kimg=100)

    adapt(torch.tensor(0.9), num_images=64 * 4)  # D overfits: the chain grows
    step = 64 * 4 / (100 * 1000)
    assert d.p.item() == pytest.approx(step)
    assert d.T.item() == 10 + round(step * 990)
    adapt(torch.tensor(0.1), num_images=64 * 4)  # weak D: the chain shrinks
    assert d.p.item() == pytest.approx(0.0, abs=1e-7)
    adapt(torch.tensor(0.1), num_images=64 * 4)
    assert d.p.item() == 0.0 and d.T.item() == 10  # clipped at 0
    adapt(torch.tensor(1.0), num_images=10**6)
    assert d.p.item() == 1.0 and d.T.item() == 1000  # clipped at 1
    d.set_p(0.5)
    assert d.T.item() == 10 + round(0.5 * 990)


def test_T_update_rebuilds_schedule_and_redraws_pool() -> None:
    d = Diffusion(t_min=10, t_max=1000)
    pool_before = d.pool.clone()
    d.set_p(1.0)
    assert d.pool.max() > pool_before.max()
    expected = Diffusion(t_min=1000, t_max=1000)
    torch.testing.assert_close(d.sqrt_abar, expected.sqrt_abar)


def test_state_dict_round_trip_restores_p_T_pool_and_rng() -> None:
    d = Diffusion(seed=3)
    d.set_p(0.2)
    d.sample_t(10)  # advance the generator
    state = d.state_dict()
    restored = Diffusion(seed=99)
    restored.load_state_dict(state)
    assert restored.p == d.p and restored.T == d.T
    assert torch.equal(restored.pool, d.pool)
    torch.testing.assert_close(restored.sqrt_abar, d.sqrt_abar)
    assert torch.equal(restored.sample_t(100), d.sample_t(100))
    x = torch.zeros(5, 3)
    assert torch.equal(restored.sample_noise(x), d.sample_noise(x))


def test_state_survives_torch_save_with_weights_only(tmp_path) -> None:
    d = Diffusion()
    d.set_p(0.3)
    d.sample_t(3)
    torch.save(d.state_dict(), tmp_path / "d.pt")
    state = torch.load(tmp_path / "d.pt", weights_only=True)
    restored = Diffusion()
    restored.load_state_dict(state)
    assert restored.T == d.T


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"t_min": 20, "t_max": 10}, "t_max"),
        ({"t_min": -1}, "t_min"),
        ({"noise_std": 0.0}, "noise_std"),
        ({"beta_schedule": "nope"}, "beta_schedule"),
        ({"ts_dist": "nope"}, "ts_dist"),
        ({"t_sampling": "nope"}, "t_sampling"),
    ],
)
def test_bad_values_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}="):
        Diffusion(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"d_target": 1.5}, "d_target"), ({"ada_kimg": 0}, "ada_kimg"), ({"interval": 0}, "interval"),
     ({"ada_maxp": 2.0}, "ada_maxp"), ({"drives": "generator"}, "drives")],
)
def test_bad_adaptive_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}="):
        AdaptiveProbability(Diffusion(), **kwargs)

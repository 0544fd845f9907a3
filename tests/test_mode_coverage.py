"""Mode coverage on the toy sets: modes, HQ, mode KL, and the border/inner-mode numbers."""

from __future__ import annotations

import pytest
import torch

from dgan.data.toy import ToyDataset, inner_mode_mask, toy_modes
from dgan.metrics.direction import higher_is_better
from dgan.metrics.mode_coverage import border_threshold, mode_statistics

STD = 0.05


def _around(modes: torch.Tensor, per_mode: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = modes.repeat_interleave(per_mode, dim=0)
    return centres + STD * torch.randn(centres.shape, generator=gen)


def test_grid_has_nine_inner_modes_and_the_ring_none():
    grid = inner_mode_mask("gaussians25")
    assert int(grid.sum()) == 9
    assert toy_modes("gaussians25")[grid].abs().amax() == 2.0
    assert not inner_mode_mask("ring8").any()
    assert int(ToyDataset("gaussians25", size=10).inner_modes.sum()) == 9


def test_data_itself_covers_everything_and_puts_16_of_25_in_the_border_band():
    modes = toy_modes("gaussians25")
    inner = inner_mode_mask("gaussians25")
    assert border_threshold(modes, inner, STD) == 3.5
    stats = mode_statistics(_around(modes, 100), modes, STD, inner=inner)
    assert stats["modes_covered"] == 25 and stats["inner_modes_covered"] == 9
    assert stats["hq_fraction"] > 0.95 and stats["mode_kl"] < 0.01
    assert stats["border_fraction"] == pytest.approx(16 / 25)


def test_a_generator_spread_along_the_edge_shows_in_border_fraction():
    modes = toy_modes("gaussians25")
    # A curve along the square through the outer modes: crosses them, misses the inner ones.
    s = torch.linspace(-4.0, 4.0, 250)
    edge = torch.full_like(s, 4.0)
    square = torch.cat([torch.stack(p, 1) for p in ((s, edge), (s, -edge), (edge, s), (-edge, s))])
    stats = mode_statistics(square, modes, STD, inner=inner_mode_mask("gaussians25"))
    assert stats["border_fraction"] == 1.0 and stats["inner_modes_covered"] == 0
    ring = toy_modes("ring8")
    no_inner = inner_mode_mask("ring8")
    assert border_threshold(ring, no_inner, STD) == float(ring.abs().amax()) + 3 * STD


def test_collapse_onto_inner_modes_is_told_apart_from_the_border():
    modes = toy_modes("gaussians25")
    inner = inner_mode_mask("gaussians25")
    stats = mode_statistics(_around(modes[inner], 100), modes, STD, inner=inner)
    assert stats["modes_covered"] == 9 and stats["inner_modes_covered"] == 9
    assert stats["border_fraction"] == 0.0


def test_border_fraction_is_minimised():
    assert not higher_is_better("border_fraction")
    assert higher_is_better("inner_modes_covered")


def test_mlp_generator_activation_option_keeps_the_relu_default():
    from torch import nn

    from dgan.networks.mlp import MLPGenerator

    torch.manual_seed(0)
    relu = MLPGenerator(z_dim=2, hidden=16, num_layers=2)
    torch.manual_seed(0)
    leaky = MLPGenerator(z_dim=2, hidden=16, num_layers=2, activation="leaky_relu")
    assert [type(m) for m in relu.body if not isinstance(m, nn.Linear)] == [nn.ReLU, nn.ReLU]
    slopes = [m.negative_slope for m in leaky.body if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2]
    # Same parameters, so the option changes only the nonlinearity.
    z = -torch.ones(4, 2)
    pairs = zip(relu.parameters(), leaky.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(relu(z), leaky(z))

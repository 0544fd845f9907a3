import pytest
import torch

from dgan.networks.conditioning import CONDITIONING_MODES, TimestepConditioning
from dgan.networks.mlp import MLPDiscriminator


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_d_output_depends_on_t_except_none(mode: str) -> None:
    torch.manual_seed(0)
    D = MLPDiscriminator(t_conditioning=mode, t_max=100)
    if mode == "raw":
        # The reference's raw head starts with a zero embedding bias, which the 2nd-moment
        # normalisation reduces to sign(t); training moves the bias. Stand in for that.
        with torch.no_grad():
            D.head.mapping.embed.bias.uniform_(-1, 1)
    x = torch.randn(8, 2)
    out0 = D(x, None, torch.full((8,), 3))
    out1 = D(x, None, torch.full((8,), 70))
    assert out0.shape == (8, 1)
    if mode == "none":
        assert torch.equal(out0, out1)
    else:
        assert not torch.allclose(out0, out1)


def test_raw_head_matches_reference_projection() -> None:
    head = TimestepConditioning(mode="raw", c_dim=3, cmap_dim=16, num_layers=2)
    features = torch.randn(4, 16)
    c = torch.eye(3)[[0, 1, 2, 0]]
    t = torch.tensor([0, 5, 10, 999])
    cmap = head.mapping(None, torch.cat([c, t[:, None].float()], dim=1))
    expected = (features * cmap).sum(1, keepdim=True) / 16**0.5
    torch.testing.assert_close(head(features, c, t), expected)


def test_label_conditioning_without_t() -> None:
    head = TimestepConditioning(mode="none", c_dim=2, cmap_dim=8)
    features = torch.randn(2, head.in_features)
    a = head(features, torch.tensor([[1.0, 0], [1, 0]]), None)
    b = head(features, torch.tensor([[0.0, 1], [0, 1]]), None)
    assert not torch.allclose(a, b)


def test_unconditional_none_is_plain_output() -> None:
    head = TimestepConditioning(mode="none", c_dim=0)
    assert head.in_features == 1
    f = torch.randn(3, 1)
    assert torch.equal(head(f, None, torch.tensor([1, 2, 3])), f)


def test_unknown_mode_names_valid_modes() -> None:
    with pytest.raises(ValueError, match="'rawr'.*normalized"):
        TimestepConditioning(mode="rawr")


def test_raw_head_at_init_sees_only_the_sign_of_t() -> None:
    # Faithful to the reference: documents why the bias matters (see TimestepConditioning).
    head = TimestepConditioning(mode="raw", cmap_dim=8, num_layers=2)
    f = torch.randn(2, 8)
    torch.testing.assert_close(head(f, None, torch.tensor([3, 3])),
                               head(f, None, torch.tensor([700, 700])))

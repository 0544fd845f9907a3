"""The paper's toy figure: generated points over the data, and D's view of the plane.

One panel shows G's samples over the training points; one panel per timestep shows
sigmoid(D(y, t)) over a grid of points y, with axes, a colour bar and a title naming the
method, the kimg and t. A plain GAN's D takes no t, so it has a single map. Written by the
:class:`dgan.callbacks.toy_figure.ToyFigure` callback during training and by ``dgan.generate``
for a toy checkpoint.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dgan.files.atomic import atomic_write_bytes

# Grid points per axis of the D maps (steps x steps evaluations of D per map).
MAP_STEPS = 200
# Half-width of the plotted square (the toy sets lie within about [-4, 4]).
DEFAULT_LIM = 5.0
PANEL_INCHES = 4.0
DPI = 100
POINT_SIZE = 2


def method_name(has_diffusion: bool) -> str:
    """How the figure names the method of a run."""
    return "Diffusion-GAN" if has_diffusion else "plain GAN"


def figure_timesteps(T: int | None) -> list[int | None]:
    """The t of the D maps: none for a plain GAN; else 0 (clean), T/2 and T, the chain's
    current length (D is trained on t <= T)."""
    if T is None:
        return [None]
    return sorted({0, int(T) // 2, int(T)})


@torch.no_grad()
def discriminator_maps(D: nn.Module, ts: Sequence[int | None], lim: float = DEFAULT_LIM,
                       steps: int = MAP_STEPS, c_dim: int = 0,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """sigmoid(D(y, t)) on a steps x steps grid over [-lim, lim]^2, one map per t.

    Args:
        D: the discriminator, called as ``D(y, c, t)``.
        ts: timesteps of the maps (None: D without a t input).
        lim: half-width of the square.
        steps: grid points per axis.
        c_dim: label width of D (the maps use all-zero labels).
        device: where D runs.

    Returns:
        [len(ts), steps, steps], row 0 at y2 = -lim.
    """
    axis = torch.linspace(-lim, lim, steps, device=device)
    y2, y1 = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([y1.flatten(), y2.flatten()], dim=1)
    c = torch.zeros(points.shape[0], c_dim, device=device)
    maps = []
    for t in ts:
        t_in = None if t is None else torch.full((points.shape[0],), int(t), device=device,
                                                 dtype=torch.long)
        logits = D(points, c, t_in).float().reshape(steps, steps)
        maps.append(torch.sigmoid(logits))
    return torch.stack(maps).cpu()


def save_toy_figure(fakes: torch.Tensor, reals: torch.Tensor | None, maps: torch.Tensor,
                    ts: Sequence[int | None], path: str | Path, method: str, kimg: float,
                    lim: float = DEFAULT_LIM) -> Path:
    """Write the figure as one PNG.

    Args:
        fakes: generated points [N, 2].
        reals: training points [M, 2] drawn under them (None: none).
        maps: D maps from :func:`discriminator_maps`.
        ts: their timesteps.
        path: the PNG to write (atomically).
        method: the method's name in the titles.
        kimg: training progress in the titles.
        lim: half-width of the square (as the maps were computed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + len(ts)
    fig, axes = plt.subplots(1, panels, figsize=(PANEL_INCHES * panels * 1.1, PANEL_INCHES),
                             dpi=DPI, squeeze=False, layout="constrained")
    ax = axes[0, 0]
    if reals is not None:
        ax.scatter(reals[:, 0], reals[:, 1], s=POINT_SIZE, c="tab:blue", alpha=0.3, label="data")
    ax.scatter(fakes[:, 0], fakes[:, 1], s=POINT_SIZE, c="tab:red", alpha=0.5,
               label="generated")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(f"{method}, kimg {kimg:.0f}: samples")
    for ax, image, t in zip(axes[0, 1:], maps, ts, strict=True):
        shown = ax.imshow(image.numpy(), origin="lower", extent=(-lim, lim, -lim, lim),
                          vmin=0.0, vmax=1.0, cmap="viridis")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="sigmoid(D)")
        which = "sigmoid(D(y))" if t is None else f"sigmoid(D(y, t)), t = {t}"
        ax.set_title(f"{method}, kimg {kimg:.0f}: {which}", fontsize=9)
    for ax in axes[0]:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("y1")
        ax.set_ylabel("y2")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)

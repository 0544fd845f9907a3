"""Writing pictures: image grids and 2-D scatter plots, as PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dgan.files.atomic import atomic_write_bytes

# The file of a grid of samples (generate, style_mixing).
GRID_FILE = "grid.png"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8, the rounding StyleGAN2-ADA uses for metrics and PNGs."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """[N, C, H, W] float in [-1, 1] -> one uint8 grid [C, rows*H, columns*W]."""
    n, ch, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = torch.zeros(ch, rows * h, columns * w, dtype=torch.uint8)
    for i, img in enumerate(to_uint8(images.detach().cpu().float())):
        r, col = divmod(i, columns)
        grid[:, r * h:(r + 1) * h, col * w:(col + 1) * w] = img
    return grid


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write a uint8 [C, H, W] image (1 or 3 channels) as PNG, atomically."""
    import io

    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_image_grid(images: torch.Tensor, path: str | Path, columns: int | None = None) -> Path:
    """Write a grid of [-1, 1] images as one PNG."""
    return save_png(image_grid(images, columns), path)


def save_scatter(fakes: torch.Tensor, reals: torch.Tensor | None, path: str | Path,
                 title: str = "", lim: float = 5.0) -> Path:
    """Scatter plot of generated 2-D points over the data, as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reals is not None:
        ax.scatter(reals[:, 0], reals[:, 1], s=2, c="tab:blue", alpha=0.3, label="data")
    ax.scatter(fakes[:, 0], fakes[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)

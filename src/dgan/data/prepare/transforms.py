"""Making a source image square at the target resolution: center crop, resize, or the
reference dataset tool's wide crop."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dgan.data.prepare.source import PrepareError

# to_square's two; center-crop-wide (center_crop_wide) may drop an image, so it is apart.
SQUARE_TRANSFORMS = ("center-crop", "resize")


WIDE_TRANSFORM = "center-crop-wide"


TRANSFORMS = (*SQUARE_TRANSFORMS, WIDE_TRANSFORM)


_UNDECODABLE = "undecodable"


_TOO_SMALL = f"too small for {WIDE_TRANSFORM}"


def to_square(image: Image.Image, resolution: int, transform: str = "center-crop") -> Image.Image:
    """``image`` made square (central crop, or a stretch for ``resize``) at ``resolution``."""
    if transform not in SQUARE_TRANSFORMS:
        raise PrepareError(
            f"to_square: transform {transform!r} is not one of {', '.join(SQUARE_TRANSFORMS)} "
            f"({WIDE_TRANSFORM} is center_crop_wide, which may drop an image)"
        )
    width, height = image.size
    if transform == "center-crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (resolution, resolution):
        # Lanczos, as StyleGAN2-ADA's dataset tool, so statistics match datasets made there.
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return image


def center_crop_wide(image: Image.Image, width: int, height: int) -> Image.Image | None:
    """The reference dataset tool's wide crop of ``image`` onto a black ``width`` square, or None.

    A band of ``round(width * h / w)`` rows (full width) is cut from the middle of the ``w`` x
    ``h`` source, resized to ``width`` x ``height`` and centred vertically on the square. The
    band's height is computed from the output width, as the reference does: the crop has the
    aspect ``width:height`` only for a source exactly ``width`` wide, and it is kept that way so
    that datasets equal the authors'. Images narrower than ``width``, or whose band is shorter
    than ``height``, are dropped (None), as there.
    """
    if not 0 < height <= width:
        raise PrepareError(f"--crop-height={height} must be in [1, {width}] (the resolution)")
    src_width, src_height = image.size
    band = round(width * src_height / src_width)
    if src_width < width or band < height:
        return None
    top = (src_height - band) // 2
    band_image = image.crop((0, top, src_width, top + band))
    if band_image.size != (width, height):
        band_image = band_image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(band_image)
    canvas = np.zeros((width, *pixels.shape[1:]), dtype=np.uint8)
    offset = (width - height) // 2
    canvas[offset : offset + height] = pixels
    return Image.fromarray(canvas)


def _fit(
    image: Image.Image, resolution: int, transform: str, crop_height: int | None
) -> Image.Image | None:
    """``image`` at ``resolution`` by ``transform``; None where center-crop-wide drops it."""
    if transform == WIDE_TRANSFORM:
        return center_crop_wide(image, resolution, crop_height or resolution)
    return to_square(image, resolution, transform)


def _check_crop_height(crop_height: int | None, resolution: int) -> None:
    if crop_height is not None and crop_height > resolution:
        raise PrepareError(
            f"--crop-height={crop_height} is taller than --resolution={resolution}; the band "
            "must fit in the square: use a height up to the resolution"
        )


def _resized(array: np.ndarray, resolution: int) -> np.ndarray:
    if array.shape[0] == resolution and array.shape[1] == resolution:
        return array
    return np.asarray(to_square(Image.fromarray(array), resolution, "resize"))

"""Every PIL image mode becomes 8-bit pixels with the right scaling, or one refusing line.

The same conversion (:func:`dgan.data.images.image_to_uint8`) serves the dataset and
``dgan.data.prepare``; both are checked on files written here, in each mode.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan.data.images import (
    SUPPORTED_MODES,
    DatasetError,
    ImageDataset,
    UnsupportedImageError,
    image_channels,
    image_to_uint8,
)
from dgan.data.prepare import main, prepare

RNG = np.random.default_rng(17)
SIDE = 8
# 255 / 65535 = 1 / 257: the 16-bit value of 8-bit level u is 257 * u.
LEVEL_16 = 257
UINT16_MAX = 65535
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GREY, PNG_RGB = 0, 2  # PNG colour types


def _grey8(side: int = SIDE) -> np.ndarray:
    return RNG.integers(0, 256, size=(side, side), dtype=np.uint8)


def _rounded(values16: np.ndarray) -> np.ndarray:
    """The expected 8-bit levels of 16-bit values, computed in floating point."""
    return np.round(values16.astype(np.float64) * 255 / UINT16_MAX).astype(np.uint8)


def _png16(path: Path, values: np.ndarray) -> None:
    """A 16-bit grey ([H, W]) or RGB ([H, W, 3]) PNG, encoded by hand: Pillow cannot write RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    height, width = values.shape[:2]
    colour = PNG_GREY if values.ndim == 2 else PNG_RGB
    rows = values.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _save(path: Path, image: Image.Image, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


def _hwc(array: np.ndarray) -> np.ndarray:
    return array[:, :, np.newaxis] if array.ndim == 2 else array


def _pixels(dataset: ImageDataset) -> torch.Tensor:
    return torch.stack([dataset.get_uint8(i) for i in range(dataset.raw_size)])


def _one_line(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ---------------------------------------------------------------------------- 16-bit files


def test_sixteen_bit_png_dataset_equals_its_eight_bit_version(tmp_path):
    eight = [_grey8() for _ in range(3)]
    for k, array in enumerate(eight):
        _save(tmp_path / "8bit" / f"{k}.png", Image.fromarray(array))
        _save(tmp_path / "16bit" / f"{k}.png", Image.fromarray(array.astype(np.uint16) * LEVEL_16))
    with Image.open(tmp_path / "16bit" / "0.png") as image:
        assert image.mode == "I;16"
        # What convert('L') made of these files: nearly everything white.
        assert (np.asarray(image.convert("L")) == 255).mean() > 0.9

    reference = ImageDataset(tmp_path / "8bit")
    sixteen = ImageDataset(tmp_path / "16bit")
    assert sixteen.num_channels == reference.num_channels == 1
    assert torch.equal(_pixels(sixteen), _pixels(reference))
    assert torch.equal(_pixels(sixteen), torch.from_numpy(np.stack(eight))[:, None])
    x, _ = sixteen[0]
    assert torch.equal(x, reference[0][0])


def test_sixteen_bit_values_between_levels_are_rounded(tmp_path):
    values = RNG.integers(0, UINT16_MAX + 1, size=(SIDE, SIDE), dtype=np.uint16)
    # The extremes, and the values on either side of the first rounding boundary (128.5).
    values.flat[:4] = [0, UINT16_MAX, 128, 129]
    _save(tmp_path / "ds" / "a.png", Image.fromarray(values))
    pixels = ImageDataset(tmp_path / "ds").get_uint8(0)[0].numpy()
    assert pixels.flat[:4].tolist() == [0, 255, 0, 1]
    assert np.array_equal(pixels, _rounded(values))


def test_hand_written_sixteen_bit_pngs(tmp_path):
    grey = _grey8().astype(np.uint16) * LEVEL_16
    _png16(tmp_path / "grey" / "a.png", grey)
    assert torch.equal(
        ImageDataset(tmp_path / "grey").get_uint8(0)[0], torch.from_numpy(_rounded(grey))
    )
    # Pillow keeps the high byte of 16-bit RGB, which is the 8-bit level for 257 * u.
    rgb8 = RNG.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    _png16(tmp_path / "rgb" / "a.png", rgb8.astype(np.uint16) * LEVEL_16)
    dataset = ImageDataset(tmp_path / "rgb")
    assert dataset.num_channels == 3
    assert torch.equal(dataset.get_uint8(0), torch.from_numpy(rgb8.transpose(2, 0, 1)))


def test_prepare_writes_the_same_for_sixteen_and_eight_bit_sources(tmp_path, capsys):
    side = 2 * SIDE  # resized to SIDE: the Lanczos filter must see the same 8-bit input
    eight = [_grey8(side) for _ in range(2)]
    for k, array in enumerate(eight):
        _save(tmp_path / "8bit" / f"{k}.png", Image.fromarray(array))
        _save(tmp_path / "16bit" / f"{k}.png", Image.fromarray(array.astype(np.uint16) * LEVEL_16))
    for name in ("8bit", "16bit"):
        argv = [f"--source={tmp_path / name}", f"--dest={tmp_path / name}.zip"]
        assert main([*argv, f"--resolution={SIDE}"]) == 0
        assert main([*argv[:1], f"--dest={tmp_path / name}-full.zip"]) == 0
    assert "1 channel" in capsys.readouterr().out
    for suffix in ("", "-full"):
        a = ImageDataset(tmp_path / f"8bit{suffix}.zip")
        b = ImageDataset(tmp_path / f"16bit{suffix}.zip")
        assert torch.equal(_pixels(a), _pixels(b))
    full = _pixels(ImageDataset(tmp_path / "16bit-full.zip"))
    assert torch.equal(full, torch.from_numpy(np.stack(eight))[:, None])
    with zipfile.ZipFile(tmp_path / "16bit.zip") as zf, Image.open(
        io.BytesIO(zf.read("00000/img00000000.png"))
    ) as written:
        assert written.mode == "L"


def test_sixteen_bit_grey_beside_rgb_is_repeated_into_three_channels(tmp_path):
    grey = _grey8()
    rgb = RNG.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    _save(tmp_path / "ds" / "a.png", Image.fromarray(grey.astype(np.uint16) * LEVEL_16))
    _save(tmp_path / "ds" / "b.png", Image.fromarray(rgb))
    dataset = ImageDataset(tmp_path / "ds")
    assert dataset.num_channels == 3
    assert torch.equal(dataset.get_uint8(0), torch.from_numpy(np.stack([grey] * 3)))
    assert torch.equal(dataset.get_uint8(1), torch.from_numpy(rgb.transpose(2, 0, 1)))
    summary = prepare(tmp_path / "ds", tmp_path / "ds.zip")
    assert summary.channels == 3
    assert torch.equal(_pixels(ImageDataset(tmp_path / "ds.zip")), _pixels(dataset))


# ---------------------------------------------------------------------------- float and int


def test_float_tiff_is_read_as_zero_to_one(tmp_path):
    values = RNG.random((SIDE, SIDE), dtype=np.float32)
    # 0.5 / 255 is exactly between levels 0 and 1 (rounded up); 1.0 is the top level.
    values.flat[:3] = [0.0, 1.0, 0.5 / 255]
    _save(tmp_path / "ds" / "a.tif", Image.fromarray(values), fmt="TIFF")
    dataset = ImageDataset(tmp_path / "ds")
    assert dataset.num_channels == 1
    pixels = dataset.get_uint8(0)[0].numpy()
    assert pixels.flat[:3].tolist() == [0, 255, 1]
    assert np.array_equal(pixels, np.floor(values.astype(np.float64) * 255 + 0.5))
    prepare(tmp_path / "ds", tmp_path / "f.zip")
    assert torch.equal(ImageDataset(tmp_path / "f.zip").get_uint8(0), dataset.get_uint8(0))


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [(1.5, ["..1.5;", "[0, 1]"]), (-0.25, ["values -0.25..", "[0, 1]"]), (np.nan, ["NaN"])],
)
def test_float_outside_zero_to_one_is_refused_when_read(tmp_path, bad, fragments):
    values = RNG.random((SIDE, SIDE), dtype=np.float32)
    values[0, 0] = bad
    _save(tmp_path / "ds" / "a.tif", Image.fromarray(values), fmt="TIFF")
    dataset = ImageDataset(tmp_path / "ds")  # the header cannot tell
    with pytest.raises(UnsupportedImageError) as excinfo:
        dataset[0]
    _one_line(excinfo, "a.tif", "mode 'F'", *fragments)
    assert (excinfo.value.file, excinfo.value.mode) == ("a.tif", "F")
    with pytest.raises(UnsupportedImageError) as excinfo:
        ImageDataset(tmp_path / "ds", verify=True)
    _one_line(excinfo, "a.tif", "mode 'F'")
    with pytest.raises(UnsupportedImageError) as excinfo:
        prepare(tmp_path / "ds", tmp_path / "out" / "f.zip")
    _one_line(excinfo, "a.tif", "mode 'F'")
    assert list((tmp_path / "out").iterdir()) == []


def test_int32_is_read_as_sixteen_bit_when_it_fits(tmp_path):
    values = RNG.integers(0, UINT16_MAX + 1, size=(SIDE, SIDE)).astype(np.int32)
    _save(tmp_path / "ok" / "a.tif", Image.fromarray(values), fmt="TIFF")
    with Image.open(tmp_path / "ok" / "a.tif") as image:
        assert image.mode == "I"
    pixels = ImageDataset(tmp_path / "ok").get_uint8(0)[0].numpy()
    assert np.array_equal(pixels, _rounded(values))

    for name, bad in (("big", UINT16_MAX + 1), ("negative", -1)):
        values[0, 0] = bad
        _save(tmp_path / name / "a.tif", Image.fromarray(values), fmt="TIFF")
        with pytest.raises(UnsupportedImageError) as excinfo:
            ImageDataset(tmp_path / name)[0]
        _one_line(excinfo, "a.tif", "mode 'I'", str(bad), "0..65535")


# ---------------------------------------------------------------------------- every mode


def _palette_image(mode: str) -> tuple[Image.Image, np.ndarray]:
    """A P or PA image of random indices and the RGB values its palette gives them."""
    palette = RNG.integers(0, 256, size=(256, 3), dtype=np.uint8)
    indices = RNG.integers(0, 256, size=(SIDE, SIDE), dtype=np.uint8)
    image = Image.fromarray(indices).convert("P")
    image.putpalette(palette.tobytes())
    if mode == "PA":
        alpha = Image.fromarray(RNG.integers(0, 256, size=(SIDE, SIDE), dtype=np.uint8))
        image = Image.merge("PA", [image, alpha])
        image.putpalette(palette.tobytes())
    return image, palette[indices]


def _mode_case(mode: str) -> tuple[Image.Image, np.ndarray]:
    """An image in ``mode`` and the uint8 [H, W, C] it must become (computed independently)."""
    rgba = RNG.integers(0, 256, size=(SIDE, SIDE, 4), dtype=np.uint8)
    grey = rgba[:, :, 0]
    if mode == "1":
        bits = RNG.random((SIDE, SIDE)) < 0.5
        return Image.fromarray(bits), _hwc(np.where(bits, 255, 0).astype(np.uint8))
    if mode == "L":
        return Image.fromarray(grey), _hwc(grey)
    if mode == "LA":
        return Image.fromarray(rgba[:, :, :2], mode="LA"), _hwc(grey)  # alpha dropped
    if mode in ("P", "PA"):
        return _palette_image(mode)
    if mode == "RGB":
        return Image.fromarray(rgba[:, :, :3]), rgba[:, :, :3]
    if mode in ("RGBA", "RGBX"):
        # Alpha (padding for RGBX) dropped, not composited: transparent pixels keep their colour.
        return Image.fromarray(rgba, mode=mode), rgba[:, :, :3]
    if mode == "CMYK":
        cmyk = rgba
        cmyk[0, 0] = (0, 0, 0, 0)  # no ink: white
        cmyk[0, 1] = (255, 0, 0, 0)  # full cyan: no red
        cmyk[0, 2] = (0, 0, 0, 255)  # full black
        ink = (255.0 - cmyk[:, :, :3]) * (255.0 - cmyk[:, :, 3:]) / 255.0
        return Image.fromarray(cmyk, mode="CMYK"), np.round(ink).astype(np.uint8)
    if mode == "YCbCr":
        neutral = np.stack([grey, np.full_like(grey, 128), np.full_like(grey, 128)], axis=2)
        return Image.fromarray(neutral, mode="YCbCr"), np.stack([grey] * 3, axis=2)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        values = RNG.integers(0, UINT16_MAX + 1, size=(SIDE, SIDE), dtype=np.uint16)
        dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}[mode]
        image = Image.frombytes(mode, (SIDE, SIDE), values.astype(dtype).tobytes())
        return image, _hwc(_rounded(values))
    if mode == "I":
        values = RNG.integers(0, UINT16_MAX + 1, size=(SIDE, SIDE)).astype(np.int32)
        return Image.fromarray(values), _hwc(_rounded(values))
    if mode == "F":
        values = RNG.random((SIDE, SIDE), dtype=np.float32)
        return Image.fromarray(values), _hwc(np.floor(values * 255.0 + 0.5).astype(np.uint8))
    raise AssertionError(f"no case for mode {mode}")


@pytest.mark.parametrize("mode", SUPPORTED_MODES)
def test_each_supported_mode_converts_to_the_expected_pixels(mode):
    image, expected = _mode_case(mode)
    assert image.mode == mode
    array = image_to_uint8(image)
    assert array.dtype == np.uint8 and array.flags.writeable
    assert array.shape == (SIDE, SIDE, image_channels(mode)) == expected.shape
    # Pillow's CMYK and YCbCr arithmetic is integer; the references here are exact reals.
    tolerance = 1 if mode in ("CMYK", "YCbCr") else 0
    assert np.abs(array.astype(int) - expected.astype(int)).max() <= tolerance
    if mode == "CMYK":
        assert array[0, :3].tolist() == [[255, 255, 255], [0, 255, 255], [0, 0, 0]]
    three = image_to_uint8(image, channels=3)
    if expected.shape[2] == 1:
        assert np.array_equal(three, np.repeat(array, 3, axis=2))
    grey = image_to_uint8(image, channels=1)
    luma = np.asarray(Image.fromarray(np.ascontiguousarray(three)).convert("L"))
    assert np.array_equal(grey[:, :, 0], luma)


def test_mode_files_through_the_dataset(tmp_path):
    """Modes as files really store them: 1, LA, P, RGBA PNGs, a CMYK JPEG, an I;16B TIFF."""
    cases = {}
    for mode, name, fmt in [
        ("1", "a.png", "PNG"),
        ("LA", "b.png", "PNG"),
        ("P", "c.png", "PNG"),
        ("RGBA", "d.png", "PNG"),
        ("I;16B", "e.tif", "TIFF"),
    ]:
        image, expected = _mode_case(mode)
        _save(tmp_path / mode.replace(";", "") / name, image, fmt)
        with Image.open(tmp_path / mode.replace(";", "") / name) as stored:
            assert stored.mode == mode
        cases[mode] = expected
    for mode, expected in cases.items():
        dataset = ImageDataset(tmp_path / mode.replace(";", ""))
        assert dataset.num_channels == expected.shape[2]
        assert torch.equal(dataset.get_uint8(0), torch.from_numpy(expected.transpose(2, 0, 1)))

    cmyk = Image.new("CMYK", (SIDE, SIDE), (0, 255, 0, 0))  # full magenta
    _save(tmp_path / "cmyk" / "a.jpg", cmyk, "JPEG")
    dataset = ImageDataset(tmp_path / "cmyk")
    assert dataset.num_channels == 3
    red, green, blue = (dataset.get_uint8(0)[c].float().mean().item() for c in range(3))
    assert red > 240 and green < 15 and blue > 240  # JPEG is lossy: near, not exact


@pytest.mark.parametrize("mode", ["LAB", "HSV", "RGBa", "La"])
def test_unsupported_mode_is_refused_in_one_line(mode):
    image = Image.new(mode, (SIDE, SIDE))
    with pytest.raises(UnsupportedImageError) as excinfo:
        image_to_uint8(image, file="x.tif")
    message = _one_line(excinfo, "'x.tif'", f"mode '{mode}'", "supported modes", "I;16", "RGB")
    assert (excinfo.value.file, excinfo.value.mode) == ("x.tif", mode)
    assert isinstance(excinfo.value, DatasetError)
    assert message.count("image 'x.tif'") == 1


def test_unsupported_mode_file_stops_the_dataset_and_prepare_at_once(tmp_path):
    _save(tmp_path / "ds" / "a.png", Image.fromarray(_grey8()))
    _save(tmp_path / "ds" / "sub" / "lab.tif", Image.new("LAB", (SIDE, SIDE)), "TIFF")
    with pytest.raises(UnsupportedImageError) as excinfo:
        ImageDataset(tmp_path / "ds")
    _one_line(excinfo, "sub/lab.tif", "mode 'LAB'", "supported modes")
    assert excinfo.value.file == "sub/lab.tif"
    with pytest.raises(SystemExit) as exit_info:
        main([f"--source={tmp_path / 'ds'}", f"--dest={tmp_path / 'out.zip'}"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out.zip").exists()


def test_bad_channels_argument():
    with pytest.raises(ValueError, match="channels"):
        image_to_uint8(Image.new("L", (SIDE, SIDE)), channels=4)

"""LSUN's LMDB exports in ``python -m dgan.data.prepare``: decoding, the crops, skips, errors."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from dgan.data.images import ImageDataset
from dgan.data.prepare import main, to_square

# Enough map for the few small images a test stores.
MAP_SIZE = 1 << 22
RESOLUTION = 16
CORRUPT_VALUE = b"\xff\xd8\xff\xe0 a JPEG header and nothing after it"


def _pattern(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth RGB content (lossy codecs keep it recognisable), different for each seed."""
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    planes = [127 + 120 * np.sin(xs / 5 + ys / 7 + p) for p in phase]
    return np.stack(planes, axis=-1).round().astype(np.uint8)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def _write_lmdb(folder: Path, entries: dict[bytes, bytes]) -> Path:
    """An LMDB export folder (data.mdb, lock.mdb) holding ``entries``, as LSUN ships them."""
    folder.mkdir(parents=True)
    env = lmdb.open(str(folder), map_size=MAP_SIZE)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    env.close()
    assert (folder / "data.mdb").is_file()
    return folder


def _decoded(value: bytes) -> Image.Image:
    with Image.open(io.BytesIO(value)) as image:
        return image.convert("RGB")


def _read_zip(path: Path) -> tuple[list[np.ndarray], dict]:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        images = [np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in names]
        document = json.loads(zf.read("dataset.json"))
    return images, document


def _run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.strip()


def _error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as excinfo:
        main(list(argv))
    assert excinfo.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def test_jpeg_webp_and_png_entries_are_center_cropped_in_key_order(tmp_path, capsys):
    jpeg = _encode(_pattern(40, 30, 0), "JPEG")
    webp = _encode(_pattern(24, 36, 1), "WEBP")
    png = _encode(_pattern(20, 20, 2), "PNG")
    # Stored out of order: LMDB returns keys sorted, and that is the order written.
    source = _write_lmdb(
        tmp_path / "bedroom_train_lmdb",
        {b"c-png": png, b"a-jpeg": jpeg, b"b-corrupt": CORRUPT_VALUE, b"b-webp": webp},
    )
    dest = tmp_path / "lsun.zip"
    line = _run(capsys, f"--source={source}", f"--dest={dest}", f"--resolution={RESOLUTION}")

    assert line.startswith(f"wrote 3 images (lmdb) {RESOLUTION}x{RESOLUTION}, 3 channels")
    assert "no labels" in line
    assert "skipped 1 undecodable, first entry 'b-corrupt'" in line
    images, document = _read_zip(dest)
    assert document == {"labels": None}
    expected = [
        np.asarray(to_square(_decoded(value), RESOLUTION, "center-crop"))
        for value in (jpeg, webp, png)
    ]
    assert len(images) == len(expected)
    for got, want in zip(images, expected, strict=True):
        assert got.shape == (RESOLUTION, RESOLUTION, 3)
        np.testing.assert_array_equal(got, want)
    # The pictures survive their codecs: each output is close to its lossless original.
    originals = [_pattern(40, 30, 0), _pattern(24, 36, 1), _pattern(20, 20, 2)]
    for got, original in zip(images, originals, strict=True):
        reference = np.asarray(
            to_square(Image.fromarray(original), RESOLUTION, "center-crop"), dtype=np.int16
        )
        assert np.abs(got.astype(np.int16) - reference).mean() < 6
    dataset = ImageDataset(dest, resolution=RESOLUTION)
    assert (len(dataset), dataset.num_channels, dataset.c_dim) == (3, 3, 0)


def test_center_crop_keeps_the_middle_square(tmp_path, capsys):
    side = RESOLUTION
    landscape = np.zeros((side, side + 8, 3), dtype=np.uint8)
    landscape[:, 4 : 4 + side] = _pattern(side, side, 3)
    portrait = np.full((side + 6, side, 3), 255, dtype=np.uint8)
    portrait[3 : 3 + side] = _pattern(side, side, 4)
    source = _write_lmdb(
        tmp_path / "church_outdoor_train_lmdb",
        {b"0": _encode(landscape, "PNG"), b"1": _encode(portrait, "PNG")},
    )
    dest = tmp_path / "crop.zip"
    _run(capsys, f"--source={source}", f"--dest={dest}", f"--resolution={side}")
    images, _ = _read_zip(dest)
    np.testing.assert_array_equal(images[0], _pattern(side, side, 3))
    np.testing.assert_array_equal(images[1], _pattern(side, side, 4))


def test_center_crop_wide_follows_the_reference_geometry(tmp_path, capsys):
    width, band_height = RESOLUTION, RESOLUTION // 2
    # Exactly as wide as the output: the band is the whole picture, placed between black bars.
    exact = _pattern(width, band_height, 5)
    # Twice as wide: the band is round(16 * 16 / 32) = 8 of its 16 rows, resized to 16 x 8.
    wide = _pattern(2 * width, width, 6)
    band_rows = round(width * wide.shape[0] / wide.shape[1])
    top = (wide.shape[0] - band_rows) // 2
    wide_band = Image.fromarray(wide[top : top + band_rows]).resize(
        (width, band_height), Image.Resampling.LANCZOS
    )
    # Dropped, as by the reference: narrower than the output, and a band shorter than asked.
    narrow = _pattern(width - 4, 3 * width, 7)
    flat = _pattern(4 * width, width, 8)
    source = _write_lmdb(
        tmp_path / "cat_lmdb",
        {
            b"0-exact": _encode(exact, "PNG"),
            b"1-narrow": _encode(narrow, "PNG"),
            b"2-wide": _encode(wide, "PNG"),
            b"3-flat": _encode(flat, "PNG"),
        },
    )
    dest = tmp_path / "wide.zip"
    line = _run(
        capsys,
        f"--source={source}",
        f"--dest={dest}",
        f"--resolution={width}",
        "--transform=center-crop-wide",
        f"--crop-height={band_height}",
    )
    assert line.startswith(f"wrote 2 images (lmdb) {width}x{width}")
    assert f"skipped 2 too small for center-crop-wide, first entry '1-narrow' ({width - 4}x" in line

    images, _ = _read_zip(dest)
    bar = (width - band_height) // 2
    for got, band in zip(images, (exact, np.asarray(wide_band)), strict=True):
        assert got.shape == (width, width, 3)
        assert not got[:bar].any() and not got[bar + band_height :].any()
        np.testing.assert_array_equal(got[bar : bar + band_height], band)


def test_center_crop_wide_at_full_height_drops_landscape_images(tmp_path, capsys):
    # The reference's LSUN Church command (--width=256 --height=256) keeps only images at least
    # as tall as they are wide.
    square = _pattern(RESOLUTION, RESOLUTION, 9)
    source = _write_lmdb(
        tmp_path / "church_lmdb",
        {b"0": _encode(_pattern(RESOLUTION + 8, RESOLUTION, 10), "PNG"),
         b"1": _encode(square, "PNG")},
    )
    dest = tmp_path / "church.zip"
    line = _run(
        capsys, f"--source={source}", f"--dest={dest}", f"--resolution={RESOLUTION}",
        "--transform=center-crop-wide",
    )
    assert "wrote 1 images" in line and "skipped 1 too small for center-crop-wide" in line
    images, _ = _read_zip(dest)
    np.testing.assert_array_equal(images[0], square)


def test_center_crop_wide_applies_to_image_folders_too(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_pattern(RESOLUTION, RESOLUTION // 2, 11)).save(folder / "a.png")
    Image.fromarray(_pattern(RESOLUTION // 2, RESOLUTION, 12)).save(folder / "b.png")
    dest = tmp_path / "folder.zip"
    line = _run(
        capsys, f"--source={folder}", f"--dest={dest}", f"--resolution={RESOLUTION}",
        "--transform=center-crop-wide", f"--crop-height={RESOLUTION // 2}",
    )
    assert "wrote 1 images" in line and "first 'b.png' in " in line and "(8x16)" in line
    images, _ = _read_zip(dest)
    quarter = RESOLUTION // 4
    np.testing.assert_array_equal(
        images[0][quarter : quarter + RESOLUTION // 2], _pattern(RESOLUTION, RESOLUTION // 2, 11)
    )


def test_max_images_reads_the_first_entries(tmp_path, capsys):
    values = {f"{k:02d}".encode(): _encode(_pattern(20, 18, 20 + k), "PNG") for k in range(5)}
    values[b"01"] = CORRUPT_VALUE
    source = _write_lmdb(tmp_path / "many_lmdb", values)

    dest = tmp_path / "first3.zip"
    line = _run(capsys, f"--source={source}", f"--dest={dest}", "--max-images=3",
                f"--resolution={RESOLUTION}")
    # Three entries read, the corrupt one among them: two written, as the reference would.
    assert "wrote 2 images" in line and "skipped 1 undecodable" in line
    images, _ = _read_zip(dest)
    for got, key in zip(images, (b"00", b"02"), strict=True):
        want = to_square(_decoded(values[key]), RESOLUTION, "center-crop")
        np.testing.assert_array_equal(got, np.asarray(want))

    dest = tmp_path / "first1.zip"
    line = _run(capsys, f"--source={source}", f"--dest={dest}", "--max-images=1",
                f"--resolution={RESOLUTION}")
    assert "wrote 1 images" in line and "skipped" not in line


def test_default_resolution_is_lsun_size(tmp_path, capsys):
    source = _write_lmdb(tmp_path / "one_lmdb", {b"0": _encode(_pattern(40, 32, 30), "JPEG")})
    dest = tmp_path / "default.zip"
    line = _run(capsys, f"--source={source}", f"--dest={dest}")
    assert "256x256" in line
    images, _ = _read_zip(dest)
    assert images[0].shape == (256, 256, 3)


def test_a_data_mdb_path_names_its_folder(tmp_path, capsys):
    source = _write_lmdb(tmp_path / "x_lmdb", {b"0": _encode(_pattern(16, 16, 31), "PNG")})
    dest = tmp_path / "by_file.zip"
    line = _run(capsys, f"--source={source / 'data.mdb'}", f"--dest={dest}",
                f"--resolution={RESOLUTION}")
    assert "wrote 1 images (lmdb)" in line


def test_paths_that_are_not_an_lmdb_export_stop_in_one_line(tmp_path, capsys):
    dest = tmp_path / "out.zip"
    empty = tmp_path / "bedroom_train_lmdb"
    empty.mkdir()
    (empty / "lock.mdb").write_bytes(b"")
    line = _error(capsys, f"--source={empty}", f"--dest={dest}")
    assert "named like an LMDB export but holds no data.mdb" in line

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(b"this is not a database" * 512)
    line = _error(capsys, f"--source={garbage}", f"--dest={dest}")
    assert "is not a readable LMDB database" in line and "data.mdb" in line

    lmdb_folder = _write_lmdb(tmp_path / "zipped_lmdb", {b"0": _encode(_pattern(8, 8, 0), "PNG")})
    zipped = tmp_path / "bedroom_train_lmdb.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for name in ("data.mdb", "lock.mdb"):
            zf.write(lmdb_folder / name, f"bedroom_train_lmdb/{name}")
    line = _error(capsys, f"--source={zipped}", f"--dest={dest}")
    assert "zipped LMDB export" in line and "unzip it" in line

    empty_db = _write_lmdb(tmp_path / "nothing_lmdb", {})
    line = _error(capsys, f"--source={empty_db}", f"--dest={dest}")
    assert "holds no entries" in line

    only_corrupt = _write_lmdb(tmp_path / "bad_lmdb", {b"0": CORRUPT_VALUE})
    line = _error(capsys, f"--source={only_corrupt}", f"--dest={dest}")
    assert "no images to write" in line
    assert not dest.exists()


def test_missing_lmdb_package_names_the_install(tmp_path, capsys, monkeypatch):
    source = _write_lmdb(tmp_path / "x_lmdb", {b"0": _encode(_pattern(16, 16, 32), "PNG")})
    monkeypatch.setitem(sys.modules, "lmdb", None)
    line = _error(capsys, f"--source={source}", f"--dest={tmp_path / 'out.zip'}")
    assert "needs the lmdb package: pip install lmdb (or pip install 'dgan[lsun]')" in line


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--crop-height=8"], "--crop-height=8 applies to --transform=center-crop-wide only"),
        (["--transform=center-crop-wide", f"--crop-height={2 * RESOLUTION}"],
         f"--crop-height={2 * RESOLUTION} is taller than --resolution={RESOLUTION}"),
        (["--labels-from-folders"], "--labels-from-folders applies to image folders only"),
    ],
)
def test_option_errors_name_the_option(tmp_path, capsys, extra, fragment):
    source = _write_lmdb(tmp_path / "x_lmdb", {b"0": _encode(_pattern(16, 16, 33), "PNG")})
    dest = tmp_path / "out.zip"
    line = _error(capsys, f"--source={source}", f"--dest={dest}", f"--resolution={RESOLUTION}",
                  *extra)
    assert fragment in line
    assert not dest.exists()


def test_center_crop_wide_is_refused_for_square_archives(tmp_path, capsys):
    line = _error(capsys, "--source=digits", f"--dest={tmp_path / 'd.zip'}",
                  "--transform=center-crop-wide")
    assert "applies to image folders and LMDB exports only" in line

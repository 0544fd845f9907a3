"""Image datasets, the prepare command and the embedded digits, on data the tests make."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import dgan.data.prepare.writer as prepare_writer
from dgan.data.digits import DigitsDataset
from dgan.data.images import CorruptImageError, DatasetError, ImageDataset, ImageFileError
from dgan.data.prepare import PrepareError, main, prepare, to_square

RNG = np.random.default_rng(0)


def _save(path: Path, array: np.ndarray, fmt: str = "PNG") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return array


def _random(size: int | tuple[int, int], channels: int = 3) -> np.ndarray:
    h, w = (size, size) if isinstance(size, int) else size
    shape = (h, w) if channels == 1 else (h, w, channels)
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _folder(root: Path, count: int = 6, size: int = 16, labels: bool = True) -> dict[str, tuple]:
    """``count`` random RGB images in two subfolders, with a dataset.json; name -> (HWC, label)."""
    made = {}
    for k in range(count):
        name = f"{k % 2:05d}/img{k:08d}.png"
        made[name] = (_save(root / name, _random(size)), k % 3)
    document = {"labels": [[n, lab] for n, (_, lab) in made.items()] if labels else None}
    (root / "dataset.json").write_text(json.dumps(document))
    return made


def _chw(array: np.ndarray) -> np.ndarray:
    return array[np.newaxis] if array.ndim == 2 else array.transpose(2, 0, 1)


def _one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ---------------------------------------------------------------------------- prepare: folders


def test_prepare_folder_round_trip_keeps_pixels_and_labels(tmp_path, capsys):
    made = _folder(tmp_path / "src")
    dest = tmp_path / "out" / "ds.zip"
    assert main([f"--source={tmp_path / 'src'}", f"--dest={dest}", "--resolution=16"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "6 images" in line and "16x16" in line and "3 classes" in line

    zipped = ImageDataset(dest, use_labels=True)
    assert (len(zipped), zipped.resolution, zipped.num_channels, zipped.c_dim) == (6, 16, 3, 3)
    for k, name in enumerate(sorted(made)):  # items follow the sorted file names
        array, label = made[name]
        assert torch.equal(zipped.get_uint8(k), torch.from_numpy(_chw(array)))
        assert zipped.get_label(k).argmax().item() == label
        x, c = zipped[k]
        assert x.dtype == torch.float32 and c.shape == (3,)
        assert torch.allclose(x, torch.from_numpy(_chw(array)).float() / 127.5 - 1)
    with zipfile.ZipFile(dest) as zf:
        assert "00000/img00000005.png" in zf.namelist()
    assert not [p for p in dest.parent.iterdir() if p.name != "ds.zip"]  # no temp files left


def test_zip_and_folder_give_identical_items(tmp_path):
    _folder(tmp_path / "src", count=5)
    archive = tmp_path / "same.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "src").rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    folder = ImageDataset(tmp_path / "src", use_labels=True, xflip=True)
    zipped = ImageDataset(archive, use_labels=True, xflip=True)
    assert len(folder) == len(zipped) == 10
    for i in range(len(folder)):
        for a, b in zip(folder[i], zipped[i], strict=True):
            assert torch.equal(a, b)


def test_prepare_center_crops_or_stretches_then_resizes(tmp_path):
    wide = np.zeros((16, 24, 3), dtype=np.uint8)
    wide[:, :4] = wide[:, -4:] = (255, 0, 0)  # red margins the centre crop must remove
    wide[:, 4:-4] = (0, 255, 0)
    _save(tmp_path / "src" / "a.png", wide)
    _save(tmp_path / "src" / "b.png", _random(40))

    summary = prepare(tmp_path / "src", tmp_path / "crop.zip", resolution=8)
    cropped = ImageDataset(tmp_path / "crop.zip").get_uint8(0)
    assert summary.count == 2 and summary.num_classes is None
    assert cropped.shape == (3, 8, 8)
    assert (cropped[0] == 0).all() and (cropped[1] == 255).all()

    prepare(tmp_path / "src", tmp_path / "stretch.zip", resolution=8, transform="resize")
    assert ImageDataset(tmp_path / "stretch.zip").get_uint8(0)[0].max() > 100  # red remains

    default = prepare(tmp_path / "src", tmp_path / "default.zip")
    assert default.resolution == 16  # largest power of two reached by the 16 px short side


def test_prepare_labels_from_folders_and_grey_images(tmp_path):
    for k in range(3):
        _save(tmp_path / "src" / "cat" / f"{k}.png", _random(8, channels=1))
        _save(tmp_path / "src" / "dog" / f"{k}.jpg", _random(8, channels=1), fmt="JPEG")
    summary = prepare(tmp_path / "src", tmp_path / "pets.zip", labels_from_folders=True)
    assert (summary.count, summary.channels, summary.num_classes) == (6, 1, 2)
    dataset = ImageDataset(tmp_path / "pets.zip", use_labels=True)
    assert dataset.num_channels == 1 and dataset.get_uint8(0).shape == (1, 8, 8)
    assert [dataset.get_label(i).argmax().item() for i in range(6)] == [0, 0, 0, 1, 1, 1]
    with zipfile.ZipFile(tmp_path / "pets.zip") as zf:
        assert json.loads(zf.read("dataset.json"))["class_names"] == ["cat", "dog"]

    _save(tmp_path / "src" / "stray.png", _random(8, channels=1))
    with pytest.raises(PrepareError) as excinfo:
        prepare(tmp_path / "src", tmp_path / "bad.zip", labels_from_folders=True)
    _one_line_error(excinfo, "stray.png")


def test_prepare_failure_leaves_no_partial_zip(tmp_path):
    _save(tmp_path / "src" / "a.png", _random(8))
    good = io.BytesIO()
    Image.fromarray(_random(8)).save(good, format="PNG")
    (tmp_path / "src" / "b.png").write_bytes(good.getvalue()[:60])  # header intact, data cut
    with pytest.raises(DatasetError) as excinfo:
        prepare(tmp_path / "src", tmp_path / "out" / "x.zip")
    _one_line_error(excinfo, "b.png")
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------- prepare: archives


def _cifar_archive(path: Path, per_batch: int = 2, test: int = 3) -> dict[str, tuple]:
    """A cifar-10-python.tar.gz in the real layout: Python-2-style pickles with bytes keys."""
    batches = {}
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, document: dict) -> None:
            # Module path as NumPy 1 wrote it, which is what the real batches reference.
            data = pickle.dumps(document, protocol=2).replace(
                b"numpy._core.multiarray", b"numpy.core.multiarray"
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        sizes = [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]
        for name, n in sizes:
            data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            labels = [int(v) for v in RNG.integers(0, 10, size=n)]
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data})
            batches[name] = (data, labels)
        add("batches.meta", {b"label_names": [f"class{k}".encode() for k in range(10)]})
    return batches


def test_prepare_cifar10_archive(tmp_path):
    batches = _cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    summary = prepare(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar.zip")
    assert (summary.count, summary.resolution, summary.channels, summary.num_classes) == (
        10, 32, 3, 10,
    )
    dataset = ImageDataset(tmp_path / "cifar.zip", use_labels=True)
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    for k in range(10):
        assert torch.equal(dataset.get_uint8(k), torch.from_numpy(data[k].reshape(3, 32, 32)))
        assert dataset.get_label(k).argmax().item() == labels[k]

    test = prepare(tmp_path / "cifar-10-python.tar.gz", tmp_path / "test.zip", split="test")
    assert test.count == 3
    first = ImageDataset(tmp_path / "test.zip").get_uint8(0)
    assert torch.equal(first, torch.from_numpy(batches["test_batch"][0][0].reshape(3, 32, 32)))

    small = prepare(tmp_path / "cifar-10-python.tar.gz", tmp_path / "s.zip", resolution=16,
                    max_images=4)
    assert (small.count, ImageDataset(tmp_path / "s.zip").resolution) == (4, 16)

    with pytest.raises(PrepareError) as excinfo:
        prepare(tmp_path / "cifar-10-python.tar.gz", tmp_path / "u.zip", split="unlabeled")
    _one_line_error(excinfo, "--split=unlabeled")


def test_prepare_cifar10_refuses_pickles_that_are_not_arrays(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = pickle.dumps({b"data": os.getcwd, b"labels": []}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(PrepareError) as excinfo:
        prepare(archive, tmp_path / "x.zip", split="test")
    _one_line_error(excinfo, "test_batch", "refusing")
    assert not (tmp_path / "x.zip").exists()


def _stl_bytes(images: np.ndarray) -> bytes:
    # STL-10 stores each channel column-major: HWC -> C, W, H.
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def test_prepare_stl10_archive(tmp_path):
    train = RNG.integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8)
    train[0, :48] = 255  # a bright top half pins the orientation down
    train[0, 48:] = 0
    unlabeled = RNG.integers(0, 256, size=(2, 96, 96, 3), dtype=np.uint8)
    stored_labels = np.array([1, 10, 4], dtype=np.uint8)  # 1..10 on disk
    archive = tmp_path / "stl10_binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [
            ("train_X.bin", _stl_bytes(train)),
            ("train_y.bin", stored_labels.tobytes()),
            ("unlabeled_X.bin", _stl_bytes(unlabeled)),
            ("class_names.txt", "\n".join(f"c{k}" for k in range(10)).encode()),
        ]:
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    summary = prepare(archive, tmp_path / "train.zip", split="train")
    assert (summary.count, summary.resolution, summary.num_classes) == (3, 64, 10)
    dataset = ImageDataset(tmp_path / "train.zip", use_labels=True)
    assert [dataset.get_label(i).argmax().item() for i in range(3)] == [0, 9, 3]
    for k in range(3):
        expected = np.asarray(to_square(Image.fromarray(train[k]), 64, "resize"))
        assert torch.equal(dataset.get_uint8(k), torch.from_numpy(expected.transpose(2, 0, 1)))
    top = dataset.get_uint8(0)
    assert top[:, :30].float().mean() > 250 and top[:, 34:].float().mean() < 5

    default = prepare(archive, tmp_path / "unlabeled.zip", resolution=32)
    assert (default.count, default.num_classes, default.resolution) == (2, None, 32)
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "unlabeled.zip", use_labels=True)
    _one_line_error(excinfo, "dataset.json", "null")


def test_prepare_digits_and_cli_errors(tmp_path, capsys):
    assert main(["--source=digits", f"--dest={tmp_path / 'd.zip'}", "--max-images=20",
                 "--resolution=16"]) == 0
    assert "20 images" in capsys.readouterr().out
    dataset = ImageDataset(tmp_path / "d.zip", use_labels=True)
    digits = DigitsDataset(resolution=16, use_labels=True)
    assert (len(dataset), dataset.num_channels, dataset.c_dim) == (20, 1, 10)
    for k in (0, 19):
        assert torch.equal(dataset.get_uint8(k), digits.get_uint8(k))
        assert torch.equal(dataset.get_label(k), digits.get_label(k))

    for argv, fragment in [
        (["--source", str(tmp_path / "missing"), "--dest", str(tmp_path / "x.zip")], "missing"),
        (["--source=digits", f"--dest={tmp_path / 'x.tar'}"], "x.tar"),
        (["--source=digits", f"--dest={tmp_path / 'x.zip'}", "--resolution=48"], "48"),
        (["--source=digits", f"--dest={tmp_path / 'x.zip'}", "--split=test"], "--split"),
    ]:
        with pytest.raises(SystemExit) as excinfo:
            main(argv)
        assert excinfo.value.code == 2
        assert fragment in capsys.readouterr().err.splitlines()[-1]


# ---------------------------------------------------------------------------- dataset contract


def test_xflip_doubles_and_mirrors(tmp_path):
    _folder(tmp_path / "src", count=3)
    plain = ImageDataset(tmp_path / "src", use_labels=True)
    flipped = ImageDataset(tmp_path / "src", use_labels=True, xflip=True)
    assert (len(flipped), flipped.raw_size) == (6, 3)
    for i in range(3):
        assert torch.equal(flipped.get_uint8(i), plain.get_uint8(i))
        assert torch.equal(flipped.get_uint8(i + 3), plain.get_uint8(i).flip(-1))
        assert torch.equal(flipped[i + 3][1], plain[i][1])
    assert torch.equal(flipped.get_uint8(-1), flipped.get_uint8(5))
    with pytest.raises(IndexError):
        flipped[6]


def test_max_size_subset_is_seeded_and_deterministic(tmp_path):
    _folder(tmp_path / "src", count=20, size=4)
    a = ImageDataset(tmp_path / "src", max_size=5, seed=1)
    b = ImageDataset(tmp_path / "src", max_size=5, seed=1)
    c = ImageDataset(tmp_path / "src", max_size=5, seed=2)
    assert len(a) == a.raw_size == 5
    assert a.image_names == b.image_names == sorted(a.image_names)
    assert a.image_names != c.image_names
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(ImageDataset(tmp_path / "src", max_size=50)) == 20
    assert len(ImageDataset(tmp_path / "src", max_size=5, xflip=True)) == 10


def test_image_modes_become_one_or_three_channels(tmp_path):
    _save(tmp_path / "grey" / "a.png", _random(8, channels=1))
    assert ImageDataset(tmp_path / "grey").num_channels == 1
    rgba = _random(8, channels=4)
    _save(tmp_path / "rgba" / "a.png", rgba)
    Image.fromarray(_random(8)).convert("P").save(tmp_path / "rgba" / "b.png")
    _save(tmp_path / "rgba" / "c.png", _random(8, channels=1))
    dataset = ImageDataset(tmp_path / "rgba")
    assert dataset.num_channels == 3
    assert torch.equal(dataset.get_uint8(0), torch.from_numpy(rgba[..., :3].transpose(2, 0, 1)))
    assert dataset.get_uint8(1).shape == dataset.get_uint8(2).shape == (3, 8, 8)


def test_dataloader_and_pickling(tmp_path):
    prepare("digits", tmp_path / "d.zip", max_images=8, resolution=8)
    dataset = ImageDataset(tmp_path / "d.zip")
    dataset.get_uint8(0)  # opens the zip in this process; the copy must reopen its own
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone.get_uint8(3), dataset.get_uint8(3))
    x, c = next(iter(DataLoader(dataset, batch_size=4)))
    assert x.shape == (4, 1, 8, 8) and c.shape == (4, 0)
    assert x.min() >= -1 and x.max() <= 1


def test_fingerprint_follows_the_data(tmp_path):
    _folder(tmp_path / "src", count=4)
    base = ImageDataset(tmp_path / "src").fingerprint
    assert ImageDataset(tmp_path / "src").fingerprint == base
    assert ImageDataset(tmp_path / "src", use_labels=True).fingerprint == base
    assert ImageDataset(tmp_path / "src", xflip=True).fingerprint != base
    assert ImageDataset(tmp_path / "src", max_size=2).fingerprint != base

    prepare(tmp_path / "src", tmp_path / "a.zip")
    zipped = ImageDataset(tmp_path / "a.zip").fingerprint
    assert zipped != base and ImageDataset(tmp_path / "a.zip").fingerprint == zipped

    _save(tmp_path / "src" / "00000" / "img00000000.png", np.zeros((16, 16, 3), np.uint8))
    changed = ImageDataset(tmp_path / "src").fingerprint
    assert changed != base
    _save(tmp_path / "src" / "extra.png", _random(16))
    assert ImageDataset(tmp_path / "src").fingerprint not in (base, changed)
    # A rebuilt zip with different content differs too (entry CRCs, not dates, are hashed).
    (tmp_path / "src" / "dataset.json").unlink()
    prepare(tmp_path / "src", tmp_path / "a.zip")
    assert ImageDataset(tmp_path / "a.zip").fingerprint != zipped
    assert DigitsDataset().fingerprint == DigitsDataset().fingerprint
    assert DigitsDataset().fingerprint != DigitsDataset(resolution=16).fingerprint


# ---------------------------------------------------------------------------- bad inputs


def _labelled(root: Path, labels: object) -> Path:
    for k in range(2):
        _save(root / f"img{k}.png", _random(8))
    (root / "dataset.json").write_text(json.dumps(labels))
    return root


def test_missing_path_says_how_to_prepare(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "cifar10.zip")
    _one_line_error(excinfo, "cifar10.zip", "python -m dgan.data.prepare --source=")


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("empty", ["no images found"]),
        ("mixed", ["mixed sizes", "b.png", "16x16", "a.png"]),
        ("non_square", ["not square", "a.png", "16x8"]),
        ("not_power_of_two", ["a.png", "12x12", "power of two"]),
        ("corrupt", ["corrupt", "b.png"]),
        ("not_a_zip", ["data.bin", "neither a folder nor a zip"]),
    ],
)
def test_bad_images_fail_at_construction(tmp_path, case, fragments):
    root = tmp_path / "ds"
    root.mkdir()
    if case == "empty":
        (root / "notes.txt").write_text("no images here")
    elif case == "mixed":
        _save(root / "a.png", _random(8))
        _save(root / "sub" / "b.png", _random(16))
    elif case == "non_square":
        _save(root / "a.png", _random((8, 16)))
    elif case == "not_power_of_two":
        _save(root / "a.png", _random(12))
    elif case == "corrupt":
        _save(root / "a.png", _random(8))
        (root / "b.png").write_bytes(b"this is not a png")
    elif case == "not_a_zip":
        root = root / "data.bin"
        root.write_bytes(b"\0" * 64)
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(root)
    _one_line_error(excinfo, *fragments)


def test_truncated_image_is_named_when_read(tmp_path):
    _save(tmp_path / "ds" / "a.png", _random(8))
    data = (tmp_path / "ds" / "a.png").read_bytes()
    (tmp_path / "ds" / "a.png").write_bytes(data[:60])
    dataset = ImageDataset(tmp_path / "ds")  # the header alone is still valid
    with pytest.raises(DatasetError) as excinfo:
        dataset[0]
    _one_line_error(excinfo, "a.png", "corrupt")
    assert isinstance(excinfo.value, CorruptImageError) and excinfo.value.file == "a.png"


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        ({"labels": [["img0.png", 1]]}, ["img1.png", "no label", "1 labels for 2 images"]),
        (
            {"labels": [["img0.png", 1], ["img1.png", 0], ["img9.png", 2]]},
            ["img9.png", "3 labels for 2 images"],
        ),
        ({"labels": None}, ["use_labels=True", "null"]),
        ({"classes": []}, ["'labels'", "dataset.json"]),
        ({"labels": [["img0.png", 1], ["img1.png", "cat"]]}, ["img1.png", "class indices"]),
        ({"labels": [["img0.png", 1], ["img0.png", 0]]}, ["img0.png", "twice"]),
    ],
)
def test_bad_labels_fail_at_construction(tmp_path, labels, fragments):
    root = _labelled(tmp_path / "ds", labels)
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(root, use_labels=True)
    _one_line_error(excinfo, *fragments)


def test_use_labels_without_dataset_json_and_invalid_json(tmp_path):
    _save(tmp_path / "ds" / "a.png", _random(8))
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "ds", use_labels=True)
    _one_line_error(excinfo, "use_labels=True", "dataset.json", "use_labels=false")
    (tmp_path / "ds" / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "ds", use_labels=True)
    _one_line_error(excinfo, "dataset.json", "not valid JSON")
    assert ImageDataset(tmp_path / "ds").c_dim == 0  # labels unused: the file is not read


def test_resolution_mismatch_names_both_resolutions(tmp_path):
    _save(tmp_path / "ds" / "a.png", _random(16))
    assert ImageDataset(tmp_path / "ds", resolution=16).resolution == 16
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "ds", resolution=32)
    _one_line_error(
        excinfo, "dataset resolution 16 does not match model resolution 32", "dataset.resolution"
    )


def test_bad_max_size(tmp_path):
    _save(tmp_path / "ds" / "a.png", _random(8))
    with pytest.raises(DatasetError) as excinfo:
        ImageDataset(tmp_path / "ds", max_size=0)
    _one_line_error(excinfo, "max_size")


# ---------------------------------------------------------------------------- corrupt images

# Where a PNG chunk's 4-byte length sits before its type, and the CRC after its data.
_CHUNK_LENGTH_BYTES = 4
_CHUNK_TYPE_BYTES = 4
_TRUNCATED_BYTES = 60  # past the header, short of the pixel data


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:_TRUNCATED_BYTES])


def _break_crc(path: Path) -> None:
    """Spoil the CRC of the IDAT chunk: the pixels still decode, only PIL's verify() objects."""
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - _CHUNK_LENGTH_BYTES : at])
    data[at + _CHUNK_TYPE_BYTES + length] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_image_error_carries_the_file_through_pickle(tmp_path):
    _save(tmp_path / "ds" / "sub" / "a.png", _random(8))
    _truncate(tmp_path / "ds" / "sub" / "a.png")
    with pytest.raises(CorruptImageError) as excinfo:
        ImageDataset(tmp_path / "ds").get_uint8(0)
    _one_line_error(excinfo, "'sub/a.png'", "truncated")
    clone = pickle.loads(pickle.dumps(excinfo.value))
    assert type(clone) is CorruptImageError
    assert (str(clone), clone.file, clone.files) == (str(excinfo.value), "sub/a.png", ["sub/a.png"])


def test_corrupt_image_in_a_dataloader_worker_is_still_one_named_line(tmp_path):
    for k in range(4):
        _save(tmp_path / "ds" / f"img{k}.png", _random(8))
    _truncate(tmp_path / "ds" / "img2.png")
    loader = DataLoader(ImageDataset(tmp_path / "ds"), batch_size=2, num_workers=1)
    with pytest.raises(CorruptImageError) as excinfo:
        list(loader)
    message = _one_line_error(excinfo, "'img2.png'", "corrupt")
    assert message.startswith("corrupt or unreadable image")
    assert excinfo.value.file == "img2.png"
    assert "DataLoader worker" in (excinfo.value.worker_traceback or "")


def test_verify_decodes_everything_and_names_every_bad_file(tmp_path):
    root = tmp_path / "ds"
    for k in range(6):
        _save(root / f"img{k}.png", _random(8))
    assert ImageDataset(root, verify=True).raw_size == 6
    assert ImageDataset(root).verify() == 6
    _truncate(root / "img1.png")
    _truncate(root / "img3.png")
    _break_crc(root / "img4.png")
    dataset = ImageDataset(root)  # headers are fine; without verify nothing is decoded yet
    assert dataset.get_uint8(4).shape == (3, 8, 8)  # a bad CRC alone does not stop decoding
    with pytest.raises(CorruptImageError) as excinfo:
        dataset.verify()
    _one_line_error(excinfo, "'img1.png'", "2 more bad images: 'img3.png', 'img4.png'")
    assert excinfo.value.file == "img1.png"
    assert excinfo.value.files == ["img1.png", "img3.png", "img4.png"]
    with pytest.raises(CorruptImageError) as excinfo:
        ImageDataset(root, verify=True)
    assert excinfo.value.files == ["img1.png", "img3.png", "img4.png"]
    assert isinstance(excinfo.value, ImageFileError) and isinstance(excinfo.value, DatasetError)


def _damaged_zip(path: Path) -> str:
    """A zip of two images whose second entry has one flipped byte; returns that entry's name."""
    pngs = {}
    for k in range(2):
        buffer = io.BytesIO()
        Image.fromarray(_random(8)).save(buffer, format="PNG")
        pngs[f"img{k}.png"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in pngs.items():
            zf.writestr(name, data)
    archive = bytearray(path.read_bytes())
    # Stored entries lie verbatim in the archive: flip a byte in the middle of the second one.
    at = archive.index(pngs["img1.png"]) + len(pngs["img1.png"]) // 2
    archive[at] ^= 0xFF
    path.write_bytes(bytes(archive))
    return "img1.png"


def test_damaged_zip_entry_is_a_corrupt_image(tmp_path):
    bad = _damaged_zip(tmp_path / "ds.zip")
    # A small entry is read whole with its header, so the CRC fails at construction already.
    with pytest.raises(CorruptImageError) as excinfo:
        ImageDataset(tmp_path / "ds.zip")
    _one_line_error(excinfo, f"'{bad}'", "ds.zip", "CRC")
    assert excinfo.value.file == bad
    with pytest.raises(CorruptImageError) as excinfo:
        prepare(tmp_path / "ds.zip", tmp_path / "out" / "x.zip")
    _one_line_error(excinfo, f"'{bad}'")
    assert not (tmp_path / "out").exists()  # refused while reading headers, before any write


@pytest.mark.parametrize("damage", [_truncate, _break_crc])
def test_prepare_refuses_a_damaged_source_and_keeps_the_old_archive(tmp_path, capsys, damage):
    for k in range(3):
        _save(tmp_path / "src" / f"img{k}.png", _random(8))
    dest = tmp_path / "out" / "ds.zip"
    prepare(tmp_path / "src", dest)
    before = dest.read_bytes()
    damage(tmp_path / "src" / "img2.png")
    with pytest.raises(SystemExit) as excinfo:
        main([f"--source={tmp_path / 'src'}", f"--dest={dest}"])
    assert excinfo.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert "img2.png" in line and "corrupt" in line
    assert dest.read_bytes() == before  # the old archive, untouched
    assert [p.name for p in dest.parent.iterdir()] == ["ds.zip"]  # no temporary file left


def test_prepare_checks_the_archive_it_wrote(tmp_path, monkeypatch):
    _folder(tmp_path / "src", count=3)
    real = prepare_writer._encode_png

    def encode_mirrored(array: np.ndarray) -> bytes:
        # Stands in for a writer or disk that corrupts what it stores.
        return real(np.ascontiguousarray(array[:, ::-1]))

    monkeypatch.setattr(prepare_writer, "_encode_png", encode_mirrored)
    dest = tmp_path / "out" / "ds.zip"
    with pytest.raises(PrepareError) as excinfo:
        prepare(tmp_path / "src", dest)
    _one_line_error(
        excinfo, "00000/img00000000.png", "other pixels", f"nothing was written to {dest}"
    )
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_prepare_archive_permissions_follow_the_umask(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        prepare("digits", tmp_path / "d.zip", max_images=2, resolution=8)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "d.zip").stat().st_mode) == expected


def test_prepare_unwritable_dest_is_one_line_before_any_image(tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(PrepareError) as excinfo:
        prepare("digits", tmp_path / "file.txt" / "d.zip", max_images=2)
    _one_line_error(excinfo, "cannot write", "file.txt")
    (tmp_path / "folder.zip").mkdir()
    with pytest.raises(PrepareError) as excinfo:
        prepare("digits", tmp_path / "folder.zip", max_images=2)
    _one_line_error(excinfo, "folder.zip", "is a folder")


# ---------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> DigitsDataset:
    return DigitsDataset(use_labels=True)


def test_digits_contract(digits):
    assert (len(digits), digits.raw_size, digits.resolution, digits.num_channels) == (
        1797, 1797, 32, 1,
    )
    assert digits.c_dim == 10 and digits.has_labels and digits.name == "digits"
    x, c = digits[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and c.shape == (10,)
    assert x.min() >= -1 and x.max() <= 1
    assert x[0, 0, 0] == -1  # background is black
    classes = {int(digits.get_label(i).argmax()) for i in range(0, 1797, 7)}
    assert classes == set(range(10))
    assert digits.class_of(0) == int(digits.get_label(0).argmax())
    pixels = torch.stack([digits.get_uint8(i) for i in range(50)])
    assert pixels.min() == 0 and pixels.max() == 255


def test_digits_options():
    small = DigitsDataset(resolution=8, xflip=True, max_size=10, seed=3)
    assert (len(small), small.c_dim, small.get_label(0).shape) == (20, 0, (0,))
    assert torch.equal(small.get_uint8(10), small.get_uint8(0).flip(-1))
    again = DigitsDataset(resolution=8, max_size=10, seed=3)
    assert torch.equal(again.get_uint8(4), small.get_uint8(4))
    with pytest.raises(DatasetError) as excinfo:
        DigitsDataset(resolution=24)
    _one_line_error(excinfo, "24", "power of two")


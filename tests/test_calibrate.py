"""python -m dgan.calibrate: the digits metric of known sets, on the metric code of training."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dgan.calibrate import CalibrateOptions, calibrate, main
from dgan.callbacks.overfitting import metric_floor
from dgan.data.digits import DigitsDataset

RESOLUTION = 8  # the digits' own size: the cheapest table


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[dict[str, float], Path, Path]:
    root = tmp_path_factory.mktemp("calibrate")
    out, cache = root / "calibration.csv", root / "cache"
    rows = calibrate(CalibrateOptions(resolution=RESOLUTION, subsets="60", out=str(out),
                                      cache_dir=str(cache)))
    return dict(rows), out, cache


def test_the_rows_order_the_sets_by_how_far_they_are_from_the_digits(table) -> None:
    values, _, _ = table
    reals = values["2,000 real digits drawn with replacement"]
    one_missing = values["real digits of 9 classes (one class missing)"]
    half_missing = values["real digits of 5 classes (half missing)"]
    assert 0 <= reals < one_missing < half_missing
    assert values["real digits, 3x3 blurred"] > reals
    assert values["real digits with pixel noise of std 20"] > reals


def test_the_subset_floor_is_the_training_callbacks_floor(table) -> None:
    values, _, cache = table
    train = DigitsDataset(resolution=RESOLUTION, max_size=60, seed=0)
    full = DigitsDataset(resolution=RESOLUTION)
    floor = metric_floor("fid_digits2k_full", train, full, cache, None, 64)
    assert values["60 digits, each once (the subset's floor)"] == pytest.approx(floor, rel=1e-4)
    # A perfect memoriser of 60 digits is far from all 1,797, whatever it draws.
    assert values["60 digits memorised (2,000 draws from the subset)"] > \
        values["2,000 real digits drawn with replacement"] + 5


def test_the_csv_holds_every_printed_row(table) -> None:
    values, out, _ = table
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["set"]: pytest.approx(float(r["fid_digits2k_full"]), abs=1e-3) for r in rows} \
        == values


@pytest.mark.parametrize(("arg", "words"), [
    ("resolution=12", "resolution=12"),
    ("subsets=ten", "subsets='ten'"),
    ("subsets=5000", "5000 is not a subset size"),
    ("colour=red", "colour: unknown key"),
])
def test_bad_arguments_stop_in_one_line(capsys, arg: str, words: str) -> None:
    assert main([arg]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err

"""Does D's verdict depend on t? A run's mean real and fake logits per bucket of t.

The diffusion diagnostics (:mod:`dgan.callbacks.diffusion_diagnostics`) score D on a held batch
of reals and G's samples, diffused at t from each bucket of [1, T] and at t = 0, every few kimg,
into ``diagnostics/d_by_t.csv``. A bucket is read here by its position (0: clean, 1: the lowest
tenth of [1, T], ..., the last: the highest), so runs whose T differs line up; once a run's chain
is on, T is T_max and every run's positions are the same t. ``sweep_report --by-t`` averages the
profiles over the seeds of each arm (docs/results.md, "What the discriminator knows of t").
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dgan.files.run_files import D_BY_T_TABLE, DIAGNOSTICS_DIR

# The halves of a run a profile is taken over: D early (while T grows) and late.
HALVES = ("first", "second")
VALUES = ("real_logit", "fake_logit", "gap", "acc", "t_lo", "t_hi")


def read_logits_by_t(job_dir: Path) -> list[dict[str, Any]]:
    """A run's ``diagnostics/d_by_t.csv`` as rows with a ``position`` (0: the clean bucket),
    numbers parsed, the real-minus-fake logit ``gap`` added; none when the run wrote none."""
    path = job_dir / DIAGNOSTICS_DIR / D_BY_T_TABLE
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8") as f:
        last_kimg, position = math.nan, 0
        for raw in csv.DictReader(f):
            kimg = float(raw["kimg"])
            position = position + 1 if kimg == last_kimg else 0
            last_kimg = kimg
            row = {"kimg": kimg, "position": position,
                   **{k: float(raw[k]) for k in ("real_logit", "fake_logit", "acc", "t_lo",
                                                  "t_hi")}}
            row["gap"] = row["real_logit"] - row["fake_logit"]
            rows.append(row)
    return rows


def t_profile(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    """The mean of each value per half of the run and bucket position.

    Args:
        rows: :func:`read_logits_by_t` rows of one run.
    """
    if not rows:
        return {}
    end = max(row["kimg"] for row in rows)
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        half = HALVES[1] if row["kimg"] > end / 2 else HALVES[0]
        cells.setdefault((half, row["position"]), []).append(row)
    return {key: {v: statistics.fmean(r[v] for r in cell) for v in VALUES}
            for key, cell in sorted(cells.items())}


def group_profiles(profiles: Sequence[dict[tuple[str, int], dict[str, float]]]
                   ) -> list[dict[str, Any]]:
    """Mean and standard deviation over runs (the seeds of one arm) of each value, per half and
    position; a position counts the runs that reached it (``n``)."""
    keys = sorted({key for profile in profiles for key in profile},
                  key=lambda k: (HALVES.index(k[0]), k[1]))
    rows = []
    for half, position in keys:
        cells = [p[(half, position)] for p in profiles if (half, position) in p]
        row: dict[str, Any] = {"half": half, "position": position, "n": len(cells)}
        for v in VALUES:
            values = [c[v] for c in cells]
            row[f"{v}_mean"] = statistics.fmean(values)
            row[f"{v}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        rows.append(row)
    return rows

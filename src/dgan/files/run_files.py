"""Files a run writes to its directory, so that a user without W&B sees everything."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
# Per run: the FID of its training subset against the metric's reference set (the floor).
FLOORS_FILE = "metric_floors.json"
# The diagnostics' figures and tables; among them the overfitting callback's table over the run
# (kimg, r_t, D's logits and their gap, p, T, r_d), which sweep_report --overfit reads.
DIAGNOSTICS_DIR = "diagnostics"
DYNAMICS_TABLE = "dynamics.csv"
# D's mean logits and accuracy per bucket of t at each diagnostics evaluation, which
# sweep_report --by-t reads.
D_BY_T_TABLE = "d_by_t.csv"


# Keys of a metrics.jsonl record that say when it was taken; every other key is a metric.
TRAIN_SECONDS = "train_seconds"
WHEN_KEYS = ("kimg", TRAIN_SECONDS)


def append_metrics(run_dir: str | os.PathLike[str], kimg: float, metrics: dict[str, Any],
                   train_seconds: float | None = None) -> None:
    """Append one evaluation to ``metrics.jsonl``: ``kimg``, each metric by name, and
    ``train_seconds`` (wall time of training so far, evaluations excluded) when given."""
    record = {"kimg": round(float(kimg), 3), **{k: _plain(v) for k, v in metrics.items()}}
    if train_seconds is not None:
        record[TRAIN_SECONDS] = round(float(train_seconds), 1)
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All evaluations of a run, oldest first."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value

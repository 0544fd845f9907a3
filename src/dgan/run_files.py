"""Files a run writes to its directory, so that a user without W&B sees everything."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_metrics(run_dir: str | os.PathLike[str], kimg: float, metrics: dict[str, Any]) -> None:
    """Append one evaluation (``kimg`` and each metric by name) to ``metrics.jsonl``."""
    record = {"kimg": round(float(kimg), 3), **{k: _plain(v) for k, v in metrics.items()}}
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

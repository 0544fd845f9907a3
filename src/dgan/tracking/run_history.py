"""The run directory's history across a resume: ``metrics.csv`` and every other record file
continue, and a W&B run keeps its id.

A resumed run starts from its checkpoint's kimg. What the interrupted part wrote up to that
point stays; what it wrote after (a crash some time after the last periodic checkpoint) is
dropped, because the resumed run writes those kimg again: no kimg appears twice.

Record files are the CSV files with a ``kimg`` column and the JSON-lines files whose records
have a ``kimg`` key, anywhere below the run directory except the folders of other programs
(W&B's own files, Hydra's) and of other runs below it. Lightning's ``CSVLogger`` would delete
``metrics.csv`` when it starts; :class:`RunCSVLogger` appends to it instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from dgan.files.atomic import atomic_write_bytes

KIMG = "kimg"
KIMG_DECIMALS = 3  # one image: the resolution of every kimg a record file holds
CSV_SUFFIX = ".csv"
JSONL_SUFFIX = ".jsonl"
WANDB_ID_FILE = "wandb_run_id.txt"
BEFORE_ANY_KIMG = -1.0  # every record lies past it: what a fresh start keeps of an old history


def _past(value: Any, kimg: float) -> bool:
    """Whether a record's kimg lies after ``kimg`` (records without a kimg are kept)."""
    try:
        # Lightning writes float32 kimg (0.25600001...): compared at one-image resolution.
        return round(float(value), KIMG_DECIMALS) > round(kimg, KIMG_DECIMALS)
    except (TypeError, ValueError):
        return False


def _trim_csv(path: Path, kimg: float) -> bool:
    """Drop the rows of a CSV file past ``kimg``; False if it has no kimg column or none past."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or KIMG not in rows[0]:
        return False
    column = rows[0].index(KIMG)
    kept = [row for row in rows[1:] if not (len(row) > column and _past(row[column], kimg))]
    if len(kept) == len(rows) - 1:
        return False
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(rows[0])
    writer.writerows(kept)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return True


def _trim_jsonl(path: Path, kimg: float) -> bool:
    """Drop the records of a JSON-lines file past ``kimg``; False if none is past."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a blank line, or one cut by a crash: its record is written again
        if isinstance(record, dict) and _past(record.get(KIMG), kimg):
            continue
        kept.append(line)
    if len(kept) == len(lines):
        return False
    atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode())
    return True


def record_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The CSV and JSON-lines files of a run directory: not those of W&B or Hydra, nor those of
    other runs below it (a run started in a parent of other runs leaves them as they are).

    Args:
        run_dir: the run directory.
    """
    from dgan.files.run_dir import walk_own

    root = Path(run_dir)
    if not root.is_dir():
        return []
    found = []
    for folder, names in walk_own(root):
        found.extend(folder / name for name in names
                     if Path(name).suffix in (CSV_SUFFIX, JSONL_SUFFIX)
                     and (folder / name).is_file())
    return sorted(found)


def trim_history(run_dir: str | os.PathLike[str], kimg: float | None) -> list[Path]:
    """Drop every record past ``kimg`` from the run directory's record files.

    Returns the files that changed.

    Args:
        run_dir: the run directory of the run about to start.
        kimg: the checkpoint's kimg, where a resumed run starts; None: a fresh start, whose
            history begins again (every record is dropped, as Lightning drops metrics.csv).
    """
    after = BEFORE_ANY_KIMG if kimg is None else kimg
    changed = []
    for path in record_files(run_dir):
        trim = _trim_csv if path.suffix == CSV_SUFFIX else _trim_jsonl
        if trim(path, after):
            changed.append(path)
    return changed


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _jsonl_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def record_counts(run_dir: str | os.PathLike[str]) -> dict[str, int]:
    """How many records each record file of the run directory holds now (CSV data rows,
    JSON-lines lines), by path relative to it: where the history stands at a checkpoint.

    Args:
        run_dir: the run directory.
    """
    root = Path(run_dir)
    counts = {}
    for path in record_files(root):
        if path.suffix == CSV_SUFFIX:
            counts[path.relative_to(root).as_posix()] = max(len(_csv_rows(path)) - 1, 0)
        else:
            counts[path.relative_to(root).as_posix()] = len(_jsonl_lines(path))
    return counts


def trim_to_counts(run_dir: str | os.PathLike[str], counts: dict[str, int]) -> list[Path]:
    """Cut each record file back to the records it held at a checkpoint; returns those cut.

    For a checkpoint at the run's last kimg, whose end-of-training records share that kimg: the
    ones written after it cannot be told apart by kimg (:func:`trim_history`). A record file
    that did not exist at the checkpoint loses every record.

    Args:
        run_dir: the run directory.
        counts: :func:`record_counts` at the checkpoint.
    """
    root = Path(run_dir)
    changed = []
    for path in record_files(root):
        keep = int(counts.get(path.relative_to(root).as_posix(), 0))
        if path.suffix == CSV_SUFFIX:
            rows = _csv_rows(path)
            if len(rows) <= keep + 1:
                continue
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows[:keep + 1])
            atomic_write_bytes(path, buffer.getvalue().encode())
        else:
            lines = _jsonl_lines(path)
            if len(lines) <= keep:
                continue
            atomic_write_bytes(path, "".join(f"{line}\n" for line in lines[:keep]).encode())
        changed.append(path)
    return changed


# ----------------------------------------------------------------------------- CSV logger


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer that continues an existing ``metrics.csv`` instead of deleting it.

    Args:
        log_dir: directory of ``metrics.csv`` and ``hparams.yaml``.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = next(csv.reader(f), [])
            # The columns already written: new keys make Lightning rewrite the file with a
            # wider header, old rows included.
            self.metrics_keys = sorted(header)

    def _check_log_dir_exists(self) -> None:
        # Lightning warns and deletes metrics.csv here; a run directory always holds other
        # files (.hydra), and a resumed run's metrics.csv is its history.
        return


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` that appends to the run's ``metrics.csv`` (see :func:`trim_history`).

    Args:
        save_dir: the run directory.
        name: subdirectory (empty: none).
        version: sub-subdirectory (empty: none).
        flush_logs_every_n_steps: rows kept in memory between writes (checkpoints flush too).
    """

    def __init__(self, save_dir: str | os.PathLike[str], name: str = "", version: str = "",
                 flush_logs_every_n_steps: int = 100) -> None:
        super().__init__(save_dir=save_dir, name=name, version=version,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # Lightning hands kimg over as float32 (112.63999938964844): one image is 0.001 kimg.
        if KIMG in metrics:
            metrics = {**metrics, KIMG: round(float(metrics[KIMG]), KIMG_DECIMALS)}
        super().log_metrics(metrics, step)

    @property
    @rank_zero_experiment
    def experiment(self) -> _ExperimentWriter:
        """The writer of ``metrics.csv`` and ``hparams.yaml``, created on first use."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


# ----------------------------------------------------------------------------- W&B run id


def read_wandb_run_id(run_dir: str | os.PathLike[str]) -> str | None:
    """The W&B run id a run directory recorded, None if it has none.

    Args:
        run_dir: the run directory (W&B's ``save_dir``).
    """
    path = Path(run_dir) / WANDB_ID_FILE
    if not path.is_file():
        return None
    run_id = path.read_text(encoding="utf-8").strip()
    return run_id or None


def write_wandb_run_id(run_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Record the W&B run id in the run directory, for a later ``resume=auto``.

    Args:
        run_dir: the run directory.
        run_id: W&B's id of the run.
    """
    return atomic_write_bytes(Path(run_dir) / WANDB_ID_FILE, f"{run_id}\n".encode())

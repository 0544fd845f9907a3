"""Read a W&B offline run (``wandb/offline-run-*/run-*.wandb``) without a network or an account.

A ``.wandb`` file is a log of protobuf records (``wandb.proto.wandb_internal_pb2.Record``) in
LevelDB's log framing: a 7-byte file header, then 32 KiB blocks of chunks, each chunk a 7-byte
header (checksum, length, type) and its bytes; a record too long for the rest of a block
continues in FIRST/MIDDLE/LAST chunks. Recent wandb releases write these files from a Go core
and no longer ship a Python reader, so this module reads the framing itself and leaves the
records to wandb's own protobuf classes. Checksums are not verified.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
CHUNK_HEADER = struct.Struct("<IHB")  # checksum, length, type
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
OFFLINE_RUN_GLOB = "offline-run-*"


class OfflineRunError(ValueError):
    """A path that is not a readable W&B offline run; the message says why."""


@dataclasses.dataclass
class OfflineRun:
    """What an offline run recorded.

    Args:
        path: the ``.wandb`` file.
        run_id: W&B's id of the run.
        name: its display name.
        group: its group ('' when none).
        config: the run config (nested dict, W&B's own ``_wandb`` entry left out).
        history: one dict per ``log`` call, in order; images and tables are dicts with a
            ``_type`` key (e.g. ``image-file``, ``table-file``).
        summary: the last value of each key.
        step_metrics: key (or glob) -> the metric it is plotted against (``define_metric``).
        artifacts: (name, type, aliases) of each logged artifact.
        exit_code: the exit code of the run's exit record, None when the file has none yet (a
            run still being written: wandb writes the exit record last, at ``finish``).
    """

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    step_metrics: dict[str, str] = dataclasses.field(default_factory=dict)
    artifacts: list[tuple[str, str, list[str]]] = dataclasses.field(default_factory=list)
    exit_code: int | None = None

    def series(self, key: str, x: str = "kimg") -> list[tuple[float, Any]]:
        """(x, value) of every history record that has ``key`` (and ``x``)."""
        return [(row[x], row[key]) for row in self.history if key in row and x in row]


def read_chunks(data: bytes) -> Iterator[bytes]:
    """The records of a LevelDB-framed log, reassembled from their chunks."""
    if len(data) < FILE_HEADER.size:
        raise OfflineRunError("file too short for a W&B header")
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise OfflineRunError(f"not a W&B transaction log (header {data[:7]!r})")
    pos, pending = FILE_HEADER.size, b""
    while pos + CHUNK_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:  # block trailer: zero padding
            pos += left_in_block
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        pos += CHUNK_HEADER.size
        chunk = data[pos:pos + length]
        pos += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:  # zero padding at the end of a block
            pos += BLOCK_SIZE - pos % BLOCK_SIZE if pos % BLOCK_SIZE else 0
        else:
            raise OfflineRunError(f"bad chunk type {kind} at byte {pos - length}")


def _items_to_dict(items: Any, target: dict[str, Any]) -> None:
    for item in items:
        keys = list(item.nested_key) or [item.key]
        node = target
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)


def find_wandb_file(path: str | Path) -> Path:
    """The ``.wandb`` file of ``path``: the file itself, an offline run dir, or a directory
    holding ``wandb/offline-run-*`` (a run dir; the latest run is taken)."""
    path = Path(path)
    if path.is_file():
        return path
    for pattern in ("run-*.wandb", f"{OFFLINE_RUN_GLOB}/run-*.wandb",
                    f"wandb/{OFFLINE_RUN_GLOB}/run-*.wandb"):
        found = sorted(path.glob(pattern))
        if found:
            return found[-1]
    raise OfflineRunError(f"{path}: no W&B offline run (no wandb/{OFFLINE_RUN_GLOB}/run-*.wandb)")


def read_offline_run(path: str | Path) -> OfflineRun:
    """Read the offline run at ``path`` (see :func:`find_wandb_file` for what it may be).

    Args:
        path: a ``.wandb`` file, an ``offline-run-*`` directory or a run directory.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    file = find_wandb_file(path)
    run = OfflineRun(path=file)
    for data in read_chunks(file.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
            run.group = record.run.run_group
            _items_to_dict(record.run.config.update, run.config)
        elif kind == "config":
            _items_to_dict(record.config.update, run.config)
        elif kind == "history":
            row: dict[str, Any] = {}
            _items_to_dict(record.history.item, row)
            run.history.append(row)
            run.summary.update(row)
        elif kind == "summary":
            _items_to_dict(record.summary.update, run.summary)
        elif kind == "metric":
            name = record.metric.name or record.metric.glob_name
            if record.metric.step_metric:
                run.step_metrics[name] = record.metric.step_metric
        elif kind == "artifact":
            art = record.artifact
            run.artifacts.append((art.name, art.type, list(art.aliases)))
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    run.config.pop("_wandb", None)
    return run


def find_offline_runs(directory: str | Path) -> list[Path]:
    """Every ``.wandb`` file of the offline runs under ``directory`` (e.g. a multirun)."""
    return sorted(Path(directory).rglob(f"{OFFLINE_RUN_GLOB}/run-*.wandb"))

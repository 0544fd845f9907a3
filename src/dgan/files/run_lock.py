"""One writer per run directory: ``run.lock`` names the process that writes it.

The lock file is created with ``O_CREAT | O_EXCL``, so of two processes that start on one
directory at the same moment exactly one gets it; it holds the holder's PID, host and start
time. A lock whose holder is gone (same host, PID no longer alive: a SIGKILL, a node that lost
power and came back) is stale and is taken over with a notice. A lock written on another host
cannot be checked from here and is honoured: the message says how to remove it; except
one left by an earlier start of the same SLURM job (a requeued job gets a new restart count,
and SLURM never runs two starts of one job at once).

Taking over a stale lock goes through a second, short-lived file (``run.lock.takeover``), so
that two processes that both find the same stale lock do not both replace it.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from dgan.core.errors import ConfigError

LOCK_FILE = "run.lock"
# SLURM's id of the job and how often it was requeued: one start of a job at a time.
SLURM_JOB_ENV = "SLURM_JOB_ID"
SLURM_RESTART_ENV = "SLURM_RESTART_COUNT"
TAKEOVER_SUFFIX = ".takeover"
# Read-write for the owner and readable by collaborators (as open() gives under umask 022).
LOCK_MODE = 0o644
# Locks this process holds: a lock file naming our own PID that is not in here was left by an
# earlier process that had the same PID (a restarted container numbers its processes again).
_HELD: set[Path] = set()


class RunLocked(ConfigError):  # noqa: N818 - read as "the run directory is locked"
    """Another process holds the run directory (or its lock cannot be read)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: process id, host name, start time (ISO 8601, UTC) and, inside a SLURM
    job, ``JOBID.RESTART_COUNT``."""

    pid: int
    host: str
    started: str
    job: str | None = None

    def name(self) -> str:
        """``pid@host``, as ``ps`` and a scheduler's job list would be searched for it."""
        return f"{self.pid}@{self.host}"

    def is_stale(self) -> bool:
        """Whether the holder is known to be gone: same host and its PID is not alive, or an
        earlier start of this SLURM job."""
        job = _slurm_job()
        if self.job is not None and job is not None and self.job != job \
                and self.job.partition(".")[0] == job.partition(".")[0]:
            return True
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return True  # not ours (callers check _HELD first): an earlier life of this PID
        return not _alive(self.pid)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user
    return True


def _slurm_job() -> str | None:
    job = os.environ.get(SLURM_JOB_ENV)
    return None if not job else f"{job}.{os.environ.get(SLURM_RESTART_ENV) or 0}"


def _me() -> Holder:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return Holder(os.getpid(), socket.gethostname(), started, _slurm_job())


def _create(path: Path, holder: Holder) -> bool:
    """Create ``path`` holding ``holder``; False if it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    except FileExistsError:
        return False
    try:
        # One write: a reader sees an empty file at worst, never half a record.
        os.write(fd, (json.dumps(holder.__dict__) + "\n").encode())
    finally:
        os.close(fd)
    return True


def read_holder(path: str | os.PathLike[str]) -> Holder | None:
    """The holder a lock file names; None if it names none that can be read.

    Args:
        path: the lock file.
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        job = record.get("job")
        return Holder(int(record["pid"]), str(record["host"]), str(record["started"]),
                      None if job is None else str(job))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refusal(run_dir: Path, holder: Holder | None) -> RunLocked:
    """The one-line error for a run directory whose lock is not ours to take."""
    lock = run_dir / LOCK_FILE
    if holder is None:
        return RunLocked(f"{run_dir} is locked by {lock}, which cannot be read; if no run uses "
                         f"this directory, remove {lock}")
    if holder.host != socket.gethostname():
        return RunLocked(f"{run_dir} is in use by {holder.name()} (since {holder.started}); if "
                         f"that job is dead, remove {lock}, or use another directory")
    return RunLocked(f"{run_dir} is in use by {holder.name()} (since {holder.started}); wait "
                     "for it to end or use another directory")


def check_unlocked(run_dir: str | os.PathLike[str]) -> None:
    """Refuse (:class:`RunLocked`) if a live process holds ``run_dir``; takes nothing.

    Args:
        run_dir: the run directory.
    """
    path = Path(os.path.abspath(run_dir)) / LOCK_FILE
    if not path.exists() or path in _HELD:
        return
    holder = read_holder(path)
    if holder is None or not holder.is_stale():
        raise refusal(path.parent, holder)


class RunLock:
    """Holds ``run.lock`` in a run directory while the block runs (a context manager).

    Args:
        run_dir: the run directory (created if missing).
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        # Absolute: the set of held locks must not tell "run" and "./run" apart.
        self.run_dir = Path(os.path.abspath(run_dir))
        self.path = self.run_dir / LOCK_FILE
        self.holder = _me()
        self.took_over: Holder | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLocked` in one line."""
        if self.path in _HELD:
            raise refusal(self.run_dir, read_holder(self.path))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not _create(self.path, self.holder):
            stale = read_holder(self.path)
            if stale is None or not stale.is_stale():
                raise refusal(self.run_dir, stale)
            self._take_over(stale)
        _HELD.add(self.path)

    def _take_over(self, stale: Holder) -> None:
        guard = self.path.with_name(self.path.name + TAKEOVER_SUFFIX)
        if not _create(guard, self.holder):
            other = read_holder(guard)
            if other is None or not other.is_stale():
                raise RunLocked(f"{self.run_dir}: another process is taking over its stale lock "
                                f"({guard}); try again, or remove {guard} if none is")
            guard.unlink(missing_ok=True)  # left by a process that died in the middle of this
            if not _create(guard, self.holder):
                raise refusal(self.run_dir, read_holder(self.path))
        try:
            # Under the guard nobody else replaces a stale lock; a new process may still have
            # created one after it was found stale (then it is not the one read before).
            if read_holder(self.path) != stale:
                raise refusal(self.run_dir, read_holder(self.path))
            self.path.unlink(missing_ok=True)
            if not _create(self.path, self.holder):
                raise refusal(self.run_dir, read_holder(self.path))
        finally:
            guard.unlink(missing_ok=True)
        self.took_over = stale
        print(f"[dgan] {self.path}: took over the lock of {stale.name()} (since "
              f"{stale.started}), which is no longer running", file=sys.stderr, flush=True)

    def release(self) -> None:
        """Remove the lock if it is still ours (never another process's)."""
        if self.path not in _HELD:
            return
        _HELD.discard(self.path)
        if read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)

    def moved_to(self, new_dir: str | os.PathLike[str]) -> None:
        """The directory was renamed to ``new_dir`` while held: drop the lock that went with it.

        Args:
            new_dir: where the run directory is now.
        """
        moved = RunLock(new_dir)
        _HELD.discard(self.path)
        if read_holder(moved.path) == self.holder:
            moved.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

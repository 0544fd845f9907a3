"""One writer per run directory, and only its own files: the lock, the fresh-start rule,
``overwrite=true``, runs below a run directory, and ``prepare`` writing into its source."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan.core.errors import ConfigError
from dgan.data.prepare import PrepareError, prepare
from dgan.data.prepare import main as prepare_main
from dgan.files.run_dir import check_before_hydra, claim_run_dir
from dgan.files.run_lock import LOCK_FILE, Holder, RunLock, RunLocked, read_holder
from dgan.tracking.run_history import record_files, trim_history

from .conftest import compose_train

TOY = ["experiment=gaussians25", "debug=default"]
CHILD_TIMEOUT_S = 300
# Longer than any test here; the sleeper is killed at the end of its test.
SLEEP_S = 300
# What the docs promise of an error: one line, short enough to read.
MAX_LINE = 300
LONGER_KIMG = "kimg=0.08"  # twice debug=default's: a resume that has steps to run


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dgan.train", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)


def _hashes(root: Path) -> dict[str, str]:
    """Every file below ``root`` (hidden ones too) by its path, with the hash of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-2000:]
    assert len(lines[0]) < MAX_LINE, lines[0]
    return lines[0]


def _train(overrides: list[str], run_dir: Path) -> float | None:
    from dgan.train import train

    return train(compose_train(overrides, run_dir))


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, to stand for a run that holds a lock."""
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({SLEEP_S})"])
    yield child
    child.kill()
    child.wait()


def _write_lock(run_dir: Path, pid: int, host: str | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = Holder(pid, host or socket.gethostname(), "2026-01-01T00:00:00+00:00")
    path = run_dir / LOCK_FILE
    path.write_text(f'{{"pid": {holder.pid}, "host": "{holder.host}", '
                    f'"started": "{holder.started}"}}\n')
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str], int]:
    """A finished toy run made by the command line, started over a stale lock (a killed
    earlier run's): the directory, the command's result and the dead PID."""
    root = tmp_path_factory.mktemp("finished")
    run_dir = root / "run"
    pid = _dead_pid()
    _write_lock(run_dir, pid)
    res = _cli([*TOY, f"hydra.run.dir={run_dir}"], root)
    assert res.returncode == 0, res.stderr[-3000:]
    return run_dir, res, pid


@pytest.fixture
def run_copy(finished, tmp_path: Path) -> Path:
    """A copy of the finished run, for a test that may change it."""
    copy = tmp_path / "run"
    shutil.copytree(finished[0], copy)
    return copy


# ----------------------------------------------------------------------------- the lock


def test_a_stale_lock_is_taken_over_and_released_at_the_end(finished) -> None:
    run_dir, res, pid = finished
    assert f"took over the lock of {pid}@{socket.gethostname()}" in res.stderr
    assert "[dgan] finished at kimg" in res.stdout
    assert not (run_dir / LOCK_FILE).exists()  # released when the run ended


def test_a_locked_run_directory_refuses_a_second_train(run_copy: Path, sleeper, capsys) -> None:
    lock = _write_lock(run_copy, sleeper.pid)
    before = _hashes(run_copy)
    holder = f"{sleeper.pid}@{socket.gethostname()}"
    # Two resume=auto on one directory (the case that wrote rows twice): the second stops.
    with pytest.raises(RunLocked, match=f"{run_copy} is in use by {holder}"):
        _train([*TOY, LONGER_KIMG, "resume=auto"], run_copy)
    with pytest.raises(RunLocked, match=holder):
        check_before_hydra([*TOY, f"hydra.run.dir={run_copy}", "resume=auto"])
    assert _hashes(run_copy) == before and read_holder(lock).pid == sleeper.pid
    assert "[dgan] run directory" not in capsys.readouterr().out  # nothing was built


def test_a_lock_from_another_host_is_honoured_and_says_how_to_remove_it(tmp_path: Path) -> None:
    lock = _write_lock(tmp_path, _dead_pid(), host="elsewhere.invalid")
    with pytest.raises(RunLocked) as refused:
        RunLock(tmp_path).acquire()
    line = str(refused.value)
    assert "elsewhere.invalid" in line and f"remove {lock}" in line and "\n" not in line
    assert read_holder(lock).host == "elsewhere.invalid"


def test_one_process_takes_a_lock_once_and_removes_only_its_own(tmp_path: Path) -> None:
    first = RunLock(tmp_path)
    with first:
        assert read_holder(tmp_path / LOCK_FILE) == first.holder
        with pytest.raises(RunLocked, match=str(os.getpid())):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()
    # A lock that someone else wrote after ours went is not removed by our release.
    lock = RunLock(tmp_path)
    lock.acquire()
    other = _write_lock(tmp_path, _dead_pid())
    lock.release()
    assert other.exists()


def test_a_lock_of_an_earlier_start_of_the_same_slurm_job_is_stale(tmp_path: Path,
                                                                    monkeypatch) -> None:
    # A requeued job starts on another node after its first start was killed (SIGKILL at the
    # time limit leaves the lock behind).
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lock = tmp_path / LOCK_FILE
    lock.write_text('{"pid": 1, "host": "node7.invalid", "started": "2026-01-01T00:00:00+00:00",'
                    ' "job": "4242.0"}\n')
    with RunLock(tmp_path) as taken:
        assert taken.took_over is not None and taken.took_over.job == "4242.0"
        assert read_holder(lock).job == "4242.1"
    # Another job's lock on another node is honoured.
    lock.write_text('{"pid": 1, "host": "node7.invalid", "started": "2026-01-01T00:00:00+00:00",'
                    ' "job": "4141.0"}\n')
    with pytest.raises(RunLocked, match="node7.invalid"):
        RunLock(tmp_path).acquire()


def test_the_lock_goes_with_a_preempted_or_failed_run(tmp_path: Path) -> None:
    from dgan.callbacks.preemption import Preempted

    cfg = compose_train(TOY, tmp_path)
    with pytest.raises(Preempted), claim_run_dir(cfg):
        assert read_holder(tmp_path / LOCK_FILE).pid == os.getpid()
        raise Preempted("SIGTERM", tmp_path / "last.ckpt", 0.0, 0)
    assert not (tmp_path / LOCK_FILE).exists()
    with pytest.raises(RuntimeError), claim_run_dir(cfg):
        raise RuntimeError("a crash")
    assert not (tmp_path / LOCK_FILE).exists()


def test_an_unreadable_lock_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("")
    with pytest.raises(RunLocked, match="cannot be read"):
        RunLock(tmp_path).acquire()


def test_ranks_started_by_lightning_do_not_claim_the_directory(tmp_path: Path, sleeper,
                                                               monkeypatch) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    # DDP's other ranks run the command line again in the directory rank 0 holds.
    _write_lock(tmp_path, sleeper.pid)
    (tmp_path / "metrics.csv").write_text("kimg\n0.0\n")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    check_before_hydra([*TOY, f"hydra.run.dir={tmp_path}", "overwrite=true"])
    with claim_run_dir(compose_train(TOY, tmp_path)) as run_dir:
        assert run_dir == tmp_path
    assert read_holder(tmp_path / LOCK_FILE).pid == sleeper.pid and tmp_path.is_dir()


# ----------------------------------------------------------------------------- fresh starts


def test_a_rerun_without_resume_is_refused_and_changes_no_byte(run_copy: Path) -> None:
    before = _hashes(run_copy)
    assert "checkpoints/last.ckpt" in before and ".hydra/config.yaml" in before
    res = _cli([*TOY, f"hydra.run.dir={run_copy}"], run_copy.parent)
    assert res.returncode == 2
    line = _error_line(res.stderr)
    assert str(run_copy) in line and "resume=auto" in line and "overwrite=true" in line
    # The job's own check (a directory Hydra only knows after composing) refuses too.
    with pytest.raises(ConfigError, match="resume=auto"):
        _train(TOY, run_copy)
    assert _hashes(run_copy) == before
    # resume=auto continues it.
    _train([*TOY, LONGER_KIMG, "resume=auto"], run_copy)
    assert not (run_copy / LOCK_FILE).exists()


def test_overwrite_moves_the_old_run_aside(run_copy: Path) -> None:
    before = _hashes(run_copy)
    res = _cli([*TOY, f"hydra.run.dir={run_copy}", "overwrite=true"], run_copy.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    (moved,) = run_copy.parent.glob("run.old-*")
    assert _hashes(moved) == before  # all of it, .hydra and train.log included
    assert f"moved the old {run_copy} to {moved}" in res.stdout
    assert (run_copy / "checkpoints" / "last.ckpt").is_file()
    assert "took over" not in res.stderr and not (moved / LOCK_FILE).exists()


def test_overwrite_needs_a_directory_it_can_move(run_copy: Path, monkeypatch) -> None:
    before = _hashes(run_copy)
    monkeypatch.chdir(run_copy)
    with pytest.raises(ConfigError, match="working directory"):
        check_before_hydra([*TOY, "hydra.run.dir=.", "overwrite=true"])
    with pytest.raises(ConfigError, match="overwrite=yes is not valid; expected true or false"):
        check_before_hydra([*TOY, f"hydra.run.dir={run_copy}", "overwrite=yes"])
    # A directory known only inside the job (Hydra has written its .hydra there already).
    with pytest.raises(ConfigError, match="plain path"):
        _train([*TOY, "overwrite=true"], run_copy)
    assert _hashes(run_copy) == before


def test_a_run_in_a_parent_of_other_runs_leaves_them_byte_identical(finished, tmp_path: Path,
                                                                    monkeypatch) -> None:
    parent = tmp_path / "outputs"
    inner = parent / "gaussians25" / "one"
    shutil.copytree(finished[0], inner)
    shutil.copytree(finished[0], parent / "gaussians25" / "two")
    before = _hashes(parent)
    for args in (["hydra.run.dir=."], ["hydra.run.dir="], [f"hydra.run.dir={parent}"]):
        monkeypatch.chdir(parent)
        with pytest.raises(ConfigError, match="another run"):
            check_before_hydra([*TOY, *args])
    with pytest.raises(ConfigError, match="already holds a run \\(another run: gaussians25/one"):
        _train(TOY, parent)
    with pytest.raises(ConfigError, match="already holds a run"):  # a sweep directory reused
        check_before_hydra([*TOY, "-m", f"hydra.sweep.dir={parent}", "seed=1,2"])
    assert _hashes(parent) == before
    # resume=auto is a fresh start there (no checkpoint of its own): it writes its own files.
    _train([*TOY, "resume=auto"], parent)
    after = _hashes(parent)
    assert "metrics.csv" in after and "checkpoints/last.ckpt" in after
    assert {k: v for k, v in after.items() if k.startswith("gaussians25/")} == before


def test_record_files_are_the_runs_own(tmp_path: Path) -> None:
    (tmp_path / "diagnostics").mkdir()
    (tmp_path / "metrics.csv").write_text("kimg,a\n0.1,1\n0.2,2\n")
    (tmp_path / "diagnostics" / "p_T.csv").write_text("kimg,p\n0.1,0.5\n")
    below = tmp_path / "sweep" / "0"
    (below / ".hydra").mkdir(parents=True)
    (below / "metrics.jsonl").write_text('{"kimg": 0.1}\n')
    (below / "metrics.csv").write_text("kimg,a\n0.1,1\n")
    assert record_files(tmp_path) == [tmp_path / "diagnostics" / "p_T.csv",
                                      tmp_path / "metrics.csv"]
    trim_history(tmp_path, None)
    assert (tmp_path / "metrics.csv").read_text() == "kimg,a\n"
    assert (below / "metrics.jsonl").read_text() == '{"kimg": 0.1}\n'
    assert (below / "metrics.csv").read_text() == "kimg,a\n0.1,1\n"


# ----------------------------------------------------------------------------- prepare


def test_prepare_refuses_a_destination_in_its_source(tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(images / f"{k}.png")
    data = tmp_path / "data.zip"
    prepare(images, data, resolution=8)
    before = data.read_bytes()
    with pytest.raises(PrepareError, match="is the source itself"):
        prepare(data, data)
    # The same file by another name is still the same file.
    with pytest.raises(PrepareError, match="is the source itself"):
        prepare(data, tmp_path / "images" / ".." / "data.zip")
    with pytest.raises(PrepareError, match="is inside --source"):
        prepare(images, images / "sub" / "out.zip")
    assert data.read_bytes() == before and not (images / "sub").exists()
    with pytest.raises(SystemExit) as stop:
        prepare_main([f"--source={data}", f"--dest={data}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < MAX_LINE and "source itself" in err[0]

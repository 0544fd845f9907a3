"""Resuming a run: which checkpoint, whether it fits the config, and the run's records cut to
where the checkpoint stood, so that a resumed history equals an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from dgan.callbacks.checkpoint import LAST
from dgan.callbacks.metrics import MetricsCallback
from dgan.core.errors import ConfigError
from dgan.core.state_fit import state_mismatches

# Records hold kimg to 3 decimals.
KIMG_TOLERANCE = 5e-4


def resolve_resume(resume: str | None, run_dir: Path) -> str | None:
    """``null`` | ``auto`` (the latest checkpoint of this run dir, if any) | a path."""
    if resume in (None, "", "none"):
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / LAST
        return str(last) if last.exists() else None
    if not Path(resume).is_file():
        raise ConfigError(f"resume={resume!r}: no such checkpoint file; use a path, auto or null")
    return str(resume)


def finished_final(resume: str | None, run_dir: Path, kimg: float) -> dict[str, Any] | None:
    """With ``resume=auto``, the final values of the run ``run_dir`` holds when it already
    trained ``kimg`` and recorded its final evaluation (``metrics_summary.json``); None when
    there is something left to do. The same command then starts, continues and, once done,
    leaves a run as it is: an interrupted multirun, run again, skips its finished jobs.

    Args:
        resume: the ``resume`` key (only ``auto`` can find a finished run: an explicit
            checkpoint asks for training, and one that reached kimg is refused as before).
        run_dir: the run directory.
        kimg: the run's length.
    """
    if resume != "auto" or resolve_resume(resume, run_dir) is None:
        return None
    final = recorded_final(run_dir)
    if not final or not isinstance(final.get("kimg"), (int, float)):
        return None
    return final if final["kimg"] >= kimg - KIMG_TOLERANCE else None


def recorded_final(run_dir: Path) -> dict[str, Any] | None:
    """The final values ``metrics_summary.json`` of ``run_dir`` holds (None: no file, not
    readable, or no final evaluation recorded)."""
    from dgan.callbacks.metrics import SUMMARY_FILE

    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    final = summary.get("final") if isinstance(summary, dict) else None
    return final if isinstance(final, dict) else None


def continue_history(run_dir: Path, resume_kimg: float | None, loggers: list[Any]) -> None:
    """Make the run directory's history continue at the checkpoint (before any logging).

    The record files keep what was written up to ``resume_kimg`` (a fresh start keeps none),
    and a W&B logger continues the run the directory recorded.

    Args:
        run_dir: the run directory.
        resume_kimg: kimg of the checkpoint the run resumes from; None for a fresh start.
        loggers: the run's loggers.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from dgan.tracking.records import KimgWandbLogger
    from dgan.tracking.run_history import read_wandb_run_id, trim_history

    if rank_zero_only.rank == 0:  # the other ranks write no record
        trim_history(run_dir, resume_kimg)
    run_id = read_wandb_run_id(run_dir) if resume_kimg is not None else None
    for logger in loggers:
        if run_id is not None and isinstance(logger, KimgWandbLogger):
            logger.resume_run(run_id)


def final_evaluation_missing(run_dir: Path, metrics: MetricsCallback | None) -> bool:
    """Whether the run's end-of-training evaluation is not recorded: it has metrics, and
    ``metrics_summary.json`` is missing or holds no final values (a run killed between its last
    checkpoint and its final evaluation)."""
    if metrics is None or not metrics.metrics:
        return False
    return not recorded_final(run_dir)


def drop_end_of_training_records(run_dir: Path, ckpt_path: str, kimg: float) -> None:
    """Drop the records written after the run's final checkpoint (its end-of-training
    evaluation, at the same kimg): the resumed run that completes it writes them again.

    Args:
        run_dir: the run directory.
        ckpt_path: the final checkpoint.
        kimg: its kimg, the run's last.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from dgan.callbacks.checkpoint import HISTORY_KEY
    from dgan.files.checkpoints import read_checkpoint
    from dgan.tracking.run_history import trim_to_counts

    if rank_zero_only.rank != 0:  # the other ranks write no record
        return
    history = read_checkpoint(ckpt_path, "resume").get(HISTORY_KEY)
    counted_here = (isinstance(history, dict) and isinstance(history.get("counts"), dict)
                    and Path(str(history.get("run_dir"))).resolve() == run_dir.resolve())
    if counted_here:
        trim_to_counts(run_dir, history["counts"])
    else:  # no count of this directory's records (an older checkpoint): metrics.jsonl by kimg
        drop_final_rows(run_dir, kimg)


def drop_final_rows(run_dir: Path, kimg: float) -> None:
    """Drop ``metrics.jsonl`` rows at ``kimg`` (the run's last), which only the final evaluation
    writes: a kill after the row but before the summary would otherwise leave it twice."""
    from dgan.files.run_files import METRICS_FILE

    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            row_kimg = float(json.loads(line).get("kimg"))
        except (ValueError, TypeError, AttributeError):
            kept.append(line)
            continue
        if row_kimg < kimg - KIMG_TOLERANCE:
            kept.append(line)
    if len(kept) != len(lines):
        from dgan.files.atomic import atomic_write_bytes

        atomic_write_bytes(path, "".join(kept).encode())


def check_resume(ckpt_path: str, kimg: float, module: L.LightningModule | None = None,
                  unfinished: bool = False) -> float:
    """Check that ``ckpt_path`` can continue this run; returns the kimg it holds.

    Args:
        ckpt_path: the checkpoint.
        kimg: the run's length.
        module: the module this config builds (its weights must fit the checkpoint's).
        unfinished: the run's final evaluation is not recorded: a checkpoint at the last kimg
            is taken (the run is finished, not trained further) instead of refused.
    """
    from dgan.files.checkpoints import read_checkpoint

    # One reader for every checkpoint argument: a truncated, empty or foreign file is named
    # in one line, and nothing in it runs (weights_only).
    state = read_checkpoint(ckpt_path, "resume")
    dgan_state = state["dgan"]
    # A checkpoint of another model first: "raise kimg" would not help there.
    if module is not None:
        _check_state_matches(ckpt_path, state.get("state_dict") or {}, module)
    if dgan_state["cur_nimg"] >= kimg * 1000 and not unfinished:
        raise ConfigError(
            f"resume={ckpt_path}: the run already reached kimg={dgan_state['cur_nimg'] / 1000:g} "
            f"of kimg={kimg:g}; raise kimg to train longer"
        )
    return float(dgan_state["cur_nimg"]) / 1000


def _check_state_matches(ckpt_path: str, saved: dict[str, Any], module: L.LightningModule
                         ) -> None:
    """The checkpoint's weights must fit the module this config builds: same keys, shapes."""
    shown = state_mismatches(saved, module.state_dict())
    if shown is not None:
        raise ConfigError(
            f"resume={ckpt_path}: the checkpoint does not fit this model ({shown}); resume with "
            "the model, dataset and diffusion settings the run was started with"
        )

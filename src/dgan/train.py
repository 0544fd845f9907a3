"""Train a (Diffusion-)GAN: ``python -m dgan.train experiment=gaussians25 [key=value ...]``.

Thin entry point: Hydra composes ``conf/train.yaml``; :func:`train` builds the objects the config
names and fits them. Returns the headline metric, for sweepers that optimise it.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import hydra
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from dgan.assembly.builder import Run, build_run
from dgan.assembly.resume import finished_final
from dgan.callbacks.preemption import (
    DEFAULT_SIGNALS,
    Preempted,
    PreemptionCheckpoint,
    SignalGuard,
    StoppedOnBadFile,
    mark_training_done,
)
from dgan.callbacks.progress import kimg_text
from dgan.config.compose import check_overrides
from dgan.config.data_sizing import size_from_data
from dgan.config.debug import apply_debug
from dgan.config.help_page import help_page, wants_help
from dgan.config.instantiation import check_interpolations
from dgan.config.launch import check_launch
from dgan.config.paths import CONFIG_DIR
from dgan.config.warnings import quiet_known_warnings
from dgan.core.errors import ConfigError
from dgan.data.images import ImageFileError
from dgan.files.console_log import LOG_FILE, ConsoleLog
from dgan.files.run_dir import check_before_hydra, claim_run_dir
from dgan.files.writable import check_creatable_dir
from dgan.tracking.loggers import finish_wandb

# Exit status of a run stopped by an image file it cannot read (after its checkpoint).
EXIT_BAD_FILE = 1
# Exit status of a run stopped by a file it cannot write (read-only directory, full disk).
EXIT_WRITE_FAILED = 1
# What a directory that stopped taking files reports: no permission, read-only, full, quota.
WRITE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)
# Exit status of a run interrupted with nothing saved (Ctrl-C before training, or twice): the
# shell's 128 + SIGINT.
EXIT_INTERRUPTED = 130


def guarded_signals(cfg: DictConfig) -> list[str]:
    """The signals a completed run ignores: the defaults and those the preemption callback takes.

    Args:
        cfg: the run config.
    """
    node = (cfg.get("callbacks") or {}).get("preemption")
    configured = list(node.get("signals") or []) if node is not None else []
    return list(dict.fromkeys([*DEFAULT_SIGNALS, *configured]))


def _bad_file_stop(run: Run, error: ImageFileError) -> StoppedOnBadFile:
    """The stop to report for ``error``, with the checkpoint the preemption callback saved."""
    saved = next((cb.saved_on_error for cb in run.trainer.callbacks
                  if isinstance(cb, PreemptionCheckpoint)), None)
    return StoppedOnBadFile(error, saved, float(run.module.kimg))


def train(cfg: DictConfig) -> float | None:
    """Build everything ``cfg`` describes, fit, and return the headline metric (or None)."""
    size_from_data(cfg)  # experiment=images: null model keys from the data, before any resolves
    check_interpolations(cfg)  # before the debug overlay and the launch checks read values
    if apply_debug(cfg):
        print("[dgan] debug=default: tiny networks, a few steps, no metrics", flush=True)
    check_launch(cfg)
    with claim_run_dir(cfg):  # its lock and the fresh-start rule, before anything is built
        return _fit(cfg)


def multirun_dir() -> Path | None:
    """The directory of this job's multirun (None: a single run), which each job names so
    that the sweep's report can be asked for by its path."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    config = HydraConfig.get()
    if config.mode != RunMode.MULTIRUN:
        return None
    return Path(str(config.sweep.dir)).resolve()


def _fit(cfg: DictConfig) -> float | None:
    """:func:`train` in a run directory that is this process's: build, fit, report."""
    run_dir = Path(cfg.paths.output_dir)
    final = finished_final(cfg.get("resume"), run_dir, float(cfg.kimg))
    if final is not None:
        print(f"[dgan] {run_dir} already finished at kimg {final['kimg']:g} (resume=auto): "
              f"nothing to train; raise kimg to train longer", flush=True)
        return next((float(v) for k, v in final.items() if k != "kimg"), None)
    run = build_run(cfg)
    print(f"[dgan] run directory: {run.run_dir}", flush=True)
    sweep = multirun_dir()
    if sweep is not None:
        print(f"[dgan] multirun directory: {sweep} (python -m dgan.sweep_report {sweep})",
              flush=True)
    with SignalGuard(guarded_signals(cfg)):
        try:
            run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
        except Preempted as stop:
            finish_wandb(run.trainer.loggers, exit_code=stop.exit_code)
            raise
        except ImageFileError as err:
            finish_wandb(run.trainer.loggers, exit_code=EXIT_BAD_FILE)
            raise _bad_file_stop(run, err) from None
        except BaseException:
            finish_wandb(run.trainer.loggers, exit_code=1)
            raise
        # Without a preemption callback nobody has said so yet; from here on a signal is noted.
        mark_training_done()
        finish_wandb(run.trainer.loggers)  # each job of a multirun is its own W&B run
        done = kimg_text(run.module.kimg, run.module.total_kimg).partition("/")[0]
        print(f"[dgan] finished at kimg {done}; run directory: {run.run_dir}",
              flush=True)
        return run.headline_value()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra app: one job (a multirun calls it once per job), printed into train.log."""
    quiet_known_warnings()
    if rank_zero_only.rank != 0:
        return job(cfg)  # the other DDP ranks print nothing worth a second copy
    with ConsoleLog(Path(cfg.paths.output_dir) / LOG_FILE):
        return job(cfg)


def job(cfg: DictConfig) -> float | None:
    """:func:`train`, with every expected stop turned into its exit status and one line."""
    try:
        return train(cfg)
    except ConfigError as err:
        # One line that names the key, the value and what is valid; no traceback.
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Preempted as stop:
        # SIGTERM/SIGUSR1/SIGINT: the checkpoint is written; a clean exit so that the scheduler
        # (or a retry loop with resume=auto) can start the run again.
        sys.exit(stop.exit_code)
    except StoppedOnBadFile as stop:
        # A truncated or unreadable image: one line naming it (the checkpoint is written).
        print(f"error: {stop.line()}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_FILE)
    except KeyboardInterrupt:
        print("[dgan] interrupted: nothing saved", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as err:
        # The run directory made read-only, a full disk: a write that cannot start leaves each
        # file as it was (checkpoints are replaced atomically), so resume=auto continues.
        print(f"error: {write_failure_line(err)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_WRITE_FAILED)


def write_failure_line(err: OSError) -> str:
    """One line for a file the run could not write (or read): which file, why, what to do."""
    where = f" {err.filename}" if err.filename else ""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno not in WRITE_ERRNOS:
        return f"cannot use{where} ({reason})"
    return (f"cannot write{where} ({reason}); the files written so far are intact: make the "
            "run directory writable (or free space) and continue with resume=auto")


# Hydra's own options: they keep their dashes (every other --key=value becomes key=value).
HYDRA_FLAGS = ("--help", "--hydra-help", "--version", "--cfg", "--resolve", "--package",
               "--run", "--multirun", "--shell-completion", "--config-path", "--config-name",
               "--config-dir", "--info", "--experimental-rerun")
# Where Hydra puts the run (or sweep) directory unless hydra.run.dir / hydra.sweep.dir say.
DEFAULT_OUTPUT_ROOTS = {"hydra.run.dir": "outputs", "hydra.sweep.dir": "multirun"}


def hydra_argv(argv: list[str]) -> list[str]:
    """``--key=value`` -> ``key=value`` (the one habit of every dgan command); Hydra's flags
    (``-m``, ``--multirun``, ``--cfg job``, ``--config-name=...``) stay as they are.

    Args:
        argv: the arguments (without the program name).
    """
    out = []
    for arg in argv:
        name = arg.partition("=")[0]
        if arg.startswith("--") and "=" in arg and name not in HYDRA_FLAGS:
            arg = arg[2:]
        out.append(arg)
    return out


def check_output_dirs(argv: list[str]) -> None:
    """The run (or sweep) directory can be made, before Hydra makes it (a traceback there).

    Args:
        argv: the Hydra arguments.
    """
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    path = DEFAULT_OUTPUT_ROOTS[key]
    for arg in argv:
        name, _, value = arg.lstrip("+").partition("=")
        if name == key and "${" not in value:  # an interpolation: Hydra resolves it
            path = value
    check_creatable_dir(path, key)


def main() -> None:
    """``python -m dgan.train`` / ``dgan-train``: takes ``key=value`` and ``--key=value``."""
    sys.argv[1:] = hydra_argv(sys.argv[1:])
    if wants_help(sys.argv[1:]):  # dgan's page; Hydra's: --hydra-help, the config: --cfg job
        print(help_page(CONFIG_DIR), end="")
        return
    try:
        check_output_dirs(sys.argv[1:])
        check_overrides(sys.argv[1:])  # Hydra's own override errors, in one line
        check_before_hydra(sys.argv[1:])  # before Hydra writes into a run directory in use
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()

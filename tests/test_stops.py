"""Clean stops: Ctrl-C saves like SIGTERM and a second one aborts, a completed run exits 0 on a
late signal, and a corrupt image met during training stops with a checkpoint and one line."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from dgan.assembly.builder import build_run
from dgan.callbacks.preemption import Preempted, SignalGuard, mark_training_done

from .conftest import QUIET_TOY, REPO, compose_train, fit_in_process

TINY = [
    *QUIET_TOY,
    "callbacks.checkpoint.every_kimg=0",
    "logger=none",
]
BATCH = 64
STOP_STEP = 3
CHILD_TIMEOUT_S = 300
IMAGE_BATCH = 4
# Six steps: the corrupt image (one of 16) comes within the first epoch of four steps.
IMAGE_NIMG = 24
# A tiny StyleGAN2 on 32 x 32 grey images (the digits preset at reduced width), without the
# callbacks that read every real image before training starts.
TINY_IMAGES = [
    "experiment=digits_stylegan2",
    "dataset=images",
    f"model.batch_size={IMAGE_BATCH}",
    "model.generator.img_resolution=32",
    "model.generator.channel_base=512",
    "model.generator.channel_max=32",
    f"model.discriminator.mbstd_group_size={IMAGE_BATCH}",
    "metrics=none",
    "callbacks.samples=null",
    "callbacks.diagnostics=null",
    "callbacks.progress=null",
    "callbacks.checkpoint.every_kimg=0",
    "logger=none",
    "seed=0",
]
RESOLUTION = 32
NUM_GOOD_IMAGES = 15
CORRUPT_NAME = "00000007.png"
# Bytes of the corrupt PNG kept: its header (size and mode) reads, its pixels do not.
TRUNCATED_BYTES = 100


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def _default_handlers() -> Iterator[None]:
    """Whatever a test does to the handlers, pytest gets its own Ctrl-C back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                    signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class _SignalsAt(L.Callback):
    """Sends this process ``signums`` one after the other at the end of step ``step``."""

    def __init__(self, step: int, signums: list[int]) -> None:
        self.step, self.signums = step, signums

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.cur_step == self.step:
            for signum in self.signums:
                signal.raise_signal(signum)


class SignalsAtTrainEnd(L.Callback):
    """Sends SIGTERM, SIGINT and SIGUSR1 while the completed run tears down (for the CLI)."""

    def on_train_end(self, trainer, pl_module) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.raise_signal(signum)

    def teardown(self, trainer, pl_module, stage) -> None:
        signal.raise_signal(signal.SIGTERM)



def test_sigint_saves_a_checkpoint_at_the_next_step_like_sigterm(tmp_path: Path,
                                                                 capfd) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted) as stop:
        fit_in_process([*TINY, "kimg=1"], run_dir, _SignalsAt(STOP_STEP, [signal.SIGINT]))
    assert stop.value.signal_name == "SIGINT" and stop.value.exit_code == 0
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["dgan"]["cur_step"] == STOP_STEP and ckpt["dgan"]["cur_nimg"] == STOP_STEP * BATCH
    out = capfd.readouterr()
    assert "Ctrl-C again to abort" in out.err
    assert f"SIGINT: checkpoint saved to {run_dir / 'checkpoints' / 'last.ckpt'}" in out.out
    assert f"continue with resume=auto hydra.run.dir={run_dir}" in out.out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is Python's


def test_a_second_sigint_aborts_at_once_without_a_checkpoint(tmp_path: Path, capfd) -> None:
    run_dir = tmp_path / "run"
    # Lightning turns the KeyboardInterrupt into exit status 1 after its own shutdown.
    with pytest.raises(SystemExit) as stop:
        fit_in_process([*TINY, "kimg=1"], run_dir,
                       _SignalsAt(STOP_STEP, [signal.SIGINT, signal.SIGINT]))
    assert stop.value.code == 1
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    assert "second SIGINT: stopping at once" in capfd.readouterr().err


def test_signal_guard_passes_signals_on_until_training_is_done() -> None:
    with SignalGuard(["SIGINT", "SIGTERM"]) as guard:
        with pytest.raises(KeyboardInterrupt):  # before: Python's own Ctrl-C
            signal.raise_signal(signal.SIGINT)
        mark_training_done()
        signal.raise_signal(signal.SIGTERM)  # after: noted, and the process lives on
        signal.raise_signal(signal.SIGINT)
    assert guard.noted == ["SIGTERM", "SIGINT"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_completed_run_exits_0_whatever_arrives_during_teardown(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "dgan.train", *TINY, "kimg=0.128", f"hydra.run.dir={run_dir}",
         f"+callbacks.late_signals._target_={__name__}.SignalsAtTrainEnd"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[dgan] finished at kimg 0.1" in res.stdout
    for name in ("SIGTERM", "SIGINT", "SIGUSR1"):
        assert f"{name} after training completed: finishing the run" in res.stderr
    assert "Traceback" not in res.stderr
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_zip(path: Path, corrupt: bool) -> Path:
    """Grey 32 x 32 PNGs; with ``corrupt``, one of them cut after its header."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (RESOLUTION, RESOLUTION), np.uint8)
              for _ in range(NUM_GOOD_IMAGES + 1)]
    names = [f"{k:08d}.png" for k in range(len(images))]
    with zipfile.ZipFile(path, "w") as zf:
        for name, pixels in zip(names, images, strict=True):
            data = _png(pixels)
            zf.writestr(name, data[:TRUNCATED_BYTES] if corrupt and name == CORRUPT_NAME
                        else data)
    return path


def test_corrupt_image_met_in_training_stops_with_a_checkpoint_and_one_line(
        tmp_path: Path) -> None:
    data = _image_zip(tmp_path / "data.zip", corrupt=True)
    run_dir = tmp_path / "run"
    common = [*TINY_IMAGES, f"dataset.path={data}", f"kimg={IMAGE_NIMG / 1000}"]
    res = subprocess.run(
        [sys.executable, "-m", "dgan.train", *common, f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr[-3000:]
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    assert CORRUPT_NAME in errors[0] and f"checkpoint saved to {ckpt_path}" in errors[0]
    ckpt = torch.load(ckpt_path, weights_only=True)
    stopped_at = ckpt["dgan"]["cur_nimg"]
    assert f"at kimg {stopped_at / 1000:.3f}" in errors[0]
    assert stopped_at % IMAGE_BATCH == 0 and stopped_at < IMAGE_NIMG

    # Once the file is replaced, resume=auto continues from the checkpoint to the end.
    _image_zip(data, corrupt=False)
    resumed = build_run(compose_train([*common, "resume=auto"], run_dir))
    assert resumed.ckpt_path == str(ckpt_path)
    resumed.trainer.fit(resumed.module, datamodule=resumed.datamodule,
                        ckpt_path=resumed.ckpt_path)
    assert resumed.module.cur_nimg == IMAGE_NIMG

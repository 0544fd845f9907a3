"""DDP on CPU (gloo) and exact resume after pre-emption, on the toy problem."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from dgan.assembly.builder import build_run
from dgan.callbacks.adaptive_probability import SYNC_CHECK_ENV
from dgan.callbacks.preemption import Preempted
from dgan.config.batch_layout import batch_layout
from dgan.core.errors import ConfigError

from .conftest import QUIET_TOY, REPO, compose_train, fit_in_process

TINY = [
    *QUIET_TOY,
    "trainer.log_every_n_steps=4",
]
BATCH = 64
# Moves p by 64 * 4 / 4000 = 0.064 per update, so p and T change within a few steps.
FAST_ADAPT = ["adaptive.ada_kimg=4", "diffusion.p_init=0.5"]
CHILD_TIMEOUT_S = 240


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()
            if isinstance(v, torch.Tensor)}


# ----------------------------------------------------------------------------- DDP through the CLI


def test_ddp_cpu_cli_one_run_dir_and_p_T_in_sync(tmp_path: Path) -> None:
    sync_dir = tmp_path / "sync"
    res = subprocess.run(
        [sys.executable, "-m", "dgan.train", *TINY, *FAST_ADAPT, "trainer=ddp_cpu", "kimg=1",
         "callbacks.checkpoint.every_kimg=0.5"],
        cwd=tmp_path, env={**_env(), SYNC_CHECK_ENV: str(sync_dir)},
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # Hydra + DDP: rank 1 is the command line run again, and still one output directory.
    run_dirs = list((tmp_path / "outputs" / "gaussians25").iterdir())
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]
    assert (run_dir / ".hydra").is_dir() and (run_dir / "metrics.csv").is_file()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in res.stdout + res.stderr
    # p and T were all-gathered and equal on both ranks at every update (the callback asserts
    # it; the files show it), and they moved.
    logs = [[json.loads(line) for line in _lines(sync_dir / f"sync_rank{r}.jsonl")]
            for r in range(2)]
    steps = -(-1000 // BATCH)
    assert [rec["step"] for rec in logs[0]] == list(range(4, steps + 1, 4))
    assert logs[0] == logs[1]
    for rec in logs[0]:
        assert rec["all_p"] == [rec["p"]] * 2 and rec["all_T"] == [rec["T"]] * 2
    assert len({rec["p"] for rec in logs[0]}) > 1
    # The checkpoint, written by rank 0 only, holds both ranks' own random streams and t pools.
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    ranks = ckpt["dgan"]["ranks"]
    assert len(ranks) == 2
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    assert "diffusion._extra_state" in ranks[1]["state_dict"]
    assert ckpt["dgan"]["config"]["global_batch"] == {
        "global": BATCH, "per_device": BATCH // 2, "batch_gpu": BATCH // 2, "accumulation": 1,
        "devices": 2, "num_nodes": 1}


# ----------------------------------------------------------------------------- gradients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _GradRecorder(L.Callback):
    """Saves the (already all-reduced) gradients at the first step of each optimiser."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.grads: dict[str, dict[str, torch.Tensor]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name, opt in zip(("G", "D"), trainer.optimizers, strict=True):
            def hook(opt: torch.optim.Optimizer, args: object, kwargs: object,
                     name: str = name) -> None:
                if name not in self.grads:
                    self.grads[name] = {str(i): p.grad.clone() for i, p in
                                        enumerate(opt.param_groups[0]["params"])}
            opt.register_step_pre_hook(hook)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(self.grads, self.out)


def _one_step(rank: int, world: int, port: int, out_dir: Path) -> None:
    """One training step of the global batch, this process being ``rank`` of ``world``."""
    torch.set_num_threads(1)
    overrides = [*TINY, "diffusion=none", "kimg=0.064", "callbacks.checkpoint=null",
                 "callbacks.preemption=null", "logger=none", "callbacks.throughput=null"]
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                          NODE_RANK="0", LOCAL_RANK=str(rank))
        overrides += ["trainer=ddp_cpu", f"trainer.devices={world}"]
    cfg = compose_train(overrides, out_dir / f"run{world}_{rank}")
    run = build_run(cfg)
    # The same latents as the single process, split the way the sampler splits the reals
    # (rank r holds global positions r, r + world, ...), so that the per-rank halves are exactly
    # the full batch's samples. The t and noise of the diffusion come from per-rank generators
    # that no single process reproduces, hence diffusion=none here.
    latents = torch.randn(4, BATCH, run.module.G.z_dim, generator=torch.Generator().manual_seed(1))
    calls = iter(range(len(latents)))
    run.module.sample_z = lambda n: latents[next(calls)][rank::world][:n]
    run.trainer.callbacks.append(_GradRecorder(out_dir / f"grads{world}_{rank}.pt"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.module.cur_step == 1


def test_ddp_gradients_equal_single_process_gradients(tmp_path: Path) -> None:
    port = _free_port()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_one_step, args=(r, 2, port, tmp_path)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(CHILD_TIMEOUT_S)
    assert [p.exitcode for p in procs] == [0, 0]
    _one_step(0, 1, port, tmp_path)
    single = torch.load(tmp_path / "grads1_0.pt")
    ranks = [torch.load(tmp_path / f"grads2_{r}.pt") for r in range(2)]
    assert set(single) == {"G", "D"}
    for net in ("G", "D"):
        for key, grad in single[net].items():
            assert grad.abs().sum() > 0
            torch.testing.assert_close(ranks[0][net][key], ranks[1][net][key], rtol=0, atol=0)
            torch.testing.assert_close(ranks[0][net][key], grad, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- resume



class _StartProbe(L.Callback):
    """Records where a (resumed) run starts."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        d = pl_module.diffusion
        adaptive = pl_module.adaptive
        self.start = {"cur_nimg": pl_module.cur_nimg, "p": d.p.clone(), "T": d.T.clone(),
                      "G_ema": _weights(pl_module.G_ema), "adaptive_steps": adaptive._steps,
                      "adaptive_sums": [float(adaptive._signs), float(adaptive._count)]
                      if adaptive._steps else None}


def _assert_continues(ckpt: dict, probe: _StartProbe, resumed, reference) -> None:
    state = ckpt["state_dict"]
    assert probe.start["cur_nimg"] == ckpt["dgan"]["cur_nimg"]
    assert torch.equal(probe.start["p"], state["diffusion.p"])
    assert torch.equal(probe.start["T"], state["diffusion.T"])
    for k, v in probe.start["G_ema"].items():
        assert torch.equal(v, state[f"G_ema.{k}"]), k
    # ... and ends exactly where the uninterrupted run ended.
    assert resumed.module.cur_nimg == reference.module.cur_nimg
    ref, got = _weights(reference.module), _weights(resumed.module)
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_sigterm_midway_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    kimg = 4
    # p starts mid-way and moves slowly (toy ada_kimg), so it is never stuck at a bound.
    common = [*TINY, "diffusion.p_init=0.5", f"kimg={kimg}", "seed=3",
              "callbacks.checkpoint.every_kimg=1", "trainer.log_every_n_steps=50"]
    run_dir = tmp_path / "interrupted"
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dgan.train", *common, f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not ckpt_path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # training is running: the first checkpoint is written
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM: checkpoint saved to" in out, out[-2000:]
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert 0 < ckpt["dgan"]["cur_nimg"] < kimg * 1000

    probe = _StartProbe()
    resumed = fit_in_process([*common, "resume=auto"], run_dir, probe)
    assert resumed.ckpt_path == str(ckpt_path)
    reference = fit_in_process(common, tmp_path / "uninterrupted")
    _assert_continues(ckpt, probe, resumed, reference)


class _SignalAt(L.Callback):
    """Sends this process a signal at the end of step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.cur_step == self.step:
            os.kill(os.getpid(), self.signum)


def test_sigusr1_stops_at_the_next_step_and_resume_is_exact(tmp_path: Path) -> None:
    # In process, the signal lands at a known step: between an adaptive update's partial sums
    # (update every 4 steps) and with a path to every piece of state.
    common = [*TINY, *FAST_ADAPT, "kimg=2", "seed=5", "callbacks.checkpoint.every_kimg=0"]
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted) as stop:
        fit_in_process(common, run_dir, _SignalAt(step=6, signum=signal.SIGUSR1))
    assert stop.value.signal_name == "SIGUSR1" and stop.value.exit_code == 0
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["dgan"]["cur_step"] == 6 and ckpt["dgan"]["cur_nimg"] == 6 * BATCH
    adaptive = next(v for k, v in ckpt["callbacks"].items() if "AdaptiveDiffusion" in k)
    assert adaptive["steps"] == 2 and adaptive["per_rank"][0][1] == 2 * BATCH

    probe = _StartProbe()
    resumed = fit_in_process([*common, f"resume={run_dir / 'checkpoints' / 'last.ckpt'}"],
                              tmp_path / "resumed", probe)
    # The two steps of r_d sums since the last update continue too.
    assert probe.start["adaptive_steps"] == 2
    assert probe.start["adaptive_sums"] == adaptive["per_rank"][0]
    reference = fit_in_process(common, tmp_path / "reference")
    _assert_continues(ckpt, probe, resumed, reference)


def test_resume_from_a_periodic_snapshot_is_exact(tmp_path: Path) -> None:
    # The snapshot at 1 kimg falls on step 16, an adaptive-update step: the save must wait until
    # the update (a callback that runs after the checkpoint callback) is done.
    common = [*TINY, *FAST_ADAPT, "kimg=2", "seed=11", "callbacks.checkpoint.every_kimg=1",
              "callbacks.checkpoint.keep_snapshots=true"]
    reference = fit_in_process(common, tmp_path / "full")
    # The first snapshot (named by its kimg, 1.024: kimg000001.024.ckpt).
    snapshot = sorted((reference.run_dir / "checkpoints").glob("kimg*.ckpt"))[0]
    ckpt = torch.load(snapshot, weights_only=True)
    assert ckpt["dgan"]["cur_step"] == 16
    probe = _StartProbe()
    resumed = fit_in_process([*common, f"resume={snapshot}"], tmp_path / "resumed", probe)
    _assert_continues(ckpt, probe, resumed, reference)


def _ddp_fit(rank: int, world: int, port: int, overrides: list[str], run_dir: Path, out: Path,
             signal_step: int | None) -> None:
    """A DDP rank in a forked process: fit, then save this rank's final state to ``out``."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      NODE_RANK="0", LOCAL_RANK=str(rank))
    cfg = compose_train([*overrides, "trainer=ddp_cpu", f"trainer.devices={world}"], run_dir)
    run = build_run(cfg)
    if signal_step is not None and rank == 0:  # only rank 0 is signalled: all ranks must stop
        run.trainer.callbacks.append(_SignalAt(signal_step, signal.SIGTERM))
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
        stopped = False
    except Preempted:
        stopped = True
    torch.save({"stopped": stopped, "cur_step": run.module.cur_step,
                "state": _weights(run.module)}, out)


def _ddp_run(tmp_path: Path, name: str, overrides: list[str], run_dir: Path,
             signal_step: int | None = None) -> list[dict]:
    port = _free_port()
    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"{name}_rank{r}.pt" for r in range(2)]
    procs = [ctx.Process(target=_ddp_fit, args=(r, 2, port, overrides, run_dir, outs[r],
                                                  signal_step)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(CHILD_TIMEOUT_S)
    assert [p.exitcode for p in procs] == [0, 0], name
    return [torch.load(out) for out in outs]


def test_ddp_preempt_and_resume_every_rank_continues_exactly(tmp_path: Path) -> None:
    common = [*TINY, *FAST_ADAPT, "kimg=1", "seed=2", "callbacks.checkpoint.every_kimg=0",
              "logger=none", "callbacks.throughput=null"]
    stopped = _ddp_run(tmp_path, "stopped", common, tmp_path / "run", signal_step=6)
    assert [r["stopped"] for r in stopped] == [True, True]
    assert [r["cur_step"] for r in stopped] == [6, 6]
    resumed = _ddp_run(tmp_path, "resumed", [*common, "resume=auto"], tmp_path / "run")
    reference = _ddp_run(tmp_path, "reference", common, tmp_path / "reference")
    for rank in range(2):
        ref, got = reference[rank]["state"], resumed[rank]["state"]
        for k in ref:  # weights, G_ema, p, T and this rank's own t pool
            assert torch.equal(ref[k], got[k]), (rank, k)
    # The ranks' pools differ (own generators), so rank 1 really restored its own.
    assert not torch.equal(reference[0]["state"]["diffusion.pool"],
                           reference[1]["state"]["diffusion.pool"])


# ----------------------------------------------------------------------------- errors


def test_resume_errors_are_one_line_config_errors(tmp_path: Path) -> None:
    run = fit_in_process([*TINY, "kimg=0.128"], tmp_path / "run")
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="is truncated or damaged"):
        build_run(compose_train([*TINY, "kimg=1", f"resume={truncated}"], tmp_path / "a"))
    bad_shape = r"does not fit this model .*G\.body\.0\.weight has shape"
    with pytest.raises(ConfigError, match=bad_shape):
        build_run(compose_train([*TINY, "kimg=1", "model.generator.hidden=16", f"resume={ckpt}"],
                                tmp_path / "b"))
    with pytest.raises(ConfigError, match="does not fit this model .*diffusion"):
        build_run(compose_train([*TINY, "kimg=1", "diffusion=none", f"resume={ckpt}"],
                                tmp_path / "c"))
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        build_run(compose_train([*TINY, f"resume={tmp_path / 'nope.ckpt'}"], tmp_path / "d"))


def test_global_batch_must_divide_over_processes() -> None:
    assert batch_layout(64, 8, 4, 2) == {"global": 64, "per_device": 8, "batch_gpu": 8,
                                         "accumulation": 1, "devices": 4, "num_nodes": 2}
    assert batch_layout(64, 4, 2, 1)["accumulation"] == 8
    with pytest.raises(ValueError, match=r"model\.batch_size=64 is not divisible .* 3 x 1 = 3"):
        batch_layout(64, None, 3, 1)
    with pytest.raises(ValueError, match=r"model\.batch_gpu=5 does not divide"):
        batch_layout(64, 5, 2, 1)


def test_bad_global_batch_fails_before_training(tmp_path: Path) -> None:
    cfg = compose_train([*TINY, "trainer=ddp_cpu", "trainer.devices=3"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"model\.batch_size=64 is not divisible"):
        build_run(cfg)

"""``DiffusionGAN``: the LightningModule that trains G against D through the diffusion.

One ``training_step`` is one iteration of the global batch. It runs the phase table
(:mod:`dgan.training.phases`): each due phase is its own optimizer step (zero grads, accumulate
over the batch_gpu rounds, one all-reduce, ``nan_to_num``, step), and what a phase computes is
the loss object's business (:mod:`dgan.training.losses`). The module itself holds no GAN
objective, so every GAN family trains on this loop.

The module counts images itself (``cur_nimg``): training length, EMA, the adaptive diffusion and
every cadence follow it rather than Lightning's ``global_step``, which counts each optimizer's
steps. With ``diffusion=None`` the same module is the plain GAN baseline.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from dgan.core.rank_state import (
    capture_rng_state,
    gather_to_rank0,
    restore_rng_state,
    same_value,
    seed_rank,
    to_cpu,
)
from dgan.diffusion.process import Diffusion
from dgan.tracking.records import align_iteration, log_scalars
from dgan.training.gradient_sync import step_network
from dgan.training.losses.base import (
    CLEAN_COUNT,
    CLEAN_SIGNS,
    REAL_COUNT,
    REAL_SIGNS,
    GANLoss,
    GANNetworks,
)
from dgan.training.phases import OptimizerFactory, Phase, build_phases, scaled_optimizer

# Losses shown in the progress bar (the rest go to the loggers only).
PROGRESS_BAR_KEYS = {"loss/G": "lossG", "loss/D": "lossD"}


class DiffusionGAN(L.LightningModule):
    """Diffusion-GAN (or a plain GAN without ``diffusion``) with manual optimisation.

    Args:
        generator: G, called as ``G(z, c)`` (StyleGAN2: ``G.mapping`` / ``G.synthesis``).
        discriminator: D, called as ``D(x, c, t)`` and returning logits.
        loss: the GAN family's loss object (what each phase computes).
        g_optimizer: G's optimizer, a partial taking the parameters (Hydra ``_partial_``).
        d_optimizer: D's optimizer, likewise.
        g_reg_interval: iterations between G's reg phases (None: one fused Gboth phase).
        d_reg_interval: iterations between D's reg phases (None: one fused Dboth phase).
        diffusion: the adaptive forward diffusion; None trains a plain GAN.
        adaptive: the callback that adapts the diffusion's p (None: p stays where it starts).
        augment: a differentiable augmentation before the diffusion (None: none).
        augment_p: the callback that moves the augmentation's p (None: p stays where it starts).
        batch_size: global batch per step, all ranks together.
        batch_gpu: samples per forward pass on one device; smaller than the per-rank batch
            means gradient accumulation (None: the whole per-rank batch at once).
        ema_kimg: half-life of G_ema in thousands of images.
        ema_rampup: if set, the half-life is at most cur_nimg * ema_rampup (early training).
        total_kimg: training length, thousands of real images shown.
        fused_adam: pass ``fused=True`` to the optimizers on CUDA.
        channels_last: keep G, D and the images in channels-last memory format.
        compile: ``torch.compile`` G and D for the main phases (R1 and path length need
            double backward, which compiled graphs lack, so they run the plain networks).
        run_config: the resolved run configuration, stored in checkpoints as a plain dict.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        g_optimizer: OptimizerFactory,
        d_optimizer: OptimizerFactory,
        g_reg_interval: int | None = 4,
        d_reg_interval: int | None = 16,
        diffusion: Diffusion | None = None,
        adaptive: L.Callback | None = None,
        augment: nn.Module | None = None,
        augment_p: L.Callback | None = None,
        batch_size: int = 64,
        batch_gpu: int | None = None,
        ema_kimg: float = 10.0,
        ema_rampup: float | None = None,
        total_kimg: float = 25_000.0,
        fused_adam: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be an integer >= 1")
        check = getattr(loss, "check_generator", None)
        if check is not None:
            check(generator)
        self.G = generator
        self.D = discriminator
        self.loss = loss
        self.diffusion = diffusion
        self.augment = augment
        self.adaptive = adaptive if diffusion is not None else None
        self.augment_p = augment_p if augment is not None else None
        self.G_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.phases: list[Phase] = build_phases([g_reg_interval, d_reg_interval])
        self.reg_intervals = {"G": g_reg_interval, "D": d_reg_interval}
        self.optimizer_factories = {"G": g_optimizer, "D": d_optimizer}
        self.batch_size = int(batch_size)
        self.batch_gpu = batch_gpu
        self.ema_kimg, self.ema_rampup = float(ema_kimg), ema_rampup
        self.total_kimg = float(total_kimg)
        self.fused_adam = fused_adam
        self.channels_last = bool(channels_last)
        self.compile_networks = bool(compile)
        # Compiled callables by id of the plain network; a dict, so not submodules: the state
        # dict and checkpoints stay those of the plain networks.
        self._compiled: dict[int, Any] = {}
        self.run_config = run_config or {}
        self.cur_nimg = 0  # real images shown so far, all ranks together
        self.cur_step = 0  # training iterations so far
        self.optimizer_steps = {"G": 0, "D": 0}  # steps each optimizer actually took
        self._pending_rng: dict[str, Any] | None = None  # set by a resume
        self.loss.bind(GANNetworks(G=self.G, D=self.D, diffusion=self.diffusion,
                                   augment=self.augment, backward=self.manual_backward,
                                   fast=self._fast))

    # ------------------------------------------------------------------ set-up

    @property
    def kimg(self) -> float:
        """Thousands of real images shown so far."""
        return self.cur_nimg / 1000

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = []
        for name in ("G", "D"):
            factory = scaled_optimizer(self.optimizer_factories[name], self.reg_intervals[name])
            net = getattr(self, name)
            params = [p for p in net.parameters() if p.requires_grad]
            cuda = params[0].device.type == "cuda"
            extra = {"fused": True} if self.fused_adam and cuda else {}
            optimizers.append(factory(params, **extra))
        return optimizers

    def configure_callbacks(self) -> list[L.Callback]:
        # The module owns the controllers of its p's: whoever trains it gets the updates for free.
        return [cb for cb in (self.adaptive, self.augment_p) if cb is not None]

    def on_fit_start(self) -> None:
        if self.cur_step == 0:
            # Each rank draws its own latents, t and noise: a different stream per rank, derived
            # from the run's seed (the weights, built before this, are the same everywhere).
            seed_rank(torch.initial_seed(), self.global_rank, self.trainer.world_size)
            for stream in (self.diffusion, self.augment):
                if stream is not None and hasattr(stream, "reseed"):
                    stream.reseed(stream.seed + self.global_rank)
            self.loss.start_run(self.global_rank)
        if self.channels_last:
            for net in (self.G, self.D, self.G_ema):
                net.to(memory_format=torch.channels_last)
        if self.compile_networks and not self._compiled:
            nets = [self.D] + ([self.G.mapping, self.G.synthesis] if hasattr(self.G, "mapping")
                               else [self.G])
            self._compiled = {id(net): torch.compile(net) for net in nets}

    def _fast(self, net: nn.Module) -> Any:
        """``net``'s compiled version where there is one."""
        return self._compiled.get(id(net), net)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Every record's step is the iteration count, as in an uninterrupted run: Lightning's
        # restore of a checkpoint taken between two steps would count one step too many.
        align_iteration(self.trainer, self.cur_step)
        if self._pending_rng is not None:
            # Restored here, not at load time: Lightning draws from the global generator while it
            # sets up the data (a fresh run drew those before its checkpoint was taken), so only
            # at the first step does the resumed stream continue the saved one exactly.
            restore_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_epoch_end(self) -> None:
        # Lightning counts the last step once more when its loop ends; the records written after
        # it (the final evaluation and measurements) belong to that last step, as do the
        # records at its kimg written during it.
        align_iteration(self.trainer, max(self.cur_step - 1, 0))

    # ------------------------------------------------------------------ inputs of a phase

    def sample_z(self, n: int) -> torch.Tensor:
        """Latents of ``n`` generated samples."""
        return torch.randn(n, self.G.z_dim, device=self.device)

    def sample_c(self, n: int, real_c: torch.Tensor) -> torch.Tensor:
        """Labels of ``n`` generated samples, drawn from the rank's real labels (the data's
        label distribution)."""
        if real_c.shape[1] == 0:
            return real_c.new_zeros(n, 0)
        idx = torch.randint(real_c.shape[0], (n,), device=real_c.device)
        return real_c[idx]

    # ------------------------------------------------------------------ training

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
                      ) -> dict[str, torch.Tensor]:
        real, real_c = batch
        if self.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        optimizers = self.optimizers()
        rounds = self._rounds(real.shape[0])
        real_rounds = list(zip(real.split(rounds), real_c.split(rounds), strict=True))
        logs: dict[str, torch.Tensor] = {}
        # Sums of the real logits' signs and counts, all reals and the clean ones (on the
        # device: the adaptive update and the overfitting callback read them back rarely).
        sums = {key: torch.zeros((), device=self.device)
                for key in (REAL_SIGNS, REAL_COUNT, CLEAN_SIGNS, CLEAN_COUNT)}

        self.loss.begin_iteration()
        for phase in self.phases:
            if not phase.due(self.cur_step):
                continue
            # Fresh latents and labels per phase, as the reference draws them.
            gen_z = self.sample_z(real.shape[0]).split(rounds)
            gen_c = self.sample_c(real.shape[0], real_c).split(rounds)
            net = getattr(self, phase.network)
            optimizer = optimizers[phase.optimizer]
            optimizer.zero_grad(set_to_none=True)
            gain = phase.interval / len(real_rounds)
            with self._only_trainable(net):
                for (x, c), z, zc in zip(real_rounds, gen_z, gen_c, strict=True):
                    report = self.loss.accumulate_gradients(phase.name, x, c, z, zc, gain)
                    for key in sums:
                        if key in report:
                            sums[key] = sums[key] + report.pop(key)
                    logs.update(report)
            if step_network(net, optimizer, self.trainer.world_size):
                self.optimizer_steps[phase.network] += 1

        self._update_ema()
        self.cur_step += 1
        self.cur_nimg += self.batch_size
        last = self.cur_nimg >= self.total_kimg * 1000
        if self.cur_step % max(self.trainer.log_every_n_steps, 1) == 0 or last:
            # Lightning's logging costs ~ a toy step: log sparsely, and at the last step, so
            # that a run shorter than log_every_n_steps still records its losses.
            self._log_step(logs)
        elif self.cur_step == 1:
            # The progress bar shows the losses from the first step; the loggers keep their
            # cadence.
            self._log_progress(logs)
        if last:
            self.trainer.should_stop = True
        return sums

    def _rounds(self, per_rank: int) -> int:
        bg = self.batch_gpu or per_rank
        if per_rank % bg:
            raise ValueError(f"per-device batch {per_rank} is not divisible by batch_gpu={bg}")
        return bg

    @contextlib.contextmanager
    def _only_trainable(self, net: nn.Module) -> Iterator[None]:
        """Only ``net`` accumulates gradients inside the block (the reference's
        ``requires_grad_`` toggling: the other network's weights build no graph)."""
        others = [m for m in (self.G, self.D) if m is not net]
        for m in others:
            m.requires_grad_(False)
        net.requires_grad_(True)
        try:
            yield
        finally:
            for m in others:
                m.requires_grad_(True)

    @torch.no_grad()
    def _update_ema(self) -> None:
        # After the phases and before counting this step's images, as the reference.
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
        beta = 0.5 ** (self.batch_size / max(ema_nimg, 1e-8))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    def _log_step(self, logs: dict[str, torch.Tensor]) -> None:
        # The loggers get this step's values through dgan's records, with the step's kimg (the x
        # axis of every W&B chart), not through self.log: Lightning repeats a value logged at an
        # earlier step (a lazy regularisation's loss) in each later record of the epoch, which
        # a resumed run, starting without it, would not repeat.
        log_scalars(self.trainer, {key: float(value) for key, value in logs.items()}, self.kimg)
        for logger in self.trainer.loggers:
            logger.save()  # metrics.csv shows the losses as soon as they are recorded
        # A CPU tensor, so that showing it costs no copy to the device.
        self.log("kimg", torch.tensor(self.kimg), prog_bar=True, logger=False, on_step=True,
                 on_epoch=False, batch_size=self.batch_size)
        self._log_progress(logs)

    def _log_progress(self, logs: dict[str, torch.Tensor]) -> None:
        shown = {bar: logs[key] for key, bar in PROGRESS_BAR_KEYS.items() if key in logs}
        self.log_dict(shown, prog_bar=True, logger=False, on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Called on every rank (Lightning's dump_checkpoint), so the gather below is safe.
        checkpoint["dgan"] = {
            "cur_nimg": self.cur_nimg,
            "cur_step": self.cur_step,
            "optimizer_steps": dict(self.optimizer_steps),
            "config": self.run_config,
            "ranks": self._gather_rank_states(),
        }

    def _gather_rank_states(self) -> list[dict[str, Any]] | None:
        """Per rank: its random states and the buffers in which it differs from rank 0."""
        param_names = {name for name, _ in self.named_parameters()}
        local = {
            "rng": capture_rng_state(),
            "state_dict": {k: to_cpu(v) for k, v in self.state_dict().items()
                           if k not in param_names},
        }
        gathered = gather_to_rank0(local)
        if gathered is None:
            return None  # ranks > 0: rank 0 writes the file
        reference = gathered[0]["state_dict"]
        return [
            {"rng": g["rng"],
             "state_dict": {k: v for k, v in g["state_dict"].items()
                            if rank > 0 and not same_value(v, reference.get(k))}}
            for rank, g in enumerate(gathered)
        ]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("dgan")
        if state is None:
            raise ValueError("not a dgan checkpoint: it has no 'dgan' section")
        self.cur_nimg = int(state["cur_nimg"])
        self.cur_step = int(state["cur_step"])
        self.optimizer_steps = dict(state.get("optimizer_steps", self.optimizer_steps))
        ranks = state.get("ranks") or []
        rank, world = self.global_rank, self.trainer.world_size
        if len(ranks) == world:
            # This rank's own buffers (t pool, generator states, ...) replace rank 0's before
            # Lightning loads the state dict; its random streams continue at the first step.
            checkpoint["state_dict"].update(ranks[rank]["state_dict"])
            self._pending_rng = ranks[rank]["rng"]
        else:
            rank_zero_warn(
                f"the checkpoint was written by {len(ranks)} rank(s), this run has {world}: "
                "weights, optimisers, p and T continue, but the random streams restart from "
                "the seed, so the run will not repeat an uninterrupted one exactly"
            )
            seed_rank(torch.initial_seed() + self.cur_step, rank, world)
            if self.diffusion is not None:
                checkpoint["state_dict"].pop("diffusion._extra_state", None)
                self.diffusion.reseed(self.diffusion.seed + self.cur_step + rank)

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def generate(self, z: torch.Tensor, c: torch.Tensor | None = None, **kwargs: Any
                 ) -> torch.Tensor:
        """Samples of G_ema for latents ``z`` (and labels ``c``)."""
        if c is None:
            c = z.new_zeros(z.shape[0], getattr(self.G_ema, "c_dim", 0))
        return self.G_ema(z, c, **kwargs)

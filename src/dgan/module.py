"""``DiffusionGAN``: the LightningModule that trains G against a t-dependent D through the
diffusion.

One ``training_step`` is one iteration of the global batch, in four phases (StyleGAN2-ADA):

- ``G main``: G's samples, diffused, should fool D;
- ``G reg``: path-length regularisation, every ``pl_interval`` steps;
- ``D main``: diffused reals against diffused (detached) fakes;
- ``D reg``: R1 on the clean reals *through* the diffusion, every ``r1_interval`` steps.

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
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from dgan.diffusion import Diffusion
from dgan.losses import discriminator_loss, generator_loss, path_lengths, r1_penalty
from dgan.rank_state import (
    capture_rng_state,
    gather_to_rank0,
    restore_rng_state,
    same_value,
    seed_rank,
    to_cpu,
)


class DiffusionGAN(L.LightningModule):
    """Diffusion-GAN (or a plain GAN without ``diffusion``) with manual optimisation.

    Args:
        generator: G, called as ``G(z, c)``; style mixing and path length need
            ``G.mapping`` / ``G.synthesis`` (StyleGAN2).
        discriminator: D, called as ``D(x, c, t)`` and returning logits [N, 1].
        diffusion: the adaptive forward diffusion; None trains a plain GAN.
        batch_size: global batch per step, all ranks together.
        batch_gpu: samples per forward pass on one device; smaller than the per-rank batch
            means gradient accumulation (None: the whole per-rank batch at once).
        g_lr: learning rate of G.
        d_lr: learning rate of D.
        betas: Adam betas.
        eps: Adam epsilon.
        r1_gamma: weight of R1 (0 disables it).
        r1_interval: steps between R1 evaluations (lazy regularisation; 1 = every step).
        pl_weight: weight of path-length regularisation (0 disables it).
        pl_interval: steps between path-length evaluations.
        pl_batch_shrink: the path-length batch is the batch divided by this.
        pl_decay: decay of the running mean path length.
        style_mixing_prob: probability of mixing two latents' styles.
        ema_kimg: half-life of G_ema in thousands of images.
        ema_rampup: if set, the half-life is at most cur_nimg * ema_rampup (early training).
        total_kimg: training length, thousands of real images shown.
        fused_adam: use the fused Adam kernel (CUDA only).
        channels_last: keep G, D and the images in channels-last memory format.
        compile: ``torch.compile`` G and D for the main phases (R1 and path length need
            double backward, which compiled graphs lack, so they run the plain networks).
        run_config: the resolved run configuration, stored in checkpoints as a plain dict.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        diffusion: Diffusion | None = None,
        batch_size: int = 64,
        batch_gpu: int | None = None,
        g_lr: float = 0.0025,
        d_lr: float = 0.0025,
        betas: tuple[float, float] = (0.0, 0.99),
        eps: float = 1e-8,
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        style_mixing_prob: float = 0.0,
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
        has_style = hasattr(generator, "mapping") and hasattr(generator, "synthesis")
        if (style_mixing_prob > 0 or pl_weight > 0) and not has_style:
            raise ValueError(
                "style_mixing_prob and pl_weight need a generator with mapping/synthesis "
                f"(StyleGAN2); {type(generator).__name__} has none: set both to 0"
            )
        for key, value in (("r1_interval", r1_interval), ("pl_interval", pl_interval),
                           ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{key}={value} must be an integer >= 1")
        self.G = generator
        self.D = discriminator
        self.diffusion = diffusion
        self.G_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.batch_size = int(batch_size)
        self.batch_gpu = batch_gpu
        self.g_lr, self.d_lr, self.betas, self.eps = g_lr, d_lr, tuple(betas), eps
        self.r1_gamma, self.r1_interval = float(r1_gamma), int(r1_interval)
        self.pl_weight, self.pl_interval = float(pl_weight), int(pl_interval)
        self.pl_batch_shrink, self.pl_decay = int(pl_batch_shrink), float(pl_decay)
        self.style_mixing_prob = float(style_mixing_prob)
        self.ema_kimg, self.ema_rampup = float(ema_kimg), ema_rampup
        self.total_kimg = float(total_kimg)
        self.fused_adam = fused_adam
        self.channels_last = bool(channels_last)
        self.compile_networks = bool(compile)
        # Compiled callables by id of the plain network; a dict, so not submodules: the state
        # dict and checkpoints stay those of the plain networks.
        self._compiled: dict[int, Any] = {}
        self._use_compiled = True
        self.run_config = run_config or {}
        self.register_buffer("pl_mean", torch.zeros(()))
        self.cur_nimg = 0  # real images shown so far, all ranks together
        self.cur_step = 0  # training iterations so far
        self._pending_rng: dict[str, Any] | None = None  # set by a resume

    # ------------------------------------------------------------------ set-up

    @property
    def kimg(self) -> float:
        """Thousands of real images shown so far."""
        return self.cur_nimg / 1000

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self._adam(self.G, self.g_lr, self.pl_interval if self.pl_weight > 0 else 1),
            self._adam(self.D, self.d_lr, self.r1_interval if self.r1_gamma > 0 else 1),
        ]

    def _adam(self, net: nn.Module, lr: float, reg_interval: int) -> torch.optim.Optimizer:
        # Lazy regularisation runs the penalty every reg_interval steps at reg_interval x its
        # weight; scaling lr and betas keeps the effective optimiser the same (StyleGAN2, C.1).
        ratio = reg_interval / (reg_interval + 1) if reg_interval > 1 else 1.0
        betas = tuple(b**ratio for b in self.betas)
        fused = self.fused_adam and next(net.parameters()).device.type == "cuda"
        return torch.optim.Adam(net.parameters(), lr=lr * ratio, betas=betas, eps=self.eps,
                                fused=fused or None)

    def configure_callbacks(self) -> list[L.Callback]:
        # The module owns its adaptive diffusion: whoever trains it gets the update for free.
        from dgan.callbacks.adaptive_diffusion import AdaptiveDiffusion

        return [AdaptiveDiffusion()] if self.diffusion is not None else []

    def on_fit_start(self) -> None:
        if self.cur_step == 0:
            # Each rank draws its own latents, t and noise: a different stream per rank, derived
            # from the run's seed (the weights, built before this, are the same everywhere).
            seed_rank(torch.initial_seed(), self.global_rank, self.trainer.world_size)
            if self.diffusion is not None:
                self.diffusion.reseed(self.diffusion.seed + self.global_rank)
        if self.channels_last:
            for net in (self.G, self.D, self.G_ema):
                net.to(memory_format=torch.channels_last)
        if self.compile_networks and not self._compiled:
            nets = [self.D] + ([self.G.mapping, self.G.synthesis] if hasattr(self.G, "mapping")
                               else [self.G])
            self._compiled = {id(net): torch.compile(net) for net in nets}

    def _fast(self, net: nn.Module) -> Any:
        """``net``'s compiled version where there is one and the phase allows it."""
        return self._compiled.get(id(net), net) if self._use_compiled else net

    @contextlib.contextmanager
    def _plain_networks(self) -> Iterator[None]:
        """Run the plain networks inside the block (double backward of R1 / path length)."""
        self._use_compiled = False
        try:
            yield
        finally:
            self._use_compiled = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng is not None:
            # Restored here, not at load time: Lightning draws from the global generator while it
            # sets up the data (a fresh run drew those before its checkpoint was taken), so only
            # at the first step does the resumed stream continue the saved one exactly.
            restore_rng_state(self._pending_rng)
            self._pending_rng = None

    # ------------------------------------------------------------------ forward pieces

    def sample_z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, net: nn.Module | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate with optional style mixing; returns images and ws (None for non-style G)."""
        net = self.G if net is None else net
        if not hasattr(net, "mapping"):
            return self._fast(net)(z, c), None
        ws = self._fast(net.mapping)(z, c)
        if self.style_mixing_prob > 0:
            # Past a random cutoff layer the styles come from a second latent (StyleGAN2 2.3).
            n, num_ws = ws.shape[:2]
            cutoff = torch.randint(1, num_ws, (), device=ws.device)
            mix = torch.rand((), device=ws.device) < self.style_mixing_prob
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
            ws2 = self._fast(net.mapping)(torch.randn_like(z), c, update_emas=False)
            layer = torch.arange(num_ws, device=ws.device).view(1, -1, 1)
            ws = torch.where(layer < cutoff, ws, ws2)
        return self._fast(net.synthesis)(ws), ws

    def run_D(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Diffuse ``x`` (if there is a diffusion) and score it; returns logits and t."""
        if self.diffusion is None:
            return self._fast(self.D)(x, c, None), None
        y, t = self.diffusion(x)
        return self._fast(self.D)(y, c, t), t

    def random_labels(self, n: int, real_c: torch.Tensor) -> torch.Tensor:
        """Labels for generated samples, drawn from the batch's real labels."""
        if real_c.shape[1] == 0:
            return real_c[:0].new_zeros(n, 0)
        idx = torch.randint(real_c.shape[0], (n,), device=real_c.device)
        return real_c[idx]

    # ------------------------------------------------------------------ training

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
                      ) -> dict[str, torch.Tensor]:
        real, real_c = batch
        if self.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        opt_g, opt_d = self.optimizers()
        rounds = self._rounds(real.shape[0])
        reals = list(zip(real.split(rounds), real_c.split(rounds), strict=True))
        logs: dict[str, torch.Tensor] = {}

        with self._training(self.G, opt_g):
            for x, c in reals:
                fake, _ = self.run_G(self.sample_z(x.shape[0]), self.random_labels(x.shape[0], c))
                fake_logits, _ = self.run_D(fake, c)
                loss = generator_loss(fake_logits).mean()
                self.manual_backward(loss / len(reals))
                logs["loss/G"] = loss.detach()
            if self.pl_weight > 0 and self.cur_step % self.pl_interval == 0:
                with self._plain_networks():
                    logs["loss/G_pl"] = self._path_length_phase(reals)
        self._step(self.G, opt_g)

        real_signs = torch.zeros((), device=self.device)
        with self._training(self.D, opt_d):
            for x, c in reals:
                with torch.no_grad():
                    fake, _ = self.run_G(self.sample_z(x.shape[0]),
                                         self.random_labels(x.shape[0], c))
                fake_logits, _ = self.run_D(fake, c)
                real_logits, _ = self.run_D(x, c)
                loss = discriminator_loss(real_logits, fake_logits).sum() / x.shape[0]
                self.manual_backward(loss / len(reals))
                real_signs = real_signs + real_logits.detach().sign().sum()
                logs["loss/D"] = loss.detach()
                logs["D/real_logits"] = real_logits.detach().mean()
                logs["D/fake_logits"] = fake_logits.detach().mean()
            if self.r1_gamma > 0 and self.cur_step % self.r1_interval == 0:
                with self._plain_networks():
                    logs["loss/D_r1"] = self._r1_phase(reals)
        self._step(self.D, opt_d)

        self.cur_step += 1
        self.cur_nimg += self.batch_size
        self._update_ema()
        if self.cur_step % max(self.trainer.log_every_n_steps, 1) == 0:
            self._log_step(logs)  # Lightning's logging costs ~ a toy step: log sparsely
        if self.cur_nimg >= self.total_kimg * 1000:
            self.trainer.should_stop = True
        # Made on the device: a host tensor would cost a blocking copy in the callback.
        real_count = torch.full((), real.shape[0], device=real.device)
        return {"real_signs": real_signs, "real_count": real_count}

    def _rounds(self, per_rank: int) -> int:
        bg = self.batch_gpu or per_rank
        if per_rank % bg:
            raise ValueError(f"per-device batch {per_rank} is not divisible by batch_gpu={bg}")
        return bg

    def _path_length_phase(self, reals: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        penalties = []
        for x, c in reals:
            n = max(x.shape[0] // self.pl_batch_shrink, 1)
            images, ws = self.run_G(self.sample_z(n), self.random_labels(n, c))
            lengths = path_lengths(images, ws)
            pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
            self.pl_mean.copy_(pl_mean)
            penalty = (lengths - pl_mean).square().mean()
            loss = penalty * self.pl_weight * self.pl_interval
            self.manual_backward(loss / len(reals))
            penalties.append(penalty.detach())
        return torch.stack(penalties).mean()

    def _r1_phase(self, reals: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        penalties = []
        # Gradient penalties in reduced precision overflow or vanish: R1 always runs in fp32.
        with torch.autocast(self.device.type, enabled=False):
            for x, c in reals:
                x = x.detach().float().requires_grad_(True)
                logits, _ = self.run_D(x, c)
                penalty = r1_penalty(x, logits)
                loss = penalty.mean() * (self.r1_gamma / 2) * self.r1_interval
                self.manual_backward(loss / len(reals))
                penalties.append(penalty.detach().mean())
        return torch.stack(penalties).mean()

    @contextlib.contextmanager
    def _training(self, net: nn.Module, opt: Any) -> Iterator[None]:
        """Only ``net`` accumulates gradients inside the block."""
        others = [m for m in (self.G, self.D) if m is not net]
        for m in others:
            m.requires_grad_(False)
        net.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        try:
            yield
        finally:
            for m in others:
                m.requires_grad_(True)

    def _step(self, net: nn.Module, opt: Any) -> None:
        params = [p for p in net.parameters() if p.grad is not None]
        if dist.is_available() and dist.is_initialized() and self.trainer.world_size > 1:
            # One flat all-reduce per phase, as StyleGAN2-ADA does: G and D are never wrapped
            # in DDP together, so no unused-parameter errors and no double reduction.
            flat = torch.cat([p.grad.flatten() for p in params])
            dist.all_reduce(flat)
            flat /= self.trainer.world_size
            for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
                p.grad.copy_(g.view_as(p))
        for p in params:
            # A diverging step must not poison the weights (StyleGAN2-ADA does the same).
            torch.nan_to_num_(p.grad, nan=0, posinf=1e5, neginf=-1e5)
        opt.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
        beta = 0.5 ** (self.batch_size / max(ema_nimg, 1e-8))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    def _log_step(self, logs: dict[str, torch.Tensor]) -> None:
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=self.batch_size)
        # kimg goes to the loggers too: it is the x axis of every W&B chart (dgan.tracking).
        # A CPU tensor, so that logging it costs no copy to the device.
        self.log("kimg", torch.tensor(self.kimg), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=self.batch_size)
        self.log_dict({"lossG": logs["loss/G"], "lossD": logs["loss/D"]},
                      prog_bar=True, logger=False, on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Called on every rank (Lightning's dump_checkpoint), so the gather below is safe.
        checkpoint["dgan"] = {
            "cur_nimg": self.cur_nimg,
            "cur_step": self.cur_step,
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

"""The StyleGAN2 loss of Diffusion-StyleGAN2 (and of the toy MLPs): non-saturating logistic
loss, R1 on the clean reals through the diffusion, path length, style mixing.

Phases, as in the reference (StyleGAN2-ADA's ``StyleGAN2Loss``):

- ``Gmain``: G's samples, diffused, scored by D with their own labels, should fool D;
- ``Greg``: path-length regularisation (does nothing when ``pl_weight`` is 0);
- ``Dmain``: diffused reals against diffused fakes (G does not train);
- ``Dreg``: R1 on the clean reals, taken through the diffusion;
- ``Gboth`` / ``Dboth``: main and reg together, when a reg interval is None.

Every phase that scores reals (Dmain, Dreg, Dboth) reports the signs of their logits to the
adaptive update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from dgan.training.losses.base import GANLoss, real_sign_report
from dgan.training.losses.penalties import path_lengths, r1_penalty

G_MAIN_PHASES = ("Gmain", "Gboth")
G_REG_PHASES = ("Greg", "Gboth")
D_MAIN_PHASES = ("Dmain", "Dboth")
D_REG_PHASES = ("Dreg", "Dboth")


class StyleGAN2Loss(GANLoss):
    """Non-saturating logistic GAN loss with lazy R1 and path-length regularisation.

    Args:
        r1_gamma: weight of R1 (0 disables it).
        pl_weight: weight of path-length regularisation (0 disables it).
        pl_batch_shrink: the path-length batch is the round's batch divided by this.
        pl_decay: decay of the running mean path length.
        style_mixing_prob: probability of mixing two latents' styles (StyleGAN2 2.3).
    """

    def __init__(self, r1_gamma: float = 10.0, pl_weight: float = 0.0, pl_batch_shrink: int = 2,
                 pl_decay: float = 0.01, style_mixing_prob: float = 0.0) -> None:
        super().__init__()
        for key, value in (("r1_gamma", r1_gamma), ("pl_weight", pl_weight),
                           ("style_mixing_prob", style_mixing_prob)):
            if value < 0:
                raise ValueError(f"{key}={value} must be >= 0")
        if pl_batch_shrink < 1:
            raise ValueError(f"pl_batch_shrink={pl_batch_shrink} must be an integer >= 1")
        self.r1_gamma = float(r1_gamma)
        self.pl_weight = float(pl_weight)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        self.style_mixing_prob = float(style_mixing_prob)
        self.register_buffer("pl_mean", torch.zeros(()))

    def regularises(self, network: str) -> bool:
        return (self.pl_weight if network == "G" else self.r1_gamma) > 0

    def check_generator(self, G: torch.nn.Module) -> None:
        """Style mixing and path length need a mapping / synthesis generator (StyleGAN2)."""
        has_style = hasattr(G, "mapping") and hasattr(G, "synthesis")
        if (self.style_mixing_prob > 0 or self.pl_weight > 0) and not has_style:
            raise ValueError(
                "style_mixing_prob and pl_weight need a generator with mapping/synthesis "
                f"(StyleGAN2); {type(G).__name__} has none: set both to 0"
            )

    # ------------------------------------------------------------------ networks

    def run_G(self, z: torch.Tensor, c: torch.Tensor, compiled: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate (with style mixing); returns images and ws (None for a non-style G).

        The first mapping call of every training phase updates the tracked ``w_avg`` (the
        reference's mapping does so on every training call but the mixing latent's).
        """
        nets = self.nets
        G = nets.G

        def fast(net: torch.nn.Module) -> Callable[..., Any]:
            return nets.fast(net) if compiled else net

        if not hasattr(G, "mapping"):
            return fast(G)(z, c), None
        ws = fast(G.mapping)(z, c, update_emas=True)
        if self.style_mixing_prob > 0:
            n, num_ws = ws.shape[:2]
            cutoff = torch.randint(1, num_ws, (), device=ws.device)
            mix = torch.rand((), device=ws.device) < self.style_mixing_prob
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
            ws2 = fast(G.mapping)(torch.randn_like(z), c, update_emas=False)
            layer = torch.arange(num_ws, device=ws.device).view(1, -1, 1)
            ws = torch.where(layer < cutoff, ws, ws2)
        return fast(G.synthesis)(ws), ws

    # ------------------------------------------------------------------ phases

    def accumulate_gradients(self, phase: str, real: torch.Tensor, real_c: torch.Tensor,
                             gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float
                             ) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        backward = self.nets.backward
        if phase in G_MAIN_PHASES:
            fake, _ = self.run_G(gen_z, gen_c)
            fake_logits, _ = self.run_D(fake, gen_c)
            loss = F.softplus(-fake_logits).mean()
            backward(self._plus_fake_terms(loss, "G", fake, gen_z, gen_c, logs) * gain)
            logs["loss/G"] = loss.detach()
        if phase in G_REG_PHASES and self.pl_weight > 0:
            logs["loss/G_pl"] = self._path_length(gen_z, gen_c, gain)
        if phase in D_MAIN_PHASES:
            with torch.no_grad():
                fake, _ = self.run_G(gen_z, gen_c)
            fake_logits, _ = self.run_D(fake, gen_c)
            loss_fake = F.softplus(fake_logits).mean()
            backward(self._plus_fake_terms(loss_fake, "D", fake, gen_z, gen_c, logs) * gain)
            logs["D/fake_logits"] = fake_logits.detach().mean()
        do_r1 = phase in D_REG_PHASES and self.r1_gamma > 0
        if phase in D_MAIN_PHASES or do_r1:
            logs.update(self._real_phase(real, real_c, gain, phase in D_MAIN_PHASES, do_r1))
            if phase in D_MAIN_PHASES:
                logs["loss/D"] = loss_fake.detach() + logs.pop("loss/D_real")
        return logs

    def fake_terms(self, network: str, fake: torch.Tensor, gen_z: torch.Tensor,
                   gen_c: torch.Tensor, logs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Extra loss on this round's fakes, added to the main phase's adversarial loss before
        its backward (None: nothing; subclasses such as InsGen add terms here).

        Args:
            network: G (``fake`` carries G's graph) or D (``fake`` is detached).
            fake: the generated images the phase scored.
            gen_z: their latents.
            gen_c: their labels.
            logs: the phase's log dict, to add the terms' values to.
        """
        return None

    def _plus_fake_terms(self, loss: torch.Tensor, network: str, fake: torch.Tensor,
                         gen_z: torch.Tensor, gen_c: torch.Tensor,
                         logs: dict[str, torch.Tensor]) -> torch.Tensor:
        extra = self.fake_terms(network, fake, gen_z, gen_c, logs)
        return loss if extra is None else loss + extra

    def _path_length(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float
                     ) -> torch.Tensor:
        n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        # Plain networks: the penalty needs a double backward, which compiled graphs lack.
        images, ws = self.run_G(gen_z[:n], gen_c[:n], compiled=False)
        lengths = path_lengths(images, ws)
        pl_mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        # images * 0 keeps every synthesis weight in the graph (a zero gradient, not None).
        loss = (images[:, 0, 0, 0] * 0 + penalty * self.pl_weight).mean()
        self.nets.backward(loss * gain)
        return penalty.detach().mean()

    def _real_phase(self, real: torch.Tensor, real_c: torch.Tensor, gain: float,
                    main: bool, r1: bool) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        # Gradient penalties in reduced precision overflow or vanish: R1 runs in fp32 (no
        # autocast, and D's reduced-precision blocks in fp32 too).
        precision = fp32_only(real.device.type, self.nets.D) if r1 else nullcontext()
        with precision:
            x = real.detach().float().requires_grad_(True) if r1 else real.detach()
            logits, t = self.run_D(x, real_c, compiled=not r1)
            loss = torch.zeros_like(logits.flatten())
            if main:
                loss_real = F.softplus(-logits).flatten()
                loss = loss + loss_real
                logs["loss/D_real"] = loss_real.detach().mean()
                logs["D/real_logits"] = logits.detach().mean()
            if r1:
                penalty = r1_penalty(x, logits)
                loss = loss + penalty * (self.r1_gamma / 2)
                logs["loss/D_r1"] = penalty.detach().mean()
            # logits * 0 keeps every D weight in the graph, as the reference does.
            self.nets.backward((logits.flatten() * 0 + loss).mean() * gain)
        logs.update(real_sign_report(logits, True if t is None else t == 0))
        return logs


@contextmanager
def fp32_only(device_type: str, net: torch.nn.Module) -> Iterator[None]:
    """Run ``net`` in fp32 throughout: autocast off and, for a network with reduced-precision
    blocks (``use_reduced_precision``, StyleGAN2's D), those blocks in fp32 until the end."""
    saved = getattr(net, "use_reduced_precision", None)
    if saved is not None:
        net.use_reduced_precision = False
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        if saved is not None:
            net.use_reduced_precision = saved

"""What every loss object is: given a phase and its inputs, accumulate the phase's gradients.

The training loop (:mod:`dgan.training.module`) knows nothing of a GAN family's objective: for
each due phase it zeroes the phase network's gradients, calls
``loss.accumulate_gradients(phase, real, real_c, gen_z, gen_c, gain)`` once per batch_gpu round
and steps. A new family is a new subclass and a config, nothing else.

The loss reaches the networks through :class:`GANNetworks`, bound by the module once it is set
up; it is not a submodule holder, so G and D appear once in the state dict (under the
module), while the loss's own state (e.g. the running path length) lives in its buffers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Keys of the report of a phase that the adaptive diffusion (and ADA) read: the sum of the
# signs of D's real logits and how many there were.
REAL_SIGNS = "real_signs"
REAL_COUNT = "real_count"
# The same for the reals that reached D clean (t = 0, or every real without a diffusion): the
# overfitting heuristic r_t of every run, diffusion or not (dgan.callbacks.overfitting).
CLEAN_SIGNS = "clean_signs"
CLEAN_COUNT = "clean_count"


@dataclasses.dataclass
class GANNetworks:
    """The networks a loss runs, and how it runs them.

    Args:
        G: the generator being trained.
        D: the discriminator being trained.
        diffusion: the forward diffusion applied before D (None: a plain GAN).
        augment: a differentiable augmentation applied before the diffusion (None: none).
        backward: backpropagates a loss (Lightning's ``manual_backward``, which applies the
            precision plugin's scaling).
        fast: returns the compiled version of a network where there is one, else the network.
    """

    G: nn.Module
    D: nn.Module
    diffusion: nn.Module | None
    augment: nn.Module | None
    backward: Callable[[torch.Tensor], None]
    fast: Callable[[nn.Module], Callable[..., Any]] = lambda net: net


class GANLoss(nn.Module):
    """Base of the loss objects. Subclasses implement :meth:`accumulate_gradients`.

    """

    def __init__(self) -> None:
        super().__init__()
        self._nets: GANNetworks | None = None

    def bind(self, nets: GANNetworks) -> None:
        """Give the loss the networks it runs (called by the module before training)."""
        self._nets = nets

    @property
    def nets(self) -> GANNetworks:
        if self._nets is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to networks: call bind()")
        return self._nets

    def start_run(self, rank: int) -> None:
        """Called by the module when a fresh run starts (not on resume), with this process's
        rank: a loss with random streams or momentum copies of its own sets them up here."""

    def begin_iteration(self) -> None:
        """Called by the module at the start of every training iteration, before its phases
        (e.g. for a momentum update that must happen once per iteration)."""

    def regularises(self, network: str) -> bool:
        """Whether the reg phase of ``network`` (G or D) computes anything (``dgan.bench``
        weights the phases by it)."""
        return True

    def accumulate_gradients(self, phase: str, real: torch.Tensor, real_c: torch.Tensor,
                             gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float
                             ) -> dict[str, torch.Tensor]:
        """Backpropagate what ``phase`` computes for one round of samples.

        Args:
            phase: Gmain | Greg | Gboth | Dmain | Dreg | Dboth.
            real: real samples of this round.
            real_c: their labels [N, c_dim].
            gen_z: latents of the generated samples of this round.
            gen_c: the labels the generated samples are drawn with (D scores them with these).
            gain: multiplier of the phase's loss (the reg interval for lazy phases, divided by
                the number of rounds so that rounds average).

        Returns:
            detached scalars to log, plus ``real_signs`` / ``real_count`` when the phase
            scored reals.
        """
        raise NotImplementedError

    def run_D(self, x: torch.Tensor, c: torch.Tensor, compiled: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment, diffuse and score ``x`` with labels ``c``; returns logits and t."""
        nets = self.nets
        D = nets.fast(nets.D) if compiled else nets.D
        if nets.augment is not None:
            x = nets.augment(x)
        if nets.diffusion is None:
            return D(x, c, None), None
        y, t = nets.diffusion(x)
        return D(y, c, t), t


def real_sign_report(real_logits: torch.Tensor, clean: torch.Tensor | bool = False
                     ) -> dict[str, torch.Tensor]:
    """The adaptive update's share of a phase that scored reals, and the clean reals' share.

    Args:
        real_logits: D's logits of the reals, one per sample.
        clean: which of them D saw undiffused: a boolean per sample (t == 0), or one bool for
            all of them (True without a diffusion; False when the loss cannot tell).
    """
    logits = real_logits.detach().flatten()
    signs = logits.sign()
    if isinstance(clean, bool):
        mask = torch.full_like(signs, float(clean))
    else:
        mask = clean.detach().flatten().to(signs)
    return {REAL_SIGNS: signs.sum(),
            REAL_COUNT: torch.full((), logits.numel(), device=logits.device),
            CLEAN_SIGNS: (signs * mask).sum(), CLEAN_COUNT: mask.sum()}

"""Phases as data: which network trains, on which optimizer, how often (StyleGAN2-ADA).

With lazy regularisation each network has a main phase (every iteration) and a reg phase
(every ``reg_interval`` iterations), **each its own optimizer step**. Over k iterations the
optimizer then takes k + 1 steps, so its lr is multiplied by c = k / (k + 1) and its betas
raised to c, which keeps the effective optimizer the one the config names (StyleGAN2, C.1).
A reg interval of None fuses the two into one unscaled "both" phase.

The table is plain data, so the training loop, the bench and the tests read the same one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]

# The networks that train, in the order their phases run in one iteration (G first, as the
# reference: D then sees the G that this iteration produced).
NETWORKS = ("G", "D")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimizer step of one network, due when ``step % interval == 0``.

    Args:
        name: Gmain | Greg | Gboth | Dmain | Dreg | Dboth (what the loss computes).
        network: the attribute of the module that trains (``G`` or ``D``).
        optimizer: index of the network's optimizer in ``configure_optimizers``.
        interval: iterations between two runs of the phase.
    """

    name: str
    network: str
    optimizer: int
    interval: int

    def due(self, step: int) -> bool:
        return step % self.interval == 0


def lazy_ratio(reg_interval: int | None) -> float:
    """c = k / (k + 1) for a reg interval k; 1 when the phases are fused."""
    return 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)


def build_phases(reg_intervals: Sequence[int | None]) -> list[Phase]:
    """The phase table for G and D with reg intervals ``reg_intervals`` (G's, D's)."""
    phases = []
    for index, (network, interval) in enumerate(zip(NETWORKS, reg_intervals, strict=True)):
        if interval is None:
            phases.append(Phase(f"{network}both", network, index, 1))
            continue
        if interval < 1:
            raise ValueError(f"the {network} reg interval {interval} must be >= 1 or null")
        phases += [Phase(f"{network}main", network, index, 1),
                   Phase(f"{network}reg", network, index, int(interval))]
    return phases


def scaled_optimizer(factory: OptimizerFactory, reg_interval: int | None) -> OptimizerFactory:
    """``factory`` with lr * c and betas ** c for lazy regularisation (no change when fused).

    Args:
        factory: a partial optimizer (Hydra ``_partial_: true``) taking the parameters.
        reg_interval: the network's reg interval (None: fused phases, no scaling).
    """
    ratio = lazy_ratio(reg_interval)
    keywords = dict(getattr(factory, "keywords", {}) or {})
    if ratio == 1.0:
        return factory
    if "lr" not in keywords:
        raise ValueError(
            "lazy regularisation scales the optimizer's lr: give the optimizer config an lr "
            f"(got {keywords or 'no keywords'})"
        )
    scaled: dict[str, Any] = {"lr": keywords["lr"] * ratio}
    if "betas" in keywords:
        scaled["betas"] = tuple(float(b) ** ratio for b in keywords["betas"])
    return functools.partial(factory, **scaled)


def optimizer_steps(phases: Sequence[Phase], iterations: int,
                    regularises: Callable[[str], bool]) -> dict[str, int]:
    """Optimizer steps per network over ``iterations`` (a reg phase that computes nothing
    leaves no gradient, so takes no step).

    Args:
        phases: the phase table.
        iterations: training iterations from step 0.
        regularises: whether a network's reg phase computes anything (the loss's method).
    """
    steps = dict.fromkeys(NETWORKS, 0)
    for phase in phases:
        if phase.name.endswith("reg") and not regularises(phase.network):
            continue
        steps[phase.network] += sum(phase.due(i) for i in range(iterations))
    return steps

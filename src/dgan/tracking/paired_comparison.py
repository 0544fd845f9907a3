"""Two arms compared seed by seed: the rule every comparison in docs/results.md was registered
with, as code.

Two arms differ when the mean over their shared seeds of the per-seed difference exceeds
``separation_sd`` pooled standard deviations, sqrt((sd_a^2 + sd_b^2) / 2). Pairing by seed
removes what a seed does to both arms (its data order, its initialisation); the pooled spread
keeps a difference that one lucky seed makes from reading as an effect.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from typing import Any

SEPARATION_SD = 2.0  # the docs' pre-registered bound, in pooled standard deviations
MIN_SEEDS = 2  # a standard deviation needs two values per arm


@dataclasses.dataclass(frozen=True)
class Paired:
    """One metric of an arm against its base, over the seeds both ran.

    Args:
        seeds: the shared seeds.
        arm_mean: the arm's mean over those seeds.
        base_mean: the base's mean over those seeds.
        difference: mean over the seeds of arm - base (nan with fewer than two seeds).
        pooled_sd: sqrt((sd_arm^2 + sd_base^2) / 2) (nan with fewer than two seeds).
        bound: ``separation_sd`` * ``pooled_sd``.
    """

    seeds: int
    arm_mean: float
    base_mean: float
    difference: float
    pooled_sd: float
    bound: float

    @property
    def separated(self) -> bool:
        """The arms differ by the rule (False when it cannot be applied)."""
        return math.isfinite(self.difference) and abs(self.difference) > self.bound


def pooled_sd(a: list[float], b: list[float]) -> float:
    """sqrt((sd_a^2 + sd_b^2) / 2) of two arms' values (sample standard deviations)."""
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def paired(arm: Mapping[Any, float], base: Mapping[Any, float],
           separation_sd: float = SEPARATION_SD) -> Paired:
    """``arm`` against ``base``, each seed -> final value, paired on the seeds both have.

    Args:
        arm: seed -> value of the arm compared.
        base: seed -> value of the arm it is compared with.
        separation_sd: the bound in pooled standard deviations.
    """
    seeds = sorted(set(arm) & set(base), key=str)
    a = [float(arm[s]) for s in seeds]
    b = [float(base[s]) for s in seeds]
    means = (statistics.fmean(a) if a else math.nan, statistics.fmean(b) if b else math.nan)
    if len(seeds) < MIN_SEEDS:
        return Paired(len(seeds), *means, math.nan, math.nan, math.nan)
    difference = statistics.fmean(x - y for x, y in zip(a, b, strict=True))
    spread = pooled_sd(a, b)
    return Paired(len(seeds), *means, difference, spread, separation_sd * spread)

"""Did a run's D overfit, was its chain on, and did the diffusion beat the plain GAN?

The pre-registered criteria of docs/results.md ("Limited data until D overfits"), as code so
that ``sweep_report --overfit`` applies them to any multirun, not only to the one in the docs.
A run is read from its metrics.jsonl records (the FID curve) and its
``diagnostics/dynamics.csv`` rows (``gap``, ``p``: the overfitting callback's table).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

PLAIN = "none"  # the diffusion config group's value of a run without the chain


@dataclasses.dataclass(frozen=True)
class Criteria:
    """The thresholds (the defaults are the docs' pre-registered values).

    Args:
        rise_points: the final value must be at least this much worse than the best ...
        rise_share: ... and worse by at least this share of the best.
        window_kimg: the gap's early and late means are taken over this many kimg.
        chain_p: the chain is on when p stays at or above this over the second half.
        separation_sd: arms separate when their paired mean difference exceeds this many
            pooled standard deviations.
        min_runs: runs (of 4 seeds: 3) that must meet a per-run criterion.
    """

    rise_points: float = 3.0
    rise_share: float = 0.2
    window_kimg: float = 30.0
    chain_p: float = 0.5
    separation_sd: float = 2.0
    min_runs: int = 3


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def run_overfitting(records: Sequence[dict[str, Any]], dynamics: Sequence[dict[str, Any]],
                    metric: str, criteria: Criteria = Criteria()) -> dict[str, Any]:
    """One run's FID rise, gap growth and chain state (lower-is-better ``metric``).

    Args:
        records: metrics.jsonl rows, oldest first.
        dynamics: diagnostics/dynamics.csv rows (``kimg``, ``gap``, ``p``), oldest first.
        metric: the FID key of the records.
        criteria: the thresholds.
    """
    curve = [(float(r["kimg"]), float(r[metric])) for r in records
             if metric in r and math.isfinite(float(r[metric]))]
    row: dict[str, Any] = {"best": math.nan, "best_kimg": math.nan, "final": math.nan,
                           "final_kimg": math.nan, "rise": math.nan, "fid_rises": False}
    if curve:
        best_kimg, best = min(curve, key=lambda kv: kv[1])
        final_kimg, final = curve[-1]
        rise = final - best
        row.update(best=best, best_kimg=best_kimg, final=final, final_kimg=final_kimg,
                   rise=rise, fid_rises=rise >= criteria.rise_points
                   and rise >= criteria.rise_share * best)
    points = [(float(d["kimg"]), float(d["gap"]), float(d["p"])) for d in dynamics]
    end = points[-1][0] if points else math.nan
    row["gap_first"] = _mean([g for k, g, _ in points if k <= criteria.window_kimg])
    row["gap_last"] = _mean([g for k, g, _ in points if k >= end - criteria.window_kimg])
    row["gap_grows"] = bool(row["gap_last"] > row["gap_first"])
    row["overfits"] = bool(row["fid_rises"] and row["gap_grows"])
    second_half = [p for k, _, p in points if k >= end / 2]
    row["p_min_second_half"] = (min(second_half) if second_half
                                and all(math.isfinite(p) for p in second_half) else math.nan)
    row["chain_on"] = bool(row["p_min_second_half"] >= criteria.chain_p)
    return row


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """sqrt((sd_a^2 + sd_b^2) / 2) of two arms' values (sample standard deviations)."""
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def verdict(plain: dict[Any, dict[str, Any]], diffusion: dict[Any, dict[str, Any]],
            criteria: Criteria = Criteria()) -> dict[str, Any]:
    """Confirmed / refuted / inconclusive for a diffusion arm against its plain arm.

    Args:
        plain: seed -> :func:`run_overfitting` row of the plain arm.
        diffusion: seed -> row of the diffusion arm (paired with ``plain`` by seed).
        criteria: the thresholds.
    """
    seeds = sorted(set(plain) & set(diffusion), key=str)
    a = [plain[s]["final"] for s in seeds]
    b = [diffusion[s]["final"] for s in seeds]
    result: dict[str, Any] = {
        "seeds": len(seeds),
        "plain_overfits": sum(plain[s]["overfits"] for s in plain),
        "plain_runs": len(plain),
        "chain_on": sum(diffusion[s]["chain_on"] for s in diffusion),
        "diffusion_runs": len(diffusion),
        "plain_mean": _mean(a), "diffusion_mean": _mean(b),
        "paired_difference": math.nan, "pooled_sd": math.nan,
    }
    if len(seeds) < 2:
        result["verdict"] = "inconclusive"
        result["why"] = f"{len(seeds)} seed(s) in both arms; at least 2 are needed"
        return result
    difference = statistics.fmean(x - y for x, y in zip(a, b, strict=True))
    spread = pooled_sd(a, b)
    result.update(paired_difference=difference, pooled_sd=spread)
    bound = criteria.separation_sd * spread
    chain_on = result["chain_on"] >= criteria.min_runs
    if chain_on and difference > bound:
        result["verdict"], result["why"] = "confirmed", "chain on, diffusion lower by > bound"
    elif chain_on and abs(difference) <= bound:
        result["verdict"], result["why"] = "refuted", "chain on, arms within the bound"
    elif not chain_on:
        result["verdict"] = "inconclusive"
        result["why"] = (f"chain on in {result['chain_on']} of {len(diffusion)} runs "
                         f"(needs {criteria.min_runs})")
    else:
        result["verdict"], result["why"] = "inconclusive", "diffusion worse by > bound"
    return result

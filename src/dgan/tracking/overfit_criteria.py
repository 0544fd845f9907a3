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

from dgan.tracking.paired_comparison import MIN_SEEDS, SEPARATION_SD, paired

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
    separation_sd: float = SEPARATION_SD
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


def verdict(plain: dict[Any, dict[str, Any]], diffusion: dict[Any, dict[str, Any]],
            criteria: Criteria = Criteria()) -> dict[str, Any]:
    """Confirmed / refuted / inconclusive for a diffusion arm against its plain arm.

    Args:
        plain: seed -> :func:`run_overfitting` row of the plain arm.
        diffusion: seed -> row of the diffusion arm (paired with ``plain`` by seed).
        criteria: the thresholds.
    """
    # plain - diffusion: positive where the diffusion ends lower.
    pair = paired({s: run["final"] for s, run in plain.items()},
                  {s: run["final"] for s, run in diffusion.items()}, criteria.separation_sd)
    result: dict[str, Any] = {
        "seeds": pair.seeds,
        "plain_overfits": sum(plain[s]["overfits"] for s in plain),
        "plain_runs": len(plain),
        "chain_on": sum(diffusion[s]["chain_on"] for s in diffusion),
        "diffusion_runs": len(diffusion),
        "plain_mean": pair.arm_mean, "diffusion_mean": pair.base_mean,
        "paired_difference": pair.difference, "pooled_sd": pair.pooled_sd,
    }
    if pair.seeds < MIN_SEEDS:
        result["verdict"] = "inconclusive"
        result["why"] = f"{pair.seeds} seed(s) in both arms; at least {MIN_SEEDS} are needed"
        return result
    difference, bound = pair.difference, pair.bound
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

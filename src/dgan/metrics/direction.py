"""Whether a metric improves upwards or downwards, guessed from its name when not given.

Shared by the metrics callback (best value), the Optuna sweep (direction) and the sweep report
(best value of each job), so that they always agree.
"""

from __future__ import annotations

# Distances and divergences: FID, KID, KL (mode_kl), perceptual path length (ppl_*), and the
# share of samples off the data's border (border_fraction). Everything else (precision, recall,
# IS, modes covered, hq fraction, class accuracy cacc_*) is better higher.
LOWER_IS_BETTER_WORDS = ("fid", "kid", "kl", "border", "ppl")


def higher_is_better(name: str, override: bool | None = None) -> bool:
    """Whether larger values of metric ``name`` are better.

    Args:
        name: metric or result name (``fid50k_full``, ``modes_covered``, ``mode_kl`` ...).
        override: the answer when it is known (``metrics.higher_is_better``); None: guess.
    """
    if override is not None:
        return bool(override)
    return not any(word in name.lower() for word in LOWER_IS_BETTER_WORDS)


def optimisation_direction(metrics: list[str] | None, override: bool | None = None) -> str:
    """Optuna's direction for the headline (first) metric: ``maximize`` or ``minimize``.

    Args:
        metrics: the run's metric names (``metrics.metrics``); the first is the headline.
        override: ``metrics.higher_is_better`` (None: guessed from the name).
    """
    if not metrics:
        return "minimize"  # no metric: the run refuses an Optuna sweep before training
    return "maximize" if higher_is_better(str(metrics[0]), override) else "minimize"

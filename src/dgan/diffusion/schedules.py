"""Beta schedules of the forward diffusion, the seven of the reference implementation.

Every schedule is written as a closed form of the step index k = 1..T, evaluated on a fixed grid
of ``n`` slots with T held in a tensor. That lets the diffusion rebuild its schedule on the
device whenever the adaptive update changes T, without a host round trip; slots beyond T get
beta = 0 (they leave abar unchanged and are never sampled).
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "quad", "const", "jsd", "sigmoid", "cosine", "continuous_t")

COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal (2021): keeps beta_1 away from 0
COSINE_MAX_BETA = 0.999  # clip that prevents a singular last step
SIGMOID_RANGE = 6.0  # the sigmoid schedule spans sigmoid(-6) .. sigmoid(6)
CONTINUOUS_B_MIN = 0.1  # VP-SDE beta(t) range used by the reference's continuous_t schedule
CONTINUOUS_B_MAX = 5.0


def betas_on_grid(
    name: str,
    T: torch.Tensor,
    n: int,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
) -> torch.Tensor:
    """Betas for k = 1..n of a T-step schedule; zero for k > T. float64 on ``T``'s device.

    Args:
        name: one of :data:`SCHEDULES`.
        T: number of diffusion steps (0-d integer tensor, 1 <= T <= n).
        n: length of the grid (the largest T the caller will ever use).
        beta_start: first beta of linear, quad and sigmoid schedules.
        beta_end: last beta of linear, quad and sigmoid schedules, and the const value.
    """
    if name not in SCHEDULES:
        raise ValueError(f"beta_schedule={name!r} is not valid; choose one of {SCHEDULES}")
    k = torch.arange(1, n + 1, device=T.device, dtype=torch.float64)
    Tf = T.to(torch.float64)
    # Position of step k in [0, 1], as numpy.linspace(a, b, T) spaces its points.
    u = (k - 1) / (Tf - 1).clamp(min=1)
    if name == "linear":
        betas = beta_start + (beta_end - beta_start) * u
    elif name == "quad":
        betas = (math.sqrt(beta_start) + (math.sqrt(beta_end) - math.sqrt(beta_start)) * u) ** 2
    elif name == "const":
        betas = torch.full_like(k, beta_end)
    elif name == "jsd":
        # 1/T, 1/(T-1), ..., 1: each step keeps a 1/(T-k+1) share of the remaining signal out.
        betas = 1.0 / (Tf - k + 1).clamp(min=1)
    elif name == "sigmoid":
        betas = torch.sigmoid(-SIGMOID_RANGE + 2 * SIGMOID_RANGE * u) * (
            beta_end - beta_start
        ) + beta_start
    elif name == "cosine":

        def f(s: torch.Tensor) -> torch.Tensor:
            return torch.cos((s + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

        betas = (1 - f(k / Tf) / f((k - 1) / Tf)).clamp(max=COSINE_MAX_BETA)
    else:  # continuous_t: exact discretisation of the VP-SDE with linear beta(t)
        b_min, b_max = CONTINUOUS_B_MIN, CONTINUOUS_B_MAX
        betas = 1 - torch.exp(-b_min / Tf - 0.5 * (b_max - b_min) * (2 * k - 1) / Tf**2)
    return torch.where(k <= Tf, betas, torch.zeros_like(betas))


def beta_schedule(
    name: str, T: int, beta_start: float = 1e-4, beta_end: float = 2e-2
) -> torch.Tensor:
    """The T betas of schedule ``name`` (float64, CPU)."""
    if T < 1:
        raise ValueError(f"T={T} must be at least 1")
    return betas_on_grid(name, torch.tensor(T), T, beta_start, beta_end)


def alphas_bar(betas: torch.Tensor) -> torch.Tensor:
    """Cumulative signal fractions abar_0..abar_n; index 0 is the clean sample (abar_0 = 1)."""
    ones = torch.ones(1, dtype=betas.dtype, device=betas.device)
    return torch.cat([ones, torch.cumprod(1 - betas, dim=0)])

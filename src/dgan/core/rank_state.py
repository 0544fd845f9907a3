"""What each rank of a run holds on its own: its random streams and the buffers that differ.

Lightning writes rank 0's state only. Parameters and optimiser states are identical everywhere
(gradients are averaged), but each rank draws its own latents and its own t and noise, keeps its
own t pool, path-length mean and StyleGAN2 ``w_avg``. A checkpoint that is to continue exactly
holds these per rank; every value is a tensor, number or container of them, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# numpy's legacy generator: the only bit generator np.random.get_state() reports.
NUMPY_BIT_GENERATOR = "MT19937"
# Seeds of torch and Python are taken modulo these (numpy's legacy seed is 32 bits).
TORCH_SEED_MODULUS = 2**63
NUMPY_SEED_MODULUS = 2**32


def seed_rank(seed: int, rank: int, world_size: int) -> None:
    """Seed Python, NumPy and torch with rank ``rank``'s own stream of run seed ``seed``.

    Args:
        seed: the run's seed.
        rank: global rank of this process.
        world_size: number of processes (so that the streams of two seeds never collide).
    """
    rank_seed = (seed * world_size + rank) % TORCH_SEED_MODULUS
    random.seed(rank_seed)
    np.random.seed(rank_seed % NUMPY_SEED_MODULUS)
    torch.manual_seed(rank_seed)


def capture_rng_state() -> dict[str, Any]:
    """The global random states of this process: torch (CPU and current CUDA device), NumPy,
    Python."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state((NUMPY_BIT_GENERATOR, np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(int(v) for v in py_state["internal"]),
                     py_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def rank_and_world() -> tuple[int, int]:
    """(global rank, world size) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere). A collective."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def same_value(a: Any, b: Any) -> bool:
    """Exact equality of tensors, numbers and nested dicts/lists/tuples of them."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def to_cpu(obj: Any) -> Any:
    """A copy of ``obj`` with every tensor on the CPU (for gathering and saving)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj

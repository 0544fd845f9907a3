"""Map Diffusion-InsGen's contrastive heads, D_ema and queues from a network pickle onto dgan's.

The reference (``diffusion-insgen/`` of Diffusion-GAN, built on genforce/insgen) keeps the
heads outside D. Its snapshots hold, beside ``G``, ``D``, ``G_ema`` and ``augment_pipe``:

* ``D_ema``: the momentum copy of D (0.999) that encodes the key view;
* ``DHead`` (real instance discrimination) and ``GHead`` (fake), ``CLHead`` objects with
  ``mlp`` (Linear, ReLU, Linear: features -> features -> 128), ``momentum_mlp`` (its momentum
  copy, the key head), ``queue`` (negatives, one key per *column*: [128, K]) and ``queue_ptr``.

dgan keeps both heads in D (:class:`dgan.networks.insgen.InstanceDiscriminator`) and D_ema,
with its momentum heads, and the queues in the loss (:class:`dgan.training.losses.InsGenLoss`).
So ``DHead.mlp`` / ``GHead.mlp`` become ``D.heads.real`` / ``D.heads.fake``, ``D_ema`` plus the
``momentum_mlp`` of each head becomes ``loss.D_ema``, and each queue (transposed to one key per
row) and pointer ``loss.queues.<real|fake>``: the state dict names of a dgan InsGen run, so
``train init=`` takes them as it takes a dgan checkpoint's.

Snapshots written before the reference saved ``D_ema`` and the heads (its training loop added
them in October 2022) hold G, D and G_ema only: they read as a Diffusion-StyleGAN2 pickle, and
the heads, D_ema and the queues of a run started from them begin afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dgan.interop.persistence import NetworkPickle, PersistentObject, state_dict
from dgan.interop.stylegan2_ada import (
    DISCRIMINATOR_NAME_TABLE,
    MappingError,
    discriminator_kwargs_from_pickle,
    load_tensors,
)
from dgan.networks.insgen import FAKE_HEAD, REAL_HEAD, InstanceDiscriminator

__all__ = [
    "D_EMA_KEY",
    "HEAD_KEYS",
    "INSTANCE_DISCRIMINATOR_NAME_TABLE",
    "has_contrastive_heads",
    "instance_discriminator_from_pickle",
    "loss_state_from_pickle",
]

# Pickle key of each head -> dgan's head name.
HEAD_KEYS = {"DHead": REAL_HEAD, "GHead": FAKE_HEAD}
D_EMA_KEY = "D_ema"
# The CLHead attributes: the trained MLP, its momentum copy, the queue and its pointer.
TRAINED_MLP = "mlp"
MOMENTUM_MLP = "momentum_mlp"
QUEUE = "queue"
QUEUE_PTR = "queue_ptr"
# D's names plus the heads' MLP layers, read as ``<pickle key>.<layer>.<weight|bias>`` (the
# trained or the momentum MLP, whichever network is being filled).
INSTANCE_DISCRIMINATOR_NAME_TABLE: tuple[tuple[str, str], ...] = (
    *((rf"{key}\.(\d+)\.(weight|bias)", rf"heads.{head}.mlp.\1.\2")
      for key, head in HEAD_KEYS.items()),
    *DISCRIMINATOR_NAME_TABLE,
)
# Where InsGenLoss keeps D_ema and the queues in the module's state dict.
LOSS_D_EMA_PREFIX = "loss.D_ema."
LOSS_QUEUE_PREFIX = "loss.queues."


def has_contrastive_heads(net_pkl: NetworkPickle) -> bool:
    """Whether the pickle holds InsGen's contrastive heads (``DHead`` / ``GHead``).

    Raises:
        MappingError: one head without the other (the reference writes both or neither).
    """
    present = [key for key in HEAD_KEYS if key in net_pkl.networks]
    if present and len(present) != len(HEAD_KEYS):
        missing = ", ".join(key for key in HEAD_KEYS if key not in present)
        raise MappingError(f"the pickle has InsGen's {present[0]} but not {missing}")
    return bool(present)


def _head_mlp(net_pkl: NetworkPickle, key: str, mlp: str) -> dict[str, torch.Tensor]:
    """``<key>.<layer>.<weight|bias>`` -> tensor of one head's trained or momentum MLP."""
    head = net_pkl.networks[key]
    tensors = state_dict(head)
    prefix = f"{mlp}."
    found = {f"{key}.{name[len(prefix):]}": t for name, t in tensors.items()
             if name.startswith(prefix)}
    if not found:
        raise MappingError(f"{key} ({head.class_name}) has no {mlp} tensors")
    return found


def _head_dim(net_pkl: NetworkPickle) -> int:
    # The last layer of the real head's MLP: [head_dim, features].
    widths = {key: [t.shape[0] for name, t in _head_mlp(net_pkl, key, TRAINED_MLP).items()
                    if name.endswith(".weight")] for key in HEAD_KEYS}
    last = {key: w[-1] for key, w in widths.items() if w}
    if len(last) != len(HEAD_KEYS) or len(set(last.values())) != 1:
        raise MappingError(f"contrastive heads of different or unknown widths: {last}")
    return int(next(iter(last.values())))


def _filled(d: PersistentObject, heads: Mapping[str, torch.Tensor], head_dim: int
            ) -> InstanceDiscriminator:
    """An InstanceDiscriminator with the weights of the pickled ``d`` and of ``heads``."""
    net = InstanceDiscriminator(head_dim=head_dim, **discriminator_kwargs_from_pickle(d))
    load_tensors(net, {**state_dict(d), **heads}, INSTANCE_DISCRIMINATOR_NAME_TABLE)
    return net.eval()


def _heads(net_pkl: NetworkPickle, mlp: str) -> dict[str, torch.Tensor]:
    return {name: t for key in HEAD_KEYS for name, t in _head_mlp(net_pkl, key, mlp).items()}


def instance_discriminator_from_pickle(net_pkl: NetworkPickle) -> InstanceDiscriminator:
    """dgan's InsGen D: the pickle's ``D`` with ``DHead.mlp`` and ``GHead.mlp`` as its heads.

    Args:
        net_pkl: a pickle with ``D``, ``DHead`` and ``GHead``.

    Raises:
        MappingError: D's options, or any tensor's name or shape, do not map.
    """
    return _filled(net_pkl.networks["D"], _heads(net_pkl, TRAINED_MLP), _head_dim(net_pkl))


def _queue(net_pkl: NetworkPickle, key: str, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys [K, head_dim], pointer) of one head's queue, checked."""
    buffers = state_dict(net_pkl.networks[key], parameters=False)
    queue, ptr = buffers.get(QUEUE), buffers.get(QUEUE_PTR)
    if not isinstance(queue, torch.Tensor) or queue.dim() != 2 or queue.shape[0] != head_dim:
        shape = None if not isinstance(queue, torch.Tensor) else list(queue.shape)
        raise MappingError(f"{key}.{QUEUE}: expected [{head_dim}, K], found {shape}")
    if not isinstance(ptr, torch.Tensor) or ptr.numel() != 1:
        raise MappingError(f"{key}.{QUEUE_PTR}: expected one integer")
    size, at = queue.shape[1], int(ptr.reshape(()).item())
    if not 0 <= at < size:
        raise MappingError(f"{key}.{QUEUE_PTR}={at} is outside its queue of {size} keys")
    return queue.t().contiguous().float(), torch.tensor(at, dtype=torch.long)


def loss_state_from_pickle(net_pkl: NetworkPickle) -> dict[str, Any]:
    """InsGenLoss state of the pickle: ``loss.D_ema.*`` and ``loss.queues.<head>.keys|ptr``.

    ``D_ema`` with each head's ``momentum_mlp`` as its heads (left out when the pickle has no
    ``D_ema``: a run started from it then copies D, as for any fresh run), and the queues.

    Args:
        net_pkl: a pickle with ``DHead`` and ``GHead``.

    Raises:
        MappingError: a tensor's name or shape, or a queue, does not map.
    """
    head_dim = _head_dim(net_pkl)
    out: dict[str, Any] = {}
    if D_EMA_KEY in net_pkl.networks:
        d_ema = _filled(net_pkl.networks[D_EMA_KEY], _heads(net_pkl, MOMENTUM_MLP), head_dim)
        out.update({LOSS_D_EMA_PREFIX + k: v.detach().clone()
                    for k, v in d_ema.state_dict().items()})
    for key, head in HEAD_KEYS.items():
        keys, ptr = _queue(net_pkl, key, head_dim)
        out[f"{LOSS_QUEUE_PREFIX}{head}.keys"] = keys
        out[f"{LOSS_QUEUE_PREFIX}{head}.ptr"] = ptr
    return out

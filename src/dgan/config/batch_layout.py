"""How the global batch splits over nodes, devices and accumulation rounds.

``model.batch_size`` is the global batch of one step, all processes together (as in the
StyleGAN2 presets), so a run keeps its hyper-parameters when it moves to more GPUs:

    batch_size = per-device batch x devices x nodes
    per-device batch = batch_gpu x accumulation rounds
"""

from __future__ import annotations

from typing import Any


def batch_layout(batch_size: int, batch_gpu: int | None, devices: int, num_nodes: int
                 ) -> dict[str, Any]:
    """The split of ``batch_size``; raises ValueError naming the key when it does not divide.

    Args:
        batch_size: global batch of one step (``model.batch_size``).
        batch_gpu: samples per forward pass on one device (None: the whole per-device batch).
        devices: processes per node (``trainer.devices``, resolved).
        num_nodes: number of nodes (``trainer.num_nodes``).
    """
    world = devices * num_nodes
    if batch_size % world:
        raise ValueError(
            f"model.batch_size={batch_size} is not divisible by trainer.devices x "
            f"trainer.num_nodes = {devices} x {num_nodes} = {world} processes; use a multiple of "
            f"{world} (the batch is global: each device gets batch_size / {world})"
        )
    per_device = batch_size // world
    chunk = batch_gpu or per_device
    if chunk < 1 or per_device % chunk:
        raise ValueError(
            f"model.batch_gpu={batch_gpu} does not divide the per-device batch {per_device} "
            f"(model.batch_size={batch_size} over {world} processes); use a divisor of "
            f"{per_device} or null"
        )
    return {
        "global": batch_size,
        "per_device": per_device,
        "batch_gpu": chunk,
        "accumulation": per_device // chunk,
        "devices": devices,
        "num_nodes": num_nodes,
    }

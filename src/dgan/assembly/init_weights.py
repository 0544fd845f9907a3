"""Starting a fresh run from another run's weights (``init=``): G, G_ema and D only."""

from __future__ import annotations

import lightning as L

from dgan.core.errors import ConfigError
from dgan.core.state_fit import state_mismatches

# The networks ``init=`` copies (optimizers, counters and the diffusion's state start afresh).
INIT_NETWORKS = ("G", "G_ema", "D")


# The module attribute of the loss, whose own state (``loss.*``) ``init=`` offers it.
LOSS_ATTRIBUTE = "loss"


def init_from_pretrained(path: str, module: L.LightningModule) -> list[str]:
    """Copy G, G_ema and D of a checkpoint or network pickle into a new run's module.

    Transfer learning as StyleGAN2-ADA's ``--resume`` from a pickle: the weights only, EMA
    ramp-up off; ``resume=`` is what continues a run. A source without D (a generator-only
    pickle) leaves D as built, and so does it leave the parts of D a network declares optional
    (``optional_state_prefixes``: InsGen's heads) when the source has none of them. A loss with
    state of its own (``init_from``: InsGen's D_ema and queues) takes what of it the source has.
    Returns what was copied.

    Args:
        path: a ``.ckpt`` written by dgan.train or dgan.convert, or a ``.pkl`` network pickle.
        module: the module of the run.
    """
    from dgan.inference.loading import read_any_checkpoint

    saved = read_any_checkpoint(path, "init")["state_dict"]
    own = module.state_dict()
    copied, shown = [], []
    for net in INIT_NETWORKS:
        prefix = f"{net}."
        part = {k: v for k, v in saved.items() if k.startswith(prefix)}
        if not part:
            continue
        own_part = {k: v for k, v in own.items() if k.startswith(prefix)}
        optional = tuple(prefix + p for p in
                         getattr(getattr(module, net, None), "optional_state_prefixes", ()))
        label = net
        if optional and not any(k.startswith(optional) for k in part):
            own_part = {k: v for k, v in own_part.items() if not k.startswith(optional)}
            kept = ", ".join(p[len(prefix):].rstrip(".") for p in optional)
            label = f"{net} ({kept} as built)"
        problem = state_mismatches(part, own_part)
        if problem is not None:
            raise ConfigError(f"init={path}: {net} does not fit this model ({problem}); "
                              "choose the model config the weights were trained with")
        copied.append(net)
        shown.append(label)
        module.load_state_dict(part, strict=False)
    if "G" not in copied and "G_ema" not in copied:
        raise ConfigError(f"init={path}: holds no generator weights (G.* or G_ema.*)")
    take = getattr(getattr(module, LOSS_ATTRIBUTE, None), "init_from", None)
    if take is not None:
        prefix = f"{LOSS_ATTRIBUTE}."
        try:
            taken = take({k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)},
                         path)
        except ValueError as err:
            raise ConfigError(f"init={path}: {err}") from err
        copied += taken
        shown += taken
    module.ema_rampup = None
    print(f"[dgan] init: {', '.join(shown)} from {path}", flush=True)
    return copied

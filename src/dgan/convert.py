"""Convert a StyleGAN2-ADA / Diffusion-GAN network pickle into a dgan checkpoint, and back.

    python -m dgan.convert SRC.pkl DEST.ckpt
    python -m dgan.convert --to-pkl CKPT DEST.pkl

SRC may also be the name of one of the authors' published networks (diffusion-stylegan2-cifar10,
diffusion-projectedgan-lsun-bedroom, diffusion-insgen-afhqcat ...), fetched once through the
Hugging Face hub into its cache (HF_HUB_OFFLINE=1 reads the cache only).

The pickle's embedded source code is never run: only its tensors and plain data are read, and
anything else (another callable, an unknown class) is refused with one line naming it. The
checkpoint works with ``dgan.generate ckpt=``, ``dgan.evaluate ckpt=`` and
``dgan.train init=`` (which also take ``pkl=`` / ``init=SRC.pkl`` directly).

--to-pkl writes G, D and G_ema of a dgan StyleGAN2 checkpoint as a StyleGAN2-ADA /
Diffusion-GAN network pickle (torch_utils.persistence records of training.networks, the
reference's tensor names, training_set_kwargs, progress), for the tools that read that format
and for pkl= of dgan's own commands. Only StyleGAN2 generators can be exported (not MLP or
FastGAN); a D without a reference counterpart (Projected GAN, InsGen) is left out with a note.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dgan.core.errors import ConfigError

USAGE = "usage: python -m dgan.convert SRC.pkl DEST.ckpt | --to-pkl CKPT DEST.pkl"
TO_PKL = "--to-pkl"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    from dgan.config.cli_args import run_command

    args = [a for a in (sys.argv[1:] if argv is None else argv)]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0

    def action() -> None:
        if args and args[0] == TO_PKL:
            export(args[1:])
            return
        if len(args) != 2:
            raise ConfigError(f"expected a source pickle and a destination; {USAGE}")
        from dgan.inference.loading import read_pickle_checkpoint
        from dgan.interop.convert import describe, save_checkpoint

        checkpoint = read_pickle_checkpoint(args[0], "SRC")
        path = save_checkpoint(checkpoint, args[1])
        print(f"[dgan] {describe(checkpoint)}", flush=True)
        print(f"[dgan] wrote {path}", flush=True)

    return run_command(action)


def export(args: Sequence[str]) -> None:
    """``--to-pkl CKPT DEST.pkl``: a dgan StyleGAN2 checkpoint as a network pickle."""
    if len(args) != 2:
        raise ConfigError(f"{TO_PKL} expects a checkpoint and a destination .pkl; {USAGE}")
    from dgan.files.checkpoints import PICKLE_SUFFIX
    from dgan.interop.export import export_checkpoint

    if not args[1].endswith(PICKLE_SUFFIX):
        raise ConfigError(f"{TO_PKL}: destination {args[1]} must end in {PICKLE_SUFFIX} (the "
                          "network pickle that pkl= and the StyleGAN2-ADA tools read)")
    path, notes = export_checkpoint(args[0], args[1])
    for note in notes:
        print(f"[dgan] {note}", flush=True)
    print(f"[dgan] wrote {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Convert a StyleGAN2-ADA / Diffusion-GAN network pickle into a dgan checkpoint.

    python -m dgan.convert SRC.pkl DEST.ckpt

SRC may also be the name of one of the authors' published networks (diffusion-stylegan2-cifar10,
diffusion-projectedgan-lsun-bedroom, diffusion-insgen-afhqcat ...), fetched once through the
Hugging Face hub into its cache (HF_HUB_OFFLINE=1 reads the cache only).

The pickle's embedded source code is never run: only its tensors and plain data are read, and
anything else (another callable, an unknown class) is refused with one line naming it. The
checkpoint works with ``dgan.generate ckpt=``, ``dgan.evaluate ckpt=`` and
``dgan.train init=`` (which also take ``pkl=`` / ``init=SRC.pkl`` directly).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dgan.config.instantiation import ConfigError

USAGE = "usage: python -m dgan.convert SRC.pkl DEST.ckpt"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: 0 on success, 2 (and one ``error:`` line) on bad input."""
    from dgan.config.cli_args import run_command

    args = [a for a in (sys.argv[1:] if argv is None else argv)]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0

    def action() -> None:
        if len(args) != 2:
            raise ConfigError(f"expected a source pickle and a destination; {USAGE}")
        from dgan.files.checkpoints import read_pickle_checkpoint
        from dgan.interop.convert import describe, save_checkpoint

        checkpoint = read_pickle_checkpoint(args[0], "SRC")
        path = save_checkpoint(checkpoint, args[1])
        print(f"[dgan] {describe(checkpoint)}", flush=True)
        print(f"[dgan] wrote {path}", flush=True)

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main())

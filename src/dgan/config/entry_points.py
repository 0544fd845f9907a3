"""The console scripts (``dgan-train``, ``dgan-generate``, ...): one habit for every command.

Each takes ``key=value`` and ``--key=value`` alike: Hydra's ``train`` and the key=value parser of
``generate``/``evaluate`` read both (see :mod:`dgan.config.cli_args` and :mod:`dgan.train`), and
the argparse commands (``prepare``, ``bench``, ``sweep_report``) rewrite ``key=value`` to their
options with :func:`dgan.config.cli_args.dashed`.
Commands are imported when called, so that ``dgan-generate`` does not import Lightning.
"""

from __future__ import annotations

import sys


def train() -> None:
    """``dgan-train``: ``python -m dgan.train``."""
    from dgan.train import main

    main()


def generate() -> None:
    """``dgan-generate``: ``python -m dgan.generate``."""
    from dgan.generate import main

    sys.exit(main())


def evaluate() -> None:
    """``dgan-evaluate``: ``python -m dgan.evaluate``."""
    from dgan.evaluate import main

    sys.exit(main())


def convert() -> None:
    """``dgan-convert``: ``python -m dgan.convert``."""
    from dgan.convert import main

    sys.exit(main())


def prepare() -> None:
    """``dgan-prepare``: ``python -m dgan.data.prepare``, also as ``source=... dest=...``."""
    from dgan.data.prepare import main

    sys.exit(main())


def bench() -> None:
    """``dgan-bench``: ``python -m dgan.bench``, also as ``presets=cifar tiny=true``."""
    from dgan.bench import main

    main()

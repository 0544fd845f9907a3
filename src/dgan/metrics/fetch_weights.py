"""Download metric weights for offline use: ``python -m dgan.metrics.fetch_weights DIR``.

Run it on a machine with internet access, copy DIR to the cluster and point the metrics'
``weights_dir`` at it. Files keep the names torch-fidelity / torchvision expect (see
:data:`dgan.metrics.feature_extractors.EXTRACTORS`); files already in DIR are kept, and files
already in torch's hub cache are copied instead of downloaded again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dgan.metrics.feature_extractors import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    EXTRACTORS,
    copy_weights,
    download_file,
    hub_checkpoint_dir,
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``fetch_weights``."""
    parser = argparse.ArgumentParser(
        prog="python -m dgan.metrics.fetch_weights",
        description="Download Inception-v3 and VGG16 weights for offline image metrics.",
    )
    parser.add_argument("dir", type=Path, help="directory to store the weights in")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(EXTRACTORS),
        help="fetch only this extractor's weights (repeatable; default: all)",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even if the file is in DIR"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        # Large files over slow links: the timeout is per socket operation, not per file.
        default=max(DEFAULT_DOWNLOAD_TIMEOUT, 60.0),
        help="socket timeout in seconds",
    )
    return parser


def fetch_weights(
    weights_dir: Path,
    extractors: Sequence[str] | None = None,
    *,
    force: bool = False,
    timeout: float = 60.0,
) -> list[Path]:
    """Put the weights of ``extractors`` into ``weights_dir``; returns the files' paths.

    Args:
        weights_dir: target directory (created if missing).
        extractors: extractor names to fetch; default: all known.
        force: download even if the file is already in ``weights_dir``.
        timeout: socket timeout of each download in seconds.
    """
    weights_dir = Path(weights_dir).expanduser()
    weights_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for name in extractors or list(EXTRACTORS):
        spec = EXTRACTORS[name]
        dest = weights_dir / spec.file_name
        cached = hub_checkpoint_dir() / spec.file_name
        if dest.is_file() and not force:
            print(f"{spec.description}: already present: {dest}")
        elif cached.is_file() and not force and cached.resolve() != dest.resolve():
            copy_weights(cached, weights_dir)
            print(f"{spec.description}: copied from torch hub cache: {dest}")
        else:
            print(f"{spec.description}: downloading {spec.url} ...", flush=True)
            download_file(spec.url, dest, timeout=timeout)
            print(f"{spec.description}: saved {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")
        saved.append(dest)
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        fetch_weights(args.dir, args.only, force=args.force, timeout=args.timeout)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Set the metrics weights_dir to {args.dir.expanduser().resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write dgan networks as StyleGAN2-ADA-style network pickles, to test the safe reader (tests only).

The writer is :mod:`dgan.interop.export`'s; this module gives it a placeholder module source
(or whatever the caller passes, e.g. a payload that must never run), so these pickles are for
dgan's reader and say so in every record, where an export names the reference's module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

from torch import nn

from dgan.interop import export
from dgan.interop.export import (
    DEFAULT_PROTOCOL,
    EasyDict,
    PersistentRecord,
    _ReferencePickler,
    reference_discriminator_kwargs,
    reference_generator_kwargs,
)

__all__ = [
    "DEFAULT_MODULE_SRC",
    "DEFAULT_PROTOCOL",
    "EasyDict",
    "PersistentRecord",
    "_ReferencePickler",
    "dump_network_pickle",
    "dumps_network_pickle",
    "reference_discriminator_kwargs",
    "reference_generator_kwargs",
]

DEFAULT_MODULE_SRC = "# training/networks.py of the reference: not embedded by dgan's writer\n"


def dump_network_pickle(
    file: str | os.PathLike[str] | IO[bytes],
    networks: Mapping[str, tuple[nn.Module, Mapping[str, Any]] | PersistentRecord],
    *,
    module_src: str = DEFAULT_MODULE_SRC,
    **kwargs: Any,
) -> None:
    """:func:`dgan.interop.export.dump_network_pickle` with the placeholder module source.

    Args:
        file: path to write, or a binary file object open for writing.
        networks: as for :func:`dgan.interop.export.dump_network_pickle`.
        module_src: the module source recorded in every meta dict (never run by dgan).
        **kwargs: the other keyword arguments of the export's writer.
    """
    export.dump_network_pickle(file, networks, module_src=module_src, **kwargs)


def dumps_network_pickle(
    networks: Mapping[str, tuple[nn.Module, Mapping[str, Any]] | PersistentRecord],
    *,
    module_src: str = DEFAULT_MODULE_SRC,
    **kwargs: Any,
) -> bytes:
    """:func:`dump_network_pickle` into bytes.

    Args:
        networks: as for :func:`dump_network_pickle`.
        module_src: the module source recorded in every meta dict.
        **kwargs: the other keyword arguments of the export's writer.
    """
    return export.dumps_network_pickle(networks, module_src=module_src, **kwargs)

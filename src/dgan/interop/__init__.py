"""Interoperability with the reference implementation's files (StyleGAN2-ADA network pickles).

``load_network_pickle`` reads a pickle as data without running the code it embeds;
``generator_from_pickle`` / ``discriminator_from_pickle`` turn its networks into dgan's
StyleGAN2 networks and ``config_from_pickle`` gives the matching dgan model configuration.
"""

from dgan.interop.persistence import (
    NetworkPickle,
    OpaqueObject,
    PersistentObject,
    UnsafePickleError,
    find_module,
    init_kwargs,
    load_network_pickle,
    loads_network_pickle,
    named_modules,
    state_dict,
)
from dgan.interop.stylegan2_ada import (
    DISCRIMINATOR_NAME_TABLE,
    GENERATOR_NAME_TABLE,
    MappingError,
    config_from_pickle,
    discriminator_from_pickle,
    discriminator_kwargs_from_pickle,
    generator_from_pickle,
    generator_kwargs_from_pickle,
    load_tensors,
    map_name,
)

__all__ = [
    "DISCRIMINATOR_NAME_TABLE",
    "GENERATOR_NAME_TABLE",
    "MappingError",
    "NetworkPickle",
    "OpaqueObject",
    "PersistentObject",
    "UnsafePickleError",
    "config_from_pickle",
    "discriminator_from_pickle",
    "discriminator_kwargs_from_pickle",
    "find_module",
    "generator_from_pickle",
    "generator_kwargs_from_pickle",
    "init_kwargs",
    "load_network_pickle",
    "load_tensors",
    "loads_network_pickle",
    "map_name",
    "named_modules",
    "state_dict",
]

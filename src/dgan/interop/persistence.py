"""Read StyleGAN2-ADA / Diffusion-GAN network pickles without running the code they embed.

Those pickles are written through ``torch_utils.persistence``: every network is a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` dict carries the
source of the Python module that defined the class, the class name and the object's
``__dict__``. The standard unpickler ``exec``s that source, so opening a downloaded pickle runs
whatever it contains. :func:`load_network_pickle` never does: its unpickler admits only a short
list of globals (the reconstruct function, tensor and storage rebuilding, ``OrderedDict``,
container builtins, ``EasyDict``, numeric NumPy scalars and arrays), each mapped to a function
of this module that checks its arguments and builds plain data. Every other global is refused
with :class:`UnsafePickleError` before anything is called. A network comes back as a
:class:`PersistentObject`, a record of its class name, a digest of its source and its state.
"""

from __future__ import annotations

import collections
import contextvars
import copy
import hashlib
import io
import math
import os
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "NetworkPickle",
    "NotAModuleError",
    "OpaqueObject",
    "PersistentObject",
    "UnsafePickleError",
    "find_module",
    "init_kwargs",
    "is_module",
    "load_network_pickle",
    "loads_network_pickle",
    "named_modules",
    "state_dict",
]

# The one callable a persistence pickle needs; everything else is data.
RECONSTRUCT_GLOBAL = ("torch_utils.persistence", "_reconstruct_persistent_obj")
# Module-name prefixes of classes defined by the embedded source: ``training.networks`` when the
# pickle was written by the training run itself, ``_imported_module_<hex>`` when the class had
# been re-created from an earlier pickle's source.
EMBEDDED_MODULE_PREFIXES = ("training.", "_imported_module_")
# Classes of torch.nn, pickled by reference inside persistent objects (InsGen's contrastive
# heads keep their MLPs as nn.Sequential of nn.Linear): read as inert records like the above.
TORCH_MODULE_PREFIXES = ("torch.nn.modules.",)
# Projected GAN pickles its networks the plain way, every module a class by reference: its own
# ``pg_modules``, torch's spectral-norm hooks and ``FloatFunctional``, timm's EfficientNet
# blocks. Read as inert records too.
PROJECTED_GAN_MODULE_PREFIXES = (
    "pg_modules.", "torch.nn.utils.spectral_norm", "torch.nn.quantized.",
    "torch.ao.nn.quantized.", "timm.",
)  # fmt: skip
# Keys of a network pickle that are not networks but are given their own fields.
TRAINING_SET_KEY = "training_set_kwargs"
PROGRESS_KEY = "progress"
# Protocol-2 pickles spell builtins the Python 2 way.
PY2_BUILTINS = "__builtin__"
# NumPy scalars and arrays of these kinds only (bool, signed, unsigned, float, complex): object
# arrays would carry arbitrary Python objects.
NUMERIC_DTYPE_KINDS = frozenset("biufc")
# Encodings protocol 2 uses for bytes (``_codecs.encode(text, 'latin1')``).
LATIN1_NAMES = frozenset({"latin1", "latin-1", "iso-8859-1"})
# Attributes of a ``torch.nn.Module`` state that hold its tensors and children.
PARAMETERS = "_parameters"
BUFFERS = "_buffers"
MODULES = "_modules"
NON_PERSISTENT = "_non_persistent_buffers_set"
INIT_KWARGS = "_init_kwargs"
INIT_ARGS = "_init_args"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global (or a use of one) that the safe loader does not admit."""


class NotAModuleError(TypeError):
    """Where a module's state should hold a module (a child, a network), it holds other data."""


@dataclass(eq=False)
class PersistentObject:
    """A ``torch_utils.persistence`` object read as data; its class is never instantiated.

    Args:
        class_name: name of the class in the embedded source (``Generator``, ``Conv2dLayer``...).
        module_src_digest: SHA-256 of the embedded module source (the source itself is dropped).
        version: persistence format version written by the reference (6 for StyleGAN2-ADA).
        state: the object's ``__dict__``: ``_parameters``, ``_buffers`` and ``_modules``
            OrderedDicts, ``_init_kwargs`` and plain attributes.
    """

    class_name: str
    module_src_digest: str
    version: int | None
    state: dict[str, Any] = field(repr=False)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments the object was constructed with (deep copy, plain dicts)."""
        return init_kwargs(self)

    @property
    def init_args(self) -> tuple[Any, ...]:
        """Positional arguments the object was constructed with (empty for the reference)."""
        return tuple(copy.deepcopy(self.state.get(INIT_ARGS, ())))


class OpaqueObject:
    """Inert stand-in for an instance of an embedded-source or ``torch.nn`` module class.

    Only created when :func:`load_network_pickle` is given ``opaque_classes=True`` and the class is
    instantiated the way pickle restores plain instances (``cls.__new__`` then ``__setstate__``);
    calling the class is still refused. Subclasses are made per class by the loader, so
    ``type(obj).module`` and ``type(obj).class_name`` name the class.
    """

    module = ""
    class_name = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"OpaqueObject({self.module}.{self.class_name})"


class _RefuseCall(type):
    """Metaclass of the opaque stand-ins: calling the class (REDUCE) is refused."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(
            f"refusing to call {cls.module}.{cls.class_name}: the pickle calls a class instead "
            "of restoring an instance of it"
        )


@dataclass(eq=False)
class NetworkPickle:
    """Contents of a network pickle, read as data.

    Args:
        networks: the networks by key (``G``, ``D``, ``G_ema``, ``diffusion``,
            ``augment_pipe``...): persistent objects, or modules pickled by reference (an
            :class:`OpaqueObject` with a module state, as Projected GAN writes them).
        training_set_kwargs: the dataset options of the run (resolution, use_labels, xflip...).
        progress: training progress; one-element tensors become Python numbers (``cur_nimg``,
            ``cur_tick``, ``batch_idx``, ``cur_p``, ``best_fid``...).
        extra: every other top-level key, as read.
    """

    networks: dict[str, PersistentObject | OpaqueObject]
    training_set_kwargs: dict[str, Any] | None
    progress: dict[str, Any]
    extra: dict[str, Any]

    @property
    def cur_p(self) -> float | None:
        """Diffusion (or augmentation) level p when the pickle recorded it, else None."""
        value = self.progress.get("cur_p")
        return None if value is None else float(value)

    def __getitem__(self, key: str) -> PersistentObject | OpaqueObject:
        return self.networks[key]


# ---------------------------------------------------------------------------------------------
# The admitted globals. Each checks its arguments: the pickle decides what they receive.


def _reconstruct(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"persistent object meta is a {type(meta).__name__}, not a dict")
    if meta.get("type") != "class":
        raise UnsafePickleError(f"persistent object of type {meta.get('type')!r} is not supported")
    class_name, src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(src, str):
        raise UnsafePickleError("persistent object meta lacks a class_name or module_src string")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"state of persistent {class_name} is not a dict")
    version = meta.get("version")
    return PersistentObject(
        class_name=class_name,
        module_src_digest=hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest(),
        version=version if isinstance(version, int) else None,
        state=dict(state),
    )


def _load_storage(data: Any) -> torch.storage.TypedStorage | torch.UntypedStorage:
    # torch pickles a storage as torch.save() bytes; weights_only limits that inner load to
    # tensors and storages as well.
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"storage payload is a {type(data).__name__}, not bytes")
    storage = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"storage payload holds a {type(storage).__name__}")
    return storage


def _check_ints(name: str, values: Any) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list, torch.Size)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise UnsafePickleError(f"tensor {name} {values!r} is not a sequence of ints")
    return tuple(values)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}")
    size, stride = _check_ints("size", size), _check_ints("stride", stride)
    if not isinstance(offset, int) or offset < 0 or len(size) != len(stride):
        raise UnsafePickleError(f"tensor offset {offset!r} / size {size} / stride {stride} invalid")
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise UnsafePickleError(f"tensor size {size} / stride {stride} has negative entries")
    if isinstance(storage, torch.UntypedStorage):
        storage = torch.storage.TypedStorage(
            wrap_storage=storage, dtype=torch.uint8, _internal=True
        )
    raw, dtype = storage._untyped_storage, storage.dtype
    if not isinstance(raw, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
        raise UnsafePickleError("tensor storage has been tampered with")
    t = torch.empty((0,), dtype=dtype)
    # Tensor.set_ grows a storage too small for the view, with uninitialised memory: a tensor
    # larger than its data is corrupt (or fishing for the process's memory).
    _check_bounds(size, stride, offset, raw.nbytes() // t.element_size())
    return _register(t.set_(raw, offset, size, stride))


# Layout of every tensor the current load rebuilt, by id: checked again at the end.
_REBUILT: contextvars.ContextVar[dict[int, tuple[Any, ...]]] = contextvars.ContextVar("rebuilt")


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.nbytes(), tuple(t.shape), t.stride(), t.storage_offset()


def _register(t: torch.Tensor) -> torch.Tensor:
    _REBUILT.get()[id(t)] = (t, _layout(t))
    return t


def _check_bounds(size: tuple[int, ...], stride: tuple[int, ...], offset: int, numel: int) -> None:
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if math.prod(size) and last >= numel:
        raise UnsafePickleError(
            f"tensor of size {size}, stride {stride}, offset {offset} exceeds its storage of "
            f"{numel} elements"
        )


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> torch.Tensor:
    del backward_hooks  # hooks cannot be pickled as data; torch writes an empty OrderedDict
    if metadata:
        raise UnsafePickleError("tensor metadata is not supported by the safe loader")
    tensor = _rebuild_tensor(storage, offset, size, stride)
    tensor.requires_grad_(bool(requires_grad))
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
    del backward_hooks
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter data is a {type(data).__name__}, not a tensor")
    return _register(torch.nn.Parameter(data.detach(), requires_grad=bool(requires_grad)))


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any
) -> torch.nn.Parameter:
    # The state would be set as attributes on the parameter; the reference never writes one.
    if state:
        raise UnsafePickleError("parameter with extra attributes is not supported")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or str(encoding).lower() not in LATIN1_NAMES:
        raise UnsafePickleError(f"_codecs.encode is admitted for latin-1 text only, not {encoding}")
    return text.encode("latin1")


def _numpy_multiarray() -> Any:
    # NumPy 2 moved numpy.core to numpy._core; pickles of either spelling come through here.
    core = getattr(np, "_core", None)
    return core.multiarray if core is not None else np.core.multiarray


def _numeric_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_DTYPE_KINDS:
        raise UnsafePickleError(f"NumPy dtype {dtype!r} is not numeric")
    return dtype


def _numpy_dtype(spec: Any, align: Any = False, copy_: Any = True) -> np.dtype:
    del copy_  # always a copy: the pickle's BUILD step then sets the state on our copy only
    if not isinstance(spec, str):
        raise UnsafePickleError(f"NumPy dtype spec {spec!r} is not a string")
    return np.dtype(_numeric_dtype(np.dtype(spec)), align=bool(align), copy=True)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    _numeric_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise UnsafePickleError("NumPy scalar payload does not match its dtype")
    # A Python number: the network state then holds no NumPy objects.
    return _numpy_multiarray().scalar(dtype, bytes(data)).item()


class _Admitted:
    """An admitted function as the pickle sees it: callable, but its state cannot be set.

    Pickle's BUILD step would otherwise let the file rewrite attributes (``__defaults__``...)
    of this module's functions for every later load.
    """

    __slots__ = ("_func", "_name")

    def __init__(self, name: str, func: Any) -> None:
        self._func = func
        self._name = name

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refusing to set state on {self._name}")

    def __repr__(self) -> str:
        return f"<admitted {self._name}>"


# What ``numpy.ndarray`` resolves to: usable only as the first argument of _reconstruct.
_NDARRAY = _Admitted("numpy.ndarray", None)


def _numpy_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if cls is not _NDARRAY:
        raise UnsafePickleError("NumPy _reconstruct is admitted for numpy.ndarray only")
    # An empty uint8 array; its real dtype (numeric, from _numpy_dtype) and data arrive by BUILD.
    return _numpy_multiarray()._reconstruct(np.ndarray, _check_ints("shape", shape), b"b")


def _opaque_class(module: str, name: str) -> type:
    return _RefuseCall(f"Opaque_{name}", (OpaqueObject,), {"module": module, "class_name": name})


_NUMPY_GLOBALS: dict[str, Any] = {}
for _core_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY_GLOBALS[f"{_core_name}.scalar"] = _numpy_scalar
    _NUMPY_GLOBALS[f"{_core_name}._reconstruct"] = _numpy_reconstruct

# Builtin container types are admitted as they are: they are immutable, so BUILD cannot alter
# them, and NEWOBJ (how pickle restores an EasyDict) needs a real type.
_ADMITTED_TYPES: dict[str, type] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.dict": dict,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    # EasyDict is a dict with attribute access: read it as a dict.
    "dnnlib.EasyDict": dict,
    "dnnlib.util.EasyDict": dict,
}
_ADMITTED_FUNCTIONS: dict[str, Any] = {
    ".".join(RECONSTRUCT_GLOBAL): _reconstruct,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "torch.storage._load_from_bytes": _load_storage,
    "_codecs.encode": _latin1,
    "numpy.dtype": _numpy_dtype,
    **_NUMPY_GLOBALS,
}
ADMITTED_GLOBALS: dict[str, Any] = {
    **_ADMITTED_TYPES,
    **{name: _Admitted(name, func) for name, func in _ADMITTED_FUNCTIONS.items()},
    "numpy.ndarray": _NDARRAY,
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler whose globals are :data:`ADMITTED_GLOBALS` (and, if asked, opaque stand-ins)."""

    def __init__(self, file: IO[bytes], opaque_classes: bool) -> None:
        super().__init__(file)
        self._opaque_classes = opaque_classes
        self._opaque: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == PY2_BUILTINS:
            module = "builtins"
        admitted = ADMITTED_GLOBALS.get(f"{module}.{name}")
        if admitted is not None:
            return admitted
        inert = EMBEDDED_MODULE_PREFIXES + TORCH_MODULE_PREFIXES + PROJECTED_GAN_MODULE_PREFIXES
        if module.startswith(inert) and self._opaque_classes:
            key = (module, name)
            if key not in self._opaque:
                self._opaque[key] = _opaque_class(module, name)
            return self._opaque[key]
        hint = (
            "; a class of the embedded source (pass opaque_classes=True to keep plain instances of "
            "it as inert data)"
            if module.startswith(EMBEDDED_MODULE_PREFIXES)
            else ""
        )
        raise UnsafePickleError(f"refusing global {module}.{name}{hint}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}: not used by network pickles")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _as_network_pickle(data: Any) -> NetworkPickle:
    if not isinstance(data, dict):
        raise UnsafePickleError(f"a network pickle is a dict, this one is a {type(data).__name__}")
    networks = {k: v for k, v in data.items() if isinstance(v, PersistentObject) or is_module(v)}
    progress = data.get(PROGRESS_KEY)
    training_set = data.get(TRAINING_SET_KEY)
    # Keys read into their own fields; anything of an unexpected type stays in extra.
    skip = set(networks)
    if isinstance(progress, dict):
        skip.add(PROGRESS_KEY)
    if isinstance(training_set, dict):
        skip.add(TRAINING_SET_KEY)
    return NetworkPickle(
        networks=networks,
        training_set_kwargs=dict(training_set) if isinstance(training_set, dict) else None,
        progress={k: _plain(v) for k, v in progress.items()} if isinstance(progress, dict) else {},
        extra={k: v for k, v in data.items() if k not in skip},
    )


def _check_tensor(t: torch.Tensor, rebuilt: dict[int, tuple[Any, ...]]) -> None:
    # Pickle's BUILD step on a tensor calls Tensor.__setstate__, which can re-point it (set_,
    # growing its storage) or give it hooks: every tensor must be as it was rebuilt.
    record = rebuilt.get(id(t))
    if record is None or record[0] is not t or record[1] != _layout(t):
        raise UnsafePickleError("tensor altered after it was rebuilt (pickle BUILD on a tensor)")
    if t._backward_hooks or t.grad is not None:
        raise UnsafePickleError("tensor with backward hooks or a gradient is not supported")


def _validate(data: Any, rebuilt: dict[int, tuple[Any, ...]]) -> None:
    # Iterative walk: a crafted pickle may nest deeply or refer to itself.
    seen: set[int] = set()
    stack = [data]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            _check_tensor(obj, rebuilt)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, PersistentObject):
            stack.append(obj.__dict__)
        elif isinstance(obj, OpaqueObject):
            stack.append(obj.__dict__)


def _load(file: IO[bytes], opaque_classes: bool) -> NetworkPickle:
    with warnings.catch_warnings():
        # Rebuilding tensors goes through TypedStorage, which torch flags as deprecated.
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        rebuilt: dict[int, tuple[Any, ...]] = {}
        token = _REBUILT.set(rebuilt)
        try:
            data = _SafeUnpickler(file, opaque_classes).load()
            _validate(data, rebuilt)
        finally:
            _REBUILT.reset(token)
    return _as_network_pickle(data)


def load_network_pickle(
    path: str | os.PathLike[str] | IO[bytes], *, opaque_classes: bool = False
) -> NetworkPickle:
    """Read a StyleGAN2-ADA / Diffusion-GAN network pickle as data, running none of its code.

    Args:
        path: file path of the pickle, or a binary file object open for reading.
        opaque_classes: keep instances of undecorated embedded-source classes and of
            ``torch.nn`` module classes that pickle restores without calling them
            (Diffusion-GAN's ``diffusion.aug = Identity()``, InsGen's head MLPs, every module
            of a Projected GAN pickle) as inert :class:`OpaqueObject` data instead of refusing
            the pickle.

    Raises:
        UnsafePickleError: the pickle uses a global or a construct the safe loader refuses.
    """
    if hasattr(path, "read"):
        return _load(path, opaque_classes)  # type: ignore[arg-type]
    with open(path, "rb") as f:
        return _load(f, opaque_classes)


def loads_network_pickle(data: bytes, *, opaque_classes: bool = False) -> NetworkPickle:
    """:func:`load_network_pickle` for pickle bytes already in memory.

    Args:
        data: the pickle's bytes.
        opaque_classes: see :func:`load_network_pickle`.
    """
    return _load(io.BytesIO(data), opaque_classes)


# ---------------------------------------------------------------------------------------------
# Walking the state of a module read as data.


def is_module(obj: Any) -> bool:
    """Whether ``obj`` is a module read as data (persistent or opaque, with ``_modules``)."""
    state = getattr(obj, "state", None)
    return (
        isinstance(obj, (PersistentObject, OpaqueObject))
        and isinstance(state, dict)
        and MODULES in state
    )


def _module_state(obj: Any) -> dict[str, Any]:
    if not is_module(obj):
        raise NotAModuleError(f"{obj!r} is not a torch.nn.Module read from a pickle")
    return obj.state


def named_modules(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, module) of ``obj`` and every module nested in it, parents first.

    Args:
        obj: a module read as data (a :class:`PersistentObject` network).
        prefix: name given to ``obj`` itself (and prepended to its children's names).
    """
    yield prefix, obj
    for name, child in _module_state(obj)[MODULES].items():
        if child is None:
            continue
        child_name = f"{prefix}.{name}" if prefix else name
        if not is_module(child):
            raise NotAModuleError(
                f"child {child_name!r} is a {type(child).__name__}, not a module"
            )
        yield from named_modules(child, child_name)


def state_dict(obj: Any, *, parameters: bool = True, buffers: bool = True) -> dict[str, Any]:
    """Flat ``name -> tensor`` of a module read as data, as ``torch.nn.Module.state_dict`` names.

    Buffers the module marked non-persistent are left out, as torch does.

    Args:
        obj: a module read as data (a :class:`PersistentObject` network).
        parameters: include parameters.
        buffers: include (persistent) buffers.
    """
    out: dict[str, Any] = {}
    for name, module in named_modules(obj):
        state = module.state
        dot = f"{name}." if name else ""
        if parameters:
            for key, value in state.get(PARAMETERS, {}).items():
                if value is not None:
                    out[dot + key] = value
        if buffers:
            skip = state.get(NON_PERSISTENT) or ()
            for key, value in state.get(BUFFERS, {}).items():
                if value is not None and key not in skip:
                    out[dot + key] = value
    return out


def find_module(obj: Any, name: str) -> Any:
    """The module nested in ``obj`` at dotted ``name`` (``""`` is ``obj`` itself).

    Args:
        obj: a module read as data.
        name: dotted path of the child, e.g. ``synthesis.b4.conv1``.
    """
    for module_name, module in named_modules(obj):
        if module_name == name:
            return module
    raise KeyError(f"no module {name!r} in {obj!r}")


def init_kwargs(obj: Any) -> dict[str, Any]:
    """Constructor keyword arguments recorded by the persistence decorator (deep copy).

    Args:
        obj: a :class:`PersistentObject` (or any module read as data).
    """
    kwargs = getattr(obj, "state", {}).get(INIT_KWARGS) or {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"init kwargs of {obj!r} are a {type(kwargs).__name__}, not a dict")
    return copy.deepcopy(dict(kwargs))

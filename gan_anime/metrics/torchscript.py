"""Read the tensors of a TorchScript archive without PyTorch and without trusting its pickle.

A TorchScript ``.pt`` file is a zip: ``<name>/data.pkl`` (the module tree as a
pickle), ``<name>/data/<key>`` (one raw little-endian buffer per storage) and
``<name>/code/`` (the modules' code as text).  A plain ``pickle.load`` of
``data.pkl`` would import and call whatever globals the file names, so it is read
by :class:`RestrictedUnpickler`, which — like ``torch.load(weights_only=True)`` —
accepts only the records that rebuild tensors and storages, plus the TorchScript
module records, which become :class:`ModuleRecord` attribute holders.  Every other
global is refused with :class:`pickle.UnpicklingError`; the allowed ones are handed out
as fresh sealed wrappers (the pickle's BUILD cannot alter them), tensors are bounds-checked
against their storages, and sizes are capped.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Callable, Iterator, Tuple

import numpy as np

#: torch storage class name -> numpy dtype of its raw buffer (little-endian, as torch writes them).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


#: Limits that keep a hostile archive from exhausting memory (the FID Inception's data.pkl is 0.1 MB,
#: its largest storage 10 MB, all of them together 95 MB).
MAX_PICKLE_BYTES = 64 << 20
MAX_STORAGE_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30


class ModuleRecord:
    """A TorchScript module from ``data.pkl``: its pickled attributes only, no code, no behaviour.

    Attributes live in a private dict (read through attribute access); the pickle cannot replace
    this class's methods or special attributes.
    """

    __slots__ = ("_attrs",)
    type_name = ""

    def __setstate__(self, state) -> None:
        # Keys only ever reach the private dict: they cannot shadow methods or special attributes.
        if not isinstance(state, dict) or any(not isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"unexpected state for module record {self.type_name}")
        object.__setattr__(self, "_attrs", dict(state))

    def __getattr__(self, name: str):
        attrs = object.__getattribute__(self, "_attrs") if name != "_attrs" else None
        if attrs is not None and name in attrs:
            return attrs[name]
        raise AttributeError(name)

    def __getstate__(self):
        return None

    def children(self) -> Iterator[Tuple[str, "ModuleRecord"]]:
        for name, value in getattr(self, "_attrs", {}).items():
            if isinstance(value, ModuleRecord):
                yield name, value


def _module_class(type_name: str):
    # One small subclass per TorchScript class, so NEWOBJ gets a class whose name records the type.
    return type(type_name.rsplit(".", 1)[-1], (ModuleRecord,), {"__slots__": (), "type_name": type_name})


class _Sealed:
    """Base of the objects find_class hands out: a pickle's BUILD opcode on them is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refused BUILD on {type(self).__name__}")

    def __reduce__(self):
        raise TypeError("not picklable")


class _StorageType(_Sealed):
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", STORAGE_DTYPES[name])


class _Storage(_Sealed):
    """One storage's raw buffer: float/int [numel], read-only."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        object.__setattr__(self, "array", array)


class _Call(_Sealed):
    """An allowed global, wrapped: fresh per find_class call, so a pickle cannot alter the function."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args):
        return self.fn(*args)


def _int(value, what: str) -> int:
    if type(value) is not int:
        raise pickle.UnpicklingError(f"tensor {what} must be an integer, got {type(value).__name__}")
    return value


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, copied to a contiguous array."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor must be rebuilt from a storage record")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) or len(size) > 8:
        raise pickle.UnpicklingError("invalid tensor size or stride")
    buf = storage.array
    offset = _int(offset, "offset")
    size = tuple(_int(n, "size") for n in size)
    stride = tuple(_int(n, "stride") for n in stride)
    if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"invalid tensor offset {offset}, size {size} or stride {stride}")
    numel = int(np.prod(size, dtype=np.int64)) if size else 1
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= buf.size or numel > buf.size:
            raise pickle.UnpicklingError(f"tensor of size {size} does not fit its storage of {buf.size}")
    item = buf.itemsize
    view = np.lib.stride_tricks.as_strided(buf[offset:], shape=size, strides=[s * item for s in stride],
                                           writeable=False)
    return np.array(view, copy=True)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a TorchScript archive, refusing every global outside the allow-list."""

    _ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
    }

    def __init__(self, file, read_storage: Callable[[str], bytes]):
        super().__init__(file)
        self._read_storage = read_storage
        self._storages = {}
        self._total = 0

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return _Call(self._ALLOWED[(module, name)])
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module.startswith("__torch__.") or module == "__torch__":
            return _module_class(f"{module}.{name}")
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only tensor and storage records "
                                     f"(and TorchScript module records) are accepted")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and type(pid[4]) is int):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}"[:200])
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self._storages:
            raw = self._read_storage(key)
            self._total += len(raw)
            if self._total > MAX_TOTAL_BYTES:
                raise pickle.UnpicklingError("the archive's storages exceed the size limit")
            array = np.frombuffer(raw, dtype=storage_type.dtype)
            if array.size < numel:
                raise pickle.UnpicklingError(f"storage {key} holds {array.size} values, expected {numel}")
            self._storages[key] = _Storage(array)
        return self._storages[key]


def load_module_tree(path: str) -> ModuleRecord:
    """The root module of a TorchScript archive, its tensors as float/int numpy arrays.

    Raises ``ValueError`` when ``path`` is not a TorchScript zip, and
    ``pickle.UnpicklingError`` when its pickle names a global outside the allow-list or a
    record is malformed.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path} is not a TorchScript archive (a zip file): {e}") from None
    with archive:
        infos = {i.filename: i for i in archive.infolist()}
        pkl = [n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkl:
            raise ValueError(f"{path} has no <name>/data.pkl: not a TorchScript archive")
        prefix = pkl[0][: -len("data.pkl")]

        def read(member: str, limit: int) -> bytes:
            if infos[member].file_size > limit:
                raise pickle.UnpicklingError(f"{member} is larger than {limit >> 20} MB")
            return archive.read(member)

        def read_storage(key: str) -> bytes:
            member = f"{prefix}data/{key}"
            if member not in infos:
                raise pickle.UnpicklingError(f"storage {key} is missing from {path}")
            return read(member, MAX_STORAGE_BYTES)

        root = RestrictedUnpickler(io.BytesIO(read(pkl[0], MAX_PICKLE_BYTES)), read_storage).load()
    if not isinstance(root, ModuleRecord):
        raise ValueError(f"{path}: data.pkl does not hold a TorchScript module")
    return root


def named_modules(root: ModuleRecord, prefix: str = "", _seen=None) -> Iterator[Tuple[str, ModuleRecord]]:
    """(dotted path, module) for ``root`` and every module below it, parents first (each once)."""
    seen = set() if _seen is None else _seen
    if id(root) in seen:
        raise ValueError("the module tree has a cycle: not a TorchScript module")
    seen.add(id(root))
    yield prefix, root
    for name, child in root.children():
        yield from named_modules(child, f"{prefix}.{name}" if prefix else name, seen)

"""Read the tensors of a TorchScript archive without PyTorch and without trusting its pickle.

A TorchScript ``.pt`` file is a zip: ``<name>/data.pkl`` (the module tree as a
pickle), ``<name>/data/<key>`` (one raw little-endian buffer per storage) and
``<name>/code/`` (the modules' code as text).  A plain ``pickle.load`` of
``data.pkl`` would import and call whatever globals the file names, so it is read
by :class:`RestrictedUnpickler`, which — like ``torch.load(weights_only=True)`` —
accepts only the records that rebuild tensors and storages, plus the TorchScript
module records, which become inert :class:`ModuleRecord` attribute holders.  Every
other global is refused with :class:`pickle.UnpicklingError`.
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


class ModuleRecord:
    """A TorchScript module from ``data.pkl``: only its pickled attributes, no code, no behaviour."""

    def __init__(self, type_name: str = ""):
        self.type_name = type_name

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for module record {self.type_name}")
        self.__dict__.update(state)

    def children(self) -> Iterator[Tuple[str, "ModuleRecord"]]:
        for name, value in self.__dict__.items():
            if isinstance(value, ModuleRecord):
                yield name, value


def _module_class(type_name: str):
    # One small subclass per TorchScript class, so NEWOBJ gets a class whose name records the type.
    return type(type_name.rsplit(".", 1)[-1], (ModuleRecord,), {"__init__": lambda self: None,
                                                              "type_name": type_name})


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, copied to a contiguous array."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"invalid tensor size {size} or stride {stride}")
    if size and min(size) > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= storage.size:
            raise pickle.UnpicklingError(f"tensor of size {size} does not fit its storage of {storage.size}")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * item for s in stride],
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

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module.startswith("__torch__.") or module == "__torch__":
            return _module_class(f"{module}.{name}")
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only tensor and storage records "
                                     f"(and TorchScript module records) are accepted")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        raw = self._read_storage(str(key))
        array = np.frombuffer(raw, dtype=storage_type.dtype)
        if array.size < int(numel):
            raise pickle.UnpicklingError(f"storage {key} holds {array.size} values, expected {numel}")
        return array


def load_module_tree(path: str) -> ModuleRecord:
    """The root module of a TorchScript archive, its tensors as float/int numpy arrays.

    Raises ``ValueError`` when ``path`` is not a TorchScript zip, and
    ``pickle.UnpicklingError`` when its pickle names a global outside the allow-list.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path} is not a TorchScript archive (a zip file): {e}") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkl:
            raise ValueError(f"{path} has no <name>/data.pkl: not a TorchScript archive")
        prefix = pkl[0][: -len("data.pkl")]

        def read_storage(key: str) -> bytes:
            member = f"{prefix}data/{key}"
            if member not in names:
                raise pickle.UnpicklingError(f"storage {key} is missing from {path}")
            return archive.read(member)

        root = RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), read_storage).load()
    if not isinstance(root, ModuleRecord):
        raise ValueError(f"{path}: data.pkl does not hold a TorchScript module")
    return root


def named_modules(root: ModuleRecord, prefix: str = "") -> Iterator[Tuple[str, ModuleRecord]]:
    """(dotted path, module) for ``root`` and every module below it, parents first."""
    yield prefix, root
    for name, child in root.children():
        yield from named_modules(child, f"{prefix}.{name}" if prefix else name)

"""Read a legacy PyTorch ``.pth`` state dict into numpy arrays, without torch and without running its code.

Why: the EfficientNet-Lite0 ImageNet weights ship only as a PyTorch pickle, and installing torch
for one file would double the install. A pickle can name any callable; this reader's
:class:`_StateDictUnpickler` admits exactly the names a saved tensor needs (an ordered dict, the
tensor-rebuilding function and the typed storages) and refuses everything else, so a tampered
file raises :class:`UnsafePickle` instead of running code.

The legacy format (``torch.save(..., _use_new_zipfile_serialization=False)``) is five records in
a row: a magic number, the protocol version, system information, the pickled object (tensors
stand for ``(storage, offset, size, stride)`` and storages are persistent ids), the list of
storage keys, then every storage's bytes in that order, each preceded by its element count
(int64, little-endian).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["UnsafePickle", "read_state_dict", "LEGACY_MAGIC"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first record of every legacy ``torch.save`` file."""
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class UnsafePickle(ValueError):
    """The file is not a legacy PyTorch state dict, or it names something a state dict never needs."""


@dataclass
class _Storage:
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...] = field(default=())

    def array(self) -> np.ndarray:
        if self.storage.data is None:
            raise UnsafePickle("a tensor refers to a storage the file does not carry")
        item = self.storage.data.itemsize
        flat = self.storage.data[self.offset:]
        needed = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if self.size else 1
        if needed > len(flat):
            raise UnsafePickle("a tensor reaches past the end of its storage")
        return np.lib.stride_tricks.as_strided(flat, shape=self.size, strides=[s * item for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> _Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2`` (requires_grad and hooks do not matter here)."""
    return _Tensor(storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Admits an ordered dict, tensors and typed storages; any other global is refused."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickle(f"the file names {module}.{name}, which a state dict never needs; refused")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickle(f"unexpected persistent id {pid!r:.80}")
        _, kind, key, _location, numel, view = pid
        if view is not None:
            raise UnsafePickle("storage views are not supported")
        return self.storages.setdefault(str(key), _Storage(_STORAGE_DTYPES[kind.name], int(numel)))


def read_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Parameter name -> array, in the file's order, from the bytes of a legacy ``.pth`` file.

    Raises:
        UnsafePickle: not a legacy state dict, a global outside the allow-list, or truncated data.
    """
    stream = io.BytesIO(data)
    try:
        if _NoGlobals(stream).load() != LEGACY_MAGIC:
            raise UnsafePickle("not a legacy PyTorch file (magic number differs)")
        _NoGlobals(stream).load(), _NoGlobals(stream).load()  # protocol version, system information
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        if isinstance(err, UnsafePickle):
            raise
        raise UnsafePickle(f"not a legacy PyTorch file: {err}") from err
    reader = _StateDictUnpickler(stream)
    try:
        state, keys = reader.load(), _NoGlobals(stream).load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise UnsafePickle(f"the state dict could not be read: {err}") from err
    if not isinstance(state, collections.OrderedDict) or not all(isinstance(v, _Tensor) for v in state.values()):
        raise UnsafePickle("the pickled object is not a state dict of tensors")
    for key in keys:
        storage = reader.storages.get(str(key))
        if storage is None:
            raise UnsafePickle(f"storage {key} is listed but never used")
        count = struct.unpack("<q", stream.read(8))[0]
        size = count * np.dtype(storage.dtype).itemsize
        raw = stream.read(size)
        if count != storage.numel or len(raw) != size:
            raise UnsafePickle(f"storage {key} is truncated or its size differs from its header")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return {name: tensor.array() for name, tensor in state.items()}


class _NoGlobals(pickle.Unpickler):
    """The plain records (magic number, version, system information, storage keys): no global is admitted."""

    def find_class(self, module: str, name: str):
        raise UnsafePickle(f"a plain record of the file names {module}.{name}; refused")

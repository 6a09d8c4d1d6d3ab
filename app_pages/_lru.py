"""A thread-safe cache bounded in bytes, not entries: the app's per-upload results live in these.

Why not ``st.cache_data(max_entries=...)``: an entry can be a 50 px patch or an 81-megapixel
field, so an entry count bounds nothing (one large upload pinned +505 MB for good). Here every
entry carries its size, the least recently used entries go first, and a value larger than the
whole budget is returned to its caller but never kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

import numpy as np

__all__ = ["ByteLRU", "nbytes"]

V = TypeVar("V")


def nbytes(value: object) -> int:
    """Bytes held by the numpy arrays inside ``value`` (dataclass fields, dicts, tuples), walked one level deep."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        return sum(nbytes(getattr(value, name)) for name in fields)
    return 0


class ByteLRU(Generic[V]):
    """Least-recently-used cache whose entries together hold at most ``budget`` bytes of arrays."""

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes held now (never above ``budget``)."""
        return self._held

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value of ``key``, else ``compute()``, kept if it fits the budget."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = compute()  # outside the lock: other sessions' lookups do not wait for this one
        size = nbytes(value)
        with self._lock:
            if key not in self._entries and size <= self.budget:
                self._entries[key] = (value, size)
                self._held += size
                while self._held > self.budget:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._held -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0

"""Where a batch's arrays are allocated: reused rings and recycled buffers.

Two allocators for ``ArrayDataSource._fetch_into`` (which reads a batch
straight into the arrays it is given):

``BufferRing``
    ``reuse_buffers=True``: a ring of buffer sets allocated once; batch ``k``
    goes into set ``k % size``. No allocation at all, and a batch is valid
    only until the next ``next()``.
``RecycledBuffers``
    The default for background threads. A batch of a megabyte or more that a
    thread allocates with ``malloc`` is, on glibc, carved from that thread's
    arena and given back to the system when freed by the consumer; the next
    one page-faults its way in again (measured: 10-100 faults per 1.5 MB
    batch with two threads, against 2 in one thread). Large batch arrays are
    therefore kept in a pool and handed out again once nothing outside the
    pool refers to them (their reference count says so; a view of a batch
    refers to it, so a batch is never reused while any view of it lives).
    Batches are ordinary arrays that own their memory; a short final batch
    is the first rows of a pooled array.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

#: Arrays smaller than this come from ``np.empty`` (malloc serves them well).
RECYCLE_BYTES = 64 << 10
#: Arrays kept per batch shape.
_KEEP = 16


class BufferRing:
    """Batches of an ``ArrayDataSource`` read into a ring of ``size`` reused buffer sets.

    Batch ``k`` is written into buffer set ``k % size``; a shorter batch into
    the start of it. The fetch falls back to new arrays where the source
    cannot read into buffers (e.g. array-likes with no ``shape``/``dtype``).

    Examples
    --------
    >>> from batchup import data_source
    >>> ring = BufferRing(data_source.ArrayDataSource([np.arange(6)]), 1)
    >>> ring._allocate(0, [((4,), np.dtype(np.int64))])[0].shape
    (4,)
    """

    def __init__(self, source: Any, size: int) -> None:
        self.source = source
        self.size = size
        self._sets: list[list | None] = [None] * size

    def _allocate(self, slot: int, specs: list) -> list:
        bufs = self._sets[slot]
        n = specs[0][0][0]
        if (bufs is None or len(bufs) != len(specs)
                or any(b.shape[1:] != shape[1:] or b.dtype != dtype or len(b) < n
                       for b, (shape, dtype) in zip(bufs, specs, strict=True))):
            bufs = [np.empty(shape, dtype) for shape, dtype in specs]
            self._sets[slot] = bufs
        return [b[:n] for b in bufs]

    def fetch(self, item: Any) -> Any:
        slot = item.step % self.size
        out = self.source._fetch_into(item, lambda specs: self._allocate(slot, specs))
        return out if out is not None else self.source._fetch_item(item)


def _free_refs() -> int:
    """``sys.getrefcount`` of a pooled array that nothing outside the pool refers to,
    measured with the scan ``RecycledBuffers`` uses (it differs between Pythons)."""
    pool = [np.empty(1)]
    for arr in pool:
        return sys.getrefcount(arr)
    raise AssertionError("unreachable")


class RecycledBuffers:
    """Batch arrays allocated once and handed out again when nothing refers to them.

    Each batch array is an array of the pool (or the first rows of one, for a
    short batch). An array is free when the pool's reference is the only one
    left (``sys.getrefcount``): views of a batch keep it busy, since NumPy
    views refer to the array that owns the memory. Thread-safe: background
    threads allocate, and whichever thread drops the last reference frees.

    Examples
    --------
    >>> from batchup import data_source
    >>> pool = RecycledBuffers(data_source.ArrayDataSource([np.arange(6)]))
    >>> a = pool.array((1 << 14,), np.dtype(np.float64))   # 128 KB: recycled
    >>> address = a.__array_interface__["data"][0]
    >>> del a
    >>> pool.array((1 << 14,), np.dtype(np.float64)).__array_interface__["data"][0] == address
    True
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self._pools: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        data = getattr(source, "data", None)
        # NumPy arrays: gathered here, straight into pooled arrays (the hot path).
        self._rows = None
        if data is not None and getattr(source, "_all_numpy", False):
            self._rows = [(d, (d.shape[1:], d.dtype)) for d in data]
            self._length = len(data[0])

    def array(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A writable array of ``shape`` and ``dtype`` (from the pool when large)."""
        return self._array((shape[1:], dtype), shape[0])

    def _array(self, key: tuple, n: int) -> np.ndarray:
        row_shape, dtype = key
        if n * int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize < RECYCLE_BYTES:
            return np.empty((n,) + row_shape, dtype)
        with self._lock:
            pool = self._pools.setdefault(key, [])
            for arr in pool:
                if sys.getrefcount(arr) == _FREE_REFS and len(arr) >= n:
                    return arr if len(arr) == n else arr[:n]
            arr = np.empty((n,) + row_shape, dtype)
            if len(pool) < _KEEP:
                pool.append(arr)
            return arr

    def fetch(self, item: Any) -> Any:
        idx = item.indices
        if (self._rows is not None and type(idx) is np.ndarray and idx.ndim == 1
                and idx.dtype.kind in "iu" and len(idx)
                and idx.min() >= 0 and idx.max() < self._length):
            n = len(idx)
            out = []
            for d, key in self._rows:
                # mode="clip" (bounds checked above): "raise" would gather into
                # a temporary and copy that into ``out``.
                out.append(np.take(d, idx, axis=0, out=self._array(key, n), mode="clip"))
            return (idx, *out) if self.source.include_indices else tuple(out)
        out = self.source._fetch_into(
            item, lambda specs: [self._array((shape[1:], dtype), shape[0])
                                 for shape, dtype in specs])
        return out if out is not None else self.source._fetch_item(item)


_FREE_REFS = _free_refs()

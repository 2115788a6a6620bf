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
    batch with two threads, against 2 in one thread). Large arrays are
    therefore cut from ``bytearray`` buffers that the allocator keeps: each
    batch array is a view of one, and when the last view of it is dropped a
    ``weakref.finalize`` on the view chain's root hands the buffer back. A
    buffer is never handed out while any view of it lives, so batches never
    alias each other; they are ordinary writable arrays that do not own their
    memory (``arr.base`` is set).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

#: Arrays smaller than this come from ``np.empty`` (malloc serves them well).
RECYCLE_BYTES = 64 << 10
#: Free buffers kept per size.
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


def _root(arr: np.ndarray) -> Any:
    """The object at the end of ``arr``'s base chain (what every view of it keeps alive)."""
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base


class RecycledBuffers:
    """Allocate batch arrays from buffers that come back when the batch is dropped.

    Thread-safe: background threads allocate, and a buffer returns from
    whichever thread drops the last view.

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
        self._free: dict[int, list[bytearray]] = {}
        self._lock = threading.Lock()

    def _release(self, buf: bytearray) -> None:
        with self._lock:
            free = self._free.setdefault(len(buf), [])
            if len(free) < _KEEP:
                free.append(buf)

    def array(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A writable array of ``shape`` and ``dtype`` (recycled memory when large)."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes < RECYCLE_BYTES:
            return np.empty(shape, dtype)
        with self._lock:
            free = self._free.get(nbytes)
            buf = free.pop() if free else None
        if buf is None:
            buf = bytearray(nbytes)
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        weakref.finalize(_root(arr), self._release, buf)
        return arr

    def fetch(self, item: Any) -> Any:
        out = self.source._fetch_into(
            item, lambda specs: [self.array(shape, dtype) for shape, dtype in specs])
        return out if out is not None else self.source._fetch_item(item)

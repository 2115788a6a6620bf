"""Reused batch buffers: ``BufferRing`` for ``reuse_buffers=True``.

``ArrayDataSource._fetch_into`` reads a batch straight into the arrays it is
given; ``BufferRing`` gives it a ring of buffer sets allocated once (batch
``k`` goes into set ``k % size``): no allocation at all, and a batch is
valid only until the next ``next()``.

Why batches are otherwise plain ``np.empty`` arrays, even with prefetch
threads: a batch of a megabyte or more that a thread allocates is, on glibc,
carved from that thread's arena and given back to the system when freed by
the consumer, and the next one page-faults its way in again (measured with
two gathering threads: 10-100 faults per 1.5 MB batch, against 2 in one
thread). A pool of arrays recycled by reference count removed the faults,
but once the calling thread gathers its own share of the batches (one
background thread allocating, 2-5 faults per batch) it made W1 no faster and
W8 6% slower (the recycled buffers are colder in cache than malloc's most
recently freed block), so it was left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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

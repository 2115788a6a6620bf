"""A data source whose batches are fetched (and mapped) by a worker pool."""

from __future__ import annotations

from typing import Any

import numpy as np

from batchup._core.sources import AbstractDataSource, ArrayDataSource

from .executor import TaskExecutor
from .randomness import entropy_from_shuffle
from .stream import (
    TaskTimer,
    WorkStream,
    WorkStreamIterator,
    _check_buffer_size,
    _check_chunk_size,
)

__all__ = ["ParallelDataSource"]


def _fetch(ds: Any, index_batch: Any) -> Any:
    if type(ds) is ArrayDataSource and type(index_batch) is np.ndarray:
        batch = _gather_into_slot(ds, index_batch)
        if batch is not None:
            return batch
    return ds.samples_by_indices_nomapping(index_batch)


def _gather_into_slot(ds: ArrayDataSource, idx: np.ndarray) -> tuple | None:
    """An array source's batch gathered straight into the task's shared-memory slot.

    Same arrays as ``ds.samples_by_indices_nomapping(idx)``, without the copy
    from a freshly gathered batch into the slot: for large batches that copy
    was as costly as the gather itself. ``None`` (use the ordinary path, which
    also raises the ordinary errors) for anything but an integer index array
    into NumPy arrays, or when the task has no slot.
    """
    from . import shm  # worker side only: keeps mmap out of `import batchup.work_pool`

    if shm.current_task_slot() is None:
        return None
    data = ds.data
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or not len(idx):
        return None
    if not all(isinstance(d, np.ndarray) and d.ndim >= 1 for d in data):
        return None
    n = len(data[0])
    lo, hi = int(idx.min()), int(idx.max())
    if lo < -n or hi >= n:
        return None
    specs = [((len(idx),) + d.shape[1:], d.dtype) for d in data]
    if ds.include_indices:
        specs.insert(0, (idx.shape, idx.dtype))
    out = shm.result_arrays(specs)
    if out is None:
        return None
    if ds.include_indices:
        out[0][...] = idx
    rows = idx if lo >= 0 else np.where(idx < 0, idx + n, idx)
    # mode="clip" (bounds were checked above): with the default "raise" NumPy
    # gathers into a temporary buffer and copies that into ``out``.
    for d, o in zip(data, out[len(out) - len(data) :], strict=True):
        np.take(d, rows, axis=0, out=o, mode="clip")
    return tuple(out)


class ParallelDataSource(AbstractDataSource):
    """Wraps a random-access data source; a pool fetches its batches in the background.

    Index batches are generated in the calling thread exactly as the wrapped
    source generates them, so the batches and their order equal those of
    ``ds.batch_iterator`` for the same ``shuffle``; only fetching (and any
    ``.map`` function) runs in the workers. Augmentation in a map function is
    reproducible through :func:`batchup.work_pool.task_rng` (or, in worker
    processes, ``np.random``): with an int ``shuffle`` seed the augmentation
    stream is derived from that seed; otherwise from the pool's ``seed`` and
    the number of iterations started on the pool.

    Parameters
    ----------
    ds : AbstractDataSource
        A random-access data source (``ds.is_random_access`` is true).
    batch_buffer_size : int
        How many batches are prepared ahead of the consumer.
    pool : WorkerThreadPool or WorkerProcessPool
        The pool that prepares the batches (any
        :class:`~batchup._pool.executor.TaskExecutor`).
    batches_per_chunk : int or None
        Process pools send this many consecutive index batches to a worker in
        one message. ``None`` (the default) chooses automatically from how long
        the workers take per batch (remembered from one iteration to the next):
        enough batches to keep a worker busy about 10 ms, at most
        ``batch_buffer_size // (2 * processes)``. Each batch keeps its own
        position and random stream, so the batches are identical whatever the
        chunk size; they are still delivered one at a time, in order. Thread
        pools ignore it.

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source, work_pool
    >>> ds = data_source.ArrayDataSource([np.arange(6)])
    >>> with work_pool.WorkerThreadPool(2) as pool:
    ...     par = ParallelDataSource(ds, 4, pool)
    ...     [b[0].tolist() for b in par.batch_iterator(4, shuffle=np.random.RandomState(0))]
    [[5, 2, 1, 3], [0, 4]]
    """

    def __init__(
        self,
        ds: AbstractDataSource,
        batch_buffer_size: int,
        pool: Any,
        batches_per_chunk: int | None = None,
    ) -> None:
        if not isinstance(ds, AbstractDataSource):
            raise TypeError(
                f"ds must implement `data_source.AbstractDataSource`, not {type(ds).__name__}"
            )
        if not ds.is_random_access:
            raise TypeError(f"ds must be random access; it is of type {type(ds).__name__}")
        if not isinstance(pool, TaskExecutor):
            raise TypeError(
                f"pool must be a WorkerThreadPool or WorkerProcessPool, not {type(pool).__name__}"
            )
        self._ds = ds
        self._batch_buffer_size = _check_buffer_size("batch_buffer_size", batch_buffer_size)
        self._batches_per_chunk = _check_chunk_size("batches_per_chunk", batches_per_chunk)
        self._timer = TaskTimer()
        self._pool = pool
        self._shared_ds = pool.shared_constant(ds)

    @property
    def source(self) -> AbstractDataSource:
        """The wrapped data source."""
        return self._ds

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self._ds.num_samples(**kwargs)

    def num_batches(
        self, batch_size: int, shuffle: Any = None, drop_last: bool = False, **kwargs: Any
    ) -> int | float | None:
        return self._ds.num_batches(batch_size, shuffle=shuffle, drop_last=drop_last, **kwargs)

    def batch_iterator(
        self, batch_size: int, shuffle: Any = None, drop_last: bool = False, **kwargs: Any
    ) -> WorkStreamIterator:
        """Start preparing batches now; return an iterator over them in order.

        As in batchup 0.2.3 the buffer starts filling when this is called, so the
        first ``batch_buffer_size`` index batches (and their random draws) are
        taken at once. ``close()`` the iterator, ``break`` and drop it, or let it
        be garbage collected to cancel the work still pending.

        Examples
        --------
        >>> import numpy as np
        >>> from batchup import data_source, work_pool
        >>> ds = data_source.ArrayDataSource([np.arange(5)]).map(lambda x: (x * 10,))
        >>> with work_pool.WorkerThreadPool(2) as pool:
        ...     par = pool.parallel_data_source(ds, batch_buffer_size=2)
        ...     [b[0].tolist() for b in par.batch_iterator(batch_size=2)]
        [[0, 10], [20, 30], [40]]
        """
        if drop_last is False:
            index_iter = self._ds.batch_indices_iterator(batch_size, shuffle=shuffle, **kwargs)
        else:
            index_iter = self._ds.batch_indices_iterator(
                batch_size, shuffle=shuffle, drop_last=drop_last, **kwargs
            )
        shared = self._shared_ds
        tasks = ((_fetch, (shared, index_batch)) for index_batch in index_iter)
        stream = WorkStream(
            self._pool,
            tasks,
            self._batch_buffer_size,
            self._batches_per_chunk,
            entropy=entropy_from_shuffle(shuffle),
            timer=self._timer,
        )
        return stream.retrieve_iter()

    def __repr__(self) -> str:
        return f"ParallelDataSource({self._ds!r}, {self._batch_buffer_size}, {self._pool!r})"

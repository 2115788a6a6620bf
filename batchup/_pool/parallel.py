"""A data source whose batches are fetched (and mapped) by a worker pool."""

from __future__ import annotations

from collections import deque
from typing import Any

from batchup._core.iteration import AheadPositions, check_state, make_fingerprint
from batchup._core.sources import (
    AbstractDataSource,
    accepted_kwargs,
    describe,
    stream_of,
)

from .executor import TaskExecutor
from .randomness import entropy_from_shuffle
from .stream import (
    TaskTimer,
    WorkStream,
    WorkStreamIterator,
    _check_buffer_size,
    _check_chunk_size,
)

__all__ = ["ParallelDataSource", "ParallelBatchIterator"]


def _fetch(ds: Any, item: Any) -> Any:
    """Worker side: the batch of one planned item.

    A source that can read a batch straight into given arrays
    (``_fetch_into``) fills the task's shared-memory slot, so the batch is
    copied once, from the data into the slot; otherwise ``ds._fetch_item``
    (which also sets the batch context for map functions).
    """
    fill = getattr(ds, "_fetch_into", None)
    if fill is not None:
        from . import shm  # worker side only: keeps mmap out of `import batchup.work_pool`

        if shm.current_task_slot() is not None:
            batch = fill(item, shm.result_arrays)
            if batch is not None:
                return batch
    return ds._fetch_item(item)


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
        self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
        shard: Any = None, state: dict | None = None, **kwargs: Any
    ) -> ParallelBatchIterator:
        """Start preparing batches now; return an iterator over them in order.

        Takes the arguments of the wrapped source's ``batch_iterator``. As in
        batchup 0.2.3 the buffer starts filling when this is called, so the
        first ``batch_buffer_size`` index batches (and their random draws) are
        taken at once. ``close()`` the iterator, ``break`` and drop it, or let it
        be garbage collected to cancel the work still pending.

        The iterator's ``get_state()`` is the *consumer's* position: batches
        prepared ahead but not yet returned are not counted, so a state saved
        here restores (in a pool or serially) to exactly the next batch.

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
        for name in ("threads", "prefetch"):
            if kwargs.get(name) is not None:
                raise TypeError(f"{name}= does not apply to a ParallelDataSource: its pool "
                                "prepares the batches (see batch_buffer_size)")
            kwargs.pop(name, None)
        ds = self._ds
        args = ds._iteration("batch_iterator", batch_size, shuffle, drop_last, shard, kwargs)
        rng = args[1]
        if self._gathers_in_threads():
            return self._prefetch(ds, args, kwargs, state)
        it = ParallelBatchIterator(
            self, ds._plan(*args, kwargs), make_fingerprint(describe(ds), *args),
            stream_of(rng), entropy_from_shuffle(rng) if rng is not None else None,
        )
        if state is not None:
            it.set_state(state)
        return it

    def _gathers_in_threads(self) -> bool:
        """Whether this is a thread pool over plain array gathers (an ``ArrayDataSource``
        with no map function, no fetch of its own)."""
        from batchup._core.sources import ArrayDataSource

        return (getattr(self._pool, "threads_in_this_process", False)
                and type(self._ds) is ArrayDataSource)

    def _prefetch(self, ds: Any, args: tuple, kwargs: dict, state: Any) -> Any:
        """A thread pool over plain gathers: the prefetching iterator of ``threads=``.

        A task per batch through the pool's executor costs more than the gather
        it runs (measured on 2 cores: 0.56x plain iteration over 1.5 MB batches),
        and two pool threads with a waiting caller are three busy threads on two
        cores. Plain gathers need no per-task randomness, so the batches are
        gathered as ``batch_iterator(threads=...)`` gathers them: the caller runs
        the plan and gathers a share while it waits, threads the rest. As with
        the pool, the buffer fills when the iterator is made (the first
        ``batch_buffer_size`` items, and their draws, are taken at once).
        """
        from batchup._core.prefetch import PrefetchIterator

        self._pool.check_open()
        self._pool.next_entropy()  # an iteration started on the pool, as in the task path
        it = PrefetchIterator(ds._plan(*args, kwargs), ds._fetch_item,
                              make_fingerprint(describe(ds), *args), stream_of(args[1]),
                              self._pool.processes, self._batch_buffer_size)
        if state is not None:
            it.set_state(state)
        it.start()
        return it

    def _accepted_kwargs(self) -> frozenset | None:
        return accepted_kwargs(self._ds)

    def __repr__(self) -> str:
        return f"ParallelDataSource({self._ds!r}, {self._batch_buffer_size}, {self._pool!r})"


def _tasks(plan: Any, positions: AheadPositions, shared: Any, queued: deque) -> Any:
    # No reference to the iterator: dropping it must free the stream at once
    # (cancelling its pending work), not at the next garbage collection.
    for item in plan:
        queued.append((item.step, positions.take()))
        yield (_fetch, (shared, item))


class ParallelBatchIterator:
    """Batches of a :class:`ParallelDataSource`, in order, with ``get_state``/``set_state``.

    The calling thread runs the index plan and submits one task per planned
    item; each item's plan position is queued beside its task, so the state
    returned by ``get_state`` is the position after the last batch *returned*.
    ``set_state`` cancels the prepared work, moves the plan and starts again.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from batchup import data_source, work_pool
    >>> ds = data_source.ArrayDataSource([np.arange(8)])
    >>> with work_pool.WorkerThreadPool(2) as pool:
    ...     par = pool.parallel_data_source(ds, batch_buffer_size=3)
    ...     it = par.batch_iterator(2, shuffle=5)
    ...     first = next(it)
    ...     state = json.loads(json.dumps(it.get_state()))
    ...     rest = [b[0].tolist() for b in it]
    ...     again = [b[0].tolist() for b in par.batch_iterator(2, shuffle=5, state=state)]
    >>> again == rest, it.next_step is None
    (True, True)
    """

    def __init__(self, owner: ParallelDataSource, plan: Any, fingerprint: dict, stream: Any,
                 entropy: tuple[int, ...] | None) -> None:
        self._owner = owner
        self._plan = plan
        self._entropy = entropy
        self._queued: deque = deque()
        self._positions = AheadPositions(plan, stream, fingerprint)
        self._stream: WorkStream | None = None
        self._work: WorkStreamIterator | None = None
        self._start(0)

    def _start(self, first_position: int) -> None:
        owner = self._owner
        self._queued.clear()
        tasks = _tasks(self._plan, self._positions, owner._shared_ds, self._queued)
        work = WorkStream(
            owner._pool, tasks, owner._batch_buffer_size, owner._batches_per_chunk,
            entropy=self._entropy, timer=owner._timer, first_position=first_position,
        )
        self._stream = work
        self._work = work.retrieve_iter()

    def __iter__(self) -> ParallelBatchIterator:
        return self

    def __next__(self) -> Any:
        if self._work is None:
            raise StopIteration
        batch = next(self._work)
        _, self._positions.last = self._queued.popleft()
        return batch

    @property
    def next_step(self) -> int | None:
        """The step (plan position) of the next batch to be returned, if one is prepared."""
        return self._queued[0][0] if self._queued else None

    def get_state(self) -> dict:
        """The consumer's position: a small JSON-serialisable dict (see ``BatchIterator``)."""
        return self._positions.state()

    def set_state(self, state: dict) -> None:
        """Cancel the prepared batches and continue from ``state``."""
        check_state(state)
        # The prepared work belongs to the old position: cancel it, then move.
        self.close()
        try:
            self._positions.restore(state)
        finally:
            self._start(self._positions.next_step() or 0)

    def num_batches(self) -> Any:
        """Batches a full iteration yields (``inf`` if endless, None if unknown)."""
        return self._plan.num_batches()

    def __reduce__(self) -> Any:
        raise TypeError("a ParallelBatchIterator cannot be pickled; save its position with "
                        "get_state() and pass it back as batch_iterator(..., state=state)")

    def close(self) -> None:
        """Cancel the work still pending. Idempotent."""
        work, self._work = self._work, None
        self._stream = None
        if work is not None:
            work.close()
        self._queued.clear()

    def __enter__(self) -> ParallelBatchIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

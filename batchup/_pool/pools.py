"""The base of the worker pools: what thread and process pools share.

:class:`AbstractWorkerPool` implements the
:class:`~batchup._pool.executor.TaskExecutor` protocol on top of a few
primitives its subclasses provide, and builds the objects users get from a
pool: :meth:`~AbstractWorkerPool.work_stream` and
:meth:`~AbstractWorkerPool.parallel_data_source`. The pools themselves live in
``threads`` (:class:`~batchup.work_pool.WorkerThreadPool`) and ``processes``
(:class:`~batchup.work_pool.WorkerProcessPool`, with the design note on a
process pool's lifecycle).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .cpu import resolve_processes
from .executor import Task, TaskHandle
from .parallel import ParallelDataSource
from .stream import WorkStream

__all__ = ["AbstractWorkerPool"]


def _check_seed(seed: object) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None or a non-negative int, not {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be None or a non-negative int, not {seed!r}")
    return int(seed)


class AbstractWorkerPool:
    """Base class of worker pools: streams of tasks and parallel data sources.

    Implements the :class:`~batchup._pool.executor.TaskExecutor` protocol that
    streams rely on; subclasses provide :meth:`shared_constant`, :meth:`close`,
    :attr:`closed` and either ``_submit`` (one task) or :meth:`submit_chunk`.

    Parameters
    ----------
    processes : int
        Number of workers; ``0`` means one per available CPU.
    seed : int or None
        Root of the per-task random streams of iterations that have no int
        ``shuffle`` seed (see :func:`batchup.work_pool.task_rng`). ``None``
        draws one from the OS.

    Examples
    --------
    >>> from batchup.work_pool import WorkerThreadPool
    >>> with WorkerThreadPool(2) as pool:
    ...     pool.work_stream([(abs, (-3,))]).retrieve()
    3
    """

    def __init__(self, processes: int = 1, seed: int | None = None) -> None:
        self.processes = resolve_processes(processes)
        self.seed = _check_seed(seed)
        self._iterations = 0
        self._counter_lock = threading.Lock()

    # -- to be provided by subclasses ------------------------------------
    def shared_constant(self, x: Any) -> Any:
        """Wrap a value that many tasks receive, so it is sent to workers once."""
        raise NotImplementedError

    def _submit(
        self, fn: Callable, args: tuple, kwargs: dict, entropy: tuple | None, position: int
    ) -> TaskHandle:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers; pending work is cancelled. Safe to call twice."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        raise NotImplementedError

    # -- the TaskExecutor protocol (see batchup._pool.executor) -------------
    def check_open(self) -> None:
        """Raise ``RuntimeError`` if the pool is closed.

        Examples
        --------
        >>> from batchup.work_pool import WorkerThreadPool
        >>> pool = WorkerThreadPool(); pool.close()
        >>> pool.check_open()
        Traceback (most recent call last):
        ...
        RuntimeError: WorkerThreadPool is closed; create a new pool
        """
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed; create a new pool")

    def max_auto_chunk(self, buffer_size: int) -> int:
        """Most tasks an automatic chunk may hold for a stream buffering ``buffer_size``."""
        return 1

    def next_entropy(self) -> tuple[int, int]:
        """``(seed, number of streams started so far)``: the root of a new stream's randomness.

        Examples
        --------
        >>> from batchup.work_pool import WorkerThreadPool
        >>> with WorkerThreadPool(seed=5) as pool:
        ...     pool.next_entropy(), pool.next_entropy()
        ((5, 0), (5, 1))
        """
        with self._counter_lock:
            n = self._iterations
            self._iterations += 1
        return (self.seed, n)

    def want_buffer(self, n: int) -> None:
        """A stream will keep ``n`` tasks in flight (process pools size their slots)."""

    def submit_chunk(
        self, chunk: list[Task], entropy: tuple[int, ...] | None, timer: Any
    ) -> list[TaskHandle]:
        """Submit consecutive tasks ``(fn, args, kwargs, position)``; one handle per task.

        Pools without inter-process costs submit them one by one; process pools
        send them to one worker as a single message.
        """
        return [self._submit(fn, args, kwargs, entropy, pos) for fn, args, kwargs, pos in chunk]

    # -- what users get from a pool ------------------------------------------
    def work_stream(
        self, task_generator: Any, task_buffer_size: int = 20, tasks_per_chunk: int | None = None
    ) -> WorkStream:
        """Run tasks on this pool, ``task_buffer_size`` ahead, results in task order.

        ``tasks_per_chunk`` (process pools): see :class:`~batchup.work_pool.WorkStream`.

        Examples
        --------
        >>> from batchup.work_pool import WorkerThreadPool
        >>> with WorkerThreadPool(2) as pool:
        ...     list(pool.work_stream([(pow, (2, k)) for k in range(4)]).retrieve_iter())
        [1, 2, 4, 8]
        """
        return WorkStream(
            self, task_generator, task_buffer_size=task_buffer_size, tasks_per_chunk=tasks_per_chunk
        )

    def parallel_data_source(
        self, ds: Any, batch_buffer_size: int = 20, batches_per_chunk: int | None = None
    ) -> ParallelDataSource:
        """Wrap a random-access data source so its batches are prepared by this pool.

        ``batches_per_chunk`` (process pools): how many consecutive batches a
        worker prepares per message; ``None`` chooses automatically (see
        :class:`~batchup.work_pool.ParallelDataSource`).

        Examples
        --------
        >>> from batchup import data_source
        >>> from batchup.work_pool import WorkerThreadPool
        >>> ds = data_source.ArrayDataSource([np.arange(5)])
        >>> with WorkerThreadPool(2) as pool:
        ...     par = pool.parallel_data_source(ds, batch_buffer_size=4)
        ...     [b[0].tolist() for b in par.batch_iterator(batch_size=2)]
        [[0, 1], [2, 3], [4]]
        """
        return ParallelDataSource(ds, batch_buffer_size, self, batches_per_chunk)

    def __enter__(self):  # noqa: ANN204 - returns the concrete subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The thread pool: tasks run on threads of the consumer process."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import attach_traceback
from .pools import AbstractWorkerPool

# The executor and the worker side are imported when a pool first needs them:
# ``import batchup.work_pool`` must stay cheap.
if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["WorkerThreadPool"]


class _ThreadPending:
    """The handle of one task on a thread (a :class:`~batchup._pool.executor.TaskHandle`)."""

    __slots__ = ("future",)

    def __init__(self, future: Future) -> None:
        self.future = future

    def result(self) -> Any:
        from concurrent.futures import CancelledError

        try:
            return self.future.result()
        except CancelledError:
            raise RuntimeError("the pool was closed before this task ran") from None
        except Exception as exc:
            import traceback

            attach_traceback(
                exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            )
            raise

    def cancel(self) -> None:
        self.future.cancel()


def _shutdown_threads(executor: Any) -> None:
    executor.shutdown(wait=False, cancel_futures=True)


class WorkerThreadPool(AbstractWorkerPool):
    """A pool of worker threads, for work that releases the GIL (NumPy, I/O).

    Parameters
    ----------
    processes : int
        Number of threads (the name is batchup 0.2.3's); ``0`` means one per
        available CPU.
    seed : int or None
        Root of the per-task random streams (see
        :func:`batchup.work_pool.task_rng`).

    Notes
    -----
    Threads share NumPy's global legacy generator, so ``np.random.*`` calls in
    tasks are not reproducible; ``task_rng()`` is. ``shared_constant`` returns
    its argument: threads share memory already.

    Examples
    --------
    >>> with WorkerThreadPool(processes=2) as pool:
    ...     stream = pool.work_stream([(sorted, ([3, 1, 2],))])
    ...     stream.retrieve()
    [1, 2, 3]
    """

    #: Its workers are threads of this process (``ParallelDataSource`` then
    #: gathers plain arrays with ``batch_iterator(threads=...)``'s machinery).
    threads_in_this_process = True

    def __init__(self, processes: int = 1, seed: int | None = None) -> None:
        super().__init__(processes, seed)
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(
            max_workers=self.processes, thread_name_prefix="batchup-worker"
        )
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown_threads, self._executor)

    def shared_constant(self, x: Any) -> Any:
        """Return ``x`` unchanged: threads share the consumer's memory.

        Examples
        --------
        >>> with WorkerThreadPool() as pool:
        ...     pool.shared_constant([1, 2])
        [1, 2]
        """
        return x

    def _submit(
        self, fn: Callable, args: tuple, kwargs: dict, entropy: tuple | None, position: int
    ) -> _ThreadPending:
        from .worker import run_in_thread

        self.check_open()
        return _ThreadPending(
            self._executor.submit(run_in_thread, fn, args, kwargs, entropy, position)
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Cancel queued tasks and wait for running ones (threads cannot be killed).

        Examples
        --------
        >>> pool = WorkerThreadPool(2)
        >>> pool.close(); pool.close()
        >>> pool.closed
        True
        """
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"WorkerThreadPool(processes={self.processes}, {state})"

"""Ordered, buffered streams of tasks run by a worker pool.

A stream needs only the :class:`~batchup._pool.executor.TaskExecutor` protocol
of its pool (see the design note in :mod:`batchup._pool.executor`).
"""

from __future__ import annotations

import math
import numbers
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .executor import TaskExecutor

__all__ = ["WorkStream", "WorkStreamIterator"]


def _check_buffer_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return int(value)


def _check_chunk_size(name: str, value: object) -> int | None:
    if value is None:
        return None
    return _check_buffer_size(name, value)


#: An automatic chunk aims to keep a worker busy this long (seconds) per message.
CHUNK_SECONDS = 0.01


class TaskTimer:
    """Running estimate of the seconds a worker spends per task, fed by finished chunks.

    A :class:`~batchup.work_pool.ParallelDataSource` keeps one across its
    iterations, so an epoch starts with the chunk size the last one settled on.

    Examples
    --------
    >>> t = TaskTimer()
    >>> t.record(0.03, 3); round(t.per_task, 3)
    0.01
    """

    __slots__ = ("per_task",)

    def __init__(self) -> None:
        self.per_task: float | None = None

    def record(self, seconds: float, tasks: int) -> None:
        x = seconds / max(tasks, 1)
        self.per_task = x if self.per_task is None else 0.75 * self.per_task + 0.25 * x


def _as_iterator(task_generator: Any) -> Iterator:
    if isinstance(task_generator, Iterator):
        return task_generator
    if callable(task_generator):
        # A generator function (0.2.3's documentation promised this).
        produced = task_generator()
        try:
            return iter(produced)
        except TypeError:
            raise TypeError(
                "task_generator is callable but did not return an iterable of tasks; "
                f"it returned {type(produced).__name__}"
            ) from None
    try:
        return iter(task_generator)
    except TypeError:
        raise TypeError(
            "task_generator must be an iterator, an iterable or a generator function "
            f"yielding tasks, not {type(task_generator).__name__}"
        ) from None


def _unpack(task: Any, position: int) -> tuple[Callable, tuple, dict]:
    if not isinstance(task, tuple) or not 1 <= len(task) <= 3:
        raise TypeError(
            f"task {position} must be a tuple (fn,), (fn, args) or (fn, args, kwargs), not {task!r}"
        )
    fn = task[0]
    if not callable(fn):
        raise TypeError(f"task {position}: the first item must be callable, not {fn!r}")
    args = task[1] if len(task) > 1 else ()
    kwargs = task[2] if len(task) > 2 else {}
    if isinstance(args, list):
        args = tuple(args)
    if not isinstance(args, tuple):
        raise TypeError(f"task {position}: args must be a tuple (or list), not {args!r}")
    if not isinstance(kwargs, dict):
        raise TypeError(f"task {position}: kwargs must be a dict, not {kwargs!r}")
    return fn, args, kwargs


def _cancel_all(pending: deque) -> None:
    while pending:
        try:
            pending.popleft().cancel()
        except Exception:  # pragma: no cover - interpreter shutting down
            pass


class WorkStream:
    """Tasks run by a pool, ``task_buffer_size`` ahead of the consumer, results in task order.

    Parameters
    ----------
    worker_pool : WorkerThreadPool or WorkerProcessPool
        The pool that runs the tasks (any
        :class:`~batchup._pool.executor.TaskExecutor`).
    task_generator : iterator, iterable or generator function
        Yields tasks ``(fn,)``, ``(fn, args)`` or ``(fn, args, kwargs)``.
    task_buffer_size : int
        How many tasks are kept submitted ahead of the consumer.
    tasks_per_chunk : int or None
        Process pools send this many consecutive tasks to a worker in one
        message (fewer messages, less work for the consumer). ``None`` (the
        default) chooses automatically: one task per message until the workers
        have timed a few, then enough tasks to keep a worker busy about 10 ms,
        at most ``task_buffer_size // (2 * processes)``, so that tasks that take
        long are never grouped. Each task keeps its own position, random stream
        and result; results still come one task at a time, in order. Thread
        pools ignore it.

    Notes
    -----
    The stream pulls and submits tasks in the calling thread: at construction
    (filling the buffer) and after each result is taken. Task ``k`` gets its own
    random stream (see :func:`batchup.work_pool.task_rng`). Abandoning the
    stream (``close()``, ``break`` out of :meth:`retrieve_iter`, garbage
    collection) cancels the tasks that have not started. An exception raised
    by a task is raised by the retrieval of that task's result, with the
    worker's traceback attached, and ends the stream.

    Examples
    --------
    >>> from batchup.work_pool import WorkerThreadPool
    >>> with WorkerThreadPool(2) as pool:
    ...     stream = WorkStream(pool, [(len, ("abc",)), (max, (1, 5)), (dict, (), {"a": 1})])
    ...     stream.retrieve(), stream.retrieve(), stream.retrieve(), stream.retrieve()
    (3, 5, {'a': 1}, None)
    """

    def __init__(
        self,
        worker_pool: Any,
        task_generator: Any,
        task_buffer_size: int = 20,
        tasks_per_chunk: int | None = None,
        *,
        entropy: tuple[int, ...] | None = None,
        timer: TaskTimer | None = None,
        first_position: int = 0,
    ) -> None:
        if not isinstance(worker_pool, TaskExecutor):
            raise TypeError(
                f"worker_pool must be a WorkerThreadPool or WorkerProcessPool, "
                f"not {type(worker_pool).__name__}"
            )
        self._buffer_size = _check_buffer_size("task_buffer_size", task_buffer_size)
        chunk = _check_chunk_size("tasks_per_chunk", tasks_per_chunk)
        self._fixed_chunk = None if chunk is None else min(chunk, self._buffer_size)
        self._timer = timer if timer is not None else TaskTimer()
        self._auto_cap = worker_pool.max_auto_chunk(self._buffer_size)
        worker_pool.check_open()
        self._pool: TaskExecutor = worker_pool
        self._tasks: Iterator | None = _as_iterator(task_generator)
        self._entropy = entropy if entropy is not None else worker_pool.next_entropy()
        # Task positions key the per-task random streams; a resumed iteration
        # continues the numbering where the interrupted one was.
        self._position = first_position
        self._pending: deque = deque()
        self._finalizer = weakref.finalize(self, _cancel_all, self._pending)
        worker_pool.want_buffer(self._buffer_size)
        self._fill()

    @property
    def entropy(self) -> tuple[int, ...]:
        """Root of this stream's per-task random streams."""
        return self._entropy

    def _chunk_size(self) -> int:
        if self._fixed_chunk is not None:
            return self._fixed_chunk
        per_task = self._timer.per_task
        if self._auto_cap <= 1 or per_task is None:
            return 1
        return max(1, min(self._auto_cap, math.ceil(CHUNK_SECONDS / max(per_task, 1e-6))))

    def _fill(self) -> None:
        while self._tasks is not None:
            size = self._chunk_size()
            if self._buffer_size - len(self._pending) < size:
                break
            chunk = []
            while len(chunk) < size:
                try:
                    task = next(self._tasks)
                except StopIteration:
                    self._tasks = None
                    break
                except BaseException:
                    self.close()
                    raise
                position = self._position + len(chunk)
                try:
                    fn, args, kwargs = _unpack(task, position)
                except BaseException:
                    self.close()
                    raise
                chunk.append((fn, args, kwargs, position))
            if not chunk:
                break
            try:
                handles = self._pool.submit_chunk(chunk, self._entropy, self._timer)
            except BaseException:
                self.close()
                raise
            self._pending.extend(handles)
            self._position += len(chunk)

    def _next(self) -> Any:
        """Next result; raises ``StopIteration`` when the stream is done."""
        if not self._pending:
            raise StopIteration
        handle = self._pending.popleft()
        try:
            value = handle.result()
        except BaseException:
            # One failure ends this iteration (not the pool); Ctrl-C lands here too.
            self.close()
            raise
        self._fill()
        return value

    def retrieve(self) -> Any:
        """The next result in task order, or ``None`` when no task is left.

        Examples
        --------
        >>> from batchup.work_pool import WorkerThreadPool
        >>> with WorkerThreadPool() as pool:
        ...     WorkStream(pool, iter([(abs, (-1,))])).retrieve()
        1
        """
        try:
            return self._next()
        except StopIteration:
            return None

    def retrieve_iter(self) -> WorkStreamIterator:
        """An iterator over the remaining results, in task order.

        Examples
        --------
        >>> from batchup.work_pool import WorkerThreadPool
        >>> def tasks():
        ...     for k in range(3):
        ...         yield (abs, (-k,))
        >>> with WorkerThreadPool(2) as pool:
        ...     list(WorkStream(pool, tasks).retrieve_iter())
        [0, 1, 2]
        """
        return WorkStreamIterator(self)

    def close(self) -> None:
        """Cancel the tasks not started yet and stop pulling new ones. Idempotent."""
        self._tasks = None
        self._finalizer()

    def __enter__(self) -> WorkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkStreamIterator:
    """Iterator over a :class:`WorkStream`'s results; ``close()`` or dropping it cancels the rest.

    Examples
    --------
    >>> from batchup.work_pool import WorkerThreadPool
    >>> with WorkerThreadPool() as pool:
    ...     it = pool.work_stream([(abs, (-k,)) for k in range(100)]).retrieve_iter()
    ...     next(it), next(it)
    ...     it.close()
    (0, 1)
    """

    __slots__ = ("_stream", "__weakref__")

    def __init__(self, stream: WorkStream) -> None:
        self._stream: WorkStream | None = stream

    def __iter__(self) -> WorkStreamIterator:
        return self

    def __next__(self) -> Any:
        if self._stream is None:
            raise StopIteration
        try:
            return self._stream._next()
        except StopIteration:
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancel pending work of the underlying stream. Idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __enter__(self) -> WorkStreamIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""What a work stream needs from the pool that runs its tasks: the :class:`TaskExecutor` protocol.

:class:`~batchup.work_pool.WorkStream` (and through it
:class:`~batchup.work_pool.ParallelDataSource`) depends on this module only,
never on the pools; :class:`~batchup.work_pool.WorkerThreadPool` and
:class:`~batchup.work_pool.WorkerProcessPool` implement the protocol.

Design note: who calls what, in which thread
--------------------------------------------
::

    consumer thread (builds and reads the stream)          executor (a pool)
    ---------------------------------------------          -----------------
    WorkStream(...)      ── max_auto_chunk(buffer_size) ──>  cap on automatic chunks
                         ── check_open() ─────────────────>  raises if closed
                         ── next_entropy()  (none given) ─>  root of the random streams
                         ── want_buffer(buffer_size) ─────>  get ready for that many tasks
                         ── submit_chunk(...)  (fill) ────>  workers run the tasks
    next() / retrieve()  ── handle.result()  (oldest) ────>  wait; value or exception
                         ── submit_chunk(...)  (refill) ──>
    close(), break, gc   ── handle.cancel()  (pending) ───>  drop what has not started

    ParallelDataSource(ds, ..., pool) ── shared_constant(ds)  (once)

* Everything above runs in the thread that builds and reads the stream, with
  one exception: ``handle.cancel()`` also runs from the stream's
  ``weakref.finalize``, i.e. in whichever thread garbage collects an abandoned
  stream, or at interpreter exit.
* The stream never holds more than ``buffer_size`` handles whose result it has
  not taken, asks for each handle's ``result()`` at most once and in task
  order, and never cancels a handle whose result it took (nor takes the result
  of one it cancelled).
* Several streams may use one executor at the same time, from one thread or
  several: ``next_entropy`` and ``submit_chunk`` must be thread-safe.
* The tasks themselves run in the executor's workers (threads or processes),
  each inside :func:`~batchup._pool.randomness.task_scope` for its stream's
  entropy and its position, so that :func:`~batchup.work_pool.task_rng`
  depends on (entropy, position) only.

Examples
--------
A minimal executor that runs every task at once, in the consumer thread:

>>> from batchup._pool.randomness import task_scope
>>> from batchup.work_pool import WorkStream
>>> class Ran:
...     '''Handle of a task that already ran: its value, or what it raised.'''
...     def __init__(self, fn, args, kwargs):
...         try:
...             self.value, self.error = fn(*args, **kwargs), None
...         except Exception as exc:
...             self.value, self.error = None, exc
...     def result(self):
...         if self.error is not None:
...             raise self.error
...         return self.value
...     def cancel(self):
...         pass
>>> class InlineExecutor:
...     def check_open(self):
...         pass
...     def max_auto_chunk(self, buffer_size):
...         return 1
...     def next_entropy(self):
...         return (0, 0)
...     def want_buffer(self, n):
...         pass
...     def submit_chunk(self, chunk, entropy, timer):
...         handles = []
...         for fn, args, kwargs, position in chunk:
...             with task_scope(entropy, position, seed_legacy=False):
...                 handles.append(Ran(fn, args, kwargs))
...         return handles
...     def shared_constant(self, x):
...         return x
>>> isinstance(InlineExecutor(), TaskExecutor)
True
>>> list(WorkStream(InlineExecutor(), [(pow, (2, k)) for k in range(4)]).retrieve_iter())
[1, 2, 4, 8]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["TaskExecutor", "TaskHandle", "Task"]

#: One task of a chunk: ``(fn, args, kwargs, position)``.
Task = tuple[Callable[..., Any], tuple, dict, int]


@runtime_checkable
class TaskHandle(Protocol):
    """The handle of one submitted task, as returned by :meth:`TaskExecutor.submit_chunk`."""

    def result(self) -> Any:
        """Wait for the task to finish; return its value or raise its failure.

        Called at most once per handle, in the consumer thread, in task order,
        never after :meth:`cancel`. Blocks until the task has run. What it
        raises ends the stream (which then cancels its other handles):

        * the exception the task raised, with the worker's traceback attached
          (see :func:`batchup._pool.errors.attach_traceback`);
        * :class:`~batchup.work_pool.WorkerCrashedError` if the worker running
          the task died;
        * ``RuntimeError`` if the task did not run because the executor was
          closed;
        * ``KeyboardInterrupt`` may interrupt the wait.

        An executor may also feed the ``timer`` given to :meth:`TaskExecutor.submit_chunk`
        from here (this is the consumer thread, the only one that touches it).
        Whatever resources the task held that its value does not carry away
        (a process pool's batch slot) are released when this returns or raises.
        """
        ...

    def cancel(self) -> None:
        """Give up the task: drop it if it has not started; otherwise discard its result.

        Called at most once per handle, for handles whose result was not taken,
        from any thread (the stream's finalizer runs wherever the stream is
        garbage collected, or at interpreter exit). Must not block on the task
        and should not raise. A task already running finishes; the resources
        it holds are released when it does.
        """
        ...


@runtime_checkable
class TaskExecutor(Protocol):
    """What a :class:`~batchup.work_pool.WorkStream` requires of the pool that runs its tasks.

    Implemented by :class:`~batchup.work_pool.WorkerThreadPool` and
    :class:`~batchup.work_pool.WorkerProcessPool`. The stream checks
    ``isinstance(pool, TaskExecutor)`` (which only checks that the methods
    exist) and then relies on exactly what the method docstrings below say.
    See the module's design note for who calls what, and from which thread.
    """

    def check_open(self) -> None:
        """Raise ``RuntimeError`` if the executor is closed and so refuses new work.

        Called once by every new stream, before it pulls its first task, so
        that a closed pool fails early and with a clear message (the pools say
        ``"<class> is closed; create a new pool"``). Has no other effect.
        """
        ...

    def max_auto_chunk(self, buffer_size: int) -> int:
        """The most tasks an automatic chunk may hold, for a stream buffering ``buffer_size``.

        Called once by every new stream, first of all (the executor may be
        closed already: this only computes a number, it starts nothing).
        Returns an int >= 1; ``1`` means the stream never groups tasks on its
        own (thread pools: a task costs no message). A stream given an
        explicit ``tasks_per_chunk`` ignores the value.
        """
        ...

    def next_entropy(self) -> tuple[int, ...]:
        """A fresh root for the per-task random streams of one stream.

        Called once by a new stream, and only when it was not given an
        ``entropy`` (no int ``shuffle`` seed). Returns a tuple of non-negative
        ints, different on every call, including concurrent calls from
        several threads. Must not draw from the user's ``shuffle`` RNG; the
        pools return ``(seed, number of streams started so far)``.
        """
        ...

    def want_buffer(self, n: int) -> None:
        """Prepare for a stream that will keep up to ``n`` tasks in flight.

        Called once by every new stream, after :meth:`check_open` and before
        its first :meth:`submit_chunk`, with the stream's buffer size: the
        stream never holds more than ``n`` handles whose result it has not
        taken. A hint: process pools start their workers' resources here and
        keep enough batch slots for ``n`` tasks; thread pools do nothing. May
        raise ``RuntimeError`` if the executor is closed.
        """
        ...

    def submit_chunk(
        self, chunk: list[Task], entropy: tuple[int, ...] | None, timer: Any
    ) -> Sequence[TaskHandle]:
        """Start consecutive tasks of one stream; return one handle per task, in order.

        Parameters
        ----------
        chunk : list of (fn, args, kwargs, position)
            At least one task; ``args`` is a tuple, ``kwargs`` a dict and the
            positions are consecutive (task ``position`` of its stream). The
            executor may send the whole chunk to one worker as one message,
            but each task keeps its own random stream, result and handle.
        entropy : tuple of int or None
            The stream's entropy (the stream always passes one). Every task
            runs ``fn(*args, **kwargs)`` inside
            ``task_scope(entropy, position, ...)``.
        timer : TaskTimer or None
            An object with ``record(seconds, tasks)``; the executor may report
            how long its workers spent per chunk, but only from
            :meth:`TaskHandle.result` (the consumer thread). Thread pools do not.

        Returns
        -------
        sequence of TaskHandle
            ``len(chunk)`` handles, in the order of ``chunk``.

        Raises
        ------
        RuntimeError
            The executor is closed. Whatever it raises ends the stream; the
            executor first releases what it acquired for the chunk (process
            pools: its batch slots).
        """
        ...

    def shared_constant(self, x: Any) -> Any:
        """Wrap a value that many tasks receive as an argument, so it reaches workers once.

        Not used by the stream: :class:`~batchup.work_pool.ParallelDataSource`
        calls it once, at construction, for the data source its tasks read.
        A task given the returned object as an argument (or keyword argument)
        receives ``x`` in the worker. Thread pools return ``x`` itself.
        """
        ...

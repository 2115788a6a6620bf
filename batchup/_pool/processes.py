"""The process pool: tasks run in loky worker processes, batches come back in shared memory.

Design note: lifecycle of a process pool
----------------------------------------
::

    consumer process                               worker processes (loky)
    ----------------                               -----------------------
    WorkerProcessPool ──owns──> _ProcessState
                                 ├─ loky ProcessPoolExecutor ──> N workers
                                 ├─ ShmFolder (/dev/shm/batchup-*)  <── mapped by workers
                                 └─ SlotRing (free batch slots)
    WorkStream ──submits──> executor; holds the pending futures in task order

* Nothing starts until the first task: constructing a pool only validates.
  The first submit creates the folder and the executor; loky starts the
  workers with the chosen start method and runs ``init_process_worker``.
* ``close()`` (also ``__exit__``) cancels what has not started, kills the
  workers (they hold nothing worth waiting for: results of an abandoned
  iteration are dropped anyway), joins loky's manager thread and removes the
  folder. It is idempotent; a closed pool refuses new work.
* A pool that is garbage collected without ``close()`` is closed by a
  ``weakref.finalize``; one still alive at interpreter exit is closed by a
  hook that runs before loky's own exit hook (which would otherwise wait for
  queued tasks to finish). The folder is also registered with loky's
  resource tracker, which deletes it if the consumer is killed; the workers
  notice their parent is gone and exit.
* A worker that dies breaks loky's executor: every pending future fails with
  ``TerminatedWorkerError``, which the stream reports as
  :class:`WorkerCrashedError`. The next submit sees the broken executor and
  replaces it, so one crash ends one iteration, not the pool.
* An abandoned stream (``break``, ``del``, garbage collection) cancels its
  pending futures; a task already running finishes and its slot goes back to
  the ring when its future completes.
* Chunks: a stream may send several consecutive tasks to a worker as one loky
  task (``run_chunk_in_process``): one submit, one pickled call, one result
  message and a handful of thread switches in the consumer for the lot,
  instead of per task -- on a 2-core machine every millisecond the consumer
  spends there is taken from the workers. Each task of a chunk keeps its own
  slot, position (hence random stream) and handle; handles share the chunk's
  future. The first task that raises ends the chunk (its stream ends there
  anyway); a worker that dies fails the whole chunk, like every other pending
  task. Cancelling works per chunk: a chunk not yet handed to a worker is
  cancelled as a whole, and each of its tasks gives its slot back.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import WorkerCrashedError
from .executor import Task
from .pools import AbstractWorkerPool

# Executors, shared memory and the worker side are imported when a pool first
# needs them: ``import batchup.work_pool`` must stay cheap.
if TYPE_CHECKING:
    from . import shm

__all__ = ["WorkerProcessPool", "SharedConstant"]

START_METHODS = ("loky", "spawn", "forkserver", "fork")


class SharedConstant:
    """A value sent to a process pool's workers once, then passed to tasks by reference.

    Returned by :meth:`WorkerProcessPool.shared_constant`; use it as a task
    argument and the task receives ``value``. Large NumPy arrays inside the
    value are placed in shared memory, mapped (not copied) by every worker.

    Examples
    --------
    >>> import numpy as np
    >>> c = SharedConstant(np.zeros(3), None)
    >>> c.value.shape
    (3,)
    """

    def __init__(self, value: Any, pool: WorkerProcessPool | None) -> None:
        self.value = value
        self._pool = weakref.ref(pool) if pool is not None else None
        self._ref: shm.ConstantRef | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def _reference(self, state: _ProcessState) -> shm.ConstantRef:
        from . import shm

        with self._lock:
            if self._ref is None or self._ref.path not in state.constants:
                ref = shm.dump_constant(self.value, state.folder)
                state.constants.add(ref.path)
                if self._finalizer is not None:
                    self._finalizer()
                # The file goes when the handle does, so workers' caches drain.
                self._finalizer = weakref.finalize(self, state.forget_constant, ref.path)
                self._ref = ref
            return self._ref

    def __repr__(self) -> str:
        return f"SharedConstant({type(self.value).__name__})"


class _ProcessState:
    """Everything a process pool owns, kept apart so finalizers never hold the pool."""

    def __init__(self, processes: int, start_method: str) -> None:
        self.processes = processes
        self.start_method = start_method
        self.lock = threading.RLock()
        self.executor: Any = None
        self.folder: shm.ShmFolder | None = None
        self.ring: shm.SlotRing | None = None
        self.constants: set[str] = set()
        self.closed = False

    def ensure(self) -> Any:
        with self.lock:
            if self.closed:
                raise RuntimeError("WorkerProcessPool is closed; create a new pool")
            from . import shm

            if self.folder is None:
                self.folder = shm.ShmFolder()
                self.ring = shm.SlotRing(self.folder, max_idle=self.processes + 8)
            if self.executor is None or _is_broken(self.executor):
                if self.executor is not None:
                    _stop_executor(self.executor)
                self.executor = _make_executor(self.processes, self.start_method)
                _LIVE.add(self)
            return self.executor

    def forget_constant(self, path: str) -> None:
        with self.lock:
            self.constants.discard(path)
        try:
            os.unlink(path)
        except OSError:
            pass

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            executor, self.executor = self.executor, None
        _LIVE.discard(self)
        if executor is not None:
            try:
                _stop_executor(executor)
            except Exception:  # pragma: no cover - interpreter shutting down
                pass
        if self.ring is not None:
            self.ring.close()
        if self.folder is not None:
            self.folder.close()

    def worker_pids(self) -> list[int]:
        with self.lock:
            ex = self.executor
            if ex is None:
                return []
            return [p.pid for p in list(getattr(ex, "_processes", {}).values())]


def _stop_executor(executor: Any) -> None:
    """Stop loky's executor now, whatever its workers are doing.

    ``shutdown(kill_workers=True)`` races with loky's manager thread when
    cancelled futures are still queued (KeyError in the manager). Instead we
    flag the shutdown, SIGKILL the workers ourselves -- which sends loky down
    its well-trodden "broken pool" path: fail what is pending, reap the
    workers, close the queues -- and join the manager thread.
    """
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False)
    for process in processes:
        # os.kill rather than process.kill(): not every loky launcher's process
        # object implements kill(), and a silent no-op here delays close().
        try:
            os.kill(process.pid, signal.SIGKILL)
        except (OSError, TypeError):  # already gone, or never started
            pass
    executor.shutdown(wait=True)


def _is_broken(executor: Any) -> bool:
    flags = getattr(executor, "_flags", None)
    return bool(flags is not None and (flags.broken or flags.shutdown))


def _make_executor(processes: int, start_method: str) -> Any:
    import warnings

    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.backend.context import get_context

    with warnings.catch_warnings():
        # loky warns against 'fork'; a user who asks for it explicitly has
        # been told the caveats in our docs.
        warnings.simplefilter("ignore", UserWarning)
        context = get_context(start_method)
    from .worker import init_process_worker

    executor = ProcessPoolExecutor(
        max_workers=processes,
        context=context,
        initializer=init_process_worker,
        initargs=(os.getpid(),),
    )
    return executor


# Pools alive at interpreter exit. Our exit hook must run before loky's, which
# joins its manager threads and so would wait for every queued task.
_LIVE: weakref.WeakSet[_ProcessState] = weakref.WeakSet()
_exit_hook_installed = False
_exit_hook_lock = threading.Lock()


def _close_all_at_exit() -> None:
    for state in list(_LIVE):
        state.close()


def _install_exit_hook() -> None:
    global _exit_hook_installed
    with _exit_hook_lock:
        if _exit_hook_installed:
            return
        from joblib.externals.loky import process_executor

        if process_executor.process_pool_executor_at_exit is None:
            return  # loky registers its hook on the first submit; try again then
        register = getattr(threading, "_register_atexit", None)
        if register is None:  # pragma: no cover - very old or exotic Python
            import atexit

            atexit.register(_close_all_at_exit)
        else:
            # threading runs these in reverse order of registration: ours, then loky's.
            register(_close_all_at_exit)
        _exit_hook_installed = True


def _tolerate_late_exceptions(future: Any) -> None:
    """Let loky fail a future we already cancelled.

    When an executor is shut down with ``kill_workers=True``, loky's manager
    thread calls ``set_exception`` on every pending future, and a future we had
    cancelled (abandoned iteration) raises ``InvalidStateError`` there, which
    kills the manager thread before it reaps the workers.
    """
    from concurrent.futures import InvalidStateError

    original = future.set_exception

    def set_exception(exc: BaseException) -> None:
        try:
            original(exc)
        except InvalidStateError:
            pass

    future.set_exception = set_exception


class _Lazy:
    """Names a process pool needs per task, imported on first use (not at import time)."""

    def __init__(self) -> None:
        from concurrent.futures import CancelledError

        from joblib.externals.loky.process_executor import (
            BrokenProcessPool,
            ShutdownExecutorError,
        )

        from .errors import TaskFailure, rebuild
        from .shm import decode_result
        from .worker import run_chunk_in_process

        self.CancelledError = CancelledError
        self.BrokenProcessPool = BrokenProcessPool
        self.ShutdownExecutorError = ShutdownExecutorError
        self.TaskFailure = TaskFailure
        self.rebuild = rebuild
        self.decode_result = decode_result
        self.run_chunk_in_process = run_chunk_in_process


_lazy_names: _Lazy | None = None


def _lazy() -> _Lazy:
    global _lazy_names
    if _lazy_names is None:
        _lazy_names = _Lazy()
    return _lazy_names


class _Chunk:
    """One message to a worker: consecutive tasks of a stream, and what they keep alive."""

    __slots__ = ("future", "timer", "keepalive")

    def __init__(self, future: Any, timer: Any, keepalive: tuple) -> None:
        self.future, self.timer = future, timer
        # The tasks' shared constants: their files must outlive the tasks even if
        # the user dropped the data source that made them.
        self.keepalive = keepalive


class _ProcessPending:
    """The handle of one task of a chunk: its own slot, its own result or failure.

    A :class:`~batchup._pool.executor.TaskHandle`; the handles of one chunk share its future.
    """

    __slots__ = ("chunk", "index", "slot", "ring", "position")

    def __init__(
        self, chunk: _Chunk, index: int, slot: shm.Slot, ring: shm.SlotRing, position: int
    ) -> None:
        self.chunk, self.index, self.position = chunk, index, position
        self.slot, self.ring = slot, ring

    @property
    def future(self) -> Any:
        return self.chunk.future

    def result(self) -> Any:
        lazy = _lazy()
        try:
            encoded, seconds = self.chunk.future.result()
        except lazy.BrokenProcessPool as exc:
            self.ring.release(self.slot)
            raise WorkerCrashedError(
                f"a worker process died while the pool was running task {self.position} "
                f"(killed, crashed or out of memory); the pool starts new workers on its "
                f"next use. Cause: {exc}"
            ) from exc
        except (lazy.CancelledError, lazy.ShutdownExecutorError) as exc:
            self.ring.release(self.slot)
            raise RuntimeError(
                f"task {self.position} did not run: the pool was closed ({exc!r})"
            ) from exc
        except BaseException:
            # e.g. the task or its result could not be pickled: loky's own error.
            self.ring.release(self.slot)
            raise
        if self.index == 0 and self.chunk.timer is not None and encoded:
            self.chunk.timer.record(seconds, len(encoded))
        if self.index >= len(encoded):  # pragma: no cover - the stream stops at the failure
            self.ring.release(self.slot)
            raise RuntimeError(f"task {self.position} did not run: an earlier task failed")
        item = encoded[self.index]
        if type(item) is lazy.TaskFailure:
            self.ring.release(self.slot)
            raise lazy.rebuild(item)
        return lazy.decode_result(item, self.ring, self.slot)

    def cancel(self) -> None:
        if not self.chunk.future.cancel():
            # Running or done: the slot comes back when the worker is finished with it.
            ring, slot = self.ring, self.slot
            self.chunk.future.add_done_callback(lambda _f: ring.release(slot))
        else:
            self.ring.release(self.slot)


class WorkerProcessPool(AbstractWorkerPool):
    """A pool of worker processes, for work that holds the GIL (Python loops).

    Built on loky's process executor (bundled with joblib): tasks and results
    are pickled with cloudpickle, so lambdas and functions defined in
    ``__main__`` or a notebook work, and a worker that dies is detected at once
    instead of hanging the consumer. Batch arrays come back through shared
    memory (see :mod:`batchup._pool.shm`).

    Parameters
    ----------
    processes : int
        Number of worker processes; ``0`` means one per available CPU
        (affinity and container quota aware).
    seed : int or None
        Root of the per-task random streams (see
        :func:`batchup.work_pool.task_rng`).
    start_method : {'loky', 'spawn', 'forkserver', 'fork'} or None
        How workers are started. ``None`` means ``'loky'`` (a fresh
        interpreter, like ``'spawn'`` but faster to start).

    Examples
    --------
    >>> with WorkerProcessPool(processes=2) as pool:
    ...     list(pool.work_stream([(lambda k: k * k, (k,)) for k in range(4)]).retrieve_iter())
    [0, 1, 4, 9]
    """

    def __init__(
        self, processes: int = 1, seed: int | None = None, start_method: str | None = None
    ) -> None:
        super().__init__(processes, seed)
        if start_method is None:
            start_method = "loky"
        if start_method not in START_METHODS:
            raise ValueError(
                f"start_method must be None or one of {START_METHODS}, not {start_method!r}"
            )
        self.start_method = start_method
        self._state = _ProcessState(self.processes, start_method)
        self._finalizer = weakref.finalize(self, self._state.close)

    def shared_constant(self, x: Any) -> SharedConstant:
        """Wrap ``x`` so it is sent to each worker once, with large arrays in shared memory.

        Examples
        --------
        >>> import numpy as np
        >>> with WorkerProcessPool() as pool:
        ...     big = pool.shared_constant(np.arange(100_000))
        ...     int(pool.work_stream([(np.sum, (big,))]).retrieve())
        4999950000
        """
        return SharedConstant(x, self)

    def _resolve(self, x: Any, state: _ProcessState) -> Any:
        if type(x) is SharedConstant:
            owner = x._pool() if x._pool is not None else None
            return x._reference(state) if owner is self else x.value
        return x

    # -- the TaskExecutor protocol (see batchup._pool.executor) -------------
    def want_buffer(self, n: int) -> None:
        """Start the shared memory (and workers) and keep slots for ``n`` tasks in flight."""
        state = self._state
        state.ensure()
        assert state.ring is not None
        state.ring.want_idle(n + self.processes + 2)

    def max_auto_chunk(self, buffer_size: int) -> int:
        """``buffer_size // (2 * processes)``, at least 1.

        Examples
        --------
        >>> WorkerProcessPool(2).max_auto_chunk(20)
        5
        """
        # At least two chunks per worker in flight, so none waits for the consumer.
        return max(1, buffer_size // (2 * self.processes))

    def _submit(
        self, fn: Callable, args: tuple, kwargs: dict, entropy: tuple | None, position: int
    ) -> _ProcessPending:
        return self.submit_chunk([(fn, args, kwargs, position)], entropy, None)[0]

    def submit_chunk(
        self, chunk: list[Task], entropy: tuple[int, ...] | None, timer: Any
    ) -> list[_ProcessPending]:
        """Send the tasks to one worker as one message; each task gets its own slot."""
        lazy = _lazy()
        state = self._state
        executor = state.ensure()
        ring = state.ring
        assert ring is not None
        keepalive: list[SharedConstant] = []
        items = []
        slots: list[shm.Slot] = []
        try:
            for fn, args, kwargs, position in chunk:
                for x in (*args, *kwargs.values()):
                    if type(x) is SharedConstant and x not in keepalive:
                        keepalive.append(x)
                args = tuple(self._resolve(a, state) for a in args)
                if kwargs:
                    kwargs = {k: self._resolve(v, state) for k, v in kwargs.items()}
                slot = ring.acquire()
                slots.append(slot)
                items.append((fn, args, kwargs, position, slot.path))
            try:
                future = executor.submit(lazy.run_chunk_in_process, entropy, items)
            except lazy.BrokenProcessPool:
                # A worker died between our check and the submit: start afresh once.
                executor = state.ensure()
                future = executor.submit(lazy.run_chunk_in_process, entropy, items)
        except BaseException:
            for slot in slots:
                ring.release(slot)
            raise
        _tolerate_late_exceptions(future)
        _install_exit_hook()
        message = _Chunk(future, timer, tuple(keepalive))
        return [
            _ProcessPending(message, k, slot, ring, item[3])
            for k, (slot, item) in enumerate(zip(slots, items, strict=True))
        ]

    @property
    def closed(self) -> bool:
        return self._state.closed

    def close(self) -> None:
        """Cancel pending work, stop the workers and free the shared memory. Idempotent.

        Batches already delivered stay valid after ``close()``.

        Examples
        --------
        >>> pool = WorkerProcessPool(2)
        >>> pool.close(); pool.close()
        >>> pool.closed
        True
        """
        self._finalizer()

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (empty before the first task).

        Examples
        --------
        >>> with WorkerProcessPool(1) as pool:
        ...     pool.worker_pids()
        []
        """
        return self._state.worker_pids()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"WorkerProcessPool(processes={self.processes}, "
            f"start_method={self.start_method!r}, {state})"
        )

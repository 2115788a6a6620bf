"""What runs inside a worker: constants resolved, randomness scoped, result encoded."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from . import shm
from .errors import capture
from .randomness import task_scope

__all__ = ["init_process_worker", "run_chunk_in_process", "run_in_thread"]


def init_process_worker(consumer_pid: int) -> None:
    """Initializer of every worker process.

    Ctrl-C reaches the whole process group; only the consumer should react to
    it (and then shut the workers down), or every worker would print its own
    ``KeyboardInterrupt`` traceback and die mid-task.

    loky's workers wait for work forever, even after their consumer was
    killed (SIGKILL, OOM killer): a watchdog thread ends the worker when the
    consumer is gone, so no worker is ever orphaned.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _measure_leaks_by_private_memory()
    watchdog = threading.Thread(
        target=_watch_consumer,
        args=(consumer_pid, os.getppid()),
        name="batchup-consumer-watchdog",
        daemon=True,
    )
    watchdog.start()


def private_memory(pid: int, force_gc: bool = False) -> int:
    """Bytes of anonymous (private) memory resident in process ``pid`` (Linux), for loky.

    A worker that reads a memory-mapped file has the file's pages in its RSS
    (page cache, shared and reclaimable); loky's leak guard, which compares
    RSS against 300 MB, took that for a leak and replaced the worker every
    few seconds (measured: half the throughput of a pool over a 2 GB memory
    map). Anonymous memory is what a leak grows.

    Examples
    --------
    >>> private_memory(os.getpid()) > 0
    True
    """
    if force_gc:
        import gc

        gc.collect()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no RssAnon in /proc/{pid}/status")


def _measure_leaks_by_private_memory() -> None:
    from joblib.externals.loky import process_executor

    if getattr(process_executor, "_USE_PSUTIL", False) and os.path.exists("/proc/self/status"):
        try:
            private_memory(os.getpid())
        except (OSError, ValueError):
            return  # keep loky's own measure
        process_executor._get_memory_usage = private_memory


def _consumer_gone(consumer_pid: int, parent_pid: int) -> bool:
    # Re-parenting covers fork/spawn/loky (the consumer is the parent) and
    # forkserver (the server exits with its consumer); the pid probe covers
    # the rest.
    if os.getppid() != parent_pid:
        return True
    try:
        os.kill(consumer_pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _watch_consumer(consumer_pid: int, parent_pid: int, interval: float = 0.5) -> None:
    while not _consumer_gone(consumer_pid, parent_pid):
        time.sleep(interval)
    os._exit(1)


def _resolve(x: Any) -> Any:
    return shm.load_constant(x) if type(x) is shm.ConstantRef else x


def run_chunk_in_process(
    entropy: tuple[int, ...] | None, items: list[tuple]
) -> tuple[list, float]:
    """Run consecutive tasks of one stream in a worker process; never raises.

    ``items`` holds ``(fn, args, kwargs, position, slot_path)`` per task. Each
    task runs in its own random scope (its own ``position``), exactly as if it
    had been sent alone, and its result goes to its own slot. Returns the
    encoded results in order plus the seconds spent; the first task that
    raises ends the chunk: its :class:`~batchup._pool.errors.TaskFailure` is
    the last entry and the tasks after it are not run (their stream ends at
    that failure anyway).
    """
    shm.sweep_worker_caches()
    start = time.perf_counter()
    out: list = []
    for fn, args, kwargs, position, slot_path in items:
        try:
            args = tuple(_resolve(a) for a in args)
            if kwargs:
                kwargs = {k: _resolve(v) for k, v in kwargs.items()}
            shm.begin_task(slot_path)
            try:
                with task_scope(entropy, position, seed_legacy=True):
                    result = fn(*args, **kwargs)
                encoded = shm.encode_result(result, slot_path)
            finally:
                shm.end_task()
            if len(items) > 1 and type(encoded) is shm.InlineResult:
                # One unpicklable result would fail the whole chunk's message: fail
                # this task instead, as if it had been sent alone.
                _check_picklable(encoded)
            out.append(encoded)
            # Free this result before the next task makes its own: two large
            # results alive at once grow the heap past malloc's trim threshold,
            # and every task then pays page faults for fresh memory.
            del result, encoded, args, kwargs
        except Exception as exc:
            out.append(capture(exc))
            break
    return out, time.perf_counter() - start


def _check_picklable(value: Any) -> None:
    import pickle

    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        from .pickling import cloudpickle

        cloudpickle().dumps(value)  # what loky uses; raises if the result cannot travel


def run_in_thread(
    fn: Any, args: tuple, kwargs: dict, entropy: tuple[int, ...] | None, position: int
) -> Any:
    """Run one task on a pool thread (NumPy's global generator is left alone)."""
    with task_scope(entropy, position, seed_legacy=False):
        return fn(*args, **kwargs)

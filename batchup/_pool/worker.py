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

__all__ = ["init_process_worker", "run_in_process", "run_in_thread"]


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
    watchdog = threading.Thread(
        target=_watch_consumer,
        args=(consumer_pid, os.getppid()),
        name="batchup-consumer-watchdog",
        daemon=True,
    )
    watchdog.start()


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


def run_in_process(
    fn: Any,
    args: tuple,
    kwargs: dict,
    entropy: tuple[int, ...] | None,
    position: int,
    slot_path: str | None,
) -> Any:
    """Run one task in a worker process; never raises (failures are returned)."""
    shm.sweep_worker_caches()
    try:
        args = tuple(_resolve(a) for a in args)
        kwargs = {k: _resolve(v) for k, v in kwargs.items()}
        with task_scope(entropy, position, seed_legacy=True):
            result = fn(*args, **kwargs)
        return shm.encode_result(result, slot_path)
    except Exception as exc:
        return capture(exc)


def run_in_thread(
    fn: Any, args: tuple, kwargs: dict, entropy: tuple[int, ...] | None, position: int
) -> Any:
    """Run one task on a pool thread (NumPy's global generator is left alone)."""
    with task_scope(entropy, position, seed_legacy=False):
        return fn(*args, **kwargs)

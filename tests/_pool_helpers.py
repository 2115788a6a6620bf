"""Functions that tests of batchup.work_pool send to worker processes.

They live in an importable module (not a test file) so that workers started
with ``spawn``/``loky`` can import them cheaply by reference.
"""

import os
import signal
import time
import weakref

import numpy as np

from batchup import work_pool


def square(k):
    return k * k


def sleep_then(value, seconds):
    time.sleep(seconds)
    return value


def fail_on(k, bad):
    if k == bad:
        raise ValueError(f"bad task {k}")
    return k


def kill_self_on(k, bad):
    if k == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return k


def my_pid(_k):
    return os.getpid()


def augment_legacy(x, y):
    """README-style augmentation drawing from NumPy's global legacy generator."""
    flip = np.random.binomial(1, 0.5, size=len(x)).astype(bool)
    x = x.copy()
    x[flip] = x[flip, ..., ::-1]
    return x, y


def augment_task_rng(x, y):
    """Augmentation drawing from the task's generator (works with threads too)."""
    noise = work_pool.task_rng().normal(size=x.shape)
    return x + noise, y


def legacy_draw(_k):
    return float(np.random.uniform())


def task_rng_draw(_k):
    return float(work_pool.task_rng().uniform())


def big_batch(k, n):
    return np.full(n, k, dtype=np.int64), np.arange(3)


class NotPicklableError(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")
        self.lock = __import__("threading").Lock()


def raise_unpicklable(_k):
    raise NotPicklableError(1, 2)


def children_of(pid):
    """Live (non-zombie) descendant process ids of ``pid``."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_gone(pids, timeout=10.0):
    """Wait until none of ``pids`` is alive (zombies count as gone); return the survivors."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def wait_until(predicate, timeout=5.0):
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


_previous_result = None


def previous_result_alive(k):
    """Whether the array this worker returned for its previous task is still alive."""
    global _previous_result
    alive = _previous_result is not None and _previous_result() is not None
    big = np.full(8192, k, dtype=np.int64)  # 64 KiB: travels through a slot
    _previous_result = weakref.ref(big)
    return np.array([alive]), big


def unpicklable_result_on(k, bad):
    return __import__("threading").Lock() if k == bad else k

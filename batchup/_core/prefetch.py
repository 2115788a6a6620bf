"""Batches prepared ahead by background threads, delivered in order: ``PrefetchIterator``.

NumPy releases the GIL while it gathers rows, so two threads each gathering
their own batches move more memory than one, and a background thread can
gather the next batch while the training step runs (when that step releases
the GIL too, as BLAS and most array libraries do).

Design note
-----------
* The calling thread runs the plan (so the plan, and any stream it draws
  from, is only ever touched by one thread, in plan order) and hands item
  ``k`` to worker ``k % threads`` through that worker's queue; the worker
  fetches it and puts the batch on its own result queue. Each worker handles
  its items in order, so batch ``k`` is the next result of worker
  ``k % threads``. The queues are ``queue.SimpleQueue`` (C, no Python-level
  locking), which keeps a hand-off to a few microseconds.
* At most ``depth`` items are planned beyond the last batch handed out; after
  taking a batch the consumer tops the workers up before returning, so they
  gather while the caller trains.
* New work goes to one worker when the caller spends at least a tenth as
  long per batch as a fetch takes (it has a step of its own, which keeps a
  core busy; more threads would only compete with it). When it spends less
  (it only waits for batches, as in evaluation), the caller gathers every
  other batch itself, in ``__next__``, and the workers -- one fewer than the
  cores -- the rest: as many threads gather as there are cores, and the
  caller's share needs no hand-off (measured on 2 cores: 1.67-1.72x the serial
  loop, against 1.14x with two background threads and a waiting caller).
  Both times are running averages measured as the iteration goes. (Fetches
  slow down when threads compete, so the bar is low on purpose: measured on
  2 cores, bars of a half and a quarter let a step as long as a gather flip
  to two threads, 1.4-1.5x instead of 1.8x the serial loop.) Which thread got
  an item is recorded with it, so the order never depends on this choice.
* Each item is planned with a snapshot of the plan's position after it, so
  ``get_state()`` is the position after the last batch *returned*, and
  ``set_state()`` stops the workers, discards what they prepared and starts
  again from the new position.
* Threads start at the first ``next()`` (nothing is drawn before), are
  daemons, and stop when the iterator is closed, exhausted, fails or is
  garbage collected. An error raised by the plan is raised when the consumer
  reaches its position; one raised by a fetch, with that batch.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections import deque
from typing import Any

from .iteration import AheadPositions, BatchIterator

_STOP = object()


def _work(tasks: queue.SimpleQueue, done: queue.SimpleQueue, fetch: Any, halted: list) -> None:
    clock = time.perf_counter
    while True:
        item = tasks.get()
        if item is _STOP:
            return
        if halted[0]:
            continue  # discarded work: drain to the stop marker
        start = clock()
        try:
            done.put((True, fetch(item), clock() - start))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            done.put((False, exc, 0.0))


def _cores() -> int:
    from batchup._pool.cpu import available_cpus  # affinity and cgroup quota

    return available_cpus()


def _average(mean: float | None, value: float) -> float:
    return value if mean is None else 0.8 * mean + 0.2 * value


def _stop(tasks: list, workers: list, halted: list) -> None:
    halted[0] = True
    for q in tasks:
        q.put(_STOP)
    for t in workers:
        if t is not threading.current_thread():
            t.join()
    workers.clear()


class PrefetchIterator(BatchIterator):
    """A ``BatchIterator`` whose batches ``threads`` background threads prepare ahead.

    Same batches, same order, same states as the serial iterator (see the
    module's design note). Returned by ``batch_iterator(..., threads=N)``.

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(10)])
    >>> it = ds.batch_iterator(4, shuffle=1, threads=2)
    >>> [b[0].tolist() for b in it] == [b[0].tolist() for b in ds.batch_iterator(4, shuffle=1)]
    True
    """

    __slots__ = ("_threads", "_depth", "_workers", "_tasks", "_done", "_pending",
                 "_planned", "_consumed", "_end", "_error", "_positions", "_finalizer",
                 "_active", "_turn", "_fetch_time", "_caller_time", "_returned_at",
                 "_self_serve", "_idle_workers", "_idle_self")

    def __init__(self, plan: Any, fetch: Any, fingerprint: dict, stream: Any,
                 threads: int, depth: int) -> None:
        super().__init__(plan, fetch, fingerprint, stream)
        self._threads = threads
        self._depth = max(depth, threads)
        self._workers: list[threading.Thread] | None = None
        self._tasks: list = []
        self._done: list = []
        self._pending: deque = deque()
        self._planned = self._consumed = 0
        self._end: int | None = None
        self._error: BaseException | None = None
        self._finalizer: Any = None
        self._active = 1  # workers new items go to (see the design note)
        self._self_serve = 0  # 1: every (active + 1)-th item is fetched by the caller
        # While the caller only waits for batches, it gathers a share itself, so
        # that as many threads gather as there are cores (and no more).
        cores = _cores()
        self._idle_self = 1 if cores >= 2 else 0
        self._idle_workers = max(1, min(threads, cores - 1))
        self._turn = 0
        self._fetch_time: float | None = None
        self._caller_time: float | None = None
        self._returned_at: float | None = None
        self._positions = AheadPositions(plan, stream, fingerprint)

    def _start(self) -> None:
        n = self._threads
        self._tasks = [queue.SimpleQueue() for _ in range(n)]
        self._done = [queue.SimpleQueue() for _ in range(n)]
        halted = [False]
        self._workers = [
            threading.Thread(target=_work, args=(self._tasks[i], self._done[i], self._fetch,
                                                 halted),
                             daemon=True, name=f"batchup-prefetch-{i}")
            for i in range(n)]
        self._finalizer = weakref.finalize(self, _stop, self._tasks, self._workers, halted)
        self._pending.clear()
        self._planned = self._consumed = 0
        self._end, self._error = None, None
        for t in self._workers:
            t.start()

    def _top_up(self) -> None:
        plan, tasks = self._plan, self._tasks
        while self._end is None and self._planned - self._consumed < self._depth:
            try:
                item = next(plan)
            except StopIteration:
                self._end = self._planned
                break
            except BaseException as exc:  # raised when the consumer gets there
                self._end, self._error = self._planned, exc
                break
            turn = self._turn % (self._active + self._self_serve)
            self._turn += 1
            if turn == self._active:
                # The caller's own share: fetched in the calling thread when its turn comes.
                self._pending.append((self._positions.take(), -1, item))
            else:
                self._pending.append((self._positions.take(), turn, None))
                tasks[turn].put(item)
            self._planned += 1

    def start(self) -> None:
        """Start the threads and plan the first ``depth`` items now (not at the first
        ``next()``): what a pool's ``batch_iterator`` does, as in batchup 0.2.3."""
        if self._workers is None:
            self._start()
            self._top_up()

    def __next__(self) -> Any:
        if self._workers is None:
            self._start()
            self._top_up()
        k = self._consumed
        if k == self._end:
            error, self._error = self._error, None
            self._halt()
            if error is not None:
                raise error
            raise StopIteration
        now = time.perf_counter()
        if self._returned_at is not None:
            self._caller_time = _average(self._caller_time, now - self._returned_at)
        snap, worker, item = self._pending.popleft()
        if worker < 0:
            try:
                value = self._fetch(item)
                ok, took = True, time.perf_counter() - now
            except BaseException as exc:  # noqa: BLE001 - raised below, as a worker's
                ok, value, took = False, exc, 0.0
        else:
            ok, value, took = self._done[worker].get()
        self._consumed = k + 1
        if ok:
            self._fetch_time = _average(self._fetch_time, took)
            if self._caller_time is not None:
                busy = self._caller_time >= 0.1 * self._fetch_time
                self._active = 1 if busy else self._idle_workers
                self._self_serve = 0 if busy else self._idle_self
        if not ok:
            self.close()
            raise value
        self._top_up()
        self._positions.last = snap
        self._returned_at = time.perf_counter()
        return value

    @property
    def next_step(self) -> int | None:
        """The step of the next batch if it is being prepared, else None."""
        if self._workers is None or self._planned <= self._consumed:
            return None
        return self._positions.next_step()

    def snapshot(self) -> tuple:
        return self._positions.last

    def get_state(self) -> dict:
        """The position after the last batch returned (prepared batches are not counted)."""
        return self._positions.state()

    def _halt(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def set_state(self, state: dict) -> None:
        """Discard the prepared batches and continue from ``state``."""
        self._halt()
        self._workers = None
        self._positions.restore(state)

    def close(self) -> None:
        """Stop the worker threads (idempotent); the iteration ends."""
        self._halt()
        self._workers = []
        self._end = self._consumed
        self._error = None
        super().close()

"""Per-task random streams, so that augmentation is reproducible in workers.

Design note: how randomness reaches a task
------------------------------------------
Every iteration of a :class:`~batchup.work_pool.WorkStream` has an *entropy*
(a tuple of non-negative ints). It comes from the int seed given as
``shuffle`` when there is one, otherwise from the pool's ``seed`` and a counter
of iterations started on that pool. Task number ``k`` of the iteration gets
``SeedSequence(entropy, spawn_key=(k,))``. The stream therefore depends on
(iteration, position) only -- not on which worker runs the task, nor on how
many workers there are -- and no two tasks share a stream.

Inside the task, :func:`task_rng` returns a ``numpy.random.Generator`` built
from that sequence. In worker *processes* NumPy's legacy global generator
(``np.random.rand`` and friends) is also re-seeded from the same sequence
before every task, so old-style augmentation code is reproducible too.
Worker *threads* share one global legacy generator, which cannot be made
reproducible; there only :func:`task_rng` is, and the global generator is left
alone. The user's ``shuffle`` RNG is never drawn from for any of this, so the
batches themselves stay identical to the serial source's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["task_rng", "task_scope", "entropy_from_shuffle"]

# Mixed into int seeds so that worker streams differ from the shuffling
# streams the core derives from the same int ("batc" in ASCII).
_WORKER_STREAM_TAG = 0x62617463

_local = threading.local()
_fallback_lock = threading.Lock()
_fallback: np.random.Generator | None = None


def entropy_from_shuffle(shuffle: object) -> tuple[int, ...] | None:
    """Worker-stream entropy for a seeded ``shuffle`` (int, tuple of ints, ``SeedPath``), else None.

    Examples
    --------
    >>> entropy_from_shuffle(7)
    (7, 1650553955)
    >>> from batchup.sampling import SeedPath
    >>> entropy_from_shuffle(SeedPath(7, (1,)))
    (7, 1, 1650553955)
    >>> entropy_from_shuffle(np.random.RandomState(0)) is None
    True
    """
    from batchup._core.rng import SeedPath, resolve_shuffle

    if not isinstance(shuffle, (int, np.integer, tuple, SeedPath)) or isinstance(shuffle, bool):
        return None
    try:
        rng = resolve_shuffle(shuffle)
    except (TypeError, ValueError):
        return None
    if not isinstance(rng, SeedPath):
        return None
    return (rng.seed, *rng.path, _WORKER_STREAM_TAG)


def task_rng() -> np.random.Generator:
    """The random generator of the task being run by the current worker.

    Call it from a map function (or any task function) to get a
    ``numpy.random.Generator``:

    * in a map function of a *seeded* iteration (``shuffle`` an int, a tuple
      or a ``SeedPath``): the batch's generator, keyed on (seed, epoch, step,
      rank) -- the same serially, in threads and in processes, with any number
      of workers (it is :func:`batchup.randomness.batch_rng`);
    * otherwise, in a pool task: a stream that depends only on the
      iteration's entropy (the pool's ``seed`` and a counter of iterations)
      and the task's position;
    * otherwise (serially, without a seed): a process-wide generator seeded
      from fresh OS entropy -- **not repeatable**: "same seed, same batches"
      covers the batches' indices, not augmentation drawn this way.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> def augment(x):
    ...     return x + task_rng().normal(size=x.shape)
    >>> augment(np.zeros(3)).shape
    (3,)
    """
    from batchup._core.context import current_batch

    info = current_batch()
    if info is not None and info.seed is not None:
        # A seeded iteration's map function: the batch's own generator, keyed on
        # (seed, epoch, step, rank), identical serially and in any pool.
        return info.rng
    seq = getattr(_local, "seq", None)
    if seq is None:
        global _fallback
        with _fallback_lock:
            if _fallback is None:
                _fallback = np.random.default_rng()
            return _fallback
    rng = getattr(_local, "rng", None)
    if rng is None:
        # Built on first use: most tasks never ask, and building a PCG64 costs
        # more than the SeedSequence.
        rng = np.random.Generator(np.random.PCG64(seq))
        _local.rng = rng
    return rng


@contextmanager
def task_scope(entropy: tuple[int, ...] | None, position: int, seed_legacy: bool) -> Iterator[None]:
    """Run a block as task ``position`` of the iteration with ``entropy``.

    ``seed_legacy`` re-seeds NumPy's global legacy generator (process workers
    only: threads share it).
    """
    if entropy is None:
        yield
        return
    seq = np.random.SeedSequence(entropy=entropy, spawn_key=(position,))
    if seed_legacy:
        # A child of the task's sequence, so the legacy stream and task_rng()'s
        # stream are independent of each other.
        np.random.seed(seq.spawn(1)[0].generate_state(4))
    saved = (getattr(_local, "seq", None), getattr(_local, "rng", None))
    _local.seq, _local.rng = seq, None
    try:
        yield
    finally:
        _local.seq, _local.rng = saved

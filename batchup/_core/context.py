"""The batch being made, and random generators keyed on it, for map functions.

While a ``.map`` function runs, :func:`current_batch` describes the batch it
was given: its epoch, step, rank and sample indices. With a seeded iteration
(``shuffle=42``, ``(42, epoch)`` or a ``SeedPath``):

* :func:`batch_rng` is keyed on (seed, epoch, step, rank): the same for the
  same batch whether the map runs serially, in threads or in processes, with
  any number of workers;
* :func:`sample_rngs` gives one generator per sample, keyed on
  (seed, epoch, sample index) -- a sample gets the same augmentation in the
  same epoch whatever the batch size, order, number of workers or ranks, and
  another one in the next epoch. With-replacement plans (weighted sampling)
  have no epochs: there each *draw* is keyed on its draw number instead.

Without a seed (in-order iteration, a ``RandomState``) these generators come
from the work pool's per-task stream when running in a pool, and from fresh
OS entropy otherwise: not repeatable, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .rng import SeedPath

# Mixed into the seed so that map streams differ from the shuffling streams
# derived from the same seed ("batc", "samp" in ASCII).
_BATCH_TAG = 0x62617463
_SAMPLE_TAG = 0x73616D70

_local = threading.local()


def _as_index_array(indices: Any) -> np.ndarray:
    if isinstance(indices, slice):
        return np.arange(indices.start, indices.stop)
    return np.asarray(indices)


class BatchInfo:
    """Where the batch a map function is given comes from (see :func:`current_batch`).

    Attributes
    ----------
    epoch : int
        The pass of the batch's first sample.
    step : int
        The batch's number in the iteration (the global step when sharded).
    rank : int
        The rank it was made for (0 when not sharded).
    seed : SeedPath or None
        The seed the iteration derives from (None: not seeded).
    depth : int
        How many ``.map`` functions enclose this one (0 for the outermost).
    """

    __slots__ = ("_item", "epoch", "step", "rank", "seed", "depth", "_rng")

    def __init__(self, item: Any, depth: int) -> None:
        self._item = item
        self.epoch = int(item.epoch)
        self.step = int(item.step)
        self.rank = int(item.rank)
        self.seed = item.seed if isinstance(item.seed, SeedPath) else None
        self.depth = depth
        self._rng: np.random.Generator | None = None

    @property
    def indices(self) -> np.ndarray:
        """Data-level indices of the batch's samples (for a leaf source's batch)."""
        idx = self._item.indices
        if self._item.component is not None:
            idx = idx.indices
        if isinstance(idx, (np.ndarray, slice)):
            return _as_index_array(idx)
        if isinstance(idx, tuple) and idx and all(hasattr(x, "segs") for x in idx):
            raise TypeError("a composite batch has one index array per component; "
                            "map the components to get per-sample indices")
        raise TypeError("this batch comes from a source that makes its own batches (a "
                        "function or iterator), so its samples have no indices")

    def sample_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(epoch or draw number, data index) of every sample: what per-sample streams key on."""
        item = self._item
        if item.component is not None:
            item = item.indices
        idx = self.indices
        if item.draws is not None:
            return np.arange(item.draws, item.draws + len(idx)), idx
        if item.segs:
            passes = np.repeat([s[0] for s in item.segs], [s[2] - s[1] for s in item.segs])
            return passes, idx
        return np.full(len(idx), self.epoch), idx

    @property
    def rng(self) -> np.random.Generator:
        """The batch's generator (see :func:`batch_rng`)."""
        if self._rng is None:
            if self.seed is None:
                from batchup._pool.randomness import task_rng

                self._rng = task_rng()
            else:
                seq = np.random.SeedSequence(
                    (self.seed.seed, _BATCH_TAG),
                    spawn_key=self.seed.path + (self.depth, self.epoch, self.step, self.rank))
                self._rng = np.random.Generator(np.random.PCG64(seq))
        return self._rng

    def sample_rngs(self) -> list[np.random.Generator]:
        """One generator per sample (see :func:`sample_rngs`)."""
        keys, idx = self.sample_keys()
        if self.seed is None:
            return self.rng.spawn(len(idx))
        root = (self.seed.seed, _SAMPLE_TAG)
        path = self.seed.path + (self.depth,)
        return [np.random.Generator(np.random.PCG64(
                    np.random.SeedSequence(root, spawn_key=path + (int(e), int(i)))))
                for e, i in zip(keys.tolist(), idx.tolist(), strict=True)]


def current_batch() -> BatchInfo | None:
    """The batch the running map function was given, or None outside a map function.

    Examples
    --------
    >>> from batchup import data_source
    >>> def show(x):
    ...     b = current_batch()
    ...     return (np.full(len(x), b.epoch * 100 + b.step),)
    >>> ds = data_source.ArrayDataSource([np.arange(4)], repeats=2).map(show)
    >>> [b[0].tolist() for b in ds.batch_iterator(3, shuffle=1)]
    [[0, 0, 0], [1, 1, 1], [102, 102]]
    """
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def batch_rng() -> np.random.Generator:
    """A generator for the batch the running map function was given.

    Keyed on (seed, epoch, step, rank) with a seeded iteration: repeatable,
    serially and in any pool. Otherwise as :func:`batchup.work_pool.task_rng`.

    Examples
    --------
    >>> from batchup import data_source
    >>> def noisy(x):
    ...     return (x + batch_rng().normal(size=x.shape),)
    >>> ds = data_source.ArrayDataSource([np.zeros(4)]).map(noisy)
    >>> a = [b[0] for b in ds.batch_iterator(2, shuffle=3)]
    >>> b = [b[0] for b in ds.batch_iterator(2, shuffle=3)]
    >>> all((x == y).all() for x, y in zip(a, b))
    True
    """
    info = current_batch()
    if info is None:
        from batchup._pool.randomness import task_rng

        return task_rng()
    return info.rng


def sample_rngs() -> list[np.random.Generator]:
    """One generator per sample of the running map function's batch.

    Keyed on (seed, epoch, sample index) with a seeded iteration, so a sample's
    augmentation does not depend on the batch size, the order or how the work
    is split. Outside a map function: ``ValueError``.

    Examples
    --------
    >>> from batchup import data_source
    >>> def jitter(x):
    ...     return (np.array([v + g.integers(100) for v, g in zip(x, sample_rngs())]),)
    >>> ds = data_source.ArrayDataSource([np.zeros(6, dtype=int)]).map(jitter)
    >>> by_two = np.concatenate([b[0] for b in ds.batch_iterator(2, shuffle=5)])
    >>> by_three = np.concatenate([b[0] for b in ds.batch_iterator(3, shuffle=5)])
    >>> bool((by_two == by_three).all())
    True
    """
    info = current_batch()
    if info is None:
        raise ValueError("sample_rngs() is only available inside a .map function")
    return info.sample_rngs()


def call_in_batch(item: Any, fn: Callable[[], Any]) -> Any:
    """Call ``fn()`` with ``item`` as the current batch.

    A map's source is fetched inside ``fn`` (after the map's own entry), so
    maps stacked on maps run at increasing depths and draw independently.
    """
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(BatchInfo(item, len(stack)))
    try:
        return fn()
    finally:
        stack.pop()

"""``ChoiceDataSource``: each batch comes from one of several sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .composite import _check_components, union_of_accepted
from .iteration import IndexIterator
from .plans import ChoicePlan, IndexBatch, choice_num_batches, count_batches
from .rng import SeedPath, ShuffleRNG
from .shard import ShardSpec
from .sources import (
    AbstractDataSource,
    child_rng,
    count_for,
    describe,
    fetch_for,
    indices_for,
    plan_for,
    source_is_random_access,
)
from .structure import ChoiceBatch


def _ds_indices_stratified_in_order(batches_per_ds: Sequence[int]) -> np.ndarray:
    """Spread each component's batches evenly over the iteration (deterministic).

    At step ``t`` of ``max(nb)`` steps, component ``d`` is emitted whenever
    ``floor(t * nb[d] / max(nb) + 0.25 / max(nb))`` increases; the products are
    accumulated by repeated addition, exactly as batchup 0.2.3 did, so the
    schedule matches it bit for bit.

    Examples
    --------
    >>> _ds_indices_stratified_in_order([5, 3, 2]).tolist()
    [0, 1, 2, 0, 0, 1, 0, 2, 0, 1]
    """
    nb = np.asarray(batches_per_ds)
    m = int(nb.max()) if nb.size else 0
    if m == 0:
        return np.zeros((0,), dtype=int)
    eps = 0.25 / m
    delta = nb / m
    acc = np.zeros(len(nb), dtype=np.float64)
    # A component without batches is never scheduled (0.2.3 scheduled it once,
    # at step 0, and its empty iterator then ended the whole iteration).
    prev = np.where(nb > 0, -1, 0)
    out = []
    for _ in range(m):
        v = np.floor(acc + eps).astype(int)
        out.append(np.flatnonzero(v > prev))
        prev = v
        acc += delta
    return np.concatenate(out)


def _ds_indices_stratified_shuffled(batches_per_ds: Sequence[int], rng: Any) -> np.ndarray:
    """``nb[0]`` zeros, ``nb[1]`` ones, ... shuffled in place by one ``rng.shuffle`` call."""
    schedule = np.concatenate([np.full(n, d, dtype=int) for d, n in enumerate(batches_per_ds)])
    rng.shuffle(schedule)
    return schedule


class ChoiceDataSource(AbstractDataSource):
    """Each mini-batch is drawn from one component source.

    In *stratified* mode (and when every component's size is known and
    finite), each component contributes all its batches, spread evenly (in
    order) or in a shuffled schedule. Otherwise components are visited in
    rounds -- in order, or in a fresh random order each round -- and the
    iteration ends when a visited component is exhausted.

    Parameters
    ----------
    datasets : list of AbstractDataSource
        The components.
    stratified : bool
        Use the stratified schedule.

    Examples
    --------
    >>> x = ArrayDataSource([np.arange(0, 8)])
    >>> y = ArrayDataSource([np.arange(100, 104)])
    >>> z = ArrayDataSource([np.arange(200, 202)])
    >>> ds = ChoiceDataSource([x, y, z], stratified=True)
    >>> [b[0].tolist() for b in ds.batch_iterator(2)]
    [[0, 1], [100, 101], [200, 201], [2, 3], [4, 5], [102, 103], [6, 7]]
    """

    def __init__(self, datasets: Sequence[AbstractDataSource], stratified: bool = False) -> None:
        self.datasets = _check_components(datasets, "ChoiceDataSource")
        self.stratified = stratified
        self._random_access = all(source_is_random_access(ds) for ds in self.datasets)

    @property
    def is_random_access(self) -> bool:
        return self._random_access

    def num_samples(self, **kwargs: Any) -> int | float:
        return sum(c for c in (ds.num_samples(**kwargs) for ds in self.datasets) if c is not None)

    @staticmethod
    def _ds_indices_stratified_in_order(batches_per_ds: Sequence[int]) -> np.ndarray:
        return _ds_indices_stratified_in_order(batches_per_ds)

    @staticmethod
    def _ds_indices_stratified_shuffled(batches_per_ds: Sequence[int], rng: Any) -> np.ndarray:
        return _ds_indices_stratified_shuffled(batches_per_ds, rng)

    def _own_rng(self, rng: Any) -> Any:
        # With a seed, the schedule has its own stream beside the components'.
        return rng.child(len(self.datasets)) if isinstance(rng, SeedPath) else rng

    def _batches_per_ds(self, batch_size: int, rng: Any, drop_last: bool,
                        shard: ShardSpec | None, kwargs: dict,
                        global_steps: bool = False) -> list | None:
        """Batches per component for the stratified schedule, or None for round mode.

        ``global_steps``: count the global batches every rank steps through
        (the schedule must be the same on all ranks), not this rank's share.
        """
        if not self.stratified:
            return None
        counts = [ds.num_samples(shuffle=rng, **kwargs) for ds in self.datasets]
        if any(c is None or c == np.inf for c in counts):
            return None
        if global_steps and shard is not None:
            drop = shard.remainder == "drop"
            size = batch_size * shard.world_size
            return [int(count_batches(c, size, drop, None)) for c in counts]
        return [int(count_batches(c, batch_size, drop_last, shard)) for c in counts]

    def _accepted_kwargs(self) -> frozenset | None:
        return union_of_accepted(self.datasets)

    def _describe(self) -> str:
        return (f"ChoiceDataSource(stratified={bool(self.stratified)})["
                + ", ".join(describe(ds) for ds in self.datasets) + "]")

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> ChoicePlan:
        children = [plan_for(ds, batch_size, child_rng(rng, i), drop_last, shard, kwargs)
                    for i, ds in enumerate(self.datasets)]
        nb = self._batches_per_ds(batch_size, rng, drop_last, shard, kwargs, global_steps=True)
        mine = self._batches_per_ds(batch_size, rng, drop_last, shard, kwargs)
        return ChoicePlan(children, nb, self._own_rng(rng),
                          (_ds_indices_stratified_in_order, _ds_indices_stratified_shuffled),
                          rng if isinstance(rng, SeedPath) else None,
                          0 if shard is None else shard.rank, count=mine,
                          skip_empty=shard is not None and shard.remainder == "even")

    def _count_batches(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
                       shard: ShardSpec | None, kwargs: dict) -> int | float | None:
        nb = self._batches_per_ds(batch_size, rng, drop_last, shard, kwargs)
        counts = [count_for(ds, batch_size, child_rng(rng, i), drop_last, shard, kwargs)
                  for i, ds in enumerate(self.datasets)]
        return choice_num_batches(nb, counts, self._own_rng(rng))

    def _fetch_item(self, item: IndexBatch) -> Any:
        return fetch_for(self.datasets[item.component])(item.indices)

    def _item_indices(self, item: IndexBatch) -> ChoiceBatch:
        d = item.component
        return ChoiceBatch(sample_indices=indices_for(self.datasets[d])(item.indices),
                           ds_index=d)

    def _require_random_access(self) -> None:
        if not self._random_access:
            raise TypeError("All data sources in a ChoiceDataSource must be random access "
                            "for index-based access; at least one is not")

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               drop_last: bool = False, shard: Any = None,
                               state: dict | None = None, **kwargs: Any) -> IndexIterator:
        """Iterator over ``ChoiceBatch(sample_indices, ds_index)`` items."""
        self._require_random_access()
        return self._iterator(IndexIterator, "batch_indices_iterator", self._item_indices,
                              batch_size, shuffle, drop_last, shard, state, kwargs)

    def _as_choice_batch(self, indices: Any) -> ChoiceBatch:
        self._require_random_access()
        if not isinstance(indices, ChoiceBatch):
            raise TypeError(f"indices should be a ChoiceBatch (was _ChoiceBatch in 0.2.3), "
                            f"not a {type(indices)}")
        return indices

    def samples_by_indices_nomapping(self, indices: ChoiceBatch) -> Any:
        """Fetch the samples of a ``ChoiceBatch`` from its component."""
        b = self._as_choice_batch(indices)
        return self.datasets[b.ds_index].samples_by_indices_nomapping(b.sample_indices)

    def samples_by_indices(self, indices: ChoiceBatch) -> Any:
        """As ``samples_by_indices_nomapping``, mapping positions through the sampler."""
        b = self._as_choice_batch(indices)
        return self.datasets[b.ds_index].samples_by_indices(b.sample_indices)

"""``ChoiceDataSource``: each batch comes from one of several sources."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .composite import _check_components
from .rng import SeedPath, resolve_shuffle
from .samplers import num_batches
from .sources import (
    AbstractDataSource,
    check_source_iteration,
    source_is_random_access,
    source_num_batches,
)
from .structure import ChoiceBatch
from .validate import check_batch_size


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
    prev = np.full(len(nb), -1)
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

    def _component_shuffle(self, rng: Any, i: int) -> Any:
        return rng.child(i) if isinstance(rng, SeedPath) else rng

    def _own_rng(self, rng: Any) -> Any:
        # With a seed, the schedule has its own stream beside the components'.
        return rng.child(len(self.datasets)) if isinstance(rng, SeedPath) else rng

    def _batches_per_ds(self, batch_size: int, rng: Any, kwargs: dict) -> list | None:
        """Batches per component for the stratified schedule, or None for round mode."""
        if not self.stratified:
            return None
        counts = [ds.num_samples(shuffle=rng, **kwargs) for ds in self.datasets]
        if any(c is None or c == np.inf for c in counts):
            return None
        if kwargs.get("drop_last"):
            return [int(c // batch_size) for c in counts]
        return [int(num_batches(c, batch_size)) for c in counts]

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    **kwargs: Any) -> int | float | None:
        self._check_iteration(batch_size, shuffle=shuffle, drop_last=drop_last, **kwargs)
        rng = resolve_shuffle(shuffle)
        kw = dict(kwargs, drop_last=drop_last) if drop_last else kwargs
        nb = self._batches_per_ds(batch_size, rng, kw)
        if nb is not None:
            return sum(nb)
        counts = [source_num_batches(ds, batch_size, shuffle=self._component_shuffle(rng, i),
                                     **kw)
                  for i, ds in enumerate(self.datasets)]
        if all(c == np.inf for c in counts):
            return np.inf
        if rng is not None or any(c is None for c in counts):
            return None
        # In-order rounds: round r ends at the first component holding only r batches.
        m = min(counts)
        return len(self.datasets) * m + next(d for d, c in enumerate(counts) if c == m)

    def _check_iteration(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> None:
        check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        for i, ds in enumerate(self.datasets):
            check_source_iteration(ds, batch_size, shuffle=self._component_shuffle(rng, i),
                                   **kwargs)

    def _select(self, batch_size: int, iterators: list, rng: Any, kwargs: dict) -> Iterator:
        """Yield ``(component, item)`` pairs following the selection procedure."""
        nb = self._batches_per_ds(batch_size, rng, kwargs)
        own = self._own_rng(rng)
        if nb is not None:
            if own is None:
                schedule = _ds_indices_stratified_in_order(nb)
            elif isinstance(own, SeedPath):
                schedule = _ds_indices_stratified_shuffled(nb, own.generator())
            else:
                schedule = _ds_indices_stratified_shuffled(nb, own)
            for d in schedule:
                try:
                    item = next(iterators[d])
                except StopIteration:
                    return  # a component under-reported its size: end cleanly
                yield d, item
            return
        n = len(iterators)
        round_no = 0
        while True:
            if own is None:
                order: Any = range(n)
            elif isinstance(own, SeedPath):
                order = own.generator(round_no).permutation(n)
            else:
                order = own.permutation(n)
            round_no += 1
            for d in order:
                try:
                    item = next(iterators[d])
                except StopIteration:
                    return
                yield d, item

    def batch_iterator(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> Iterator:
        """Iterator over batches, each from one component (checked now, lazy).

        Examples
        --------
        >>> x = ArrayDataSource([np.arange(0, 8)])
        >>> y = ArrayDataSource([np.arange(100, 104)])
        >>> ds = ChoiceDataSource([x, y])
        >>> [b[0].tolist() for b in ds.batch_iterator(2)]
        [[0, 1], [100, 101], [2, 3], [102, 103], [4, 5]]
        """
        self._check_iteration(batch_size, shuffle=shuffle, **kwargs)
        return self._iterate(batch_size, shuffle, kwargs)

    def _iterate(self, batch_size: int, shuffle: Any, kwargs: dict) -> Iterator:
        rng = resolve_shuffle(shuffle)
        iterators = [
            iter(ds.batch_iterator(batch_size, shuffle=(
                rng.child(i) if isinstance(rng, SeedPath) else shuffle), **kwargs))
            for i, ds in enumerate(self.datasets)
        ]
        for _, batch in self._select(batch_size, iterators, rng, kwargs):
            yield batch

    def _require_random_access(self) -> None:
        if not self._random_access:
            raise TypeError("All data sources in a ChoiceDataSource must be random access "
                            "for index-based access; at least one is not")

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               **kwargs: Any) -> Iterator[ChoiceBatch]:
        """Iterator over ``ChoiceBatch(sample_indices, ds_index)`` items."""
        self._require_random_access()
        self._check_iteration(batch_size, shuffle=shuffle, **kwargs)
        rng = resolve_shuffle(shuffle)
        iterators = [iter(ds.batch_indices_iterator(batch_size,
                                                    shuffle=self._component_shuffle(rng, i),
                                                    **kwargs))
                     for i, ds in enumerate(self.datasets)]
        return self._iterate_indices(batch_size, iterators, rng, kwargs)

    def _iterate_indices(self, batch_size: int, iterators: list, rng: Any,
                         kwargs: dict) -> Iterator[ChoiceBatch]:
        for d, idx in self._select(batch_size, iterators, rng, kwargs):
            yield ChoiceBatch(sample_indices=idx, ds_index=d)

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

"""``CompositeDataSource``: one batch from each of several sources, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .iteration import IndexIterator
from .plans import CompositePlan, IndexBatch
from .rng import SeedPath, ShuffleRNG
from .shard import ShardSpec
from .sources import (
    AbstractDataSource,
    accepted_kwargs,
    child_rng,
    count_for,
    describe,
    fetch_for,
    indices_for,
    is_data_source,
    plan_for,
    source_is_random_access,
)
from .structure import flatten_one_level, trim_to_common_length
from .validate import show


def _check_components(datasets: Any, owner: str) -> list:
    if not isinstance(datasets, (list, tuple)):
        raise TypeError(f"datasets must be a list of data sources, not {show(datasets)}")
    if not datasets:
        raise ValueError(f"{owner} needs at least one data source; datasets is empty")
    for i, ds in enumerate(datasets):
        if not is_data_source(ds):
            raise TypeError(f"datasets[{i}] must be a data source, not {show(ds)}")
    return list(datasets)


def union_of_accepted(datasets: list) -> frozenset | None:
    """Keywords some component accepts (None: a component accepts any)."""
    names: set = set()
    for ds in datasets:
        acc = accepted_kwargs(ds)
        if acc is None:
            return None
        names |= acc
    return frozenset(names)


class CompositeDataSource(AbstractDataSource):
    """Iterate several data sources together, one batch from each per step.

    Iteration ends as soon as any component is exhausted, so an infinitely
    repeating labelled set can be paired with a large unlabelled one.

    A ``RandomState``/``Generator`` passed as ``shuffle`` is shared by all
    components (their draws interleave, as in batchup 0.2.3); an int seed
    gives every component its own stream derived from the seed.

    Parameters
    ----------
    datasets : list of AbstractDataSource
        The components (the same source may appear more than once).
    flatten : bool
        Concatenate the component batches into one flat tuple; otherwise
        yield a tuple of component batches.
    trim : bool
        Trim all component batches to the shortest one's length.

    Examples
    --------
    >>> lab = ArrayDataSource([np.arange(7)], repeats=-1)
    >>> unlab = ArrayDataSource([np.arange(100, 111)])
    >>> ds = CompositeDataSource([lab, unlab])
    >>> [(a.tolist(), b.tolist()) for a, b in ds.batch_iterator(4)]
    [([0, 1, 2, 3], [100, 101, 102, 103]), ([4, 5, 6, 0], [104, 105, 106, 107]), \
([1, 2, 3], [108, 109, 110])]
    """

    def __init__(self, datasets: Sequence[AbstractDataSource], flatten: bool = True,
                 trim: bool = True) -> None:
        self.datasets = _check_components(datasets, "CompositeDataSource")
        self.flatten = flatten
        self.trim = trim
        self._random_access = all(source_is_random_access(ds) for ds in self.datasets)

    @property
    def is_random_access(self) -> bool:
        return self._random_access

    def num_samples(self, **kwargs: Any) -> int | float | None:
        counts = [ds.num_samples(**kwargs) for ds in self.datasets]
        if any(c is None for c in counts):
            return None
        return min(counts)

    def _accepted_kwargs(self) -> frozenset | None:
        return union_of_accepted(self.datasets)

    def _describe(self) -> str:
        return "CompositeDataSource[" + ", ".join(describe(ds) for ds in self.datasets) + "]"

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> CompositePlan:
        children = [plan_for(ds, batch_size, child_rng(rng, i), drop_last, shard, kwargs)
                    for i, ds in enumerate(self.datasets)]
        return CompositePlan(children, rng if isinstance(rng, SeedPath) else None,
                             0 if shard is None else shard.rank)

    def _count_batches(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
                       shard: ShardSpec | None, kwargs: dict) -> int | float | None:
        counts = [count_for(ds, batch_size, child_rng(rng, i), drop_last, shard, kwargs)
                  for i, ds in enumerate(self.datasets)]
        return None if any(c is None for c in counts) else min(counts)

    def _fetch_item(self, item: IndexBatch) -> Any:
        return self._prepare([fetch_for(ds)(it)
                              for ds, it in zip(self.datasets, item.indices, strict=True)])

    def _item_indices(self, item: IndexBatch) -> tuple:
        batches = [indices_for(ds)(it) for ds, it in zip(self.datasets, item.indices,
                                                          strict=True)]
        return tuple(trim_to_common_length(batches) if self.trim else batches)

    def _prepare(self, batches: list) -> Any:
        if self.trim:
            batches = trim_to_common_length(batches)
        if self.flatten:
            return flatten_one_level(batches)
        return tuple(batches)

    def _require_random_access(self) -> None:
        if not self._random_access:
            raise TypeError("All data sources in a CompositeDataSource must be random access "
                            "for index-based access; at least one is not")

    def _fetch_each(self, indices: Any, method: str) -> Any:
        self._require_random_access()
        if len(indices) != len(self.datasets):
            raise ValueError(
                f"length mis-match: indices has {len(indices)} items, self has "
                f"{len(self.datasets)} data sources, should be equal"
            )
        return self._prepare([getattr(ds, method)(ndx)
                              for ds, ndx in zip(self.datasets, indices, strict=True)])

    def samples_by_indices_nomapping(self, indices: Sequence) -> Any:
        """Fetch one index batch per component and combine them as ``batch_iterator`` does."""
        return self._fetch_each(indices, "samples_by_indices_nomapping")

    def samples_by_indices(self, indices: Sequence) -> Any:
        """As ``samples_by_indices_nomapping``, mapping positions through each sampler."""
        return self._fetch_each(indices, "samples_by_indices")

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               drop_last: bool = False, shard: Any = None,
                               state: dict | None = None, **kwargs: Any) -> IndexIterator:
        """Iterator over tuples of component index batches (trimmed if ``trim``)."""
        self._require_random_access()
        return self._iterator(IndexIterator, "batch_indices_iterator", self._item_indices,
                              batch_size, shuffle, drop_last, shard, state, kwargs)

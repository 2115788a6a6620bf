"""``CompositeDataSource``: one batch from each of several sources, side by side."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .rng import SeedPath, resolve_shuffle
from .sources import (
    AbstractDataSource,
    check_source_iteration,
    is_data_source,
    source_is_random_access,
    source_num_batches,
)
from .structure import flatten_one_level, trim_to_common_length
from .validate import check_batch_size


def _check_components(datasets: Any, owner: str) -> list:
    if not isinstance(datasets, (list, tuple)):
        raise TypeError(f"datasets must be a list of data sources, not {datasets!r}")
    if not datasets:
        raise ValueError(f"{owner} needs at least one data source; datasets is empty")
    for i, ds in enumerate(datasets):
        if not is_data_source(ds):
            raise TypeError(f"datasets[{i}] must be a data source, not {ds!r}")
    return list(datasets)


def _component_kwargs(kwargs: dict, i: int) -> dict:
    """The kwargs for component ``i``: a seed becomes the component's own seed path."""
    shuffle = kwargs.get("shuffle")
    if shuffle is None:
        return kwargs
    rng = resolve_shuffle(shuffle)
    if isinstance(rng, SeedPath):
        return dict(kwargs, shuffle=rng.child(i))
    return kwargs


def _one_from_each(iterators: list) -> Iterator[list]:
    """Yield a list of one item from every iterator, in order, until any is exhausted.

    Iterators before the exhausted one have already been advanced for that
    step (and may have drawn random numbers), as in batchup 0.2.3.
    """
    while True:
        items = []
        for it in iterators:
            try:
                items.append(next(it))
            except StopIteration:
                return
        yield items


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

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    **kwargs: Any) -> int | float | None:
        self._check_iteration(batch_size, shuffle=shuffle, drop_last=drop_last, **kwargs)
        kw = dict(kwargs, shuffle=shuffle, drop_last=drop_last)
        counts = [source_num_batches(ds, batch_size, **_component_kwargs(kw, i))
                  for i, ds in enumerate(self.datasets)]
        if any(c is None for c in counts):
            return None
        return min(counts)

    def _check_iteration(self, batch_size: int, **kwargs: Any) -> None:
        check_batch_size(batch_size)
        for i, ds in enumerate(self.datasets):
            check_source_iteration(ds, batch_size, **_component_kwargs(kwargs, i))

    def _prepare(self, batches: list) -> Any:
        if self.trim:
            batches = trim_to_common_length(batches)
        if self.flatten:
            return flatten_one_level(batches)
        return tuple(batches)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        """Iterator over composite batches (checked now; components start on first use).

        Examples
        --------
        >>> a = ArrayDataSource([np.arange(3)])
        >>> ds = CompositeDataSource([a, a], flatten=False)
        >>> next(ds.batch_iterator(2))
        ((array([0, 1]),), (array([0, 1]),))
        """
        self._check_iteration(batch_size, **kwargs)
        return self._iterate(batch_size, kwargs)

    def _iterate(self, batch_size: int, kwargs: dict) -> Iterator:
        # Components are started on the first request, in order (0.2.3's RNG timing).
        iterators = [iter(ds.batch_iterator(batch_size, **_component_kwargs(kwargs, i)))
                     for i, ds in enumerate(self.datasets)]
        prepare = self._prepare
        for batches in _one_from_each(iterators):
            yield prepare(batches)

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

    def batch_indices_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        """Iterator over tuples of component index batches (trimmed if ``trim``)."""
        self._require_random_access()
        check_batch_size(batch_size)
        for i, ds in enumerate(self.datasets):
            check_source_iteration(ds, batch_size, **_component_kwargs(kwargs, i))
        return self._iterate_indices(batch_size, kwargs)

    def _iterate_indices(self, batch_size: int, kwargs: dict) -> Iterator:
        iterators = [iter(ds.batch_indices_iterator(batch_size, **_component_kwargs(kwargs, i)))
                     for i, ds in enumerate(self.datasets)]
        for batches in _one_from_each(iterators):
            yield tuple(trim_to_common_length(batches) if self.trim else batches)


"""Data sources: turn samplers' index batches (or functions, or iterators) into batches."""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import batch_map as _bm
from .rng import SeedPath, ShuffleRNG, as_stream, resolve_shuffle
from .samplers import AbstractSampler, StandardSampler, SubsetSampler, num_batches
from .validate import check_batch_size, check_count, check_repeats, is_array_like


def is_data_source(x: Any) -> bool:
    """True for batchup data sources and for look-alikes with ``batch_iterator`` and
    ``num_samples`` (batchup 0.2.3 accepted any such object as a component)."""
    return isinstance(x, AbstractDataSource) or (
        callable(getattr(x, "batch_iterator", None)) and callable(getattr(x, "num_samples", None))
    )


def check_source_iteration(ds: Any, batch_size: int, **kwargs: Any) -> None:
    """Let ``ds`` reject bad iteration arguments now (look-alikes are not checked)."""
    check = getattr(ds, "_check_iteration", None)
    if check is not None:
        check(batch_size, **kwargs)
    else:
        check_batch_size(batch_size)


def source_num_batches(ds: Any, batch_size: int, **kwargs: Any) -> int | float | None:
    """``ds.num_batches(...)``, or None for look-alikes without it."""
    count = getattr(ds, "num_batches", None)
    return count(batch_size, **kwargs) if count is not None else None


def source_is_random_access(ds: Any) -> bool:
    return bool(getattr(ds, "is_random_access", False))


class AbstractDataSource:
    """Base class of data sources.

    A data source yields mini-batches -- normally tuples of arrays such as
    ``(batch_X, batch_y)`` -- from ``batch_iterator(batch_size, ...)``.
    Subclasses implement ``num_samples`` and ``batch_iterator``.

    Examples
    --------
    >>> ds = ArrayDataSource([np.arange(6)])
    >>> isinstance(ds, AbstractDataSource), ds.num_samples()
    (True, 6)
    """

    @property
    def is_random_access(self) -> bool:
        """True if samples can be fetched by index (needed by parallel wrappers)."""
        return False

    def num_samples(self, **kwargs: Any) -> int | float | None:
        """Number of samples one iteration yields: an int, ``np.inf`` or None (unknown)."""
        raise NotImplementedError

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    **kwargs: Any) -> int | float | None:
        """Number of batches ``batch_iterator`` will yield with these arguments.

        Returns an int, ``np.inf`` for endless iteration, or None when the
        number cannot be known in advance.

        Examples
        --------
        >>> ArrayDataSource([np.arange(10)]).num_batches(4)
        3
        >>> ArrayDataSource([np.arange(10)]).num_batches(4, drop_last=True)
        2
        """
        check_batch_size(batch_size)
        return None

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        """Iterator over mini-batches of ``batch_size`` samples."""
        raise NotImplementedError

    def _check_iteration(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> None:
        """Raise now if ``batch_iterator`` would fail with these arguments."""
        check_batch_size(batch_size)
        resolve_shuffle(shuffle)

    def map(self, fn: Callable) -> MapDataSource:
        """A new data source whose batches are ``fn(*batch)``; this one is unchanged.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(4)]).map(lambda x: (x * 2,))
        >>> [b[0].tolist() for b in ds.batch_iterator(2)]
        [[0, 2], [4, 6]]
        """
        return MapDataSource(self, fn)

    def _map_args(self, batch_size: int, n_batches: int | None, kwargs: dict) -> int | None:
        """The progress-bar total; raise if iteration would never end."""
        if n_batches is not None:
            return n_batches
        nb = self.num_batches(batch_size, **kwargs)
        if nb is None:
            n = self.num_samples(**{k: v for k, v in kwargs.items() if k != "drop_last"})
            if n == np.inf:
                nb = np.inf
            elif n is not None:
                nb = num_batches(n, batch_size)  # an estimate, for the progress bar only
        if nb == np.inf:
            raise ValueError(
                "Data set has infinite size or sampler will generate infinite samples but "
                "no n_batches limit specified"
            )
        return nb

    def batch_map_concat(self, func: Callable, batch_size: int,
                         progress_iter_func: Callable | None = None,
                         n_batches: int | None = None, prepend_args: tuple | None = None,
                         **kwargs: Any) -> tuple:
        """Apply ``func`` to every batch and concatenate the results (see ``batch_map_concat``).

        Iterates until the source is exhausted unless ``n_batches`` is given.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(5)])
        >>> ds.batch_map_concat(lambda x: x * 2, batch_size=2)
        (array([0, 2, 4, 6, 8]),)
        """
        total = self._map_args(batch_size, n_batches, kwargs)
        it = self._evaluation_batches(batch_size, kwargs)
        return _bm.batch_map_concat(_bm.copy_on_read_only(func), it, progress_iter_func,
                                    n_batches=n_batches, prepend_args=prepend_args, total=total)

    def batch_map_mean(self, func: Callable, batch_size: int,
                       progress_iter_func: Callable | None = None, sum_axis: int | None = None,
                       n_batches: int | None = None, prepend_args: tuple | None = None,
                       **kwargs: Any) -> tuple | None:
        """Apply ``func`` to every batch and average the results (see ``batch_map_mean``).

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(7.0)])
        >>> ds.batch_map_mean(lambda x: x.sum(), batch_size=2)
        (np.float64(3.0),)
        """
        total = self._map_args(batch_size, n_batches, kwargs)
        it = self._evaluation_batches(batch_size, kwargs)
        return _bm.batch_map_mean(_bm.copy_on_read_only(func), it, progress_iter_func,
                                  sum_axis=sum_axis, n_batches=n_batches,
                                  prepend_args=prepend_args, total=total)

    def _evaluation_batches(self, batch_size: int, kwargs: dict) -> Iterator:
        """The batches ``batch_map_*`` methods feed to their function."""
        return self.batch_iterator(batch_size, **kwargs)

    @staticmethod
    def _get_shuffle_rng(shuffle: Any) -> ShuffleRNG:
        return resolve_shuffle(shuffle)


class RandomAccessDataSource(AbstractDataSource):
    """Base class of sources whose samples can be fetched by index.

    Subclasses implement ``samples_by_indices_nomapping(indices)``.

    Parameters
    ----------
    length : int
        Number of samples.
    indices : array-like of int, optional
        Iterate over this subset only (data-level indices).
    repeats : int
        Passes over the data (-1: forever).
    sampler : AbstractSampler, optional
        Decides the indices instead (then ``indices`` must be None, ``repeats`` 1).
    include_indices : bool
        Prepend the index array to every batch.

    Examples
    --------
    >>> class Squares(RandomAccessDataSource):
    ...     def samples_by_indices_nomapping(self, indices):
    ...         return (np.asarray(indices) ** 2,)
    >>> [b[0].tolist() for b in Squares(5).batch_iterator(3)]
    [[0, 1, 4], [9, 16]]
    """

    def __init__(self, length: int, indices: Any = None, repeats: int = 1,
                 sampler: AbstractSampler | None = None, include_indices: bool = False) -> None:
        if sampler is not None:
            if repeats != 1:
                raise ValueError(
                    f"repeats should be 1 when sampler is provided, not {repeats!r} "
                    "(the sampler decides how many indices it generates)"
                )
            if indices is not None:
                raise ValueError(
                    "indices should be None when sampler is provided (use a subset sampler "
                    "such as SubsetSampler or WeightedSubsetSampler instead)"
                )
            if not isinstance(sampler, AbstractSampler):
                if not (callable(getattr(sampler, "in_order_indices_batch_iterator", None))
                        and callable(getattr(sampler, "shuffled_indices_batch_iterator", None))):
                    raise TypeError(
                        f"sampler must be a batchup.sampling sampler, not {sampler!r}"
                    )
        else:
            check_repeats(repeats)
        self.include_indices = include_indices
        if sampler is not None:
            self.sampler = sampler
        elif indices is None:
            self.sampler = StandardSampler(length, repeats=repeats)
        else:
            self.sampler = SubsetSampler(indices, repeats=repeats)
        check = getattr(self.sampler, "check_data_length", None)
        if check is not None:
            try:
                check(length)
            except ValueError as e:
                name = "sampler" if sampler is not None else "indices"
                raise ValueError(f"{name} does not fit the data: {e}") from None

    @property
    def is_random_access(self) -> bool:
        return True

    def num_samples(self, **kwargs: Any) -> int | float:
        return self.sampler.num_indices_generated()

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    **kwargs: Any) -> int | float:
        self._check_iteration(batch_size, shuffle=shuffle, drop_last=drop_last)
        n = self.sampler.num_indices_generated()
        if n == np.inf:
            return np.inf
        return n // batch_size if drop_last else num_batches(n, batch_size)

    def samples_by_indices_nomapping(self, indices: Any) -> tuple:
        """Fetch the samples at data-level ``indices``."""
        raise NotImplementedError

    def samples_by_indices(self, indices: Any) -> tuple:
        """Fetch samples at positions ``indices`` (within the subset, if any)."""
        return self.samples_by_indices_nomapping(self.sampler.map_indices(indices))

    def _check_iteration(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> None:
        self.batch_indices_iterator(batch_size, shuffle=shuffle, **kwargs)

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               drop_last: bool = False, **kwargs: Any) -> Iterator:
        """Iterator over batches of data-level indices (no draw before the first ``next``).

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(5)], indices=np.array([4, 2, 0]))
        >>> [b.tolist() for b in ds.batch_indices_iterator(2)]
        [[4, 2], [0]]
        """
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        if drop_last is not False:
            if rng is not None:
                return self.sampler.shuffled_indices_batch_iterator(batch_size, rng,
                                                                    drop_last=drop_last)
            return self.sampler.in_order_indices_batch_iterator(batch_size, drop_last=drop_last)
        if rng is not None:
            return self.sampler.shuffled_indices_batch_iterator(batch_size, rng)
        return self.sampler.in_order_indices_batch_iterator(batch_size)

    def batch_iterator(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                       **kwargs: Any) -> Iterator[tuple]:
        """Iterator over mini-batches; checks its arguments now, draws nothing until used.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(10)], repeats=2)
        >>> [b[0].tolist() for b in ds.batch_iterator(4, shuffle=np.random.RandomState(12345))]
        [[0, 7, 3, 9], [6, 4, 1, 8], [5, 2, 4, 0], [9, 5, 7, 3], [8, 6, 1, 2]]
        """
        index_iter = self.batch_indices_iterator(batch_size, shuffle=shuffle,
                                                 drop_last=drop_last, **kwargs)
        return self._fetch(index_iter)

    def _fetch(self, index_iter: Iterator) -> Iterator[tuple]:
        fetch = self.samples_by_indices_nomapping
        for idx in index_iter:
            yield fetch(idx)


class ArrayDataSource(RandomAccessDataSource):
    """Mini-batches drawn from a list of arrays (or array-likes) of equal length.

    Parameters
    ----------
    data : list
        Arrays or array-likes (anything with ``__len__`` and ``__getitem__``
        accepting an integer index array), one per part of the batch. The list
        and its arrays are used as given, not copied.
    indices : array-like of int, optional
        Iterate over this subset only.
    repeats : int
        Passes over the data (-1: forever).
    sampler : AbstractSampler, optional
        E.g. a ``WeightedSampler``; excludes ``indices`` and ``repeats``.
    include_indices : bool
        Prepend the index array to every batch.

    Examples
    --------
    >>> X, y = np.arange(10) * 10, np.arange(10) % 2
    >>> ds = ArrayDataSource([X, y], include_indices=True)
    >>> next(ds.batch_iterator(3))
    (array([0, 1, 2]), array([ 0, 10, 20]), array([0, 1, 0]))
    """

    def __init__(self, data: list, indices: Any = None, repeats: int = 1,
                 sampler: AbstractSampler | None = None, include_indices: bool = False) -> None:
        if not isinstance(data, list):
            raise TypeError(
                f"data must be a list of array-like objects, not a {type(data)}"
                + (" (wrap it in a list: [X, y])" if isinstance(data, tuple) else "")
            )
        if not data:
            raise ValueError("data must be a non-empty list of array-like objects, not []")
        for i, d in enumerate(data):
            if not is_array_like(d):
                raise TypeError(
                    f"data[{i}] must be array-like (have __len__ and __getitem__), "
                    f"not a {type(d)}"
                )
        length = len(data[0])
        for i, d in enumerate(data[1:], 1):
            if len(d) != length:
                raise ValueError(
                    f"Arrays have inconsistent length; array 0 has length {length}, while "
                    f"array {i} has length {len(d)} (every array in data must have one entry "
                    "per sample)"
                )
        self.data = data
        super().__init__(length, indices=indices, repeats=repeats, sampler=sampler,
                         include_indices=include_indices)

    def samples_by_indices_nomapping(self, indices: Any) -> tuple:
        """The samples at data-level ``indices`` (an index array, slice or scalar).

        Examples
        --------
        >>> ArrayDataSource([np.arange(5) * 2]).samples_by_indices_nomapping(np.array([4, 0]))
        (array([8, 0]),)
        """
        batch = tuple([d[indices] for d in self.data])
        if self.include_indices:
            if isinstance(indices, slice):
                indices = np.arange(indices.start, indices.stop, indices.step)
            return (indices,) + batch
        return batch

    def _evaluation_batches(self, batch_size: int, kwargs: dict) -> Iterator:
        # Evaluating in order over NumPy arrays: hand out read-only views instead
        # of gathered copies (copying dominates e.g. a prediction pass). A function
        # that writes into its input is retried with copies (copy_on_read_only).
        sampler = self.sampler
        if (type(sampler) is StandardSampler and sampler.repeats == 1
                and set(kwargs) <= {"shuffle", "drop_last"}
                and resolve_shuffle(kwargs.get("shuffle")) is None
                and all(isinstance(d, np.ndarray) for d in self.data)):
            self._check_iteration(batch_size, **kwargs)
            return self._read_only_slices(int(batch_size), bool(kwargs.get("drop_last")))
        return self.batch_iterator(batch_size, **kwargs)

    def _read_only_slices(self, batch_size: int, drop_last: bool) -> Iterator[tuple]:
        length = self.sampler.length
        for start in range(0, length, batch_size):
            stop = min(start + batch_size, length)
            if drop_last and stop - start < batch_size:
                return
            views = []
            for d in self.data:
                v = d[start:stop]
                v.flags.writeable = False
                views.append(v)
            if self.include_indices:
                views.insert(0, np.arange(start, stop))
            yield tuple(views)

    def _fetch(self, index_iter: Iterator) -> Iterator[tuple]:
        # The hot loop of in-memory training: kept free of attribute look-ups.
        data = self.data
        if self.include_indices:
            for idx in index_iter:
                yield (idx,) + tuple([d[idx] for d in data])
        elif len(data) == 2:
            a, b = data
            for idx in index_iter:
                yield (a[idx], b[idx])
        else:
            for idx in index_iter:
                yield tuple([d[idx] for d in data])


class CallableDataSource(AbstractDataSource):
    """A data source whose batches come from a function.

    Parameters
    ----------
    batch_iterator_fn : callable
        ``batch_iterator_fn(batch_size, **kwargs)`` returns an iterator over batches.
    num_samples_fn : callable, int, np.inf or None
        The number of samples (a function receiving the iteration's kwargs, or a
        number); None if unknown.

    Examples
    --------
    >>> def batches(batch_size, **kwargs):
    ...     for i in range(0, 5, batch_size):
    ...         yield (np.arange(i, min(i + batch_size, 5)),)
    >>> ds = CallableDataSource(batches, num_samples_fn=5)
    >>> [b[0].tolist() for b in ds.batch_iterator(2)], ds.num_samples()
    ([[0, 1], [2, 3], [4]], 5)
    """

    def __init__(self, batch_iterator_fn: Callable, num_samples_fn: Any = None) -> None:
        if not callable(batch_iterator_fn):
            raise TypeError(f"batch_iterator_fn must be callable, not {batch_iterator_fn!r}")
        self.batch_iterator_fn = batch_iterator_fn
        self.num_samples_fn = check_count(num_samples_fn, "num_samples_fn", allow_callable=True)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        if self.num_samples_fn is None:
            return None
        if callable(self.num_samples_fn):
            return self.num_samples_fn(**kwargs)
        return self.num_samples_fn

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Any:
        check_batch_size(batch_size)
        if "shuffle" in kwargs:
            # Validate, and hand the user's function something with RandomState's methods.
            rng = resolve_shuffle(kwargs["shuffle"])
            if isinstance(kwargs["shuffle"], SeedPath):
                kwargs["shuffle"] = as_stream(rng)
        return self.batch_iterator_fn(batch_size, **kwargs)


class IteratorDataSource(AbstractDataSource):
    """A data source wrapping one iterator over batches (arguments are ignored).

    Parameters
    ----------
    batch_iter : iterator
        The batches.
    n_samples : int, np.inf or None
        Number of samples, if known.

    Examples
    --------
    >>> ds = IteratorDataSource(iter([(np.arange(2),), (np.arange(2, 4),)]), n_samples=4)
    >>> [b[0].tolist() for b in ds.batch_iterator(2)]
    [[0, 1], [2, 3]]
    """

    def __init__(self, batch_iter: Iterator, n_samples: Any = None) -> None:
        self.batch_iter = batch_iter
        self.n_samples = check_count(n_samples, "n_samples", allow_callable=False)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.n_samples

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        check_batch_size(batch_size)
        return self.batch_iter


class MapDataSource(AbstractDataSource):
    """Batches of ``source`` transformed by ``fn(*batch)`` (e.g. augmentation).

    Parameters
    ----------
    source : AbstractDataSource
        The source to transform.
    fn : callable
        Receives the parts of a batch as arguments, returns the new batch.

    Examples
    --------
    >>> ds = MapDataSource(ArrayDataSource([np.arange(4)]), lambda x: (x + 100,))
    >>> [b[0].tolist() for b in ds.batch_iterator(3)]
    [[100, 101, 102], [103]]
    """

    def __init__(self, source: AbstractDataSource, fn: Callable) -> None:
        if not is_data_source(source):
            raise TypeError(f"source must be a data source, not {source!r}")
        if not callable(fn):
            raise TypeError(f"fn must be callable (a function of the batch's parts), not {fn!r}")
        self.source = source
        self.fn = fn
        self._random_access = source_is_random_access(source)

    @property
    def is_random_access(self) -> bool:
        return self._random_access

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.source.num_samples(**kwargs)

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    **kwargs: Any) -> int | float | None:
        return source_num_batches(self.source, batch_size, shuffle=shuffle,
                                  drop_last=drop_last, **kwargs)

    def _check_iteration(self, batch_size: int, shuffle: Any = None, **kwargs: Any) -> None:
        check_source_iteration(self.source, batch_size, shuffle=shuffle, **kwargs)

    def batch_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        self._check_iteration(batch_size, **kwargs)
        return self._mapped(batch_size, kwargs)

    def _mapped(self, batch_size: int, kwargs: dict) -> Iterator:
        fn = self.fn
        for batch in self.source.batch_iterator(batch_size, **kwargs):
            yield fn(*batch)

    def _require_random_access(self) -> None:
        if not self._random_access:
            raise TypeError(f"the source of this MapDataSource is not random access: "
                            f"{self.source!r}")

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        self._require_random_access()
        return self.fn(*self.source.samples_by_indices_nomapping(indices))

    def samples_by_indices(self, indices: Any) -> Any:
        self._require_random_access()
        return self.fn(*self.source.samples_by_indices(indices))

    def batch_indices_iterator(self, batch_size: int, **kwargs: Any) -> Iterator:
        self._require_random_access()
        return self.source.batch_indices_iterator(batch_size, **kwargs)


def coerce_data_source(x: Any) -> AbstractDataSource:
    """Turn ``x`` into a data source.

    A data source is returned as is; a list or tuple of arrays becomes an
    ``ArrayDataSource``; an iterator an ``IteratorDataSource``; a callable a
    ``CallableDataSource``.

    Examples
    --------
    >>> type(coerce_data_source([np.arange(3)])).__name__
    'ArrayDataSource'
    >>> type(coerce_data_source(iter([]))).__name__
    'IteratorDataSource'
    """
    if isinstance(x, AbstractDataSource):
        return x
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("Cannot convert x to a data source; x is an empty sequence")
        for item in x:
            if not is_array_like(item):
                raise TypeError(
                    "Cannot convert x to a data source; x is a sequence and one of the elements "
                    f"is not an array-like object, rather a {type(item)}"
                )
        return ArrayDataSource(list(x))
    if isinstance(x, collections.abc.Iterator):
        return IteratorDataSource(x)
    if callable(x):
        return CallableDataSource(x)
    raise TypeError(
        "Cannot convert x to a data source; it should be a data source, a list or tuple of "
        f"arrays, an iterator or a callable, not a {type(x)}"
    )

"""Data sources: an index plan plus a way to fetch the samples at its indices.

Every source implements ``_plan(batch_size, rng, drop_last, shard, kwargs)``
(which indices, in which order: see ``plans``) and ``_fetch_item(item)``
(the batch for one planned item). ``batch_iterator`` joins the two in a
resumable :class:`~batchup._core.iteration.BatchIterator`; composite, choice,
map and parallel sources combine their components' plans and fetches.
Sources written for batchup 0.2.3 that implement ``batch_iterator``
themselves still work everywhere: their batches are wrapped in an
``IteratorPlan`` (which iterates but cannot save its position).
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import batch_map as _bm
from .buffers import BufferRing
from .chunked import ChunkCache, ChunkShuffle, resolve_chunks
from .context import call_in_batch
from .fetch import closed_error, closed_storage, read_rows, storage_kind
from .iteration import BatchIterator, IndexIterator, make_fingerprint
from .plans import IndexBatch, IteratorPlan
from .prefetch import PrefetchIterator
from .rng import SeedPath, ShuffleRNG, as_stream, resolve_shuffle
from .samplers import (
    AbstractSampler,
    StandardSampler,
    SubsetSampler,
    _check_drop_last,
    item_indices,
    num_batches,
)
from .shard import ShardSpec, resolve_shard
from .validate import (
    array_length,
    check_batch_size,
    check_count,
    check_repeats,
    is_array_like,
    is_integer,
    show,
)

#: Batches of NumPy arrays between these sizes (bytes) are prepared by two
#: background threads unless ``threads=`` says otherwise. Measured on 2 cores
#: with rows of 64 B to 12 KB: a hand-off costs about 10 us per batch, so
#: prefetching loses below ~256 KB per batch, breaks even around 512 KB and
#: gains 1.25-1.45x from 1 MB to 6 MB; above ~8 MB the gain depends on how the
#: allocator serves the batches (0.7-1.5x from run to run), so it is left to
#: ``threads=``.
AUTO_THREADS_BYTES = (1 << 20, 8 << 20)


#: Keyword arguments every source's ``batch_iterator`` takes.
_COMMON = ("shuffle", "drop_last", "shard", "state")


def signature_kwargs(fn: Callable, skip: tuple = ("batch_size",)) -> frozenset | None:
    """The keyword names ``fn`` accepts (None: any, it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return frozenset(names.difference(skip))


def accepted_kwargs(ds: Any) -> frozenset | None:
    """Extra keywords ``ds``'s iteration accepts beyond the common ones (None: any)."""
    own = getattr(ds, "_accepted_kwargs", None)
    if own is not None:
        return own()
    return signature_kwargs(ds.batch_iterator)


def check_kwargs(ds: Any, kwargs: dict, method: str, common: tuple = _COMMON) -> None:
    """Raise ``TypeError`` for a keyword that no part of ``ds`` accepts (a misspelling)."""
    if not kwargs:
        return
    accepted = accepted_kwargs(ds)
    if accepted is None:
        return
    for key in kwargs:
        if key not in accepted:
            known = list(common) + sorted(accepted)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {show(close[0])}?" if close else ""
            raise TypeError(
                f"{type(ds).__name__}.{method}() got an unexpected keyword argument {show(key)}"
                f"{hint} (it accepts batch_size, {', '.join(known)})"
            )


def describe(ds: Any) -> str:
    """A short structural description of a source (part of a state's fingerprint)."""
    own = getattr(ds, "_describe", None)
    return own() if own is not None else type(ds).__name__


def _lookalike_kwargs(rng: Any, drop_last: bool, kwargs: dict) -> dict:
    kw = dict(kwargs)
    if rng is not None:
        kw["shuffle"] = rng
    if drop_last:
        kw["drop_last"] = True
    return kw


def plan_for(ds: Any, batch_size: int, rng: ShuffleRNG, drop_last: bool,
             shard: ShardSpec | None, kwargs: dict) -> Any:
    """The plan of any source, batchup's own or a look-alike (which gets an ``IteratorPlan``)."""
    make = getattr(ds, "_plan", None)
    if make is not None:
        return make(batch_size, rng, drop_last, shard, kwargs)
    if shard is not None:
        raise TypeError(f"{type(ds).__name__} cannot be sharded (it has no index plan)")
    kw = _lookalike_kwargs(rng, drop_last, kwargs)
    return IteratorPlan(lambda: ds.batch_iterator(batch_size, **kw), type(ds).__name__,
                        lambda: source_num_batches(ds, batch_size, **kw))


def check_threads(threads: Any, prefetch: Any) -> tuple[int | None, int | None]:
    """Validate ``threads`` (None or an int >= 0) and ``prefetch`` (None or an int >= 1)."""
    for name, value, low in (("threads", threads, 0), ("prefetch", prefetch, 1)):
        if value is None:
            continue
        if not is_integer(value):
            raise TypeError(f"{name} must be None or an integer >= {low}, not {show(value)}")
        if value < low:
            raise ValueError(f"{name} must be None or an integer >= {low}, not {show(value)}")
    return (None if threads is None else int(threads),
            None if prefetch is None else int(prefetch))


def _is_row_index(indices: Any) -> bool:
    """An index the fetch protocol takes: a step-1 slice or a 1-D integer array."""
    if isinstance(indices, slice):
        return indices.step in (None, 1) and indices.start is not None and \
            indices.stop is not None
    return isinstance(indices, (np.ndarray, list)) and np.ndim(indices) == 1


def count_for(ds: Any, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> int | float | None:
    """How many batches ``ds`` yields (None: unknown), without building its plan."""
    count = getattr(ds, "_count_batches", None)
    if count is not None:
        return count(batch_size, rng, drop_last, shard, kwargs)
    return source_num_batches(ds, batch_size, **_lookalike_kwargs(rng, drop_last, kwargs))


def _passthrough(item: IndexBatch) -> Any:
    return item.indices


def fetch_for(ds: Any) -> Callable[[IndexBatch], Any]:
    """The function that turns one of ``ds``'s plan items into its batch."""
    return getattr(ds, "_fetch_item", _passthrough)


def indices_for(ds: Any) -> Callable[[IndexBatch], Any]:
    """The function that turns one of ``ds``'s plan items into its public index batch."""
    return getattr(ds, "_item_indices", _passthrough)


def child_rng(rng: ShuffleRNG, index: int) -> ShuffleRNG:
    """What component ``index`` of a composite receives: its own seed path, or the shared
    stream. The one place where the component-seed rule lives."""
    return rng.child(index) if isinstance(rng, SeedPath) else rng


def stream_of(rng: ShuffleRNG) -> Any:
    """The stream whose state a resumable iterator must save (None for seeds and in order)."""
    return None if rng is None or isinstance(rng, SeedPath) else rng


def is_data_source(x: Any) -> bool:
    """True for batchup data sources and for look-alikes with ``batch_iterator`` and
    ``num_samples`` (batchup 0.2.3 accepted any such object as a component)."""
    return isinstance(x, AbstractDataSource) or (
        callable(getattr(x, "batch_iterator", None)) and callable(getattr(x, "num_samples", None))
    )


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
    batchup's sources implement ``_plan`` and ``_fetch_item`` and inherit a
    resumable, shardable ``batch_iterator``; a subclass written for batchup
    0.2.3 may instead implement ``num_samples`` and ``batch_iterator`` itself.

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

    # -- the plan/fetch protocol -------------------------------------------------------

    def _overrides_batch_iterator(self) -> bool:
        return type(self).batch_iterator is not AbstractDataSource.batch_iterator

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> Any:
        """The index plan of one iteration. This default wraps a ``batch_iterator``
        implemented by a subclass (0.2.3 style)."""
        if not self._overrides_batch_iterator():
            raise NotImplementedError(f"Abstract for type {type(self).__name__}")
        if shard is not None:
            raise TypeError(f"{type(self).__name__} cannot be sharded (it implements "
                            "batch_iterator itself, without an index plan)")
        kw = _lookalike_kwargs(rng, drop_last, kwargs)
        return IteratorPlan(lambda: self.batch_iterator(batch_size, **kw), type(self).__name__,
                            lambda: self.num_batches(batch_size, **kw))

    def _fetch_item(self, item: IndexBatch) -> Any:
        """The batch for one planned item (for ``IteratorPlan`` items: the item itself)."""
        return item.indices

    def _accepted_kwargs(self) -> frozenset | None:
        """Keywords beyond ``shuffle``/``drop_last``/``shard``/``state`` (None: any)."""
        if self._overrides_batch_iterator():
            return signature_kwargs(self.batch_iterator)
        return frozenset()

    def _describe(self) -> str:
        return type(self).__name__

    def _iteration(self, method: str, batch_size: Any, shuffle: Any, drop_last: Any,
                   shard: Any, kwargs: dict) -> tuple:
        """Check the arguments of an iteration now; return them resolved."""
        batch_size = check_batch_size(batch_size)
        rng = resolve_shuffle(shuffle)
        drop_last = _check_drop_last(drop_last)
        shard = resolve_shard(shard)
        check_kwargs(self, kwargs, method,
                     _COMMON if method != "num_batches" else _COMMON[:3])
        return batch_size, rng, drop_last, shard

    def _iterator(self, cls: type, method: str, fetch: Callable, batch_size: Any,
                  shuffle: Any, drop_last: Any, shard: Any, state: Any,
                  kwargs: dict, threads: Any = 0, prefetch: Any = None,
                  reuse_buffers: bool = False) -> BatchIterator:
        threads, prefetch = check_threads(threads, prefetch)
        args = self._iteration(method, batch_size, shuffle, drop_last, shard, kwargs)
        plan = self._plan(*args, kwargs)
        fingerprint = make_fingerprint(describe(self), *args)
        if threads is None:
            threads = self._auto_threads(args[0], args[1])
        if reuse_buffers:
            # A batch stays intact until the next next(): with threads, the
            # ``prefetch`` batches being prepared and the one returned.
            fetch = BufferRing(self, 1 + (prefetch or 2 * threads if threads else 0)).fetch

        if threads:
            it: BatchIterator = PrefetchIterator(plan, fetch, fingerprint, stream_of(args[1]),
                                                 threads, prefetch or 2 * threads)
        else:
            it = cls(plan, fetch, fingerprint, stream_of(args[1]))
        if state is not None:
            it.set_state(state)
        return it

    def _auto_threads(self, batch_size: int, rng: ShuffleRNG) -> int:
        """Threads to prefetch with when ``threads=None`` (see ``ArrayDataSource``)."""
        return 0

    def _unplanned(self, batch_size: Any, shuffle: Any, drop_last: Any, shard: Any,
                   state: Any, kwargs: dict) -> Any:
        """The raw iterator of a source whose plan is an ``IteratorPlan`` (checked now)."""
        args = self._iteration("batch_iterator", batch_size, shuffle, drop_last, shard, kwargs)
        plan = self._plan(*args, kwargs)
        if state is not None:
            plan.set_state(state)  # raises NotResumableError
        return plan.make_iterator()

    def batch_iterator(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                       shard: Any = None, state: dict | None = None,
                       threads: int | None = None, prefetch: int | None = None,
                       **kwargs: Any) -> BatchIterator:
        """Iterator over mini-batches; checks its arguments now, draws nothing until used.

        Parameters
        ----------
        batch_size : int
            Samples per batch (per rank when sharded).
        shuffle : None, bool, int, tuple, SeedPath, RandomState or Generator
            None/False: in order. A seed: an order computed from the seed. A
            ``RandomState``: batchup 0.2.3's batches for the same stream.
        drop_last : bool
            Leave out a final batch shorter than ``batch_size``.
        shard : ShardSpec or (rank, world_size), optional
            Take this rank's share of every global batch (see ``ShardSpec``).
        state : dict, optional
            Continue from ``get_state()`` of an earlier iterator with the same arguments.
        threads : int, optional
            Background threads that prepare batches ahead (0: none, in the
            calling thread). None (the default) chooses: an ``ArrayDataSource``
            of NumPy arrays with large batches and a seed or in-order iteration
            uses two (see ``ArrayDataSource``), anything else none. The batches
            are the same either way; a ``.map`` function then runs in the
            threads, so it must be thread-safe.
        prefetch : int, optional
            How many batches the threads prepare ahead (default ``2 * threads``).

        Returns
        -------
        BatchIterator
            With ``get_state()`` / ``set_state()``.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(10)], repeats=2)
        >>> [b[0].tolist() for b in ds.batch_iterator(4, shuffle=np.random.RandomState(12345))]
        [[0, 7, 3, 9], [6, 4, 1, 8], [5, 2, 4, 0], [9, 5, 7, 3], [8, 6, 1, 2]]
        """
        return self._iterator(BatchIterator, "batch_iterator", self._fetch_item, batch_size,
                              shuffle, drop_last, shard, state, kwargs, threads, prefetch)

    def num_batches(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                    shard: Any = None, **kwargs: Any) -> int | float | None:
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
        args = self._iteration("num_batches", batch_size, shuffle, drop_last, shard, kwargs)
        if not self._overrides_batch_iterator() or type(self)._plan is not AbstractDataSource._plan:
            return self._count_batches(*args, kwargs)
        return None

    def _count_batches(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
                       shard: ShardSpec | None, kwargs: dict) -> int | float | None:
        return self._plan(batch_size, rng, drop_last, shard, kwargs).num_batches()

    def _check_iteration(self, batch_size: int, shuffle: Any = None, drop_last: Any = False,
                         shard: Any = None, **kwargs: Any) -> None:
        """Raise now if ``batch_iterator`` would fail with these arguments."""
        args = self._iteration("batch_iterator", batch_size, shuffle, drop_last, shard, kwargs)
        self._plan(*args, kwargs)

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
                    f"repeats should be 1 when sampler is provided, not {show(repeats)} "
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
                        f"sampler must be a batchup.sampling sampler, not {show(sampler)}"
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

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> Any:
        rng = resolve_chunks(rng, self._chunked_arrays())
        sampler = self.sampler
        plan = getattr(sampler, "plan", None)
        if plan is None:  # a duck-typed sampler with the two iterator methods only
            return AbstractSampler.plan(sampler, batch_size, rng, drop_last, shard)
        return plan(batch_size, rng, drop_last, shard)

    def _chunked_arrays(self) -> list | None:
        """The arrays ``ChunkShuffle(chunk_size=None)`` takes its chunk size from (None: none)."""
        return None

    def _count_batches(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
                       shard: ShardSpec | None, kwargs: dict) -> int | float | None:
        count = getattr(self.sampler, "num_batches", None)
        if count is None:
            return None
        # Asked of the sampler, so that a weighted source answers without shuffle.
        return count(batch_size, drop_last=drop_last, shard=shard)

    def _describe(self) -> str:
        sampler = getattr(self.sampler, "describe", None)
        return f"{type(self).__name__}({sampler() if sampler else type(self.sampler).__name__})"

    def _fetch_item(self, item: IndexBatch) -> Any:
        return self.samples_by_indices_nomapping(item_indices(item))

    def _item_indices(self, item: IndexBatch) -> Any:
        return item_indices(item)

    def samples_by_indices_nomapping(self, indices: Any) -> tuple:
        """Fetch the samples at data-level ``indices``."""
        raise NotImplementedError

    def samples_by_indices(self, indices: Any) -> tuple:
        """Fetch samples at positions ``indices`` (within the subset, if any)."""
        return self.samples_by_indices_nomapping(self.sampler.map_indices(indices))

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               drop_last: bool = False, shard: Any = None,
                               state: dict | None = None, **kwargs: Any) -> IndexIterator:
        """Iterator over batches of data-level indices (no draw before the first ``next``).

        Takes the arguments of ``batch_iterator``, and has ``get_state``/``set_state`` too.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(5)], indices=np.array([4, 2, 0]))
        >>> [b.tolist() for b in ds.batch_indices_iterator(2)]
        [[4, 2], [0]]
        """
        return self._iterator(IndexIterator, "batch_indices_iterator", self._item_indices,
                              batch_size, shuffle, drop_last, shard, state, kwargs)


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
            closed = closed_storage(d)
            if closed is not None:
                raise closed_error(closed, f"data[{i}]")
        length = array_length(data[0])
        for i, d in enumerate(data[1:], 1):
            if array_length(d) != length:
                raise ValueError(
                    f"Arrays have inconsistent length; array 0 has length {length}, while "
                    f"array {i} has length {array_length(d)} (every array in data must have "
                    "one entry per sample)"
                )
        self.data = data
        # Plain NumPy arrays take the inline gather; anything else reads_rows().
        self._all_numpy = all(isinstance(d, np.ndarray) for d in data)
        super().__init__(length, indices=indices, repeats=repeats, sampler=sampler,
                         include_indices=include_indices)

    def samples_by_indices_nomapping(self, indices: Any) -> tuple:
        """The samples at data-level ``indices`` (an index array, slice or scalar).

        Examples
        --------
        >>> ArrayDataSource([np.arange(5) * 2]).samples_by_indices_nomapping(np.array([4, 0]))
        (array([8, 0]),)
        """
        if self._all_numpy or not _is_row_index(indices):
            batch = tuple([d[indices] for d in self.data])
        else:
            # Storage and other array-likes read through the fetch protocol
            # (sorted, contiguous reads; PyTables nodes read rows, not points).
            batch = tuple([read_rows(d, indices) for d in self.data])
        if self.include_indices:
            if isinstance(indices, slice):
                indices = np.arange(indices.start, indices.stop, indices.step)
            return (indices,) + batch
        return batch

    def _evaluation_batches(self, batch_size: int, kwargs: dict) -> Iterator:
        # Evaluating in order over NumPy arrays: hand out read-only views instead
        # of gathered copies (copying dominates e.g. a prediction pass). A function
        # that writes into its input gets copies from then on (copy_on_read_only).
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

    def _auto_threads(self, batch_size: int, rng: ShuffleRNG) -> int:
        """Two prefetch threads for large batches of NumPy arrays, else none.

        Only where it pays and changes nothing observable: plain NumPy data
        (no ``.map`` function to run in threads), batches within
        ``AUTO_THREADS_BYTES``, a seeded or in-order iteration (a stream
        ``shuffle`` is left to the calling thread, so that draws shared with
        other code happen when 0.2.3 made them), and two or more usable CPUs.
        """
        if not self._all_numpy or type(self)._fetch_item is not ArrayDataSource._fetch_item:
            return 0
        if rng is not None and not isinstance(rng, SeedPath):
            return 0
        row_bytes = sum(d.dtype.itemsize * int(np.prod(d.shape[1:])) for d in self.data)
        low, high = AUTO_THREADS_BYTES
        if not low <= batch_size * row_bytes <= high:
            return 0
        from batchup._pool.cpu import available_cpus  # affinity and cgroup quota

        return 2 if available_cpus() >= 2 else 0

    def batch_iterator(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                       shard: Any = None, state: dict | None = None,
                       threads: int | None = None, prefetch: int | None = None,
                       reuse_buffers: bool = False, **kwargs: Any) -> BatchIterator:
        """Iterator over mini-batches (see ``AbstractDataSource.batch_iterator``).

        Parameters
        ----------
        reuse_buffers : bool
            Read every batch into a few buffers allocated once instead of new
            arrays: no allocation per batch, but **a batch is valid only until
            the next** ``next()`` (later batches overwrite it; copy what you
            keep). Off by default.

        Examples
        --------
        >>> ds = ArrayDataSource([np.arange(6)])
        >>> [b[0].tolist() for b in ds.batch_iterator(4, reuse_buffers=True)]
        [[0, 1, 2, 3], [4, 5]]
        """
        if not isinstance(reuse_buffers, (bool, np.bool_)):
            raise TypeError(f"reuse_buffers must be True or False, not {show(reuse_buffers)}")
        return self._iterator(BatchIterator, "batch_iterator", self._fetch_item, batch_size,
                              shuffle, drop_last, shard, state, kwargs, threads, prefetch,
                              bool(reuse_buffers))

    def _overrides_batch_iterator(self) -> bool:
        # This class's own override only adds ``reuse_buffers``; a subclass's is 0.2.3 style.
        return type(self).batch_iterator is not ArrayDataSource.batch_iterator

    def _chunked_arrays(self) -> list | None:
        return self.data

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_chunk_cache", None)  # rows read by this process only
        return state

    def _read(self, i: int, item: IndexBatch, out: np.ndarray | None = None) -> np.ndarray:
        """Array ``i``'s rows of ``item``: whole chunks through the chunk cache when the
        iteration is chunk-shuffled and the array is storage, else ``read_rows``."""
        d, idx, seed = self.data[i], item.indices, item.seed
        if (type(seed) is not ChunkShuffle or type(idx) is slice
                or storage_kind(d) in ("numpy", "generic")):
            return read_rows(d, idx, out=out)
        cache = self.__dict__.get("_chunk_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_chunk_cache", ChunkCache(2 * seed.window))
        # Chunks of one size are cached apart from those of another (same source,
        # other iterators).
        rows = cache.read(d, (i, item.epoch, seed.chunk_size), np.asarray(idx), seed.chunk_size,
                          read_rows)
        if out is None:
            return rows
        out[...] = rows
        return out

    def _fetch_item(self, item: IndexBatch) -> tuple:
        # The hot path of in-memory training: one gather per array, nothing else.
        idx = item.indices
        if type(idx) is slice:
            return self._fetch_slice(idx)
        data = self.data
        if not self._all_numpy:
            batch = tuple([self._read(i, item) for i in range(len(data))])
            return (idx,) + batch if self.include_indices else batch
        if self.include_indices:
            return (idx,) + tuple([d[idx] for d in data])
        if len(data) == 2:
            return (data[0][idx], data[1][idx])
        return tuple([d[idx] for d in data])

    def _reads_into_buffers(self) -> bool:
        cls = type(self)
        return (cls._fetch_item is ArrayDataSource._fetch_item
                and cls.samples_by_indices_nomapping
                is ArrayDataSource.samples_by_indices_nomapping)

    def _fetch_into(self, item: IndexBatch, allocate: Callable) -> tuple | None:
        """The batch of ``item`` read straight into ``allocate(specs)``'s arrays, or None.

        A process pool passes the allocator of the task's shared-memory slot,
        so the batch is copied once, from the data into the slot. None (fetch
        as usual) when ``allocate`` gives no arrays, when an array-like has no
        ``shape``/``dtype``, for anything but an integer index array or a slice,
        or when a subclass fetches its own way.
        """
        if not self._reads_into_buffers():
            return None
        idx = item.indices
        if type(idx) is slice:
            n = idx.stop - idx.start
        elif isinstance(idx, np.ndarray) and idx.ndim == 1 and idx.dtype.kind in "iu":
            n = len(idx)
        else:
            return None
        specs = []
        for d in self.data:
            shape, dtype = getattr(d, "shape", None), getattr(d, "dtype", None)
            if not shape or dtype is None:
                return None
            specs.append(((n,) + tuple(shape[1:]), np.dtype(dtype)))
        if self.include_indices:
            rows = np.arange(idx.start, idx.stop) if type(idx) is slice else idx
            specs.insert(0, (rows.shape, rows.dtype))
        out = allocate(specs) if n else None
        if out is None:
            return None
        if self.include_indices:
            out[0][...] = rows
        for i, o in enumerate(out[len(out) - len(self.data):]):
            self._read(i, item, out=o)
        return tuple(out)

    def _fetch_slice(self, s: slice) -> tuple:
        # A contiguous in-order run: copied out of NumPy arrays (batches never alias
        # the data, as in 0.2.3), one contiguous read from storage, the index array
        # other array-likes always got.
        out = [read_rows(d, s) for d in self.data]
        if self.include_indices:
            out.insert(0, np.arange(s.start, s.stop))
        return tuple(out)


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
            raise TypeError(f"batch_iterator_fn must be callable, not {show(batch_iterator_fn)}")
        self.batch_iterator_fn = batch_iterator_fn
        self.num_samples_fn = check_count(num_samples_fn, "num_samples_fn", allow_callable=True)

    def num_samples(self, **kwargs: Any) -> int | float | None:
        if self.num_samples_fn is None:
            return None
        if callable(self.num_samples_fn):
            return self.num_samples_fn(**kwargs)
        return self.num_samples_fn

    def _accepted_kwargs(self) -> frozenset | None:
        return signature_kwargs(self.batch_iterator_fn)

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> IteratorPlan:
        if shard is not None:
            raise TypeError("CallableDataSource cannot be sharded: its function makes the "
                            "batches (give it the rank itself, or use an ArrayDataSource)")
        accepted = self._accepted_kwargs()
        kw = {k: v for k, v in kwargs.items() if accepted is None or k in accepted}
        if rng is not None:
            # The user's function gets something with RandomState's methods.
            kw["shuffle"] = as_stream(rng)
        if drop_last:
            kw["drop_last"] = True
        fn = self.batch_iterator_fn
        return IteratorPlan(lambda: fn(batch_size, **kw), "CallableDataSource")

    def batch_iterator(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                       shard: Any = None, state: dict | None = None, **kwargs: Any) -> Any:
        """What the function returns for these (checked) arguments, as in 0.2.3.

        It cannot save its position: ``state`` raises ``NotResumableError``.
        """
        return self._unplanned(batch_size, shuffle, drop_last, shard, state, kwargs)


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

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> IteratorPlan:
        if shard is not None:
            raise TypeError("IteratorDataSource cannot be sharded: it wraps one iterator")
        return IteratorPlan(lambda: self.batch_iter, "IteratorDataSource")

    def batch_iterator(self, batch_size: int, shuffle: Any = None, drop_last: bool = False,
                       shard: Any = None, state: dict | None = None, **kwargs: Any) -> Any:
        """The wrapped iterator itself, as in 0.2.3 (arguments are checked, then ignored).

        It cannot save its position: ``state`` raises ``NotResumableError``.
        """
        return self._unplanned(batch_size, shuffle, drop_last, shard, state, kwargs)


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
            raise TypeError(f"source must be a data source, not {show(source)}")
        if not callable(fn):
            raise TypeError(
                f"fn must be callable (a function of the batch's parts), not {show(fn)}")
        self.source = source
        self.fn = fn
        self._random_access = source_is_random_access(source)

    @property
    def is_random_access(self) -> bool:
        return self._random_access

    def num_samples(self, **kwargs: Any) -> int | float | None:
        return self.source.num_samples(**kwargs)

    def _accepted_kwargs(self) -> frozenset | None:
        return accepted_kwargs(self.source)

    def _describe(self) -> str:
        return f"{describe(self.source)}.map()"

    def _plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
              shard: ShardSpec | None, kwargs: dict) -> Any:
        return plan_for(self.source, batch_size, rng, drop_last, shard, kwargs)

    def _count_batches(self, batch_size: int, rng: ShuffleRNG, drop_last: bool,
                       shard: ShardSpec | None, kwargs: dict) -> int | float | None:
        return count_for(self.source, batch_size, rng, drop_last, shard, kwargs)

    def _fetch_item(self, item: IndexBatch) -> Any:
        # The map runs with the item as "current batch": seeded per-batch and
        # per-sample generators are the same serially and in any pool.
        fn, fetch = self.fn, fetch_for(self.source)
        return call_in_batch(item, lambda: fn(*fetch(item)))

    def _item_indices(self, item: IndexBatch) -> Any:
        return indices_for(self.source)(item)

    def _require_random_access(self) -> None:
        if not self._random_access:
            raise TypeError(f"the source of this MapDataSource is not random access: "
                            f"{show(self.source)}")

    def samples_by_indices_nomapping(self, indices: Any) -> Any:
        self._require_random_access()
        return self.fn(*self.source.samples_by_indices_nomapping(indices))

    def samples_by_indices(self, indices: Any) -> Any:
        self._require_random_access()
        return self.fn(*self.source.samples_by_indices(indices))

    def batch_indices_iterator(self, batch_size: int, shuffle: Any = None,
                               drop_last: bool = False, shard: Any = None,
                               state: dict | None = None, **kwargs: Any) -> IndexIterator:
        """The index batches of the source (see ``RandomAccessDataSource``)."""
        self._require_random_access()
        return self._iterator(IndexIterator, "batch_indices_iterator", self._item_indices,
                              batch_size, shuffle, drop_last, shard, state, kwargs)


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

"""Samplers: what indices a data source visits, in which order, how often."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .chunked import ChunkedOrder, ChunkShuffle, resolve_chunks
from .iteration import IndexIterator, make_fingerprint
from .order import InOrder, SeededOrder, StreamOrder
from .plans import IndexBatch, IteratorPlan, PassPlan, count_batches
from .rng import SeedPath, ShuffleRNG, resolve_shuffle
from .shard import ShardSpec, resolve_shard
from .validate import as_index_array, check_batch_size, check_repeats, is_integer, show


def content_digest(owner: Any, *arrays: np.ndarray) -> str:
    """A short digest of arrays a sampler was built from, computed once per sampler.

    Part of a state's fingerprint: a state from a different subset or other
    weights of the same length is rejected instead of silently restored.
    """
    digest = getattr(owner, "_digest", None)
    if digest is None:
        h = hashlib.sha1()
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(a.dtype.str.encode())
            h.update(a.tobytes())
        digest = h.hexdigest()[:12]
        owner._digest = digest
    return digest


class InOrderNotSupportedError(ValueError, NotImplementedError):
    """Raised when a sampler that can only draw at random is asked for in-order batches.

    It is a ``ValueError`` (a bad ``shuffle`` argument) and, for code written
    against batchup 0.2.3, a ``NotImplementedError``.

    Examples
    --------
    >>> issubclass(InOrderNotSupportedError, NotImplementedError)
    True
    """


def num_batches(n: int | float, batch_size: int) -> int | float:
    """Number of batches needed to cover ``n`` samples: ``ceil(n / batch_size)``.

    Examples
    --------
    >>> num_batches(20, 5), num_batches(21, 5), num_batches(0, 5)
    (4, 5, 0)
    """
    b = n // batch_size
    if n % batch_size > 0:
        b += 1
    return b


class AbstractSampler:
    """Base class of samplers.

    A sampler yields batches of *data-level* indices; a data source turns them
    into batches of samples. Subclasses implement ``num_indices_generated``,
    ``in_order_indices_batch_iterator`` and ``shuffled_indices_batch_iterator``.

    Examples
    --------
    >>> StandardSampler(5).num_indices_generated()
    5
    """

    def num_indices_generated(self) -> int | float:
        """Number of indices one iteration yields (``np.inf`` for infinite samplers)."""
        raise NotImplementedError

    def map_indices(self, indices: Any) -> Any:
        """Map positions (e.g. within a subset) to data-level indices."""
        return indices

    def in_order_indices_batch_iterator(self, batch_size: int) -> Iterator[np.ndarray]:
        """Iterator over index batches in order."""
        raise NotImplementedError(f"Abstract for type {type(self).__name__}")

    def shuffled_indices_batch_iterator(
        self, batch_size: int, shuffle_rng: ShuffleRNG
    ) -> Iterator[np.ndarray]:
        """Iterator over index batches in random order, drawing from ``shuffle_rng``."""
        raise NotImplementedError(f"Abstract for type {type(self).__name__}")

    def num_batches(self, batch_size: int, drop_last: bool = False,
                    shard: Any = None) -> int | float:
        """Number of batches an iteration yields (``np.inf`` if infinite).

        Examples
        --------
        >>> StandardSampler(10, repeats=3).num_batches(7)
        5
        """
        return count_batches(self.num_indices_generated(), check_batch_size(batch_size),
                             _check_drop_last(drop_last), resolve_shard(shard))

    def check_data_length(self, length: int) -> None:
        """Raise ``ValueError`` if this sampler would index past ``length`` samples."""

    def describe(self) -> str:
        """A short description (part of an iteration state's fingerprint)."""
        return type(self).__name__

    def plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool = False,
             shard: ShardSpec | None = None) -> Any:
        """The index plan for one iteration (``rng``: None, a ``SeedPath`` or a stream).

        Samplers written for batchup 0.2.3 implement only the two iterator
        methods; their plan iterates those (and cannot save its position).
        """
        if shard is not None:
            raise TypeError(f"{type(self).__name__} cannot shard (it has no index plan); "
                            "shard=None is required")
        if rng is None:
            make = lambda: self.in_order_indices_batch_iterator(batch_size)  # noqa: E731
        else:
            make = lambda: self.shuffled_indices_batch_iterator(batch_size, rng)  # noqa: E731
        return IteratorPlan(make, type(self).__name__)


def _index_batches(plan: Any, rng: Any, fingerprint_source: str, batch_size: int,
                   drop_last: bool, shard: Any) -> IndexIterator:
    return IndexIterator(plan, item_indices,
                         make_fingerprint(fingerprint_source, batch_size, rng, drop_last, shard),
                         None if rng is None or isinstance(rng, SeedPath) else rng)


def item_indices(item: IndexBatch) -> Any:
    """An item's indices as batchup 0.2.3 handed them out (slices become arrays)."""
    idx = item.indices
    if isinstance(idx, slice):
        return np.arange(idx.start, idx.stop)
    return idx


def resolve_sampler_rng(shuffle_rng: Any) -> Any:
    """Resolve what a sampler's shuffled iterator was given (a seed, a stream, ...)."""
    rng = resolve_shuffle(shuffle_rng)
    if rng is None:
        raise ValueError(
            f"shuffle_rng must be a seed or a random generator for shuffled iteration, "
            f"not {show(shuffle_rng)}; use in_order_indices_batch_iterator for in-order batches"
        )
    return rng


def _check_drop_last(drop_last: Any) -> bool:
    if not isinstance(drop_last, (bool, np.bool_)):
        raise TypeError(f"drop_last must be True or False, not {show(drop_last)}")
    return bool(drop_last)


class StandardSampler(AbstractSampler):
    """Visit every index ``0 .. length-1``, ``repeats`` times (-1: forever).

    Parameters
    ----------
    length : int
        Number of samples.
    repeats : int
        Number of passes, or -1 for infinite iteration.

    Examples
    --------
    >>> s = StandardSampler(5, repeats=2)
    >>> [b.tolist() for b in s.in_order_indices_batch_iterator(2)]
    [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]
    >>> [b.tolist() for b in s.shuffled_indices_batch_iterator(2, np.random.RandomState(0))]
    [[2, 0], [1, 3], [4, 0], [2, 1], [4, 3]]
    """

    def __init__(self, length: int, repeats: int = 1) -> None:
        if not is_integer(length):
            raise TypeError(f"length must be a non-negative integer, not {show(length)}")
        if length < 0:
            raise ValueError(f"length must be a non-negative integer, not {show(length)}")
        self.repeats = check_repeats(repeats)
        self.length = int(length)
        if self.length == 0 and self.repeats == -1:
            raise ValueError(
                "repeats=-1 (infinite) needs at least one sample; the sampler has length 0"
            )

    def num_indices_generated(self) -> int | float:
        if self.repeats == -1:
            return np.inf
        return self.length * self.repeats

    def check_data_length(self, length: int) -> None:
        if self.length > length:
            raise ValueError(
                f"sampler covers {self.length} samples but the data has only {length}"
            )

    def _values(self) -> np.ndarray | None:
        return None

    def describe(self) -> str:
        values = self._values()
        content = "" if values is None else f", indices sha1 {content_digest(self, values)}"
        return f"{type(self).__name__}(n={self.length}, repeats={self.repeats}{content})"

    def plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool = False,
             shard: ShardSpec | None = None) -> PassPlan:
        values = self._values()
        if rng is None:
            order: Any = InOrder(self.length, values)
        elif isinstance(rng, ChunkShuffle):
            order = ChunkedOrder(resolve_chunks(rng, None), self.length, values)
        elif isinstance(rng, SeedPath):
            order = SeededOrder(rng, self.length, values)
        else:
            order = StreamOrder(rng, self.length, values)
        return PassPlan(order, self.length, batch_size, self.repeats, drop_last, shard,
                        seed=rng if isinstance(rng, SeedPath) else None)

    def in_order_indices_batch_iterator(
        self, batch_size: int, drop_last: bool = False
    ) -> IndexIterator:
        batch_size = check_batch_size(batch_size)
        drop_last = _check_drop_last(drop_last)
        return _index_batches(self.plan(batch_size, None, drop_last), None, self.describe(),
                              batch_size, drop_last, None)

    def shuffled_indices_batch_iterator(
        self, batch_size: int, shuffle_rng: ShuffleRNG, drop_last: bool = False
    ) -> IndexIterator:
        batch_size = check_batch_size(batch_size)
        drop_last = _check_drop_last(drop_last)
        rng = resolve_sampler_rng(shuffle_rng)
        return _index_batches(self.plan(batch_size, rng, drop_last), rng, self.describe(),
                              batch_size, drop_last, None)


class SubsetSampler(StandardSampler):
    """Visit the given ``indices`` (a subset of the data), ``repeats`` times.

    Shuffling permutes the subset itself, so batches hold data-level indices.

    Parameters
    ----------
    indices : array-like of int
        1-D data-level indices, visited in this order when iterating in order.
    repeats : int
        Number of passes, or -1 for infinite iteration.

    Examples
    --------
    >>> s = SubsetSampler(np.array([50, 40, 30, 20, 10]))
    >>> [b.tolist() for b in s.shuffled_indices_batch_iterator(2, np.random.RandomState(7))]
    [[50, 20], [30, 40], [10]]
    """

    def __init__(self, indices: Any, repeats: int = 1) -> None:
        arr = as_index_array(indices)
        super().__init__(len(arr), repeats)
        # A list becomes an int64 array; an integer array is kept as given.
        self.indices = arr if isinstance(indices, np.ndarray) else arr.astype(np.int64)

    def map_indices(self, indices: Any) -> Any:
        return self.indices[indices]

    def check_data_length(self, length: int) -> None:
        if self.length == 0:
            return
        lo, hi = self.indices.min(), self.indices.max()
        if lo < 0 or hi >= length:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"indices must lie in [0, {length}) for data of length {length}; "
                f"found index {bad}"
            )

    def _values(self) -> np.ndarray | None:
        return self.indices

"""Samplers: what indices a data source visits, in which order, how often."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .passes import PassBatchIterator
from .rng import SeedPath, ShuffleRNG, resolve_shuffle
from .validate import as_index_array, check_batch_size, check_repeats, is_integer


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


def _count_batches(n_indices: int | float, batch_size: int, drop_last: bool) -> int | float:
    if n_indices == np.inf:
        return np.inf
    return n_indices // batch_size if drop_last else num_batches(n_indices, batch_size)


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

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int | float:
        """Number of batches an iteration yields (``np.inf`` if infinite).

        Examples
        --------
        >>> StandardSampler(10, repeats=3).num_batches(7)
        5
        """
        return _count_batches(self.num_indices_generated(), check_batch_size(batch_size),
                              drop_last)

    def check_data_length(self, length: int) -> None:
        """Raise ``ValueError`` if this sampler would index past ``length`` samples."""


def resolve_sampler_rng(shuffle_rng: Any) -> Any:
    """Resolve what a sampler's shuffled iterator was given (a seed, a stream, ...)."""
    rng = resolve_shuffle(shuffle_rng)
    if rng is None:
        raise ValueError(
            f"shuffle_rng must be a seed or a random generator for shuffled iteration, "
            f"not {shuffle_rng!r}; use in_order_indices_batch_iterator for in-order batches"
        )
    return rng


def _check_drop_last(drop_last: Any) -> bool:
    if not isinstance(drop_last, (bool, np.bool_)):
        raise TypeError(f"drop_last must be True or False, not {drop_last!r}")
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
            raise TypeError(f"length must be a non-negative integer, not {length!r}")
        if length < 0:
            raise ValueError(f"length must be a non-negative integer, not {length!r}")
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

    def _positions(self) -> np.ndarray:
        return np.arange(self.length)

    def _permute(self, rng: Any, pass_number: int) -> np.ndarray:
        if isinstance(rng, SeedPath):
            return rng.generator(pass_number).permutation(self.length)
        return rng.permutation(self.length)

    def in_order_indices_batch_iterator(
        self, batch_size: int, drop_last: bool = False
    ) -> Iterator[np.ndarray]:
        batch_size = check_batch_size(batch_size)
        drop_last = _check_drop_last(drop_last)
        seq: list[np.ndarray] = []

        def draw(_pass: int) -> np.ndarray:
            if not seq:
                seq.append(self._positions())
            return seq[0]

        return PassBatchIterator(draw, self.length, batch_size, self.repeats, drop_last)

    def shuffled_indices_batch_iterator(
        self, batch_size: int, shuffle_rng: ShuffleRNG, drop_last: bool = False
    ) -> Iterator[np.ndarray]:
        batch_size = check_batch_size(batch_size)
        drop_last = _check_drop_last(drop_last)
        rng = resolve_sampler_rng(shuffle_rng)
        return PassBatchIterator(
            lambda p: self._permute(rng, p), self.length, batch_size, self.repeats,
            drop_last,
        )


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

    def _positions(self) -> np.ndarray:
        return self.indices

    def _permute(self, rng: Any, pass_number: int) -> np.ndarray:
        if isinstance(rng, SeedPath):
            return rng.generator(pass_number).permutation(self.indices)
        return rng.permutation(self.indices)

"""Apply a function to every batch and gather the results: ``batch_map_concat``/``_mean``."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .structure import length_of_batch
from .validate import show


def _batches(batch_iter: Iterable, progress_iter_func: Callable | None, total: Any) -> Iterable:
    if progress_iter_func is not None:
        return progress_iter_func(batch_iter, total=total, leave=False)
    return batch_iter


def _read_only_positions(args: tuple) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and not a.flags.writeable]


def _same_contents(copy: np.ndarray, original: np.ndarray) -> bool:
    """Whether ``copy`` still holds the contents of ``original``, byte for byte.

    Bytes rather than values, so NaN equals NaN; references for object arrays.
    """
    if original.dtype == object:
        if copy.dtype != object or copy.size != original.size:
            return False
        return all(a is b for a, b in zip(copy.flat, original.flat, strict=True))
    if original.dtype.hasobject or copy.dtype.hasobject:
        return False  # structured with object fields: assume it was written (copies are safe)
    a = np.ascontiguousarray(copy).reshape(-1).view(np.uint8)
    b = np.ascontiguousarray(original).reshape(-1).view(np.uint8)
    return a.shape == b.shape and bool(np.array_equal(a, b))


class _ReadOnlyGuard:
    """Callable wrapper made by :func:`copy_on_read_only`."""

    def __init__(self, func: Callable) -> None:
        self.func = func
        self._copy_inputs: bool | None = None  # None until a batch with read-only arrays
        self._probe_batch = 0
        self._n_batches = 0

    def __call__(self, *args: Any) -> Any:
        return self.apply(args, None)

    def apply(self, batch: tuple, prepend: tuple | None) -> Any:
        """Call the function on ``prepend + batch``; only ``batch`` items may be copied."""
        self._n_batches += 1
        before = () if prepend is None else prepend
        if self._copy_inputs:
            return self.func(*before, *_copies(batch, _read_only_positions(batch)))
        if self._copy_inputs is None:
            ro = _read_only_positions(batch)
            if not ro:
                return self.func(*before, *batch)
            # Probe the first batch: the function gets writable copies, and comparing
            # them with the views afterwards shows whether it writes into its input.
            # Deciding this way, rather than retrying after NumPy's read-only error,
            # means the function (and its side effects) never runs twice on a batch.
            copies = _copies(batch, ro)
            result = self.func(*before, *copies)
            self._probe_batch = self._n_batches
            self._copy_inputs = not all(_same_contents(copies[i], batch[i]) for i in ro)
            return result
        try:
            return self.func(*before, *batch)
        except ValueError as e:
            if "read-only" not in str(e) or not _read_only_positions(batch):
                raise
            name = getattr(self.func, "__qualname__", repr(self.func))
            first = ("the first batch" if self._probe_batch == 1
                     else f"batch {self._probe_batch}")
            raise ValueError(
                f"{name} wrote into its input on batch {self._n_batches} after leaving its "
                f"input unchanged on {first}, so it was given read-only views of the data; "
                "copy the input inside the function (e.g. `x = x.copy()`) before modifying it"
            ) from e


def _copies(batch: tuple, positions: list[int]) -> list:
    out = list(batch)
    for i in positions:
        out[i] = batch[i].copy()
    return out


def copy_on_read_only(func: Callable) -> Callable:
    """Wrap ``func`` so that it can be given read-only views and still write into its input.

    The ``batch_map_*`` methods pass read-only zero-copy views of in-memory
    arrays where they can, while iterating the source would give the function
    writable copies. On the first batch with read-only arrays the wrapper
    passes writable copies of them and compares the copies with the views
    afterwards: if the function modified them, every later batch gets copies
    too; otherwise later batches get the views. The function is called exactly
    once per batch. A function that leaves its input unchanged on that first
    batch but writes into it on a later one gets a ``ValueError`` telling it to
    copy its input. Other arguments (writable arrays, non-arrays and the
    ``prepend_args`` of ``batch_map_*``) are passed as they are.
    """
    return _ReadOnlyGuard(func)


def _check_n_batches(n_batches: Any) -> None:
    if n_batches is not None and (
        not isinstance(n_batches, (numbers.Integral, np.integer)) or isinstance(n_batches, bool)
        or n_batches < 0
    ):
        raise ValueError(f"n_batches must be None or a non-negative integer, not {show(n_batches)}")


def _apply(func: Callable, batch: Any, prepend: tuple | None) -> Any:
    if isinstance(func, _ReadOnlyGuard):
        return func.apply(tuple(batch), prepend)
    if prepend is not None:
        return func(*(prepend + tuple(batch)))
    return func(*batch)


def _prepend(prepend_args: Any) -> tuple | None:
    if prepend_args is None:
        return None
    if not isinstance(prepend_args, (tuple, list)):
        raise TypeError(f"prepend_args must be a tuple (or list), not {show(prepend_args)}")
    return tuple(prepend_args)


def batch_map_concat(
    func: Callable,
    batch_iter: Iterable,
    progress_iter_func: Callable | None = None,
    n_batches: int | None = None,
    prepend_args: tuple | None = None,
    *,
    total: int | None = None,
) -> tuple | None:
    """Apply ``func`` to every batch and concatenate its results along axis 0.

    Parameters
    ----------
    func : callable
        ``func(*batch)`` (or ``func(*prepend_args, *batch)``) returns a tuple or
        list of arrays, a single array, or None (the batch is left out).
    batch_iter : iterable
        The batches.
    progress_iter_func : callable, optional
        Wraps the iterator for a progress bar, called as
        ``progress_iter_func(batch_iter, total=..., leave=False)`` (e.g. ``tqdm.tqdm``).
    n_batches : int, optional
        Process at most this many batches; no further batch is requested, so the
        same iterator can be passed again to process the next chunk.
    prepend_args : tuple, optional
        Arguments passed to ``func`` before the batch.
    total : int, optional
        Progress-bar total when it differs from ``n_batches``.

    Returns
    -------
    tuple of numpy.ndarray or None
        One concatenated array per result, from the batches whose result was not
        None; None if ``func`` returned None for every batch or there were no
        batches (as in batchup 0.2.3).

    Examples
    --------
    >>> batches = [(np.arange(3),), (np.arange(3, 5),)]
    >>> batch_map_concat(lambda x: (x * 10,), iter(batches))
    (array([ 0, 10, 20, 30, 40]),)
    >>> batch_map_concat(lambda x: None, iter(batches)) is None
    True
    """
    _check_n_batches(n_batches)
    prepend = _prepend(prepend_args)
    results: list[tuple] = []
    for i, batch in enumerate(_batches(batch_iter, progress_iter_func,
                                       n_batches if total is None else total), 1):
        r = _apply(func, batch, prepend)
        if r is not None:
            if isinstance(r, np.ndarray):
                r = (r,)
            elif isinstance(r, list):
                r = tuple(r)
            elif not isinstance(r, tuple):
                raise TypeError(
                    "Batch function should return a tuple of results, a single result as a "
                    f"NumPy array, or None, not {type(r)}"
                )
            results.append(r)
        if n_batches is not None and i >= n_batches:
            break
    if not results:
        return None
    return tuple(np.concatenate(parts, axis=0) for parts in zip(*results, strict=False))


def _as_result_tuple(r: Any) -> tuple:
    if isinstance(r, tuple):
        return r
    if isinstance(r, list):
        return tuple(r)
    if isinstance(r, (np.ndarray, numbers.Number, np.generic)):
        return (r,)
    raise TypeError(
        "Batch function should return a tuple of results, a single result as a NumPy array "
        f"or number, or None, not {type(r)}"
    )


def batch_map_mean(
    func: Callable,
    batch_iter: Iterable,
    progress_iter_func: Callable | None = None,
    sum_axis: int | None = None,
    n_batches: int | None = None,
    prepend_args: tuple | None = None,
    *,
    total: int | None = None,
) -> tuple | None:
    """Apply ``func`` to every batch and return the per-sample mean of its results.

    With ``sum_axis=None``, ``func`` returns per-batch *sums* (e.g. the summed
    loss and the error count); with ``sum_axis=0`` it returns per-sample values
    that are summed over that axis. The sums are divided by the number of
    samples in the batches whose result was not None.

    Parameters
    ----------
    func : callable
        Returns a tuple or list of results (arrays or numbers), a single array or
        number, or None (the batch is left out).
    batch_iter : iterable
        The batches.
    progress_iter_func, n_batches, prepend_args, total
        As for :func:`batch_map_concat`.
    sum_axis : int, optional
        Axis to sum each result over before accumulating.

    Returns
    -------
    tuple or None
        One float64 scalar or array per result; None if every batch returned None.

    Raises
    ------
    ValueError
        If there are no batches at all.

    Examples
    --------
    >>> batches = [(np.arange(4.0),), (np.arange(4.0, 7.0),)]
    >>> batch_map_mean(lambda x: [x.sum(), (x > 2).sum()], iter(batches))
    (np.float64(3.0), np.float64(0.5714285714285714))
    """
    _check_n_batches(n_batches)
    prepend = _prepend(prepend_args)
    sums: list[Any] | None = None
    count = 0
    n_seen = 0
    for i, batch in enumerate(_batches(batch_iter, progress_iter_func,
                                       n_batches if total is None else total), 1):
        n_seen += 1
        n = length_of_batch(batch)
        r = _apply(func, batch, prepend)
        if r is not None:
            parts = _as_result_tuple(r)
            if sum_axis is not None:
                parts = tuple(np.sum(p, axis=sum_axis) for p in parts)
            if sums is None:
                # Copies: the caller's arrays are never modified.
                sums = [np.array(p) for p in parts]
            else:
                for k in range(len(sums)):
                    sums[k] = sums[k] + parts[k]
            count += n
        if n_batches is not None and i >= n_batches:
            break
    if n_seen == 0:
        raise ValueError("batch_map_mean got no batches: there is nothing to average")
    if sums is None:
        return None
    return tuple(np.array(s).astype(float) / count for s in sums)

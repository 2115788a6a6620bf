"""Apply a function to every batch and gather the results: ``batch_map_concat``/``_mean``."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .structure import length_of_batch


def _batches(batch_iter: Iterable, progress_iter_func: Callable | None, total: Any) -> Iterable:
    if progress_iter_func is not None:
        return progress_iter_func(batch_iter, total=total, leave=False)
    return batch_iter


def copy_on_read_only(func: Callable) -> Callable:
    """Wrap ``func`` so that, if it writes into a read-only input, it is re-run on copies.

    The ``batch_map_*`` methods pass read-only views of in-memory arrays where
    they can; a function that modifies its input in place (as some prediction
    functions do) then fails on the first batch with NumPy's "read-only"
    error. From then on every call gets writable copies instead, which is
    what iterating the source would have given it.
    """
    copy_inputs = False

    def call(*args: Any) -> Any:
        nonlocal copy_inputs
        if not copy_inputs:
            try:
                return func(*args)
            except ValueError as e:
                if "read-only" not in str(e):
                    raise
                copy_inputs = True
        return func(*[a.copy() if isinstance(a, np.ndarray) and not a.flags.writeable else a
                      for a in args])

    return call


def _check_n_batches(n_batches: Any) -> None:
    if n_batches is not None and (
        not isinstance(n_batches, (numbers.Integral, np.integer)) or isinstance(n_batches, bool)
        or n_batches < 0
    ):
        raise ValueError(f"n_batches must be None or a non-negative integer, not {n_batches!r}")


def _apply(func: Callable, batch: Any, prepend: tuple | None) -> Any:
    if prepend is not None:
        return func(*(prepend + tuple(batch)))
    return func(*batch)


def _prepend(prepend_args: Any) -> tuple | None:
    if prepend_args is None:
        return None
    if not isinstance(prepend_args, (tuple, list)):
        raise TypeError(f"prepend_args must be a tuple (or list), not {prepend_args!r}")
    return tuple(prepend_args)


def batch_map_concat(
    func: Callable,
    batch_iter: Iterable,
    progress_iter_func: Callable | None = None,
    n_batches: int | None = None,
    prepend_args: tuple | None = None,
    *,
    total: int | None = None,
) -> tuple:
    """Apply ``func`` to every batch and concatenate its results along axis 0.

    Parameters
    ----------
    func : callable
        ``func(*batch)`` (or ``func(*prepend_args, *batch)``) returns a tuple or
        list of arrays, a single array, or None (ignored).
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
    tuple of numpy.ndarray
        One concatenated array per result; ``()`` if there were no results.

    Examples
    --------
    >>> batches = [(np.arange(3),), (np.arange(3, 5),)]
    >>> batch_map_concat(lambda x: (x * 10,), iter(batches))
    (array([ 0, 10, 20, 30, 40]),)
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
        return ()
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

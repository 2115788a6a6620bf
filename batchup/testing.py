"""Checks for code that iterates batchup sources: resuming at every step, shard coverage.

Two helpers that test suites (batchup's own and its users') can call on any
iteration:

* :func:`assert_resumes` -- an iteration saved after *k* batches (through
  JSON) and restored into a fresh iterator continues with exactly the
  batches the uninterrupted iteration yields, for every *k*;
* :func:`assert_shards_cover` -- the ranks of a sharded iteration take
  disjoint shares that cover it, as the ``remainder`` policy documents.

Examples
--------
>>> import numpy as np
>>> from batchup import data_source
>>> ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
>>> assert_resumes(lambda: ds.batch_iterator(4, shuffle=7))
>>> per_rank = assert_shards_cover(
...     lambda r: ds.batch_indices_iterator(2, shuffle=7, shard=(r, 3)), 3,
...     np.tile(np.arange(10), 2))
>>> [len(batches) for batches in per_rank]
[4, 4, 4]
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["assert_resumes", "assert_shards_cover", "first_difference"]


def first_difference(actual: Any, expected: Any, path: str = "batch") -> str | None:
    """Where ``actual`` and ``expected`` first differ (type, structure, dtype, shape,
    value), or None when they are equal.

    Tuples (including named tuples such as ``ChoiceBatch``), lists and dicts are
    compared item by item; arrays by dtype, shape and values (NaN equals NaN);
    slices and anything else with ``==``.

    Examples
    --------
    >>> import numpy as np
    >>> first_difference((np.arange(3),), (np.arange(3),)) is None
    True
    >>> first_difference((np.arange(3),), (np.arange(3.0),))
    'batch[0]: dtype int64 != float64'
    >>> first_difference([np.array([1, 2])], [np.array([1, 5])])
    'batch[0][1]: 2 != 5'
    """
    if isinstance(expected, (np.ndarray, np.generic)) or isinstance(actual,
                                                                     (np.ndarray, np.generic)):
        return _array_difference(actual, expected, path)
    if type(actual) is not type(expected):
        return f"{path}: type {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, (tuple, list)):
        if len(actual) != len(expected):
            return f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = first_difference(a, e, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, dict):
        if set(actual) != set(expected):
            return f"{path}: keys {sorted(map(str, actual))} != {sorted(map(str, expected))}"
        for k in expected:
            found = first_difference(actual[k], expected[k], f"{path}[{k!r}]")
            if found is not None:
                return found
        return None
    try:
        equal = bool(actual == expected)
    except (TypeError, ValueError):
        equal = actual is expected
    return None if equal else f"{path}: {actual!r:.80} != {expected!r:.80}"


def _array_difference(actual: Any, expected: Any, path: str) -> str | None:
    if type(actual) is not type(expected) and not (
            isinstance(actual, np.ndarray) and isinstance(expected, np.ndarray)):
        return f"{path}: type {type(actual).__name__} != {type(expected).__name__}"
    a, e = np.asarray(actual), np.asarray(expected)
    if a.dtype != e.dtype:
        return f"{path}: dtype {a.dtype} != {e.dtype}"
    if a.shape != e.shape:
        return f"{path}: shape {a.shape} != {e.shape}"
    if a.dtype.kind in "fc":
        same = (a == e) | (np.isnan(a) & np.isnan(e))
    else:
        same = a == e
    if np.all(same):
        return None
    where = tuple(int(i) for i in np.argwhere(~np.asarray(same))[0])
    at = "".join(f"[{i}]" for i in where)
    return f"{path}{at}: {a[where].tolist()!r} != {e[where].tolist()!r}"


def _take(it: Any, limit: int | None) -> list:
    return list(it if limit is None else itertools.islice(it, limit))


def _close(it: Any) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _compare_run(got: list, want: list, what: str) -> None:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        diff = first_difference(g, w, f"batch {i}")
        if diff is not None:
            raise AssertionError(f"{what}: {diff}")
    if len(got) != len(want):
        raise AssertionError(f"{what}: {len(got)} batches, expected {len(want)}")


def assert_resumes(make_iterator: Callable[[], Any], max_steps: int | None = None) -> None:
    """Assert that restoring after any number of batches continues the iteration exactly.

    The iteration is first run uninterrupted (up to ``max_steps`` batches),
    twice, to check that fresh iterators agree. Then, for every ``k`` from 0
    to that number of batches, a fresh iterator yields ``k`` batches, its
    ``get_state()`` goes through ``json.dumps`` / ``json.loads``, and
    *another* fresh iterator restored with ``set_state`` must yield exactly
    the uninterrupted batches from ``k`` on (same structure, dtypes and
    values; and nothing more, unless ``max_steps`` capped the run).

    Parameters
    ----------
    make_iterator : callable
        ``make_iterator()`` returns a fresh iterator with ``get_state`` and
        ``set_state``, e.g. ``lambda: ds.batch_iterator(4, shuffle=7)``. With
        a stream ``shuffle`` it must create a fresh generator with the same
        seed on every call (``shuffle=np.random.RandomState(0)`` inside the
        lambda).
    max_steps : int, optional
        Compare only the first ``max_steps`` batches (required for endless
        iterations).

    Raises
    ------
    AssertionError
        Naming the step ``k`` of the save and the first batch that differs.
    ValueError
        If the iteration is endless (its ``num_batches()`` is ``inf``) and
        ``max_steps`` is not given.

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(7), np.arange(7) * 1.5])
    >>> assert_resumes(lambda: ds.batch_iterator(3, shuffle=np.random.RandomState(0)))
    >>> endless = data_source.ArrayDataSource([np.arange(5)], repeats=-1)
    >>> assert_resumes(lambda: endless.batch_iterator(2, shuffle=(1, 2)), max_steps=8)
    """
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 0):
        raise ValueError(f"max_steps must be None or an integer >= 0, not {max_steps!r}")
    first = make_iterator()
    try:
        count = getattr(first, "num_batches", None)
        if max_steps is None and count is not None and count() == np.inf:
            raise ValueError("the iteration is endless: give max_steps to compare a prefix")
        reference = _take(first, max_steps)
    finally:
        _close(first)
    second = make_iterator()
    try:
        _compare_run(_take(second, max_steps), reference,
                     "the iteration is not deterministic: two fresh iterators differ (with a "
                     "stream shuffle, make_iterator must create a new generator on each call)")
    finally:
        _close(second)
    n = len(reference)
    for k in range(n + 1):
        saver = make_iterator()
        try:
            head = _take(saver, k)
            _compare_run(head, reference[:k], f"the first {k} batches of a fresh iterator "
                         "(the iteration is not deterministic)")
            state = json.loads(json.dumps(saver.get_state()))
        finally:
            _close(saver)
        restored = make_iterator()
        try:
            restored.set_state(state)
            rest = _take(restored, None if max_steps is None else n - k)
        finally:
            _close(restored)
        what = f"restored after k={k} of {n} batches"
        for i, (got, want) in enumerate(zip(rest, reference[k:], strict=False)):
            diff = first_difference(got, want, f"batch {k + i}")
            if diff is not None:
                raise AssertionError(f"{what}: {diff}")
        if len(rest) != n - k:
            raise AssertionError(f"{what}: {len(rest)} batches followed, expected {n - k}")


def _keys(batch: Any) -> tuple[list, int]:
    """The samples of an index batch as hashable keys, and the batch's length."""
    if hasattr(batch, "ds_index") and hasattr(batch, "sample_indices"):
        idx = np.asarray(batch.sample_indices).ravel().tolist()
        return [(int(batch.ds_index), i) for i in idx], len(idx)
    if isinstance(batch, slice):
        batch = np.arange(batch.start, batch.stop)
    idx = np.asarray(batch)
    if idx.ndim != 1:
        raise TypeError(f"expected 1-D index batches (or ChoiceBatch), got shape {idx.shape}")
    return idx.tolist(), len(idx)


def _as_key(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(int(v) for v in x)
    return int(x)


def assert_shards_cover(make_iterator_for_rank: Callable[[int], Iterable],
                        world_size: int, expected_indices: Iterable,
                        remainder: str = "pad", batch_size: int | None = None) -> list:
    """Assert that the ranks of a sharded iteration share it as ``remainder`` documents.

    Every rank's index batches are collected; with ``G = batch_size *
    world_size`` and ``R`` the size of a short final global batch (the number
    of expected samples modulo ``G``):

    ``"pad"``
        every rank has the same number of batches, all full; every expected
        sample is seen (as often as expected) and exactly ``G - R`` extra
        samples fill the last global batch (none if ``R`` is 0);
    ``"drop"``
        every rank has the same number of full batches; no sample is seen
        more often than expected and exactly ``R`` are not seen;
    ``"even"``
        every expected sample is seen exactly as often as expected (nothing
        duplicated, nothing missing) and batch counts differ by at most one,
        lower ranks having the extra batch.

    Parameters
    ----------
    make_iterator_for_rank : callable
        ``make_iterator_for_rank(rank)`` returns rank ``rank``'s iterator over
        index batches (1-D integer arrays, or ``ChoiceBatch`` items whose
        samples are then keyed as ``(ds_index, index)``).
    world_size : int
        Number of ranks.
    expected_indices : iterable
        Every sample the unsharded iteration visits, with repetitions (e.g.
        ``np.tile(np.arange(n), repeats)``); ``(ds_index, index)`` pairs for
        choice sources.
    remainder : {"pad", "drop", "even"}
        The policy the iterators were made with.
    batch_size : int, optional
        The per-rank batch size (default: the longest batch seen).

    Returns
    -------
    list of list
        Every rank's index batches, for further checks.

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(11)])
    >>> def rank(r):
    ...     return ds.batch_indices_iterator(2, shuffle=3, shard=(r, 2, "drop"))
    >>> [len(b) for b in assert_shards_cover(rank, 2, range(11), "drop")]
    [2, 2]
    """
    if remainder not in ("pad", "drop", "even"):
        raise ValueError(f"remainder must be 'pad', 'drop' or 'even', not {remainder!r}")
    per_rank = []
    for r in range(world_size):
        it = make_iterator_for_rank(r)
        try:
            per_rank.append(list(it))
        finally:
            _close(it)
    keys = [[_keys(b) for b in batches] for batches in per_rank]
    expected = Counter(_as_key(x) for x in expected_indices)
    total = sum(expected.values())
    lengths = [n for rank in keys for _, n in rank]
    b = batch_size if batch_size is not None else max(lengths, default=0)
    counts = [len(rank) for rank in keys]
    seen: Counter = Counter()
    for rank in keys:
        for batch, _ in rank:
            seen.update(batch)
    extra = seen - expected
    missing = expected - seen
    n_extra, n_missing = sum(extra.values()), sum(missing.values())
    summary = (f"remainder={remainder!r}, world_size={world_size}, batch_size={b}, "
               f"{total} expected samples, batches per rank {counts}")
    if b == 0:
        if total or any(counts):
            raise AssertionError(f"{summary}: no samples seen")
        return per_rank
    size = b * world_size
    short = total % size
    if world_size == 1 and remainder == "pad":
        # One rank has nothing to balance: its short last batch is kept unpadded.
        remainder = "even"
    if remainder in ("pad", "drop"):
        if len(set(counts)) > 1:
            raise AssertionError(f"{summary}: ranks got different numbers of batches")
        bad = [n for n in lengths if n != b]
        if bad:
            raise AssertionError(f"{summary}: a batch of {bad[0]} samples (all must be full)")
    if remainder == "pad":
        want_extra = (size - short) % size
        want_count = -(-total // size)
        if n_missing:
            raise AssertionError(f"{summary}: {n_missing} samples never seen, "
                                 f"e.g. {sorted(missing)[:5]}")
        if n_extra != want_extra:
            raise AssertionError(f"{summary}: {n_extra} samples seen more often than "
                                 f"expected, padding accounts for {want_extra}")
    elif remainder == "drop":
        want_count = total // size
        if n_extra:
            raise AssertionError(f"{summary}: samples seen more often than expected "
                                 f"(shares overlap), e.g. {sorted(extra)[:5]}")
        if n_missing != short:
            raise AssertionError(f"{summary}: {n_missing} samples not seen, "
                                 f"expected the {short} of the dropped global batch")
    else:
        want_count = None
        if n_extra or n_missing:
            raise AssertionError(f"{summary}: {n_extra} samples duplicated, {n_missing} "
                                 f"missing (e.g. {sorted(extra)[:3]}, {sorted(missing)[:3]})")
        if max(counts) - min(counts) > 1 or counts != sorted(counts, reverse=True):
            raise AssertionError(f"{summary}: batch counts must differ by at most one, "
                                 "lower ranks first")
        if any(n == 0 for n in lengths):
            raise AssertionError(f"{summary}: an empty batch")
    if want_count is not None and counts[0] != want_count:
        raise AssertionError(f"{summary}: {counts[0]} batches per rank, expected {want_count}")
    return per_rank

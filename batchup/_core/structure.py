"""The structure of a mini-batch: nested tuples (and lists of arrays) of per-sample arrays.

A batch is normally a tuple such as ``(batch_X, batch_y)``. Tuples nest. A list
nests too when every item is itself an array, tuple or list (``[X, Y]`` is
two arrays of samples); any other list, such as a list of file names, is a
leaf whose items are the samples. (batchup 0.2.3 treated every list as a leaf,
so ``[X, Y]`` counted as two samples; that was a defect.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class ChoiceBatch(NamedTuple):
    """An index batch of a ``ChoiceDataSource``: which component, and its sample indices.

    Examples
    --------
    >>> b = ChoiceBatch(sample_indices=np.array([3, 1]), ds_index=2)
    >>> b.ds_index
    2
    """

    sample_indices: Any
    ds_index: int


def is_structure(batch: Any) -> bool:
    """True if ``batch`` is a container of batch parts rather than a leaf."""
    if isinstance(batch, tuple):
        return True
    if isinstance(batch, list) and batch:
        return all(isinstance(x, (tuple, list, np.ndarray)) or hasattr(x, "shape") for x in batch)
    return False


def length_of_batch(batch: Any) -> int:
    """Number of samples in ``batch``: the length of its first leaf.

    Examples
    --------
    >>> length_of_batch((np.arange(10), (np.arange(20),)))
    10
    >>> length_of_batch([np.arange(10), np.arange(20)])
    10
    """
    while is_structure(batch):
        batch = batch[0]
    return len(batch)


def trim_batch(batch: Any, n: int) -> Any:
    """Keep the first ``n`` samples of every leaf of ``batch``.

    Tuples come back as plain tuples, lists as lists; a ``ChoiceBatch`` keeps
    its ``ds_index`` and trims its ``sample_indices``.

    Examples
    --------
    >>> trim_batch((np.arange(5), [np.arange(5)]), 2)
    (array([0, 1]), [array([0, 1])])
    """
    if isinstance(batch, ChoiceBatch):
        return ChoiceBatch(trim_batch(batch.sample_indices, n), batch.ds_index)
    if isinstance(batch, tuple):
        return tuple(trim_batch(x, n) for x in batch)
    if is_structure(batch):
        return [trim_batch(x, n) for x in batch]
    return batch[:n]


def trim_to_common_length(batches: list[Any]) -> list[Any]:
    """Trim every batch in ``batches`` to the shortest one's sample count."""
    lengths = [length_of_batch(b) for b in batches]
    shortest = min(lengths)
    if shortest == max(lengths):
        return batches
    return [trim_batch(b, shortest) for b in batches]


def flatten_one_level(batches: list[Any]) -> tuple:
    """Concatenate component batches (tuples or lists of parts) into one flat tuple."""
    flat: list[Any] = []
    for i, b in enumerate(batches):
        if not (isinstance(b, tuple) or is_structure(b)):
            raise TypeError(
                f"CompositeDataSource(flatten=True) needs every component batch to be a tuple "
                f"(or a list of arrays); component {i} produced a {type(b).__name__}. "
                "Use flatten=False to keep component batches as they are."
            )
        flat.extend(b)
    return tuple(flat)

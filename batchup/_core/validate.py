"""Argument checks shared by samplers and data sources.

Every check raises early with a message that names the parameter and shows
the value it was given, so a bad call fails where it is made, not epochs later.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

import numpy as np


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools and everything else."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_batch_size(batch_size: Any) -> int:
    """Return ``batch_size`` as an int, or raise if it is not a positive integer."""
    if not is_integer(batch_size):
        raise TypeError(f"batch_size must be a positive integer, not {show(batch_size)}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, not {show(batch_size)}")
    return int(batch_size)


def check_repeats(repeats: Any) -> int:
    """Return ``repeats`` as an int: a count >= 1, or -1 for infinitely many passes."""
    if not is_integer(repeats):
        raise TypeError(
            f"repeats must be an integer >= 1, or -1 for infinite repetition, not {show(repeats)}"
        )
    if repeats == 0 or repeats < -1:
        raise ValueError(
            f"Invalid number of repeats; should be >= 1 or -1, not {repeats}"
            " (repeats must be >= 1, or -1 for infinite repetition)"
        )
    return int(repeats)


def check_count(value: Any, name: str, *, allow_callable: bool) -> Any:
    """Validate a sample count: None, an integer >= 0, inf, or (optionally) a callable."""
    if value is None or (allow_callable and callable(value)):
        return value
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if is_integer(value):
        if value < 0:
            raise ValueError(f"{name} must not be negative, not {show(value)}")
        return int(value)
    if isinstance(value, (float, np.floating)) and value == np.inf:
        return np.inf
    expected = "None, an int, or np.inf"
    if allow_callable:
        expected = "None, a callable, an int, or np.inf"
    raise TypeError(f"{name} should be {expected}, not {show(value)}")


def as_index_array(indices: Any, name: str = "indices") -> np.ndarray:
    """Convert ``indices`` to a 1-D integer array, keeping an integer array's own dtype."""
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of integers, not an array of shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return arr.astype(np.int64)
        raise TypeError(
            f"{name} must hold integers, not values of dtype {arr.dtype} ({_preview(arr)})"
        )
    return arr


def check_weights(weights: Any, name: str) -> np.ndarray:
    """Return ``weights`` as a 1-D float array; reject NaN, negative and all-zero weights."""
    arr = np.asarray(weights)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, not an array of shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numbers, not values of dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must be finite; {name}[{pos}] is {show(arr[pos])}"
            )
    neg = arr < 0
    if neg.any():
        pos = int(np.flatnonzero(neg)[0])
        raise ValueError(f"{name} must not be negative; {name}[{pos}] is {show(arr[pos])}")
    if not arr.any():
        raise ValueError(f"{name} should not sum to 0 (all {arr.size} weights are zero)")
    return arr


def check_labels(y: Any, n_classes: Any = None, name: str = "y") -> tuple[np.ndarray, int | None]:
    """Validate integer class labels (and ``n_classes`` when given)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, not shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.mod(arr, 1) == 0):
            raise TypeError(
                f"{name} must have an integer dtype, not {arr.dtype}; "
                f"convert it with {name}.astype(int)"
            )
        raise TypeError(f"{name} must hold integer class labels, not values of dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative class labels; found {arr.min()}")
    if n_classes is not None:
        if not is_integer(n_classes):
            raise TypeError(f"n_classes must be a positive integer or None, not {show(n_classes)}")
        if n_classes <= 0:
            raise ValueError(f"n_classes must be a positive integer or None, not {show(n_classes)}")
        if arr.size and arr.max() >= n_classes:
            raise ValueError(
                f"{name} holds the label {arr.max()}, which is not below n_classes={n_classes}"
            )
        n_classes = int(n_classes)
    return arr, n_classes


def is_array_like(x: Any) -> bool:
    """True iff ``x`` can be indexed and has a length: ``__getitem__`` and ``__len__``, or
    a ``shape`` of at least one dimension (zarr 3 arrays have no ``__len__``)."""
    if not hasattr(x, "__getitem__"):
        return False
    if hasattr(x, "__len__"):
        return True
    shape = getattr(x, "shape", None)
    return isinstance(shape, tuple) and len(shape) >= 1


def array_length(x: Any) -> int:
    """The number of samples (rows) of an array-like.

    Examples
    --------
    >>> array_length(np.zeros((3, 2))), array_length([1, 2])
    (3, 2)
    """
    if hasattr(x, "__len__"):
        return len(x)
    return int(x.shape[0])


def _preview(arr: np.ndarray) -> str:
    flat = arr.ravel()
    text = np.array2string(flat[:5], separator=", ")
    return text if flat.size <= 5 else text[:-1] + ", ...]"


_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxdict = 6
_SHORT.maxstring = _SHORT.maxother = 60


def show(value: Any) -> str:
    """``value`` for an error message: never a whole array or a long list.

    Examples
    --------
    >>> show(np.arange(1000))
    'an array of shape (1000,) and dtype int64'
    >>> show(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> show("nope")
    "'nope'"
    """
    if isinstance(value, np.ndarray) and value.size > 6:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return _SHORT.repr(value)

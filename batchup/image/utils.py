"""Lazy uint8 → float32 image views.

Examples
--------
>>> import numpy as np
>>> w = ImageArrayUInt8ToFloat32(np.array([[0, 127, 255]], dtype=np.uint8))
>>> w[0]
array([0.        , 0.49803925, 1.        ], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ImageArrayUInt8ToFloat32:
    """Read-only view of a uint8 array that yields float32 values on indexing.

    Only the requested part is converted, so wrapping a lazy HDF5 node keeps
    memory use at one mini-batch. Values map linearly: 0 → ``val_lower``,
    255 → ``val_upper``.

    Parameters
    ----------
    arr_u8 : array-like
        Any object supporting ``len`` and indexing whose results have
        ``.astype`` (a NumPy array, a PyTables node, ...). Not copied.
    val_lower, val_upper : float
        Values that 0 and 255 map to.

    Examples
    --------
    >>> w = ImageArrayUInt8ToFloat32(np.array([[0, 255]], dtype=np.uint8), -1.0, 1.0)
    >>> w[:, 1]
    array([1.], dtype=float32)
    >>> w.shape, len(w)
    ((1, 2), 1)
    """

    def __init__(self, arr_u8: Any, val_lower: float = 0.0, val_upper: float = 1.0):
        self.arr_u8 = arr_u8
        self.offset = np.float32(val_lower)
        # Divide in float64 first, as 0.2.3 did, so the float32 results match it.
        self.scale = np.float32((val_upper - val_lower) / 255.0)
        self.dtype = np.float32

    @property
    def shape(self) -> tuple:
        """Shape of the wrapped array."""
        try:
            return self.arr_u8.shape
        except AttributeError:
            raise AttributeError("Underlying array has no `shape` attribute") from None

    def __len__(self) -> int:
        from batchup._core.validate import array_length

        return array_length(self.arr_u8)

    def _convert(self, raw: Any) -> np.ndarray:
        return np.asarray(raw).astype(np.float32) * self.scale + self.offset

    def read_rows(self, index: Any, out: np.ndarray | None = None) -> np.ndarray:
        """The float32 rows at ``index`` (slice or integer array): batchup's fetch protocol.

        The uint8 rows are read from the wrapped array the way it reads best
        (sorted, contiguous reads from HDF5), then converted.

        Examples
        --------
        >>> w = ImageArrayUInt8ToFloat32(np.array([[0], [255], [51]], dtype=np.uint8))
        >>> w.read_rows(np.array([2, 0])).ravel().tolist()
        [0.20000001788139343, 0.0]
        """
        from batchup._core.fetch import read_rows

        rows = self._convert(read_rows(self.arr_u8, index))
        if out is None:
            return rows
        out[...] = rows
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (np.ndarray, list)) and np.ndim(key) == 1 and len(key) and \
                np.asarray(key).dtype.kind in "iu":
            # A row index array: read rows (a PyTables node would read points).
            return self.read_rows(np.asarray(key))
        return self._convert(self.arr_u8[key])

    def __repr__(self) -> str:
        return (f"ImageArrayUInt8ToFloat32(shape={getattr(self.arr_u8, 'shape', '?')}, "
                f"offset={float(self.offset)}, scale={float(self.scale)})")

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
        return len(self.arr_u8)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.arr_u8[key].astype(np.float32) * self.scale + self.offset

    def __repr__(self) -> str:
        return (f"ImageArrayUInt8ToFloat32(shape={getattr(self.arr_u8, 'shape', '?')}, "
                f"offset={float(self.offset)}, scale={float(self.scale)})")

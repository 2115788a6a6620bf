"""The 8x8 hand-written digits, shipped with batchup (no download needed).

The UCI "Optical Recognition of Handwritten Digits" data, test part: 1,797
images of 8 x 8 pixels with values 0..16, labels 0..9, by E. Alpaydin and
C. Kaynak (1998), licence CC BY 4.0. Small enough to ship, real enough to
train on: batchup's demo and examples use it.

The file's last 397 samples form the test set; the validation set is the
last ``n_val`` of the remaining 1,400, as for the other data sets.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import Any

import numpy as np

from batchup._core.validate import is_integer

N_SAMPLES = 1797
N_TEST = 397
N_TRAIN_POOL = N_SAMPLES - N_TEST
CLASS_NAMES = [str(d) for d in range(10)]


def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 samples: pixels as uint8 (N, 8, 8) in 0..16, labels as int32 (N,).

    Examples
    --------
    >>> X, y = load_raw()
    >>> X.shape, X.dtype, int(X.max()), y.shape, y.dtype
    ((1797, 8, 8), dtype('uint8'), 16, (1797,), dtype('int32'))
    """
    with resources.files("batchup.datasets").joinpath("data/digits.csv.gz").open("rb") as f:
        with gzip.open(f, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int32)
    X = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    y = table[:, 64].astype(np.int32)
    return X, y


class Digits:
    """The digits data set, split into training, validation and test sets.

    Parameters
    ----------
    n_val : int
        Number of samples, taken from the end of the 1,400 training samples,
        kept for validation (0 for none).
    val_lower, val_upper : float
        Pixel value range of the float images (0 maps to ``val_lower``, 16 to
        ``val_upper``).

    Attributes
    ----------
    train_X, val_X, test_X : numpy.ndarray
        float32 images of shape (n, 1, 8, 8).
    train_y, val_y, test_y : numpy.ndarray
        int32 labels 0..9.
    train_X_u8, val_X_u8, test_X_u8 : numpy.ndarray
        The raw pixels (uint8, 0..16), shape (n, 1, 8, 8).
    class_names : list of str

    Examples
    --------
    >>> ds = Digits(n_val=200)
    >>> ds.train_X.shape, ds.val_X.shape, ds.test_X.shape
    ((1200, 1, 8, 8), (200, 1, 8, 8), (397, 1, 8, 8))
    >>> float(ds.train_X.max()), ds.train_y.dtype
    (1.0, dtype('int32'))
    """

    def __init__(self, n_val: int = 200, val_lower: float = 0.0, val_upper: float = 1.0) -> None:
        if not is_integer(n_val):
            raise TypeError(f"n_val must be a non-negative integer, not {n_val!r}")
        if not 0 <= n_val <= N_TRAIN_POOL:
            raise ValueError(
                f"n_val must lie between 0 and {N_TRAIN_POOL} (the training set's size), "
                f"not {n_val!r}"
            )
        X, y = load_raw()
        X = X[:, None, :, :]
        n_train = N_TRAIN_POOL - int(n_val)
        self.train_X_u8, self.train_y = X[:n_train], y[:n_train]
        self.val_X_u8, self.val_y = X[n_train:N_TRAIN_POOL], y[n_train:N_TRAIN_POOL]
        self.test_X_u8, self.test_y = X[N_TRAIN_POOL:], y[N_TRAIN_POOL:]
        scale = np.float32((val_upper - val_lower) / 16.0)
        offset = np.float32(val_lower)
        self.train_X = self._to_float(self.train_X_u8, scale, offset)
        self.val_X = self._to_float(self.val_X_u8, scale, offset)
        self.test_X = self._to_float(self.test_X_u8, scale, offset)
        self.class_names = list(CLASS_NAMES)

    @staticmethod
    def _to_float(x: np.ndarray, scale: Any, offset: Any) -> np.ndarray:
        return x.astype(np.float32) * scale + offset

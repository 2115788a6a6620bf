"""SVHN cropped digits (32x32 colour), plus the large "extra" set.

``SVHN`` is converted to ``<data>/svhn_train_test.h5``; ``SVHNExtra``
(531131 images, 1.3 GB download) to ``<data>/svhn_extra.h5`` with blosc
compression. Labels are 0-9 (the files' label 10, for digit 0, becomes 0).

Examples
--------
>>> from batchup.datasets import svhn
>>> ds = svhn.SVHN(n_val=10000)  # doctest: +SKIP
>>> ds.train_X.shape  # doctest: +SKIP
(63257, 3, 32, 32)
"""

from __future__ import annotations

import numpy as np

from batchup.datasets import dataset
from batchup.datasets._convert import compressed_earray, new_h5
from batchup.datasets._progress import progress_bar

H5_FILENAME = "svhn_train_test.h5"
EXTRA_H5_FILENAME = "svhn_extra.h5"
GROUP = "svhn"
NODES = tuple(f"/{GROUP}/{n}" for n in ("train_X_u8", "train_y", "test_X_u8", "test_y"))
EXTRA_NODES = (f"/{GROUP}/extra_X_u8", f"/{GROUP}/extra_y")
CHUNK = 10240


def _images(X: np.ndarray) -> np.ndarray:
    # MATLAB stores (rows, cols, channels, samples); we want (samples, channels, rows, cols).
    return np.ascontiguousarray(X.transpose(3, 2, 0, 1).astype(np.uint8, copy=False))


def _labels(y: np.ndarray) -> np.ndarray:
    labels = y.astype(np.int32).reshape(len(y), -1)[:, 0].copy()
    labels[labels == 10] = 0
    return labels


def read_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``.mat`` file as ``(uint8 (N, 3, 32, 32), int32 (N,))``.

    Examples
    --------
    >>> X, y = read_svhn_mat("train_32x32.mat")  # doctest: +SKIP
    """
    from scipy.io import loadmat

    data = loadmat(path)
    return _images(data["X"]), _labels(data["y"])


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("svhn", "train_32x32.mat"),
     dataset.RegistrySourceFile("svhn", "test_32x32.mat")], H5_FILENAME, NODES)
def fetch_svhn_train_test(source_paths, target_path):
    """Return the path of ``svhn_train_test.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_svhn_train_test()  # doctest: +SKIP
    """
    train_path, test_path = source_paths
    with new_h5(target_path, GROUP, "SVHN data") as (f, g), \
            progress_bar(2, "Converting SVHN", unit="file") as bar:
        for prefix, path in (("train", train_path), ("test", test_path)):
            print(f"Converting {path} to HDF5...")
            X, y = read_svhn_mat(path)
            f.create_array(g, f"{prefix}_X_u8", X)
            f.create_array(g, f"{prefix}_y", y)
            bar.update(1)
    return target_path


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("svhn_extra", "extra_32x32.mat")], EXTRA_H5_FILENAME, EXTRA_NODES)
def fetch_svhn_extra(source_paths, target_path):
    """Return the path of ``svhn_extra.h5``, downloading and converting if needed.

    The ``.mat`` file is read whole (about 1.6 GB of memory) and written in
    chunks of 10240 images, so no transposed copy of the whole set is made.

    Examples
    --------
    >>> fetch_svhn_extra()  # doctest: +SKIP
    """
    from scipy.io import loadmat

    (path,) = source_paths
    print(f"Converting {path} to HDF5 (compressed)...")
    data = loadmat(path)
    X, y = data["X"], data["y"]
    n = X.shape[3]
    with new_h5(target_path, GROUP, "SVHN data") as (f, g), \
            progress_bar(n, "Converting SVHN extra", unit="img") as bar:
        X_node = compressed_earray(f, g, "extra_X_u8", np.uint8, (3, 32, 32), n)
        y_node = compressed_earray(f, g, "extra_y", np.int32, (), n)
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            X_node.append(_images(X[:, :, :, start:stop]))
            y_node.append(_labels(y[start:stop]))
            bar.update(stop - start)
    return target_path


def delete_cache() -> list[str]:
    """Delete both converted SVHN files.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME, EXTRA_H5_FILENAME)


class SVHN(dataset.H5Dataset):
    """SVHN training and test sets.

    Attributes as MNIST (``train_X_u8`` ... ``test_X``), images
    ``(N, 3, 32, 32)`` uint8, labels int32 0-9.

    Parameters
    ----------
    n_val : int or None
        Number of training samples (the last ones) kept for validation.
    val_lower, val_upper : float
        Range the float views map pixel values 0..255 to.

    Examples
    --------
    >>> with SVHN(n_val=10000) as ds:  # doctest: +SKIP
    ...     len(ds.train_y), len(ds.val_y), len(ds.test_y)
    (63257, 10000, 26032)
    """

    def __init__(self, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        n_val = dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(fetch_svhn_train_test, "Could not load SVHN dataset")
        self._load_splits(path, GROUP, n_val, ("X_u8", "y"))
        self._add_float_views(val_lower, val_upper, "train_X", "val_X", "test_X")


class SVHNExtra(dataset.H5Dataset):
    """The SVHN "extra" set: lazy ``X_u8``, ``y`` and the float view ``X``.

    Examples
    --------
    >>> with SVHNExtra() as ds:  # doctest: +SKIP
    ...     ds.X[:10].dtype
    dtype('float32')
    """

    def __init__(self, val_lower: float = 0.0, val_upper: float = 1.0):
        path = dataset.fetch_or_raise(fetch_svhn_extra, "Could not load SVHN extra dataset")
        f = self._open_h5(path)
        g = f.get_node("/" + GROUP)
        self.X_u8 = g.extra_X_u8
        self.y = g.extra_y
        self._add_float_views(val_lower, val_upper, "X")

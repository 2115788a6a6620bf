"""MNIST handwritten digits (60000 training and 10000 test images, 28x28).

Downloaded from mirrors first (the original host is gone), verified by
SHA-256 and converted once to ``<data>/mnist.h5``.

Examples
--------
>>> from batchup.datasets import mnist
>>> ds = mnist.MNIST(n_val=10000)  # doctest: +SKIP
>>> ds.train_X.shape, ds.val_X.shape, ds.test_X.shape  # doctest: +SKIP
((50000, 1, 28, 28), (10000, 1, 28, 28), (10000, 1, 28, 28))
"""

from __future__ import annotations

import gzip

import numpy as np

from batchup.datasets import dataset
from batchup.datasets._convert import new_h5
from batchup.datasets._progress import progress_bar

FILENAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
H5_FILENAME = "mnist.h5"
GROUP = "mnist"
NODES = tuple(f"/{GROUP}/{n}" for n in ("train_X_u8", "train_y", "test_X_u8", "test_y"))

_IDX_IMAGES = 2051
_IDX_LABELS = 2049


def read_idx_images(path: str) -> np.ndarray:
    """Read a gzipped IDX image file as uint8 ``(N, 1, rows, cols)``.

    Examples
    --------
    >>> read_idx_images("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw, dtype=">u4", count=4)
    if magic != _IDX_IMAGES:
        raise ValueError(f"{path} is not an IDX image file (magic {magic}, want {_IDX_IMAGES})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(int(n), 1, int(rows), int(cols))


def read_idx_labels(path: str) -> np.ndarray:
    """Read a gzipped IDX label file as int32 ``(N,)``.

    Examples
    --------
    >>> read_idx_labels("train-labels-idx1-ubyte.gz")  # doctest: +SKIP
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = np.frombuffer(raw, dtype=">u4", count=2)
    if magic != _IDX_LABELS:
        raise ValueError(f"{path} is not an IDX label file (magic {magic}, want {_IDX_LABELS})")
    return np.frombuffer(raw, dtype=np.uint8, offset=8, count=int(n)).astype(np.int32)


def _convert_mnist(dataset_name, target_path, train_X_path, train_y_path, test_X_path,
                   test_y_path):
    """Write the four IDX files into group ``/mnist`` of ``target_path``."""
    print(f"Converting {dataset_name} to HDF5")
    steps = ((train_X_path, "train_X_u8", read_idx_images),
             (train_y_path, "train_y", read_idx_labels),
             (test_X_path, "test_X_u8", read_idx_images),
             (test_y_path, "test_y", read_idx_labels))
    with new_h5(target_path, GROUP, "MNIST data") as (f, g), \
            progress_bar(len(steps), f"Converting {dataset_name}", unit="file") as bar:
        for path, node, reader in steps:
            f.create_array(g, node, reader(path))
            bar.update(1)
    return target_path


def _sources(name: str) -> list:
    return [dataset.RegistrySourceFile(name, fn) for fn in FILENAMES]


@dataset.fetch_and_convert_dataset(_sources("mnist"), H5_FILENAME, NODES)
def fetch_mnist(source_paths, target_path):
    """Return the path of ``mnist.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_mnist()  # doctest: +SKIP
    '/home/me/.batchup/data/mnist.h5'
    """
    return _convert_mnist("MNIST", target_path, *source_paths)


def delete_cache() -> list[str]:
    """Delete the converted MNIST file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


class MNISTBase(dataset.H5Dataset):
    """Load an MNIST-layout HDF5 file (group ``/mnist``).

    Attributes ``train_X_u8``, ``train_y``, ``val_X_u8``, ``val_y``,
    ``test_X_u8``, ``test_y`` (uint8 images ``(N, 1, 28, 28)``, int32 labels
    0-9), and float32 views ``train_X``, ``val_X``, ``test_X``. The last
    ``n_val`` training samples form the validation set.

    Examples
    --------
    >>> ds = MNISTBase(fetch_mnist(), n_val=0)  # doctest: +SKIP
    """

    def __init__(self, h5_path: str, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        n_val = dataset.check_n_val(n_val)
        self._load_splits(h5_path, GROUP, n_val, ("X_u8", "y"))
        self._add_float_views(val_lower, val_upper, "train_X", "val_X", "test_X")


class MNIST(MNISTBase):
    """The MNIST dataset, fetched on first use.

    Parameters
    ----------
    n_val : int or None
        Number of training samples (the last ones) kept for validation.
    val_lower, val_upper : float
        Range the float views map pixel values 0..255 to.

    Examples
    --------
    >>> with MNIST(n_val=10000) as ds:  # doctest: +SKIP
    ...     print(len(ds.train_y), len(ds.val_y), len(ds.test_y))
    50000 10000 10000
    """

    def __init__(self, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(fetch_mnist, "Could not load MNIST dataset")
        super().__init__(path, n_val, val_lower, val_upper)

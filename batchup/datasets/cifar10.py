"""CIFAR-10 (60000 32x32 colour images in 10 classes).

Read straight from the Python-pickle tarball (nothing is extracted to disk)
and converted once to ``<data>/cifar10.h5``.

Examples
--------
>>> from batchup.datasets import cifar10
>>> ds = cifar10.CIFAR10(n_val=10000)  # doctest: +SKIP
>>> ds.class_names[:3]  # doctest: +SKIP
['airplane', 'automobile', 'bird']
"""

from __future__ import annotations

import pickle
import tarfile

import numpy as np

from batchup.datasets import dataset
from batchup.datasets._convert import new_h5
from batchup.datasets._progress import progress_bar

H5_FILENAME = "cifar10.h5"
GROUP = "cifar10"
NODES = tuple(f"/{GROUP}/{n}" for n in ("train_X_u8", "train_y", "test_X_u8", "test_y"))
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]
_DIR = "cifar-10-batches-py"


def load_pickle_member(tar: tarfile.TarFile, name: str) -> dict:
    """Unpickle one member of a CIFAR tarball into a dict with ``str`` keys.

    The tarball's SHA-256 was verified before this is called, so unpickling
    it is as safe as the file it came from.

    Examples
    --------
    >>> load_pickle_member(tarfile.open("cifar-10-python.tar.gz"), "x")  # doctest: +SKIP
    """
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} in {tar.name} is not a regular file")
    with member:
        obj = pickle.load(member, encoding="latin1")
    return {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def images(data) -> np.ndarray:
    """Reshape CIFAR rows of 3072 bytes to uint8 ``(N, 3, 32, 32)``.

    Examples
    --------
    >>> images(np.zeros((2, 3072), np.uint8)).shape
    (2, 3, 32, 32)
    """
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("cifar10", "cifar-10-python.tar.gz")], H5_FILENAME, NODES)
def fetch_cifar10(source_paths, target_path):
    """Return the path of ``cifar10.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_cifar10()  # doctest: +SKIP
    """
    (tar_path,) = source_paths
    print(f"Unpacking CIFAR-10 tarball {tar_path}")
    names = [f"{_DIR}/data_batch_{i}" for i in range(1, 6)]
    with tarfile.open(tar_path, "r:gz") as tar, \
            new_h5(target_path, GROUP, "CIFAR-10 data") as (f, g), \
            progress_bar(6, "Converting CIFAR-10", unit="batch") as bar:
        print("Converting CIFAR-10 training set to HDF5")
        xs, ys = [], []
        for name in names:
            batch = load_pickle_member(tar, name)
            xs.append(images(batch["data"]))
            ys.append(np.asarray(batch["labels"], dtype=np.int32))
            bar.update(1)
        f.create_array(g, "train_X_u8", np.concatenate(xs))
        f.create_array(g, "train_y", np.concatenate(ys))
        print("Converting CIFAR-10 test set to HDF5")
        batch = load_pickle_member(tar, f"{_DIR}/test_batch")
        f.create_array(g, "test_X_u8", images(batch["data"]))
        f.create_array(g, "test_y", np.asarray(batch["labels"], dtype=np.int32))
        bar.update(1)
    return target_path


def delete_cache() -> list[str]:
    """Delete the converted CIFAR-10 file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


class CIFAR10(dataset.H5Dataset):
    """CIFAR-10: images ``(N, 3, 32, 32)`` uint8, labels int32 0-9, ``class_names``.

    Parameters
    ----------
    n_val : int or None
        Number of training samples (the last ones) kept for validation.
    val_lower, val_upper : float
        Range the float views map pixel values 0..255 to.

    Examples
    --------
    >>> with CIFAR10(n_val=10000) as ds:  # doctest: +SKIP
    ...     ds.train_X.shape, ds.val_X.shape
    ((40000, 3, 32, 32), (10000, 3, 32, 32))
    """

    def __init__(self, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        n_val = dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(fetch_cifar10, "Could not load CIFAR-10 dataset")
        self._load_splits(path, GROUP, n_val, ("X_u8", "y"))
        self.class_names = list(CLASS_NAMES)
        self._add_float_views(val_lower, val_upper, "train_X", "val_X", "test_X")

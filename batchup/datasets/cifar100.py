"""CIFAR-100 (60000 32x32 colour images; 100 fine and 20 coarse classes).

Converted once to ``<data>/cifar100.h5`` straight from the tarball.

Examples
--------
>>> from batchup.datasets import cifar100
>>> ds = cifar100.CIFAR100(n_val=10000)  # doctest: +SKIP
>>> len(ds.class_names), len(ds.class_names_coarse)  # doctest: +SKIP
(100, 20)
"""

from __future__ import annotations

import tarfile

import numpy as np

from batchup.datasets import dataset
from batchup.datasets._convert import byte_strings, new_h5
from batchup.datasets._progress import progress_bar
from batchup.datasets.cifar10 import images, load_pickle_member

H5_FILENAME = "cifar100.h5"
GROUP = "cifar100"
NODES = tuple(f"/{GROUP}/{n}" for n in (
    "train_X_u8", "train_y", "train_y_coarse", "test_X_u8", "test_y", "test_y_coarse",
    "class_names", "class_names_coarse"))
_DIR = "cifar-100-python"


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("cifar100", "cifar-100-python.tar.gz")], H5_FILENAME, NODES)
def fetch_cifar100(source_paths, target_path):
    """Return the path of ``cifar100.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_cifar100()  # doctest: +SKIP
    """
    (tar_path,) = source_paths
    print(f"Unpacking CIFAR-100 tarball {tar_path}")
    with tarfile.open(tar_path, "r:gz") as tar, \
            new_h5(target_path, GROUP, "CIFAR-100 data") as (f, g), \
            progress_bar(3, "Converting CIFAR-100", unit="part") as bar:
        for part, label in (("train", "training"), ("test", "test")):
            print(f"Converting CIFAR-100 {label} set to HDF5")
            batch = load_pickle_member(tar, f"{_DIR}/{part}")
            f.create_array(g, f"{part}_X_u8", images(batch["data"]))
            f.create_array(g, f"{part}_y", np.asarray(batch["fine_labels"], dtype=np.int32))
            f.create_array(g, f"{part}_y_coarse",
                           np.asarray(batch["coarse_labels"], dtype=np.int32))
            bar.update(1)
        print("Converting CIFAR-100 metadata to HDF5")
        meta = load_pickle_member(tar, f"{_DIR}/meta")
        f.create_array(g, "class_names", byte_strings(meta["fine_label_names"]))
        f.create_array(g, "class_names_coarse", byte_strings(meta["coarse_label_names"]))
        bar.update(1)
    return target_path


def delete_cache() -> list[str]:
    """Delete the converted CIFAR-100 file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


class CIFAR100(dataset.H5Dataset):
    """CIFAR-100 with fine (``*_y``, 0-99) and coarse (``*_y_coarse``, 0-19) labels.

    Also ``class_names`` (100) and ``class_names_coarse`` (20), lists of str.

    Parameters
    ----------
    n_val : int or None
        Number of training samples (the last ones) kept for validation.
    val_lower, val_upper : float
        Range the float views map pixel values 0..255 to.

    Examples
    --------
    >>> with CIFAR100(n_val=10000) as ds:  # doctest: +SKIP
    ...     ds.val_y_coarse.shape
    (10000,)
    """

    def __init__(self, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        n_val = dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(fetch_cifar100, "Could not load CIFAR-100 dataset")
        g = self._load_splits(path, GROUP, n_val, ("X_u8", "y", "y_coarse"))
        with self._closed_on_error():
            self.class_names = dataset.classnames_from_h5(g.class_names)
            self.class_names_coarse = dataset.classnames_from_h5(g.class_names_coarse)
        self._add_float_views(val_lower, val_upper, "train_X", "val_X", "test_X")

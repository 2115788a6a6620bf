"""USPS handwritten digits (16x16 greyscale, 7291 training and 2007 test images).

The source is a ready-made HDF5 file (group ``/usps``, float32 pixels in
[0, 1]), downloaded, verified and copied to ``<data>/usps.h5``.

Examples
--------
>>> from batchup.datasets import usps
>>> ds = usps.USPS(n_val=729)  # doctest: +SKIP
>>> ds.train_X.shape, ds.val_X.shape  # doctest: +SKIP
((6562, 1, 16, 16), (729, 1, 16, 16))
"""

from __future__ import annotations

import shutil

from batchup.datasets import dataset

H5_FILENAME = "usps.h5"
GROUP = "usps"
NODES = tuple(f"/{GROUP}/{n}" for n in ("train_X", "train_y", "test_X", "test_y"))


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("usps", "usps.h5")], H5_FILENAME, NODES)
def usps_data(source_paths, target_path):
    """Return the path of ``usps.h5``, downloading it if needed.

    Examples
    --------
    >>> usps_data()  # doctest: +SKIP
    """
    # Copy rather than move: the source may be a user's offline copy.
    shutil.copyfile(source_paths[0], target_path)
    return target_path


def delete_cache() -> list[str]:
    """Delete the cached USPS file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


class USPS(dataset.H5Dataset):
    """USPS: ``train_X``, ``val_X``, ``test_X`` float32 ``(N, 1, 16, 16)`` in [0, 1],
    labels int32 0-9.

    Parameters
    ----------
    n_val : int or None
        Number of training samples (the last ones) kept for validation.

    Raises
    ------
    RuntimeError
        If the file cannot be fetched (0.2.3 printed and returned an empty object).

    Examples
    --------
    >>> with USPS(n_val=729) as ds:  # doctest: +SKIP
    ...     len(ds.train_y), len(ds.val_y), len(ds.test_y)
    (6562, 729, 2007)
    """

    def __init__(self, n_val: int | None = 729):
        n_val = dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(usps_data, "Could not load USPS dataset")
        self._load_splits(path, GROUP, n_val, ("X", "y"))

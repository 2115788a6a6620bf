"""STL-10 (96x96 colour images: 5000 labelled training, 8000 test, 100000 unlabelled).

The 2.6 GB tarball is streamed once (nothing is extracted to disk) into
``<data>/stl10.h5``; the unlabelled set is stored compressed and read lazily.

Examples
--------
>>> from batchup.datasets import stl
>>> ds = stl.STL(n_val_folds=1)  # doctest: +SKIP
>>> len(ds.train_y), len(ds.val_y)  # doctest: +SKIP
(4000, 1000)
"""

from __future__ import annotations

import numbers
import tarfile

import numpy as np

from batchup.datasets import dataset
from batchup.datasets._convert import byte_strings, compressed_earray, new_h5
from batchup.datasets._progress import progress_bar

H5_FILENAME = "stl10.h5"
GROUP = "stl"
NODES = tuple(f"/{GROUP}/{n}" for n in (
    "train_X_u8", "train_y", "test_X_u8", "test_y", "unl_X_u8", "class_names", "fold_indices"))
_IMAGE_BYTES = 3 * 96 * 96
_CHUNK_IMAGES = 2048


def _to_images(raw: bytes) -> np.ndarray:
    # Each channel is stored column-major: swap the last two axes to get rows first.
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)


def _read_all(stream) -> bytes:
    with stream:
        return stream.read()


@dataset.fetch_and_convert_dataset(
    [dataset.RegistrySourceFile("stl", "stl10_binary.tar.gz")], H5_FILENAME, NODES)
def fetch_stl(source_paths, target_path):
    """Return the path of ``stl10.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_stl()  # doctest: +SKIP
    """
    (tar_path,) = source_paths
    print(f"Unpacking STL tarball {tar_path}")
    seen = set()
    # Stream mode reads the gzip stream once, whatever the member order.
    with tarfile.open(tar_path, "r|gz") as tar, \
            new_h5(target_path, GROUP, "STL-10 data") as (f, g), \
            progress_bar(7, "Converting STL-10", unit="file") as bar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            stream = tar.extractfile(member) if member.isfile() else None
            if stream is None:
                continue
            if name in ("train_X.bin", "test_X.bin"):
                part = name.split("_")[0]
                print(f"Converting STL {'training' if part == 'train' else 'test'} set to HDF5")
                f.create_array(g, f"{part}_X_u8", np.ascontiguousarray(
                    _to_images(_read_all(stream))))
            elif name in ("train_y.bin", "test_y.bin"):
                labels = np.frombuffer(_read_all(stream), dtype=np.uint8).astype(np.int32) - 1
                f.create_array(g, name.replace(".bin", ""), labels)
            elif name == "unlabeled_X.bin":
                print("Converting STL unlabeled set to HDF5")
                n = member.size // _IMAGE_BYTES
                node = compressed_earray(f, g, "unl_X_u8", np.uint8, (3, 96, 96), n)
                with stream, progress_bar(n, "STL unlabeled", unit="img") as unl_bar:
                    while True:
                        raw = stream.read(_IMAGE_BYTES * _CHUNK_IMAGES)
                        if not raw:
                            break
                        node.append(_to_images(raw))
                        unl_bar.update(len(raw) // _IMAGE_BYTES)
            elif name == "class_names.txt":
                print("Converting STL class names to HDF5")
                text = _read_all(stream).decode("ascii")
                names = [line.strip() for line in text.splitlines() if line.strip()]
                f.create_array(g, "class_names", byte_strings(names))
            elif name == "fold_indices.txt":
                print("Converting STL fold indices to HDF5")
                import tables

                text = _read_all(stream).decode("ascii")
                folds = f.create_vlarray(g, "fold_indices", tables.Int32Atom())
                for line in text.splitlines():
                    if line.strip():
                        folds.append(np.array(line.split(), dtype=np.int32))
            else:
                continue
            seen.add(name)
            bar.update(1)
    missing = {"train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin",
               "class_names.txt", "fold_indices.txt"} - seen
    if missing:
        raise RuntimeError(f"{tar_path} lacks {', '.join(sorted(missing))}")
    return target_path


def delete_cache() -> list[str]:
    """Delete the converted STL-10 file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


def _check_n_val_folds(n_val_folds, n_folds: int | None = None) -> int:
    if n_val_folds is None:
        return 0
    if isinstance(n_val_folds, bool) or not isinstance(n_val_folds, numbers.Integral):
        raise TypeError(f"n_val_folds must be an integer or None, got {n_val_folds!r}")
    if n_val_folds < 0 or (n_folds is not None and n_val_folds > n_folds):
        limit = f"between 0 and {n_folds}" if n_folds is not None else ">= 0"
        raise ValueError(f"n_val_folds must be {limit}, got {n_val_folds}")
    return int(n_val_folds)


class STL(dataset.H5Dataset):
    """STL-10: labelled training/test sets, unlabelled set and the 10 training folds.

    Attributes: ``train_X_u8``, ``train_y``, ``val_X_u8``, ``val_y``,
    ``test_X_u8``, ``test_y`` (images ``(N, 3, 96, 96)`` uint8, labels
    int32 0-9), float views ``train_X``, ``val_X``, ``test_X``, ``unl_X_u8``
    (lazy, no float view), ``tr_folds`` (list of int32 index arrays) and
    ``class_names``.

    Parameters
    ----------
    n_val_folds : int or None
        The last ``n_val_folds`` folds (concatenated, in file order) form
        the validation set; the remaining training samples, in ascending
        order, form the training set.
    val_lower, val_upper : float
        Range the float views map pixel values 0..255 to.

    Examples
    --------
    >>> with STL(n_val_folds=0) as ds:  # doctest: +SKIP
    ...     ds.unl_X_u8.shape
    (100000, 3, 96, 96)
    """

    def __init__(self, n_val_folds: int | None = 1, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        n_val_folds = _check_n_val_folds(n_val_folds)
        path = dataset.fetch_or_raise(fetch_stl, "Could not load STL dataset")
        f = self._open_h5(path)
        try:
            g = f.get_node("/" + GROUP)
            self.tr_folds = [np.asarray(fold, dtype=np.int32) for fold in g.fold_indices]
            n_val_folds = _check_n_val_folds(n_val_folds, len(self.tr_folds))
            self.class_names = dataset.classnames_from_h5(g.class_names)
            self.test_X_u8 = g.test_X_u8
            self.test_y = g.test_y
            self.unl_X_u8 = g.unl_X_u8
            if n_val_folds == 0:
                (self.train_X_u8, self.train_y), (self.val_X_u8, self.val_y) = \
                    dataset.split_tail([g.train_X_u8, g.train_y], 0)
            else:
                val_idx = np.concatenate(self.tr_folds[-n_val_folds:])
                keep = np.ones(len(g.train_y), dtype=bool)
                keep[val_idx] = False
                train_idx = np.flatnonzero(keep)
                X, y = g.train_X_u8[:], g.train_y[:]
                self.train_X_u8, self.train_y = X[train_idx], y[train_idx]
                self.val_X_u8, self.val_y = X[val_idx], y[val_idx]
        except Exception:
            self.close()
            raise
        self._add_float_views(val_lower, val_upper, "train_X", "val_X", "test_X")

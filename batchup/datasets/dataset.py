"""Acquire source files, convert them to HDF5 once, and load the result.

The public names of batchup 0.2.3 are kept (source-file classes,
:func:`fetch_and_convert_dataset`, :func:`delete_dataset_cache`), with three
changes that make the cache dependable:

* an existing file is verified before use, and a cached HDF5 file that does
  not open or lacks its arrays is rebuilt, with a message;
* conversions write to a temporary name, renamed only when complete;
* failures raise ``RuntimeError`` subclasses saying what failed and how to
  fix it, instead of printing and returning ``None``.

Built-in datasets describe their sources with :class:`RegistrySourceFile`,
which reads :mod:`batchup.datasets.registry` at call time.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from batchup import config
from batchup.datasets import _h5

PathLike = str | Callable[[], str]


def path_string(p: PathLike) -> str:
    """Return ``p`` if a string, ``p()`` if callable.

    Examples
    --------
    >>> path_string(lambda: "a.h5")
    'a.h5'
    """
    if isinstance(p, str):
        return p
    if callable(p):
        return p()
    raise TypeError(f"A path should either be a string or a callable, not a {type(p)}")


def classnames_from_h5(node) -> list[str]:
    """Decode an HDF5 array of byte strings to a list of ``str`` (latin-1).

    Examples
    --------
    >>> classnames_from_h5(np.array([b"cat", b"dog"]))
    ['cat', 'dog']
    """
    return [x.decode("latin-1") if isinstance(x, bytes) else str(x) for x in list(node)]


# ---------------------------------------------------------------------------
# Source files


class AbstractSourceFile:
    """A file a dataset is converted from.

    Examples
    --------
    >>> AbstractSourceFile(sha256=None).sha256 is None
    True
    """

    def __init__(self, sha256: str | None = None):
        self.sha256 = sha256

    def acquire(self, **kwargs: Any) -> str | None:
        raise NotImplementedError

    def clean_up(self) -> None:
        pass


class BatchUpSourceFile(AbstractSourceFile):
    """A file fetched into ``<data>/temp/`` and deleted after conversion.

    The path is resolved when used (0.2.3 resolved it at import time, which
    created the data directory as a side effect).

    Examples
    --------
    >>> BatchUpSourceFile("a.bin").temp_filename
    'temp/a.bin'
    """

    def __init__(self, filename: str, sha256: str | None = None):
        super().__init__(sha256=sha256)
        self.filename = filename
        self.temp_filename = os.path.join("temp", filename)

    @property
    def path(self) -> str:
        return config.get_data_path(self.temp_filename)

    def clean_up(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


class DownloadSourceFile(BatchUpSourceFile):
    """A file downloaded from ``url`` (or ``base_url`` + ``filename``).

    Examples
    --------
    >>> str(DownloadSourceFile("a.gz", base_url="http://h/d/"))
    'downloadable file a.gz from http://h/d/a.gz'
    """

    def __init__(self, filename: str, url: str | None = None, base_url: str | None = None,
                 sha256: str | None = None):
        super().__init__(filename, sha256=sha256)
        if url is None:
            if base_url is None:
                raise TypeError("Must provide either url or base_url")
            url = base_url.rstrip("/") + "/" + filename
        self.url = url

    def __str__(self) -> str:
        return f"downloadable file {self.filename} from {self.url}"

    def acquire(self, **kwargs: Any) -> str | None:
        return config.download_data(self.temp_filename, self.url, self.sha256)


class CopySourceFile(BatchUpSourceFile):
    """A file copied from ``source_path`` or from the keyword ``arg_name``.

    Examples
    --------
    >>> str(CopySourceFile("a.bin", source_path="/x/a.bin"))
    'file a.bin on filesystem at /x/a.bin'
    """

    def __init__(self, filename: str, source_path: str | None = None,
                 arg_name: str | None = None, sha256: str | None = None):
        super().__init__(filename, sha256=sha256)
        if source_path is None and arg_name is None:
            raise TypeError("Either source_path or arg_name must be provided")
        self.source_path = source_path
        self.arg_name = arg_name

    def __str__(self) -> str:
        return f"file {self.filename} on filesystem at {self.source_path}"

    def acquire(self, **kwargs: Any) -> str | None:
        source = self.source_path if self.source_path is not None else kwargs[self.arg_name]
        return config.copy_data(self.temp_filename, source, self.sha256)


class ExistingSourceFile(AbstractSourceFile):
    """A file used where it is, after verification; never deleted.

    Examples
    --------
    >>> str(ExistingSourceFile("/x/a.bin"))
    'file at /x/a.bin'
    """

    def __init__(self, path: PathLike, sha256: str | None = None):
        if not isinstance(path, str) and not callable(path):
            raise TypeError(f"path must be a string or a callable, not a {type(path)}")
        super().__init__(sha256=sha256)
        self.path = path

    def __str__(self) -> str:
        return f"file at {path_string(self.path)}"

    def acquire(self, **kwargs: Any) -> str | None:
        path = path_string(self.path)
        if os.path.exists(path) and config.verify_file(path, self.sha256):
            return path
        return None


class RegistrySourceFile(AbstractSourceFile):
    """A file described by :mod:`batchup.datasets.registry`.

    Looked for, in order: ``$BATCHUP_DOWNLOADS/<dataset>/<filename>``,
    ``$BATCHUP_DOWNLOADS/<filename>``, ``<data>/downloads/<dataset>/<filename>``;
    a copy there is used only if its SHA-256 matches. Otherwise the file is
    downloaded into the last of these from the registry's URLs, unless
    ``BATCHUP_OFFLINE`` is set. Only downloaded copies are deleted by
    :meth:`clean_up`.

    Examples
    --------
    >>> src = RegistrySourceFile("mnist", "t10k-labels-idx1-ubyte.gz")
    >>> src.local_path.endswith("downloads/mnist/t10k-labels-idx1-ubyte.gz")
    True
    """

    def __init__(self, dataset: str, filename: str):
        super().__init__(sha256=None)
        self.dataset = dataset
        self.filename = filename
        self._acquired: str | None = None

    @property
    def entry(self):
        from batchup.datasets import registry

        return registry.get(self.dataset, self.filename)

    @property
    def local_path(self) -> str:
        return os.path.join(config.get_downloads_dir(), self.dataset, self.filename)

    def __str__(self) -> str:
        return f"{self.dataset} source file {self.filename}"

    def offline_candidates(self) -> list[str]:
        folder = config.get_offline_dir()
        if folder is None:
            return []
        return [os.path.join(folder, self.dataset, self.filename),
                os.path.join(folder, self.filename)]

    def find_verified(self) -> str | None:
        """Return a verified copy already on disk, or ``None``; never downloads."""
        sha = self.entry.sha256
        for candidate in self.offline_candidates():
            if os.path.isfile(candidate):
                if config.verify_file(candidate, sha):
                    return candidate
                print(f"batchup: ignoring {candidate}: its SHA-256 is not {sha}")
        local = self.local_path
        if os.path.isfile(local):
            if config.verify_file(local, sha):
                return local
            print(f"batchup: deleting {local}: its SHA-256 is not {sha}")
            os.remove(local)
        return None

    def acquire(self, **kwargs: Any) -> str:
        from batchup.datasets._download import DownloadError, fetch_url_list

        entry = self.entry
        found = self.find_verified()
        if found is not None:
            self._acquired = found
            return found
        local = self.local_path
        hint = (f"To use batchup without network access, place {entry.filename} "
                f"(SHA-256 {entry.sha256}) at {local} or in ${config.ENV_DOWNLOADS}.")
        if config.is_offline():
            raise DownloadError(entry.filename, [], f"${config.ENV_OFFLINE} is set. {hint}")
        config.ensure_dir(os.path.dirname(local))
        self._acquired = fetch_url_list(local, entry.urls, entry.sha256, hint)
        return self._acquired

    def clean_up(self) -> None:
        local = self.local_path
        if self._acquired == local and os.path.exists(local):
            os.remove(local)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(local))  # only succeeds if now empty
        self._acquired = None


# ---------------------------------------------------------------------------
# Fetch and convert


def fetch_and_convert_dataset(
    source_files: Sequence[AbstractSourceFile],
    target_filename: PathLike,
    required_nodes: Sequence[str] | None = None,
):
    """Decorator factory: turn ``convert(source_paths, target_path)`` into ``fetch(**kw)``.

    ``fetch`` returns the path of the converted file, building it if needed:
    it acquires the sources in order, calls ``convert`` with a temporary
    target path and renames the result into place only once ``convert``
    returned successfully (and, with ``required_nodes``, the file opens and
    contains those nodes). With ``required_nodes``, an existing target that
    fails that check is deleted and rebuilt. Sources are cleaned up only
    after a successful conversion.

    Parameters
    ----------
    source_files : sequence of AbstractSourceFile
        Files to acquire, in order.
    target_filename : str or callable
        Target name inside the data directory (or an absolute path).
    required_nodes : sequence of str, optional
        HDF5 node paths a usable target must contain.

    Examples
    --------
    >>> @fetch_and_convert_dataset([], "toy.txt")
    ... def fetch_toy(source_paths, target_path):
    ...     with open(target_path, "w") as f:
    ...         f.write("hi")
    ...     return target_path
    >>> fetch_toy.__name__
    'fetch_toy'
    """
    if not isinstance(target_filename, str) and not callable(target_filename):
        raise TypeError(
            f"target_filename must be a string or a callable, not a {type(target_filename)}"
        )
    for src in source_files:
        if not isinstance(src, AbstractSourceFile):
            raise TypeError(f"source_files entries must be AbstractSourceFile, not {type(src)}")
    nodes = list(required_nodes) if required_nodes is not None else None

    def decorate(convert):
        @functools.wraps(convert)
        def fetch(**kwargs: Any) -> str:
            target = config.get_data_path(path_string(target_filename))
            if os.path.exists(target):
                problem = _h5.problem_with(target, nodes) if nodes is not None else None
                if problem is None:
                    return target
                print(f"batchup: cached file {target} is unusable ({problem}); rebuilding it")
                os.remove(target)
            config.ensure_dir(os.path.dirname(target))
            _h5.remove_stale_temps(target)
            paths: list[str] = []
            for src in source_files:
                path = src.acquire(**kwargs)
                if path is None:
                    raise RuntimeError(f"Failed to acquire {src}")
                if path in paths:
                    raise ValueError(f"Duplicate source file {path}")
                paths.append(path)
            temp = _h5.temp_path_for(target)
            try:
                result = convert(paths, temp)
                if result is None:
                    raise RuntimeError(f"conversion to {target} by {convert.__name__} failed")
                problem = _h5.problem_with(temp, nodes) if nodes is not None else None
                if problem is not None:
                    raise RuntimeError(f"conversion produced an unusable {target}: {problem}")
                os.replace(temp, target)
            finally:
                if os.path.exists(temp):
                    os.remove(temp)
            for src in source_files:
                src.clean_up()
            return target

        return fetch

    return decorate


def delete_dataset_cache(*filenames: PathLike) -> list[str]:
    """Delete converted files from the data directory; return those deleted.

    Examples
    --------
    >>> delete_dataset_cache("/nonexistent/never.h5")
    []
    """
    deleted = []
    for name in filenames:
        path = config.get_data_path(path_string(name))
        if os.path.exists(path):
            os.remove(path)
            deleted.append(path)
    return deleted


# ---------------------------------------------------------------------------
# Loading


def check_n_val(n_val: Any, name: str = "n_val") -> int:
    """Validate a validation-set size given by a user; ``None`` means 0.

    Raises
    ------
    TypeError
        If it is not an integer (``bool`` and floats are rejected).
    ValueError
        If it is negative.

    Examples
    --------
    >>> check_n_val(None), check_n_val(np.int64(5))
    (0, 5)
    """
    if n_val is None:
        return 0
    if isinstance(n_val, bool) or not isinstance(n_val, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, got {n_val!r}")
    if n_val < 0:
        raise ValueError(f"{name} must be >= 0, got {n_val}")
    return int(n_val)


def split_tail(arrays: Sequence[Any], n_val: int, name: str = "n_val"):
    """Split aligned arrays so the last ``n_val`` samples become validation.

    With ``n_val == 0`` the arrays are returned as they are (lazy HDF5 nodes
    stay lazy) and the validation parts are empty arrays of matching
    trailing shape and dtype; otherwise both parts are read into memory.

    Raises
    ------
    ValueError
        If ``n_val`` exceeds the number of samples.

    Examples
    --------
    >>> tr, va = split_tail([np.arange(5)], 2)
    >>> tr[0].tolist(), va[0].tolist()
    ([0, 1, 2], [3, 4])
    """
    n = len(arrays[0])
    if n_val > n:
        raise ValueError(f"{name} must be at most the training set size {n}, got {n_val}")
    if n_val == 0:
        empty = [np.zeros((0,) + tuple(int(d) for d in a.shape[1:]), dtype=a.dtype)
                 for a in arrays]
        return list(arrays), empty
    cut = n - n_val
    return [a[:cut] for a in arrays], [a[cut:] for a in arrays]


def fetch_or_raise(fetch: Callable[[], str], failure: str) -> str:
    """Call ``fetch()``; turn a failure into ``RuntimeError(failure + reason)``.

    Permission and configuration errors pass through unchanged: their own
    message already names the culprit.

    Examples
    --------
    >>> fetch_or_raise(lambda: "x.h5", "Could not load X")
    'x.h5'
    """
    try:
        return fetch()
    except RuntimeError as exc:
        raise RuntimeError(f"{failure}: {exc}") from exc


class H5Dataset:
    """Base class of the dataset loaders: owns the open HDF5 file.

    Use as a context manager or call :meth:`close`; the file is also closed
    when the object is garbage-collected and at interpreter exit. Lazy
    attributes (HDF5 nodes) cannot be read after closing.

    Examples
    --------
    >>> from batchup.datasets import mnist
    >>> with mnist.MNIST(n_val=10000) as ds:  # doctest: +SKIP
    ...     ds.train_X[:2].shape
    (2, 1, 28, 28)
    """

    _h5file = None
    _finalizer = None

    def _open_h5(self, path: str):
        self._h5file, self._finalizer = _h5.open_read_only(path, self)
        return self._h5file

    @property
    def h5_file(self):
        """The open ``tables.File`` (``None`` after :meth:`close`)."""
        f = self._h5file
        return f if f is not None and f.isopen else None

    @contextlib.contextmanager
    def _closed_on_error(self):
        """Close the file if the block fails, so a failed constructor leaks nothing."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def _load_splits(self, path: str, group: str, n_val: int, names: Sequence[str]):
        """Open ``path`` and set ``train_<n>``, ``val_<n>`` and ``test_<n>`` for each name.

        Training and validation come from the ``train_<n>`` nodes of ``group``
        (the last ``n_val`` samples are validation, see :func:`split_tail`);
        test attributes are the lazy ``test_<n>`` nodes. Returns the group node.
        """
        f = self._open_h5(path)
        with self._closed_on_error():
            g = f.get_node("/" + group)
            train, val = split_tail([getattr(g, "train_" + n) for n in names], n_val)
            for n, tr, va in zip(names, train, val, strict=True):
                setattr(self, "train_" + n, tr)
                setattr(self, "val_" + n, va)
                setattr(self, "test_" + n, getattr(g, "test_" + n))
        return g

    def _add_float_views(self, val_lower: float, val_upper: float, *names: str) -> None:
        from batchup.image.utils import ImageArrayUInt8ToFloat32

        for name in names:
            wrapped = ImageArrayUInt8ToFloat32(getattr(self, name + "_u8"), val_lower, val_upper)
            setattr(self, name, wrapped)

    def close(self) -> None:
        """Close the HDF5 file; safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

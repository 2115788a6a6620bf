"""Cache a slow array-like once, on disk or in shared memory, and iterate the copy.

:func:`cache_array` reads every row of an array-like whose rows are slow to
produce (decoded images, a network file system, a Python ``__getitem__``) and
stores them in a ``.npy`` file, an HDF5 file or shared memory; it returns the
stored array, which process pools pass to their workers by reference (the
file), not by copy. :func:`cache_source` does the same for every array of an
``ArrayDataSource``, each in a file of its own. See ``docs/caching.md``.

Design note: the files of a cache and how a fill survives being killed
--------------------------------------------------------------------------
For a cache at ``P`` (``storage="npy"``: a ``.npy`` file; ``"hdf5"``: an
``.h5`` file with the rows in the node ``/data``)::

    P                 the complete data; only ever appears by a rename
    P.json            the manifest: fingerprint, shape, dtype, storage
    P.partial         the data while it is filled (same format as P)
    P.partial.json    the progress record: fingerprint, rows per block, done-block bitmap
    P.lock            flock'ed by whoever checks or fills the cache (left in place)

* Everything below happens with ``P.lock`` held (``fcntl.flock``), so two
  processes on one host never fill the same cache together: the second waits,
  then finds the complete cache and reuses it.
* The *fingerprint* (type name, length, row shape, dtype, the caller's
  ``key``, the source's own ``cache_key()``, and a sha1 of a few rows spread
  over the source) decides whether what is on disk belongs to this source.
  A complete cache is reused only when its manifest holds the same
  fingerprint and its file has the manifest's shape and dtype.
* A fill first allocates the whole file (``posix_fallocate``), so a full disk
  fails before a block is read. Rows are then read and written in blocks of
  ``batch_size``; after each block the data is flushed to disk
  (``fdatasync``/HDF5 flush) and only then is the record rewritten (write a
  temporary file, rename it over the old one) to mark the block done. A fill
  killed at any point leaves a record that claims only blocks on disk; the
  next call with the same fingerprint reads the missing blocks only.
* Completion: data flushed and closed, manifest written (atomically), then
  ``P.partial`` renamed to ``P`` and the record removed. Crashing between the
  manifest and the rename leaves a complete partial fill that the next call
  renames. A file at ``P`` without a manifest is not ours: it is never
  overwritten.
* A cache whose fingerprint differs is removed (data first, then manifest)
  and rebuilt, with a warning saying why -- or, with ``rebuild=False``, left
  alone while a ``ValueError`` says why.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from batchup._core.fetch import read_rows
from batchup._core.validate import array_length, check_batch_size, is_array_like, show

try:  # POSIX; elsewhere fills are not protected against concurrent callers
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STORAGES", "cache_array", "cache_source", "fingerprint_positions"]

#: Where :func:`cache_array` can store rows.
STORAGES = ("npy", "hdf5", "memory")

#: Bumped when the layout of the files changes: older caches are then rebuilt.
FORMAT_VERSION = 1

#: How many rows (first, last and evenly spread between) the fingerprint reads.
FINGERPRINT_ROWS = 9

_MANIFEST_FORMAT = "batchup-cache"
_RECORD_FORMAT = "batchup-cache-progress"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOSYS", errno.EINVAL),
                 getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_FIELDS = {
    "format": "cache format version",
    "type": "source type",
    "length": "length",
    "shape": "row shape",
    "dtype": "dtype",
    "key": "key",
    "source_key": "the source's cache_key()",
    "rows_sha1": "sha1 of the sampled rows",
}


# --------------------------------------------------------------------------
# Small file helpers (also used by batchup.local_copy)
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(lock_path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if needed) for the block."""
    parent = os.path.dirname(lock_path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_json(path: str) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: str, value: dict, durable: bool = True) -> None:
    """Replace ``path`` by ``value`` atomically (a reader sees the old or the new file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


def _sync_dir(path: str) -> None:
    """Make a rename in ``path``'s directory durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _free_bytes(path: str) -> int | None:
    try:
        return int(shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free)
    except OSError:
        return None


def _no_space(name: str, path: str, needed: int, free: int | None, cause: str = "") -> OSError:
    have = f"; {free:,} bytes are free there" if free is not None else ""
    why = f" ({cause})" if cause else ""
    return OSError(errno.ENOSPC, f"not enough space for the cache {name}: it needs "
                                 f"{needed:,} bytes{have}{why}; free some space or choose "
                                 "another path")


def _check_free(name: str, path: str, needed: int) -> None:
    free = _free_bytes(path)
    if free is not None and free < needed:
        raise _no_space(name, path, needed, free)


def _allocate(fd: int, name: str, path: str, size: int) -> None:
    """Reserve ``size`` bytes for the open file ``fd`` (at ``path``, for the cache ``name``)
    now, so that writing cannot run out of space."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as e:
            if e.errno in _NO_SPACE:
                raise _no_space(name, path, size, _free_bytes(path), e.strerror or "") from e
            if e.errno not in _NO_FALLOCATE:
                raise OSError(e.errno, f"allocating {size:,} bytes for {path} failed: "
                                       f"{e.strerror}") from e
    # No fallocate here (or not on this file system): check, then extend.
    _check_free(name, path, size - os.fstat(fd).st_size)
    os.ftruncate(fd, size)


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _jsonable(value: Any, name: str) -> Any:
    """``value`` as JSON gives it back (tuples become lists), or a TypeError naming ``name``."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be JSON-serialisable (numbers, strings, lists, dicts), "
                        f"not {show(value)} ({e})") from None


def _check_storage(storage: Any) -> str:
    if not isinstance(storage, str) or storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(map(repr, STORAGES))}, "
                         f"not {show(storage)}")
    return storage


def _check_path(path: Any, storage: str, name: str = "path") -> str | None:
    if path is None:
        if storage != "memory":
            example = "'cache/X.h5'" if storage == "hdf5" else "'cache/X.npy'"
            raise ValueError(f"{name} is required for storage={storage!r} (a file such as "
                             f"{example}); only storage='memory' may leave it None")
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {show(path)}")
    return os.fspath(path)


def _check_pool(pool: Any) -> Any:
    if pool is None:
        return None
    from batchup._pool.pools import AbstractWorkerPool

    if isinstance(pool, AbstractWorkerPool):
        pool.check_open()
        return pool
    if isinstance(pool, (bool, np.bool_)) or not isinstance(pool, (int, np.integer)):
        raise TypeError("pool must be None, a WorkerThreadPool or WorkerProcessPool, or an int "
                        f"(worker processes to start), not {show(pool)}")
    if pool < 0:
        raise ValueError(f"pool must be a number of worker processes >= 0 (0: one per CPU), "
                         f"not {show(pool)}")
    return int(pool)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {show(value)}")
    return bool(value)


# --------------------------------------------------------------------------
# The fingerprint
# --------------------------------------------------------------------------


def fingerprint_positions(n: int) -> np.ndarray:
    """The rows the fingerprint of a source of length ``n`` reads: first, last, spread.

    Examples
    --------
    >>> fingerprint_positions(1000).tolist()
    [0, 125, 250, 375, 500, 624, 749, 874, 999]
    >>> fingerprint_positions(3).tolist()
    [0, 1, 2]
    """
    return np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ROWS)).round().astype(np.int64))


def _source_hook(source: Any) -> Any:
    hook = getattr(source, "cache_key", None)
    if hook is None:
        hook = getattr(source, "fingerprint", None)
    value = hook() if callable(hook) else hook
    return _jsonable(value, f"{type(source).__name__}.cache_key()")


def _row_spec(source: Any, rows: np.ndarray) -> tuple[tuple, np.dtype]:
    """Row shape and dtype: the source's ``shape``/``dtype`` when it has both, else ``rows``'."""
    shape, dtype = getattr(source, "shape", None), getattr(source, "dtype", None)
    if isinstance(shape, tuple) and len(shape) >= 1 and dtype is not None:
        with contextlib.suppress(TypeError, ValueError):
            return tuple(int(s) for s in shape[1:]), np.dtype(dtype)
    return tuple(rows.shape[1:]), rows.dtype


def _check_dtype(dtype: np.dtype, storage: str) -> None:
    if dtype.hasobject:
        raise TypeError(f"source rows have dtype {dtype}, which holds Python objects; a cache "
                        "stores fixed-size rows: convert them (e.g. decode to a numeric array) "
                        "in the source")
    if storage == "hdf5":
        import tables

        try:
            tables.Atom.from_dtype(dtype)
        except Exception as e:
            raise TypeError(f"storage='hdf5' cannot store rows of dtype {dtype} ({e}); use "
                            "storage='npy'") from None


def _as_block(rows: Any, which: str, count: int, row_shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``count`` rows read from the source (``which`` names them), checked and in ``dtype``."""
    block = np.asarray(rows)
    if block.shape != (count,) + row_shape:
        raise ValueError(f"the source gave {which} with shape {block.shape}, expected "
                         f"{(count,) + row_shape} (every row must have the shape {row_shape})")
    if block.dtype != dtype:
        try:
            block = block.astype(dtype, casting="same_kind")
        except TypeError as e:
            raise TypeError(f"the source gave {which} of dtype {block.dtype}, which does not "
                            f"convert to its dtype {dtype} ({e})") from None
    return np.ascontiguousarray(block)


def _fingerprint(source: Any, n: int, key: Any, storage: str) -> tuple[dict, tuple, np.dtype]:
    """The fingerprint of ``source``, its row shape and dtype (reads a few rows)."""
    declared = getattr(source, "dtype", None)
    if declared is not None:
        with contextlib.suppress(TypeError):
            _check_dtype(np.dtype(declared), storage)  # fail before reading anything
    positions = fingerprint_positions(n)
    sample = np.asarray(read_rows(source, positions))
    if sample.ndim == 0 or len(sample) != len(positions):
        raise ValueError(f"reading rows {positions.tolist()} of the source gave "
                         f"{show(sample)}, not one row per index")
    row_shape, dtype = _row_spec(source, sample)
    _check_dtype(dtype, storage)
    sample = _as_block(sample, f"rows {positions.tolist()}", len(positions), row_shape, dtype)
    digest = hashlib.sha1(sample.tobytes())
    digest.update(positions.tobytes())
    fp = {
        "format": FORMAT_VERSION,
        "type": type(source).__qualname__,
        "length": int(n),
        "shape": list(row_shape),
        "dtype": _jsonable(np.lib.format.dtype_to_descr(dtype), "dtype"),
        "key": key,
        "source_key": _source_hook(source),
        "rows_sha1": digest.hexdigest(),
    }
    return fp, row_shape, dtype


def _mismatch(stored: dict, fp: dict, storage: str) -> str:
    """Why ``stored`` (a manifest or record) does not belong to ``fp``; '' if it does."""
    old = stored.get("fingerprint")
    if not isinstance(old, dict):
        return "its fingerprint is missing"
    problems = []
    if stored.get("storage") != storage:
        problems.append(f"storage: cached {stored.get('storage')!r}, now {storage!r}")
    for field, label in _FIELDS.items():
        if old.get(field) != fp.get(field):
            if field == "rows_sha1":
                problems.append("the sampled rows differ from the cached ones")
            else:
                problems.append(f"{label}: cached {show(old.get(field))}, now "
                                f"{show(fp.get(field))}")
    return "; ".join(problems)


def _refuse_or_warn(path: str, what: str, problem: str, rebuild: bool) -> None:
    if not rebuild:
        raise ValueError(f"the {what} at {path} does not match the source: {problem}; pass "
                         "rebuild=True to replace it, or choose another path")
    _warn(f"rebuilding the {what} at {path}: it does not match the source ({problem})")


def _warn(message: str) -> None:
    """``warnings.warn`` attributed to the first caller outside this module."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


# --------------------------------------------------------------------------
# Storage formats: writers for the partial file, readers for the complete one
# --------------------------------------------------------------------------


def _npy_header(shape: tuple, dtype: np.dtype) -> bytes:
    import io

    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": shape}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:  # more than 64 KiB of header: format 2.0
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


class _NpyWriter:
    """Writes rows into a pre-allocated ``.npy`` file with ``os.pwrite``."""

    def __init__(self, name: str, path: str, shape: tuple, dtype: np.dtype,
                 create: bool) -> None:
        self.name, self.path = name, path
        header = _npy_header(shape, dtype)
        self.offset = len(header)
        self.row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        size = self.offset + self.row_bytes * shape[0]
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = os.open(path, flags, 0o644)
        try:
            if create:
                self._pwrite(header, 0)
            elif os.pread(self.fd, len(header), 0) != header:
                raise ValueError(f"{path} does not hold rows of shape {shape[1:]} and dtype "
                                 f"{dtype}")
            _allocate(self.fd, name, path, size)
        except BaseException:
            os.close(self.fd)
            raise

    def _pwrite(self, data: Any, offset: int) -> None:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            try:
                done += os.pwrite(self.fd, view[done:], offset + done)
            except OSError as e:
                raise OSError(e.errno, f"writing the cache {self.name} (at {self.path}) "
                                       f"failed: {e.strerror}; nothing is at {self.name}, and "
                                       "the next call resumes the fill") from e

    def write(self, first: int, block: np.ndarray) -> None:
        self._pwrite(block.reshape(-1).view(np.uint8) if block.size else b"",
                     self.offset + first * self.row_bytes)

    def flush(self) -> None:
        (getattr(os, "fdatasync", None) or os.fsync)(self.fd)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class _H5Writer:
    """Writes rows into the CArray ``/data`` of a PyTables file."""

    def __init__(self, name: str, path: str, shape: tuple, dtype: np.dtype, create: bool,
                 block_rows: int) -> None:
        os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
        import tables

        self.name, self.path = name, path
        self._errors = (tables.HDF5ExtError, OSError)
        if create:
            row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
            _check_free(name, path, row_bytes * shape[0])
            chunk_rows = max(1, min(block_rows, (1 << 20) // row_bytes, shape[0]))
            self.file = tables.open_file(path, mode="w")
            try:
                self.node = self.file.create_carray(
                    self.file.root, "data", atom=tables.Atom.from_dtype(dtype), shape=shape,
                    chunkshape=(chunk_rows,) + tuple(shape[1:]))
                self.file.flush()
            except BaseException:
                self.file.close()
                raise
        else:
            self.file = tables.open_file(path, mode="a")
            try:
                self.node = self.file.root.data
                if self.node.shape != shape or self.node.dtype != dtype:
                    raise ValueError(f"{path} does not hold rows of shape {shape[1:]} and "
                                     f"dtype {dtype}")
            except BaseException:
                self.file.close()
                raise

    def write(self, first: int, block: np.ndarray) -> None:
        try:
            self.node[first:first + len(block)] = block
        except self._errors as e:
            raise OSError(getattr(e, "errno", None) or errno.EIO,
                          f"writing the cache {self.name} (at {self.path}) failed: {e}; "
                          f"nothing is at {self.name}, and the next call resumes the "
                          "fill") from e

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if self.file.isopen:
            self.file.close()


def _open_writer(storage: str, paths: dict, shape: tuple, dtype: np.dtype, create: bool,
                 block_rows: int) -> Any:
    if storage == "hdf5":
        return _H5Writer(paths["data"], paths["partial"], shape, dtype, create, block_rows)
    return _NpyWriter(paths["data"], paths["partial"], shape, dtype, create)


def _open_complete(storage: str, path: str) -> Any:
    """The complete cache at ``path``, read-only: a memory map or a PyTables node."""
    if storage == "hdf5":
        os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
        import tables

        f = tables.open_file(path, mode="r")
        try:
            return f.root.data
        except BaseException:
            f.close()
            raise
    return np.load(path, mmap_mode="r")


def _file_problem(storage: str, path: str, shape: tuple, dtype: np.dtype) -> str:
    """Why the file at ``path`` does not hold ``shape`` and ``dtype``; '' if it does."""
    try:
        array = _open_complete(storage, path)
    except Exception as e:
        return f"the file is unreadable ({type(e).__name__}: {e})"
    try:
        if tuple(array.shape) != shape or np.dtype(array.dtype) != dtype:
            return (f"the file holds shape {tuple(array.shape)} and dtype {array.dtype}, its "
                    f"manifest says {shape} and {dtype}")
        return ""
    finally:
        if storage == "hdf5":
            array._v_file.close()


# --------------------------------------------------------------------------
# The fill
# --------------------------------------------------------------------------


def _encode_bits(done: np.ndarray) -> str:
    return np.packbits(done).tobytes().hex()


def _decode_bits(text: Any, n_blocks: int) -> np.ndarray | None:
    try:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
    except (TypeError, ValueError):
        return None
    return bits[:n_blocks].astype(bool) if len(bits) >= n_blocks else None


def _read_blocks(source: Any, n: int, block_rows: int, todo: np.ndarray,
                 pool: Any) -> Iterator[tuple[int, Any]]:
    """``(block number, rows)`` for the blocks in ``todo``, in order; a pool reads ahead."""
    if pool is None:
        for b in todo.tolist():
            first = b * block_rows
            yield b, read_rows(source, slice(first, min(n, first + block_rows)))
        return
    from batchup._core.sources import ArrayDataSource

    missing = (todo[:, None] * block_rows + np.arange(block_rows)).reshape(-1)
    missing = missing[missing < n]
    # Every block but the last one of ``todo`` is full, so batch k is block todo[k].
    ds = ArrayDataSource([source], indices=missing)
    par = pool.parallel_data_source(ds, batch_buffer_size=max(4, 2 * pool.processes))
    it = par.batch_iterator(block_rows)
    try:
        for b, (rows,) in zip(todo.tolist(), it, strict=True):
            yield b, rows
    finally:
        it.close()


def _fill(writer: Any, source: Any, paths: dict, storage: str, fp: dict, row_shape: tuple,
          dtype: np.dtype, n: int, block_rows: int, done: np.ndarray | None, pool: Any,
          progress: bool) -> None:
    """Fill the open partial file (resuming after the blocks ``done``), then move it into place."""
    n_blocks = -(-n // block_rows)
    if done is None:
        done = np.zeros(n_blocks, dtype=bool)
    record = {"format": _RECORD_FORMAT, "storage": storage, "fingerprint": fp,
              "block_rows": block_rows, "n_blocks": n_blocks, "done": _encode_bits(done)}
    _write_json(paths["record"], record)
    todo = np.flatnonzero(~done)
    sizes = np.minimum(block_rows, n - np.arange(n_blocks) * block_rows)
    bar = own_pool = None
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, initial=int(sizes[done].sum()), unit="row",
                       desc=f"caching {os.path.basename(paths['data'])}")
        if not len(todo):
            pool = None
        elif isinstance(pool, int):
            from batchup.work_pool import WorkerProcessPool

            own_pool = pool = WorkerProcessPool(pool)
        for b, rows in _read_blocks(source, n, block_rows, todo, pool):
            first, count = b * block_rows, int(sizes[b])
            which = f"rows {first}..{first + count - 1}"
            writer.write(first, _as_block(rows, which, count, row_shape, dtype))
            writer.flush()  # the data is on disk before the record says so
            done[b] = True
            record["done"] = _encode_bits(done)
            _write_json(paths["record"], record, durable=False)
            if bar is not None:
                bar.update(count)
    finally:
        if own_pool is not None:
            own_pool.close()
        if bar is not None:
            bar.close()
        writer.close()
    manifest = {"format": _MANIFEST_FORMAT, "storage": storage, "fingerprint": fp,
                "shape": [n, *row_shape], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_json(paths["manifest"], manifest)
    os.replace(paths["partial"], paths["data"])
    _sync_dir(paths["data"])
    _remove(paths["record"])


def _paths(path: str) -> dict:
    return {"data": path, "manifest": f"{path}.json", "partial": f"{path}.partial",
            "record": f"{path}.partial.json", "lock": f"{path}.lock"}


def _resume_point(paths: dict, storage: str, fp: dict, n: int, path: str,
                  rebuild: bool) -> tuple[int, np.ndarray] | None:
    """``(rows per block, done-block bitmap)`` of a partial fill that fits ``fp``, or None."""
    if not os.path.exists(paths["partial"]):
        return None
    record = _read_json(paths["record"])
    if record is None or record.get("format") != _RECORD_FORMAT:
        return None  # killed before its first record: nothing to resume
    problem = _mismatch(record, fp, storage)
    if problem:
        _refuse_or_warn(path, "partly filled cache", problem, rebuild)
        return None
    block_rows, n_blocks = record.get("block_rows"), record.get("n_blocks")
    if not isinstance(block_rows, int) or block_rows < 1 or n_blocks != -(-n // block_rows):
        return None
    done = _decode_bits(record.get("done"), n_blocks)
    return None if done is None else (block_rows, done)


def _cache_at(source: Any, path: str, storage: str, pool: Any, batch_size: int, progress: bool,
              key: Any, rebuild: bool, n: int) -> Any:
    # The fingerprint reads the source only: done before the lock, so a bad source
    # fails before anything is written and a waiting process is not held up by it.
    fp, row_shape, dtype = _fingerprint(source, n, key, storage)
    shape = (n,) + row_shape
    paths = _paths(path)
    with _file_lock(paths["lock"]):
        if os.path.exists(paths["data"]):
            manifest = _read_json(paths["manifest"])
            if manifest is None or manifest.get("format") != _MANIFEST_FORMAT:
                raise FileExistsError(
                    f"{path} exists and is not a batchup cache (it has no manifest "
                    f"{paths['manifest']}); it is left untouched: remove it or choose another "
                    "path")
            problem = _mismatch(manifest, fp, storage) or _file_problem(storage, path, shape,
                                                                         dtype)
            if not problem:
                _remove(paths["partial"], paths["record"])  # leftovers of a finished fill
                return _open_complete(storage, path)
            _refuse_or_warn(path, "cache", problem, rebuild)
            _remove(paths["data"], paths["manifest"])
        else:
            _remove(paths["manifest"])  # stale: its data was never moved into place
        resume = _resume_point(paths, storage, fp, n, path, rebuild)
        writer = done = None
        block_rows = batch_size
        if resume is not None:
            block_rows, done = resume
            try:
                writer = _open_writer(storage, paths, shape, dtype, False, block_rows)
            except Exception as e:  # e.g. an HDF5 file damaged by the kill
                _warn(f"restarting the fill of {path}: its partial file cannot be resumed "
                      f"({type(e).__name__}: {e})")
                block_rows, done = batch_size, None
        if writer is None:
            _remove(paths["record"])
            try:
                writer = _open_writer(storage, paths, shape, dtype, True, block_rows)
            except BaseException:
                _remove(paths["partial"])
                raise
        _fill(writer, source, paths, storage, fp, row_shape, dtype, n, block_rows, done, pool,
              progress)
        return _open_complete(storage, path)


def _check_options(storage: Any, path: Any, batch_size: Any, pool: Any, progress: Any,
                   rebuild: Any, key: Any) -> tuple:
    """The keyword arguments that ``cache_array`` and ``cache_source`` share, checked."""
    storage = _check_storage(storage)
    return (storage, _check_path(path, storage), check_batch_size(batch_size),
            _check_pool(pool), _check_flag(progress, "progress"),
            _check_flag(rebuild, "rebuild"), _jsonable(key, "key"))


def cache_array(source: Any, path: str | os.PathLike | None = None, *, storage: str = "npy",
                pool: Any = None, batch_size: int = 256, progress: bool = False, key: Any = None,
                rebuild: bool = True) -> Any:
    """Store every row of a slow array-like once; return the stored array.

    The first call reads the source in blocks of ``batch_size`` rows and
    writes them to ``path``; later calls with the same source return the
    stored array after reading only a few rows of the source (its
    fingerprint). A call that finds a cache of a *different* source (another
    length, row shape, dtype, ``key``, ``cache_key()`` or sampled rows)
    rebuilds it with a warning saying why. A fill that was interrupted (killed,
    disk error) resumes where it stopped. Two processes caching to the same
    path at once are serialised by a lock on ``<path>.lock``: the second
    waits, then reuses what the first stored.

    Parameters
    ----------
    source : array-like
        Anything with ``__len__`` and ``__getitem__`` (an integer index array
        gives those rows), or a ``read_rows(index, out=None)`` method. Rows
        must be fixed-size (not Python objects); the row shape and dtype are
        the source's ``shape[1:]`` and ``dtype`` when it has both, else those
        of the rows it returns. A ``cache_key()`` method (or ``fingerprint``
        attribute) returning a JSON-able value joins the fingerprint.
    path : str or os.PathLike, optional
        The file to store the rows in, e.g. ``"cache/X.npy"`` or
        ``"cache/X.h5"``; missing folders are created. Beside it live
        ``<path>.json`` (the manifest), ``<path>.lock`` and, during a fill,
        ``<path>.partial`` and ``<path>.partial.json``. Required for
        ``"npy"`` and ``"hdf5"``; with ``storage="memory"`` None picks a
        private file (see below).
    storage : {'npy', 'hdf5', 'memory'}
        ``"npy"``: a ``.npy`` file, returned as ``np.load(path,
        mmap_mode="r")``. ``"hdf5"``: a PyTables CArray ``/data`` in an HDF5
        file, returned as a read-only node (close it with
        ``node._v_file.close()``). ``"memory"``: a ``.npy`` file in shared
        memory (``/dev/shm``, or the temporary folder where there is none),
        returned as a memory map that process workers map without copying;
        with ``path=None`` it is deleted once the returned array (and every
        view of it) is garbage collected, or at interpreter exit; with a
        ``path`` it is kept there like ``"npy"`` (give a path in ``/dev/shm``
        to share it between processes).
    pool : WorkerThreadPool, WorkerProcessPool or int, optional
        Read blocks in these workers (an int: start that many worker
        processes, 0 meaning one per CPU, and close them afterwards). The
        calling process writes. The source must be picklable for processes.
    batch_size : int
        Rows per block: the unit of reading, writing and resuming. A resumed
        fill keeps the block size it started with.
    progress : bool
        Show a tqdm progress bar of the rows stored.
    key : JSON-able, optional
        Settings the rows depend on that the source cannot tell (e.g. the
        options of a decoding step); a different key rebuilds the cache.
    rebuild : bool
        When the cache at ``path`` belongs to a different source: True
        rebuilds it (with a warning), False raises ``ValueError``.

    Returns
    -------
    numpy.memmap or tables.CArray
        Read-only, with ``len(source)`` rows.

    Raises
    ------
    OSError
        The file system has not enough space (checked before any block is
        read; the message names the path and the bytes needed), or writing
        failed. Nothing is left at ``path``; the next call resumes.
    FileExistsError
        ``path`` holds a file that is not a batchup cache (no manifest).

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> slow = np.arange(12).reshape(6, 2)      # stands for a slow array-like
    >>> X = cache_array(slow, os.path.join(folder, "X.npy"), batch_size=4)
    >>> type(X).__name__, X.shape, X[5].tolist()
    ('memmap', (6, 2), [10, 11])
    >>> shared = cache_array(slow, storage="memory")   # in /dev/shm while it lives
    >>> bool((shared == slow).all())
    True
    """
    if not is_array_like(source):
        raise TypeError(f"source must be array-like (have __len__ and __getitem__), not a "
                        f"{type(source).__name__}")
    storage, path, batch_size, pool, progress, rebuild, key = _check_options(
        storage, path, batch_size, pool, progress, rebuild, key)
    n = array_length(source)
    if n == 0:
        raise ValueError(f"source is empty (length 0): there is nothing to cache in "
                         f"{path or 'memory'}")
    if path is not None:
        if os.path.isdir(path):
            raise IsADirectoryError(f"path {path!r} is a folder; give the file to store the "
                                    f"rows in, e.g. {os.path.join(path, 'X.npy')!r}")
        return _cache_at(source, path, storage, pool, batch_size, progress, key, rebuild, n)
    from batchup._pool.shm import ShmFolder  # private shared-memory folder, tracked

    folder = ShmFolder()
    try:
        array = _cache_at(source, os.path.join(folder.path, "cache.npy"), storage, pool,
                          batch_size, progress, key, rebuild, n)
    except BaseException:
        folder.close()
        raise
    weakref.finalize(array, folder.close)
    return array


class _Rows:
    """Rows ``rows`` (sorted, distinct) of ``array``, as an array-like of their own."""

    def __init__(self, array: Any, rows: np.ndarray) -> None:
        self.array = array
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self.rows),) + tuple(self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read_rows(self, index: Any, out: np.ndarray | None = None) -> np.ndarray:
        picked = self.rows[index.start:index.stop] if isinstance(index, slice) else \
            self.rows[np.asarray(index)]
        return read_rows(self.array, picked, out=out)

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.read_rows(index)

    def cache_key(self) -> dict:
        return {"subset_of": type(self.array).__qualname__,
                "rows_sha1": hashlib.sha1(self.rows.astype(np.int64).tobytes()).hexdigest(),
                "source_key": _source_hook(self.array)}


def cache_source(ds: Any, path: str | os.PathLike | None, *, storage: str = "npy",
                 pool: Any = None, batch_size: int = 256, progress: bool = False,
                 key: Any = None, rebuild: bool = True) -> Any:
    """Cache every array of an ``ArrayDataSource``, each in its own file; return a source
    over the copies.

    Array ``i`` goes to ``<path>/<i>.npy`` (``<i>.h5`` for HDF5), through
    :func:`cache_array`, so each file can be opened on its own -- e.g.
    ``np.load("cache/1.npy")`` reads the labels without touching the images.

    Which rows are stored:

    * a source over whole arrays (optionally ``repeats=``): every row; the
      new source has the same ``repeats`` and ``include_indices``.
    * a source with ``indices=``: only the rows those indices name (each
      once, in data order); the new source's ``indices`` point at the same
      rows of the cache, in the same order and with the same repeats, so it
      yields the same batches as ``ds`` for the same ``shuffle``. With
      ``include_indices=True`` its index arrays are positions in the cache;
      the original index of cached row ``j`` is ``np.unique(indices)[j]``.
    * a source with another ``sampler`` (e.g. weighted): every row, and the
      new source uses the same sampler.

    Parameters
    ----------
    ds : ArrayDataSource
        The source to cache (its arrays are read as arrays; a subclass's own
        fetching is not cached; for a ``.map``, cache the source it maps).
    path : str or os.PathLike
        The folder that receives the files (created if missing). None is
        allowed with ``storage="memory"``: each array gets a private file.
    storage, pool, batch_size, progress, key, rebuild
        As for :func:`cache_array`.

    Returns
    -------
    ArrayDataSource

    Examples
    --------
    >>> import os, tempfile
    >>> from batchup.data_source import ArrayDataSource
    >>> folder = tempfile.mkdtemp()
    >>> X, y = np.arange(20).reshape(10, 2), np.arange(10) % 3
    >>> cached = cache_source(ArrayDataSource([X, y], indices=[7, 2, 5]), folder)
    >>> sorted(os.listdir(folder))[:2], np.load(os.path.join(folder, "1.npy")).tolist()
    (['0.npy', '0.npy.json'], [2, 2, 1])
    >>> [b.tolist() for b in next(cached.batch_iterator(3))]
    [[[14, 15], [4, 5], [10, 11]], [1, 2, 2]]
    """
    from batchup._core.samplers import StandardSampler, SubsetSampler
    from batchup._core.sources import ArrayDataSource, MapDataSource

    if not isinstance(ds, ArrayDataSource):
        hint = (" (cache the source it maps, then call .map on the cached one)"
                if isinstance(ds, MapDataSource) else "")
        raise TypeError(f"ds must be an ArrayDataSource, not a {type(ds).__name__}{hint}")
    storage, folder, batch_size, pool, progress, rebuild, key = _check_options(
        storage, path, batch_size, pool, progress, rebuild, key)
    if folder is not None and os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"path {folder!r} is a file; cache_source needs a folder "
                                 "(it writes one file per array)")
    sampler = ds.sampler
    arrays = list(ds.data)
    n = array_length(arrays[0])
    if type(sampler) is SubsetSampler:
        if sampler.length == 0:
            raise ValueError("ds is empty (indices=[]): there is nothing to cache")
        rows = np.unique(sampler.indices)
        kwargs: dict = {"repeats": sampler.repeats}
        if len(rows) == n:  # every row: cache whole arrays, keep the indices as they are
            kwargs["indices"] = sampler.indices
        else:
            arrays = [_Rows(a, rows) for a in arrays]
            kwargs["indices"] = np.searchsorted(rows, sampler.indices)
    elif type(sampler) is StandardSampler:
        kwargs = {"repeats": sampler.repeats}
    else:
        kwargs = {"sampler": sampler}
    if n == 0:
        raise ValueError("ds is empty (its arrays have length 0): there is nothing to cache")
    suffix = ".h5" if storage == "hdf5" else ".npy"
    own_pool = None
    if isinstance(pool, int):
        from batchup.work_pool import WorkerProcessPool

        own_pool = pool = WorkerProcessPool(pool)
    try:
        cached = [
            cache_array(a, None if folder is None else os.path.join(folder, f"{i}{suffix}"),
                        storage=storage, pool=pool, batch_size=batch_size, progress=progress,
                        key=key, rebuild=rebuild)
            for i, a in enumerate(arrays)
        ]
    finally:
        if own_pool is not None:
            own_pool.close()
    return ArrayDataSource(cached, include_indices=ds.include_indices, **kwargs)

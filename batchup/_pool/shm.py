"""Shared memory between a process pool and its workers: batch slots and constants.

Design note: the shared-memory protocol
---------------------------------------
All segments of a pool are files in one private folder on a RAM-backed file
system (``/dev/shm`` where it exists, the temporary directory otherwise). The
folder is registered with loky's resource tracker, so it is removed even if
the consumer is killed; ``close()`` removes it at once.

*Batch slots.* A slot is a file that receives one task's result at a time.
When a task is submitted the consumer takes a free slot from the pool's
:class:`SlotRing` and sends its path with the task. The worker runs the task,
copies every NumPy array of the result (tuples, namedtuples, lists and dicts
are walked) into the slot -- growing the file if it is too small -- and sends
back only a small descriptor: the structure with arrays replaced by
(offset, dtype, shape). The consumer maps the slot and builds arrays that view
it directly: no pickle copy of the data. A task that knows its result's shapes
in advance (a parallel array source's gather) asks for its arrays in the slot
(:func:`result_arrays`) and fills them there, so nothing is copied afterwards.

*Ownership.* The arrays handed to the user are views of one private "lease"
array per batch, and a ``weakref.finalize`` on that lease returns the slot to
the free list once nothing refers to the batch any more (the user dropped it,
or every view of it). A slot is therefore never overwritten while the user
still holds any part of the batch -- keeping batches (``list(it)``) is safe --
and a consumer that drops its batches cycles through ``buffer + workers + 2``
slots, reused epoch after epoch. Idle slots beyond that are deleted. Results
whose arrays total less than ``INLINE_BYTES`` travel pickled (a file round
trip costs more), as does anything when the file system is full.

*Constants.* :meth:`~batchup.work_pool.WorkerProcessPool.shared_constant`
values (for a parallel data source: the wrapped source, with its arrays) are
pickled once into a file whose large arrays are stored raw after the pickle.
Tasks carry only a reference; each worker maps the file copy-on-write, so the
arrays' pages are shared by all workers and read without a copy, and caches
the value until the file is deleted.

*Workers' caches.* Workers keep their mappings open between tasks, so a
reused slot costs no page faults. About once a second a worker drops the
mappings of files that were deleted (pool shrank its ring, constant freed).
"""

from __future__ import annotations

import mmap
import os
import pickle
import shutil
import struct
import tempfile
import threading
import time
import uuid
import weakref
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "INLINE_BYTES",
    "ShmFolder",
    "SlotRing",
    "Slot",
    "begin_task",
    "end_task",
    "result_arrays",
    "current_task_slot",
    "encode_result",
    "decode_result",
    "ConstantRef",
    "dump_constant",
    "load_constant",
]

#: Results with fewer array bytes than this are pickled instead of using a slot.
INLINE_BYTES = 16 * 1024
#: Arrays at least this large are stored raw (shared) in a constant's file.
CONSTANT_ARRAY_BYTES = 64 * 1024
_ALIGN = 64
_PAGE = mmap.PAGESIZE
_HEADER = struct.Struct("<Q")


def _align(n: int, to: int = _ALIGN) -> int:
    return (n + to - 1) // to * to


def _shm_root() -> str:
    root = "/dev/shm"
    if os.path.isdir(root) and os.access(root, os.W_OK | os.X_OK):
        return root
    return tempfile.gettempdir()


class ShmFolder:
    """A private folder of shared-memory files, removed on close or by the resource tracker.

    Examples
    --------
    >>> f = ShmFolder()
    >>> os.path.isdir(f.path)
    True
    >>> f.close(); f.close()
    >>> os.path.exists(f.path)
    False
    """

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=f"batchup-{os.getpid()}-", dir=_shm_root())
        self._tracked = False
        try:
            from joblib.externals.loky.backend import resource_tracker

            resource_tracker.register(self.path, "folder")
            self._tracked = True
        except Exception:  # pragma: no cover - loky missing or tracker unavailable
            pass
        self._finalizer = weakref.finalize(self, _remove_folder, self.path, self._tracked)

    def new_file(self, prefix: str) -> str:
        """Create an empty file in the folder and return its path."""
        path = os.path.join(self.path, f"{prefix}-{uuid.uuid4().hex}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return path

    def close(self) -> None:
        """Delete the folder and everything in it (idempotent)."""
        self._finalizer()


def _remove_folder(path: str, tracked: bool) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if tracked:
        try:
            from joblib.externals.loky.backend import resource_tracker

            resource_tracker.unregister(path, "folder")
        except Exception:  # pragma: no cover - interpreter shutting down
            pass


# --------------------------------------------------------------------------
# Consumer side: slots
# --------------------------------------------------------------------------


class Slot:
    """One reusable result file and the consumer's current mapping of it."""

    __slots__ = ("path", "mm", "size", "__weakref__")

    def __init__(self, path: str) -> None:
        self.path = path
        self.mm: mmap.mmap | None = None
        self.size = 0

    def mapping(self, size: int) -> mmap.mmap:
        """The consumer's mapping of the slot, remapped if a worker resized the file."""
        if self.mm is None or self.size != size:
            self.unmap()
            fd = os.open(self.path, os.O_RDWR)
            try:
                self.mm = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self.size = size
        return self.mm

    def unmap(self) -> None:
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                # Batches still view it: the mapping lives on until they die.
                pass
            self.mm = None
            self.size = 0


class SlotRing:
    """Free list of batch slots shared by all streams of one process pool.

    Examples
    --------
    >>> folder = ShmFolder()
    >>> ring = SlotRing(folder)
    >>> s = ring.acquire()
    >>> ring.release(s)
    >>> ring.acquire() is s
    True
    >>> ring.close(); folder.close()
    """

    def __init__(self, folder: ShmFolder, max_idle: int = 8) -> None:
        self._folder = folder
        self._free: list[Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self.max_idle = max_idle
        self.created = 0

    def want_idle(self, n: int) -> None:
        """Keep at least ``n`` idle slots instead of deleting them."""
        with self._lock:
            self.max_idle = max(self.max_idle, n)

    def acquire(self) -> Slot:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool's shared memory is closed")
            if self._free:
                return self._free.pop()
            self.created += 1
        return Slot(self._folder.new_file("slot"))

    def release(self, slot: Slot) -> None:
        """Return ``slot``; safe from any thread and after :meth:`close`."""
        drop = False
        with self._lock:
            if self._closed or len(self._free) >= self.max_idle:
                drop = True
            else:
                self._free.append(slot)
        if drop:
            _retire(slot)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for slot in free:
            _retire(slot)


def _retire(slot: Slot) -> None:
    slot.unmap()
    try:
        os.unlink(slot.path)
    except OSError:
        pass


# --------------------------------------------------------------------------
# Result encoding (worker) and decoding (consumer)
# --------------------------------------------------------------------------


class _Leaf(NamedTuple):
    index: int


class _Named(NamedTuple):
    kind: type
    items: tuple


class InlineResult(NamedTuple):
    """A result sent pickled through the pipe."""

    value: Any


class SlotResult(NamedTuple):
    """A result whose arrays are in a slot: structure plus (offset, dtype, shape) per array."""

    skeleton: Any
    leaves: tuple
    file_size: int
    used: int


def _is_shareable(x: object) -> bool:
    return (
        (type(x) is np.ndarray or type(x) is np.memmap) and not x.dtype.hasobject and x.nbytes > 0
    )  # type: ignore[union-attr]


def _split(obj: Any, arrays: list) -> Any:
    if _is_shareable(obj):
        arrays.append(obj)
        return _Leaf(len(arrays) - 1)
    kind = type(obj)
    if kind is tuple:
        return tuple(_split(x, arrays) for x in obj)
    if kind is list:
        return [_split(x, arrays) for x in obj]
    if kind is dict:
        return {k: _split(v, arrays) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(kind, "_fields"):
        return _Named(kind, tuple(_split(x, arrays) for x in obj))
    return obj


def _join(skel: Any, arrays: list) -> Any:
    kind = type(skel)
    if kind is _Leaf:
        return arrays[skel.index]
    if kind is tuple:
        return tuple(_join(x, arrays) for x in skel)
    if kind is list:
        return [_join(x, arrays) for x in skel]
    if kind is dict:
        return {k: _join(v, arrays) for k, v in skel.items()}
    if kind is _Named:
        return skel.kind._make(_join(x, arrays) for x in skel.items)
    return skel


class _WorkerMap:
    __slots__ = ("fd", "mm", "size")

    def __init__(self, fd: int, mm: mmap.mmap, size: int) -> None:
        self.fd, self.mm, self.size = fd, mm, size

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:  # pragma: no cover - a view escaped; let GC handle it
            pass
        os.close(self.fd)


_worker_maps: dict[str, _WorkerMap] = {}
_worker_constants: dict[str, tuple[Any, str]] = {}
_last_sweep = 0.0


def sweep_worker_caches(interval: float = 1.0) -> None:
    """Forget mappings and constants whose files were deleted (worker side)."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < interval:
        return
    _last_sweep = now
    for path, wm in list(_worker_maps.items()):
        try:
            gone = os.fstat(wm.fd).st_nlink == 0
        except OSError:
            gone = True
        if gone:
            del _worker_maps[path]
            wm.close()
    for token, (_, path) in list(_worker_constants.items()):
        if not os.path.exists(path):
            del _worker_constants[token]


def _worker_mapping(path: str, need: int) -> mmap.mmap:
    wm = _worker_maps.get(path)
    if wm is None:
        fd = os.open(path, os.O_RDWR)
        wm = _WorkerMap(fd, None, 0)  # type: ignore[arg-type]
        try:
            return _map_for_worker(path, wm, need)
        except BaseException:
            os.close(fd)
            raise
    return _map_for_worker(path, wm, need)


def _map_for_worker(path: str, wm: _WorkerMap, need: int) -> mmap.mmap:
    size = os.fstat(wm.fd).st_size
    if size < need:
        # Grow with headroom so a slot settles after a few batches of varying size;
        # fallocate (unlike truncate) fails now with ENOSPC instead of SIGBUS later.
        size = _align(max(need, size + size // 4), _PAGE)
        os.posix_fallocate(wm.fd, 0, size)
    if wm.mm is None or wm.size != size:
        if wm.mm is not None:
            wm.mm.close()
        wm.mm = mmap.mmap(wm.fd, size)
        wm.size = size
    _worker_maps[path] = wm
    return wm.mm


# The running task's slot (worker side), so that code that knows the shape of its
# result can build it in place: see result_arrays().
_task_slot: str | None = None
_task_arrays: list | None = None


def begin_task(slot_path: str | None) -> None:
    """Worker side: the next task's result goes to ``slot_path`` (``None``: pickled)."""
    global _task_slot, _task_arrays
    _task_slot, _task_arrays = slot_path, None


def end_task() -> None:
    """Worker side: forget the arrays handed out by :func:`result_arrays`."""
    global _task_slot, _task_arrays
    _task_slot, _task_arrays = None, None


def current_task_slot() -> str | None:
    """Worker side: the slot of the task being run, if it has one."""
    return _task_slot


def _layout(nbytes: list[int]) -> tuple[list[int], int]:
    offsets = []
    used = 0
    for n in nbytes:
        offsets.append(used)
        used = _align(used + n)
    return offsets, used


def result_arrays(specs: list[tuple[tuple[int, ...], np.dtype]]) -> list[np.ndarray] | None:
    """Worker side: empty arrays laid out in the running task's slot, or ``None``.

    A task whose result will be exactly these arrays, in this order, fills them
    in place (``np.take(..., out=...)``) and returns them: :func:`encode_result`
    then finds them already in the slot and copies nothing. ``None`` when the
    task has no slot (thread pools), the arrays are too small to be worth one,
    or the slot cannot be mapped; the caller then builds its result as usual.
    """
    global _task_arrays
    if _task_slot is None:
        return None
    dtypes = [np.dtype(dt) for _, dt in specs]
    if any(dt.hasobject for dt in dtypes):
        return None
    sizes = [
        int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        for (shape, _), dt in zip(specs, dtypes, strict=True)
    ]
    offsets, used = _layout(sizes)
    if used < INLINE_BYTES or 0 in sizes:
        return None
    try:
        mm = _worker_mapping(_task_slot, used)
    except OSError:
        return None
    arrays = [
        np.ndarray(shape, dtype=dt, buffer=mm, offset=off)
        for (shape, _), dt, off in zip(specs, dtypes, offsets, strict=True)
    ]
    _task_arrays = arrays
    return list(arrays)


def _in_place(arrays: list) -> bool:
    """Whether ``arrays`` are exactly those :func:`result_arrays` laid out, in order."""
    pre = _task_arrays
    return (
        pre is not None
        and len(pre) == len(arrays)
        and all(a is b for a, b in zip(arrays, pre, strict=True))
    )


def encode_result(result: Any, slot_path: str | None) -> InlineResult | SlotResult:
    """Worker side: put the result's arrays in the slot and describe them.

    Arrays the task built in the slot itself (:func:`result_arrays`) are only
    described; any other arrays are copied in.
    """
    if slot_path is None:
        return InlineResult(result)
    arrays: list = []
    skeleton = _split(result, arrays)
    offsets, used = _layout([a.nbytes for a in arrays])
    if _in_place(arrays):
        leaves = tuple((off, a.dtype, a.shape) for a, off in zip(arrays, offsets, strict=True))
        return SlotResult(skeleton, leaves, _worker_maps[slot_path].size, used)
    if _task_arrays is not None:
        # Some of the slot's arrays were used differently (or not at all): writing
        # the slot now could overwrite them, so this result travels pickled.
        return InlineResult(_join(skeleton, [np.array(a) for a in arrays]))
    if used < INLINE_BYTES:
        return InlineResult(result)
    try:
        mm = _worker_mapping(slot_path, used)
    except OSError:
        # Slot gone (pool closing) or /dev/shm full: the pipe still works.
        return InlineResult(result)
    leaves = []
    for a, off in zip(arrays, offsets, strict=True):
        dst = np.ndarray(a.shape, dtype=a.dtype, buffer=mm, offset=off)
        np.copyto(dst, a, casting="no")
        del dst
        leaves.append((off, a.dtype, a.shape))
    return SlotResult(skeleton, tuple(leaves), _worker_maps[slot_path].size, used)


def decode_result(encoded: InlineResult | SlotResult, ring: SlotRing, slot: Slot) -> Any:
    """Consumer side: arrays viewing the slot; the slot is released when they are all gone."""
    if type(encoded) is InlineResult:
        ring.release(slot)
        return encoded.value
    mm = slot.mapping(encoded.file_size)
    # One private lease array per batch. NumPy collapses view chains only down to
    # the first array whose base is not an ndarray, so every view handed out (and
    # every view of those) keeps this lease alive, and the finalizer fires only
    # when the last of them is gone.
    lease = np.frombuffer(mm, dtype=np.uint8, count=encoded.used)
    arrays = [
        np.ndarray(shape, dtype=dtype, buffer=lease, offset=off)
        for off, dtype, shape in encoded.leaves
    ]
    weakref.finalize(lease, ring.release, slot)
    del lease
    return _join(encoded.skeleton, arrays)


# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------


class ConstantRef(NamedTuple):
    """What a task carries in place of a shared constant."""

    token: str
    path: str


def dump_constant(value: Any, folder: ShmFolder) -> ConstantRef:
    """Pickle ``value`` into a file of ``folder``; large arrays are stored raw after the pickle."""
    from .pickling import cloudpickle

    arrays: list[np.ndarray] = []
    seen: dict[int, tuple] = {}
    cursor = [0]

    from batchup._core.fetch import storage_reference

    class _Pickler(cloudpickle().Pickler):
        def persistent_id(self, obj: Any) -> Any:
            kind = type(obj)
            if kind is not np.ndarray:
                # Arrays that live in files (memory maps, HDF5 nodes) go by
                # reference: each worker opens the file, nothing is copied.
                if kind is np.memmap or kind.__module__.startswith(("tables.", "h5py.")):
                    ref = storage_reference(obj)
                    if ref is not None:
                        return ("batchup-storage", ref)
                return None
            if obj.dtype.hasobject:
                return None
            if obj.nbytes < CONSTANT_ARRAY_BYTES:
                return None
            pid = seen.get(id(obj))
            if pid is None:
                pid = ("batchup-array", cursor[0], obj.dtype, obj.shape)
                seen[id(obj)] = pid
                arrays.append(obj)
                cursor[0] = _align(cursor[0] + obj.nbytes)
            return pid

    import io

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    blob = buf.getvalue()
    data_start = _align(_HEADER.size + len(blob))
    path = folder.new_file("const")
    with open(path, "r+b") as f:
        f.write(_HEADER.pack(len(blob)))
        f.write(blob)
        for a in arrays:
            f.seek(data_start + seen[id(a)][1])
            f.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        f.truncate(max(data_start + cursor[0], 1))
    return ConstantRef(uuid.uuid4().hex, path)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, mm: mmap.mmap, data_start: int) -> None:
        super().__init__(file)
        self._mm = mm
        self._data_start = data_start
        self._arrays: dict[int, np.ndarray] = {}

    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "batchup-storage":
            from batchup._core.fetch import open_reference

            return open_reference(pid[1])
        tag, offset, dtype, shape = pid
        if tag != "batchup-array":  # pragma: no cover - not ours
            raise pickle.UnpicklingError(f"unknown persistent id {tag!r}")
        a = self._arrays.get(offset)
        if a is None:
            a = np.ndarray(shape, dtype=dtype, buffer=self._mm, offset=self._data_start + offset)
            self._arrays[offset] = a
        return a


def load_constant(ref: ConstantRef) -> Any:
    """Worker side: the constant's value, loaded once per worker and cached."""
    hit = _worker_constants.get(ref.token)
    if hit is not None:
        return hit[0]
    import io

    with open(ref.path, "rb") as f:
        # Copy-on-write: pages are shared by every worker until one writes.
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    (n,) = _HEADER.unpack_from(mm, 0)
    blob = io.BytesIO(mm[_HEADER.size : _HEADER.size + n])
    value = _Unpickler(blob, mm, _align(_HEADER.size + n)).load()
    _worker_constants[ref.token] = (value, ref.path)
    return value

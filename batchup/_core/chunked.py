"""Storage-aware shuffling: chunks in a seeded order, samples shuffled within a window of chunks.

Reading samples of a file in a uniformly random order means one small random
read per sample; on disk, or from compressed chunked storage (HDF5, zarr),
that is many times slower than reading whole chunks in order.
``ChunkShuffle`` trades some randomness for contiguous reads, as FFCV's
quasi-random order and MosaicML Streaming's block shuffle do:

1. the samples are cut into chunks of ``chunk_size`` consecutive rows (the
   storage's own chunking by default);
2. the chunks are put in a seeded random order -- the keyed permutation of
   ``order.SeededOrder``, so it costs O(1) per chunk whatever the number of
   chunks;
3. ``window`` consecutive chunks of that order form a window; the window's
   samples are shuffled together (a seeded permutation of the window), and
   the epoch is the windows one after the other.

Everything is a function of (seed, path, pass): a plan restores in O(window),
shards and resumes like any seeded plan, and a batch needs the window it lies
in, never an N-sized permutation. Batches inside one window touch only that
window's chunks, so a source reads each chunk once (``ChunkCache``) and
serves the window's batches from memory.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from .order import FeistelPermutation, SeededOrder
from .rng import SeedPath
from .validate import array_length, is_integer, show

#: Without chunked storage, chunks of about this many bytes per row set.
DEFAULT_CHUNK_BYTES = 1 << 20
#: Windows (in chunks) when none is given.
DEFAULT_WINDOW = 16
# Derivation keys below the seed path (distinct from component indices, which
# are small): the chunk order and the window shuffles.
_CHUNK_KEY = 0x43484B
_WINDOW_KEY = 0x57494E


@dataclasses.dataclass(frozen=True)
class ChunkShuffle(SeedPath):
    """A seeded shuffle for data on slow storage: chunks in random order, samples
    shuffled within a window of ``window`` chunks.

    Pass it as ``shuffle=``. It is a seed (``SeedPath``) with two settings, so
    everything a seed does -- resuming, sharding, per-sample randomness --
    works the same.

    Parameters
    ----------
    seed : int
        Non-negative root seed.
    path : tuple of int
        Derivation path below the seed (e.g. ``(epoch,)``).
    chunk_size : int, optional
        Rows per chunk. None: the storage's own chunking along the first axis
        (h5py, PyTables, zarr, dask), or about 1 MB of rows for other arrays.
    window : int
        Chunks whose samples are shuffled together (at least 1). Larger
        windows mix more and hold more rows in memory.

    Examples
    --------
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(12)])
    >>> order = ChunkShuffle(0, chunk_size=3, window=2)
    >>> batches = [b[0].tolist() for b in ds.batch_iterator(6, shuffle=order)]
    >>> sorted(sum(batches, []))  # every sample once
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    >>> [sorted({i // 3 for i in b}) for b in batches]  # each batch: the chunks of one window
    [[0, 1], [2, 3]]
    """

    chunk_size: int | None = dataclasses.field(default=None, kw_only=True)
    window: int = dataclasses.field(default=DEFAULT_WINDOW, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk_size is not None and (not is_integer(self.chunk_size)
                                            or self.chunk_size < 1):
            raise ValueError(
                f"chunk_size must be a positive integer or None, not {show(self.chunk_size)}")
        if not is_integer(self.window) or self.window < 1:
            raise ValueError(f"window must be a positive integer, not {show(self.window)}")

    def describe(self) -> str:
        chunks = "auto" if self.chunk_size is None else str(self.chunk_size)
        return f"{super().describe()} chunks {chunks} window {self.window}"


def storage_chunk_rows(array: Any) -> int | None:
    """Rows per chunk of a chunked storage array along its first axis, or None.

    Examples
    --------
    >>> storage_chunk_rows(np.zeros(4)) is None
    True
    """
    module = type(array).__module__.partition(".")[0]
    chunks: Any = None
    if module == "tables":
        chunks = getattr(array, "chunkshape", None)
    elif module in ("h5py", "zarr"):
        chunks = getattr(array, "chunks", None)
    elif module == "dask":
        first = getattr(array, "chunks", ((),))[0]
        chunks = (max(first),) if first else None
    if chunks is None:
        inner = getattr(array, "array", None)  # views such as ImageArrayUInt8ToFloat32
        return None if inner is None or inner is array else storage_chunk_rows(inner)
    return int(chunks[0]) if chunks and int(chunks[0]) > 0 else None


def _row_bytes(array: Any) -> int:
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    if shape is None or dtype is None:
        return 0
    return int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize


def default_chunk_size(arrays: list) -> int:
    """The chunk size ``ChunkShuffle(chunk_size=None)`` takes for a source of ``arrays``.

    The first-axis chunking of the storage array with the largest rows (the
    samples, whose reads cost the most; labels are small), else as many rows
    as fill about 1 MB.

    Examples
    --------
    >>> default_chunk_size([np.zeros((100, 1024), dtype=np.float32)])
    256
    """
    chunked = [(_row_bytes(a), c) for a, c in ((a, storage_chunk_rows(a)) for a in arrays) if c]
    if chunked:
        return max(chunked)[1]
    row_bytes = sum(_row_bytes(a) for a in arrays)
    return max(1, DEFAULT_CHUNK_BYTES // max(row_bytes, 1))


def resolve_chunks(rng: Any, arrays: list | None) -> Any:
    """``rng`` with its chunk size filled in from ``arrays`` (other shuffles unchanged)."""
    if not isinstance(rng, ChunkShuffle) or rng.chunk_size is not None:
        return rng
    if arrays is None:
        raise ValueError(
            "ChunkShuffle(chunk_size=None) takes the chunk size from the source's arrays; "
            "this source has none: give chunk_size")
    return dataclasses.replace(rng, chunk_size=default_chunk_size(arrays))


class ChunkedOrder:
    """Pass ``p``: chunks in a seeded order, samples shuffled within windows of chunks.

    The plan-facing interface is ``order.SeededOrder``'s. Positions of a pass
    are computed one window at a time; a window is found from a position in
    O(1), so any batch of any pass costs O(window).

    Parameters
    ----------
    seed : ChunkShuffle
        Seed, path, ``chunk_size`` (resolved) and ``window``.
    length : int
        Samples in a pass.
    values : array of int, optional
        What the positions index (a subset); chunks are runs of consecutive
        entries of it.

    Examples
    --------
    >>> o = ChunkedOrder(ChunkShuffle(1, chunk_size=4, window=2), 10)
    >>> p = o.take(0, 0, 10)
    >>> sorted(p.tolist()) == list(range(10))
    True
    """

    kind = "chunked"
    __slots__ = ("seed", "length", "values", "chunk", "window", "n_chunks", "_chunks",
                 "_cache", "_short")

    def __init__(self, seed: ChunkShuffle, length: int, values: np.ndarray | None = None) -> None:
        if seed.chunk_size is None:
            raise ValueError("ChunkedOrder needs a resolved chunk_size")
        self.seed = seed
        self.length = int(length)
        self.values = values
        self.chunk = int(seed.chunk_size)
        self.window = int(seed.window)
        self.n_chunks = -(-self.length // self.chunk)
        # The chunk order of a pass: the seeded (Feistel above 2^18 chunks) order.
        self._chunks = SeededOrder(SeedPath(seed.seed, seed.path + (_CHUNK_KEY,)), self.n_chunks)
        self._cache: dict[tuple, np.ndarray] = {}
        self._short: dict[int, int] = {}

    def _short_slot(self, p: int) -> int:
        """Where the last chunk, when it is short, lies in pass ``p``'s chunk order (else -1)."""
        if self.length % self.chunk == 0:
            return -1
        slot = self._short.get(p)
        if slot is None:
            last = self.n_chunks - 1
            seq = self._chunks.sequence(p)
            if seq is not None:
                slot = int(np.flatnonzero(seq == last)[0])
            else:
                perm = self._chunks._perm(p)
                slot = int(feistel_inverse(perm, np.array([last]))[0])
            if len(self._short) >= 4:
                self._short.pop(next(iter(self._short)))
            self._short[p] = slot
        return slot

    def _window_start(self, p: int, w: int) -> int:
        """The first position of window ``w`` in pass ``p``."""
        start = w * self.window * self.chunk
        slot = self._short_slot(p)
        if slot >= 0 and slot // self.window < w:
            start -= self.chunk - self.length % self.chunk
        return start

    def _window_of(self, p: int, pos: int) -> int:
        per = self.window * self.chunk
        w = pos // per
        # The short chunk lies in an earlier window: positions moved back by its gap.
        while w + 1 < self._n_windows() and self._window_start(p, w + 1) <= pos:
            w += 1
        while w > 0 and self._window_start(p, w) > pos:
            w -= 1
        return w

    def _n_windows(self) -> int:
        return -(-self.n_chunks // self.window)

    def _window(self, p: int, w: int) -> np.ndarray:
        key = (p, w)
        rows = self._cache.get(key)
        if rows is None:
            first = w * self.window
            chunk_ids = self._chunks.take(p, first, min(first + self.window, self.n_chunks))
            starts = chunk_ids * self.chunk
            lengths = np.minimum(starts + self.chunk, self.length) - starts
            # Consecutive rows of each chunk, the chunks in their seeded order.
            offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
            rows = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
            rows = rows[self.seed.generator(_WINDOW_KEY, p, w).permutation(len(rows))]
            if self.values is not None:
                rows = self.values[rows]
            if len(self._cache) >= 3:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = rows
        return rows

    def take(self, pass_number: int, start: int, stop: int,
             stride: int | None = None) -> np.ndarray:
        if stop <= start:
            return np.zeros(0, dtype=self.dtype())
        w = self._window_of(pass_number, start)
        parts = []
        while start < stop:
            w_start = self._window_start(pass_number, w)
            rows = self._window(pass_number, w)
            end = min(stop, w_start + len(rows))
            parts.append(rows[start - w_start:end - w_start])
            start = end
            w += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    take_array = take

    def sequence(self, pass_number: int) -> np.ndarray | None:
        """None: a pass is computed a window at a time."""
        return None

    def draw(self, pass_number: int) -> None:
        """Nothing to draw: every pass is a function of the seed."""

    def release(self, pass_number: int) -> None:
        """Nothing to forget: a few windows are cached at a time."""

    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.values is None else self.values.dtype

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: Any, pass_number: int) -> None:
        """Nothing to restore."""


def feistel_inverse(perm: FeistelPermutation, values: np.ndarray) -> np.ndarray:
    """The positions that ``perm`` maps to ``values`` (its inverse, with cycle walking).

    Examples
    --------
    >>> perm = FeistelPermutation(10, np.arange(1, 7, dtype=np.uint64))
    >>> feistel_inverse(perm, perm(np.arange(10))).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    return perm.inverse(values)


class ChunkCache:
    """The chunks a chunk-shuffled iteration read last, per array: each chunk read once.

    ``read(array, key, index, chunk)`` returns the rows at ``index`` of
    ``array``, reading the chunks they fall in whole (one contiguous read per
    run of adjacent chunks) unless they are held; ``capacity`` chunks per array
    are kept (two windows: a batch spans at most two). Thread-safe; a process
    worker has its own.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self._chunks: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def read(self, array: Any, key: Any, index: np.ndarray, chunk: int,
             read_block: Any) -> np.ndarray:
        ids = index // chunk
        wanted = np.unique(ids)
        with self._lock:
            held = {int(c): self._chunks.get((key, int(c))) for c in wanted}
        missing = np.array([c for c, rows in held.items() if rows is None], dtype=np.int64)
        if missing.size:
            n = array_length(array)
            breaks = np.flatnonzero(np.diff(missing) != 1) + 1
            for run in np.split(missing, breaks):
                lo, hi = int(run[0]) * chunk, min((int(run[-1]) + 1) * chunk, n)
                block = read_block(array, slice(lo, hi))
                for c in run:
                    held[int(c)] = block[int(c) * chunk - lo:(int(c) + 1) * chunk - lo]
            with self._lock:
                for c in missing:
                    self._chunks[(key, int(c))] = held[int(c)]
                while len(self._chunks) > self.capacity:
                    self._chunks.pop(next(iter(self._chunks)))
        # The rows of each chunk gathered into their places in the batch: one
        # gather per chunk (a window's worth at most), not per row.
        out = np.empty((len(index),) + held[int(wanted[0])].shape[1:],
                       dtype=held[int(wanted[0])].dtype)
        by_chunk = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[by_chunk], wanted, side="right")
        lo = 0
        for c, hi in zip(wanted.tolist(), bounds.tolist(), strict=True):
            dest = by_chunk[lo:hi]
            out[dest] = held[c][index[dest] - c * chunk]
            lo = hi
        return out

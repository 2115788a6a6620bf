"""Workload W10: caching a slow source (``batchup.cache``): fill throughput, then epochs.

* The slow source, :class:`CompressedImages`: 20,000 RGB images of 32 × 32 uint8 (smooth
  seeded patterns plus noise), each stored ``zlib``-compressed as its own ``bytes`` in a
  list, as image files are. ``source[index]`` (an int, or an integer index array as batchup
  0.2.3's array-likes take) decodes one sample at a time in Python: ``zlib.decompress``,
  ``np.frombuffer``, reshape to HWC, then a small transform (to CHW float32, scaled to [0, 1]
  and normalised per channel), so a row is float32 (3, 32, 32), 12 KB. Labels y int32.
* W10's first table is the fill: rows/s of ``cache_array(source, path, storage=...,
  pool=...)`` from scratch (a fresh path per run, removed after it) for ``storage="npy"``
  and ``"memory"``: serial (``pool=None``, the floor of its storage), ``WorkerThreadPool(2)``
  and ``WorkerProcessPool(2)`` (started once, outside the timing), and for npy
  ``pool=2`` (cache_array starts and closes two worker processes inside the call).
* W10's second table is the epoch: samples/s of a shuffled epoch (batch 128, one int seed
  per epoch, default threads) from the slow source itself (``ArrayDataSource([source, y])``),
  from its caches (``cache_source(that source, folder, storage=...)`` for "npy",
  "memory" and "hdf5", filled once outside the timing: what a second epoch reads), and from
  an in-memory copy of the npy cache (``np.array``), against the plain NumPy floor over that
  copy (one permutation per epoch, ``X[idx], y[idx]``).

Cache files go to a temporary folder under ``benchmarks/.data/`` (or
``$BATCHUP_BENCH_DATA``; the folder ignores itself in git) that is removed at the end.
Factories follow ``harness.py``'s conventions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BENCH_DIR, Context, Impl, Table, compare, dist_version, log

W10_BATCH = 128
SEED = 2024
WORKERS = 2
FULL_N = 20_000
QUICK_N = 4_000
SIDE = 32  # images are SIDE × SIDE × 3 uint8
FILL_BATCH = 256  # cache_array's default block size
CHUNK_WINDOW = 16  # the ChunkShuffle row: chunks whose samples are shuffled together
DATA_DIR = Path(os.environ.get("BATCHUP_BENCH_DATA") or BENCH_DIR / ".data")
#: Per-channel mean and standard deviation of the normalising transform.
MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32).reshape(3, 1, 1)


# --------------------------------------------------------------------------------------------
# The slow source (module level, so that process workers can unpickle it)
# --------------------------------------------------------------------------------------------


class CompressedImages:
    """``n`` zlib-compressed 32 × 32 RGB images, decoded one sample at a time in Python.

    An array-like as batchup expects one: ``len``, ``shape``, ``dtype`` and ``__getitem__``
    with an int (one decoded row) or a 1-D integer index array (those rows, stacked).
    """

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
        self.blobs: list[bytes] = []
        for start in range(0, n, 1000):
            m = min(1000, n - start)
            freq = rng.uniform(0.05, 0.4, (2, m, 3, 1, 1)).astype(np.float32)
            phase = rng.uniform(0, 2 * np.pi, (m, 3, 1, 1)).astype(np.float32)
            img = (128 + 90 * np.sin(freq[0] * xx + freq[1] * yy + phase)
                   + rng.normal(0, 4, (m, 3, SIDE, SIDE)))
            hwc = np.clip(img, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
            self.blobs += [zlib.compress(np.ascontiguousarray(im).tobytes(), 6) for im in hwc]
        self.labels = rng.integers(0, 10, size=n, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.blobs)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.blobs), 3, SIDE, SIDE)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def decode(self, i: int) -> np.ndarray:
        """Row ``i``: decompress, view as HWC uint8, then to normalised CHW float32."""
        hwc = np.frombuffer(zlib.decompress(self.blobs[i]), dtype=np.uint8)
        hwc = hwc.reshape(SIDE, SIDE, 3)
        chw = hwc.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
        return (chw - MEAN) / STD

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        rows = np.asarray(index)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise IndexError(f"expected an int or a 1-D integer index array, not {index!r}")
        if not rows.size:
            return np.empty((0, 3, SIDE, SIDE), dtype=np.float32)
        return np.stack([self.decode(i) for i in rows.tolist()])


_SOURCES: dict[int, CompressedImages] = {}


def slow_source(n: int) -> CompressedImages:
    """The slow source of ``n`` samples, built once per process."""
    if n not in _SOURCES:
        _SOURCES[n] = CompressedImages(n)
    return _SOURCES[n]


def scratch_folder() -> str:
    """A new temporary folder for cache files under ``DATA_DIR`` (git-ignored)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ignore = DATA_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark files (benchmarks/bench_*.py): never committed\n*\n")
    return tempfile.mkdtemp(prefix="w10-", dir=DATA_DIR)


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------


def _make_pool(kind: str | None) -> Any:
    """``None``, a started thread or process pool of ``WORKERS``, or the int ``WORKERS``."""
    from batchup import work_pool

    if kind is None:
        return None
    if kind == "threads":
        return work_pool.WorkerThreadPool(WORKERS)
    if kind == "processes":
        return work_pool.WorkerProcessPool(WORKERS)
    if kind == "int":
        return WORKERS
    raise ValueError(f"unknown pool kind {kind!r}")


def w10_fill(n: int, storage: str, pool: str | None, folder: str) -> Callable[[], int]:
    """``run()`` fills a new cache of the slow source from scratch, then removes it."""
    from batchup.cache import cache_array

    source = slow_source(n)
    workers = _make_pool(pool)

    def run() -> int:
        where = tempfile.mkdtemp(prefix="fill-", dir=folder)
        try:
            path = None if storage == "memory" else os.path.join(where, "X.npy")
            X = cache_array(source, path, storage=storage, pool=workers, batch_size=FILL_BATCH)
            rows = len(X)
            del X  # storage="memory" without a path: the /dev/shm file goes with the array
        finally:
            shutil.rmtree(where, ignore_errors=True)
        return rows

    close = getattr(workers, "close", None)
    if callable(close):
        run.close = close  # type: ignore[attr-defined]
    return run


class _Epochs:
    """``run()``: one shuffled epoch of ``ds`` (``shuffle=SEED + epoch``, or
    ``ChunkShuffle(SEED + epoch, window=CHUNK_WINDOW)`` when ``chunked``); returns samples."""

    def __init__(self, ds: Any, close: Callable[[], None] | None = None, chunked: bool = False):
        self.ds, self.epoch, self._close, self.chunked = ds, 0, close, chunked

    def __call__(self) -> int:
        from batchup.data_source import ChunkShuffle

        seed = SEED + self.epoch
        order = ChunkShuffle(seed, window=CHUNK_WINDOW) if self.chunked else seed
        samples = 0
        for _, yb in self.ds.batch_iterator(W10_BATCH, shuffle=order):
            samples += len(yb)
        self.epoch += 1
        return samples

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None
        self.ds = None


def _cached_source(n: int, storage: str, folder: str | None) -> Any:
    """``cache_source`` of the slow source and its labels (fills once, then reuses)."""
    from batchup import data_source
    from batchup.cache import cache_source

    source = slow_source(n)
    slow_ds = data_source.ArrayDataSource([source, source.labels])
    path = None if folder is None else os.path.join(folder, storage)
    return cache_source(slow_ds, path, storage=storage, batch_size=FILL_BATCH)


def _in_memory(n: int, folder: str) -> tuple[np.ndarray, np.ndarray]:
    """X, y copied into memory from the npy cache (``np.array``: not the memory map)."""
    cached = _cached_source(n, "npy", folder)
    return np.array(cached.data[0]), np.array(cached.data[1])


def w10_floor(n: int, folder: str) -> Callable[[], int]:
    """Floor: in-memory copy of the cache, one permutation per epoch, ``X[idx], y[idx]``."""
    from benchmarks.bench_core import gather_floor

    X, y = _in_memory(n, folder)
    return gather_floor(X, y, W10_BATCH)


def w10_epoch(n: int, kind: str, folder: str, chunked: bool = False) -> Callable[[], int]:
    """``ArrayDataSource`` epochs over the slow source, a cache, or the in-memory copy."""
    from batchup import data_source

    if kind == "slow":
        source = slow_source(n)
        return _Epochs(data_source.ArrayDataSource([source, source.labels]))
    if kind == "in-memory":
        return _Epochs(data_source.ArrayDataSource(list(_in_memory(n, folder))))
    cached = _cached_source(n, kind, None if kind == "memory" else folder)
    close = None
    if kind == "hdf5":
        def close() -> None:
            for node in cached.data:
                node._v_file.close()
    return _Epochs(cached, close, chunked)


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------


def _merge(title: str, parts: list[tuple[str, Table]]) -> Table:
    """One table from several ``compare`` tables (rows prefixed by their storage)."""
    first = parts[0][1]
    table = Table(title, ["storage: implementation", first.columns[1], first.columns[2],
                          "× serial fill (same storage)"])
    for prefix, part in parts:
        table.rows += [[f"{prefix}: {row[0]}", *row[1:]] for row in part.rows]
        table.notes += [note for note in part.notes if note not in table.notes]
    return table


def _decode_cost(n: int) -> float:
    """Seconds per sample of ``source[index]`` (median of 3 reads of up to 2,000 rows)."""
    source = slow_source(n)
    index = np.arange(min(n, 2000))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        source[index]
        times.append(time.perf_counter() - start)
    return sorted(times)[1] / len(index)


def fill_table(ctx: Context, n: int, folder: str) -> tuple[Table, dict[str, float]]:
    """W10's first table: rows/s of fills from scratch, per storage and pool."""
    rows = {
        "npy": [(None, "serial (pool=None)"),
                ("threads", f"WorkerThreadPool({WORKERS})"),
                ("processes", f"WorkerProcessPool({WORKERS})"),
                ("int", f"pool={WORKERS} (cache_array starts and closes the processes)")],
        "memory": [(None, "serial (pool=None)"),
                   ("threads", f"WorkerThreadPool({WORKERS})"),
                   ("processes", f"WorkerProcessPool({WORKERS})")],
    }
    parts, rates = [], {}
    for storage, kinds in rows.items():
        impls = [Impl(label, w10_fill, dict(n=n, storage=storage, pool=kind, folder=folder),
                      floor=kind is None) for kind, label in kinds]
        part, ratios = compare(ctx, f"W10 fill, storage={storage!r}", "rows/s", impls,
                               repeats=7, min_time=0.0)
        parts.append((storage, part))
        rates.update({f"{storage}: {label}": ratio for label, ratio in ratios.items()})
        # the floor's own rows/s, for the epoch table's notes
        for row in part.rows:
            if row[0] == kinds[0][1] and row[1] != "—":
                rates[f"{storage}: serial rows/s"] = _parse(row[1])
    row_mb = 3 * SIDE * SIDE * 4 / 1e6
    table = _merge(
        f"W10 fill — cache_array(slow source, storage=..., pool=...) from scratch, "
        f"{n:,} rows of float32 (3, {SIDE}, {SIDE}) = {n * row_mb:.0f} MB, "
        f"batch_size={FILL_BATCH}",
        parts,
    )
    table.notes += [
        "One fill per measurement (min_time 0): a new folder, cache_array(source, "
        f"<folder>/X.npy or None, storage=..., pool=..., batch_size={FILL_BATCH}), then the "
        "folder removed (inside the timing; storage='memory' without a path writes a private "
        "/dev/shm file, deleted with the array). Pools are started once per row, outside the "
        f"timing, except pool={WORKERS}. The fill reads the fingerprint rows, allocates the "
        "file, reads blocks (in the pool's workers when given; a process pool gets the "
        "pickled source each fill), writes each block and fdatasyncs it (a no-op in /dev/shm) "
        "before recording it as done.",
        f"Slow source: {n:,} zlib-compressed 32×32 RGB uint8 images (bytes objects in a "
        f"list, {_blob_bytes(n):,.0f} bytes each on average), decoded per sample in Python "
        "(zlib.decompress, np.frombuffer, reshape, to CHW float32 / 255, per-channel "
        f"normalisation): {_decode_cost(n) * 1e6:.0f} µs per sample read serially.",
    ]
    return table, rates


def _blob_bytes(n: int) -> float:
    blobs = slow_source(n).blobs
    return sum(len(b) for b in blobs) / len(blobs)


def _parse(text: str) -> float:
    """Inverse of ``harness.fmt_number`` (to within its rounding)."""
    scale = {"M": 1e6, "k": 1e3}.get(text[-1], 1.0)
    return float(text[:-1] if text[-1] in "Mk" else text) * scale


def epoch_table(ctx: Context, n: int, folder: str, fill: dict[str, float]) -> Table:
    """W10's second table: a shuffled epoch from the slow source, its caches and memory."""
    impls = [
        Impl("floor: in-memory copy of the cache (np.array), X[idx], y[idx]", w10_floor,
             dict(n=n, folder=folder), floor=True),
        Impl("batchup, in-memory copy of the cache", w10_epoch,
             dict(n=n, kind="in-memory", folder=folder)),
        Impl("batchup, cache storage='npy' (memmap)", w10_epoch,
             dict(n=n, kind="npy", folder=folder)),
        Impl("batchup, cache storage='memory' (/dev/shm memmap)", w10_epoch,
             dict(n=n, kind="memory", folder=folder)),
        Impl("batchup, cache storage='hdf5' (PyTables CArray)", w10_epoch,
             dict(n=n, kind="hdf5", folder=folder), requires=("tables",)),
        Impl(f"batchup, cache storage='hdf5', shuffle=ChunkShuffle(window={CHUNK_WINDOW})",
             w10_epoch, dict(n=n, kind="hdf5", folder=folder, chunked=True),
             requires=("tables",)),
        Impl("batchup, the slow source itself", w10_epoch,
             dict(n=n, kind="slow", folder=folder)),
    ]
    table, ratios = compare(
        ctx,
        f"W10 epoch — shuffled epoch, batch {W10_BATCH}, int seed per epoch: the slow source "
        f"vs its cache (a second epoch) vs memory, X float32 ({n:,}, 3, {SIDE}, {SIDE}) + "
        "y int32",
        "samples/s",
        impls,
        repeats=7,
        min_time=0.5,
    )
    slow = ratios.get("batchup, the slow source itself")
    table.notes += [
        "Each run() is one epoch: ds.batch_iterator(128, shuffle=seed + epoch) with the "
        "default threads; ds = ArrayDataSource([source, y]) for the slow source, "
        "cache_source(that ds, folder, storage=...) for the caches (X and y each in a file "
        "of its own; filled once during set-up, so the timed epochs are later epochs and the "
        "files are in the page cache), ArrayDataSource([X, y]) over np.array of the npy "
        "cache for the in-memory copy (np.asarray of a memmap would still read the mapping). "
        "The hdf5 cache is a CArray chunked by cache_array in about 1 MB of rows "
        f"({min(FILL_BATCH, (1 << 20) // (3 * SIDE * SIDE * 4), n)} rows here); with a full "
        "shuffle PyTables reads each row on its own, so the last hdf5 row "
        f"iterates it with shuffle=ChunkShuffle(seed + epoch, window={CHUNK_WINDOW}) (chunk "
        "size from the file; each chunk read once per window, samples shuffled within "
        f"{CHUNK_WINDOW} chunks rather than over the whole epoch). "
        f"PyTables {dist_version('tables') or 'not installed'}, zlib "
        f"{zlib.ZLIB_RUNTIME_VERSION}; cache files in {folder} (removed afterwards).",
    ]
    if slow:
        faster = [f"{label.removeprefix('batchup, cache ')} {ratio / slow:.2f}×"
                  for label, ratio in ratios.items() if label.startswith("batchup, cache")]
        table.notes.append("A cached epoch ÷ an epoch of the slow source: " + ", ".join(faster)
                           + f"; the in-memory floor is {1 / slow:.1f}× the slow source.")
    serial = fill.get("npy: serial rows/s")
    npy = ratios.get("batchup, cache storage='npy' (memmap)")
    if slow and serial and npy:
        floor_rate = _floor_rate(table)
        if floor_rate:
            slow_epoch = n / (slow * floor_rate)
            cached_epoch = n / (npy * floor_rate)
            fill_s = n / serial
            table.notes.append(
                f"Cost and return (npy, serial fill): filling takes {fill_s:.2f} s "
                f"({fill_s / slow_epoch:.2f} epochs of the slow source); each later epoch "
                f"takes {cached_epoch:.3f} s instead of {slow_epoch:.2f} s.")
    return table


def _floor_rate(table: Table) -> float | None:
    for row in table.rows:
        if row[0].startswith("floor") and row[1] != "—":
            return _parse(row[1])
    return None


def w10(ctx: Context) -> list[Table]:
    """W10 tables: cache fill (serial vs 2 workers) and an epoch from the cache vs memory."""
    n = ctx.size(FULL_N, QUICK_N)
    folder = scratch_folder()
    log(f"W10: building the slow source ({n:,} compressed images); cache files in {folder}")
    try:
        slow_source(n)
        fill, fill_rates = fill_table(ctx, n, folder)
        epoch = epoch_table(ctx, n, folder, fill_rates)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [fill, epoch]


WORKLOADS = {"W10": w10}

"""Workload W9: an out-of-core shuffled epoch over files of at least 2 GB.

* W9 — X float32 (175,000, 3, 32, 32) (12 KB samples, 2.15 GB) and y int32, stored four
  ways: ``.npy`` opened as a memory map, a PyTables CArray, an h5py dataset and a zarr
  array (HDF5 and zarr chunks of 32 rows, no compression). Shuffled batches of 128, one
  int seed per epoch, samples/s against the in-memory floor (the ``.npy`` loaded into
  memory, ``X[idx], y[idx]`` per batch) while the files are in the page cache ("warm":
  read through once and checked with ``fincore`` before and after timing). Rows: batchup
  over each storage (memmap with the default threads and with ``threads=0``), batchup
  through ``WorkerProcessPool(2)`` (memmap, h5py), per-sample reads (one
  ``dataset[i]`` per index and a NumPy stack, as a DataLoader does) over each storage,
  and torch ``DataLoader(batch_size=128, shuffle=True)`` over a map-style Dataset on the
  memmap with 0 and 2 workers. Storage-aware shuffling: batchup with
  ``shuffle=ChunkShuffle(seed + epoch, window=16)`` over each storage (chunks of 32 rows:
  the storage's own for PyTables, h5py and zarr, ``chunk_size=32`` given for the memmap, so
  every storage yields the same batches); a note gives its speed-up over the full shuffle
  on the same storage. Target: memmap ≥ 0.8× the floor.
* W9's second table is memory: every row again, each in a fresh subprocess, for one epoch
  (or ``RSS_SECONDS`` of it): peak RSS of every process (``VmHWM``) against
  the file size, split into anonymous, file-backed and shared-memory pages (sampled from
  ``/proc/<pid>/status``), and what the processes put in ``/dev/shm``. Target: every
  process under 25% of the file.

The files are written once (seeded, in blocks) into ``benchmarks/.data/w9-<N>/`` (about
8.6 GB for the full size; ``--quick`` uses 20,000 samples), or ``$BATCHUP_BENCH_DATA``;
the directory ignores itself in git. Factories follow ``harness.py``'s conventions; each
``run()`` reads a fixed number of batches from an endless sequence of epochs, so that the
slow rows need not finish an epoch per measurement.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import (
    BENCH_DIR,
    REPO_ROOT,
    Context,
    Impl,
    Table,
    compare,
    dist_version,
    is_installed,
    log,
    qualified_name,
    resolve,
    target_note,
)

W9_BATCH = 128
SEED = 12345
WORKERS = 2
SAMPLE_SHAPE = (3, 32, 32)
CHUNK_ROWS = 32  # HDF5 and zarr chunks: 32 samples, 384 KB
WRITE_BLOCK = 4096  # samples generated and written at a time (50 MB)
FULL_N = 175_000  # 2.15 GB of X
QUICK_N = 20_000
RSS_SECONDS = 8.0  # at most this long per row in the memory pass (quick: 1.5 s)
RSS_LIMIT = 0.25  # target: every process's peak RSS under 25% of the file
LAYOUT_VERSION = 1
DATA_DIR = Path(os.environ.get("BATCHUP_BENCH_DATA") or BENCH_DIR / ".data")
SHM = Path("/dev/shm")
FORMATS = ("npy", "tables", "h5py", "zarr")
FORMAT_NAMES = {"npy": "memmap (.npy)", "tables": "PyTables CArray", "h5py": "h5py dataset",
                "zarr": "zarr array"}
#: Batches per run(): enough for a few tens of milliseconds at the row's speed.
BATCHES_PER_RUN = {"npy": 32, "tables": 16, "h5py": 8, "zarr": 4}
#: ChunkShuffle rows: window of chunks shuffled together, and batches per run() (a multiple
#: of the window's 512 rows / 128 = 4 batches).
CHUNK_WINDOW = 16
CHUNK_BATCHES_PER_RUN = 32
_MARK = "W9RSS "

# --------------------------------------------------------------------------------------------
# Data files (written once, reused)
# --------------------------------------------------------------------------------------------


def data_root(n: int) -> Path:
    """Directory of the W9 files for ``n`` samples."""
    return DATA_DIR / f"w9-{n}"


def x_file_bytes(n: int) -> int:
    """Size of ``X.npy`` (the "file size" RSS is compared with)."""
    path = data_root(n) / "X.npy"
    return path.stat().st_size if path.exists() else n * 4 * int(np.prod(SAMPLE_SHAPE))


def data_files(n: int, fmt: str | None = None) -> list[Path]:
    """Every file of one format (or of all formats) for ``n`` samples."""
    root = data_root(n)
    files: list[Path] = []
    for f in (fmt,) if fmt else FORMATS:
        if f == "npy":
            files += [root / "X.npy", root / "y.npy"]
        elif f == "zarr":
            files += sorted(p for p in (root / "zarr").rglob("*") if p.is_file())
        else:
            files.append(root / f"{f}.h5")
    return files


def _layout(n: int) -> dict[str, Any]:
    return {"version": LAYOUT_VERSION, "n": n, "chunk_rows": CHUNK_ROWS,
            "sample_shape": list(SAMPLE_SHAPE), "seed": 0}


def ensure_data(n: int) -> float | None:
    """Write the four files for ``n`` samples unless cached; seconds spent, or None."""
    root = data_root(n)
    marker = root / "complete.json"
    try:
        if json.loads(marker.read_text()) == _layout(n):
            return None
    except (OSError, ValueError):
        pass
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ignore = DATA_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# W9 test files (benchmarks/bench_disk.py): never committed\n*\n")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log(f"W9: writing 4 × {n * 12288 / 1e9:.2f} GB of test files to {root} (once) ...")
    start = time.perf_counter()
    _write_files(root, n)
    marker.write_text(json.dumps(_layout(n)))
    return time.perf_counter() - start


def _zarr_create(path: Path, shape: tuple, chunks: tuple, dtype: str) -> Any:
    """An uncompressed zarr array at ``path`` (zarr 3 or zarr 2)."""
    import zarr

    if hasattr(zarr, "create_array"):
        return zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=dtype,
                                 compressors=None, overwrite=True)
    return zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype,
                           compressor=None)


def _write_files(root: Path, n: int) -> None:
    """X (seeded uniform float32) and y (int32 labels) as .npy, PyTables, h5py and zarr."""
    import h5py
    import tables

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=n, dtype=np.int32)
    shape = (n, *SAMPLE_SHAPE)
    chunk = (CHUNK_ROWS, *SAMPLE_SHAPE)
    np.save(root / "y.npy", y)
    x_npy = np.lib.format.open_memmap(root / "X.npy", mode="w+", dtype=np.float32, shape=shape)
    tf = tables.open_file(str(root / "tables.h5"), mode="w")
    hf = h5py.File(root / "h5py.h5", "w")
    try:
        x_tab = tf.create_carray(tf.root, "X", atom=tables.Float32Atom(), shape=shape,
                                 chunkshape=chunk)
        tf.create_carray(tf.root, "y", obj=y)
        x_h5 = hf.create_dataset("X", shape=shape, dtype="float32", chunks=chunk)
        hf.create_dataset("y", data=y)
        x_zarr = _zarr_create(root / "zarr" / "X", shape, chunk, "float32")
        _zarr_create(root / "zarr" / "y", (n,), (4096,), "int32")[:] = y
        for start in range(0, n, WRITE_BLOCK):
            stop = min(n, start + WRITE_BLOCK)
            block = rng.random((stop - start, *SAMPLE_SHAPE), dtype=np.float32)
            for target in (x_npy, x_tab, x_h5, x_zarr):
                target[start:stop] = block
        x_npy.flush()
    finally:
        del x_npy
        tf.close()
        hf.close()


_OPEN: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
#: Worker process ids each pool row of this process has used (loky may replace workers).
POOL_WORKERS_SEEN: dict[str, set[int]] = {}


def open_storage(fmt: str, n: int) -> tuple[Any, Any]:
    """``(X, y)`` of one format, opened read-only once per process."""
    key = (fmt, n)
    if key not in _OPEN:
        root = data_root(n)
        handle = None
        if fmt == "npy":
            X = np.load(root / "X.npy", mmap_mode="r")
            y = np.load(root / "y.npy", mmap_mode="r")
        elif fmt == "tables":
            import tables

            handle = tables.open_file(str(root / "tables.h5"), mode="r")
            X, y = handle.root.X, handle.root.y
        elif fmt == "h5py":
            import h5py

            handle = h5py.File(root / "h5py.h5", "r")
            X, y = handle["X"], handle["y"]
        elif fmt == "zarr":
            import zarr

            X = zarr.open_array(str(root / "zarr" / "X"), mode="r")
            y = zarr.open_array(str(root / "zarr" / "y"), mode="r")
        else:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        _OPEN[key] = (X, y, handle)
    X, y, _ = _OPEN[key]
    return X, y


def close_storage() -> None:
    """Close the files :func:`open_storage` opened in this process."""
    while _OPEN:
        _, (_, _, handle) = _OPEN.popitem()
        if handle is not None:
            handle.close()


# --------------------------------------------------------------------------------------------
# Page cache: read the files through once, check residency with fincore
# --------------------------------------------------------------------------------------------


def read_through(files: list[Path]) -> tuple[int, float]:
    """Read every file once (puts it in the page cache); ``(bytes, seconds)``."""
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    total = 0
    start = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while True:
                got = f.readinto(view)
                if not got:
                    break
                total += got
    return total, time.perf_counter() - start


def resident_fraction(files: list[Path]) -> float | None:
    """Share of the files' bytes in the page cache (util-linux ``fincore``), or None."""
    if not shutil.which("fincore") or not files:
        return None
    resident = size = 0
    for start in range(0, len(files), 500):
        part = [str(p) for p in files[start : start + 500]]
        try:
            out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw",
                                  "--output", "RES,SIZE", *part],
                                 capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        for line in out.split("\n"):
            fields = line.split()
            if len(fields) == 2:
                resident += int(fields[0])
                size += int(fields[1])
    return resident / size if size else None


# --------------------------------------------------------------------------------------------
# Factories: each run() reads `batches` batches from an endless sequence of epochs
# --------------------------------------------------------------------------------------------


class _Run:
    """``run()`` for the harness: ``batches`` batches of ``stream``; ``close`` stops it."""

    def __init__(self, stream: Iterator, batches: int, close: Callable[[], None] | None = None):
        self._stream, self._batches, self._close = stream, batches, close
        self.worker_pids: Callable[[], list[int]] | None = None
        self.seen_workers: set[int] = set()

    def __call__(self) -> int:
        items = 0
        for batch in itertools.islice(self._stream, self._batches):
            items += len(batch[1])
        if self.worker_pids is not None:
            self.seen_workers.update(self.worker_pids())
        return items

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()
        if self._close is not None:
            self._close()
            self._close = None


def _epochs(start: Callable[[int], Iterable]) -> Iterator:
    """Batches of epoch 0, 1, 2, ... (``start(epoch)`` gives one epoch's iterable)."""
    for epoch in itertools.count():
        yield from start(epoch)


def w9_floor(n: int, batches: int) -> _Run:
    """In-memory floor: the .npy loaded into memory, one permutation per epoch, X[idx]."""
    root = data_root(n)
    X, y = np.load(root / "X.npy"), np.load(root / "y.npy")
    rng = np.random.default_rng(SEED)

    def epoch(_: int) -> Iterator:
        perm = rng.permutation(n)
        for start in range(0, n, W9_BATCH):
            idx = perm[start : start + W9_BATCH]
            yield X[idx], y[idx]

    return _Run(_epochs(epoch), batches)


def w9_batchup(n: int, batches: int, fmt: str, threads: int | None = None) -> _Run:
    """``ArrayDataSource([X, y]).batch_iterator(128, shuffle=seed + epoch)`` over storage."""
    from batchup import data_source

    X, y = open_storage(fmt, n)
    ds = data_source.ArrayDataSource([X, y])
    extra = {} if threads is None else {"threads": threads}
    return _Run(_epochs(lambda e: ds.batch_iterator(W9_BATCH, shuffle=SEED + e, **extra)),
                batches)


def w9_chunk_shuffle(n: int, batches: int, fmt: str, chunk_size: int | None = None,
                     window: int = CHUNK_WINDOW) -> _Run:
    """The same with ``shuffle=ChunkShuffle(seed + epoch, chunk_size=..., window=...)``.

    ``chunk_size=None`` takes the storage's chunking (32 rows here); a memmap has none, so
    its row passes ``chunk_size=32`` explicitly and yields the same batches.
    """
    from batchup import data_source
    from batchup.data_source import ChunkShuffle

    X, y = open_storage(fmt, n)
    ds = data_source.ArrayDataSource([X, y])

    def epoch(e: int) -> Iterable:
        order = ChunkShuffle(SEED + e, chunk_size=chunk_size, window=window)
        return ds.batch_iterator(W9_BATCH, shuffle=order)

    return _Run(_epochs(epoch), batches)


def w9_pool(n: int, batches: int, fmt: str) -> _Run:
    """The same through ``WorkerProcessPool(2).parallel_data_source(ds)`` (files by reference)."""
    from batchup import data_source, work_pool

    X, y = open_storage(fmt, n)
    pool = work_pool.WorkerProcessPool(WORKERS)
    par = pool.parallel_data_source(data_source.ArrayDataSource([X, y]))
    run = _Run(_epochs(lambda e: par.batch_iterator(W9_BATCH, shuffle=SEED + e)), batches,
               pool.close)
    run.worker_pids = pool.worker_pids
    run.seen_workers = POOL_WORKERS_SEEN.setdefault(fmt, set())
    return run


class Samples:
    """Map-style dataset: ``dataset[i]`` reads one sample, as a torch DataLoader asks."""

    def __init__(self, X: Any, y: Any):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.X[i], self.y[i]


def w9_per_sample(n: int, batches: int, fmt: str) -> _Run:
    """One ``dataset[i]`` per index of a shuffled batch, then ``np.stack`` (a collate)."""
    dataset = Samples(*open_storage(fmt, n))
    rng = np.random.default_rng(SEED)

    def epoch(_: int) -> Iterator:
        perm = rng.permutation(n).tolist()
        for start in range(0, n, W9_BATCH):
            samples = [dataset[i] for i in perm[start : start + W9_BATCH]]
            yield np.stack([s[0] for s in samples]), np.array([s[1] for s in samples])

    return _Run(_epochs(epoch), batches)


def w9_torch(n: int, batches: int, workers: int) -> _Run:
    """torch ``DataLoader(Samples(memmap), batch_size=128, shuffle=True, num_workers=w)``."""
    import warnings

    import torch
    from torch.utils.data import DataLoader

    # default_collate wraps the read-only memmap rows with torch.as_tensor (and copies them
    # in torch.stack); torch warns about the read-only wrapper once per process.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    dataset = Samples(*open_storage("npy", n))
    loader = DataLoader(dataset, batch_size=W9_BATCH, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(SEED))

    def shutdown() -> None:
        it = getattr(loader, "_iterator", None)
        stop = getattr(it, "_shutdown_workers", None)
        if callable(stop):
            stop()

    run = _Run(_epochs(lambda e: loader), batches, shutdown)
    if workers:
        def pids() -> list[int]:
            it = getattr(loader, "_iterator", None)
            return [w.pid for w in getattr(it, "_workers", [])]

        run.worker_pids = pids
    return run


# --------------------------------------------------------------------------------------------
# Memory pass: one row in a fresh subprocess, its processes and /dev/shm sampled
# --------------------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int] | None:
    """VmHWM, VmRSS, RssAnon, RssFile, RssShmem of ``pid`` in bytes (None if gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.split("\n"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _descendants(root: int) -> list[int]:
    """Process ids of every descendant of ``root`` (scans /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _shm_bytes(pids: list[int], root_pid: int) -> int:
    """Bytes in /dev/shm that belong to these processes.

    Counted once per inode: files in batchup's pool folders (``batchup-<pid>-*``) and
    every /dev/shm file the processes map, deleted ones included (torch unlinks its
    segments after creating them).
    """
    sizes: dict[int, int] = {}
    try:
        for entry in os.scandir(SHM):
            if entry.name.startswith(f"batchup-{root_pid}-") and entry.is_dir():
                for dirpath, _, names in os.walk(entry.path):
                    for name in names:
                        try:
                            st = os.stat(os.path.join(dirpath, name))
                        except OSError:
                            continue
                        sizes[st.st_ino] = max(sizes.get(st.st_ino, 0), st.st_size)
    except OSError:
        pass
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "/dev/shm/" not in line:
                        continue
                    fields = line.split(maxsplit=5)
                    lo, hi = (int(v, 16) for v in fields[0].split("-"))
                    extent = int(fields[2], 16) + hi - lo
                    inode = int(fields[4])
                    sizes[inode] = max(sizes.get(inode, 0), extent)
        except (OSError, ValueError, IndexError):
            continue
    return sum(sizes.values())


def _shm_used() -> int | None:
    """Bytes used on /dev/shm by everyone (statvfs), or None."""
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class _Monitor(threading.Thread):
    """Samples the memory of this process and its descendants, and /dev/shm, every 25 ms."""

    def __init__(self, worker_pids: Callable[[], list[int]] | None):
        super().__init__(daemon=True)
        self.root = os.getpid()
        self.worker_pids = worker_pids
        self.peaks: dict[int, dict[str, int]] = {}
        self.kinds: dict[int, str] = {}
        self.shm_peak = 0
        self.shm_used_peak = 0
        self._pids: list[int] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def sample(self, scan: bool) -> None:
        with self._lock:
            if scan:
                self._pids = _descendants(self.root)
                workers = set(self.worker_pids() if self.worker_pids else [])
                for pid in self._pids:
                    if pid not in self.kinds:
                        cmd = _cmdline(pid)
                        helper = "resource_tracker" in cmd or "semaphore_tracker" in cmd
                        self.kinds[pid] = "worker" if pid in workers or not helper else "helper"
                self.shm_peak = max(self.shm_peak, _shm_bytes([self.root, *self._pids],
                                                              self.root))
                self.shm_used_peak = max(self.shm_used_peak, _shm_used() or 0)
            for pid in (self.root, *self._pids):
                status = _status(pid)
                if status is None:
                    continue
                peak = self.peaks.setdefault(pid, dict(status))
                for key, value in status.items():
                    peak[key] = max(peak[key], value)

    def run(self) -> None:
        tick = 0
        while not self._stop_event.wait(0.025):
            self.sample(scan=tick % 10 == 0)
            tick += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def rss_main() -> None:
    """Subprocess entry: run one factory for an epoch (or a time cap), report memory as JSON."""
    spec = json.loads(sys.argv[1])
    n, cap = spec["n"], spec["seconds"]
    shm_used_before = _shm_used()
    run = resolve(spec["factory"])(**spec["kwargs"])
    anon_start = (_status(os.getpid()) or {}).get("RssAnon", 0)
    monitor = _Monitor(getattr(run, "worker_pids", None))
    monitor.sample(scan=True)
    monitor.start()
    warm = run()  # starts threads, pools, workers (as the harness's warm-up does)
    samples, start = 0, time.perf_counter()
    while warm + samples < n and time.perf_counter() - start < cap:
        samples += run()
    elapsed = time.perf_counter() - start
    monitor.stop()
    monitor.sample(scan=True)  # last VmHWM of every worker before the pool stops them
    run.close()
    close_storage()
    gc.collect()  # batches of a closed pool still map their slot until collected
    time.sleep(0.1)
    after = _shm_bytes([os.getpid(), *_descendants(os.getpid())], os.getpid())
    main = monitor.peaks[os.getpid()]
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child
    # started by a large parent reports at least the parent's size.
    processes = [{"kind": "main", "anon_start": anon_start, **main}]
    processes += [{"kind": monitor.kinds.get(pid, "worker"), **peak}
                  for pid, peak in monitor.peaks.items() if pid != os.getpid()]
    result = {
        "samples": warm + samples, "timed_samples": samples, "seconds": elapsed,
        "processes": processes,
        "shm_peak": monitor.shm_peak, "shm_after_close": after,
        "shm_used_before": shm_used_before, "shm_used_peak": monitor.shm_used_peak,
    }
    print(_MARK + json.dumps(result), flush=True)


def measure_memory(impl: Impl, n: int, seconds: float) -> dict[str, Any]:
    """Run ``impl`` in a fresh interpreter through :func:`rss_main`; its JSON report."""
    spec = {"factory": qualified_name(impl.factory), "kwargs": impl.kwargs, "n": n,
            "seconds": seconds}
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
            "from benchmarks.bench_disk import rss_main; rss_main()")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=str(REPO_ROOT),
                          env=env, stdout=subprocess.PIPE, text=True, timeout=seconds + 300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory subprocess exited with {proc.returncode} (see stderr)")
    return json.loads(lines[-1][len(_MARK):])


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def memory_table(ctx: Context, impls: list[Impl], n: int) -> Table:
    """Second W9 table: peak memory of every process of every row, and /dev/shm."""
    seconds = 1.5 if ctx.quick else RSS_SECONDS
    file_bytes = x_file_bytes(n)
    limit = RSS_LIMIT * file_bytes
    table = Table(
        f"W9 memory — peak per process, one epoch (≤ {seconds:g} s) in a fresh subprocess "
        f"per row; file X.npy = {file_bytes / 1e9:.2f} GB, {RSS_LIMIT:.0%} = {_mb(limit)}",
        ["implementation", "process", "peak RSS", "÷ file", "anon (start → peak)",
         "file-backed peak", "shmem peak", "< 25%: RSS, anon",
         "/dev/shm (peak, after close)", "epoch read, samples/s"],
    )
    checked = over_rss = over_anon = 0
    replaced: list[str] = []
    shm_rise: list[tuple[int, str]] = []
    for impl in impls:
        missing = [m for m in impl.requires if not is_installed(m)]
        if missing:
            table.rows.append([impl.label, "—", "not installed (" + ", ".join(missing) + ")",
                               *["—"] * 7])
            continue
        log(f"  memory: {impl.label}")
        try:
            rep = measure_memory(impl, n, seconds)
        except Exception as exc:  # one broken row must not hide the others
            table.rows.append([impl.label, "—", f"error: {exc}"[:90], *["—"] * 7])
            continue
        procs = rep["processes"]
        groups = [("main", [p for p in procs if p["kind"] == "main"]),
                  ("workers", [p for p in procs if p["kind"] == "worker"]),
                  ("helpers", [p for p in procs if p["kind"] == "helper"])]
        workers = len(groups[1][1])
        if impl.factory is w9_pool and workers > WORKERS:
            replaced.append(f"{impl.label}: {workers} worker processes")
        first = True
        for kind, members in groups:
            if not members:
                continue
            peak = {k: max(p[k] for p in members)
                    for k in ("VmHWM", "RssAnon", "RssFile", "RssShmem")}
            who = kind if kind == "main" else f"{len(members)} {kind} (max of each)"
            anon = (f"{_mb(members[0]['anon_start'])} → {_mb(peak['RssAnon'])}"
                    if kind == "main" else _mb(peak["RssAnon"]))
            shm = rate = ""
            if first:
                shm = f"{_mb(rep['shm_peak'])}, {_mb(rep['shm_after_close'])}"
                rate = (f"{min(1.0, rep['samples'] / n):.0%}, "
                        f"{rep['timed_samples'] / max(rep['seconds'], 1e-9):,.0f}")
            rss_ok, anon_ok = peak["VmHWM"] < limit, peak["RssAnon"] < limit
            verdict = f"{'yes' if rss_ok else 'NO'}, {'yes' if anon_ok else 'NO'}"
            table.rows.append([impl.label if first else "", who, _mb(peak["VmHWM"]),
                               f"{peak['VmHWM'] / file_bytes:.0%}", anon, _mb(peak["RssFile"]),
                               _mb(peak["RssShmem"]), verdict, shm, rate])
            checked += 1
            over_rss += 0 if rss_ok else 1
            over_anon += 0 if anon_ok or impl.floor else 1
            first = False
        if rep["shm_used_before"] is not None:
            shm_rise.append((rep["shm_used_peak"] - rep["shm_used_before"], impl.label))
    table.notes += [
        "peak RSS = VmHWM of each process (not getrusage's ru_maxrss, which Linux carries "
        "across exec from the parent that started the subprocess); anon / file-backed / "
        "shmem are the largest RssAnon / RssFile / RssShmem seen while sampling "
        "/proc/<pid>/status every 25 ms. "
        "File-backed pages of a memory map are the page cache mapped into the process "
        "(shared, clean, reclaimable), not private memory. 'anon start' is after set-up, "
        "before the first batch. Workers: the pool's or DataLoader's worker processes; "
        "helpers: the resource-tracker processes of the pool.",
        "/dev/shm: bytes of /dev/shm files the row's processes created or map (batchup's "
        "batch slots and shared constants, torch's segments; counted per inode), at peak "
        "and after the pool or loader is closed.",
        "epoch read: share of one epoch read in the time cap, and the samples/s of that "
        "first pass in a fresh process (page faults included; not alternated, not the "
        "timing table's figure).",
        f"Target: peak RSS under {RSS_LIMIT:.0%} of the file for every process — "
        + ("met." if not over_rss else f"missed by {over_rss} of {checked} process lines "
           "(column '< 25%', first value)."),
        f"Peak anonymous memory under {RSS_LIMIT:.0%} of the file, the in-memory floor "
        "aside: " + ("met." if not over_anon else f"missed by {over_anon} of {checked} "
                     "process lines."),
    ]
    if replaced:
        table.notes.append(
            "Workers replaced (" + "; ".join(replaced) + f" for {WORKERS} at a time): loky's "
            "leak guard (active when psutil is importable) stops a worker whose memory has "
            "grown 300 MB since it started; batchup's workers have it count anonymous memory "
            "only, so a memory map's file-backed pages should not trigger it."
        )
    if shm_rise:
        rise, label = max(shm_rise)
        table.notes.append(f"/dev/shm used by everyone on the machine (statvfs): the largest "
                           f"rise during a row was {_mb(max(rise, 0))} ({label}).")
    return table


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------


def chunk_label(fmt: str) -> str:
    """Row label of the ChunkShuffle row over ``fmt``."""
    size = f"chunk_size={CHUNK_ROWS}, " if fmt == "npy" else ""
    return f"batchup ChunkShuffle({size}window={CHUNK_WINDOW}), {FORMAT_NAMES[fmt]}"


def w9_impls(n: int) -> list[Impl]:
    """W9's rows, floor first."""

    def kw(fmt: str, **extra: Any) -> dict[str, Any]:
        return dict(n=n, batches=BATCHES_PER_RUN[fmt], fmt=fmt, **extra)

    storage_reqs = {"npy": (), "tables": ("tables",), "h5py": ("h5py",), "zarr": ("zarr",)}
    rows = [
        Impl("floor: in-memory X, y (np.load), X[idx], y[idx]", w9_floor,
             dict(n=n, batches=BATCHES_PER_RUN["npy"]), floor=True),
        Impl("batchup, memmap (default threads)", w9_batchup, kw("npy")),
        Impl("batchup, memmap, threads=0", w9_batchup, kw("npy", threads=0)),
    ]
    rows += [Impl(f"batchup, {FORMAT_NAMES[f]}", w9_batchup, kw(f), requires=storage_reqs[f])
             for f in ("tables", "h5py", "zarr")]
    rows += [Impl(chunk_label(f), w9_chunk_shuffle,
                  dict(n=n, batches=CHUNK_BATCHES_PER_RUN, fmt=f,
                       chunk_size=CHUNK_ROWS if f == "npy" else None),
                  requires=storage_reqs[f]) for f in FORMATS]
    rows += [Impl(f"batchup WorkerProcessPool({WORKERS}), {FORMAT_NAMES[f]}", w9_pool, kw(f),
                  requires=storage_reqs[f]) for f in ("npy", "h5py")]
    rows += [Impl(f"per-sample dataset[i] + np.stack, {FORMAT_NAMES[f]}", w9_per_sample,
                  kw(f), requires=storage_reqs[f]) for f in FORMATS]
    rows += [Impl(f"torch DataLoader(batch_size=128, shuffle=True, num_workers={w}), "
                  "memmap Dataset", w9_torch, dict(n=n, batches=BATCHES_PER_RUN["npy"],
                                                   workers=w), requires=("torch",))
             for w in (0, WORKERS)]
    return rows


def _residency_text(fraction: float | None) -> str:
    return "not checked (no fincore)" if fraction is None else f"{fraction:.1%}"


def _cache_title(fraction: float | None) -> str:
    """How warm the page cache was, for the table title."""
    if fraction is None:
        return "page cache warmed by reading the files through (residency not checked)"
    if fraction >= 0.99:
        return f"page cache warm ({fraction:.1%} resident)"
    return (f"page cache NOT warm: only {fraction:.1%} resident after reading the files "
            "through (memory pressure)")


def w9(ctx: Context) -> list[Table]:
    """W9 tables: out-of-core shuffled epoch (≥ 2 GB file, warm page cache) and its memory."""
    n = ctx.size(FULL_N, QUICK_N)
    missing = [m for m in ("tables", "h5py", "zarr") if not is_installed(m)]
    if missing:  # the files are written with all of them
        return Table("W9 — not run", ["result"],
                     [[f"not installed ({', '.join(missing)}): needed to write the files"]])
    wrote = ensure_data(n)
    files = data_files(n)
    total, secs = read_through(files)
    resident_before = resident_fraction(files)
    log(f"W9: read {total / 1e9:.2f} GB of files in {secs:.1f} s "
        f"({total / 1e9 / secs:.1f} GB/s); resident {_residency_text(resident_before)}")
    file_bytes = x_file_bytes(n)
    impls = w9_impls(n)
    min_time = 0.2 if ctx.quick else 1.0
    POOL_WORKERS_SEEN.clear()
    try:
        table, ratios = compare(
            ctx,
            f"W9 — out-of-core shuffled epoch, X float32 ({n:,}, 3, 32, 32) = "
            f"{file_bytes / 1e9:.2f} GB per file + y int32, batch {W9_BATCH}, "
            + _cache_title(resident_before),
            "samples/s",
            impls,
            repeats=7,
            min_time=min_time,
        )
    finally:
        close_storage()
    resident_after = resident_fraction(files)
    per_format = ""
    if resident_after is not None:
        per_format = ", ".join(
            f"{FORMAT_NAMES[f]} {_residency_text(resident_fraction(data_files(n, f)))}"
            for f in FORMATS)
    versions = ", ".join(f"{d} {dist_version(d) or 'not installed'}"
                         for d in ("h5py", "tables", "zarr"))
    disk = shutil.disk_usage(data_root(n))
    table.notes += [
        f"Files in {data_root(n)} ({versions}): .npy opened with np.load(mmap_mode='r'); "
        f"PyTables CArray and h5py dataset chunked {CHUNK_ROWS} rows, zarr chunks of "
        f"{CHUNK_ROWS} rows, none compressed; y int32 stored beside X in each. "
        + (f"Written this run in {wrote:.0f} s. " if wrote is not None else "Reused. ")
        + f"Before timing all {total / 1e9:.2f} GB were read through once "
        f"({total / 1e9 / secs:.1f} GB/s); resident in the page cache before / after "
        f"timing: {_residency_text(resident_before)} / {_residency_text(resident_after)} "
        + (f"({per_format}) " if per_format else "")
        + f"(fincore; {disk.free / 1e9:.0f} GB free on the data disk).",
        "Each run() reads a fixed number of batches (memmap rows and the floor 32, PyTables "
        "16, h5py 8, zarr 4, every ChunkShuffle row 32) from an endless sequence of epochs "
        "(shuffle=seed + epoch); the in-process memmap rows share one mapping. Per-sample "
        "rows: one dataset[i] = (X[i], y[i]) per index, as a DataLoader calls it, and a "
        "NumPy stack.",
        f"ChunkShuffle rows: shuffle=ChunkShuffle(seed + epoch, window={CHUNK_WINDOW}), "
        f"default threads; chunks of {CHUNK_ROWS} rows (PyTables, h5py, zarr: taken from "
        f"the storage; memmap: chunk_size={CHUNK_ROWS} given, instead of the default of about "
        "1 MB of rows = 85 rows), so every storage yields the same batches. Chunks are put in "
        f"a seeded order and the samples of {CHUNK_WINDOW} consecutive chunks "
        f"({CHUNK_WINDOW * CHUNK_ROWS} rows) shuffled together: HDF5 and zarr read each chunk "
        "once per window, whole; the memmap is gathered as usual, with the locality of the "
        "order.",
        target_note(ratios, "batchup, memmap (default threads)", 0.8),
        target_note(ratios, "batchup, memmap, threads=0", 0.8),
    ]
    pairs = []
    for f in FORMATS:
        ours = "batchup, memmap, threads=0" if f == "npy" else f"batchup, {FORMAT_NAMES[f]}"
        peer = f"per-sample dataset[i] + np.stack, {FORMAT_NAMES[f]}"
        if ours in ratios and peer in ratios and ratios[peer]:
            pairs.append(f"{FORMAT_NAMES[f]} {ratios[ours] / ratios[peer]:.2f}×")
    if pairs:
        table.notes.append("batchup (no threads) ÷ per-sample reads on the same storage: "
                           + ", ".join(pairs) + ".")
    speedups = []
    for f in FORMATS:
        full = ("batchup, memmap (default threads)" if f == "npy"
                else f"batchup, {FORMAT_NAMES[f]}")
        chunked = chunk_label(f)
        if full in ratios and chunked in ratios and ratios[full]:
            speedups.append(f"{FORMAT_NAMES[f]} {ratios[chunked] / ratios[full]:.2f}×")
    if speedups:
        table.notes.append(f"batchup ChunkShuffle(window={CHUNK_WINDOW}) ÷ batchup full "
                           "shuffle (default threads) on the same storage: "
                           + ", ".join(speedups) + ".")
    pools = ", ".join(f"{FORMAT_NAMES[f]} {len(pids)}" for f, pids in POOL_WORKERS_SEEN.items())
    if pools:
        table.notes.append(
            f"Worker processes each WorkerProcessPool({WORKERS}) row went through while timed "
            f"(sampled after each run()): {pools}. More than {WORKERS} means loky replaced "
            "workers: with psutil importable, its leak guard stops a worker whose memory has "
            "grown 300 MB since it started (batchup's workers have it count anonymous memory "
            "only, not a memory map's file-backed pages).")
    log("W9 memory pass: one fresh subprocess per row")
    return [table, memory_table(ctx, impls, n)]


WORKLOADS = {"W9": w9}

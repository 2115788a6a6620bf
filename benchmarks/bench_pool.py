"""Workloads W3, W4 and W5: batchup.work_pool against serial/floor, batchup 0.2.3 and torch.

* W3 — GIL-holding augmentation (per-sample Python loop, about 3 ms per batch of 64 uint8
  3 × 32 × 32 images) through 2 worker processes; batches/s vs serial. Target ≥ 1.7×.
  Besides the target row (``batch_buffer_size=8``) the table shows the pool with a larger
  buffer (which allows larger chunks) and a ceiling: 2 forked processes with no IPC.
* W4 — large batches (256 × 3 × 96 × 96 uint8, about 7 MB), trivial work, 2 worker
  processes; MB/s delivered vs an in-process gather (the floor). Target ≥ 0.7×.
* W5 — GIL-releasing work (sorting 2**20 float64) in a 2-thread pool; sorts/s vs serial.
  Target ≥ 1.7×.

Factories follow ``harness.py``'s conventions: module-level, ``batchup`` imported inside,
so the same factory measures this tree and (in the harness's subprocess) batchup 0.2.3.
Each returns ``run()`` (one epoch) with a ``close`` attribute that shuts its pool down.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from benchmarks.harness import BATCHUP_023, Context, Impl, Table, compare, target_note

W3_BATCH = 64
W4_BATCH = 256
W5_SORT = 1 << 20
WORKERS = 2
SEED = 12345


def w3_augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample flip and shift in a Python loop: holds the GIL about 3 ms per batch."""
    out = np.empty_like(x)
    for i in range(len(x)):
        img = x[i]
        if np.random.rand() < 0.5:
            img = img[:, :, ::-1]
        dy, dx = np.random.randint(-2, 3, size=2)
        out[i] = np.roll(img, (int(dy), int(dx)), axis=(1, 2))
        acc = 0
        for v in range(60):  # stands in for per-sample Python bookkeeping
            acc += v
    return out, y


@functools.lru_cache(maxsize=2)
def _images(n: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8), np.arange(n)


class _Run:
    def __init__(self, fn, close=None):  # noqa: ANN001
        self._fn, self._close = fn, close

    def __call__(self) -> int:
        return self._fn()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


# --------------------------------------------------------------------------------------------
# batchup (ours or 0.2.3): serial, process pool, thread pool
# --------------------------------------------------------------------------------------------


def batchup_epoch(workload: str, n: int, pool: str | None, buffer: int = 8) -> _Run:
    """One epoch of W3 or W4 with batchup: serial (``pool=None``) or through a pool.

    ``buffer`` is the ``batch_buffer_size``; a larger one lets the process pool group more
    batches per message (see "Chunks" in ``docs/work_pool.md``).
    """
    from batchup import data_source, work_pool

    X, y = _images(n, 32 if workload == "W3" else 96)
    batch = W3_BATCH if workload == "W3" else W4_BATCH
    ds = data_source.ArrayDataSource([X, y])
    if workload == "W3":
        ds = ds.map(w3_augment)
    close = None
    if pool == "process":
        p = work_pool.WorkerProcessPool(processes=WORKERS)
        ds = p.parallel_data_source(ds, batch_buffer_size=buffer)
        close = getattr(p, "close", None)
    rs = np.random.RandomState(SEED)

    def run() -> int:
        total = 0
        for xb, _ in ds.batch_iterator(batch_size=batch, shuffle=rs):
            total += xb.nbytes if workload == "W4" else 1
        return total // 1_000_000 if workload == "W4" else total

    return _Run(run, close)


def _ceiling_worker(conn, rank: int, n: int) -> None:  # noqa: ANN001
    """Child of :func:`ceiling_w3`: augments every other batch of each epoch it is told."""
    X, y = (a.copy() for a in _images(n, 32))  # its own copy of the data
    while True:
        seed = conn.recv()
        if seed is None:
            return
        order = np.random.RandomState(seed).permutation(len(X))
        count = 0
        for k, i in enumerate(range(0, len(X), W3_BATCH)):
            if k % WORKERS == rank:
                idx = order[i : i + W3_BATCH]
                w3_augment(X[idx], y[idx])
                count += 1
        conn.send(count)


def ceiling_w3(n: int) -> _Run:
    """W3's ceiling: 2 forked processes, no IPC but an epoch seed in and a count out.

    Each process augments half of the epoch's batches from its own copy of the data, so
    the row shows what this machine allows for the workload with 2 processes.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    rs = np.random.RandomState(SEED)
    conns, procs = [], []
    for rank in range(WORKERS):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_ceiling_worker, args=(child, rank, n), daemon=True)
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)

    def run() -> int:
        seed = int(rs.randint(1 << 31))
        for conn in conns:
            conn.send(seed)
        return sum(conn.recv() for conn in conns)

    def close() -> None:
        for conn in conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()

    return _Run(run, close)


def _augment_cpu(args: tuple[int, int]) -> float:
    """Child of :func:`w3_contention`: CPU seconds per batch of ``w3_augment``."""
    n, reps = args
    X, y = _images(n, 32)
    rs = np.random.RandomState(reps)
    start = time.process_time()
    for _ in range(reps):
        idx = rs.randint(0, n, size=W3_BATCH)
        w3_augment(X[idx], y[idx])
    return (time.process_time() - start) / reps


def w3_contention(n: int, rounds: int, reps: int = 100) -> tuple[float, float]:
    """CPU ms per W3 batch in a process running alone vs. two running at once.

    CPU time, not wall time: it shows how much slower each core computes the
    augmentation while the other core is busy too, whatever any pool does.
    Returns the medians over alternated ``rounds``.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    alone, both = [], []
    with ctx.Pool(1) as one, ctx.Pool(2) as two:
        one.map(_augment_cpu, [(n, 5)])
        two.map(_augment_cpu, [(n, 5)] * 2)
        for _ in range(rounds):
            alone.append(one.map(_augment_cpu, [(n, reps)])[0])
            both.extend(two.map(_augment_cpu, [(n, reps)] * 2))
    return 1e3 * float(np.median(alone)), 1e3 * float(np.median(both))


def floor_w4(n: int) -> _Run:
    """The floor of W4: permutation and an in-process gather of each batch."""
    X, y = _images(n, 96)
    rs = np.random.RandomState(SEED)

    def run() -> int:
        total = 0
        order = rs.permutation(len(X))
        for i in range(0, len(X), W4_BATCH):
            idx = order[i : i + W4_BATCH]
            xb, _ = X[idx], y[idx]
            total += xb.nbytes
        return total // 1_000_000

    return _Run(run)


class _TorchBatches:
    """A map-style dataset whose items are whole batches (index arrays in, arrays out)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, augment: bool) -> None:
        self.X, self.y, self.augment = X, y, augment

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, idx):  # noqa: ANN001
        import torch

        idx = np.asarray(idx)
        x, y = self.X[idx], self.y[idx]
        if self.augment:
            x, y = w3_augment(x, y)
        return torch.from_numpy(x), torch.from_numpy(y)


def torch_epoch(workload: str, n: int) -> _Run:
    """One epoch through ``DataLoader(num_workers=2)``, one batch per worker task."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    X, y = _images(n, 32 if workload == "W3" else 96)
    batch = W3_BATCH if workload == "W3" else W4_BATCH
    g = torch.Generator().manual_seed(SEED)
    sampler = BatchSampler(RandomSampler(range(n), generator=g), batch, drop_last=False)
    loader = DataLoader(
        _TorchBatches(X, y, workload == "W3"),
        sampler=sampler,
        batch_size=None,
        num_workers=WORKERS,
        persistent_workers=True,
        prefetch_factor=4,
    )

    def run() -> int:
        total = 0
        for xb, _ in loader:
            total += xb.numel() if workload == "W4" else 1
        return total // 1_000_000 if workload == "W4" else total

    def close() -> None:
        it = getattr(loader, "_iterator", None)
        if it is not None:
            it._shutdown_workers()

    return _Run(run, close)


def w5_sorts(n_tasks: int, pool: str | None) -> _Run:
    """Sort ``n_tasks`` arrays of 2**20 float64, serially or in a 2-thread batchup pool."""
    from batchup import work_pool

    rng = np.random.default_rng(0)
    arrays = [rng.random(W5_SORT) for _ in range(4)]
    tasks = [(np.sort, (arrays[k % 4],)) for k in range(n_tasks)]
    if pool is None:

        def run() -> int:
            for fn, args in tasks:
                fn(*args)
            return n_tasks

        return _Run(run)
    p = work_pool.WorkerThreadPool(processes=WORKERS)

    def run_pool() -> int:
        n = 0
        for _ in p.work_stream(iter(tasks), task_buffer_size=4).retrieve_iter():
            n += 1
        return n

    return _Run(run_pool, getattr(p, "close", None))


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def w3(ctx: Context) -> Table:
    n = ctx.size(12_800, 3_200)
    serial = Impl("serial: ds.map(augment).batch_iterator", batchup_epoch,
                  dict(workload="W3", n=n, pool=None), floor=True)
    ours = Impl("batchup WorkerProcessPool(2)", batchup_epoch,
                dict(workload="W3", n=n, pool="process"))
    old = Impl("batchup 0.2.3 WorkerProcessPool(2)", batchup_epoch,
               dict(workload="W3", n=n, pool="process"), env=BATCHUP_023)
    torch = Impl("torch DataLoader(num_workers=2)", torch_epoch, dict(workload="W3", n=n),
                 requires=("torch",))
    ours32 = Impl("batchup WorkerProcessPool(2), batch_buffer_size=32", batchup_epoch,
                  dict(workload="W3", n=n, pool="process", buffer=32))
    ceiling = Impl("ceiling: 2 forked processes, no IPC", ceiling_w3, dict(n=n))
    table, ratios = compare(
        ctx,
        f"W3 — GIL-holding augmentation, {n:,} uint8 3×32×32 images, batch {W3_BATCH}, "
        f"{WORKERS} workers",
        "batches/s",
        [serial, ours, ours32, old, torch, ceiling],
        repeats=5,
        min_time=0.0,
    )
    table.notes.append(target_note(ratios, ours.label, 1.7))
    if ours.label in ratios and ceiling.label in ratios:
        table.notes.append(
            f"{ours.label} reaches {ratios[ours.label] / ratios[ceiling.label]:.0%} "
            "of the ceiling row."
        )
    alone, both = w3_contention(n, rounds=ctx.rounds(9))
    table.notes.append(
        f"CPU per batch of the augmentation (no pool, median of alternated rounds): "
        f"{alone:.2f} ms in a process running alone, {both:.2f} ms in each of two running "
        f"at once (×{both / alone:.2f})."
    )
    return table


def w4(ctx: Context) -> Table:
    n = ctx.size(4_096, 1_024)
    floor = Impl("floor: permutation + in-process X[idx]", floor_w4, dict(n=n), floor=True)
    ours = Impl("batchup WorkerProcessPool(2)", batchup_epoch,
                dict(workload="W4", n=n, pool="process"))
    old = Impl("batchup 0.2.3 WorkerProcessPool(2)", batchup_epoch,
               dict(workload="W4", n=n, pool="process"), env=BATCHUP_023)
    torch = Impl("torch DataLoader(num_workers=2)", torch_epoch, dict(workload="W4", n=n),
                 requires=("torch",))
    table, ratios = compare(
        ctx,
        f"W4 — large batches, {W4_BATCH}×3×96×96 uint8 (7 MB), trivial work, {WORKERS} workers",
        "MB/s",
        [floor, ours, old, torch],
        repeats=5,
        min_time=0.3,
    )
    table.notes.append(target_note(ratios, ours.label, 0.7))
    return table


def w5(ctx: Context) -> Table:
    n_tasks = ctx.size(64, 16)
    serial = Impl("serial np.sort loop", w5_sorts, dict(n_tasks=n_tasks, pool=None), floor=True)
    ours = Impl("batchup WorkerThreadPool(2)", w5_sorts, dict(n_tasks=n_tasks, pool="thread"))
    old = Impl("batchup 0.2.3 WorkerThreadPool(2)", w5_sorts,
               dict(n_tasks=n_tasks, pool="thread"), env=BATCHUP_023)
    table, ratios = compare(
        ctx,
        f"W5 — GIL-releasing sorts of 2**20 float64, {WORKERS} threads",
        "sorts/s",
        [serial, ours, old],
        repeats=5,
        min_time=0.3,
    )
    table.notes.append(target_note(ratios, ours.label, 1.7))
    return table


WORKLOADS = {"W3": w3, "W4": w4, "W5": w5}


def main() -> None:
    ctx = Context()
    for fn in WORKLOADS.values():
        print(fn(ctx).render(), flush=True)


if __name__ == "__main__":
    main()

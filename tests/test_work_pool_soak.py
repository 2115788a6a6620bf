"""batchup.work_pool soak: 20,000 small batches through a process pool with stable memory."""

import os

import numpy as np
import psutil

from batchup import data_source, work_pool


def _rss():
    return psutil.Process().memory_info().rss


def _folder_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def test_soak_20000_batches_stable_memory():
    # 32 x 256 float32 = 32 KiB per batch: large enough to travel through slots.
    X = np.random.RandomState(0).rand(4096, 256).astype(np.float32)
    ds = data_source.ArrayDataSource([X], repeats=-1)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=16)
        it = par.batch_iterator(32, shuffle=np.random.RandomState(1))
        total = 0.0
        for k in range(20_000):
            (batch,) = next(it)
            total += float(batch[0, 0])
            if k == 2_000:
                rss_early = _rss()
                folder = pool._state.folder.path
                files_early = len(os.listdir(folder))
                bytes_early = _folder_bytes(folder)
        rss_late = _rss()
        files_late = len(os.listdir(folder))
        bytes_late = _folder_bytes(folder)
        ring = pool._state.ring
        it.close()
    assert total > 0
    # Slots are reused: their number is bounded by the buffer, not the batch count.
    assert ring.created <= 16 + 2 + 2 + 2
    assert files_late == files_early
    assert bytes_late == bytes_early
    assert rss_late - rss_early < 32 * 1024 * 1024

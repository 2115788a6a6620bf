"""Storage-aware shuffling (``ChunkShuffle``): chunks in a seeded order, samples shuffled
within windows of chunks; resumable, shardable, the same on every storage kind."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchup import data_source, sampling, work_pool
from batchup._core import sources
from batchup._core.chunked import ChunkedOrder, default_chunk_size, storage_chunk_rows
from batchup._core.order import FeistelPermutation
from batchup.data_source import ChunkShuffle
from batchup.testing import assert_resumes, assert_shards_cover


def _pass(order: ChunkedOrder, p: int = 0) -> np.ndarray:
    return order.take(p, 0, order.length)


def _windows(length: int, chunk: int, window: int, seq: np.ndarray) -> list[np.ndarray]:
    """The pass cut at window boundaries, found from the chunks the samples belong to."""
    chunk_of = seq // chunk
    out, start = [], 0
    while start < length:
        seen: set = set()
        stop = start
        while stop < length and (chunk_of[stop] in seen or len(seen) < window):
            seen.add(chunk_of[stop])
            stop += 1
        out.append(seq[start:stop])
        start = stop
    return out


# ---------------------------------------------------------------------------- the order itself


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 300), chunk=st.integers(1, 17), window=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), p=st.integers(0, 3))
def test_a_pass_is_a_permutation_of_whole_chunks_in_windows(length, chunk, window, seed, p):
    order = ChunkedOrder(ChunkShuffle(seed, chunk_size=chunk, window=window), length)
    seq = _pass(order, p)
    assert sorted(seq.tolist()) == list(range(length))
    # Window by window: exactly `window` whole chunks (the last window may have
    # fewer), so samples of one chunk are never more than a window apart.
    per = window * chunk
    chunk_of = seq // chunk
    first_seen = {}
    for pos, c in enumerate(chunk_of.tolist()):
        first_seen.setdefault(c, pos)
        assert pos - first_seen[c] < per
    for w, rows in enumerate(_windows(length, chunk, window, seq)):
        chunks = np.unique(rows // chunk)
        assert len(chunks) <= window
        sizes = np.minimum((chunks + 1) * chunk, length) - chunks * chunk
        assert sizes.sum() == len(rows), f"window {w} holds part of a chunk"


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 300), chunk=st.integers(1, 17), window=st.integers(1, 6),
       seed=st.integers(0, 1000), data=st.data())
def test_any_range_of_a_pass_is_the_same_slice_of_the_whole_pass(length, chunk, window, seed,
                                                                  data):
    shuffle = ChunkShuffle(seed, chunk_size=chunk, window=window)
    whole = _pass(ChunkedOrder(shuffle, length), 1)
    start = data.draw(st.integers(0, length - 1))
    stop = data.draw(st.integers(start, length))
    # A fresh order (nothing cached) computes the range on its own.
    got = ChunkedOrder(shuffle, length).take(1, start, stop)
    np.testing.assert_array_equal(got, whole[start:stop])


def test_passes_differ_and_seeds_differ():
    a = _pass(ChunkedOrder(ChunkShuffle(1, chunk_size=4, window=4), 400), 0)
    b = _pass(ChunkedOrder(ChunkShuffle(1, chunk_size=4, window=4), 400), 1)
    c = _pass(ChunkedOrder(ChunkShuffle(2, chunk_size=4, window=4), 400), 0)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_a_subset_is_chunked_by_its_runs_of_entries():
    values = np.arange(100, 200, 2)  # 50 entries
    order = ChunkedOrder(ChunkShuffle(3, chunk_size=5, window=2), 50, values)
    seq = _pass(order)
    assert sorted(seq.tolist()) == values.tolist()
    for rows in _windows(50, 5, 2, (seq - 100) // 2):
        assert len(np.unique(rows // 5)) <= 2


def test_the_chunk_order_is_a_keyed_cipher_above_two_to_the_18_chunks():
    # 2^18 + 1 chunks of 16 rows, the last one short: the cipher path, with
    # the short chunk found through the cipher's inverse.
    chunk, window = 16, 64
    length = ((1 << 18) + 1) * chunk - 5
    order = ChunkedOrder(ChunkShuffle(7, chunk_size=chunk, window=window), length)
    assert order._chunks._cipher
    seen = np.zeros(length, dtype=np.int8)
    per = window * chunk
    for start in range(0, length, per):
        rows = order.take(0, start, min(start + per, length))
        seen[rows] += 1
    assert (seen == 1).all()


def test_a_far_batch_of_a_huge_pass_costs_a_window():
    order = ChunkedOrder(ChunkShuffle(0, chunk_size=1000, window=8), 10**10)
    rows = order.take(3, 10**10 - 4096, 10**10 - 4000)
    assert len(rows) == 96 and rows.min() >= 0 and rows.max() < 10**10
    assert len(np.unique(rows // 1000)) <= 8


def test_feistel_inverse_undoes_the_permutation():
    for n in (5, 1000, 12345, (1 << 20) + 3):
        perm = FeistelPermutation(n, np.arange(11, 17, dtype=np.uint64))
        x = np.arange(min(n, 50_000))
        np.testing.assert_array_equal(perm.inverse(perm(x)), x)


def test_the_reduced_randomness_is_what_the_docs_say():
    # docs/storage.md: with chunks of C and windows of K chunks, two samples of
    # one chunk are at most K*C - 1 positions apart, a batch of B draws from at
    # most K chunks (+K at a window boundary), and a sample can move anywhere.
    n, chunk, window, batch = 8192, 32, 8, 64
    seq = _pass(ChunkedOrder(ChunkShuffle(5, chunk_size=chunk, window=window), n))
    where = np.empty(n, dtype=np.int64)
    where[seq] = np.arange(n)
    spread = where.reshape(-1, chunk).max(axis=1) - where.reshape(-1, chunk).min(axis=1)
    assert spread.max() < window * chunk
    chunks_per_batch = [len(np.unique(b // chunk)) for b in seq.reshape(-1, batch)]
    assert max(chunks_per_batch) <= 2 * window
    moved = np.abs(where - np.arange(n))
    assert moved.max() > n // 2


# ------------------------------------------------------------------- through data sources


def test_every_sample_once_per_epoch_and_every_batch_from_a_window():
    X = np.arange(1000)
    ds = data_source.ArrayDataSource([X])
    batches = [b[0] for b in ds.batch_iterator(50, shuffle=ChunkShuffle(9, chunk_size=25,
                                                                          window=4))]
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    # 100 rows per window, 50 per batch: each batch lies in one window of 4 chunks.
    assert all(len(np.unique(b // 25)) <= 4 for b in batches)


def test_default_chunk_size_comes_from_the_storage_or_a_megabyte():
    tables = pytest.importorskip("tables")
    assert default_chunk_size([np.zeros((10, 256), np.float32)]) == 1024
    assert default_chunk_size([np.zeros((10, 10 << 20), np.uint8)]) == 1
    import tempfile

    with tempfile.TemporaryDirectory() as d, tables.open_file(f"{d}/a.h5", "w") as f:
        node = f.create_carray(f.root, "x", obj=np.zeros((100, 3)), chunkshape=(7, 3))
        assert storage_chunk_rows(node) == 7
        assert default_chunk_size([node, np.zeros(100)]) == 7
        labels = f.create_carray(f.root, "y", obj=np.zeros(100), chunkshape=(50,))
        assert default_chunk_size([node, labels]) == 7  # the samples' chunking


def test_chunk_size_auto_is_resolved_from_the_arrays_and_named_in_the_state():
    X = np.zeros((64, 4), dtype=np.float32)
    ds = data_source.ArrayDataSource([X])
    it = ds.batch_iterator(8, shuffle=ChunkShuffle(1))
    next(it)
    state = it.get_state()
    assert "chunks auto window 16" in state["fingerprint"]["shuffle"]
    other = ds.batch_iterator(8, shuffle=ChunkShuffle(1, window=4))
    with pytest.raises(ValueError, match="shuffle"):
        other.set_state(state)


def test_chunk_shuffle_resumes_at_every_step():
    X = np.arange(230) * 3
    ds = data_source.ArrayDataSource([X], repeats=3)
    assert_resumes(lambda: ds.batch_iterator(16, shuffle=ChunkShuffle(4, chunk_size=10,
                                                                        window=3)))


@pytest.mark.parametrize("remainder", ["pad", "drop", "even"])
def test_chunk_shuffle_shards_cover_an_epoch(remainder):
    ds = data_source.ArrayDataSource([np.arange(203)])
    shuffle = ChunkShuffle(2, chunk_size=8, window=3)
    assert_shards_cover(
        lambda r: ds.batch_indices_iterator(
            10, shuffle=shuffle, shard=data_source.ShardSpec(r, 3, remainder)),
        3, range(203), remainder, batch_size=10)


def test_composite_components_chunk_their_own_arrays():
    a = data_source.ArrayDataSource([np.arange(60)])
    b = data_source.ArrayDataSource([np.arange(1000, 1090)])
    comp = data_source.CompositeDataSource([a, b])
    batches = list(comp.batch_iterator(10, shuffle=ChunkShuffle(1, chunk_size=5, window=2)))
    assert sorted(np.concatenate([x for x, _ in batches]).tolist()) == list(range(60))
    assert all(len(np.unique(x // 5)) <= 2 for x, _ in batches)


def test_serial_threads_and_processes_give_the_same_batches():
    X = np.arange(600, dtype=np.float32).reshape(200, 3)
    ds = data_source.ArrayDataSource([X, np.arange(200)])
    shuffle = ChunkShuffle(6, chunk_size=16, window=2)
    want = [tuple(b) for b in ds.batch_iterator(20, shuffle=shuffle, threads=0)]
    threaded = list(ds.batch_iterator(20, shuffle=shuffle, threads=2))
    with work_pool.WorkerProcessPool(2) as pool:
        par = list(pool.parallel_data_source(ds, batch_buffer_size=4).batch_iterator(
            20, shuffle=shuffle))
    for got in (threaded, par):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            for a, b in zip(g, w, strict=True):
                np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ on storage


def _storage(kind, tmp_path, X, chunk=8):
    if kind == "memmap":
        np.save(tmp_path / "x.npy", X)
        return np.load(tmp_path / "x.npy", mmap_mode="r"), None
    if kind == "tables":
        tables = pytest.importorskip("tables")
        f = tables.open_file(str(tmp_path / "x.h5"), "w")
        node = f.create_carray(f.root, "x", obj=X, chunkshape=(chunk, X.shape[1]))
        f.flush()  # process workers reopen the file
        return node, f
    if kind == "h5py":
        h5py = pytest.importorskip("h5py")
        f = h5py.File(tmp_path / "x.h5", "w")
        dset = f.create_dataset("x", data=X, chunks=(chunk, X.shape[1]))
        f.flush()  # process workers reopen the file
        return dset, f
    if kind == "zarr":
        zarr = pytest.importorskip("zarr")
        z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, dtype=X.dtype,
                            chunks=(chunk, X.shape[1]))
        z[...] = X
        return z, None
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(chunk, X.shape[1])), None


@pytest.mark.parametrize("kind", ["memmap", "tables", "h5py", "zarr", "dask"])
def test_storage_gives_the_in_memory_batches_and_reads_each_chunk_once(tmp_path, kind,
                                                                       monkeypatch):
    X = np.arange(203 * 5, dtype=np.float32).reshape(203, 5)
    stored, handle = _storage(kind, tmp_path, X)
    try:
        reads = []
        real = sources.read_rows

        def counting(array, index, out=None):
            if array is stored:
                reads.append(index)
            return real(array, index, out=out)

        monkeypatch.setattr(sources, "read_rows", counting)
        shuffle = ChunkShuffle(3, window=4)  # chunk size from the storage (8) or ~1 MB
        want = list(data_source.ArrayDataSource([X, np.arange(203)]).batch_iterator(
            16, shuffle=dataclasses.replace(shuffle, chunk_size=default_chunk_size([stored]))))
        got = list(data_source.ArrayDataSource([stored, np.arange(203)]).batch_iterator(
            16, shuffle=shuffle, threads=0))
        assert len(got) == len(want)
        for (a, i), (b, j) in zip(got, want, strict=True):
            np.testing.assert_array_equal(i, j)
            np.testing.assert_array_equal(a, b)
        if kind != "memmap":
            # Whole chunks, read once each: 203 rows in all.
            assert all(isinstance(r, slice) for r in reads)
            assert sum(r.stop - r.start for r in reads) == 203
    finally:
        if handle is not None:
            handle.close()


def test_storage_through_a_process_pool_matches_serial(tmp_path):
    X = np.arange(300 * 4, dtype=np.float32).reshape(300, 4)
    stored, f = _storage("h5py", tmp_path, X, chunk=10)
    with f:
        ds = data_source.ArrayDataSource([stored])
        shuffle = ChunkShuffle(8, window=3)
        want = [b[0] for b in ds.batch_iterator(25, shuffle=shuffle, threads=0)]
        with work_pool.WorkerProcessPool(2) as pool:
            got = [b[0] for b in pool.parallel_data_source(ds, batch_buffer_size=4)
                   .batch_iterator(25, shuffle=shuffle)]
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8"])
def test_bad_chunk_size_is_refused(bad):
    with pytest.raises(ValueError, match=rf"chunk_size must be .* not {bad!r}"):
        ChunkShuffle(1, chunk_size=bad)


@pytest.mark.parametrize("bad", [0, -1, None, 1.5])
def test_bad_window_is_refused(bad):
    with pytest.raises(ValueError, match=rf"window must be a positive integer, not {bad!r}"):
        ChunkShuffle(1, window=bad)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        ChunkShuffle(-1, chunk_size=4)


def test_weighted_sampling_refuses_chunk_shuffle_at_construction():
    ds = data_source.ArrayDataSource(
        [np.arange(10)], sampler=sampling.WeightedSampler(np.ones(10)))
    with pytest.raises(ValueError, match="does not apply to weighted sampling"):
        ds.batch_iterator(4, shuffle=ChunkShuffle(1, chunk_size=2))


def test_a_sampler_alone_needs_an_explicit_chunk_size():
    s = sampling.StandardSampler(20)
    with pytest.raises(ValueError, match="give chunk_size"):
        s.shuffled_indices_batch_iterator(4, ChunkShuffle(1))
    it = s.shuffled_indices_batch_iterator(4, ChunkShuffle(1, chunk_size=5, window=2))
    assert sorted(np.concatenate(list(it)).tolist()) == list(range(20))


def test_state_is_small_json():
    ds = data_source.ArrayDataSource([np.arange(10**6)])
    it = ds.batch_iterator(100, shuffle=ChunkShuffle(1, chunk_size=64))
    for _ in range(5):
        next(it)
    assert len(json.dumps(it.get_state())) < 600


def test_one_source_iterated_with_different_chunk_sizes(tmp_path):
    X = np.arange(1024 * 2, dtype=np.float32).reshape(1024, 2)
    stored, f = _storage("h5py", tmp_path, X, chunk=16)
    with f:
        on_disk = data_source.ArrayDataSource([stored])
        in_memory = data_source.ArrayDataSource([X])
        for chunk in (64, 32, 64):
            shuffle = ChunkShuffle(1, chunk_size=chunk, window=16)
            for (a,), (b,) in zip(on_disk.batch_iterator(64, shuffle=shuffle, threads=0),
                                  in_memory.batch_iterator(64, shuffle=shuffle), strict=True):
                np.testing.assert_array_equal(a, b)

"""batchup.work_pool: pools, work streams and parallel data sources (behaviour and input checks).

Fault handling, lifecycle and start methods are in ``test_work_pool_faults.py``;
the long soak is in ``test_work_pool_soak.py``.
"""

import doctest
import importlib
import mmap
import os
import subprocess
import sys
import textwrap

import _pool_helpers as helpers
import numpy as np
import pytest

from batchup import data_source, sampling, work_pool
from batchup._core.plans import IndexBatch
from batchup._pool import shm
from batchup._pool.cpu import available_cpus

POOLS = [work_pool.WorkerThreadPool, work_pool.WorkerProcessPool]


@pytest.fixture(scope="module")
def proc_pool():
    with work_pool.WorkerProcessPool(2, seed=11) as pool:
        yield pool


@pytest.fixture(scope="module")
def thread_pool():
    with work_pool.WorkerThreadPool(2, seed=11) as pool:
        yield pool


@pytest.fixture(params=["threads", "processes"])
def pool(request, proc_pool, thread_pool):
    return proc_pool if request.param == "processes" else thread_pool


def _X(n=53):
    rs = np.random.RandomState(0)
    return rs.randint(0, 255, size=(n, 3, 4, 4)).astype(np.uint8), np.arange(n) * 10


def _assert_same_batches(got, expected):
    got, expected = list(got), list(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=False):
        assert type(g) is type(e)
        assert len(g) == len(e)
        for a, b in zip(g, e, strict=False):
            np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- input checks


@pytest.mark.parametrize("cls", POOLS)
def test_processes_negative_rejected(cls):
    with pytest.raises(ValueError, match="processes.*-1"):
        cls(processes=-1)


@pytest.mark.parametrize("cls", POOLS)
def test_processes_float_rejected(cls):
    with pytest.raises(TypeError, match="processes.*1.5"):
        cls(processes=1.5)


@pytest.mark.parametrize("cls", POOLS)
def test_processes_string_rejected(cls):
    with pytest.raises(TypeError, match="processes.*'2'"):
        cls(processes="2")


@pytest.mark.parametrize("cls", POOLS)
def test_processes_bool_rejected(cls):
    with pytest.raises(TypeError, match="processes.*True"):
        cls(processes=True)


@pytest.mark.parametrize("cls", POOLS)
def test_processes_zero_means_available_cpus(cls):
    with cls(processes=0) as pool:
        assert pool.processes == available_cpus() >= 1


def test_processes_numpy_integer_accepted():
    with work_pool.WorkerThreadPool(np.int64(3)) as pool:
        assert pool.processes == 3


@pytest.mark.parametrize("cls", POOLS)
def test_seed_negative_rejected(cls):
    with pytest.raises(ValueError, match="seed.*-3"):
        cls(1, seed=-3)


@pytest.mark.parametrize("cls", POOLS)
def test_seed_not_an_integer_rejected(cls):
    with pytest.raises(TypeError, match="seed.*1.5"):
        cls(1, seed=1.5)


def test_start_method_unknown_rejected():
    with pytest.raises(ValueError, match="start_method.*'threads'"):
        work_pool.WorkerProcessPool(1, start_method="threads")


def test_task_buffer_size_zero_rejected(thread_pool):
    with pytest.raises(ValueError, match="task_buffer_size.*0"):
        thread_pool.work_stream([(abs, (1,))], task_buffer_size=0)


def test_task_buffer_size_float_rejected(thread_pool):
    with pytest.raises(TypeError, match="task_buffer_size.*2.5"):
        thread_pool.work_stream([(abs, (1,))], task_buffer_size=2.5)


def test_batch_buffer_size_negative_rejected(thread_pool):
    ds = data_source.ArrayDataSource([np.arange(4)])
    with pytest.raises(ValueError, match="batch_buffer_size.*-2"):
        thread_pool.parallel_data_source(ds, batch_buffer_size=-2)


def test_parallel_source_needs_data_source(thread_pool):
    with pytest.raises(TypeError, match="ds must implement"):
        thread_pool.parallel_data_source([np.arange(4)])


def test_parallel_source_needs_random_access(thread_pool):
    ds = data_source.IteratorDataSource(iter([(np.arange(2),)]))
    with pytest.raises(
        TypeError, match="ds must be random access; it is of type IteratorDataSource"
    ):
        thread_pool.parallel_data_source(ds)


def test_parallel_source_needs_pool():
    ds = data_source.ArrayDataSource([np.arange(4)])
    with pytest.raises(TypeError, match="pool must be.*str"):
        work_pool.ParallelDataSource(ds, 4, "pool")


def test_work_stream_needs_pool():
    with pytest.raises(TypeError, match="worker_pool must be.*int"):
        work_pool.WorkStream(3, [(abs, (1,))])


def test_work_stream_rejects_non_iterable(thread_pool):
    with pytest.raises(TypeError, match="task_generator must be.*int"):
        thread_pool.work_stream(42)


def test_work_stream_rejects_bad_task(thread_pool):
    with pytest.raises(TypeError, match="task 1 must be a tuple"):
        thread_pool.work_stream([(abs, (1,)), "not a task"])


def test_work_stream_rejects_non_callable(thread_pool):
    with pytest.raises(TypeError, match="task 0: the first item must be callable, not 5"):
        thread_pool.work_stream([(5, (1,))])


def test_work_stream_rejects_bad_kwargs(thread_pool):
    with pytest.raises(TypeError, match="task 0: kwargs must be a dict, not 3"):
        thread_pool.work_stream([(abs, (1,), 3)])


def test_parallel_iterator_checks_batch_size_at_call(pool):
    par = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(4)]))
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        par.batch_iterator(0)


# ----------------------------------------------------------------- work streams


def test_task_formats(pool):
    tasks = [(helpers.square,), (helpers.square, (3,)), (helpers.fail_on, (4,), {"bad": -1})]
    tasks[0] = (np.zeros,)  # (fn,) called with no arguments is invalid for square
    tasks[0] = (dict,)
    out = list(pool.work_stream(tasks).retrieve_iter())
    assert out == [{}, 9, 4]


def test_args_as_list_accepted(pool):
    assert pool.work_stream([(helpers.square, [5])]).retrieve() == 25


def test_generator_function_accepted(pool):
    def tasks():
        for k in range(5):
            yield (helpers.square, (k,))

    assert list(pool.work_stream(tasks).retrieve_iter()) == [0, 1, 4, 9, 16]


def test_iterable_accepted(pool):
    assert list(pool.work_stream((helpers.square, (k,)) for k in range(3)).retrieve_iter()) == [
        0,
        1,
        4,
    ]


def test_buffer_pulls_as_specified(thread_pool):
    pulled = []

    def tasks():
        for k in range(10):
            pulled.append(k)
            yield (helpers.square, (k,))

    stream = thread_pool.work_stream(tasks(), task_buffer_size=4)
    assert len(pulled) == 4
    assert stream.retrieve() == 0
    assert len(pulled) == 5
    stream.close()


def test_results_in_task_order_despite_completion_order(pool):
    tasks = [(helpers.sleep_then, (k, 0.05 * (5 - k))) for k in range(6)]
    assert list(pool.work_stream(tasks, task_buffer_size=6).retrieve_iter()) == list(range(6))


def test_retrieve_returns_none_when_done(pool):
    stream = pool.work_stream([(helpers.square, (2,))])
    assert stream.retrieve() == 4
    assert stream.retrieve() is None


def test_lambda_tasks_on_processes(proc_pool):
    offset = 7
    tasks = [(lambda k: k + offset, (k,)) for k in range(4)]
    assert list(proc_pool.work_stream(tasks).retrieve_iter()) == [7, 8, 9, 10]


def test_structured_results_keep_their_types(pool):
    big = np.arange(10_000, dtype=np.float64)

    def make(_k):
        return {"a": (big, [big[:5], 3]), "b": data_source.ChoiceBatch(big, 1)}

    if isinstance(pool, work_pool.WorkerThreadPool):
        out = pool.work_stream([(make, (0,))]).retrieve()
    else:
        out = pool.work_stream([(make, (0,))]).retrieve()
    np.testing.assert_array_equal(out["a"][0], big)
    assert isinstance(out["a"][1], list) and out["a"][1][1] == 3
    assert isinstance(out["b"], data_source.ChoiceBatch) and out["b"].ds_index == 1
    np.testing.assert_array_equal(out["b"].sample_indices, big)


# ----------------------------------------------------------------- parallel data sources


def _sources():
    X, y = _X()
    arr = data_source.ArrayDataSource([X, y])
    sub = data_source.ArrayDataSource([X, y], indices=np.arange(3, 50, 2))
    weighted = data_source.ArrayDataSource(
        [X, y], sampler=sampling.WeightedSampler(np.linspace(1, 2, len(y)))
    )
    rep = data_source.ArrayDataSource([X[:7]], repeats=-1)
    comp = data_source.CompositeDataSource([rep, data_source.ArrayDataSource([y[:11]])], trim=False)
    choice = data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([y[:8]]), data_source.ArrayDataSource([y[20:24]])]
    )
    mapped = arr.map(lambda x, y: (x.astype(np.float32) / 2, y + 1))
    return {
        "array": arr,
        "subset": sub,
        "weighted": weighted,
        "composite_untrimmed": comp,
        "choice": choice,
        "map_lambda": mapped,
    }


@pytest.mark.parametrize("name", list(_sources()))
@pytest.mark.parametrize("shuffle", ["rs", "int", None])
def test_same_batches_as_serial(pool, name, shuffle):
    ds = _sources()[name]
    if shuffle is None and name == "weighted":
        shuffle = "rs"  # weighted samplers cannot iterate in order

    def make_shuffle():
        return {"rs": np.random.RandomState(12345), "int": 99, None: None}[shuffle]

    kwargs = {"batch_size": 5, "shuffle": make_shuffle()}
    if name in ("weighted", "composite_untrimmed"):
        n = 12
        serial = [b for b, _ in zip(ds.batch_iterator(**kwargs), range(n), strict=False)]
        par = pool.parallel_data_source(ds, batch_buffer_size=4)
        it = par.batch_iterator(batch_size=5, shuffle=make_shuffle())
        got = [b for b, _ in zip(it, range(n), strict=False)]
        it.close()
    else:
        serial = list(ds.batch_iterator(**kwargs))
        par = pool.parallel_data_source(ds, batch_buffer_size=4)
        got = list(par.batch_iterator(batch_size=5, shuffle=make_shuffle()))
    _assert_same_batches(got, serial)


def test_drop_last_forwarded(pool):
    ds = data_source.ArrayDataSource([np.arange(11)])
    par = pool.parallel_data_source(ds, batch_buffer_size=2)
    assert [len(b[0]) for b in par.batch_iterator(4, drop_last=True)] == [4, 4]
    assert par.num_batches(4, drop_last=True) == 2


def test_num_samples_and_random_access(pool):
    par = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(11)]))
    assert par.num_samples() == 11
    assert par.num_batches(4) == 3
    assert par.is_random_access is False


def test_batch_map_concat_inherited(pool):
    par = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(10.0)]))
    (out,) = par.batch_map_concat(lambda x: (x * 2,), batch_size=3)
    np.testing.assert_array_equal(out, np.arange(10.0) * 2)


def test_iteration_start_draws_buffer_from_rng(thread_pool):
    # batchup 0.2.3 (and its README) start filling the buffer when the iterator
    # is created, drawing from the RNG in the calling thread.
    rs = np.random.RandomState(0)
    par = thread_pool.parallel_data_source(
        data_source.ArrayDataSource([np.arange(10)]), batch_buffer_size=2
    )
    state = rs.get_state()[1].copy()
    it = par.batch_iterator(batch_size=3, shuffle=rs)
    assert not np.array_equal(rs.get_state()[1], state)
    it.close()


# ----------------------------------------------------------------- reproducible randomness


def _augment_runs(pool_cls, counts, augment, **pool_kwargs):
    X, y = _X(40)
    ds = data_source.ArrayDataSource([X.astype(np.float64), y]).map(augment)
    results = []
    for n in counts:
        with pool_cls(n, seed=123, **pool_kwargs) as pool:
            par = pool.parallel_data_source(ds, batch_buffer_size=6)
            results.append(list(par.batch_iterator(6, shuffle=np.random.RandomState(5))))
    return results


def test_same_augmented_batches_for_1_2_4_processes():
    runs = _augment_runs(work_pool.WorkerProcessPool, (1, 2, 4), helpers.augment_legacy)
    for other in runs[1:]:
        _assert_same_batches(other, runs[0])
    # The augmentation flipped some samples and left others alone.
    X, _ = _X(40)
    flipped = [
        not np.array_equal(x, X[label // 10]) for b in runs[0] for x, label in zip(*b, strict=False)
    ]
    assert 0.2 < np.mean(flipped) < 0.8


def test_same_task_rng_batches_for_1_2_4_processes():
    runs = _augment_runs(work_pool.WorkerProcessPool, (1, 2, 4), helpers.augment_task_rng)
    for other in runs[1:]:
        _assert_same_batches(other, runs[0])


def test_same_task_rng_batches_for_1_2_4_threads():
    runs = _augment_runs(work_pool.WorkerThreadPool, (1, 2, 4), helpers.augment_task_rng)
    for other in runs[1:]:
        _assert_same_batches(other, runs[0])


def test_threads_and_processes_agree_on_task_rng():
    (t,) = _augment_runs(work_pool.WorkerThreadPool, (2,), helpers.augment_task_rng)
    (p,) = _augment_runs(work_pool.WorkerProcessPool, (2,), helpers.augment_task_rng)
    _assert_same_batches(t, p)


def test_no_two_tasks_share_a_stream(proc_pool):
    draws = list(
        proc_pool.work_stream([(helpers.legacy_draw, (k,)) for k in range(50)]).retrieve_iter()
    )
    assert len(set(draws)) == 50
    draws = list(
        proc_pool.work_stream([(helpers.task_rng_draw, (k,)) for k in range(50)]).retrieve_iter()
    )
    assert len(set(draws)) == 50


def test_int_shuffle_seed_repeats_augmentation(pool):
    X, y = _X(30)
    ds = data_source.ArrayDataSource([X.astype(np.float64), y]).map(helpers.augment_task_rng)
    par = pool.parallel_data_source(ds, batch_buffer_size=3)
    first = list(par.batch_iterator(7, shuffle=2024))
    again = list(par.batch_iterator(7, shuffle=2024))
    other = list(par.batch_iterator(7, shuffle=2025))
    _assert_same_batches(again, first)
    assert not np.array_equal(other[0][0], first[0][0])


def test_successive_iterations_differ(pool):
    X, y = _X(30)
    ds = data_source.ArrayDataSource([X.astype(np.float64), y]).map(helpers.augment_task_rng)
    par = pool.parallel_data_source(ds, batch_buffer_size=3)
    a = list(par.batch_iterator(30))
    b = list(par.batch_iterator(30))
    assert not np.array_equal(a[0][0], b[0][0])


def test_user_shuffle_rng_not_drawn_extra(pool):
    X, y = _X(30)
    ds = data_source.ArrayDataSource([X.astype(np.float64), y]).map(helpers.augment_task_rng)
    rs_serial, rs_par = np.random.RandomState(8), np.random.RandomState(8)
    list(data_source.ArrayDataSource([X, y]).batch_iterator(7, shuffle=rs_serial))
    list(pool.parallel_data_source(ds).batch_iterator(7, shuffle=rs_par))
    assert rs_serial.randint(1 << 30) == rs_par.randint(1 << 30)


def test_task_rng_outside_a_task_is_a_generator():
    assert isinstance(work_pool.task_rng(), np.random.Generator)


# ----------------------------------------------------------------- chunked tasks


def test_chunk_size_rejected_when_not_positive_int(pool):
    with pytest.raises(ValueError, match="tasks_per_chunk"):
        pool.work_stream([(helpers.square, (1,))], tasks_per_chunk=0)
    with pytest.raises(TypeError, match="tasks_per_chunk"):
        pool.work_stream([(helpers.square, (1,))], tasks_per_chunk=1.5)
    with pytest.raises(ValueError, match="batches_per_chunk"):
        pool.parallel_data_source(data_source.ArrayDataSource([np.arange(3)]), 4, -1)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8])
def test_chunked_work_stream_keeps_task_order(pool, chunk):
    tasks = [(helpers.square, (k,)) for k in range(23)]
    got = list(pool.work_stream(tasks, task_buffer_size=6, tasks_per_chunk=chunk).retrieve_iter())
    assert got == [k * k for k in range(23)]


@pytest.mark.parametrize("chunk", [2, 3, 4])
def test_chunked_parallel_source_same_batches_as_serial(proc_pool, chunk):
    X, y = _X(53)
    ds = data_source.ArrayDataSource([X, y])
    par = proc_pool.parallel_data_source(ds, batch_buffer_size=6, batches_per_chunk=chunk)
    got = list(par.batch_iterator(5, shuffle=np.random.RandomState(3)))
    _assert_same_batches(got, ds.batch_iterator(5, shuffle=np.random.RandomState(3)))


def test_chunks_group_tasks_into_one_message(proc_pool):
    stream = proc_pool.work_stream(
        [(helpers.square, (k,)) for k in range(20)], task_buffer_size=8, tasks_per_chunk=3
    )
    pending = list(stream._pending)
    # 8 slots of buffer hold two chunks of 3; the rest waits for room.
    assert len(pending) == 6
    assert len({id(h.chunk) for h in pending}) == 2
    assert list(stream.retrieve_iter()) == [k * k for k in range(20)]


def _chunked_augment_runs(augment, configs):
    X, y = _X(40)
    ds = data_source.ArrayDataSource([X.astype(np.float64), y]).map(augment)
    results = []
    for n, chunk in configs:
        with work_pool.WorkerProcessPool(n, seed=123) as pool:
            par = pool.parallel_data_source(ds, batch_buffer_size=6, batches_per_chunk=chunk)
            results.append(list(par.batch_iterator(6, shuffle=np.random.RandomState(5))))
    return results


@pytest.mark.parametrize("augment", [helpers.augment_legacy, helpers.augment_task_rng])
def test_chunking_keeps_per_batch_random_streams(augment):
    # The same augmented batches for every chunk size and number of workers.
    configs = [(1, 1), (1, 3), (2, 2), (4, 1), (4, 4), (2, None)]
    runs = _chunked_augment_runs(augment, configs)
    for other in runs[1:]:
        _assert_same_batches(other, runs[0])


def test_chunked_process_batches_match_thread_batches():
    (p,) = _chunked_augment_runs(helpers.augment_task_rng, [(2, 3)])
    (t,) = _augment_runs(work_pool.WorkerThreadPool, (2,), helpers.augment_task_rng)
    _assert_same_batches(p, t)


def test_auto_chunks_grow_for_short_tasks_only():
    X = np.arange(400, dtype=np.float64)
    ds = data_source.ArrayDataSource([X])
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=16)
        it = par.batch_iterator(4)
        # Nothing timed yet: one task per message.
        assert len({id(h.chunk) for h in it._stream._pending}) == 16
        list(it)
        assert par._timer.per_task is not None
        # Short tasks, timed: chunks of up to 16 // (2 * 2) = 4 batches.
        it = par.batch_iterator(4)
        assert len({id(h.chunk) for h in it._stream._pending}) == 4
        _assert_same_batches(list(it), ds.batch_iterator(4))
        # Long tasks are never grouped.
        par._timer.per_task = 1.0
        it = par.batch_iterator(4)
        assert len({id(h.chunk) for h in it._stream._pending}) == 16
        it.close()


def test_chunk_frees_each_result_before_the_next_task():
    # Two large results alive at once would grow the worker's heap, and malloc would then
    # hand every task fresh (page-faulting) memory.
    with work_pool.WorkerProcessPool(1) as pool:
        tasks = [(helpers.previous_result_alive, (k,)) for k in range(12)]
        out = list(pool.work_stream(tasks, task_buffer_size=12, tasks_per_chunk=4).retrieve_iter())
    assert [int(big[0]) for _, big in out] == list(range(12))
    assert not any(bool(alive[0]) for alive, _ in out)


def test_thread_pools_accept_and_ignore_chunk_size(thread_pool):
    stream = thread_pool.work_stream(
        [(helpers.square, (k,)) for k in range(10)], task_buffer_size=4, tasks_per_chunk=2
    )
    assert list(stream.retrieve_iter()) == [k * k for k in range(10)]


def test_chunked_slots_stay_bounded():
    X = np.arange(400 * 1024, dtype=np.float32).reshape(400, 1024)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(
            data_source.ArrayDataSource([X]), batch_buffer_size=6, batches_per_chunk=2
        )
        for _ in range(5):
            for (b,) in par.batch_iterator(8):
                assert b.shape == (8, 1024)
        assert pool._state.ring.created <= 6 + 2 + 2 + 2


# ----------------------------------------------------------------- shared memory


def test_process_batches_view_shared_memory(proc_pool):
    X = np.arange(64 * 1024, dtype=np.float64).reshape(256, 256)
    par = proc_pool.parallel_data_source(data_source.ArrayDataSource([X]), batch_buffer_size=2)
    (batch,) = next(iter(par.batch_iterator(16)))
    lease = batch.base
    assert isinstance(lease, np.ndarray) and not lease.flags.owndata
    assert isinstance(getattr(lease.base, "obj", lease.base), mmap.mmap)
    np.testing.assert_array_equal(batch, X[:16])
    batch[:] = -1  # batches are writable and belong to the user


def test_kept_batches_are_not_overwritten(proc_pool):
    X = np.arange(200 * 512, dtype=np.float32).reshape(200, 512)
    par = proc_pool.parallel_data_source(data_source.ArrayDataSource([X]), batch_buffer_size=2)
    kept = list(par.batch_iterator(8, shuffle=np.random.RandomState(1)))
    serial = list(
        data_source.ArrayDataSource([X]).batch_iterator(8, shuffle=np.random.RandomState(1))
    )
    _assert_same_batches(kept, serial)


def test_views_keep_slot_alive(proc_pool):
    X = np.arange(100 * 512, dtype=np.float32).reshape(100, 512)
    par = proc_pool.parallel_data_source(data_source.ArrayDataSource([X]), batch_buffer_size=2)
    views = []
    for (b,) in par.batch_iterator(10):
        views.append(b[1:3, ::2][:, 1:])  # a view of a view; the batch itself is dropped
    for k, v in enumerate(views):
        np.testing.assert_array_equal(v, X[10 * k + 1 : 10 * k + 3, ::2][:, 1:])


def test_slots_are_reused_not_accumulated():
    X = np.arange(400 * 1024, dtype=np.float32).reshape(400, 1024)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(data_source.ArrayDataSource([X]), batch_buffer_size=3)
        for _ in range(5):
            for (b,) in par.batch_iterator(8):
                assert b.shape == (8, 1024)
        ring = pool._state.ring
        assert 4 <= ring.created <= 3 + 2 + 2 + 2


def _large_sources():
    """Array sources whose batches (>= 16 KiB) take the in-place gather in workers."""
    rs = np.random.RandomState(3)
    X = rs.randint(0, 255, size=(120, 3, 32, 32)).astype(np.uint8)
    Z = rs.normal(size=(120, 40)).astype(np.float32)
    y = np.arange(120) * 3
    return {
        "plain": data_source.ArrayDataSource([X, Z, y]),
        "include_indices": data_source.ArrayDataSource([X, y], include_indices=True),
        "reversed_subset": data_source.ArrayDataSource([X, Z], indices=np.arange(100, 20, -1)),
        "one_dimensional_part": data_source.ArrayDataSource(
            [np.arange(120.0), X, np.arange(120) > 60]
        ),
        "strided_view": data_source.ArrayDataSource([Z[:, ::2], X[:, 1]]),
    }


@pytest.mark.parametrize("name", list(_large_sources()))
def test_large_array_batches_same_as_serial(proc_pool, name):
    ds = _large_sources()[name]
    serial = list(ds.batch_iterator(40, shuffle=np.random.RandomState(5)))
    par = proc_pool.parallel_data_source(ds, batch_buffer_size=3)
    got = list(par.batch_iterator(40, shuffle=np.random.RandomState(5)))
    _assert_same_batches(got, serial)
    for g, e in zip(got, serial, strict=True):
        assert [a.dtype for a in g] == [a.dtype for a in e]


def test_array_batches_are_gathered_into_the_slot(tmp_path):
    # Worker side, in this process: the batch is built in the task's slot and
    # encoding it copies nothing (its arrays are the slot's own memory).
    from batchup._pool import parallel

    X = np.arange(300 * 256, dtype=np.float32).reshape(300, 256)
    y = np.arange(300)
    ds = data_source.ArrayDataSource([X, y], include_indices=True)
    folder = shm.ShmFolder()
    try:
        path = folder.new_file("slot")
        idx = np.array([5, -1, 17, 0] * 10)
        shm.begin_task(path)
        try:
            batch = parallel._fetch(ds, IndexBatch(idx, 0, 0))
            mm = shm._worker_maps[path].mm
            whole = np.frombuffer(mm, dtype=np.uint8)
            assert all(np.shares_memory(a, whole) for a in batch)
            encoded = shm.encode_result(batch, path)
        finally:
            shm.end_task()
        assert type(encoded) is shm.SlotResult
        expected = ds.samples_by_indices_nomapping(idx)
        for a, b in zip(batch, expected, strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        del batch, whole, mm
    finally:
        folder.close()


def test_slot_arrays_used_differently_travel_pickled():
    # A task that asks for slot arrays but returns something else (here: one of
    # them twice) must not have its slot overwritten under its own result.
    folder = shm.ShmFolder()
    try:
        path = folder.new_file("slot")
        shm.begin_task(path)
        try:
            (a,) = shm.result_arrays([((64, 1024), np.dtype(np.float32))])
            a[...] = 7
            encoded = shm.encode_result((a, a[::-1]), path)
        finally:
            shm.end_task()
        assert type(encoded) is shm.InlineResult
        x, z = encoded.value
        assert not np.shares_memory(x, np.frombuffer(shm._worker_maps[path].mm, np.uint8))
        assert (x == 7).all() and (z == 7).all()
        del a
    finally:
        folder.close()


def test_no_slot_means_no_in_place_gather():
    from batchup._pool import parallel

    ds = data_source.ArrayDataSource([np.arange(100.0)])
    assert shm.result_arrays([((10, 1000), np.dtype(np.float64))]) is None
    assert ds._fetch_into(IndexBatch(np.arange(10), 0, 0), shm.result_arrays) is None
    # ...and the task falls back to the ordinary fetch.
    np.testing.assert_array_equal(parallel._fetch(ds, IndexBatch(np.arange(3), 0, 0))[0],
                                  [0.0, 1.0, 2.0])


def test_out_of_range_index_raises_in_consumer(proc_pool):
    X = np.zeros((50, 1024), dtype=np.float32)
    ds = data_source.ArrayDataSource([X])
    stream = proc_pool.work_stream([(ds.samples_by_indices_nomapping, (np.array([0, 50]),))])
    with pytest.raises(IndexError):
        stream.retrieve()
    from batchup._pool import parallel

    item = IndexBatch(np.array([0, 50] * 16), 0, 0)
    stream = proc_pool.work_stream([(parallel._fetch, (ds, item))])
    with pytest.raises(IndexError, match="50"):
        stream.retrieve()


def test_shared_constant_reaches_workers(proc_pool):
    big = np.arange(200_000, dtype=np.int64)
    const = proc_pool.shared_constant(big)
    sums = list(proc_pool.work_stream([(np.sum, (const,))] * 6).retrieve_iter())
    assert sums == [int(big.sum())] * 6


def test_shared_constant_is_written_once(proc_pool):
    big = np.arange(200_000, dtype=np.int64)
    const = proc_pool.shared_constant(big)
    list(proc_pool.work_stream([(np.sum, (const,))] * 6).retrieve_iter())
    ref = const._ref
    list(proc_pool.work_stream([(np.sum, (const,))] * 6).retrieve_iter())
    assert const._ref is ref
    # The pickle itself is small: the array is stored raw after it.
    with open(ref.path, "rb") as f:
        (n,) = shm._HEADER.unpack(f.read(8))
    assert n < 2000


def test_thread_shared_constant_is_identity(thread_pool):
    x = object()
    assert thread_pool.shared_constant(x) is x


# ----------------------------------------------------------------- executor protocol, modules


class _Ran:
    """Handle of a task that already ran (see ``_InlineExecutor``)."""

    def __init__(self, fn, args, kwargs):
        try:
            self.value, self.error = fn(*args, **kwargs), None
        except Exception as exc:
            self.value, self.error = None, exc
        self.cancelled = False

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value

    def cancel(self):
        self.cancelled = True


class _InlineExecutor:
    """Not a pool: the TaskExecutor protocol alone, running each task when it is submitted."""

    def __init__(self):
        self.calls = []
        self.handles = []

    def check_open(self):
        self.calls.append("check_open")

    def max_auto_chunk(self, buffer_size):
        self.calls.append("max_auto_chunk")
        return 1

    def next_entropy(self):
        self.calls.append("next_entropy")
        return (11, 0)

    def want_buffer(self, n):
        self.calls.append(("want_buffer", n))

    def submit_chunk(self, chunk, entropy, timer):
        from batchup._pool.randomness import task_scope

        self.calls.append(("submit_chunk", [position for *_, position in chunk]))
        handles = []
        for fn, args, kwargs, position in chunk:
            with task_scope(entropy, position, seed_legacy=False):
                handles.append(_Ran(fn, args, kwargs))
        self.handles.extend(handles)
        return handles

    def shared_constant(self, x):
        return x


def test_pools_implement_the_executor_protocol(pool):
    from batchup._pool.executor import TaskExecutor, TaskHandle

    assert isinstance(pool, TaskExecutor)
    entropy = pool.next_entropy()
    assert entropy[0] == 11 and pool.next_entropy()[1] == entropy[1] + 1
    pool.check_open()
    assert pool.max_auto_chunk(20) == (5 if isinstance(pool, work_pool.WorkerProcessPool) else 1)
    pool.want_buffer(4)
    chunk = [(abs, (-1,), {}, 0), (int, ("11",), {"base": 2}, 1)]
    handles = pool.submit_chunk(chunk, entropy, None)
    assert all(isinstance(h, TaskHandle) for h in handles)
    assert [h.result() for h in handles] == [1, 3]
    (late,) = pool.submit_chunk([(abs, (-3,), {}, 2)], entropy, None)
    late.cancel()


def test_work_stream_needs_only_the_executor_protocol(thread_pool):
    ex = _InlineExecutor()
    stream = work_pool.WorkStream(ex, [(helpers.task_rng_draw, (k,)) for k in range(5)], 2)
    assert ex.calls == ["max_auto_chunk", "check_open", "next_entropy", ("want_buffer", 2),
                        ("submit_chunk", [0]), ("submit_chunk", [1])]
    draws = list(stream.retrieve_iter())
    # Same entropy, same positions: the same draws as a real pool's.
    expected = work_pool.WorkStream(
        thread_pool, [(helpers.task_rng_draw, (k,)) for k in range(5)], entropy=(11, 0)
    )
    assert draws == list(expected.retrieve_iter())
    assert len(ex.handles) == 5 and not any(h.cancelled for h in ex.handles)


def test_abandoned_stream_cancels_through_the_protocol():
    ex = _InlineExecutor()
    it = work_pool.WorkStream(ex, [(abs, (-k,)) for k in range(10)], 3).retrieve_iter()
    assert next(it) == 0
    it.close()
    assert [h.cancelled for h in ex.handles] == [False, True, True, True]


def test_parallel_source_needs_only_the_executor_protocol():
    ds = data_source.ArrayDataSource([np.arange(7) * 2])
    par = work_pool.ParallelDataSource(ds, 3, _InlineExecutor())
    got = list(par.batch_iterator(3, shuffle=np.random.RandomState(4)))
    _assert_same_batches(got, ds.batch_iterator(3, shuffle=np.random.RandomState(4)))


def _pool_import_graph():
    """Modules of ``batchup._pool`` each module imports, anywhere in it (lazy imports too)."""
    import ast
    import pathlib

    import batchup._pool

    folder = pathlib.Path(batchup._pool.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[:2] == ["batchup", "_pool"] and len(parts) > 2:
                        deps.add(parts[2])
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    base = node.module
                elif node.level == 0 and (node.module or "").startswith("batchup._pool"):
                    base = node.module[len("batchup._pool") :].lstrip(".") or None
                else:
                    assert node.level == 0, f"{name}: import from outside batchup._pool"
                    continue
                if base:
                    deps.add(base.split(".")[0])
                else:  # from . import shm
                    deps.update(alias.name for alias in node.names)
        graph[name] = deps & modules
    return graph


def test_pool_import_graph_is_acyclic():
    graph = _pool_import_graph()
    assert graph["executor"] == set()
    assert graph["stream"] == {"executor"}
    assert "pools" not in graph["parallel"]
    done, path = set(), []

    def visit(name):
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


# ----------------------------------------------------------------- README and doctests


README_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from batchup import data_source, work_pool

    class LoadImagesFromDisk(object):
        def __init__(self, n):
            self.n = n
        def __len__(self):
            return self.n
        def __getitem__(self, index):
            index = np.asarray(index)
            return np.stack([np.full((3, 8, 8), i % 256, dtype=np.uint8) for i in index])

    train_X = LoadImagesFromDisk(300)
    train_y = np.arange(300, dtype=np.int32) % 2
    ds = data_source.ArrayDataSource([train_X, train_y])

    th_pool = work_pool.WorkerThreadPool(processes=4)
    par_ds = th_pool.parallel_data_source(ds, batch_buffer_size=32)
    par_iter = par_ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    n = 0
    for (batch_X, batch_y) in par_iter:
        n += len(batch_X)

    proc_pool = work_pool.WorkerProcessPool(processes=4)
    par_ds = proc_pool.parallel_data_source(ds, batch_buffer_size=32)
    m = 0
    for (batch_X, batch_y) in par_ds.batch_iterator(batch_size=64,
                                                   shuffle=np.random.RandomState(12345)):
        assert (batch_X[:, 0, 0, 0] % 2 == batch_y).all()
        m += len(batch_X)
    print(n, m)
    """
)


def test_readme_parallel_examples_run_unchanged(tmp_path):
    script = tmp_path / "readme_parallel.py"
    script.write_text(README_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-X", "dev", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["300", "300"]
    assert "ResourceWarning" not in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "name",
    [
        "batchup.work_pool",
        "batchup._pool.cpu",
        "batchup._pool.randomness",
        "batchup._pool.errors",
        "batchup._pool.shm",
        "batchup._pool.executor",
        "batchup._pool.pools",
        "batchup._pool.threads",
        "batchup._pool.processes",
        "batchup._pool.stream",
        "batchup._pool.parallel",
        "batchup._pool.pickling",
        "batchup._pool.worker",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_import_does_not_load_executors():
    code = (
        "import sys, batchup.work_pool\n"
        "heavy = ('joblib', 'cloudpickle', 'concurrent.futures', 'mmap')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(sys.path)},
    )
    assert out.stdout.strip() == "[]", out.stderr


# -- state through pools: the consumer's position, cancelled prefetch, worker counts -------

def _augment_with_every_generator(x):
    from batchup import randomness

    per_batch = randomness.batch_rng().random(len(x))
    per_sample = np.array([g.random() for g in randomness.sample_rngs()])
    task = np.full(len(x), work_pool.task_rng().random())
    return x, per_batch, per_sample, task


def _listed(batches):
    return [tuple(a.tolist() for a in b) for b in batches]


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_seeded_augmentation_is_identical_serially_and_for_1_2_4_workers(kind):
    ds = data_source.ArrayDataSource([np.arange(45.0)], repeats=2).map(
        _augment_with_every_generator)
    serial = _listed(ds.batch_iterator(4, shuffle=13))
    assert serial == _listed(ds.batch_iterator(4, shuffle=13))
    Pool = work_pool.WorkerThreadPool if kind == "threads" else work_pool.WorkerProcessPool
    for workers in (1, 2, 4):
        with Pool(workers) as pool:
            par = pool.parallel_data_source(ds, batch_buffer_size=6)
            assert _listed(par.batch_iterator(4, shuffle=13)) == serial, workers


def test_set_state_cancels_the_prefetched_work_and_next_step_follows_the_consumer():
    import time

    def slow(x):
        time.sleep(0.05)
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(40)]).map(slow)
    with work_pool.WorkerThreadPool(1) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=6)
        it = par.batch_iterator(2, shuffle=3)
        assert it.next_step == 0
        start = it.get_state()
        next(it)
        assert it.next_step == 1
        pending = list(it._stream._pending)
        it.set_state(start)
        # The old stream's queued tasks were cancelled, not run to waste.
        assert sum(h.future.cancelled() for h in pending) >= 4
        assert it.next_step == 0
        assert _listed(it) == _listed(ds.batch_iterator(2, shuffle=3))
        assert it.next_step is None


def test_pool_state_is_the_consumers_position_not_the_prefetched_one():
    ds = data_source.ArrayDataSource([np.arange(30)])
    with work_pool.WorkerThreadPool(2) as pool:
        it = pool.parallel_data_source(ds, batch_buffer_size=8).batch_iterator(3, shuffle=1)
        next(it)
        next(it)
        assert it.get_state()["plan"]["step"] == 2
        assert it.next_step == 2


def _loky_memory_measure():
    from joblib.externals.loky import process_executor

    return process_executor._get_memory_usage.__qualname__


def test_loky_leak_guard_counts_private_memory_not_mapped_files(tmp_path):
    # A worker reading a memory map has the file's pages in its RSS; loky must
    # not take that for a leak (it replaced such workers every few seconds).
    pytest.importorskip("psutil")
    from batchup._pool.worker import private_memory

    with work_pool.WorkerProcessPool(1) as pool:
        ds = data_source.ArrayDataSource([np.arange(4)]).map(lambda b: (_loky_memory_measure(),))
        (name,), = list(pool.parallel_data_source(ds).batch_iterator(4))
    assert name == "private_memory"
    path = tmp_path / "big.npy"
    np.save(path, np.ones((64 << 20) // 8))
    mapped = np.load(path, mmap_mode="r")
    before = private_memory(os.getpid())
    assert float(mapped.sum()) == (64 << 20) // 8  # every page touched
    assert private_memory(os.getpid()) - before < (16 << 20)


def test_thread_pool_gathers_plain_arrays_like_threads_and_draws_at_creation():
    from batchup._core.prefetch import PrefetchIterator

    X = np.arange(300 * 4, dtype=np.float32).reshape(300, 4)
    ds = data_source.ArrayDataSource([X, np.arange(300)], repeats=2)
    serial_rng = np.random.RandomState(3)
    want = list(ds.batch_iterator(16, shuffle=serial_rng))
    rng = np.random.RandomState(3)
    before = rng.get_state()[1].copy()
    with work_pool.WorkerThreadPool(2) as pool:
        it = pool.parallel_data_source(ds, batch_buffer_size=4).batch_iterator(16, shuffle=rng)
        assert isinstance(it, PrefetchIterator)
        # As in 0.2.3, the buffer fills when the iterator is made: the first draw is taken.
        assert not np.array_equal(rng.get_state()[1], before)
        got = list(it)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_array_equal(a, b)
    assert np.array_equal(rng.get_state()[1], serial_rng.get_state()[1])
    # A map function (or any fetch of its own) still goes through the pool's tasks.
    with work_pool.WorkerThreadPool(2) as pool:
        mapped = pool.parallel_data_source(ds.map(lambda x, y: (x + 1, y)), batch_buffer_size=4)
        assert not isinstance(mapped.batch_iterator(16), PrefetchIterator)
    with pytest.raises(RuntimeError):
        pool.parallel_data_source(ds).batch_iterator(16)

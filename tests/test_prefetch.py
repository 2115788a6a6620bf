"""Background prefetch threads: same batches, same states, clean stops, sensible defaults."""

from __future__ import annotations

import gc
import json
import threading
import time

import numpy as np
import pytest

from batchup import data_source, sampling
from batchup._core.iteration import BatchIterator
from batchup._core.prefetch import PrefetchIterator
from batchup.randomness import batch_rng, sample_rngs
from batchup.testing import assert_resumes

X = np.arange(60 * 3, dtype=np.float32).reshape(60, 3)
Y = np.arange(60) % 7


def _noisy(x, y):
    return x + batch_rng().random(x.shape), np.array([g.integers(100) for g in sample_rngs()])


def _scaled(x, y):
    return x * 2, y + 1


SOURCES = {
    "array": lambda: data_source.ArrayDataSource([X, Y], repeats=2),
    "subset": lambda: data_source.ArrayDataSource([X, Y], indices=np.arange(5, 50)),
    "weighted": lambda: data_source.ArrayDataSource(
        [X, Y], sampler=sampling.WeightedSampler(np.arange(1.0, 61.0))),
    "map": lambda: data_source.ArrayDataSource([X, Y], repeats=2).map(_scaled),
    # Random augmentation repeats only with a seed: paired with seeds alone below.
    "map with randomness": lambda: data_source.ArrayDataSource([X, Y], repeats=2).map(_noisy),
    "composite": lambda: data_source.CompositeDataSource(
        [data_source.ArrayDataSource([Y[:9]], repeats=-1), data_source.ArrayDataSource([X])]),
    "choice": lambda: data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([X[:20]]), data_source.ArrayDataSource([X[20:]])],
        stratified=True),
}
SHUFFLES = {
    "seed": lambda: 11,
    "RandomState": lambda: np.random.RandomState(11),
    "in order": lambda: None,
}


def _take(it, cap=40):
    out = []
    for batch in it:
        out.append(tuple(np.asarray(a).tolist() for a in batch))
        if len(out) == cap:
            break
    return out


def _applies(kind: str, shuffle: str) -> bool:
    # Weighted sampling has no in-order mode; random augmentation repeats with a seed only.
    return not ((kind == "weighted" and shuffle == "in order")
                or (kind == "map with randomness" and shuffle != "seed"))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("kind", "shuffle"),
                         [(k, s) for k in SOURCES for s in SHUFFLES if _applies(k, s)])
def test_prefetched_batches_equal_serial_batches(kind, shuffle, threads):
    ds = SOURCES[kind]()
    serial = _take(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), threads=0))
    it = ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), threads=threads, prefetch=3)
    assert isinstance(it, PrefetchIterator)
    assert _take(it) == serial


@pytest.mark.parametrize(("kind", "shuffle"), [
    (k, s) for k in ("array", "map", "map with randomness", "composite", "choice")
    for s in ("seed", "RandomState") if _applies(k, s)])
def test_prefetched_iteration_resumes_at_every_step(kind, shuffle):
    ds = SOURCES[kind]()
    assert_resumes(lambda: ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), threads=2))
    # ...and its states restore serially (and serial states into it).
    it = ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), threads=2)
    head = _take(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    assert state["plan"]["step"] == 3
    rest = _take(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), state=state), None)
    assert head + rest == _take(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle]()), None)


def test_a_random_state_is_consumed_as_serially():
    ds = data_source.ArrayDataSource([X], repeats=3)
    rs = np.random.RandomState(5)
    it = ds.batch_iterator(7, shuffle=rs, threads=2)
    assert rs.randint(10**6) == np.random.RandomState(5).randint(10**6)  # nothing drawn yet
    rs.seed(5)
    it = ds.batch_iterator(7, shuffle=rs, threads=2)
    list(it)
    ref = np.random.RandomState(5)
    list(ds.batch_iterator(7, shuffle=ref))
    assert rs.randint(10**6) == ref.randint(10**6)


def test_an_error_arrives_in_order_and_ends_the_iteration():
    def fails_on_the_third(x):
        if x[0] == 8:
            raise RuntimeError("bad batch")
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(20)]).map(fails_on_the_third)
    it = ds.batch_iterator(4, threads=2)
    assert [b[0].tolist() for b in (next(it), next(it))] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(RuntimeError, match="bad batch"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)
    assert not _prefetch_threads()


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("batchup-prefetch")
            and t.is_alive()]


def test_close_and_abandoning_stop_the_threads():
    ds = data_source.ArrayDataSource([np.arange(1000)])
    it = ds.batch_iterator(2, shuffle=1, threads=2)
    next(it)
    assert len(_prefetch_threads()) == 2
    it.close()
    it.close()
    assert not _prefetch_threads()
    with pytest.raises(StopIteration):
        next(it)
    it = ds.batch_iterator(2, shuffle=1, threads=2)
    next(it)
    del it
    gc.collect()
    deadline = time.time() + 5
    while _prefetch_threads() and time.time() < deadline:
        time.sleep(0.01)
    assert not _prefetch_threads()


def test_set_state_after_close_continues():
    ds = data_source.ArrayDataSource([np.arange(30)])
    it = ds.batch_iterator(4, shuffle=2, threads=2)
    first = next(it)[0].tolist()
    state = it.get_state()
    it.close()
    it.set_state(state)
    rest = [b[0].tolist() for b in it]
    assert [first] + rest == [b[0].tolist() for b in ds.batch_iterator(4, shuffle=2)]


def test_default_threads_only_where_it_pays():
    big = np.zeros((64, 8192), dtype=np.float32)  # 32 KB rows: batch 32 = 1 MB
    ds = data_source.ArrayDataSource([big])
    assert isinstance(ds.batch_iterator(32, shuffle=1), PrefetchIterator)
    assert isinstance(ds.batch_iterator(32), PrefetchIterator)  # in order
    assert type(ds.batch_iterator(8, shuffle=1)) is BatchIterator  # small batches
    assert type(ds.batch_iterator(32, shuffle=np.random.RandomState(1))) is BatchIterator
    assert type(ds.batch_iterator(32, shuffle=1, threads=0)) is BatchIterator
    assert type(ds.map(lambda x: (x,)).batch_iterator(32, shuffle=1)) is BatchIterator
    small = data_source.ArrayDataSource([np.zeros((100, 3))])
    assert type(small.batch_iterator(50, shuffle=1)) is BatchIterator


@pytest.mark.parametrize("kwargs, error", [
    (dict(threads=-1), ValueError), (dict(threads=1.5), TypeError),
    (dict(threads="2"), TypeError), (dict(prefetch=0), ValueError),
    (dict(prefetch=2.0), TypeError),
], ids=["threads-negative", "threads-float", "threads-str", "prefetch-zero", "prefetch-float"])
def test_bad_threads_or_prefetch_name_the_parameter(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        data_source.ArrayDataSource([X]).batch_iterator(4, **kwargs)


def test_parallel_data_source_rejects_threads():
    from batchup import work_pool

    with work_pool.WorkerThreadPool(1) as pool:
        par = pool.parallel_data_source(data_source.ArrayDataSource([X]), 2)
        with pytest.raises(TypeError, match="threads= does not apply"):
            par.batch_iterator(4, threads=2)


def test_default_threads_leave_very_large_batches_alone():
    huge = np.zeros((8, 2 << 20), dtype=np.float32)  # 8 MB rows
    assert type(data_source.ArrayDataSource([huge]).batch_iterator(2, shuffle=1)) \
        is BatchIterator


# ------------------------------------------------------------------ reused batch buffers


@pytest.mark.parametrize("threads", [0, 1, 2])
@pytest.mark.parametrize("shuffle", [None, 3])
def test_reused_buffers_give_the_same_batches_from_a_few_buffers(threads, shuffle):
    X = np.arange(103 * 6, dtype=np.float32).reshape(103, 2, 3)
    ds = data_source.ArrayDataSource([X, np.arange(103)], include_indices=True)
    want = list(ds.batch_iterator(10, shuffle=shuffle, threads=0))
    got, buffers = [], set()
    for batch in ds.batch_iterator(10, shuffle=shuffle, threads=threads, reuse_buffers=True):
        buffers.add(batch[1].__array_interface__["data"][0])
        got.append(tuple(a.copy() for a in batch))  # valid until the next next()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    # One buffer set serially; with threads, the prepared batches' and the returned one's.
    assert len(buffers) == (1 if threads == 0 else 2 * threads + 1)


def test_reused_buffers_over_storage_and_array_likes(tmp_path):
    tables = pytest.importorskip("tables")
    X = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    with tables.open_file(str(tmp_path / "x.h5"), "w") as f:
        f.create_carray(f.root, "x", obj=X)
    with tables.open_file(str(tmp_path / "x.h5")) as f:
        # An array-like without shape/dtype: read as usual, into new arrays.
        labels = _NoShape(np.arange(50) * 2)
        ds = data_source.ArrayDataSource([f.root.x, labels])
        got = [(a.copy(), b.copy())
               for a, b in ds.batch_iterator(8, shuffle=1, reuse_buffers=True)]
    want = list(data_source.ArrayDataSource([X, np.arange(50) * 2]).batch_iterator(8, shuffle=1))
    assert len(got) == len(want)
    for (a, b), (c, d) in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


class _NoShape:
    def __init__(self, a):
        self._a = a

    def __len__(self):
        return len(self._a)

    def __getitem__(self, key):
        return self._a[key]


def test_reuse_buffers_must_be_a_bool():
    ds = data_source.ArrayDataSource([np.arange(5)])
    with pytest.raises(TypeError, match="reuse_buffers must be True or False, not 'yes'"):
        ds.batch_iterator(2, reuse_buffers="yes")


def test_an_idle_caller_gathers_its_share_and_a_busy_one_leaves_it_to_a_thread():
    from batchup._pool.cpu import available_cpus

    X = np.arange(4000, dtype=np.float64).reshape(2000, 2)
    who: list = []

    def record(xb):
        who.append(threading.current_thread().name)
        time.sleep(0.0005)  # a fetch that costs something, so the caller looks idle
        return (xb,)

    ds = data_source.ArrayDataSource([X]).map(record)
    want = [b[0] for b in ds.batch_iterator(10, shuffle=2, threads=0)]
    who.clear()
    got = [b[0].copy() for b in ds.batch_iterator(10, shuffle=2, threads=2)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    idle = set(who[20:])  # after the first timings
    if available_cpus() >= 2:
        assert "MainThread" in idle and any(n.startswith("batchup-prefetch") for n in idle)
    else:
        assert "MainThread" not in idle
    who.clear()
    for _ in ds.batch_iterator(10, shuffle=2, threads=2):
        time.sleep(0.002)  # a step of the caller's own, longer than a fetch
    assert "MainThread" not in set(who[20:])

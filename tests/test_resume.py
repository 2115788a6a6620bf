"""Conformance: every source kind and every pool resumes exactly (restore at every step).

One list of source kinds (``CASES``) runs through :func:`batchup.testing.assert_resumes`
for every applicable ``shuffle`` kind, serially and -- for a representative subset --
in a thread pool and in a process pool. A new source kind or pool gets the whole
check by being added to ``CASES`` or ``RUNNERS``.

Also here: property tests of resuming at random positions, state size and
JSON round trips, fingerprint and malformed-state rejection, sources that
cannot resume, restoring an exhausted iterator and continuing a shared stream.
"""

from __future__ import annotations

import copy
import doctest
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchup.testing
from batchup import data_source, randomness, sampling, work_pool
from batchup.data_source import NotResumableError, ShardSpec
from batchup.testing import assert_resumes, first_difference

PROPERTY = settings(deadline=None, max_examples=40, derandomize=True)

N = 23
X = np.arange(N, dtype=np.int64) * 10
F = (np.arange(N * 3, dtype=np.float32) / 7).reshape(N, 3)
Y = (np.arange(N) % 3).astype(np.int8)
SUBSET = np.array([3, 1, 4, 15, 9, 2, 6, 22, 5, 8, 7, 20, 13])
WEIGHTS = np.linspace(1.0, 3.0, N)


# ------------------------------------------------------------------ map functions
# Module-level so that process pools can ship them by reference.


def augment(x, f, y):
    """Per-batch and per-sample randomness (seeded iterations only are repeatable)."""
    shift = randomness.batch_rng().integers(1000)
    noise = np.array([g.normal() for g in randomness.sample_rngs()], dtype=np.float32)
    return x + shift, f + noise[:, None], y


def augment_xy(x, y):
    return x + randomness.batch_rng().integers(1000), y


def describe_batch(x, f, y):
    """Deterministic: where the batch comes from, as data."""
    info = randomness.current_batch()
    return x, f, y, np.array([info.epoch, info.step, info.rank])


def swap_and_jitter(*parts):
    """Outer map over a (flat) composite batch."""
    jitter = randomness.batch_rng().integers(-5, 5)
    return tuple(p + jitter if p.dtype.kind in "if" else p for p in reversed(parts))


def halve(x, f, y):
    return x // 2, f * 0.5, y


# ------------------------------------------------------------------ the source kinds

SEEDED = ("int", "tuple", "seedpath")
STREAMS = ("RandomState", "Generator")
ALL = ("in_order",) + SEEDED + STREAMS
RANDOM = SEEDED + STREAMS

SHUFFLES: dict[str, Callable[[], Any]] = {
    "in_order": lambda: None,
    "int": lambda: 7,
    "tuple": lambda: (7, 2),
    "seedpath": lambda: sampling.SeedPath(7, (1, 4)),
    "RandomState": lambda: np.random.RandomState(3),
    "Generator": lambda: np.random.default_rng(3),
}


def _array():
    return data_source.ArrayDataSource([X, F, Y])


def _composite():
    return data_source.CompositeDataSource([
        data_source.ArrayDataSource([X[:9], Y[:9]], repeats=2),
        data_source.ArrayDataSource([F]),
    ])


def _semi_supervised():
    labelled = data_source.ArrayDataSource([X[:5], Y[:5]], repeats=-1)
    unlabelled = data_source.ArrayDataSource([np.arange(41) * 3.0])
    return data_source.CompositeDataSource([labelled, unlabelled])


def _components():
    return [data_source.ArrayDataSource([X, F, Y]),
            data_source.ArrayDataSource([X[:9], F[:9], Y[:9]]),
            data_source.ArrayDataSource([X[:5] + 1000, F[:5], Y[:5]], repeats=2)]


def _nested_map():
    lab = data_source.ArrayDataSource([X[:6], Y[:6]], repeats=-1).map(augment_xy)
    unlab = data_source.ArrayDataSource([F])
    return data_source.CompositeDataSource([lab, unlab]).map(swap_and_jitter)


@dataclass(frozen=True)
class Case:
    """A source kind and how to iterate it."""

    name: str
    make: Callable[[], Any]
    shuffles: tuple[str, ...] = ALL
    batch_size: int = 4
    kwargs: dict = field(default_factory=dict)
    max_steps: int | None = None
    in_pools: bool = False


CASES = [
    Case("array", _array, in_pools=True),
    Case("array_subset", lambda: data_source.ArrayDataSource([X, F, Y], indices=SUBSET)),
    Case("array_repeats_3", lambda: data_source.ArrayDataSource([X, F, Y], repeats=3),
         batch_size=5, in_pools=True),
    Case("array_repeats_endless", lambda: data_source.ArrayDataSource([X, Y], repeats=-1),
         batch_size=5, max_steps=14),
    Case("array_include_indices",
         lambda: data_source.ArrayDataSource([X, F, Y], include_indices=True)),
    Case("array_drop_last", lambda: data_source.ArrayDataSource([X, F, Y], repeats=2),
         batch_size=5, kwargs={"drop_last": True}),
    Case("subset_repeats_drop_last",
         lambda: data_source.ArrayDataSource([X, Y], indices=SUBSET, repeats=2),
         batch_size=3, kwargs={"drop_last": True}),
    Case("weighted", lambda: data_source.ArrayDataSource(
        [X, F, Y], sampler=sampling.WeightedSampler(WEIGHTS)),
        shuffles=RANDOM, max_steps=12, in_pools=True),
    Case("weighted_subset", lambda: data_source.ArrayDataSource(
        [X, Y], sampler=sampling.WeightedSubsetSampler(np.array([1.0, 2.0, 3.0, 0.5]),
                                                       np.array([2, 5, 9, 20]))),
        shuffles=RANDOM, max_steps=12),
    Case("class_balancing", lambda: data_source.ArrayDataSource(
        [X, Y], sampler=sampling.WeightedSampler.class_balancing_sampler(Y)),
        shuffles=RANDOM, max_steps=12),
    Case("subset_class_balancing", lambda: data_source.ArrayDataSource(
        [X, Y], sampler=sampling.WeightedSubsetSampler.class_balancing_sampler(Y, SUBSET)),
        shuffles=RANDOM, max_steps=10),
    Case("composite", _composite),
    Case("composite_nested_untrimmed", lambda: data_source.CompositeDataSource(
        [data_source.ArrayDataSource([X[:11]]), _composite()], flatten=False, trim=False)),
    Case("semi_supervised", _semi_supervised, in_pools=True),
    Case("choice_stratified", lambda: data_source.ChoiceDataSource(_components(),
                                                                   stratified=True),
         in_pools=True),
    Case("choice_stratified_drop_last", lambda: data_source.ChoiceDataSource(
        _components(), stratified=True), batch_size=3, kwargs={"drop_last": True}),
    Case("choice_rounds", lambda: data_source.ChoiceDataSource(_components())),
    Case("map_rng", lambda: data_source.ArrayDataSource([X, F, Y], repeats=2).map(augment),
         shuffles=SEEDED, in_pools=True),
    Case("map_deterministic",
         lambda: data_source.ArrayDataSource([X, F, Y], repeats=2).map(describe_batch)),
    Case("map_of_map", lambda: data_source.ArrayDataSource([X, F, Y]).map(halve).map(augment),
         shuffles=SEEDED),
    Case("map_weighted", lambda: data_source.ArrayDataSource(
        [X, F, Y], sampler=sampling.WeightedSampler(WEIGHTS)).map(augment),
        shuffles=SEEDED, max_steps=8),
    Case("map_nested_composite", _nested_map, shuffles=SEEDED, in_pools=True),
    Case("choice_of_maps", lambda: data_source.ChoiceDataSource(
        [s.map(augment) for s in _components()], stratified=True), shuffles=SEEDED),
]


def _serial_params():
    for case in CASES:
        for shuffle in case.shuffles:
            yield pytest.param(case, shuffle, id=f"{case.name}-{shuffle}")


def _pool_params():
    for case in CASES:
        if not case.in_pools:
            continue
        # One seeded and one stream shuffle per case keeps the pool runs short.
        kinds = [k for k in ("int", "RandomState") if k in case.shuffles] or [case.shuffles[0]]
        for shuffle in kinds:
            for runner in ("threads", "processes"):
                yield pytest.param(case, shuffle, runner, id=f"{case.name}-{shuffle}-{runner}")


@pytest.fixture(scope="module")
def threads_pool():
    with work_pool.WorkerThreadPool(2) as pool:
        yield pool


@pytest.fixture(scope="module")
def processes_pool():
    with work_pool.WorkerProcessPool(2) as pool:
        yield pool


def _runner_source(request, runner: str, ds: Any) -> Any:
    """What to iterate: the source itself, or a pool's parallel wrapper of it."""
    if runner == "serial":
        return ds
    pool = request.getfixturevalue(f"{runner}_pool")
    return pool.parallel_data_source(ds, batch_buffer_size=4)


def _maker(source: Any, case: Case, shuffle: str) -> Callable[[], Any]:
    make_shuffle = SHUFFLES[shuffle]
    return lambda: source.batch_iterator(case.batch_size, shuffle=make_shuffle(),
                                         **case.kwargs)


def _take(it: Any, n: int | None) -> list:
    out = list(it if n is None else itertools.islice(it, n))
    close = getattr(it, "close", None)
    if close is not None:
        close()
    return out


def _assert_same(got: list, want: list, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} batches, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        diff = first_difference(g, w, f"batch {i}")
        assert diff is None, f"{what}: {diff}"


# ------------------------------------------------------------------ restore at every step


@pytest.mark.parametrize(("case", "shuffle"), list(_serial_params()))
def test_resumes_at_every_step(case, shuffle):
    assert_resumes(_maker(case.make(), case, shuffle), max_steps=case.max_steps)


@pytest.mark.parametrize(("case", "shuffle"), list(_serial_params()))
def test_index_iterator_resumes_at_every_step(case, shuffle):
    ds = case.make()
    assert ds.is_random_access  # every case is: the index iterator must exist
    make_shuffle = SHUFFLES[shuffle]
    assert_resumes(lambda: ds.batch_indices_iterator(case.batch_size, shuffle=make_shuffle(),
                                                     **case.kwargs),
                   max_steps=case.max_steps)


def test_index_iterator_of_a_source_without_indices_is_refused():
    made = data_source.CallableDataSource(lambda batch_size, **kw: iter([(np.zeros(2),)]))
    comp = data_source.CompositeDataSource([data_source.ArrayDataSource([X]), made])
    with pytest.raises(TypeError, match="random access"):
        comp.batch_indices_iterator(4)


@pytest.mark.parametrize(("case", "shuffle", "runner"), list(_pool_params()))
def test_pool_resumes_at_every_step(request, case, shuffle, runner):
    par = _runner_source(request, runner, case.make())
    assert_resumes(_maker(par, case, shuffle), max_steps=case.max_steps)


@pytest.mark.parametrize(("case", "shuffle", "runner"), list(_pool_params()))
def test_pool_batches_equal_serial_batches(request, case, shuffle, runner):
    ds = case.make()
    par = _runner_source(request, runner, ds)
    want = _take(_maker(ds, case, shuffle)(), case.max_steps)
    got = _take(_maker(par, case, shuffle)(), case.max_steps)
    _assert_same(got, want, f"{runner} vs serial")


@pytest.mark.parametrize(("case", "shuffle", "runner"), list(_pool_params()))
def test_states_move_between_serial_and_pool(request, case, shuffle, runner):
    ds = case.make()
    par = _runner_source(request, runner, ds)
    serial, pooled = _maker(ds, case, shuffle), _maker(par, case, shuffle)
    want = _take(serial(), case.max_steps)
    k = len(want) // 2
    rest = None if case.max_steps is None else len(want) - k
    for save_in, restore_in, what in ((serial, pooled, "serial -> pool"),
                                      (pooled, serial, "pool -> serial")):
        it = save_in()
        list(itertools.islice(it, k))
        state = json.loads(json.dumps(it.get_state()))
        close = getattr(it, "close", None)
        if close is not None:
            close()
        resumed = restore_in()
        resumed.set_state(state)
        _assert_same(_take(resumed, rest), want[k:], f"{what}, saved after {k} batches")


# ------------------------------------------------------------------ property tests


@PROPERTY
@given(n=st.integers(0, 40), batch_size=st.integers(1, 9), repeats=st.sampled_from([1, 2, 3, -1]),
       shuffle_kind=st.sampled_from(["seed", "RandomState", "in_order"]),
       drop_last=st.booleans(), subset=st.booleans(), data=st.data())
def test_array_source_resumes_at_random_step(n, batch_size, repeats, shuffle_kind, drop_last,
                                             subset, data):
    if repeats == -1 and n == 0:
        n = 1
    if subset:  # the subset, reversed and shifted, of a longer array
        ds = data_source.ArrayDataSource([np.arange(n + 3) * 10],
                                         indices=np.arange(n)[::-1] + 2, repeats=repeats)
    else:
        ds = data_source.ArrayDataSource([np.arange(n) * 10], repeats=repeats)
    make_shuffle = {"seed": lambda: 11, "RandomState": lambda: np.random.RandomState(11),
                    "in_order": lambda: None}[shuffle_kind]

    def make():
        return ds.batch_iterator(batch_size, shuffle=make_shuffle(), drop_last=drop_last)

    cap = 25 if repeats == -1 else None
    want = _take(make(), cap)
    k = data.draw(st.integers(0, len(want)), label="k")
    it = make()
    list(itertools.islice(it, k))
    state = json.loads(json.dumps(it.get_state()))
    resumed = make()
    resumed.set_state(state)
    _assert_same(_take(resumed, None if cap is None else len(want) - k), want[k:],
                 f"restored at k={k}")


@PROPERTY
@given(n=st.integers(0, 40), batch_size=st.integers(1, 5), repeats=st.sampled_from([1, 2, -1]),
       world=st.integers(1, 4), policy=st.sampled_from(["pad", "drop", "even"]),
       seeded=st.booleans(), data=st.data())
def test_sharded_source_resumes_at_random_step(n, batch_size, repeats, world, policy, seeded,
                                               data):
    n = max(n, 1) if repeats == -1 else n
    rank = data.draw(st.integers(0, world - 1), label="rank")
    ds = data_source.ArrayDataSource([np.arange(n) * 10], repeats=repeats)

    def make():
        return ds.batch_iterator(batch_size, shuffle=3 if seeded else np.random.RandomState(3),
                                 shard=ShardSpec(rank, world, policy))

    cap = 20 if repeats == -1 else None
    want = _take(make(), cap)
    k = data.draw(st.integers(0, len(want)), label="k")
    it = make()
    list(itertools.islice(it, k))
    resumed = make()
    resumed.set_state(json.loads(json.dumps(it.get_state())))
    _assert_same(_take(resumed, None if cap is None else len(want) - k), want[k:],
                 f"rank {rank} of {world} restored at k={k}")


@PROPERTY
@given(n=st.integers(1, 30), batch_size=st.integers(1, 9),
       weights=st.lists(st.floats(0.01, 10.0), min_size=30, max_size=30),
       subset=st.booleans(), seeded=st.booleans(), k=st.integers(0, 20))
def test_weighted_source_resumes_at_random_step(n, batch_size, weights, subset, seeded, k):
    w = np.array(weights[:n])
    if subset:
        sampler = sampling.WeightedSubsetSampler(w, np.arange(n)[::-1] * 2)
        data = [np.arange(2 * n) * 10]
    else:
        sampler = sampling.WeightedSampler(w)
        data = [np.arange(n) * 10]
    ds = data_source.ArrayDataSource(data, sampler=sampler)

    def make():
        shuffle = 5 if seeded else np.random.RandomState(5)
        return ds.batch_iterator(batch_size, shuffle=shuffle)

    want = _take(make(), k + 6)
    it = make()
    list(itertools.islice(it, k))
    resumed = make()
    resumed.set_state(json.loads(json.dumps(it.get_state())))
    _assert_same(_take(resumed, 6), want[k:], f"restored at k={k}")


@PROPERTY
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=3), batch_size=st.integers(1, 5),
       stratified=st.booleans(), composite=st.booleans(),
       shuffle_kind=st.sampled_from(["seed", "RandomState", "in_order"]), data=st.data())
def test_combined_sources_resume_at_random_step(sizes, batch_size, stratified, composite,
                                                shuffle_kind, data):
    parts = [data_source.ArrayDataSource([np.arange(n) + 100 * i], repeats=1 + i % 2)
             for i, n in enumerate(sizes)]
    if composite:
        ds = data_source.CompositeDataSource(parts)
    else:
        ds = data_source.ChoiceDataSource(parts, stratified=stratified)
    make_shuffle = {"seed": lambda: 2, "RandomState": lambda: np.random.RandomState(2),
                    "in_order": lambda: None}[shuffle_kind]

    def make():
        return ds.batch_iterator(batch_size, shuffle=make_shuffle())

    want = _take(make(), None)
    k = data.draw(st.integers(0, len(want)), label="k")
    it = make()
    list(itertools.islice(it, k))
    resumed = make()
    resumed.set_state(json.loads(json.dumps(it.get_state())))
    _assert_same(_take(resumed, None), want[k:], f"restored at k={k}")


# ------------------------------------------------------------------ states: JSON and size


@pytest.mark.parametrize(("case", "shuffle"), list(_serial_params()))
def test_states_are_plain_json(case, shuffle):
    it = _maker(case.make(), case, shuffle)()
    steps = case.max_steps if case.max_steps is not None else 10**6
    for k in itertools.count():
        state = it.get_state()
        text = json.dumps(state)
        assert json.loads(text) == state, f"state after {k} batches does not survive JSON"
        if k >= steps or next(it, None) is None:
            break


class Positions:
    """An array-like of ``length`` rows whose row ``i`` is ``i`` (no memory)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(*index.indices(self.length))
        return np.asarray(index, dtype=np.int64)


@pytest.mark.parametrize("kwargs", [{}, {"repeats": 3}, {"repeats": -1}],
                         ids=["one_pass", "repeats", "endless"])
@pytest.mark.parametrize("shard", [None, (5, 8)])
def test_seeded_state_of_a_billion_samples_is_small(kwargs, shard):
    ds = data_source.ArrayDataSource([Positions(10**9)], **kwargs)
    it = ds.batch_iterator(256, shuffle=123456789, shard=shard)
    for _ in range(3):
        batch = next(it)[0]
    assert batch.shape == (256,) and 0 <= batch.min() and batch.max() < 10**9
    text = json.dumps(it.get_state())
    assert len(text) < 1024, f"{len(text)} bytes: {text[:200]}"


def test_seeded_composite_state_of_a_billion_samples_is_small():
    ds = data_source.CompositeDataSource([data_source.ArrayDataSource([Positions(10**9)]),
                                          data_source.ArrayDataSource([Positions(10**9 + 7)])])
    it = ds.batch_iterator(64, shuffle=(3, 1))
    next(it)
    assert len(json.dumps(it.get_state())) < 1024


@pytest.mark.parametrize("k", [10, 10_000])
def test_seeded_restore_deep_into_a_million_sample_epoch(k):
    ds = data_source.ArrayDataSource([Positions(10**6)])
    stepped = ds.batch_indices_iterator(64, shuffle=99)
    list(itertools.islice(stepped, k))
    state = json.loads(json.dumps(stepped.get_state()))
    want = [next(stepped) for _ in range(3)]
    resumed = ds.batch_iterator(64, shuffle=99, state=state)
    got = [next(resumed)[0] for _ in range(3)]
    _assert_same(got, want, f"restored at batch {k}")
    everything = np.concatenate(got)
    assert len(np.unique(everything)) == len(everything)
    assert 0 <= everything.min() and everything.max() < 10**6


# ------------------------------------------------------------------ fingerprints


def _state_after(ds: Any, k: int = 2, batch_size: int = 4, **kw: Any) -> dict:
    it = ds.batch_iterator(batch_size, **kw)
    list(itertools.islice(it, k))
    return json.loads(json.dumps(it.get_state()))


ARR = data_source.ArrayDataSource([X, Y])
ARR_WEIGHTED = data_source.ArrayDataSource([X, Y], sampler=sampling.WeightedSampler(WEIGHTS))
ARR_WEIGHTED_SUBSET = data_source.ArrayDataSource(
    [X, Y], sampler=sampling.WeightedSubsetSampler(np.ones(N), np.arange(N)))

MISMATCHES = [
    # (saved from, restored into, field named in the error)
    ((ARR, {"shuffle": 7}), (data_source.ArrayDataSource([X[:20], Y[:20]]), {"shuffle": 7}),
     "data source"),
    ((ARR, {"shuffle": 7}), (data_source.ArrayDataSource([X, Y], repeats=2), {"shuffle": 7}),
     "data source"),
    ((ARR, {"shuffle": 7}), (data_source.ArrayDataSource([X, Y], indices=SUBSET),
                             {"shuffle": 7}), "data source"),
    ((ARR, {"shuffle": 7}), (_composite(), {"shuffle": 7}), "data source"),
    ((ARR, {"shuffle": 7}), (ARR.map(augment_xy), {"shuffle": 7}), "data source"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": 8}), "shuffle"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": (7, 1)}), "shuffle"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": np.random.RandomState(7)}), "shuffle"),
    ((ARR, {"shuffle": np.random.RandomState(7)}), (ARR, {"shuffle": np.random.default_rng(7)}),
     "shuffle"),
    ((ARR, {"shuffle": None}), (ARR, {"shuffle": 7}), "shuffle"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": 7, "batch_size": 5}), "batch size"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": 7, "drop_last": True}), "drop_last"),
    ((ARR, {"shuffle": 7, "shard": (0, 2)}), (ARR, {"shuffle": 7, "shard": (0, 2, "drop")}),
     "remainder"),
    ((ARR, {"shuffle": 7}), (ARR, {"shuffle": 7, "shard": (0, 2)}), "shard"),
    ((ARR, {"shuffle": 7, "shard": (0, 2)}), (ARR, {"shuffle": 7, "shard": (0, 3)}),
     "batch size"),
    ((ARR, {"shuffle": 7}), (ARR_WEIGHTED, {"shuffle": 7}), "data source"),
    ((ARR_WEIGHTED, {"shuffle": 7}), (ARR_WEIGHTED_SUBSET, {"shuffle": 7}), "data source"),
    ((ARR_WEIGHTED, {"shuffle": 7}), (ARR, {"shuffle": 7}), "data source"),
]


@pytest.mark.parametrize(("saved", "restored", "name"), MISMATCHES,
                         ids=[f"{i}-{m[2].replace(' ', '_')}" for i, m in enumerate(MISMATCHES)])
def test_state_of_another_iteration_is_rejected(saved, restored, name):
    (src, kw), (dst, kw2) = saved, restored
    kw, kw2 = dict(kw), dict(kw2)
    state = _state_after(src, batch_size=kw.pop("batch_size", 4), **kw)
    batch_size = kw2.pop("batch_size", 4)
    with pytest.raises(ValueError, match=name):
        dst.batch_iterator(batch_size, state=state, **kw2)
    it = dst.batch_iterator(batch_size, **kw2)
    with pytest.raises(ValueError, match=name):
        it.set_state(state)


def test_rejection_names_every_differing_field():
    state = _state_after(ARR, shuffle=7)
    with pytest.raises(ValueError) as info:
        ARR.batch_iterator(5, shuffle=8, drop_last=True, state=state)
    message = str(info.value)
    for name in ("shuffle", "batch size", "drop_last"):
        assert name in message


# ------------------------------------------------------------------ malformed states


def _pass_state(shuffle: Any) -> dict:
    return _state_after(data_source.ArrayDataSource([X], repeats=2), k=3, shuffle=shuffle)


def _drop(path: str) -> Callable[[dict], None]:
    def apply(state: dict) -> None:
        *head, last = path.split(".")
        for key in head:
            state = state[key]
        del state[last]
    return apply


def _put(path: str, value: Any) -> Callable[[dict], None]:
    def apply(state: dict) -> None:
        *head, last = path.split(".")
        for key in head:
            state = state[key]
        state[last] = value
    return apply


PASS_MUTATIONS = {
    "no batchup_state": _drop("batchup_state"),
    "other version": _put("batchup_state", 99),
    "no fingerprint": _drop("fingerprint"),
    "fingerprint not a dict": _put("fingerprint", "x"),
    "no plan": _drop("plan"),
    "plan not a dict": _put("plan", [1, 2]),
    "plan of another kind": _put("plan.plan", "composite"),
    "weighted plan": _put("plan", {"plan": "weighted", "step": 3}),
    "no pos": _drop("plan.pos"),
    "no pass": _drop("plan.pass"),
    "no step": _drop("plan.step"),
    "no done": _drop("plan.done"),
    "pos negative": _put("plan.pos", -1),
    "pos a string": _put("plan.pos", "3"),
    "pos a float": _put("plan.pos", 3.0),
    "pos beyond the pass": _put("plan.pos", N + 1),
    "pass negative": _put("plan.pass", -1),
    "step negative": _put("plan.step", -4),
    "step a bool": _put("plan.step", True),
    "left below -1": _put("plan.left", -2),
    "left above repeats": _put("plan.left", 3),
    "done not a bool": _put("plan.done", 0),
    "started a string": _put("plan.started", "yes"),
}

STREAM_MUTATIONS = {
    "no rng": _drop("rng"),
    "rng not a dict": _put("rng", "x"),
    "rng empty": _put("rng", {}),
    "rng of another kind": _put("rng.kind", "Generator(PCG64)"),
    "rng without keys": _drop("rng.keys"),
    "rng keys not an array": _put("rng.keys", [1, 2, 3]),
    "order empty": _put("plan.order", {}),
    "order a string": _put("plan.order", "abc"),
    "order without keys": _drop("plan.order.keys"),
}


@pytest.mark.parametrize("mutation", list(PASS_MUTATIONS))
@pytest.mark.parametrize("shuffle", ["int", "RandomState", "in_order"])
def test_malformed_pass_state_is_rejected(shuffle, mutation):
    state = _pass_state(SHUFFLES[shuffle]())
    PASS_MUTATIONS[mutation](state)
    ds = data_source.ArrayDataSource([X], repeats=2)
    with pytest.raises(ValueError):
        ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), state=state)


@pytest.mark.parametrize("mutation", list(STREAM_MUTATIONS))
def test_malformed_stream_state_is_rejected(mutation):
    state = _pass_state(np.random.RandomState(3))
    STREAM_MUTATIONS[mutation](state)
    ds = data_source.ArrayDataSource([X], repeats=2)
    with pytest.raises(ValueError):
        ds.batch_iterator(4, shuffle=np.random.RandomState(3), state=state)


COMBINED_MUTATIONS = {
    "a child missing": lambda s: s["plan"]["children"].pop(),
    "children not a list": _put("plan.children", {"0": 1}),
    "a child of another kind": lambda s: s["plan"]["children"].__setitem__(
        0, {"plan": "weighted", "step": 0}),
    "a child with negative pos": lambda s: s["plan"]["children"][1].__setitem__("pos", -3),
    "step negative": _put("plan.step", -1),
    "no done": _drop("plan.done"),
    "pass plan instead": _put("plan", {"plan": "pass", "pass": 0, "pos": 0, "left": 1,
                                       "done": False, "started": False, "step": 0,
                                       "order": None}),
}


@pytest.mark.parametrize("mutation", list(COMBINED_MUTATIONS))
@pytest.mark.parametrize("kind", ["composite", "choice_rounds", "choice_stratified"])
def test_malformed_combined_state_is_rejected(kind, mutation):
    if kind == "composite":
        ds = _composite()
    else:
        ds = data_source.ChoiceDataSource(_components(), stratified=kind.endswith("stratified"))
    state = _state_after(ds, k=3, shuffle=7)
    COMBINED_MUTATIONS[mutation](state)
    with pytest.raises(ValueError):
        ds.batch_iterator(4, shuffle=7, state=state)


@pytest.mark.parametrize("step", [-1, "2", 2.5, None, True])
def test_malformed_weighted_state_is_rejected(step):
    state = _state_after(ARR_WEIGHTED, shuffle=7)
    state["plan"]["step"] = step
    with pytest.raises(ValueError, match="step"):
        ARR_WEIGHTED.batch_iterator(4, shuffle=7, state=state)


@pytest.mark.parametrize("shuffle", ["int", "RandomState"])
def test_rejected_state_leaves_the_iterator_unchanged(shuffle):
    # A set_state that raises must not leave the iterator half restored.
    ds = data_source.ArrayDataSource([X, Y], repeats=2)
    want = _take(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle]()), None)
    state = _state_after(ds, k=5, shuffle=SHUFFLES[shuffle]())
    broken = copy.deepcopy(state)
    if shuffle == "RandomState":
        del broken["rng"]
    else:
        broken["plan"]["left"] = 7
    it = ds.batch_iterator(4, shuffle=SHUFFLES[shuffle]())
    first = next(it)
    with pytest.raises(ValueError):
        it.set_state(broken)
    _assert_same([first] + _take(it, None), want, "after a rejected set_state")


def test_rejected_composite_state_leaves_the_iterator_unchanged():
    ds = _composite()
    want = _take(ds.batch_iterator(4, shuffle=7), None)
    state = _state_after(ds, k=3, shuffle=7)
    state["plan"]["children"][1]["pos"] = -3  # the first child's state is fine
    it = ds.batch_iterator(4, shuffle=7)
    first = next(it)
    with pytest.raises(ValueError):
        it.set_state(state)
    _assert_same([first] + _take(it, None), want, "after a rejected set_state")


# ------------------------------------------------------------------ sources that cannot resume


def _callable_batches(batch_size, shuffle=None):
    for i in range(0, 10, batch_size):
        yield (np.arange(i, min(i + batch_size, 10)),)


class LookAlike:
    """Not an AbstractDataSource, but has the two methods batchup 0.2.3 asked for."""

    def num_samples(self, **kwargs):
        return 10

    def batch_iterator(self, batch_size, shuffle=None, drop_last=False):
        return _callable_batches(batch_size)


class OldStyle(data_source.AbstractDataSource):
    """A 0.2.3-style subclass that implements batch_iterator itself."""

    def num_samples(self, **kwargs):
        return 10

    def batch_iterator(self, batch_size, shuffle=None, **kwargs):
        return _callable_batches(batch_size)


class DuckSampler:
    """A sampler with only 0.2.3's two iterator methods."""

    def num_indices_generated(self):
        return N

    def in_order_indices_batch_iterator(self, batch_size):
        return (np.arange(i, min(i + batch_size, N)) for i in range(0, N, batch_size))

    def shuffled_indices_batch_iterator(self, batch_size, shuffle_rng):
        return self.in_order_indices_batch_iterator(batch_size)


UNRESUMABLE = {
    "callable.map": lambda: data_source.CallableDataSource(_callable_batches, 10).map(
        lambda x: (x,)),
    "composite with callable": lambda: data_source.CompositeDataSource(
        [data_source.CallableDataSource(_callable_batches, 10), ARR]),
    "composite with iterator": lambda: data_source.CompositeDataSource(
        [data_source.IteratorDataSource(_callable_batches(4), 10), ARR]),
    "composite with look-alike": lambda: data_source.CompositeDataSource([LookAlike(), ARR]),
    "choice with old-style subclass": lambda: data_source.ChoiceDataSource([OldStyle(), ARR]),
    "duck-typed sampler": lambda: data_source.ArrayDataSource([X], sampler=DuckSampler()),
}


@pytest.mark.parametrize("kind", list(UNRESUMABLE))
def test_unresumable_iteration_raises_not_resumable(kind):
    ds = UNRESUMABLE[kind]()
    it = ds.batch_iterator(4)
    with pytest.raises(NotResumableError, match="cannot save its position"):
        it.get_state()
    next(it)
    with pytest.raises(NotResumableError, match="cannot save its position"):
        it.get_state()


@pytest.mark.parametrize("kind", ["callable", "iterator"])
def test_callable_and_iterator_sources_refuse_a_state(kind):
    if kind == "callable":
        ds = data_source.CallableDataSource(_callable_batches, 10)
    else:
        ds = data_source.IteratorDataSource(_callable_batches(4), 10)
    with pytest.raises(NotResumableError, match="cannot save its position"):
        ds.batch_iterator(4, state=_state_after(ARR))


def test_not_resumable_is_a_type_error():
    assert issubclass(NotResumableError, TypeError)


# ------------------------------------------------------------------ exhausted iterators


@pytest.mark.parametrize(("case", "shuffle"),
                         [p for p in _serial_params() if p.values[0].max_steps is None])
def test_set_state_on_an_exhausted_iterator(case, shuffle):
    make = _maker(case.make(), case, shuffle)
    want = _take(make(), None)
    k = len(want) // 2
    it = make()
    list(itertools.islice(it, k))
    state = json.loads(json.dumps(it.get_state()))
    list(it)
    assert next(it, None) is None
    end_state = json.loads(json.dumps(it.get_state()))
    it.set_state(state)
    _assert_same(_take(it, None), want[k:], "an exhausted iterator restored")
    again = make()
    again.set_state(end_state)
    assert next(again, None) is None, "a state saved at the end restores to the end"


# ------------------------------------------------------------------ shared streams continue


STREAM_SOURCES = {
    "array": lambda: data_source.ArrayDataSource([X, Y]),
    "repeats": lambda: data_source.ArrayDataSource([X, Y], repeats=3),
    "weighted": lambda: data_source.ArrayDataSource([X], sampler=sampling.WeightedSampler(
        WEIGHTS)),
    "semi_supervised": _semi_supervised,
    "choice_rounds": lambda: data_source.ChoiceDataSource(_components()),
    "choice_stratified": lambda: data_source.ChoiceDataSource(_components(), stratified=True),
}


@pytest.mark.parametrize("stream", ["RandomState", "Generator"])
@pytest.mark.parametrize("kind", list(STREAM_SOURCES))
def test_restored_stream_continues_into_the_next_epoch(kind, stream):
    ds = STREAM_SOURCES[kind]()
    cap = 9 if kind == "weighted" else None
    make_rng = SHUFFLES[stream]
    # Uninterrupted: two epochs sharing one stream.
    rng = make_rng()
    first = _take(ds.batch_iterator(4, shuffle=rng), cap)
    second = _take(ds.batch_iterator(4, shuffle=rng), cap)
    for k in range(len(first) + 1):
        rng = make_rng()
        it = ds.batch_iterator(4, shuffle=rng)
        list(itertools.islice(it, k))
        state = json.loads(json.dumps(it.get_state()))
        # The job restarts: a new stream (seeded differently on purpose).
        fresh = np.random.RandomState(999) if stream == "RandomState" else \
            np.random.default_rng(999)
        resumed = ds.batch_iterator(4, shuffle=fresh, state=state)
        _assert_same(_take(resumed, None if cap is None else len(first) - k), first[k:],
                     f"epoch 1 restored at k={k}")
        _assert_same(_take(ds.batch_iterator(4, shuffle=fresh), cap), second,
                     f"epoch 2 after restoring at k={k}")


@pytest.mark.parametrize("runner", ["threads", "processes"])
@pytest.mark.parametrize("kind", ["repeats", "semi_supervised", "choice_rounds"])
def test_pool_restored_stream_continues_into_the_next_epoch(request, kind, runner):
    par = _runner_source(request, runner, STREAM_SOURCES[kind]())
    rng = np.random.RandomState(3)
    first = _take(par.batch_iterator(4, shuffle=rng), None)
    second = _take(par.batch_iterator(4, shuffle=rng), None)
    k = len(first) // 2
    it = par.batch_iterator(4, shuffle=np.random.RandomState(3))
    list(itertools.islice(it, k))
    state = json.loads(json.dumps(it.get_state()))
    it.close()
    fresh = np.random.RandomState(999)
    _assert_same(_take(par.batch_iterator(4, shuffle=fresh, state=state), None), first[k:],
                 f"epoch 1 restored at k={k}")
    _assert_same(_take(par.batch_iterator(4, shuffle=fresh), None), second,
                 f"epoch 2 after restoring at k={k}")


# ------------------------------------------------------------------ map generators


def test_map_generators_follow_the_batch_after_restore():
    seen = []

    def record(x):
        info = randomness.current_batch()
        seen.append((info.epoch, info.step, float(randomness.batch_rng().random()),
                     [float(g.random()) for g in randomness.sample_rngs()]))
        return (x,)

    ds = data_source.ArrayDataSource([X], repeats=2).map(record)
    _take(ds.batch_iterator(5, shuffle=4), None)
    uninterrupted = list(seen)
    it = ds.batch_iterator(5, shuffle=4)
    list(itertools.islice(it, 4))
    seen.clear()
    _take(ds.batch_iterator(5, shuffle=4, state=it.get_state()), None)
    assert seen == uninterrupted[4:]


def test_stacked_maps_get_independent_generators():
    # ds.map(f).map(g): f and g must not receive the same "random" numbers.
    draws = {}

    def inner(x):
        draws["inner"] = (randomness.batch_rng().random(3).tolist(),
                          [g.random() for g in randomness.sample_rngs()])
        return (x,)

    def outer(x):
        draws["outer"] = (randomness.batch_rng().random(3).tolist(),
                          [g.random() for g in randomness.sample_rngs()])
        return (x,)

    ds = data_source.ArrayDataSource([X]).map(inner).map(outer)
    next(ds.batch_iterator(4, shuffle=1))
    assert draws["inner"][0] != draws["outer"][0], "batch_rng() is the same in both maps"
    assert draws["inner"][1] != draws["outer"][1], "sample_rngs() are the same in both maps"


# ------------------------------------------------------------------ the helper itself


class ForgetfulIterator:
    """Yields 0..n-1 but ignores the state it is given (a broken resume)."""

    def __init__(self, n):
        self.n, self.i = n, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        return (np.array([self.i - 1]),)

    def get_state(self):
        return {"i": self.i}

    def set_state(self, state):
        pass


def test_assert_resumes_reports_the_step_and_the_difference():
    with pytest.raises(AssertionError, match=r"k=1 of 3.*batch 1\[0\]\[0\]: 0 != 1"):
        assert_resumes(lambda: ForgetfulIterator(3))


def test_assert_resumes_reports_nondeterminism():
    rng = np.random.RandomState(0)
    ds = data_source.ArrayDataSource([X])
    with pytest.raises(AssertionError, match="not deterministic"):
        assert_resumes(lambda: ds.batch_iterator(4, shuffle=rng))


def test_assert_resumes_needs_max_steps_for_endless_iteration():
    ds = data_source.ArrayDataSource([X], repeats=-1)
    with pytest.raises(ValueError, match="max_steps"):
        assert_resumes(lambda: ds.batch_iterator(4, shuffle=1))


def test_first_difference_compares_structure_and_dtype():
    a = (np.arange(3), (np.zeros(2, np.float32),))
    assert first_difference(a, copy.deepcopy(a)) is None
    assert "dtype" in first_difference(a, (np.arange(3), (np.zeros(2, np.float64),)))
    assert "shape" in first_difference(a, (np.arange(4), (np.zeros(2, np.float32),)))
    assert "length" in first_difference(a, (np.arange(3),))
    assert "type" in first_difference(a, [np.arange(3), (np.zeros(2, np.float32),)])
    nan = (np.array([np.nan, 1.0]),)
    assert first_difference(nan, copy.deepcopy(nan)) is None
    b = data_source.ChoiceBatch(np.arange(2), 1)
    assert first_difference(b, data_source.ChoiceBatch(np.arange(2), 2)) == "batch[1]: 1 != 2"


def test_testing_module_docstring_examples():
    result = doctest.testmod(batchup.testing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_rank_restores_from_another_ranks_state():
    # A sharded state is the same on every rank: rank 2 continues from rank 0's.
    ds = data_source.ArrayDataSource([X], repeats=2)
    it = ds.batch_iterator(2, shuffle=3, shard=ShardSpec(0, 3))
    list(itertools.islice(it, 2))
    state = json.loads(json.dumps(it.get_state()))
    other = ds.batch_iterator(2, shuffle=3, shard=ShardSpec(2, 3))
    want = _take(ds.batch_iterator(2, shuffle=3, shard=ShardSpec(2, 3)), None)[2:]
    other.set_state(state)
    _assert_same(_take(other, None), want, "rank 2 from rank 0's state")


def test_state_from_another_subset_or_other_weights_of_the_same_length_is_rejected():
    X = np.arange(20)
    a = data_source.ArrayDataSource([X], indices=np.arange(0, 10))
    b = data_source.ArrayDataSource([X], indices=np.arange(10, 20))
    it = a.batch_iterator(3, shuffle=1)
    next(it)
    with pytest.raises(ValueError, match="data source"):
        b.batch_iterator(3, shuffle=1, state=it.get_state())
    wa = data_source.ArrayDataSource([X], sampler=sampling.WeightedSampler(np.ones(20)))
    wb = data_source.ArrayDataSource([X], sampler=sampling.WeightedSampler(np.arange(1, 21)))
    it = wa.batch_iterator(3, shuffle=1)
    next(it)
    with pytest.raises(ValueError, match="data source"):
        wb.batch_iterator(3, shuffle=1, state=it.get_state())


def test_pass_beyond_repeats_is_rejected():
    ds = data_source.ArrayDataSource([np.arange(10)])
    it = ds.batch_iterator(3, shuffle=1)
    next(it)
    state = json.loads(json.dumps(it.get_state()))
    state["plan"]["pass"] = 7
    with pytest.raises(ValueError, match="'pass' 7"):
        ds.batch_iterator(3, shuffle=1, state=state)


def test_editing_a_returned_state_does_not_reach_the_iterator():
    ds = data_source.ArrayDataSource([np.arange(20)], repeats=2)
    it = ds.batch_iterator(3, shuffle=np.random.RandomState(4))
    next(it)
    state = it.get_state()
    state["fingerprint"]["shuffle"] = "tampered"
    state["plan"]["order"]["pos"] = -3
    again = it.get_state()
    assert again["fingerprint"]["shuffle"] == "stream RandomState"
    assert again["plan"]["order"]["pos"] != -3


def test_sample_rngs_need_indexed_batches():
    from batchup.randomness import sample_rngs

    def batches(batch_size, **kwargs):
        yield (np.zeros(batch_size),)

    ds = data_source.CallableDataSource(batches).map(lambda x: (x, sample_rngs()))
    with pytest.raises(TypeError, match="no indices"):
        next(ds.batch_iterator(2))
    comp = data_source.CompositeDataSource([data_source.ArrayDataSource([np.arange(4)])] * 2)
    with pytest.raises(TypeError, match="composite"):
        next(comp.map(lambda a, b: (a, sample_rngs())).batch_iterator(2, shuffle=1))

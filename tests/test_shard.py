"""Sharding: the ranks' shares of an iteration are disjoint and cover it, per remainder policy.

Checked with :func:`batchup.testing.assert_shards_cover` for seeded, stream and
in-order iteration, repeats, subsets, composite and choice sources; plus world
size 1, elastic resume (a state saved with one world size restored with
another of the same global batch size), ``num_batches`` per rank, padding
from the same epoch, and the errors for bad ``shard`` arguments.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from batchup import data_source, sampling, work_pool
from batchup.data_source import ShardSpec
from batchup.testing import assert_shards_cover, first_difference

POLICIES = ("pad", "drop", "even")
N = 23
SUBSET = np.array([3, 1, 4, 15, 9, 2, 6, 22, 5, 8, 7, 20, 13])

SHUFFLES: dict[str, Callable[[], Any]] = {
    "seed": lambda: 7,
    "RandomState": lambda: np.random.RandomState(3),
    "Generator": lambda: np.random.default_rng(3),
    "in_order": lambda: None,
}

# (world_size, per-rank batch size): G below N, dividing N's multiples, and above N.
LAYOUTS = [(1, 4), (2, 3), (3, 2), (4, 1), (8, 4)]


def _indices(ds: Any, b: int, shuffle: str, shard: Any, **kw: Any) -> Any:
    return ds.batch_indices_iterator(b, shuffle=SHUFFLES[shuffle](), shard=shard, **kw)


def _collect(ds: Any, b: int, shuffle: str, world: int, policy: str, **kw: Any) -> list:
    return [list(_indices(ds, b, shuffle, ShardSpec(r, world, policy), **kw))
            for r in range(world)]


# ------------------------------------------------------------------ coverage: plain sources

PLAIN = {
    "array": (lambda: data_source.ArrayDataSource([np.arange(N) * 10]), np.arange(N)),
    "subset": (lambda: data_source.ArrayDataSource([np.arange(N)], indices=SUBSET), SUBSET),
    "repeats": (lambda: data_source.ArrayDataSource([np.arange(N)], repeats=3),
                np.tile(np.arange(N), 3)),
    "subset_repeats": (lambda: data_source.ArrayDataSource([np.arange(N)], indices=SUBSET,
                                                           repeats=2), np.tile(SUBSET, 2)),
}


@pytest.mark.parametrize(("world", "b"), LAYOUTS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shuffle", list(SHUFFLES))
@pytest.mark.parametrize("kind", list(PLAIN))
def test_shards_cover_an_iteration(kind, shuffle, policy, world, b):
    make, expected = PLAIN[kind]
    ds = make()
    assert_shards_cover(lambda r: _indices(ds, b, shuffle, ShardSpec(r, world, policy)),
                        world, expected, policy, batch_size=b)


# ------------------------------------------------------------------ coverage: composite


def _composite():
    return data_source.CompositeDataSource([
        data_source.ArrayDataSource([np.arange(N)]),
        data_source.ArrayDataSource([np.arange(40)], indices=np.arange(40)[::-1][:N].copy()),
    ])


def _semi_supervised():
    return data_source.CompositeDataSource([
        data_source.ArrayDataSource([np.arange(5)], repeats=-1),
        data_source.ArrayDataSource([np.arange(N) + 100]),
    ])


COMPOSITES = {
    "composite-0": (_composite, 0, np.arange(N)),
    "composite-1": (_composite, 1, np.arange(40)[::-1][:N]),
    "semi_supervised-unlabelled": (_semi_supervised, 1, np.arange(N)),
}


@pytest.mark.parametrize(("world", "b"), LAYOUTS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
@pytest.mark.parametrize("kind", list(COMPOSITES))
def test_shards_cover_a_composite_component(kind, shuffle, policy, world, b):
    make, component, expected = COMPOSITES[kind]
    ds = make()

    def rank(r):
        return (batch[component]
                for batch in _indices(ds, b, shuffle, ShardSpec(r, world, policy)))

    assert_shards_cover(rank, world, expected, policy, batch_size=b)


# ------------------------------------------------------------------ coverage: choice

CHOICE_SIZES = (17, 9, 7)


def _choice():
    return data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([np.arange(n) + 1000 * d]) for d, n in
         enumerate(CHOICE_SIZES)], stratified=True)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
def test_shards_cover_every_choice_component(shuffle, policy):
    world, b = 3, 2  # G = 6: no component is smaller than a global batch
    ds = _choice()
    per_rank = _collect(ds, b, shuffle, world, policy)
    for d, n in enumerate(CHOICE_SIZES):
        mine = [[c.sample_indices for c in batches if c.ds_index == d] for batches in per_rank]
        assert_shards_cover(lambda r, mine=mine: mine[r], world, np.arange(n), policy,
                            batch_size=b)
    if policy != "even":
        schedules = [[c.ds_index for c in batches] for batches in per_rank]
        assert all(s == schedules[0] for s in schedules), "ranks took different components"


@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
def test_choice_stratified_skips_components_without_batches(shuffle):
    # With drop_last (or a shard policy) a component can have no batch at all; the
    # stratified schedule must not visit it (that would end the iteration early).
    ds = _choice()
    got = list(ds.batch_indices_iterator(8, shuffle=SHUFFLES[shuffle](), drop_last=True))
    assert [c.ds_index for c in got].count(0) == 2
    assert [c.ds_index for c in got].count(1) == 1
    assert len(got) == ds.num_batches(8, shuffle=SHUFFLES[shuffle](), drop_last=True) == 3


# ------------------------------------------------------------------ padding, step alignment


@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
@pytest.mark.parametrize(("world", "b"), [(2, 3), (4, 2), (8, 4)])
def test_padding_repeats_the_start_of_the_same_epoch(shuffle, world, b):
    ds = data_source.ArrayDataSource([np.arange(N)], repeats=2)
    size = world * b
    # The global order: an unsharded iteration that leaves nothing out.
    order = np.concatenate(list(_indices(ds, size, shuffle, ShardSpec(0, 1, "even"))))
    last_epoch = order[N:]
    per_rank = _collect(ds, b, shuffle, world, "pad")
    steps = len(per_rank[0])
    glob = np.concatenate([np.concatenate([per_rank[r][t] for r in range(world)])
                           for t in range(steps)])
    short = len(order) % size
    pad = (size - short) % size
    assert len(glob) == len(order) + pad
    np.testing.assert_array_equal(glob[:len(order)], order)
    want = np.resize(last_epoch, pad)  # cycles if the epoch is shorter than the pad
    np.testing.assert_array_equal(glob[len(order):], want)


@pytest.mark.parametrize("policy", ["pad", "drop"])
@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
def test_ranks_stay_in_step_with_equal_states(shuffle, policy):
    ds = data_source.ArrayDataSource([np.arange(N)], repeats=2)
    its = [ds.batch_iterator(3, shuffle=SHUFFLES[shuffle](), shard=ShardSpec(r, 3, policy))
           for r in range(3)]
    for step in itertools.count():
        states = [json.dumps(it.get_state(), sort_keys=True) for it in its]
        assert len(set(states)) == 1, f"ranks' states differ after {step} batches"
        batches = [next(it, None) for it in its]
        if all(x is None for x in batches):
            break
        assert all(x is not None for x in batches), f"a rank ended early at step {step}"


# ------------------------------------------------------------------ world size 1


@pytest.mark.parametrize("shuffle", list(SHUFFLES))
@pytest.mark.parametrize("kind", list(PLAIN))
def test_world_size_one_even_equals_unsharded(kind, shuffle):
    ds = PLAIN[kind][0]()
    want = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle]()))
    got = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), shard=(0, 1, "even")))
    _assert_same(got, want, "shard=(0, 1, 'even')")
    dropped = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), drop_last=True))
    got = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), shard=(0, 1, "drop")))
    _assert_same(got, dropped, "shard=(0, 1, 'drop') vs drop_last=True")


def test_world_size_one_default_shard_equals_unsharded():
    # One process (e.g. ``shard=detect_shard()`` outside a launcher) has no ranks to keep
    # in step: sharding with world size 1 must give the unsharded batches, not pad the
    # last batch with repeated samples.
    ds = data_source.ArrayDataSource([np.arange(N) * 10], repeats=2)
    for shuffle in SHUFFLES:
        want = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle]()))
        for shard in [ShardSpec(0, 1), (0, 1)]:
            got = list(ds.batch_iterator(4, shuffle=SHUFFLES[shuffle](), shard=shard))
            _assert_same(got, want, f"shuffle={shuffle}, shard={shard!r}")
            assert ds.num_batches(4, shuffle=SHUFFLES[shuffle](), shard=shard) == len(want)


def _assert_same(got: list, want: list, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} batches, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        diff = first_difference(g, w, f"batch {i}")
        assert diff is None, f"{what}: {diff}"


# ------------------------------------------------------------------ elastic resume

ELASTIC = {
    "array_repeats": lambda: data_source.ArrayDataSource([np.arange(37)], repeats=2),
    "subset": lambda: data_source.ArrayDataSource([np.arange(N)], indices=SUBSET, repeats=3),
    "semi_supervised": _semi_supervised,
}


def _global_batches(per_rank: list) -> list:
    steps = max((len(x) for x in per_rank), default=0)
    out = []
    for t in range(steps):
        parts = [x[t] for x in per_rank if t < len(x)]
        if isinstance(parts[0], tuple):
            out.append(tuple(np.concatenate(c) for c in zip(*parts, strict=True)))
        else:
            out.append(np.concatenate(parts))
    return out


@pytest.mark.parametrize("k", [0, 1, 3, 6])
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
@pytest.mark.parametrize("kind", list(ELASTIC))
def test_elastic_resume_across_world_sizes(kind, shuffle, policy, k):
    ds = ELASTIC[kind]()
    # Saved at world size 4 with batch 2 (every rank's state is the same: take rank 3's).
    saver = _indices(ds, 2, shuffle, ShardSpec(3, 4, policy))
    list(itertools.islice(saver, k))
    state = json.loads(json.dumps(saver.get_state()))
    def remaining(world: int, b: int) -> list:
        # The global batches of an uninterrupted run at this world size, after step k.
        return _global_batches([list(_indices(ds, b, shuffle, ShardSpec(r, world, policy)))
                                for r in range(world)])[k:]

    want = remaining(4, 2)
    # One global order whatever the world size; only padding is per world size
    # (a single rank has nothing to balance and keeps its short last batch).
    _assert_same(remaining(2, 4), want, "world size 2 vs 4")
    for world, b in [(2, 4), (1, 8), (4, 2)]:
        per_rank = [list(ds.batch_indices_iterator(b, shuffle=SHUFFLES[shuffle](),
                                                   shard=ShardSpec(r, world, policy),
                                                   state=state))
                    for r in range(world)]
        got = _global_batches(per_rank)
        _assert_same(got, remaining(world, b),
                     f"restored at world size {world}, batch {b}, after {k}")
        if world == 1 and got and want:
            _assert_same(got[:-1], want[:-1], "world size 1 vs 4 before the last batch")


def test_elastic_resume_needs_the_same_global_batch_size():
    ds = ELASTIC["array_repeats"]()
    it = ds.batch_iterator(2, shuffle=1, shard=(0, 4))
    next(it)
    with pytest.raises(ValueError, match="global batch size"):
        ds.batch_iterator(2, shuffle=1, shard=(0, 2), state=it.get_state())


# ------------------------------------------------------------------ num_batches per rank

COUNTED = {
    **{k: v[0] for k, v in PLAIN.items()},
    "composite": _composite,
    "semi_supervised": _semi_supervised,
    "choice": _choice,
    "choice_small_component": lambda: data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([np.arange(n)]) for n in (29, 11, 3)], stratified=True),
    "choice_rounds": lambda: data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([np.arange(n)]) for n in (29, 11, 13)]),
}


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(("world", "b"), [(2, 3), (3, 2), (4, 4)])
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shuffle", ["seed", "RandomState", "in_order"])
@pytest.mark.parametrize("kind", list(COUNTED))
def test_num_batches_is_the_count_each_rank_gets(kind, shuffle, policy, world, b, drop_last):
    ds = COUNTED[kind]()
    for r in range(world):
        shard = ShardSpec(r, world, policy)
        it = ds.batch_iterator(b, shuffle=SHUFFLES[shuffle](), shard=shard, drop_last=drop_last)
        promised = it.num_batches()
        asked = ds.num_batches(b, shuffle=SHUFFLES[shuffle](), shard=shard, drop_last=drop_last)
        actual = sum(1 for _ in it)
        if asked is None and kind == "choice_rounds" and shuffle == "RandomState":
            # Documented: a stream-ordered round schedule is not drawn in advance.
            assert promised is None
            continue
        assert promised == asked == actual, (
            f"rank {r}: iterator says {promised}, num_batches says {asked}, got {actual}")


@pytest.mark.parametrize("policy", POLICIES)
def test_weighted_shards_are_slices_of_the_global_draw(policy):
    ds = data_source.ArrayDataSource([np.arange(N)],
                                     sampler=sampling.WeightedSampler(np.linspace(1, 2, N)))
    assert ds.num_batches(3, shuffle=5, shard=ShardSpec(1, 4, policy)) == np.inf
    glob = list(itertools.islice(ds.batch_indices_iterator(12, shuffle=5), 6))
    for r in range(4):
        mine = list(itertools.islice(
            ds.batch_indices_iterator(3, shuffle=5, shard=ShardSpec(r, 4, policy)), 6))
        for t in range(6):
            np.testing.assert_array_equal(mine[t], glob[t][3 * r:3 * (r + 1)])


# ------------------------------------------------------------------ pools shard the same way


@pytest.fixture(scope="module", params=["threads", "processes"])
def pool(request):
    cls = work_pool.WorkerThreadPool if request.param == "threads" else \
        work_pool.WorkerProcessPool
    with cls(2) as p:
        yield p


@pytest.mark.parametrize("policy", POLICIES)
def test_pool_shards_equal_serial_shards(pool, policy):
    ds = data_source.ArrayDataSource([np.arange(N) * 2.5, np.arange(N)], repeats=2)
    par = pool.parallel_data_source(ds, batch_buffer_size=4)
    for r in range(3):
        shard = ShardSpec(r, 3, policy)
        want = list(ds.batch_iterator(2, shuffle=9, shard=shard))
        got = list(par.batch_iterator(2, shuffle=9, shard=shard))
        _assert_same(got, want, f"rank {r} in a pool")


# ------------------------------------------------------------------ bad arguments

BAD_SHARDS = [
    ((2, 2), ValueError, "rank"),
    ((5, 2), ValueError, "rank"),
    ((-1, 2), ValueError, "rank"),
    ((0, 0), ValueError, "world_size"),
    ((0, -3), ValueError, "world_size"),
    ((1.5, 2), (TypeError, ValueError), "rank"),
    (("0", 2), (TypeError, ValueError), "rank"),
    ((True, 2), (TypeError, ValueError), "rank"),
    ((0, 2.0), (TypeError, ValueError), "world_size"),
    ((0, "2"), (TypeError, ValueError), "world_size"),
    ((0, 2, "bogus"), ValueError, "remainder"),
    ((0, 2, None), ValueError, "remainder"),
    ((0, 2, "pad", 1), TypeError, "shard"),
    ((0,), TypeError, "shard"),
    ("0/2", TypeError, "shard"),
    ([0, 2], TypeError, "shard"),
    (3, TypeError, "shard"),
]


@pytest.mark.parametrize("method", ["batch_iterator", "batch_indices_iterator", "num_batches"])
@pytest.mark.parametrize(("shard", "error", "name"), BAD_SHARDS,
                         ids=[repr(s[0]) for s in BAD_SHARDS])
def test_bad_shard_arguments_name_the_parameter(shard, error, name, method):
    ds = data_source.ArrayDataSource([np.arange(10)])
    with pytest.raises(error, match=name):
        getattr(ds, method)(2, shuffle=1, shard=shard)


@pytest.mark.parametrize(("args", "name"), [((2, 2), "rank"), ((0, 0), "world_size"),
                                            ((0, 2, "odd"), "remainder")])
def test_shard_spec_checks_its_fields(args, name):
    with pytest.raises(ValueError, match=name):
        ShardSpec(*args)


def _batches(batch_size, **kwargs):
    yield (np.arange(batch_size),)


class LookAlike:
    def num_samples(self, **kwargs):
        return 4

    def batch_iterator(self, batch_size, shuffle=None, drop_last=False):
        return _batches(batch_size)


UNSHARDABLE = {
    "callable": lambda: data_source.CallableDataSource(_batches, 4),
    "iterator": lambda: data_source.IteratorDataSource(_batches(2), 4),
    "callable.map": lambda: data_source.CallableDataSource(_batches, 4).map(lambda x: (x,)),
    "composite with callable": lambda: data_source.CompositeDataSource(
        [data_source.ArrayDataSource([np.arange(4)]),
         data_source.CallableDataSource(_batches, 4)]),
    "composite with look-alike": lambda: data_source.CompositeDataSource(
        [data_source.ArrayDataSource([np.arange(4)]), LookAlike()]),
}


@pytest.mark.parametrize("kind", list(UNSHARDABLE))
def test_sources_without_a_plan_cannot_be_sharded(kind):
    ds = UNSHARDABLE[kind]()
    with pytest.raises(TypeError, match="cannot be sharded"):
        ds.batch_iterator(2, shard=(0, 2))


# ------------------------------------------------------------------ the helper catches errors


def test_assert_shards_cover_catches_overlapping_shares():
    ds = data_source.ArrayDataSource([np.arange(10)])
    with pytest.raises(AssertionError, match="more often than expected"):
        assert_shards_cover(lambda r: ds.batch_indices_iterator(2, shuffle=1), 2,
                            np.arange(10), "drop")


def test_assert_shards_cover_catches_missing_samples():
    ds = data_source.ArrayDataSource([np.arange(10)])
    with pytest.raises(AssertionError, match="never seen"):
        assert_shards_cover(lambda r: ds.batch_indices_iterator(2, shuffle=1,
                                                                shard=(r, 2, "pad")),
                            2, np.arange(12), "pad")


def test_assert_shards_cover_catches_uneven_counts():
    batches = {0: [np.array([0, 1])], 1: [np.array([2, 3]), np.array([4, 5])]}
    with pytest.raises(AssertionError, match="differ by at most one, lower ranks first"):
        assert_shards_cover(lambda r: batches[r], 2, range(6), "even")

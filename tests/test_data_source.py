"""Tests of ``batchup.data_source``: golden batches from 0.2.3, spec examples, properties."""

import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchup import data_source, sampling

PROPS = settings(max_examples=50, deadline=None)


def GOLDEN_SELECT(case):
    """Source-level cases (composite, choice, batch_map and non-weighted arrays)."""
    if case["kind"] == "sampler":
        return False
    src = case["source"]
    return not (src["type"] == "array" and src.get("sampler"))


# Users rely on the exact order of seeded shuffles: these batches (and the RNG
# state after every request) were recorded from batchup 0.2.3.
def test_golden(golden_case, golden_replay):
    golden_replay(golden_case)


def _vals(batches):
    """Batches as nested lists, for readable comparisons."""

    def conv(x):
        if isinstance(x, tuple):
            return tuple(conv(v) for v in x)
        return np.asarray(x).tolist()

    return [conv(b) for b in batches]


def _take(it, n):
    return [next(it) for _ in range(n)]


X10 = np.arange(10) * 10


# --------------------------------------------------------------- 1.1 structure helpers


def test_length_of_batch_tuples():
    X, Y = np.arange(10), np.arange(20)
    assert data_source._length_of_batch((X, Y)) == 10
    assert data_source._length_of_batch(((Y,), X)) == 20
    assert data_source._length_of_batch(X) == 10
    assert data_source._length_of_batch(data_source.ChoiceBatch(X, 0)) == 10


def test_trim_batch_tuples():
    X, Y = np.arange(10), np.arange(20)
    t = data_source._trim_batch(((Y,), X, Y), 5)
    assert type(t) is tuple and type(t[0]) is tuple
    assert [len(t[0][0]), len(t[1]), len(t[2])] == [5, 5, 5]
    np.testing.assert_array_equal(t[2], np.arange(5))


def test_list_of_arrays_nests_like_tuple():
    X, Y = np.arange(10), np.arange(20)
    assert data_source._length_of_batch([X, Y]) == 10
    t = data_source._trim_batch(([X, Y], X, Y), 5)
    assert [len(v) for v in t[0]] == [5, 5]
    assert [len(t[1]), len(t[2])] == [5, 5]


def test_is_array_like():
    assert data_source._is_array_like(np.arange(3))
    assert data_source._is_array_like([1, 2])
    assert not data_source._is_array_like(5)
    assert not data_source._is_array_like(iter([1]))


# --------------------------------------------------------------- 1.2 shuffle argument


@pytest.mark.parametrize("shuffle", [None, False])
def test_shuffle_none_false_in_order(shuffle):
    ds = data_source.ArrayDataSource([X10])
    assert _vals(ds.batch_iterator(4, shuffle=shuffle)) == [
        ([0, 10, 20, 30],),
        ([40, 50, 60, 70],),
        ([80, 90],),
    ]


def test_shuffle_true_uses_global_generator(global_rng_state):
    ds = data_source.ArrayDataSource([X10], repeats=2)
    np.random.seed(42)
    got = _vals(ds.batch_iterator(3, shuffle=True))
    after = np.random.randint(2**31)
    rs = np.random.RandomState(42)
    want = _vals(ds.batch_iterator(3, shuffle=rs))
    assert got == want
    assert after == rs.randint(2**31)


def test_shuffle_numpy_generator_consumed_as_stream():
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
    got = np.concatenate([b[0] for b in ds.batch_iterator(4, shuffle=np.random.default_rng(3))])
    ref = np.random.default_rng(3)
    want = np.concatenate([ref.permutation(10), ref.permutation(10)])
    np.testing.assert_array_equal(got, want)


def test_shuffle_numpy_generator_draw_count():
    g = np.random.default_rng(11)
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=3)
    assert len(list(ds.batch_iterator(5, shuffle=g))) == 6
    ref = np.random.default_rng(11)
    for _ in range(4):  # repeats + 1: the last one drawn on the terminating request
        ref.permutation(10)
    assert g.integers(2**31) == ref.integers(2**31)


def test_shuffle_duck_typed_rng(counting_rng):
    rng = counting_rng(12345)
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
    got = _vals(ds.batch_iterator(4, shuffle=rng))
    assert got == [
        ([0, 7, 3, 9],),
        ([6, 4, 1, 8],),
        ([5, 2, 4, 0],),
        ([9, 5, 7, 3],),
        ([8, 6, 1, 2],),
    ]
    assert rng.calls == [("permutation", 10)] * 3


def test_shuffle_int_seed_deterministic_and_complete():
    ds = data_source.ArrayDataSource([np.arange(50)], include_indices=True)
    a = _vals(ds.batch_iterator(8, shuffle=7))
    b = _vals(ds.batch_iterator(8, shuffle=7))
    assert a == b
    flat = sum((list(x[0]) for x in a), [])
    assert sorted(flat) == list(range(50)) and flat != list(range(50))
    c = _vals(ds.batch_iterator(8, shuffle=8))
    assert c != a


def test_shuffle_int_seed_zero_is_a_seed():
    ds = data_source.ArrayDataSource([np.arange(40)])
    a = np.concatenate([b[0] for b in ds.batch_iterator(8, shuffle=0)])
    b = np.concatenate([b[0] for b in ds.batch_iterator(8, shuffle=0)])
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == list(range(40))
    assert a.tolist() != list(range(40))


def test_shuffle_int_seed_indices_iterator_matches_batches():
    ds = data_source.ArrayDataSource([X10], repeats=2)
    idx = list(ds.batch_indices_iterator(3, shuffle=5))
    got = [ds.samples_by_indices_nomapping(i) for i in idx]
    assert _vals(got) == _vals(ds.batch_iterator(3, shuffle=5))


def test_shuffle_int_seed_composite_components_independent():
    ds = data_source.ArrayDataSource([np.arange(60)])
    comp = data_source.CompositeDataSource([ds, ds])
    batches = list(comp.batch_iterator(60, shuffle=3))
    assert len(batches) == 1
    a, b = batches[0]
    assert sorted(a.tolist()) == sorted(b.tolist()) == list(range(60))
    assert a.tolist() != b.tolist()
    again = list(comp.batch_iterator(60, shuffle=3))
    assert _vals(again) == _vals(batches)


def test_shuffle_int_seed_choice_deterministic():
    ch = data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([np.arange(9)]), data_source.ArrayDataSource([X10])]
    )
    assert _vals(ch.batch_iterator(2, shuffle=4)) == _vals(ch.batch_iterator(2, shuffle=4))


@pytest.mark.parametrize("shuffle", [1.5, "yes", -1, [1, 2], object()])
def test_bad_shuffle_rejected_at_call(shuffle):
    ds = data_source.ArrayDataSource([X10])
    with pytest.raises((TypeError, ValueError), match="shuffle"):
        ds.batch_iterator(2, shuffle=shuffle)


def test_bad_shuffle_rejected_indices_iterator():
    ds = data_source.ArrayDataSource([X10])
    with pytest.raises((TypeError, ValueError), match="shuffle"):
        ds.batch_indices_iterator(2, shuffle=2.5)


def test_bad_shuffle_rejected_composite():
    comp = data_source.CompositeDataSource([data_source.ArrayDataSource([X10])])
    with pytest.raises((TypeError, ValueError), match="shuffle"):
        comp.batch_iterator(2, shuffle="x")


def test_bad_shuffle_rejected_choice():
    ch = data_source.ChoiceDataSource([data_source.ArrayDataSource([X10])])
    with pytest.raises((TypeError, ValueError), match="shuffle"):
        ch.batch_iterator(2, shuffle=-3)


# --------------------------------------------------------------- 1.3 abstract source


def test_abstract_data_source():
    ds = data_source.AbstractDataSource()
    assert ds.is_random_access is False
    with pytest.raises(NotImplementedError):
        ds.num_samples()
    with pytest.raises(NotImplementedError):
        ds.batch_iterator(3)
    m = ds.map(lambda *b: b)
    assert isinstance(m, data_source.MapDataSource)


# --------------------------------------------------------------- 1.4 / 1.5 ArrayDataSource


def test_array_data_source_attributes():
    X, y = np.zeros((6, 2)), np.arange(6)
    data = [X, y]
    ds = data_source.ArrayDataSource(data, repeats=3)
    assert ds.data is data and ds.data[0] is X
    assert ds.is_random_access is True
    assert ds.num_samples() == 18 and type(ds.num_samples()) is int
    assert isinstance(ds.sampler, sampling.StandardSampler)
    assert data_source.ArrayDataSource(data, repeats=-1).num_samples() == np.inf
    sub = data_source.ArrayDataSource(data, indices=np.array([1, 4]), repeats=2)
    assert isinstance(sub.sampler, sampling.SubsetSampler)
    assert sub.num_samples() == 4


def test_include_indices_in_order_example():
    ds = data_source.ArrayDataSource([X10, X10 + 1], include_indices=True)
    first = next(ds.batch_iterator(3))
    assert _vals([first]) == [([0, 1, 2], [0, 10, 20], [1, 11, 21])]
    assert first[0].dtype == np.int64


def test_include_indices_subset_carries_data_indices():
    ds = data_source.ArrayDataSource(
        [X10], indices=np.array([7, 2, 5], dtype=np.int32), include_indices=True
    )
    assert _vals(ds.batch_iterator(2)) == [([7, 2], [70, 20]), ([5], [50])]
    assert _vals([ds.samples_by_indices(np.array([2, 0]))]) == [([5, 7], [50, 70])]


def test_samples_by_indices_maps_positions():
    ds = data_source.ArrayDataSource([X10], indices=np.array([9, 8, 1]))
    assert _vals([ds.samples_by_indices(np.array([0, 2]))]) == [([90, 10],)]
    assert _vals([ds.samples_by_indices_nomapping(np.array([0, 2]))]) == [([0, 20],)]


def test_samples_by_indices_nomapping_slice_and_scalar():
    ds = data_source.ArrayDataSource([X10], include_indices=True)
    idx, vals = ds.samples_by_indices_nomapping(slice(2, 8, 2))
    assert idx.tolist() == [2, 4, 6] and vals.tolist() == [20, 40, 60]
    idx, vals = ds.samples_by_indices_nomapping(slice(1, 4))
    assert idx.tolist() == [1, 2, 3]
    s = ds.samples_by_indices_nomapping(3)
    assert isinstance(s, tuple) and s[0] == 3 and s[1] == 30


def test_batches_are_copies():
    X = np.arange(10)
    ds = data_source.ArrayDataSource([X])
    for (b,) in ds.batch_iterator(4, shuffle=np.random.RandomState(0)):
        b[:] = -1
    np.testing.assert_array_equal(X, np.arange(10))


def test_subset_indices_list_converted_to_int64_arrays():
    ds = data_source.ArrayDataSource([X10], indices=[5, 3, 1], include_indices=True, repeats=2)
    for b in ds.batch_iterator(2):
        assert isinstance(b[0], np.ndarray) and b[0].dtype == np.int64
    for b in ds.batch_indices_iterator(2):
        assert isinstance(b, np.ndarray) and b.dtype == np.int64
    assert _vals(ds.batch_iterator(4)) == [([5, 3, 1, 5], [50, 30, 10, 50]), ([3, 1], [30, 10])]


def test_batch_indices_iterator_returns_data_indices():
    ds = data_source.ArrayDataSource([X10], indices=np.array([9, 4, 6]))
    assert [b.tolist() for b in ds.batch_indices_iterator(2)] == [[9, 4], [6]]


def test_reference_vectors():
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
    assert _vals(ds.batch_iterator(4, shuffle=np.random.RandomState(12345))) == [
        ([0, 7, 3, 9],),
        ([6, 4, 1, 8],),
        ([5, 2, 4, 0],),
        ([9, 5, 7, 3],),
        ([8, 6, 1, 2],),
    ]
    inf = data_source.ArrayDataSource([np.arange(3)], repeats=-1)
    it = inf.batch_iterator(7, shuffle=np.random.RandomState(1))
    assert _vals(_take(it, 3)) == [
        ([0, 2, 1, 1, 2, 0, 0],),
        ([2, 1, 0, 2, 1, 1, 2],),
        ([0, 2, 0, 1, 2, 0, 1],),
    ]
    sub = data_source.ArrayDataSource([np.arange(100)], indices=[50, 40, 30, 20, 10])
    assert _vals(sub.batch_iterator(2, shuffle=np.random.RandomState(7))) == [
        ([50, 20],),
        ([30, 40],),
        ([10],),
    ]


# --------------------------------------------------------------- bad input (one per case)


@pytest.mark.parametrize("bs", [0, -1, -64])
def test_batch_size_not_positive(bs):
    ds = data_source.ArrayDataSource([X10])
    with pytest.raises(ValueError, match="batch_size"):
        ds.batch_iterator(bs)


@pytest.mark.parametrize("bs", [2.5, "4", None, 4.0])
def test_batch_size_not_integer(bs):
    ds = data_source.ArrayDataSource([X10])
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        ds.batch_iterator(bs)


def test_batch_size_bad_in_indices_iterator():
    ds = data_source.ArrayDataSource([X10])
    with pytest.raises(ValueError, match="batch_size"):
        ds.batch_indices_iterator(0)


def test_batch_size_bad_in_composite():
    comp = data_source.CompositeDataSource([data_source.ArrayDataSource([X10])])
    with pytest.raises(ValueError, match="batch_size"):
        comp.batch_iterator(0)


def test_batch_size_bad_in_choice():
    ch = data_source.ChoiceDataSource([data_source.ArrayDataSource([X10])])
    with pytest.raises(ValueError, match="batch_size"):
        ch.batch_iterator(-2)


def test_batch_size_numpy_integer_ok():
    ds = data_source.ArrayDataSource([X10])
    assert [len(b[0]) for b in ds.batch_iterator(np.int64(4))] == [4, 4, 2]
    assert [len(b[0]) for b in ds.batch_iterator(np.int32(5))] == [5, 5]


def test_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="data"):
        data_source.ArrayDataSource([np.arange(5), np.arange(6)])


def test_empty_data_list():
    with pytest.raises(ValueError, match="data"):
        data_source.ArrayDataSource([])


@pytest.mark.parametrize("data", [(np.arange(3),), np.arange(3), "abc"])
def test_data_not_a_list(data):
    with pytest.raises(TypeError, match="data"):
        data_source.ArrayDataSource(data)


@pytest.mark.parametrize("bad", [5, None, 2.5])
def test_data_element_not_array_like(bad):
    with pytest.raises(TypeError, match="data"):
        data_source.ArrayDataSource([np.arange(3), bad])


@pytest.mark.parametrize("repeats", [0, -2])
def test_repeats_bad_value(repeats):
    with pytest.raises(ValueError, match="repeats"):
        data_source.ArrayDataSource([X10], repeats=repeats)


@pytest.mark.parametrize("repeats", [True, 2.5, "3"])
def test_repeats_not_integer(repeats):
    with pytest.raises((TypeError, ValueError), match="repeats"):
        data_source.ArrayDataSource([X10], repeats=repeats)


def test_indices_out_of_range_high():
    with pytest.raises(ValueError, match="indices"):
        data_source.ArrayDataSource([X10], indices=np.array([1, 10]))


def test_indices_negative():
    with pytest.raises(ValueError, match="indices"):
        data_source.ArrayDataSource([X10], indices=np.array([1, -1]))


def test_indices_not_integers():
    with pytest.raises((TypeError, ValueError), match="indices"):
        data_source.ArrayDataSource([X10], indices=np.array([1.0, 2.0]))


def test_indices_not_1d():
    with pytest.raises(ValueError, match="indices"):
        data_source.ArrayDataSource([X10], indices=np.array([[1, 2], [3, 4]]))


def test_empty_data_repeats_forever_rejected():
    with pytest.raises(ValueError, match="repeats|data|length"):
        data_source.ArrayDataSource([np.arange(0)], repeats=-1)


def test_empty_subset_repeats_forever_rejected():
    with pytest.raises(ValueError, match="repeats|indices"):
        data_source.ArrayDataSource([X10], indices=np.array([], dtype=np.int64), repeats=-1)


def test_sampler_with_indices():
    with pytest.raises(ValueError, match="indices"):
        data_source.ArrayDataSource(
            [X10], indices=np.array([1]), sampler=sampling.StandardSampler(10)
        )


def test_sampler_with_repeats():
    with pytest.raises(ValueError, match="repeats"):
        data_source.ArrayDataSource([X10], repeats=2, sampler=sampling.StandardSampler(10))


def test_weighted_sampler_longer_than_data():
    with pytest.raises(ValueError, match="sampler|weights"):
        data_source.ArrayDataSource([X10], sampler=sampling.WeightedSampler(np.ones(11)))


def test_weighted_sampler_shorter_than_data():
    with pytest.raises(ValueError, match="sampler|weights"):
        data_source.ArrayDataSource([X10], sampler=sampling.WeightedSampler(np.ones(9)))


def test_subset_sampler_index_past_data():
    with pytest.raises(ValueError, match="sampler|indices"):
        data_source.ArrayDataSource([X10], sampler=sampling.SubsetSampler(np.array([0, 10])))


def test_weighted_subset_sampler_index_past_data():
    with pytest.raises(ValueError, match="sampler|indices"):
        data_source.ArrayDataSource(
            [X10], sampler=sampling.WeightedSubsetSampler(np.ones(2), np.array([3, 12]))
        )


def test_standard_sampler_longer_than_data():
    with pytest.raises(ValueError, match="sampler"):
        data_source.ArrayDataSource([X10], sampler=sampling.StandardSampler(11))


def test_composite_of_nothing():
    with pytest.raises((ValueError, TypeError), match="datasets"):
        data_source.CompositeDataSource([])


def test_choice_of_nothing():
    with pytest.raises((ValueError, TypeError), match="datasets"):
        data_source.ChoiceDataSource([])


def test_map_not_callable():
    with pytest.raises(TypeError, match="fn"):
        data_source.ArrayDataSource([X10]).map(5)


def test_map_data_source_not_callable():
    with pytest.raises(TypeError, match="fn"):
        data_source.MapDataSource(data_source.ArrayDataSource([X10]), "f")


def test_coerce_unsupported_type():
    with pytest.raises(TypeError):
        data_source.coerce_data_source(5)


# --------------------------------------------------------------- 1.6 / 1.7 callable, iterator


def test_callable_data_source():
    seen = {}

    def batches(batch_size, **kwargs):
        seen.update(kwargs, batch_size=batch_size)
        return iter([(np.arange(batch_size),)])

    def n(**kwargs):
        seen["n_kwargs"] = kwargs
        return 11

    ds = data_source.CallableDataSource(batches, n)
    assert ds.is_random_access is False
    assert ds.num_samples(foo=1) == 11 and seen["n_kwargs"] == {"foo": 1}
    rng = np.random.RandomState(0)
    assert _vals(ds.batch_iterator(3, shuffle=rng)) == [([0, 1, 2],)]
    assert seen["shuffle"] is rng and seen["batch_size"] == 3
    assert data_source.CallableDataSource(batches).num_samples() is None
    assert data_source.CallableDataSource(batches, 7).num_samples() == 7
    assert data_source.CallableDataSource(batches, np.inf).num_samples() == np.inf


def test_callable_data_source_numpy_integer_count():
    ds = data_source.CallableDataSource(lambda bs, **kw: iter([]), np.int64(5))
    assert ds.num_samples() == 5


def test_callable_data_source_bad_count():
    with pytest.raises(TypeError, match="num_samples_fn"):
        data_source.CallableDataSource(lambda bs, **kw: iter([]), "5")


def test_iterator_data_source():
    it = iter([(np.arange(2),), (np.arange(3),)])
    ds = data_source.IteratorDataSource(it, n_samples=5)
    assert ds.num_samples() == 5
    assert ds.batch_iterator(99, shuffle=True) is it
    assert ds.batch_iterator(1) is it
    assert data_source.IteratorDataSource(it).num_samples() is None


def test_iterator_data_source_numpy_integer_count():
    ds = data_source.IteratorDataSource(iter([]), n_samples=np.int32(4))
    assert ds.num_samples() == 4


def test_iterator_data_source_bad_count():
    with pytest.raises(TypeError, match="n_samples"):
        data_source.IteratorDataSource(iter([]), n_samples="4")


# --------------------------------------------------------------- 1.12 coerce_data_source


def test_coerce_data_source_passthrough_and_sequences():
    ds = data_source.ArrayDataSource([X10])
    assert data_source.coerce_data_source(ds) is ds
    a, b = np.arange(4), np.arange(4) * 2
    for seq in ([a, b], (a, b)):
        c = data_source.coerce_data_source(seq)
        assert isinstance(c, data_source.ArrayDataSource)
        assert type(c.data) is list and c.data[0] is a and c.data[1] is b


def test_coerce_data_source_iterator():
    gen = ((np.arange(2),) for _ in range(3))
    c = data_source.coerce_data_source(gen)
    assert isinstance(c, data_source.IteratorDataSource)
    assert len(list(c.batch_iterator(2))) == 3


def test_coerce_data_source_callable():
    def f(batch_size, **kwargs):
        return iter([(np.zeros(batch_size),)])

    c = data_source.coerce_data_source(f)
    assert isinstance(c, data_source.CallableDataSource)
    assert [len(b[0]) for b in c.batch_iterator(4)] == [4]


def test_coerce_data_source_empty_sequence():
    with pytest.raises(ValueError):
        data_source.coerce_data_source([])


def test_coerce_data_source_non_array_element():
    with pytest.raises(TypeError):
        data_source.coerce_data_source([np.arange(3), 7])


def test_coerce_data_source_float_rejected():
    with pytest.raises(TypeError):
        data_source.coerce_data_source(3.5)


# --------------------------------------------------------------- 1.8 composite

CA = data_source.ArrayDataSource([np.arange(7)], repeats=-1)
CB = data_source.ArrayDataSource([np.arange(100, 111)])


def test_composite_examples():
    ab = data_source.CompositeDataSource([CA, CB])
    assert _vals(ab.batch_iterator(4)) == [
        ([0, 1, 2, 3], [100, 101, 102, 103]),
        ([4, 5, 6, 0], [104, 105, 106, 107]),
        ([1, 2, 3], [108, 109, 110]),
    ]
    nt = data_source.CompositeDataSource([CA, CB], trim=False)
    assert _vals(nt.batch_iterator(4))[-1] == ([1, 2, 3, 4], [108, 109, 110])
    st_ = data_source.CompositeDataSource([CA, CB], flatten=False)
    assert _vals(st_.batch_iterator(4))[-1] == (([1, 2, 3],), ([108, 109, 110],))


def test_composite_shuffled_shared_rng(counting_rng):
    rng = counting_rng(0)
    ab = data_source.CompositeDataSource([CA, CB])
    assert _vals(ab.batch_iterator(4, shuffle=rng)) == [
        ([6, 2, 1, 3], [103, 101, 109, 108]),
        ([0, 5, 4, 5], [110, 100, 106, 107]),
        ([2, 3, 4], [104, 102, 105]),
    ]
    assert rng.calls == [
        ("permutation", 7),
        ("permutation", 11),
        ("permutation", 7),
        ("permutation", 7),
    ]


def test_composite_nested_shapes():
    ab = data_source.CompositeDataSource([CA, CB])
    ab_s = data_source.CompositeDataSource([CA, CB], flatten=False)
    flat = next(data_source.CompositeDataSource([ab, ab_s]).batch_iterator(4))
    assert len(flat) == 4 and isinstance(flat[2], tuple) and isinstance(flat[3], tuple)
    nested = next(data_source.CompositeDataSource([ab, ab_s], flatten=False).batch_iterator(4))
    assert len(nested) == 2 and len(nested[0]) == 2 and len(nested[1]) == 2
    assert isinstance(nested[1][0], tuple)


def test_composite_attributes_num_samples():
    ab = data_source.CompositeDataSource([CA, CB], flatten=False, trim=False)
    assert ab.datasets == [CA, CB] and ab.flatten is False and ab.trim is False
    assert ab.is_random_access is True
    assert ab.num_samples() == 11
    inf = data_source.CompositeDataSource([CA, CA])
    assert inf.num_samples() == np.inf
    nra = data_source.CompositeDataSource(
        [CA, data_source.IteratorDataSource(iter([]), n_samples=3)]
    )
    assert nra.is_random_access is False
    assert nra.num_samples() == 3


def test_composite_not_random_access_errors():
    nra = data_source.CompositeDataSource([CA, data_source.IteratorDataSource(iter([]))])
    with pytest.raises(TypeError):
        nra.samples_by_indices_nomapping((np.array([0]), np.array([0])))
    with pytest.raises(TypeError):
        nra.samples_by_indices((np.array([0]), np.array([0])))
    with pytest.raises(TypeError):
        next(nra.batch_indices_iterator(2))


def test_composite_samples_by_indices():
    sub = data_source.ArrayDataSource([np.arange(10) * 2], indices=np.array([9, 8, 7]))
    comp = data_source.CompositeDataSource([CB, sub])
    got = comp.samples_by_indices((np.array([0, 1]), np.array([0, 2])))
    assert _vals([got]) == [([100, 101], [18, 14])]
    got = comp.samples_by_indices_nomapping((np.array([0, 1, 2]), np.array([0, 2])))
    assert _vals([got]) == [([100, 101], [0, 4])]  # trimmed to 2
    with pytest.raises(ValueError):
        comp.samples_by_indices_nomapping((np.array([0]),))


def test_composite_trim_false_indices_not_trimmed():
    nt = data_source.CompositeDataSource([CA, CB], trim=False)
    idx = list(nt.batch_indices_iterator(4))
    assert [tuple(np.asarray(i).tolist() for i in b) for b in idx][-1] == ([1, 2, 3, 4], [8, 9, 10])
    fetched = [nt.samples_by_indices_nomapping(b) for b in idx]
    assert _vals(fetched) == _vals(nt.batch_iterator(4))


def test_composite_trim_true_indices_trimmed():
    ab = data_source.CompositeDataSource([CA, CB])
    idx = list(ab.batch_indices_iterator(4))
    assert [len(i) for i in idx[-1]] == [3, 3]


def test_composite_with_choice_component_indices_trimmed():
    ch = data_source.ChoiceDataSource(
        [data_source.ArrayDataSource([np.arange(8)]), data_source.ArrayDataSource([X10[:3]])]
    )
    z = data_source.ArrayDataSource([np.arange(300, 310)], repeats=-1)
    comp = data_source.CompositeDataSource([ch, z])
    idx = list(comp.batch_indices_iterator(2))
    for cb, zi in idx:
        assert isinstance(cb, data_source.ChoiceBatch)
        assert len(cb.sample_indices) == len(zi)
    assert any(len(zi) == 1 for _, zi in idx)
    fetched = [comp.samples_by_indices_nomapping(b) for b in idx]
    assert _vals(fetched) == _vals(comp.batch_iterator(2))


def test_composite_list_batches_trimmed_and_flattened():
    a = data_source.ArrayDataSource([np.arange(7)], repeats=-1).map(lambda x: [x, x + 10])
    comp = data_source.CompositeDataSource([a, CB])
    batches = list(comp.batch_iterator(4))
    assert len(batches) == 3
    last = batches[-1]
    assert isinstance(last, tuple) and len(last) == 3
    assert [np.asarray(v).tolist() for v in last] == [[1, 2, 3], [11, 12, 13], [108, 109, 110]]


def test_composite_callable_returning_list():
    cds = data_source.CallableDataSource(
        lambda bs, **kw: [(np.arange(bs),), (np.arange(bs) + 5,)], 10
    )
    comp = data_source.CompositeDataSource([cds, CB])
    assert _vals(comp.batch_iterator(2)) == [([0, 1], [100, 101]), ([5, 6], [102, 103])]


def test_composite_same_component_twice_own_iterators(counting_rng):
    rng = counting_rng(1)
    comp = data_source.CompositeDataSource([CB, CB])
    batches = list(comp.batch_iterator(11, shuffle=rng))
    assert rng.calls == [("permutation", 11), ("permutation", 11)]
    a, b = batches[0]
    assert sorted(a.tolist()) == sorted(b.tolist()) and a.tolist() != b.tolist()


def test_composite_is_lazy(counting_rng):
    rng = counting_rng(0)
    it = data_source.CompositeDataSource([CA, CB]).batch_iterator(4, shuffle=rng)
    it2 = data_source.CompositeDataSource([CA, CB]).batch_indices_iterator(4, shuffle=rng)
    assert rng.calls == []
    next(it)
    assert len(rng.calls) == 2
    next(it2)
    assert len(rng.calls) == 4


# --------------------------------------------------------------- 1.9 choice

CX = data_source.ArrayDataSource([np.arange(0, 8)])
CY = data_source.ArrayDataSource([np.arange(100, 104)])
CZ = data_source.ArrayDataSource([np.arange(200, 202)])


def test_choice_examples():
    def run(stratified, shuffle):
        ch = data_source.ChoiceDataSource([CX, CY, CZ], stratified=stratified)
        return [b[0].tolist() for b in ch.batch_iterator(2, shuffle=shuffle)]

    assert run(False, None) == [[0, 1], [100, 101], [200, 201], [2, 3], [102, 103]]
    assert run(True, None) == [[0, 1], [100, 101], [200, 201], [2, 3], [4, 5], [102, 103], [6, 7]]
    assert run(False, np.random.RandomState(2)) == [
        [200, 201],
        [103, 101],
        [5, 4],
        [102, 100],
        [6, 1],
    ]
    assert run(True, np.random.RandomState(2)) == [
        [103, 101],
        [1, 4],
        [6, 0],
        [2, 5],
        [200, 201],
        [102, 100],
        [3, 7],
    ]


def test_choice_stratified_shuffle_single_call(counting_rng):
    rng = counting_rng(2)
    ch = data_source.ChoiceDataSource([CX, CY, CZ], stratified=True)
    list(ch.batch_iterator(2, shuffle=rng))
    assert rng.calls[0] == ("shuffle", 7)
    assert [c for c in rng.calls if c[0] == "shuffle"] == [("shuffle", 7)]


@pytest.mark.parametrize(
    "nb, expected",
    [
        ([8, 4, 2, 1], [0, 1, 2, 3, 0, 0, 1, 0, 0, 1, 2, 0, 0, 1, 0]),
        ([7, 3, 1], [0, 1, 2, 0, 0, 0, 1, 0, 0, 1, 0]),
        ([5, 3, 2], [0, 1, 2, 0, 0, 1, 0, 2, 0, 1]),
        ([1, 5], [0, 1, 1, 1, 1, 1]),
        ([3, 3], [0, 1, 0, 1, 0, 1]),
    ],
)
def test_stratified_in_order_schedule(nb, expected):
    got = data_source.ChoiceDataSource._ds_indices_stratified_in_order(nb)
    assert isinstance(got, np.ndarray) and np.issubdtype(got.dtype, np.integer)
    assert got.tolist() == expected


def test_stratified_shuffled_schedule():
    got = data_source.ChoiceDataSource._ds_indices_stratified_shuffled(
        [4, 2, 1], np.random.RandomState(2)
    )
    assert np.asarray(got).tolist() == [1, 0, 0, 0, 2, 1, 0]


def test_choice_attributes():
    ch = data_source.ChoiceDataSource([CX, CY, CZ], stratified=True)
    assert ch.datasets == [CX, CY, CZ] and ch.stratified is True
    assert ch.is_random_access is True
    assert ch.num_samples() == 14
    with_none = data_source.ChoiceDataSource(
        [CX, data_source.CallableDataSource(lambda bs, **kw: iter([]))]
    )
    assert with_none.num_samples() == 8 and with_none.is_random_access is False


def test_choice_batch_indices_iterator():
    ch = data_source.ChoiceDataSource([CX, CY, CZ])
    got = list(ch.batch_indices_iterator(2))
    assert [(b.ds_index, b.sample_indices.tolist()) for b in got] == [
        (0, [0, 1]),
        (1, [0, 1]),
        (2, [0, 1]),
        (0, [2, 3]),
        (1, [2, 3]),
    ]
    fetched = [ch.samples_by_indices_nomapping(b) for b in got]
    assert _vals(fetched) == _vals(ch.batch_iterator(2))
    assert _vals([ch.samples_by_indices(got[1])]) == [([100, 101],)]


def test_choice_batch_namedtuple_and_pickle():
    cb = data_source.ChoiceBatch(sample_indices=np.array([1, 2]), ds_index=1)
    assert cb._fields == ("sample_indices", "ds_index")
    cb2 = pickle.loads(pickle.dumps(cb))
    assert cb2.ds_index == 1 and cb2.sample_indices.tolist() == [1, 2]
    assert isinstance(cb2, data_source.ChoiceBatch)


def test_choice_samples_rejects_plain_tuple():
    ch = data_source.ChoiceDataSource([CX, CY])
    with pytest.raises(TypeError):
        ch.samples_by_indices_nomapping((np.array([0]), 0))


def test_choice_not_random_access_errors():
    ch = data_source.ChoiceDataSource([CX, data_source.IteratorDataSource(iter([]))])
    with pytest.raises(TypeError):
        ch.batch_indices_iterator(2)
    with pytest.raises(TypeError):
        ch.samples_by_indices_nomapping(data_source.ChoiceBatch(np.array([0]), 0))


def test_choice_is_lazy(counting_rng):
    rng = counting_rng(0)
    ch = data_source.ChoiceDataSource([CX, CY], stratified=True)
    it = ch.batch_iterator(2, shuffle=rng)
    it2 = ch.batch_indices_iterator(2, shuffle=rng)
    assert rng.calls == []
    next(it)
    assert rng.calls[0][0] == "shuffle"
    n = len(rng.calls)
    next(it2)
    assert len(rng.calls) > n


def _under_reporting(n_reported, n_batches, offset):
    def fn(batch_size, **kwargs):
        return iter([(np.arange(batch_size) + offset + i * 10,) for i in range(n_batches)])

    return data_source.CallableDataSource(fn, n_reported)


@pytest.mark.parametrize("shuffle", [None, 3])
def test_choice_stratified_under_reporting_ends_cleanly(shuffle):
    ch = data_source.ChoiceDataSource([_under_reporting(10, 1, 0), CY], stratified=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(ch.batch_iterator(2, shuffle=shuffle))
    assert 1 <= len(batches) <= 7
    assert all(len(b[0]) == 2 for b in batches)


def test_choice_stratified_none_count_falls_back_to_round():
    unknown = data_source.CallableDataSource(
        lambda bs, **kw: iter([(np.array([-1, -2]),), (np.array([-3, -4]),)])
    )
    strat = data_source.ChoiceDataSource([unknown, CY], stratified=True)
    rnd = data_source.ChoiceDataSource([unknown, CY], stratified=False)
    want = [[-1, -2], [100, 101], [-3, -4], [102, 103]]
    assert [b[0].tolist() for b in strat.batch_iterator(2)] == want
    assert [b[0].tolist() for b in rnd.batch_iterator(2)] == want


def test_choice_infinite_component_falls_back_to_round():
    inf = data_source.ArrayDataSource([np.arange(5)], repeats=-1)
    ch = data_source.ChoiceDataSource([inf, CY], stratified=True)
    got = [b[0].tolist() for b in ch.batch_iterator(2)]
    assert got == [[0, 1], [100, 101], [2, 3], [102, 103], [4, 0]]


# --------------------------------------------------------------- 1.10 map


def test_map_data_source():
    src = data_source.ArrayDataSource([X10, np.arange(10)], indices=np.array([3, 6, 9]))
    m = src.map(lambda x, y: (x + y, x - y))
    assert isinstance(m, data_source.MapDataSource)
    assert m.source is src and m.is_random_access is True
    assert m.num_samples() == 3
    assert _vals(m.batch_iterator(2)) == [([33, 66], [27, 54]), ([99], [81])]
    assert _vals([m.samples_by_indices(np.array([1]))]) == [([66], [54])]
    assert _vals([m.samples_by_indices_nomapping(np.array([1]))]) == [([11], [9])]
    assert [b.tolist() for b in m.batch_indices_iterator(2)] == [[3, 6], [9]]


def test_map_does_not_mutate_source():
    src = data_source.ArrayDataSource([X10])
    m = src.map(lambda x: (x * 2,))
    assert m is not src and not hasattr(src, "fn")
    assert _vals(src.batch_iterator(5)) == [([0, 10, 20, 30, 40],), ([50, 60, 70, 80, 90],)]


def test_map_not_random_access_errors():
    m = data_source.IteratorDataSource(iter([(np.arange(2),)])).map(lambda x: (x,))
    assert m.is_random_access is False
    with pytest.raises(TypeError):
        m.batch_indices_iterator(2)
    with pytest.raises(TypeError):
        m.samples_by_indices(np.array([0]))
    with pytest.raises(TypeError):
        m.samples_by_indices_nomapping(np.array([0]))


# --------------------------------------------------------------- 1.11 batch_map_*


def _iter7(b=2):
    return data_source.ArrayDataSource([np.arange(7.0)]).batch_iterator(b)


def test_batch_map_mean_example():
    res = data_source.batch_map_mean(lambda x: x.sum(), _iter7())
    assert isinstance(res, tuple) and len(res) == 1
    assert res[0] == 3.0 and isinstance(res[0], np.floating)


def test_batch_map_mean_none_batches_excluded_from_denominator():
    calls = []

    def f(x):
        calls.append(len(x))
        return None if len(calls) == 1 else float(x.sum())

    (res,) = data_source.batch_map_mean(f, _iter7())
    assert res == pytest.approx((2 + 3 + 4 + 5 + 6) / 5)


@pytest.mark.parametrize(
    "conv", [int, np.int64, np.float32, float, np.float64], ids=lambda c: c.__name__
)
def test_batch_map_mean_scalar_types(conv):
    (res,) = data_source.batch_map_mean(lambda x: conv(x.sum()), _iter7())
    assert res == pytest.approx(3.0)


def test_batch_map_mean_list_result_like_tuple():
    res = data_source.batch_map_mean(lambda x: [x.sum(), float(len(x))], _iter7())
    assert isinstance(res, tuple) and len(res) == 2
    assert res[0] == pytest.approx(3.0) and res[1] == pytest.approx(1.0)


def test_batch_map_mean_does_not_mutate_results():
    returned = []

    def f(x):
        arr = np.array([x.sum(), len(x)], dtype=np.float64)
        returned.append((arr, arr.copy()))
        return arr

    (res,) = data_source.batch_map_mean(f, _iter7())
    np.testing.assert_allclose(res, [3.0, 1.0])
    for arr, copy in returned:
        np.testing.assert_array_equal(arr, copy)


def test_batch_map_mean_counts_samples_of_list_batches():
    ds = data_source.ArrayDataSource([np.arange(7.0), np.arange(7.0)]).map(lambda a, b: [a, b])
    (res,) = ds.batch_map_mean(lambda a, b: float(a.sum()), batch_size=3)
    assert res == pytest.approx(3.0)


def test_batch_map_mean_sum_axis():
    X = np.arange(14.0).reshape(7, 2)
    ds = data_source.ArrayDataSource([X])
    (res,) = ds.batch_map_mean(lambda x: x, batch_size=3, sum_axis=0)
    np.testing.assert_allclose(res, X.mean(axis=0))
    assert res.dtype == np.float64


def test_batch_map_mean_no_batches():
    with pytest.raises(ValueError):
        data_source.batch_map_mean(lambda x: x.sum(), iter([]))


def test_batch_map_mean_method_no_samples():
    ds = data_source.ArrayDataSource([np.zeros(0)])
    with pytest.raises(ValueError):
        ds.batch_map_mean(lambda x: x.sum(), batch_size=4)


def test_batch_map_mean_bad_result_type():
    with pytest.raises(TypeError):
        data_source.batch_map_mean(lambda x: "nope", _iter7())


def test_batch_map_concat_basic():
    res = data_source.batch_map_concat(lambda x: (x * 2, x[:1]), _iter7(3))
    assert isinstance(res, tuple) and len(res) == 2
    np.testing.assert_array_equal(res[0], np.arange(7.0) * 2)
    np.testing.assert_array_equal(res[1], [0.0, 3.0, 6.0])
    (single,) = data_source.batch_map_concat(lambda x: x + 1, _iter7(3))
    np.testing.assert_array_equal(single, np.arange(7.0) + 1)


def test_batch_map_concat_no_results_is_none():
    # 0.2.3's return value (spec section 7, item 11: its docstring was wrong).
    assert data_source.batch_map_concat(lambda x: None, _iter7()) is None
    assert data_source.batch_map_concat(lambda x: (x,), iter([])) is None
    ds = data_source.ArrayDataSource([np.arange(5)])
    assert ds.batch_map_concat(lambda x: None, batch_size=2) is None


@pytest.mark.parametrize("bad", [1.0, "nope", np.float64(1.0)], ids=["float", "str", "f64"])
def test_batch_map_concat_bad_result_type(bad):
    with pytest.raises(TypeError):
        data_source.batch_map_concat(lambda x: bad, _iter7())


def test_batch_map_progress_and_n_batches_protocol():
    seen = []

    def progress(it, total=None, leave=True):
        seen.append((total, leave))
        return it

    requested = []

    def gen():
        for i in range(10):
            requested.append(i)
            yield (np.array([float(i)]),)

    it = gen()
    (a,) = data_source.batch_map_concat(lambda x: x, it, progress_iter_func=progress, n_batches=3)
    assert a.tolist() == [0.0, 1.0, 2.0] and requested == [0, 1, 2]
    (b,) = data_source.batch_map_concat(lambda x: x, it, n_batches=2)
    assert b.tolist() == [3.0, 4.0] and requested == [0, 1, 2, 3, 4]
    (m,) = data_source.batch_map_mean(
        lambda x: float(x.sum()), it, progress_iter_func=progress, n_batches=2
    )
    assert m == pytest.approx(5.5)
    assert seen == [(3, False), (2, False)]


def test_batch_map_prepend_args():
    (res,) = data_source.batch_map_concat(lambda k, x: x * k, _iter7(), prepend_args=(10,))
    np.testing.assert_array_equal(res, np.arange(7.0) * 10)
    (m,) = data_source.batch_map_mean(
        lambda k, x: float((x + k).sum()), _iter7(), prepend_args=(1,)
    )
    assert m == pytest.approx(4.0)


def test_batch_map_methods_progress_total():
    seen = []

    def progress(it, total=None, leave=True):
        seen.append(total)
        return it

    ds = data_source.ArrayDataSource([np.arange(7.0)])
    (res,) = ds.batch_map_concat(lambda x: x, batch_size=2, progress_iter_func=progress)
    np.testing.assert_array_equal(res, np.arange(7.0))
    assert seen == [4]


def test_batch_map_methods_shuffle_forwarded():
    ds = data_source.ArrayDataSource([np.arange(10)])
    (res,) = ds.batch_map_concat(lambda x: x, batch_size=3, shuffle=np.random.RandomState(0))
    want = np.random.RandomState(0).permutation(10)
    np.testing.assert_array_equal(res, want)


def test_batch_map_methods_infinite_needs_n_batches():
    ds = data_source.ArrayDataSource([np.arange(5.0)], repeats=-1)
    with pytest.raises(ValueError):
        ds.batch_map_concat(lambda x: x, batch_size=2)
    with pytest.raises(ValueError):
        ds.batch_map_mean(lambda x: x.sum(), batch_size=2)
    (res,) = ds.batch_map_concat(lambda x: x, batch_size=2, n_batches=4)
    assert res.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]


def test_batch_map_methods_not_truncated_by_num_samples():
    ch = data_source.ChoiceDataSource(
        [
            data_source.ArrayDataSource([np.arange(8)]),
            data_source.ArrayDataSource([np.arange(100, 104)]),
            data_source.ArrayDataSource([np.arange(200, 202)]),
        ],
        stratified=True,
    )
    assert len(list(ch.batch_iterator(3))) == 6
    calls = []
    (res,) = ch.batch_map_concat(lambda x: calls.append(1) or x, batch_size=3)
    assert len(calls) == 6 and sorted(res.tolist()) == sorted(
        list(range(8)) + list(range(100, 104)) + [200, 201]
    )
    calls.clear()
    ch.batch_map_mean(lambda x: calls.append(1) or float(x.sum()), batch_size=3)
    assert len(calls) == 6
    calls.clear()
    ch.batch_map_concat(lambda x: calls.append(1) or x, batch_size=3, n_batches=2)
    assert len(calls) == 2


# --------------------------------------------------------------- num_batches / drop_last


def test_num_batches_method_array():
    ds = data_source.ArrayDataSource([X10])
    n = ds.num_batches(3)
    assert n == 4 and type(n) is int
    assert ds.num_batches(3, drop_last=True) == 3
    assert ds.num_batches(5, drop_last=True) == 2
    assert ds.num_batches(20, drop_last=True) == 0
    assert data_source.ArrayDataSource([X10], repeats=2).num_batches(3) == 7
    assert data_source.ArrayDataSource([X10], repeats=-1).num_batches(3) == float("inf")
    w = data_source.ArrayDataSource([X10], sampler=sampling.WeightedSampler(np.ones(10)))
    assert w.num_batches(3, shuffle=np.random.RandomState(0)) == float("inf")


def test_num_batches_method_composite_and_choice():
    ab = data_source.CompositeDataSource([CA, CB])
    assert ab.num_batches(4) == 3
    ch = data_source.ChoiceDataSource([CX, CY, CZ])
    assert ch.num_batches(2) == 5
    assert ch.num_batches(2, shuffle=np.random.RandomState(2)) is None
    st_ = data_source.ChoiceDataSource([CX, CY, CZ], stratified=True)
    assert st_.num_batches(2) == 7
    assert st_.num_batches(2, shuffle=np.random.RandomState(2)) == 7
    assert st_.num_batches(3) == 6


def test_drop_last():
    ds = data_source.ArrayDataSource([X10], include_indices=True)
    got = list(ds.batch_iterator(3, drop_last=True))
    assert [b[0].tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    idx = list(ds.batch_indices_iterator(4, drop_last=True))
    assert [i.tolist() for i in idx] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    sh = list(ds.batch_iterator(4, shuffle=np.random.RandomState(0), drop_last=True))
    full = list(ds.batch_iterator(4, shuffle=np.random.RandomState(0)))
    assert _vals(sh) == _vals(full[:2])


# --------------------------------------------------------------- laziness


def test_array_iterators_are_lazy(counting_rng):
    rng = counting_rng(0)
    ds = data_source.ArrayDataSource([X10], repeats=2)
    it = ds.batch_iterator(3, shuffle=rng)
    it2 = ds.batch_indices_iterator(3, shuffle=rng)
    assert rng.calls == []
    next(it)
    assert len(rng.calls) == 1
    next(it2)
    assert len(rng.calls) == 2


def test_weighted_iterators_are_lazy(counting_rng):
    rng = counting_rng(0)
    ds = data_source.ArrayDataSource([X10], sampler=sampling.WeightedSampler(np.ones(10)))
    it = ds.batch_iterator(3, shuffle=rng)
    assert rng.calls == []
    next(it)
    assert len(rng.calls) == 1


# --------------------------------------------------------------- properties

array_configs = st.fixed_dictionaries(
    {
        "length": st.integers(1, 25),
        "batch_size": st.integers(1, 30),
        "repeats": st.sampled_from([1, 2, 3]),
        "subset": st.booleans(),
        "shuffle": st.sampled_from(["none", "rs", "int", "gen"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _array_source(cfg, **kw):
    L = cfg["length"]
    X = np.arange(L * 2, dtype=np.float32).reshape(L, 2) + 1000
    y = np.arange(L) * 3
    if cfg["subset"]:
        indices = np.arange(L)[::-1][: max(1, L // 2 + 1)].copy()
    else:
        indices = None
    ds = data_source.ArrayDataSource(
        [X, y], indices=indices, repeats=cfg["repeats"], include_indices=True, **kw
    )
    positions = np.arange(L) if indices is None else indices
    return ds, X, y, positions


def _shuffle_arg(cfg):
    return {
        "none": lambda: None,
        "rs": lambda: np.random.RandomState(cfg["seed"]),
        "int": lambda: cfg["seed"],
        "gen": lambda: np.random.default_rng(cfg["seed"]),
    }[cfg["shuffle"]]()


@PROPS
@given(cfg=array_configs, drop_last=st.booleans())
def test_array_source_properties(cfg, drop_last):
    ds, X, y, positions = _array_source(cfg)
    B, L = cfg["batch_size"], len(positions)
    batches = list(ds.batch_iterator(B, shuffle=_shuffle_arg(cfg), drop_last=drop_last))
    # num_batches is exact
    assert ds.num_batches(B, shuffle=_shuffle_arg(cfg), drop_last=drop_last) == len(batches)
    total = L * cfg["repeats"]
    sizes = [len(b[0]) for b in batches]
    if drop_last:
        assert sizes == [B] * (total // B)
    else:
        assert sum(sizes) == total
        assert all(s == B for s in sizes[:-1])
    for idx, bx, by in batches:
        # fetched samples correspond to the reported indices
        np.testing.assert_array_equal(bx, X[idx])
        np.testing.assert_array_equal(by, y[idx])
    if drop_last or not batches:
        return
    flat = np.concatenate([b[0] for b in batches])
    for p in range(cfg["repeats"]):
        np.testing.assert_array_equal(np.sort(flat[p * L : (p + 1) * L]), np.sort(positions))
    if cfg["shuffle"] == "none":
        np.testing.assert_array_equal(flat, np.tile(positions, cfg["repeats"]))


@PROPS
@given(cfg=array_configs.filter(lambda c: c["shuffle"] != "none"))
def test_same_seed_same_batches(cfg):
    ds, *_ = _array_source(cfg)
    a = _vals(ds.batch_iterator(cfg["batch_size"], shuffle=_shuffle_arg(cfg)))
    b = _vals(ds.batch_iterator(cfg["batch_size"], shuffle=_shuffle_arg(cfg)))
    assert a == b


@PROPS
@given(cfg=array_configs)
def test_indices_iterator_reproduces_batches_array(cfg):
    ds, *_ = _array_source(cfg)
    idx = list(ds.batch_indices_iterator(cfg["batch_size"], shuffle=_shuffle_arg(cfg)))
    fetched = [ds.samples_by_indices_nomapping(i) for i in idx]
    assert _vals(fetched) == _vals(ds.batch_iterator(cfg["batch_size"], shuffle=_shuffle_arg(cfg)))


composite_configs = st.fixed_dictionaries(
    {
        "lengths": st.lists(st.integers(1, 15), min_size=1, max_size=3),
        "infinite": st.lists(st.booleans(), min_size=3, max_size=3),
        "batch_size": st.integers(1, 8),
        "trim": st.booleans(),
        "flatten": st.booleans(),
        "shuffle": st.sampled_from(["none", "rs", "int"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _composite(cfg):
    comps = []
    for i, L in enumerate(cfg["lengths"]):
        X = np.arange(L) + 1000 * (i + 1)
        inf = cfg["infinite"][i] and i > 0  # keep one finite component
        comps.append(
            data_source.ArrayDataSource([X, X * 2], include_indices=True, repeats=-1 if inf else 1)
        )
    return data_source.CompositeDataSource(comps, flatten=cfg["flatten"], trim=cfg["trim"]), comps


def _component_batches(batch, cfg, n):
    if cfg["flatten"]:
        return [batch[3 * i : 3 * i + 3] for i in range(n)]
    return list(batch)


@PROPS
@given(cfg=composite_configs)
def test_composite_properties(cfg):
    comp, comps = _composite(cfg)
    B = cfg["batch_size"]
    batches = list(comp.batch_iterator(B, shuffle=_shuffle_arg(cfg)))
    assert comp.num_batches(B, shuffle=_shuffle_arg(cfg)) == len(batches)
    finite = [L for i, L in enumerate(cfg["lengths"]) if not (cfg["infinite"][i] and i > 0)]
    assert len(batches) == math.ceil(min(finite) / B)
    for batch in batches:
        parts = _component_batches(batch, cfg, len(comps))
        lens = [len(p[0]) for p in parts]
        if cfg["trim"]:
            assert len(set(lens)) == 1
        for i, (idx, x, x2) in enumerate(parts):
            # every component stays aligned with its own indices
            np.testing.assert_array_equal(x, idx + 1000 * (i + 1))
            np.testing.assert_array_equal(x2, x * 2)
    idx = list(comp.batch_indices_iterator(B, shuffle=_shuffle_arg(cfg)))
    fetched = [comp.samples_by_indices_nomapping(i) for i in idx]
    assert _vals(fetched) == _vals(batches)


choice_configs = st.fixed_dictionaries(
    {
        "lengths": st.lists(st.integers(1, 12), min_size=1, max_size=4),
        "batch_size": st.integers(1, 5),
        "stratified": st.booleans(),
        "shuffle": st.sampled_from(["none", "rs", "int"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@PROPS
@given(cfg=choice_configs)
def test_choice_properties(cfg):
    comps = [
        data_source.ArrayDataSource([np.arange(L) + 100 * i], include_indices=True)
        for i, L in enumerate(cfg["lengths"])
    ]
    ch = data_source.ChoiceDataSource(comps, stratified=cfg["stratified"])
    B = cfg["batch_size"]
    batches = list(ch.batch_iterator(B, shuffle=_shuffle_arg(cfg)))
    n = ch.num_batches(B, shuffle=_shuffle_arg(cfg))
    if cfg["stratified"]:
        assert n == len(batches) == sum(math.ceil(L / B) for L in cfg["lengths"])
        # every component is delivered completely, exactly once
        for i, L in enumerate(cfg["lengths"]):
            got = [v for idx, x in batches if x[0] // 100 == i for v in idx.tolist()]
            assert sorted(got) == list(range(L))
    elif cfg["shuffle"] == "none":
        assert n == len(batches)
    else:
        assert n is None or n == len(batches)
    for idx, x in batches:
        assert len(idx) <= B
        np.testing.assert_array_equal(x % 100, idx)
    idx = list(ch.batch_indices_iterator(B, shuffle=_shuffle_arg(cfg)))
    fetched = [ch.samples_by_indices_nomapping(i) for i in idx]
    assert _vals(fetched) == _vals(batches)


class _LookAlikeSource:
    """Not an AbstractDataSource subclass, but shaped like one (0.2.3 accepted these)."""

    is_random_access = False

    def num_samples(self, **kwargs):
        return 6

    def batch_iterator(self, batch_size, **kwargs):
        for i in range(0, 6, batch_size):
            yield (np.arange(i, min(i + batch_size, 6)),)


def test_look_alike_sources_work_as_components():
    a = data_source.ArrayDataSource([np.arange(100, 106)])
    comp = data_source.CompositeDataSource([_LookAlikeSource(), a])
    assert [[x.tolist() for x in b] for b in comp.batch_iterator(4)] == [
        [[0, 1, 2, 3], [100, 101, 102, 103]], [[4, 5], [104, 105]]]
    assert comp.num_batches(4) is None and not comp.is_random_access
    choice = data_source.ChoiceDataSource([_LookAlikeSource(), a])
    assert [b[0].tolist() for b in choice.batch_iterator(4)] == [
        [0, 1, 2, 3], [100, 101, 102, 103], [4, 5], [104, 105]]
    mapped = data_source.MapDataSource(_LookAlikeSource(), lambda x: (x * 2,))
    assert [b[0].tolist() for b in mapped.batch_iterator(4)] == [[0, 2, 4, 6], [8, 10]]
    with pytest.raises(ValueError, match="batch_size"):
        comp.batch_iterator(0)


# -- strict keywords (a misspelling is an error, not silently ignored) ---------------------

def _array_ds(n=10):
    return data_source.ArrayDataSource([np.arange(n)])


@pytest.mark.parametrize("call, name, hint", [
    (lambda ds: ds.batch_iterator(4, shufle=3), "shufle", "shuffle"),
    (lambda ds: ds.batch_iterator(4, drop_lst=True), "drop_lst", "drop_last"),
    (lambda ds: ds.num_batches(32, epoch=2), "epoch", None),
    (lambda ds: ds.batch_indices_iterator(4, shard_=(0, 2)), "shard_", "shard"),
    (lambda ds: ds.num_batches(4, state={}), "state", None),
], ids=["shufle", "drop_lst", "num_batches-epoch", "indices-shard_", "num_batches-state"])
def test_misspelled_keyword_is_a_type_error_naming_it(call, name, hint):
    with pytest.raises(TypeError, match=repr(name)) as info:
        call(_array_ds())
    if hint is not None:
        assert f"did you mean {hint!r}" in str(info.value)


def test_misspelled_keyword_through_map_composite_and_choice():
    a, b = _array_ds(), _array_ds(6)
    for ds in (a.map(lambda x: (x,)), data_source.CompositeDataSource([a, b]),
               data_source.ChoiceDataSource([a, b])):
        with pytest.raises(TypeError, match="'shufle'"):
            ds.batch_iterator(2, shufle=1)


def test_keyword_accepted_by_one_component_is_passed_to_it_only():
    seen = []

    def batches(batch_size, scale=1, shuffle=None):
        seen.append(scale)
        yield (np.arange(batch_size) * scale,)

    ds = data_source.CompositeDataSource(
        [_array_ds(), data_source.CallableDataSource(batches)])
    (x, y), = list(ds.batch_iterator(3, scale=10))
    assert y.tolist() == [0, 10, 20] and seen == [10]
    with pytest.raises(TypeError, match="'scael'.*did you mean 'scale'"):
        ds.batch_iterator(3, scael=10)


def test_callable_source_with_var_keywords_accepts_anything():
    ds = data_source.CallableDataSource(lambda batch_size, **kw: iter([(np.arange(2),)]))
    assert len(list(ds.batch_iterator(2, anything=1))) == 1


def test_num_batches_of_weighted_source_without_shuffle_is_inf():
    sampler = sampling.WeightedSampler(np.ones(10))
    ds = data_source.ArrayDataSource([np.arange(10)], sampler=sampler)
    assert ds.num_batches(4) == np.inf
    assert ds.num_batches(4, shuffle=3) == np.inf
    comp = data_source.CompositeDataSource([ds, _array_ds(9)])
    assert comp.num_batches(4) == 3


@pytest.mark.parametrize("shuffle", [None, 0, 1, 2, 7, (3, 1)])
def test_num_batches_of_round_mode_choice_equals_actual_count(shuffle):
    x = data_source.ArrayDataSource([np.arange(8)])
    y = data_source.ArrayDataSource([np.arange(4)])
    z = data_source.ArrayDataSource([np.arange(6)])
    ds = data_source.ChoiceDataSource([x, y, z])
    assert ds.num_batches(2, shuffle=shuffle) == len(list(ds.batch_iterator(2, shuffle=shuffle)))


def test_num_batches_of_round_mode_choice_with_a_stream_is_unknown():
    x = data_source.ArrayDataSource([np.arange(8)])
    y = data_source.ArrayDataSource([np.arange(4)])
    ds = data_source.ChoiceDataSource([x, y])
    assert ds.num_batches(2, shuffle=np.random.RandomState(0)) is None


def test_error_messages_never_print_a_whole_array():
    big = np.arange(10_000)
    with pytest.raises(TypeError) as info:
        _array_ds().batch_iterator(big)
    assert "shape (10000,)" in str(info.value) and "9999" not in str(info.value)
    with pytest.raises(TypeError) as info:
        _array_ds().batch_iterator(2, shuffle=big)
    assert "shape (10000,)" in str(info.value) and "9999" not in str(info.value)
    with pytest.raises(TypeError) as info:
        data_source.CompositeDataSource(big)
    assert "9999" not in str(info.value)


def test_iterators_refuse_pickling_and_point_to_get_state():
    import pickle

    it = _array_ds().batch_iterator(3, shuffle=1)
    with pytest.raises(TypeError, match="get_state"):
        pickle.dumps(it)

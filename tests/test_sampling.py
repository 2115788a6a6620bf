"""Tests of ``batchup.sampling``: golden batches from 0.2.3, spec examples, properties."""

import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchup import data_source, sampling

PROPS = settings(max_examples=60, deadline=None)


def GOLDEN_SELECT(case):
    """Sampler-level cases and everything driven by a weighted sampler."""
    if case["kind"] == "sampler":
        return True
    src = case.get("source", {})
    return case["kind"] == "iter" and src.get("type") == "array" and src.get("sampler")


# Users rely on the exact order of seeded shuffles: these batches (and the RNG
# state after every request) were recorded from batchup 0.2.3.
def test_golden(golden_case, golden_replay):
    # WeightedSubsetSampler's output dtype is not pinned by the spec (integer only).
    strict = "subset" not in json_sampler_type(golden_case)
    golden_replay(golden_case, strict_dtype=strict)


def json_sampler_type(case):
    if case["kind"] == "sampler":
        return case["sampler"]["type"]
    return case["source"]["sampler"]["type"]


# --------------------------------------------------------------- reference model


class Oracle:
    """Executable form of the spec 2.3 state machine (positions, draws, their timing)."""

    def __init__(self, positions, batch_size, repeats, rng, subset):
        self.S = np.asarray(positions)
        self.B = batch_size
        self.repeats = repeats
        self.rng = rng
        self.subset = subset
        self.draws = 0
        self.it = self._gen()

    def _new_pass(self):
        if self.rng is None:
            return self.S
        self.draws += 1
        if self.subset:
            return self.rng.permutation(self.S)
        return self.rng.permutation(len(self.S))

    def _gen(self):
        L, B = len(self.S), self.B
        P = self._new_pass()
        if self.repeats == 1:
            for i in range(0, L, B):
                yield P[i : i + B]
            return
        pos, remaining = 0, self.repeats
        while True:
            if pos + B <= L:
                yield P[pos : pos + B]
                pos += B
                continue
            parts, n = [], 0
            while n < B:
                k = min(B - n, L - pos)
                parts.append(P[pos : pos + k])
                n += k
                pos += k
                if pos >= L:
                    P = self._new_pass()
                    pos = 0
                    if remaining > 0:
                        remaining -= 1
                    if remaining == 0:
                        break
            batch = np.concatenate(parts)
            if len(batch):
                yield batch
            if remaining == 0:
                return


def _take(it, n):
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


sampler_configs = st.fixed_dictionaries(
    {
        "length": st.integers(1, 25),
        "batch_size": st.integers(1, 30),
        "repeats": st.sampled_from([1, 2, 3, -1]),
        "seed": st.none() | st.integers(0, 2**31 - 1),
        "subset": st.booleans(),
    }
)


def _make_sampler(cfg):
    L = cfg["length"]
    if cfg["subset"]:
        positions = (np.arange(L, dtype=np.int64) * 7 + 3)[::-1].copy()
        return sampling.SubsetSampler(positions, repeats=cfg["repeats"]), positions
    return sampling.StandardSampler(L, repeats=cfg["repeats"]), np.arange(L)


@PROPS
@given(cfg=sampler_configs)
def test_sampler_matches_spec_state_machine(counting_rng, cfg):
    """Same batches and the same number of draws after every request as the spec model."""
    sampler, positions = _make_sampler(cfg)
    B = cfg["batch_size"]
    if cfg["seed"] is None:
        rng, it = None, sampler.in_order_indices_batch_iterator(B)
        oracle = Oracle(positions, B, cfg["repeats"], None, cfg["subset"])
    else:
        rng = counting_rng(cfg["seed"])
        it = sampler.shuffled_indices_batch_iterator(B, rng)
        oracle = Oracle(
            positions, B, cfg["repeats"], np.random.RandomState(cfg["seed"]), cfg["subset"]
        )
    n_requests = 12 if cfg["repeats"] == -1 else 10_000
    for _ in range(n_requests):
        try:
            want = next(oracle.it)
        except StopIteration:
            with pytest.raises(StopIteration):
                next(it)
            break
        got = next(it)
        np.testing.assert_array_equal(np.asarray(got), want)
        if rng is not None:
            assert len(rng.calls) == oracle.draws
    if rng is not None:
        assert len(rng.calls) == oracle.draws
        assert {name for name, _ in rng.calls} <= {"permutation"}


@PROPS
@given(cfg=sampler_configs.filter(lambda c: c["repeats"] != -1))
def test_every_pass_covers_each_position_once(cfg):
    sampler, positions = _make_sampler(cfg)
    B, L = cfg["batch_size"], cfg["length"]
    if cfg["seed"] is None:
        batches = list(sampler.in_order_indices_batch_iterator(B))
    else:
        rs = np.random.RandomState(cfg["seed"])
        batches = list(sampler.shuffled_indices_batch_iterator(B, rs))
    sizes = [len(b) for b in batches]
    total = L * cfg["repeats"]
    assert sum(sizes) == total
    assert len(batches) == math.ceil(total / B) == sampling.num_batches(total, B)
    assert all(s == B for s in sizes[:-1]) and 0 < sizes[-1] <= B
    flat = np.concatenate(batches)
    for p in range(cfg["repeats"]):
        np.testing.assert_array_equal(np.sort(flat[p * L : (p + 1) * L]), np.sort(positions))
    if cfg["seed"] is None:
        np.testing.assert_array_equal(flat, np.tile(positions, cfg["repeats"]))


@PROPS
@given(cfg=sampler_configs.filter(lambda c: c["repeats"] == -1), n=st.integers(1, 10))
def test_infinite_passes_are_permutations(cfg, n):
    sampler, positions = _make_sampler(cfg)
    B, L = cfg["batch_size"], cfg["length"]
    if cfg["seed"] is None:
        it = sampler.in_order_indices_batch_iterator(B)
    else:
        it = sampler.shuffled_indices_batch_iterator(B, np.random.RandomState(cfg["seed"]))
    batches = _take(it, n)
    assert [len(b) for b in batches] == [B] * n
    flat = np.concatenate(batches)
    for p in range(len(flat) // L):
        np.testing.assert_array_equal(np.sort(flat[p * L : (p + 1) * L]), np.sort(positions))
    if cfg["seed"] is None:
        reps = len(flat) // L + 1
        np.testing.assert_array_equal(flat, np.tile(positions, reps)[: len(flat)])


# --------------------------------------------------------------- 2.1 num_batches


@pytest.mark.parametrize("n, b, expected", [(20, 5, 4), (21, 5, 5), (0, 5, 0), (1, 5, 1)])
def test_num_batches(n, b, expected):
    assert sampling.num_batches(n, b) == expected


def test_num_batches_float_n_gives_float():
    r = sampling.num_batches(21.0, 5)
    assert isinstance(r, float) and r == 5.0


# --------------------------------------------------------------- 2.2 abstract sampler


def test_abstract_sampler():
    s = sampling.AbstractSampler()
    with pytest.raises(NotImplementedError):
        s.num_indices_generated()
    idx = np.array([3, 1])
    assert s.map_indices(idx) is idx
    with pytest.raises(NotImplementedError):
        s.in_order_indices_batch_iterator(2)
    with pytest.raises(NotImplementedError):
        s.shuffled_indices_batch_iterator(2, np.random.RandomState(0))


# --------------------------------------------------------------- 2.3 standard / subset


@pytest.mark.parametrize(
    "length, batch_size, repeats, expected",
    [
        (5, 2, 2, [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]),
        (
            10,
            7,
            3,
            [
                [0, 1, 2, 3, 4, 5, 6],
                [7, 8, 9, 0, 1, 2, 3],
                [4, 5, 6, 7, 8, 9, 0],
                [1, 2, 3, 4, 5, 6, 7],
                [8, 9],
            ],
        ),
        (3, 10, 2, [[0, 1, 2, 0, 1, 2]]),
    ],
)
def test_in_order_examples(length, batch_size, repeats, expected):
    got = list(
        sampling.StandardSampler(length, repeats=repeats).in_order_indices_batch_iterator(
            batch_size
        )
    )
    assert [b.tolist() for b in got] == expected


def test_in_order_20_by_64_repeats_16():
    got = list(sampling.StandardSampler(20, repeats=16).in_order_indices_batch_iterator(64))
    assert len(got) == 5
    np.testing.assert_array_equal(np.concatenate(got), np.tile(np.arange(20), 16))


def test_reference_standard_sampler_shuffled():
    s = sampling.StandardSampler(5, repeats=2)
    got = list(s.shuffled_indices_batch_iterator(2, np.random.RandomState(0)))
    assert [b.tolist() for b in got] == [[2, 0], [1, 3], [4, 0], [2, 1], [4, 3]]


def _draws_per_request(sampler, batch_size, rng):
    it = sampler.shuffled_indices_batch_iterator(batch_size, rng)
    counts = []
    while True:
        before = len(rng.calls)
        try:
            next(it)
        except StopIteration:
            return counts, len(rng.calls) - before
        counts.append(len(rng.calls) - before)
        if len(counts) > 50:
            return counts, None


@pytest.mark.parametrize(
    "batch_size, per_request, on_stop", [(5, [1, 0, 1, 0, 1, 0], 1), (7, [1, 1, 1, 0, 1], 0)]
)
def test_draw_counts_per_request(counting_rng, batch_size, per_request, on_stop):
    rng = counting_rng(0)
    counts, last = _draws_per_request(sampling.StandardSampler(10, repeats=3), batch_size, rng)
    assert counts == per_request
    assert last == on_stop
    assert rng.calls == [("permutation", 10)] * (3 + on_stop + (batch_size == 7))


def test_draw_counts_infinite(counting_rng):
    rng = counting_rng(0)
    it = sampling.StandardSampler(10, repeats=-1).shuffled_indices_batch_iterator(15, rng)
    counts = []
    for _ in range(7):
        before = len(rng.calls)
        next(it)
        counts.append(len(rng.calls) - before)
    assert counts == [2, 2, 1, 2, 1, 2, 1]


def test_finite_consumed_to_end_draws_repeats_plus_one(counting_rng):
    rng = counting_rng(5)
    list(sampling.StandardSampler(10, repeats=3).shuffled_indices_batch_iterator(7, rng))
    assert len(rng.calls) == 4


def test_repeats_one_shuffled_draws_once(counting_rng):
    rng = counting_rng(1)
    batches = list(sampling.StandardSampler(10).shuffled_indices_batch_iterator(3, rng))
    assert rng.calls == [("permutation", 10)]
    assert [len(b) for b in batches] == [3, 3, 3, 1]


def test_subset_sampler_permutes_the_subset_array(counting_rng):
    idx = np.array([50, 40, 30, 20, 10])
    rng = counting_rng(7)
    got = list(sampling.SubsetSampler(idx).shuffled_indices_batch_iterator(2, rng))
    assert [b.tolist() for b in got] == [[50, 20], [30, 40], [10]]
    assert rng.calls == [("permutation", 5)]


def test_sampler_iterators_are_lazy(counting_rng):
    rng = counting_rng(0)
    it = sampling.StandardSampler(10, repeats=2).shuffled_indices_batch_iterator(3, rng)
    it2 = sampling.SubsetSampler(np.arange(4)).shuffled_indices_batch_iterator(3, rng)
    assert rng.calls == []
    next(it)
    assert len(rng.calls) == 1
    next(it2)
    assert len(rng.calls) == 2


def test_attributes_and_num_indices_generated():
    s = sampling.StandardSampler(7, repeats=3)
    assert (s.length, s.repeats) == (7, 3)
    assert s.num_indices_generated() == 21
    assert sampling.StandardSampler(7, repeats=-1).num_indices_generated() == np.inf
    idx = np.array([4, 2, 9], dtype=np.int32)
    sub = sampling.SubsetSampler(idx, repeats=2)
    assert sub.length == 3 and sub.num_indices_generated() == 6
    np.testing.assert_array_equal(sub.map_indices(np.array([2, 0])), [9, 4])
    p = np.array([1, 2])
    assert s.map_indices(p) is p


def test_index_dtypes_standard():
    s = sampling.StandardSampler(10, repeats=2)
    for b in s.in_order_indices_batch_iterator(4):
        assert b.dtype == np.int64
    for b in s.shuffled_indices_batch_iterator(4, np.random.RandomState(0)):
        assert b.dtype == np.int64


def test_index_dtypes_subset_int32():
    idx = np.arange(10, dtype=np.int32)
    batches = list(sampling.SubsetSampler(idx, repeats=2).in_order_indices_batch_iterator(4))
    # [0:4], [4:8] fast path keep int32; [8,9,0,1] wraps -> int64; [2:6], [6:10] fast path
    assert [str(b.dtype) for b in batches] == ["int32", "int32", "int64", "int32", "int32"]
    once = list(
        sampling.SubsetSampler(idx).shuffled_indices_batch_iterator(3, np.random.RandomState(0))
    )
    assert all(b.dtype == np.int32 for b in once)


def test_zero_length_finite_yields_nothing():
    assert list(sampling.StandardSampler(0, repeats=2).in_order_indices_batch_iterator(3)) == []
    it = sampling.StandardSampler(0).shuffled_indices_batch_iterator(3, np.random.RandomState(0))
    assert list(it) == []


# --------------------------------------------------------------- sampler bad input


@pytest.mark.parametrize("repeats", [0, -2, -10])
def test_standard_sampler_bad_repeats_value(repeats):
    with pytest.raises(ValueError, match="repeats"):
        sampling.StandardSampler(5, repeats=repeats)


@pytest.mark.parametrize("repeats", [2.5, True, "2"])
def test_standard_sampler_non_integer_repeats(repeats):
    with pytest.raises((TypeError, ValueError), match="repeats"):
        sampling.StandardSampler(5, repeats=repeats)


def test_subset_sampler_bad_repeats():
    with pytest.raises(ValueError, match="repeats"):
        sampling.SubsetSampler(np.arange(3), repeats=0)


def test_standard_sampler_numpy_integer_repeats_ok():
    s = sampling.StandardSampler(4, repeats=np.int64(2))
    assert sum(len(b) for b in s.in_order_indices_batch_iterator(3)) == 8


def test_standard_sampler_length_zero_infinite_rejected():
    with pytest.raises(ValueError, match="repeats|length"):
        sampling.StandardSampler(0, repeats=-1)


def test_subset_sampler_empty_infinite_rejected():
    with pytest.raises(ValueError, match="repeats|indices"):
        sampling.SubsetSampler(np.array([], dtype=np.int64), repeats=-1)


# --------------------------------------------------------------- 2.4 / 2.5 weighted


def test_reference_weighted_sampler():
    ds = data_source.ArrayDataSource(
        [np.arange(3) * 10], sampler=sampling.WeightedSampler(np.array([1, 1, 2]))
    )
    it = ds.batch_iterator(4, shuffle=np.random.RandomState(3))
    assert [next(it)[0].tolist() for _ in range(2)] == [[20, 20, 10, 20], [20, 20, 0, 0]]


def test_weighted_sampler_accepts_list():
    a = sampling.WeightedSampler([1, 1, 2])
    b = sampling.WeightedSampler(np.array([1, 1, 2]))
    ra = list(_take(a.shuffled_indices_batch_iterator(4, np.random.RandomState(3)), 2))
    rb = list(_take(b.shuffled_indices_batch_iterator(4, np.random.RandomState(3)), 2))
    assert [x.tolist() for x in ra] == [x.tolist() for x in rb] == [[2, 2, 1, 2], [2, 2, 0, 0]]


def test_weighted_sampler_attributes():
    s = sampling.WeightedSampler(np.array([1, 1, 2], dtype=np.int32))
    np.testing.assert_allclose(s.weights, [0.25, 0.25, 0.5])
    assert s.weights.dtype == np.float64
    assert s.length == 3
    assert s.num_indices_generated() == np.inf
    p = np.array([0, 2])
    assert s.map_indices(p) is p


def test_weighted_subset_sampler_attributes():
    idx = np.array([7, 3, 9])
    s = sampling.WeightedSubsetSampler(np.array([1.0, 3.0, 0.0]), idx)
    np.testing.assert_allclose(s.sub_weights, [0.25, 0.75, 0.0])
    assert s.length == 3 and s.num_indices_generated() == np.inf
    np.testing.assert_array_equal(s.map_indices(np.array([1, 0])), [3, 7])


def test_weighted_subset_sampler_accepts_lists():
    s = sampling.WeightedSubsetSampler([0.0, 1.0, 1.0], np.array([10, 20, 30]))
    got = next(s.shuffled_indices_batch_iterator(50, np.random.RandomState(0)))
    assert set(np.asarray(got).tolist()) <= {20, 30}


weight_lists = st.lists(st.integers(0, 20), min_size=1, max_size=30).filter(lambda w: sum(w) > 0)


@PROPS
@given(w=weight_lists, seed=st.integers(0, 2**31 - 1), b=st.integers(1, 40), as_float=st.booleans())
def test_weighted_sampler_equals_randomstate_choice(w, seed, b, as_float):
    """Exactly the indices 0.2.3 returns: RandomState.choice(N, size=(B,), p=w / sum(w))."""
    weights = np.array(w, dtype=np.float64 if as_float else np.int64)
    ref_rs = np.random.RandomState(seed)
    p = weights.astype(np.float64) / weights.astype(np.float64).sum()
    rs = np.random.RandomState(seed)
    it = sampling.WeightedSampler(weights).shuffled_indices_batch_iterator(b, rs)
    for _ in range(3):
        got = next(it)
        want = ref_rs.choice(len(w), size=(b,), p=p)
        np.testing.assert_array_equal(got, want)
        assert np.all(weights[got] > 0)
    assert rs.randint(2**31) == ref_rs.randint(2**31)


@PROPS
@given(w=weight_lists, seed=st.integers(0, 2**31 - 1), b=st.integers(1, 40))
def test_weighted_subset_sampler_equals_randomstate_choice(w, seed, b):
    sub_w = np.array(w, dtype=np.float64)
    indices = np.arange(len(w), dtype=np.int64) * 3 + 1
    ref_rs = np.random.RandomState(seed)
    rs = np.random.RandomState(seed)
    it = sampling.WeightedSubsetSampler(sub_w, indices).shuffled_indices_batch_iterator(b, rs)
    for _ in range(3):
        got = next(it)
        want = ref_rs.choice(indices, size=(b,), p=sub_w / sub_w.sum())
        np.testing.assert_array_equal(got, want)
    assert rs.randint(2**31) == ref_rs.randint(2**31)


def test_weighted_sampler_calls_choice_on_duck_rng(counting_rng):
    rng = counting_rng(0)
    it = sampling.WeightedSampler(np.array([1.0, 2.0])).shuffled_indices_batch_iterator(3, rng)
    assert rng.calls == []  # lazy
    got = [next(it) for _ in range(3)]
    assert all(len(g) == 3 for g in got)
    ref = np.random.RandomState(0)
    for g in got:
        np.testing.assert_array_equal(g, ref.choice(2, size=(3,), p=[1 / 3, 2 / 3]))


def test_weighted_in_order_not_supported():
    assert issubclass(sampling.InOrderNotSupportedError, ValueError)
    assert issubclass(sampling.InOrderNotSupportedError, NotImplementedError)
    with pytest.raises(sampling.InOrderNotSupportedError):
        sampling.WeightedSampler(np.ones(3)).in_order_indices_batch_iterator(2)
    sub = sampling.WeightedSubsetSampler(np.ones(2), np.array([0, 1]))
    with pytest.raises(sampling.InOrderNotSupportedError):
        sub.in_order_indices_batch_iterator(2)


@pytest.mark.parametrize("shuffle", [None, False])
def test_weighted_in_order_raises_at_batch_iterator_call(shuffle):
    ds = data_source.ArrayDataSource([np.arange(3)], sampler=sampling.WeightedSampler(np.ones(3)))
    with pytest.raises(sampling.InOrderNotSupportedError):
        ds.batch_iterator(2, shuffle=shuffle)
    with pytest.raises(sampling.InOrderNotSupportedError):
        ds.batch_indices_iterator(2, shuffle=shuffle)


def test_weighted_subset_in_order_raises_at_batch_iterator_call():
    ds = data_source.ArrayDataSource(
        [np.arange(5)], sampler=sampling.WeightedSubsetSampler(np.ones(2), np.array([1, 3]))
    )
    with pytest.raises(NotImplementedError):
        ds.batch_iterator(2)


def test_weighted_sampler_nan_weights():
    with pytest.raises(ValueError, match="weights"):
        sampling.WeightedSampler(np.array([1.0, np.nan, 2.0]))


def test_weighted_sampler_negative_weights():
    with pytest.raises(ValueError, match="weights"):
        sampling.WeightedSampler(np.array([1.0, -0.5, 2.0]))


def test_weighted_sampler_all_zero_weights():
    with pytest.raises(ValueError, match="weights"):
        sampling.WeightedSampler(np.zeros(4))


def test_weighted_sampler_2d_weights():
    with pytest.raises(ValueError, match="weights"):
        sampling.WeightedSampler(np.ones((2, 3)))


def test_weighted_subset_sampler_nan_weights():
    with pytest.raises(ValueError, match="sub_weights"):
        sampling.WeightedSubsetSampler(np.array([np.nan, 1.0]), np.array([0, 1]))


def test_weighted_subset_sampler_negative_weights():
    with pytest.raises(ValueError, match="sub_weights"):
        sampling.WeightedSubsetSampler(np.array([-1.0, 1.0]), np.array([0, 1]))


def test_weighted_subset_sampler_all_zero_weights():
    with pytest.raises(ValueError, match="sub_weights"):
        sampling.WeightedSubsetSampler(np.zeros(2), np.array([0, 1]))


def test_weighted_subset_sampler_2d_weights():
    with pytest.raises(ValueError, match="sub_weights"):
        sampling.WeightedSubsetSampler(np.ones((2, 1)), np.array([0, 1]))


def test_weighted_subset_sampler_length_mismatch():
    with pytest.raises(ValueError, match="sub_weights"):
        sampling.WeightedSubsetSampler(np.ones(3), np.array([0, 1]))


# --------------------------------------------------------------- 2.6 class balancing

Y_EX = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
W_EX = np.array([1 / 6] * 2 + [1 / 9] * 3 + [1 / 15] * 5)


def test_class_balancing_weights_example():
    w = sampling.WeightedSampler.class_balancing_sample_weights(Y_EX)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, W_EX, rtol=1e-15)
    assert math.isclose(w.sum(), 1.0)


def test_class_balancing_absent_labels_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = sampling.WeightedSampler.class_balancing_sample_weights(Y_EX * 2 + 1)
    np.testing.assert_allclose(w, W_EX, rtol=1e-15)


def test_class_balancing_n_classes_argument():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = sampling.WeightedSampler.class_balancing_sample_weights(y=Y_EX, n_classes=7)
    np.testing.assert_allclose(w, W_EX, rtol=1e-15)
    w2 = sampling.WeightedSampler.class_balancing_sample_weights(y=Y_EX, n_classes=3)
    np.testing.assert_allclose(w2, W_EX, rtol=1e-15)


def test_class_balancing_sampler():
    s = sampling.WeightedSampler.class_balancing_sampler(Y_EX, n_classes=3)
    assert isinstance(s, sampling.WeightedSampler)
    np.testing.assert_allclose(s.weights, W_EX, rtol=1e-12)
    s2 = sampling.WeightedSampler.class_balancing_sampler(y=Y_EX)
    np.testing.assert_allclose(s2.weights, W_EX, rtol=1e-12)
    # draws are balanced across the three classes (fixed seed: deterministic)
    drawn = next(s.shuffled_indices_batch_iterator(3000, np.random.RandomState(0)))
    counts = np.bincount(Y_EX[drawn], minlength=3)
    assert np.all(np.abs(counts - 1000) < 120)


def test_subset_class_balancing_sampler_example():
    idx = np.array([0, 2, 3, 5, 6, 7])
    s = sampling.WeightedSubsetSampler.class_balancing_sampler(Y_EX, idx)
    assert isinstance(s, sampling.WeightedSubsetSampler)
    np.testing.assert_allclose(s.sub_weights, [1 / 3, 1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9])
    np.testing.assert_array_equal(s.indices, idx)
    s2 = sampling.WeightedSubsetSampler.class_balancing_sampler(y=Y_EX, indices=idx, n_classes=5)
    np.testing.assert_allclose(s2.sub_weights, s.sub_weights)


def test_class_balancing_negative_label():
    with pytest.raises(ValueError, match=r"\by\b"):
        sampling.WeightedSampler.class_balancing_sample_weights(np.array([0, -1, 1]))


def test_class_balancing_non_integer_labels():
    with pytest.raises((TypeError, ValueError), match=r"\by\b"):
        sampling.WeightedSampler.class_balancing_sample_weights(np.array([0.5, 1.0, 2.0]))


def test_class_balancing_label_beyond_n_classes():
    with pytest.raises(ValueError, match=r"\by\b|n_classes"):
        sampling.WeightedSampler.class_balancing_sample_weights(np.array([0, 1, 3]), n_classes=3)


def test_class_balancing_sampler_negative_label():
    with pytest.raises(ValueError, match=r"\by\b"):
        sampling.WeightedSampler.class_balancing_sampler(np.array([0, -2, 1]))


def test_subset_class_balancing_label_beyond_n_classes():
    with pytest.raises(ValueError, match=r"\by\b|n_classes"):
        sampling.WeightedSubsetSampler.class_balancing_sampler(
            np.array([0, 1, 4]), np.array([0, 2]), n_classes=2
        )


def test_samplers_pickle():
    for s in (
        sampling.StandardSampler(5, repeats=2),
        sampling.SubsetSampler(np.array([3, 1])),
        sampling.WeightedSampler(np.array([1.0, 2.0])),
    ):
        s2 = pickle.loads(pickle.dumps(s))
        assert s2.num_indices_generated() == s.num_indices_generated()

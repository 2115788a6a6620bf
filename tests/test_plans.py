"""Index plans: the keyed Feistel permutation, seeded order statistics, random access.

The statistics guard the number of Feistel rounds documented in
``batchup/_core/order.py``: with four, consecutive positions land on
neighbouring values measurably more often than in a uniform shuffle. They run
the cipher itself (seeded orders of fewer than 2^18 samples are
``Generator.permutation``), and the seeded path on a data set large enough to
use it.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchup import data_source
from batchup._core import order as order_module
from batchup._core.order import FeistelPermutation, SeededOrder
from batchup._core.rng import SeedPath
from batchup.data_source import ShardSpec

PROPERTY = settings(deadline=None, max_examples=60, derandomize=True)

KEYS = st.lists(st.integers(0, 2**64 - 1), min_size=6, max_size=6).map(
    lambda ks: np.array(ks, dtype=np.uint64))


class Positions:
    """An array-like of ``length`` rows whose row ``i`` is ``i`` (no memory)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return np.arange(*index.indices(self.length))
        return np.asarray(index, dtype=np.int64)


# ------------------------------------------------------------------ FeistelPermutation


@PROPERTY
@given(length=st.integers(0, 3000), keys=KEYS)
@example(length=0, keys=np.arange(8, dtype=np.uint64))
@example(length=1, keys=np.arange(8, dtype=np.uint64))
@example(length=2, keys=np.arange(8, dtype=np.uint64))
@example(length=3, keys=np.arange(8, dtype=np.uint64))
@example(length=5, keys=np.full(8, 2**64 - 1, dtype=np.uint64))
@example(length=4**5 + 1, keys=np.arange(8, dtype=np.uint64))
def test_feistel_is_a_permutation(length, keys):
    perm = FeistelPermutation(length, keys)
    values = perm(np.arange(length))
    assert values.dtype == np.int64
    assert sorted(values.tolist()) == list(range(length))


@PROPERTY
@given(length=st.integers(1, 500).filter(lambda n: n % 2 == 1), keys=KEYS,
       data=st.data())
def test_feistel_positions_can_be_evaluated_in_any_grouping(length, keys, data):
    perm = FeistelPermutation(length, keys)
    whole = perm(np.arange(length))
    picks = data.draw(st.lists(st.integers(0, length - 1), max_size=20))
    np.testing.assert_array_equal(perm(np.array(picks, dtype=np.int64)), whole[picks])


@pytest.mark.parametrize("length", [10**10, 2**40 + 3, 4**20, 4**20 + 1])
def test_feistel_large_length_stays_in_range(length):
    keys = np.random.SeedSequence(5).generate_state(8, np.uint64)
    perm = FeistelPermutation(length, keys)
    rng = np.random.default_rng(0)
    positions = np.concatenate([[0, 1, length - 2, length - 1],
                                rng.integers(0, length, size=20_000)])
    positions = np.unique(positions)
    values = perm(positions)
    assert values.min() >= 0 and values.max() < length
    assert len(np.unique(values)) == len(values), "two positions map to the same value"
    # The same positions give the same values one at a time.
    np.testing.assert_array_equal([perm(np.array([p]))[0] for p in positions[:5]], values[:5])


def test_different_keys_give_different_permutations():
    a = FeistelPermutation(100, np.arange(8, dtype=np.uint64))(np.arange(100))
    b = FeistelPermutation(100, np.arange(1, 9, dtype=np.uint64))(np.arange(100))
    assert not np.array_equal(a, b)


def test_the_documented_round_count():
    assert order_module._ROUNDS == 6
    assert order_module._MATERIALISE_BELOW == 2**18


# ------------------------------------------------------------------ seeded order statistics

SEEDS = range(2000)


def _first_batches(n: int) -> list[np.ndarray]:
    # The cipher as seeded orders key it: one key per round from the seed.
    out = []
    for s in SEEDS:
        keys = np.random.SeedSequence(s, spawn_key=(0,)).generate_state(
            order_module._ROUNDS, np.uint64)
        out.append(FeistelPermutation(n, keys)(np.arange(n)))
    return out


@pytest.mark.parametrize("n", [7, 10, 64])
def test_seeded_first_position_is_roughly_uniform(n):
    counts = np.bincount([int(p[0]) for p in _first_batches(n)], minlength=n)
    expected = len(SEEDS) / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = n - 1
    # Generous: about eight standard deviations of the chi-square above its mean.
    assert chi2 < dof + 8 * np.sqrt(2 * dof), f"chi-square {chi2:.1f} with {dof} dof"


@pytest.mark.parametrize("n", [64, 1000])
def test_seeded_neighbours_are_as_rare_as_in_a_uniform_shuffle(n):
    # In a uniform permutation, |p[k+1] - p[k]| == 1 with probability 2/n. Four
    # Feistel rounds give 1.2-1.5x that here; six give 1.0x.
    perms = _first_batches(n)
    adjacent = sum(int((np.abs(np.diff(p)) == 1).sum()) for p in perms)
    rate = adjacent / (len(perms) * (n - 1))
    ratio = rate / (2 / n)
    assert 0.85 < ratio < 1.15, f"neighbouring values {ratio:.3f}x as often as uniform"


def test_large_seeded_order_uses_the_cipher_and_is_a_permutation():
    n = 2**18 + 5
    ds = data_source.ArrayDataSource([Positions(n)])
    order = np.concatenate(list(ds.batch_indices_iterator(50_000, shuffle=8)))
    assert sorted(order.tolist()) == list(range(n))
    keys = np.random.SeedSequence(8, spawn_key=(0,)).generate_state(
        order_module._ROUNDS, np.uint64)
    np.testing.assert_array_equal(order[:1000], FeistelPermutation(n, keys)(np.arange(1000)))


def test_seeded_passes_differ_and_are_permutations():
    ds = data_source.ArrayDataSource([np.arange(50)], repeats=3)
    passes = np.concatenate(list(ds.batch_indices_iterator(50, shuffle=4))).reshape(3, 50)
    for p in passes:
        assert sorted(p.tolist()) == list(range(50))
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[1], passes[2])


def test_seeded_order_is_a_pure_function_of_seed_and_pass():
    a = SeededOrder(SeedPath(3, (1,)), 10_000)
    b = SeededOrder(SeedPath(3, (1,)), 10_000)
    # Read in different orders and groupings, across block boundaries.
    first = np.concatenate([a.take(2, s, s + 700) for s in range(0, 10_000, 700)])
    parts = [b.take(2, 9_000, 10_000), b.take(2, 0, 4_095), b.take(2, 4_095, 9_000)]
    np.testing.assert_array_equal(first, np.concatenate([parts[1], parts[2], parts[0]]))


# ------------------------------------------------------------------ random access by batch


@pytest.mark.parametrize("k", [0, 1, 63, 64, 65, 700, 1562])
def test_seeded_batch_k_equals_stepping(k):
    ds = data_source.ArrayDataSource([Positions(100_000)], repeats=2)
    stepped = ds.batch_indices_iterator(128, shuffle=21)
    list(itertools.islice(stepped, k))
    state = json.loads(json.dumps(stepped.get_state()))
    want = next(stepped)
    got = next(ds.batch_indices_iterator(128, shuffle=21, state=state))
    np.testing.assert_array_equal(got, want)


def test_seeded_restore_does_not_compute_the_earlier_batches(monkeypatch):
    ds = data_source.ArrayDataSource([Positions(10**7)])
    stepped = ds.batch_indices_iterator(100, shuffle=8)
    next(stepped)
    state = stepped.get_state()
    # Batch 50,000 of the epoch, by editing the position only (the state is the position).
    state["plan"]["pos"] = 50_000 * 100
    state["plan"]["step"] = 50_000
    enciphered = []
    original = FeistelPermutation.__call__

    def counting(self, positions):
        enciphered.append(len(positions))
        return original(self, positions)

    monkeypatch.setattr(FeistelPermutation, "__call__", counting)
    got = next(ds.batch_indices_iterator(100, shuffle=8, state=state))
    monkeypatch.undo()
    assert sum(enciphered) <= order_module._BLOCK + 100, enciphered
    whole = SeededOrder(SeedPath(8), 10**7)
    np.testing.assert_array_equal(got, whole.take(0, 5_000_000, 5_000_100))


def test_ten_billion_samples_last_rank_first_batch():
    n, world = 10**10, 1024
    ds = data_source.ArrayDataSource([Positions(n)])
    it = ds.batch_indices_iterator(8, shuffle=77, shard=ShardSpec(world - 1, world))
    assert it.num_batches() == -(-n // (8 * world))
    first = next(it)
    assert first.shape == (8,) and first.dtype.kind == "i"
    assert first.min() >= 0 and first.max() < n
    assert len(np.unique(first)) == 8
    # It is rank 1023's slice of the first global batch.
    whole = SeededOrder(SeedPath(77), n).take(0, 8 * (world - 1), 8 * world)
    np.testing.assert_array_equal(first, whole)
    assert len(json.dumps(it.get_state())) < 1024

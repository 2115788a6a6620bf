"""Pinned batches for int seeds (``shuffle=42``, ``shuffle=(42, epoch)``).

Users record seeds in papers and configs and rely on getting the same batches
from the next release. These vectors pin how batchup derives its random
choices from a seed (numpy.random.SeedSequence with spawn keys per component,
pass and block, PCG64). If a change makes one of these tests fail, it breaks
reproducibility for every user of int seeds: do not update the numbers
without a deliberate, documented decision.

From 2^18 samples up, a seeded shuffle is a keyed Feistel permutation
(batch k computed in O(batch), no N-sized permutation); those orders are
pinned by ``test_large_seeded_order_is_pinned`` below. Smaller data sets keep
``Generator.permutation``, the order pinned since the first release.
"""

import numpy as np

from batchup import data_source, sampling


def batches(it):
    return [[b.tolist() for b in batch] for batch in it]


def test_array_source_two_passes():
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
    assert batches(ds.batch_iterator(4, shuffle=42)) == [
        [[2, 4, 5, 1]], [[7, 3, 9, 0]], [[8, 6, 6, 1]], [[2, 0, 4, 3]], [[8, 9, 5, 7]]]


def test_seed_tuple_for_an_epoch():
    ds = data_source.ArrayDataSource([np.arange(10)])
    assert batches(ds.batch_iterator(4, shuffle=(42, 1))) == [
        [[6, 9, 4, 8]], [[1, 7, 5, 2]], [[3, 0]]]


def test_composite_components_have_their_own_streams():
    lab = data_source.ArrayDataSource([np.arange(7)], repeats=-1)
    unlab = data_source.ArrayDataSource([np.arange(100, 111)])
    ds = data_source.CompositeDataSource([lab, unlab])
    assert batches(ds.batch_iterator(4, shuffle=42)) == [
        [[2, 5, 4, 1], [104, 109, 107, 110]],
        [[3, 6, 0, 6], [106, 101, 108, 105]],
        [[0, 3, 1], [102, 103, 100]]]


def test_weighted_sampler():
    sampler = sampling.WeightedSampler(np.array([1, 2, 3, 4, 5]))
    it = data_source.ArrayDataSource([np.arange(5)], sampler=sampler).batch_iterator(
        4, shuffle=42)
    assert [next(it)[0].tolist() for _ in range(3)] == [[4, 4, 4, 2], [4, 1, 4, 4], [1, 2, 3, 1]]


def test_choice_sources():
    x = data_source.ArrayDataSource([np.arange(0, 8)])
    y = data_source.ArrayDataSource([np.arange(100, 104)])
    z = data_source.ArrayDataSource([np.arange(200, 202)])
    stratified = data_source.ChoiceDataSource([x, y, z], stratified=True)
    assert batches(stratified.batch_iterator(2, shuffle=42)) == [
        [[2, 6]], [[103, 101]], [[102, 100]], [[200, 201]], [[4, 1]], [[3, 5]], [[7, 0]]]
    rounds = data_source.ChoiceDataSource([x, y, z])
    assert batches(rounds.batch_iterator(2, shuffle=42)) == [[[200, 201]], [[2, 6]], [[103, 101]]]


def test_weighted_batches_do_not_depend_on_how_many_were_taken_before():
    # Batch b is a function of (seed, b): uniforms come in blocks derived from the seed.
    sampler = sampling.WeightedSampler(np.arange(1.0, 101.0))
    first = sampler.shuffled_indices_batch_iterator(8, 7)
    for _ in range(70):
        last = next(first)
    again = sampler.shuffled_indices_batch_iterator(8, 7)
    for _ in range(70):
        other = next(again)
    np.testing.assert_array_equal(last, other)


class _Positions:
    """An array-like of 10^7 samples whose sample i is i (nothing is stored)."""

    def __len__(self):
        return 10**7

    def __getitem__(self, index):
        return np.asarray(index)


def test_large_seeded_order_is_pinned():
    ds = data_source.ArrayDataSource([_Positions()])
    it = ds.batch_iterator(6, shuffle=42)
    assert [next(it)[0].tolist() for _ in range(2)] == [
        [6477813, 229006, 8090478, 4214690, 6476496, 5680420],
        [6965075, 5857001, 8064381, 3237730, 8303395, 167632]]
    # A rank's share is its slice of the same global batches.
    it = ds.batch_iterator(3, shuffle=42, shard=(1, 2))
    assert [next(it)[0].tolist() for _ in range(2)] == [
        [4214690, 6476496, 5680420], [3237730, 8303395, 167632]]

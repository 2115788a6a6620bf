"""Pinned batches for int seeds (``shuffle=42``, ``shuffle=(42, epoch)``).

Users record seeds in papers and configs and rely on getting the same batches
from the next release. These vectors pin how batchup derives its random
choices from a seed (numpy.random.SeedSequence with spawn keys per component,
pass and block, PCG64). If a change makes one of these tests fail, it breaks
reproducibility for every user of int seeds: do not update the numbers
without a deliberate, documented decision.

Decision of 1.0.0.dev (before any release): seeded *shuffles* changed from
``Generator.permutation`` to a keyed Feistel permutation of (seed, path,
pass), so that batch k of any epoch is computed in O(batch) with no
N-sized permutation -- O(1) restore, sharding by arithmetic, 10^10-sample
epochs. The vectors below were re-pinned then (docs/compatibility.md,
"Int seeds"). Weighted sampling's seeded streams did not change.
"""

import numpy as np

from batchup import data_source, sampling


def batches(it):
    return [[b.tolist() for b in batch] for batch in it]


def test_array_source_two_passes():
    ds = data_source.ArrayDataSource([np.arange(10)], repeats=2)
    assert batches(ds.batch_iterator(4, shuffle=42)) == [
        [[0, 6, 9, 5]], [[2, 7, 1, 3]], [[4, 8, 2, 4]], [[3, 5, 0, 8]], [[9, 7, 6, 1]]]


def test_seed_tuple_for_an_epoch():
    ds = data_source.ArrayDataSource([np.arange(10)])
    assert batches(ds.batch_iterator(4, shuffle=(42, 1))) == [
        [[0, 6, 2, 8]], [[3, 7, 5, 4]], [[9, 1]]]


def test_composite_components_have_their_own_streams():
    lab = data_source.ArrayDataSource([np.arange(7)], repeats=-1)
    unlab = data_source.ArrayDataSource([np.arange(100, 111)])
    ds = data_source.CompositeDataSource([lab, unlab])
    assert batches(ds.batch_iterator(4, shuffle=42)) == [
        [[0, 4, 6, 1], [100, 110, 102, 108]],
        [[5, 3, 2, 2], [103, 107, 105, 104]],
        [[0, 1, 6], [109, 101, 106]]]


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
        [[0, 4]], [[100, 103]], [[101, 102]], [[200, 201]], [[7, 1]], [[5, 3]], [[2, 6]]]
    rounds = data_source.ChoiceDataSource([x, y, z])
    assert batches(rounds.batch_iterator(2, shuffle=42)) == [[[200, 201]], [[0, 4]], [[100, 103]]]


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

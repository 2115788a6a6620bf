"""batch_map_* methods: the zero-copy evaluation path and its fallback to copies."""

import numpy as np
import pytest

from batchup import data_source, sampling


@pytest.fixture
def arrays():
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 3
    return X, y


def test_functions_see_read_only_views_in_order(arrays):
    X, y = arrays
    seen = []

    def f(bx, by):
        seen.append((bx.flags.writeable, np.shares_memory(bx, X)))
        return bx.sum(axis=1)

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(f, batch_size=6)
    np.testing.assert_array_equal(out, X.sum(axis=1))
    assert seen == [(False, True)] * 4


def test_function_writing_into_its_input_gets_copies_and_source_is_untouched(arrays):
    X, y = arrays
    before = X.copy()
    calls = []

    def normalise_in_place(bx, by):
        calls.append(bx.flags.writeable)
        bx -= 1.0
        return bx

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(normalise_in_place, 6)
    np.testing.assert_array_equal(out, before - 1.0)
    np.testing.assert_array_equal(X, before)
    # First call fails on the read-only view, then every call gets a copy.
    assert calls == [False, True, True, True, True]


def test_batch_map_mean_view_path_matches_copy_path(arrays):
    X, y = arrays
    ds = data_source.ArrayDataSource([X, y])
    fast = ds.batch_map_mean(lambda bx, by: [bx.sum(), (by == 1).sum()], batch_size=7)
    slow = data_source.batch_map_mean(lambda bx, by: [bx.sum(), (by == 1).sum()],
                                      ds.batch_iterator(7))
    assert fast == pytest.approx(slow)


@pytest.mark.parametrize("kwargs", [
    {"shuffle": np.random.RandomState(0)},
    {"shuffle": 3},
])
def test_shuffled_evaluation_gives_copies(arrays, kwargs):
    X, y = arrays
    flags = []
    data_source.ArrayDataSource([X, y]).batch_map_concat(
        lambda bx, by: flags.append(bx.flags.writeable), batch_size=8, **kwargs)
    assert flags == [True] * 3


def test_subset_repeats_and_samplers_keep_the_copy_path(arrays):
    X, y = arrays
    for ds in [data_source.ArrayDataSource([X, y], indices=np.arange(5)),
               data_source.ArrayDataSource([X, y], repeats=2)]:
        flags = []
        ds.batch_map_concat(lambda bx, by, f=flags: f.append(bx.flags.writeable), 4)
        assert flags and all(flags)
    w = sampling.WeightedSampler(np.ones(20))
    flags = []
    data_source.ArrayDataSource([X, y], sampler=w).batch_map_concat(
        lambda bx, by: flags.append(bx.flags.writeable), 4, n_batches=2, shuffle=1)
    assert flags == [True, True]


def test_include_indices_and_drop_last_on_the_view_path(arrays):
    X, y = arrays
    ds = data_source.ArrayDataSource([X, y], include_indices=True)
    (idx,) = ds.batch_map_concat(lambda i, bx, by: (i,), batch_size=6, drop_last=True)
    np.testing.assert_array_equal(idx, np.arange(18))


def test_unrelated_value_errors_propagate(arrays):
    X, y = arrays

    def broken(bx, by):
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        data_source.ArrayDataSource([X, y]).batch_map_concat(broken, 5)

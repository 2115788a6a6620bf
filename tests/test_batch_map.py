"""batch_map_*: None results, the zero-copy evaluation path and its switch to copies."""

import numpy as np
import pytest

from batchup import data_source, sampling


@pytest.fixture
def arrays():
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 3
    return X, y


def test_functions_see_views_in_order_after_the_first_batch(arrays):
    X, y = arrays
    seen = []

    def f(bx, by):
        seen.append(np.shares_memory(bx, X))
        return bx.sum(axis=1)

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(f, batch_size=6)
    np.testing.assert_array_equal(out, X.sum(axis=1))
    assert seen == [False, True, True, True]


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
    # One call per batch, each on a writable copy (the first one probes).
    assert calls == [True] * 4


def test_function_not_writing_gets_a_copy_first_then_views(arrays):
    X, y = arrays
    seen = []

    def f(bx, by):
        seen.append((bx.flags.writeable, np.shares_memory(bx, X)))
        return bx.sum(axis=1)

    data_source.ArrayDataSource([X, y]).batch_map_concat(f, batch_size=6)
    assert seen == [(True, False)] + [(False, True)] * 3


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


# --- batch_map_concat returns None when there is nothing to concatenate (spec 7, item 11) ---


def test_concat_all_none_results_is_none_for_the_method(arrays):
    X, y = arrays
    calls = []
    res = data_source.ArrayDataSource([X, y]).batch_map_concat(
        lambda bx, by: calls.append(len(bx)), batch_size=6)
    assert res is None
    assert calls == [6, 6, 6, 2]


def test_concat_all_none_results_is_none_for_the_function():
    batches = [(np.arange(3),), (np.arange(3, 5),)]
    assert data_source.batch_map_concat(lambda x: None, iter(batches)) is None


def test_concat_no_batches_is_none():
    assert data_source.batch_map_concat(lambda x: (x,), iter([])) is None


def test_concat_skips_none_results_between_others():
    batches = [(np.arange(2),), (np.arange(2, 4),), (np.arange(4, 7),)]
    res = data_source.batch_map_concat(lambda x: None if x[0] == 2 else (x * 10,), iter(batches))
    assert isinstance(res, tuple) and len(res) == 1
    np.testing.assert_array_equal(res[0], [0, 10, 40, 50, 60])


def test_concat_first_batch_none_then_results(arrays):
    X, y = arrays
    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(
        lambda bx, by: None if bx[0, 0] == 0 else bx[:, 0], batch_size=6)
    np.testing.assert_array_equal(out, X[6:, 0])


# --- the function is called exactly once per batch ---


def _reference_concat(func, X, y, batch_size):
    """What 0.2.3 gave: the function applied to writable copies of each batch."""
    parts = [func(X[i:i + batch_size].copy(), y[i:i + batch_size].copy())
             for i in range(0, len(X), batch_size)]
    return np.concatenate(parts)


def test_writing_function_with_side_effect_is_called_once_per_batch(arrays):
    X, y = arrays
    before = X.copy()
    log = []

    def scale(bx, by):
        log.append(by.copy())
        bx *= 2.0
        return bx[:, 0] + by

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(scale, batch_size=6)
    assert len(log) == 4
    np.testing.assert_array_equal(np.concatenate(log), y)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(out, _reference_concat(scale, X, y, 6))
    np.testing.assert_array_equal(X, before)


def test_reading_function_with_side_effect_is_called_once_per_batch(arrays):
    X, y = arrays
    before = X.copy()
    log = []

    def total(bx, by):
        log.append(len(bx))
        return bx.sum(axis=1) * by

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(total, batch_size=6)
    assert log == [6, 6, 6, 2]
    np.testing.assert_array_equal(out, _reference_concat(total, X, y, 6))
    np.testing.assert_array_equal(X, before)


def test_batch_map_mean_writing_function_called_once_per_batch(arrays):
    X, y = arrays
    before = X.copy()
    log = []

    def f(bx, by):
        log.append(1)
        bx += 1.0
        return bx.sum()

    (m,) = data_source.ArrayDataSource([X, y]).batch_map_mean(f, batch_size=7)
    assert len(log) == 3
    assert m == pytest.approx((before + 1.0).sum() / len(X))
    np.testing.assert_array_equal(X, before)


def test_prepend_args_are_passed_as_they_are(arrays):
    X, y = arrays
    w = np.ones(2)
    w.flags.writeable = False
    seen = []

    def f(weights, bx, by):
        seen.append(weights is w)
        return bx @ weights

    (out,) = data_source.ArrayDataSource([X, y]).batch_map_concat(
        f, batch_size=6, prepend_args=(w,))
    assert seen == [True] * 4
    np.testing.assert_array_equal(out, X.sum(axis=1))


def test_function_writing_only_on_a_later_batch_gets_a_clear_error(arrays):
    X, y = arrays
    before = X.copy()
    log = []

    def clip_second_batch(bx, by):
        log.append(1)
        if len(log) == 2:
            bx[:] = 0.0
        return bx[:, 0]

    with pytest.raises(ValueError, match=r"clip_second_batch.*batch 2.*first batch.*x\.copy\(\)"
                       ) as info:
        data_source.ArrayDataSource([X, y]).batch_map_concat(clip_second_batch, batch_size=6)
    assert "read-only" in str(info.value.__cause__)
    assert len(log) == 2
    np.testing.assert_array_equal(X, before)


def test_nan_inputs_do_not_look_like_writes():
    X = np.arange(24.0).reshape(12, 2)
    X[::3, 1] = np.nan
    before = X.copy()
    seen = []

    def f(bx):
        seen.append(np.shares_memory(bx, X))
        return np.nan_to_num(bx, nan=-1.0)

    (out,) = data_source.ArrayDataSource([X]).batch_map_concat(f, batch_size=5)
    assert seen == [False, True, True]
    np.testing.assert_array_equal(out, np.nan_to_num(before, nan=-1.0))
    np.testing.assert_array_equal(X, before)


def test_writing_nan_into_input_is_detected():
    X = np.arange(10.0)
    before = X.copy()
    seen = []

    def f(bx):
        seen.append(bx.flags.writeable)
        bx[0] = np.nan
        return bx

    (out,) = data_source.ArrayDataSource([X]).batch_map_concat(f, batch_size=4)
    assert seen == [True, True, True]
    assert np.isnan(out[[0, 4, 8]]).all()
    np.testing.assert_array_equal(X, before)

"""The data-source and sampling examples of batchup 0.2.3's README, run on small arrays.

Each test follows the README's code as closely as possible (with the README's
bugs fixed: the augmentation flip indexes the image batch, ``n_classes`` exists,
the array-like example compiles and loads ``.npy`` files instead of
``scipy.misc.imread``), then checks what the loop produced.
"""

import glob
import math
import os

import numpy as np
import pytest
import tqdm

from batchup import data_source, sampling

N = 300
N_CLASSES = 4


@pytest.fixture
def train():
    """``train_X`` (N, 1, 4, 5) images whose first pixel is the sample id; ``train_y``."""
    rs = np.random.RandomState(0)
    train_X = rs.uniform(size=(N, 1, 4, 5)).astype(np.float32)
    train_X[:, 0, 0, 0] = np.arange(N)
    train_y = (np.arange(N) * 7) % N_CLASSES
    return train_X, train_y


def _ids(batch_X):
    return batch_X[:, 0, 0, 0].astype(int)


def _check_epoch(batches, train_X, train_y, expected_ids, batch_size=64):
    sizes = [len(bx) for bx, _ in batches]
    assert sizes == [batch_size] * (len(sizes) - 1) + [sizes[-1]]
    assert len(batches) == math.ceil(len(expected_ids) / batch_size)
    ids = np.concatenate([_ids(bx) for bx, _ in batches])
    assert sorted(ids.tolist()) == sorted(np.asarray(expected_ids).tolist())
    for bx, by in batches:
        np.testing.assert_array_equal(bx, train_X[_ids(bx)])
        np.testing.assert_array_equal(by, train_y[_ids(bx)])


def test_quick_example_shuffle_true(train, global_rng_state):
    train_X, train_y = train
    ds = data_source.ArrayDataSource([train_X, train_y])
    batches = []
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=True):
        batches.append((batch_X, batch_y))
    _check_epoch(batches, train_X, train_y, np.arange(N))


def test_quick_batch_iteration(train):
    train_X, train_y = train
    ds = data_source.ArrayDataSource([train_X, train_y])
    batches = []
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345)):
        batches.append((batch_X, batch_y))
    _check_epoch(batches, train_X, train_y, np.arange(N))
    assert len(batches[-1][0]) == N - 4 * 64  # the last batch is short
    ids = np.concatenate([_ids(bx) for bx, _ in batches])
    assert ids.tolist() != list(range(N))
    # not specifying shuffle processes the samples in order
    in_order = np.concatenate([_ids(bx) for bx, _ in ds.batch_iterator(batch_size=64)])
    assert in_order.tolist() == list(range(N))


def test_subset_by_indices(train):
    train_X, train_y = train
    subset_a = np.random.RandomState(1).permutation(train_X.shape[0])[:200]
    ds = data_source.ArrayDataSource([train_X, train_y], indices=subset_a)
    batches = []
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345)):
        batches.append((batch_X, batch_y))
    _check_epoch(batches, train_X, train_y, subset_a)


def test_data_augmentation(train, global_rng_state):
    train_X, train_y = train
    original = train_X.copy()
    np.random.seed(3)

    def augment_batch(batch_X, batch_y):
        # Create an array that selects samples with 50% probability and convert to `bool` dtype
        flip_flags = np.random.binomial(1, 0.5, size=(len(batch_X),)) != 0
        # Flip the width dimension in selected samples (README bug fixed)
        batch_X[flip_flags] = batch_X[flip_flags, :, :, ::-1]
        return batch_X, batch_y

    ds = data_source.ArrayDataSource([train_X, train_y])
    ds = ds.map(augment_batch)
    n_flipped = n_seen = 0
    seen_y = []
    for batch_X, batch_y in ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345)):
        for x, y in zip(batch_X, batch_y, strict=True):
            # the id pixel moves to the last column when the image is flipped
            if x[0, 0, -1] == int(x[0, 0, -1]) and np.array_equal(
                x[:, :, ::-1], original[int(x[0, 0, -1])]
            ):
                n_flipped += 1
                ident = int(x[0, 0, -1])
            else:
                ident = int(x[0, 0, 0])
                np.testing.assert_array_equal(x, original[ident])
            assert y == train_y[ident]
            seen_y.append(ident)
            n_seen += 1
    assert n_seen == N and sorted(seen_y) == list(range(N))
    assert 0.3 * N < n_flipped < 0.7 * N
    np.testing.assert_array_equal(train_X, original)  # the source arrays are untouched


def test_include_indices(train):
    train_X, train_y = train
    ds = data_source.ArrayDataSource([train_X, train_y], include_indices=True)
    seen = []
    for batch_ndx, batch_X, batch_y in ds.batch_iterator(
        batch_size=64, shuffle=np.random.RandomState(12345)
    ):
        np.testing.assert_array_equal(batch_X, train_X[batch_ndx])
        np.testing.assert_array_equal(batch_y, train_y[batch_ndx])
        seen.extend(batch_ndx.tolist())
    assert sorted(seen) == list(range(N))


def test_infinite_batch_iteration(train):
    train_X, train_y = train
    ds = data_source.ArrayDataSource([train_X, train_y], repeats=-1)
    it = ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    n_batches = 3 * math.ceil(N / 64)
    batches = [next(it) for _ in range(n_batches)]
    assert all(len(bx) == 64 for bx, _ in batches)
    ids = np.concatenate([_ids(bx) for bx, _ in batches])
    for p in range(len(ids) // N):
        assert sorted(ids[p * N : (p + 1) * N].tolist()) == list(range(N))


def test_infinite_with_fewer_samples_than_batch_size(train):
    train_X, train_y = train
    small = data_source.ArrayDataSource([train_X[:10], train_y[:10]], repeats=-1)
    it = small.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    for _ in range(3):
        batch_X, batch_y = next(it)
        assert len(batch_X) == 64
        assert set(_ids(batch_X).tolist()) == set(range(10))


def test_weighted_sampler(train):
    train_X, train_y = train
    train_w = np.where(np.arange(N) % 3 == 0, 0.0, 1.0 + (np.arange(N) % 5))
    sampler = sampling.WeightedSampler(weights=train_w)
    ds = data_source.ArrayDataSource([train_X, train_y], sampler=sampler)
    it = ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    ids = []
    for _ in range(20):
        batch_X, batch_y = next(it)
        assert len(batch_X) == 64
        np.testing.assert_array_equal(batch_y, train_y[_ids(batch_X)])
        ids.extend(_ids(batch_X).tolist())
    assert all(train_w[i] > 0 for i in ids)
    # in-order is NOT supported with a weighted sampler
    for shuffle in (None, False):
        with pytest.raises(sampling.InOrderNotSupportedError):
            ds.batch_iterator(batch_size=64, shuffle=shuffle)


def test_weighted_subset_sampler(train):
    train_X, train_y = train
    train_w = 1.0 + (np.arange(N) % 3)
    subset_a = np.random.RandomState(1).permutation(train_X.shape[0])[:100]
    sampler = sampling.WeightedSubsetSampler(sub_weights=train_w[subset_a], indices=subset_a)
    ds = data_source.ArrayDataSource([train_X, train_y], sampler=sampler)
    it = ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    ids = []
    for _ in range(10):
        batch_X, batch_y = next(it)
        assert len(batch_X) == 64
        ids.extend(_ids(batch_X).tolist())
    assert set(ids) <= set(subset_a.tolist())


def _imbalanced():
    rs = np.random.RandomState(5)
    train_y = np.repeat(np.arange(3), [200, 40, 10])
    train_X = np.arange(len(train_y), dtype=np.float64)[:, None] + rs.uniform(size=(250, 1)) / 2
    return train_X, train_y


def test_class_balancing_sampler():
    train_X, train_y = _imbalanced()
    # Construct the sampler; NOTE that the `n_classes` argument is *optional*
    sampler = sampling.WeightedSampler.class_balancing_sampler(
        y=train_y, n_classes=train_y.max() + 1
    )
    ds = data_source.ArrayDataSource([train_X, train_y], sampler=sampler)
    it = ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    counts = np.zeros(3, dtype=int)
    for _ in range(30):
        batch_X, batch_y = next(it)
        np.testing.assert_array_equal(batch_y, train_y[batch_X[:, 0].astype(int)])
        counts += np.bincount(batch_y, minlength=3)
    assert counts.sum() == 30 * 64
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05)


def test_class_balancing_sample_weights_then_modify():
    train_X, train_y = _imbalanced()
    weights = sampling.WeightedSampler.class_balancing_sample_weights(
        y=train_y, n_classes=train_y.max() + 1
    )
    np.testing.assert_allclose([weights[train_y == c].sum() for c in range(3)], [1 / 3] * 3)

    def modify_weights(w):
        w = w.copy()
        w[train_y == 2] = 0.0  # never draw class 2
        return w

    weights = modify_weights(weights)
    sampler = sampling.WeightedSampler(weights=weights)
    ds = data_source.ArrayDataSource([train_X, train_y], sampler=sampler)
    it = ds.batch_iterator(batch_size=64, shuffle=np.random.RandomState(12345))
    ys = np.concatenate([next(it)[1] for _ in range(10)])
    assert set(ys.tolist()) == {0, 1}


@pytest.fixture
def semi():
    rs = np.random.RandomState(7)
    lab_X = rs.normal(size=(50, 3))
    lab_X[:, 0] = np.arange(50)
    lab_y = np.arange(50) % 10
    unlab_X = rs.normal(size=(300, 3))
    unlab_X[:, 0] = np.arange(300) + 1000
    return lab_X, lab_y, unlab_X


def test_semi_supervised_without_composite(semi):
    lab_X, lab_y, unlab_X = semi
    rng = np.random.RandomState(12345)
    ds_lab = data_source.ArrayDataSource([lab_X, lab_y], repeats=-1)
    ds_unlab = data_source.ArrayDataSource([unlab_X])
    lab_iter = ds_lab.batch_iterator(batch_size=64, shuffle=rng)
    n, unlab_ids, lab_ids = 0, [], []
    for (batch_unlab_X,) in ds_unlab.batch_iterator(batch_size=64, shuffle=rng):
        batch_lab_X, batch_lab_y = next(lab_iter)
        assert len(batch_lab_X) == 64
        np.testing.assert_array_equal(batch_lab_y, lab_y[batch_lab_X[:, 0].astype(int)])
        unlab_ids.extend((batch_unlab_X[:, 0] - 1000).astype(int).tolist())
        lab_ids.extend(batch_lab_X[:, 0].astype(int).tolist())
        n += 1
    assert n == math.ceil(300 / 64)
    assert sorted(unlab_ids) == list(range(300))
    assert sorted(lab_ids[:50]) == list(range(50))


def test_semi_supervised_with_composite(semi):
    lab_X, lab_y, unlab_X = semi
    rng = np.random.RandomState(12345)
    ds_lab = data_source.ArrayDataSource([lab_X, lab_y], repeats=-1)
    ds_unlab = data_source.ArrayDataSource([unlab_X])
    ds = data_source.CompositeDataSource([ds_lab, ds_unlab])
    sizes, unlab_ids = [], []
    for batch_lab_X, batch_lab_y, batch_unlab_X in ds.batch_iterator(batch_size=64, shuffle=rng):
        assert len(batch_lab_X) == len(batch_lab_y) == len(batch_unlab_X)
        np.testing.assert_array_equal(batch_lab_y, lab_y[batch_lab_X[:, 0].astype(int)])
        sizes.append(len(batch_unlab_X))
        unlab_ids.extend((batch_unlab_X[:, 0] - 1000).astype(int).tolist())
    assert sizes == [64, 64, 64, 64, 300 - 4 * 64]  # the last batch is trimmed
    assert sorted(unlab_ids) == list(range(300))

    # structured mini-batches
    ds_struct = data_source.CompositeDataSource([ds_lab, ds_unlab], flatten=False)
    n = 0
    for (batch_lab_X, batch_lab_y), (batch_unlab_X,) in ds_struct.batch_iterator(
        batch_size=64, shuffle=rng
    ):
        assert len(batch_lab_X) == len(batch_lab_y) == len(batch_unlab_X)
        n += 1
    assert n == 5

    # composites can be nested
    nested = data_source.CompositeDataSource([ds, ds_struct], flatten=False)
    first = next(nested.batch_iterator(batch_size=64, shuffle=rng))
    assert len(first) == 2 and len(first[0]) == 3 and len(first[1]) == 2


class LoadImagesFromDisk:
    """The README's array-like, loading ``.npy`` files (offline stand-in for images)."""

    def __init__(self, paths):
        # Paths is a list of file paths
        self.paths = paths

    # We have to implement the `__len__` method:
    def __len__(self):
        return len(self.paths)

    # We have to implement the `__getitem__` method that `ArrayDataSource` will use to get samples
    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            # A single integer index; return that sample
            return np.load(self.paths[index])
        elif isinstance(index, slice):
            # A slice
            images = [np.load(p) for p in self.paths[index]]
            return np.concatenate([img[None, ...] for img in images], axis=0)
        elif isinstance(index, np.ndarray):
            if index.ndim != 1:
                raise ValueError(f"index array should only have 1 dimension, not {index.ndim}")
            images = [np.load(self.paths[i]) for i in index]
            return np.concatenate([img[None, ...] for img in images], axis=0)
        else:
            raise TypeError(
                f"index should be an integer, a slice or a NumPy array, not a {type(index)}"
            )


def test_data_not_stored_as_numpy_arrays(tmp_path):
    for i in range(37):
        kind = "dog" if i % 3 == 0 else "cat"
        img = np.full((4, 4, 3), 1.0 if kind == "dog" else 0.0, dtype=np.float32)
        img[0, 0, 0] = i + 10  # identifies the file
        np.save(tmp_path / f"{kind}_{i:02d}.npy", img)
    # Get our image paths
    image_paths = sorted(glob.glob(str(tmp_path / "*.npy")))
    # Build our array-like data source
    train_X = LoadImagesFromDisk(image_paths)
    # Construct our ground truths as a NumPy array
    train_y = [(1 if os.path.basename(p).startswith("dog") else 0) for p in image_paths]
    train_y = np.array(train_y, dtype=np.int32)
    # Mixing custom array types with NumPy arrays is fine
    ds = data_source.ArrayDataSource([train_X, train_y])
    seen = []
    for batch_X, batch_y in ds.batch_iterator(batch_size=8, shuffle=np.random.RandomState(12345)):
        assert batch_X.shape[1:] == (4, 4, 3) and len(batch_X) == len(batch_y)
        np.testing.assert_array_equal(batch_X[:, 1, 1, 1], batch_y.astype(np.float32))
        seen.extend((batch_X[:, 0, 0, 0] - 10).astype(int).tolist())
    assert sorted(seen) == list(range(37))
    assert train_y.sum() == 13
    # the other index kinds of the array-like work too
    assert train_X[0].shape == (4, 4, 3)
    assert train_X[1:4].shape == (3, 4, 4, 3)
    with pytest.raises(TypeError):
        train_X[1.5]


@pytest.fixture
def test_set():
    rs = np.random.RandomState(11)
    test_X = rs.normal(size=(700, 5))
    W = rs.normal(size=(5, 3))
    return test_X, W


def test_batch_map_concat_predict(test_set):
    test_X, W = test_set
    calls = []

    def f_pred(batch_X):
        calls.append(len(batch_X))
        return np.argmax(batch_X @ W, axis=1)

    test_ds = data_source.ArrayDataSource([test_X])
    (pred_y,) = test_ds.batch_map_concat(f_pred, batch_size=256)
    np.testing.assert_array_equal(pred_y, np.argmax(test_X @ W, axis=1))
    assert calls == [256, 256, 188]


def test_batch_map_concat_with_tqdm(test_set):
    test_X, W = test_set

    def f_pred(batch_X):
        return np.argmax(batch_X @ W, axis=1)

    test_ds = data_source.ArrayDataSource([test_X])
    (pred_y,) = test_ds.batch_map_concat(f_pred, batch_size=256, progress_iter_func=tqdm.tqdm)
    assert pred_y.shape == (700,)
    np.testing.assert_array_equal(pred_y, np.argmax(test_X @ W, axis=1))


@pytest.mark.parametrize("progress", [None, tqdm.tqdm], ids=["plain", "tqdm"])
def test_batch_map_mean_loss_and_error(test_set, progress):
    val_X, W = test_set
    val_y = np.random.RandomState(12).randint(0, 3, size=len(val_X))

    def log_probs(batch_X):
        z = batch_X @ W
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def f_eval(batch_X, batch_y):
        lp = log_probs(batch_X)
        log_loss_sum = -lp[np.arange(len(batch_y)), batch_y].sum()
        err_count = (np.argmax(lp, axis=1) != batch_y).sum()
        return [log_loss_sum, err_count]

    val_ds = data_source.ArrayDataSource([val_X, val_y])
    mean_log_loss, mean_err_rate = val_ds.batch_map_mean(
        f_eval, batch_size=256, progress_iter_func=progress
    )
    lp = log_probs(val_X)
    assert mean_log_loss == pytest.approx(-lp[np.arange(len(val_y)), val_y].mean(), rel=1e-12)
    assert mean_err_rate == pytest.approx((np.argmax(lp, axis=1) != val_y).mean(), rel=1e-12)

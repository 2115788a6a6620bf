"""Whole path per dataset: download from 127.0.0.1, verify, convert, load, split."""

import os

import numpy as np
import pytest
from _loopback import (
    cifar10_tarball,
    cifar100_tarball,
    mnist_files,
    serve_dataset,
    stl_tarball,
    svhn_mat,
    usps_h5,
    with_urls,
)

from batchup import config
from batchup.datasets import cifar10, cifar100, fashion_mnist, mnist, registry, stl, svhn, usps
from batchup.image.utils import ImageArrayUInt8ToFloat32


def _downloads_left(dataset):
    folder = os.path.join(config.get_downloads_dir(), dataset)
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_mnist_whole_path_and_split(home, server):
    files, arr = mnist_files(60, 15)
    with serve_dataset(server, "mnist", files):
        with mnist.MNIST(n_val=20) as ds:
            assert ds.train_X_u8.shape == (40, 1, 28, 28)
            assert ds.val_X_u8.shape == (20, 1, 28, 28)
            assert tuple(ds.test_X_u8.shape) == (15, 1, 28, 28)
            assert ds.train_X_u8.dtype == np.uint8 and ds.train_y.dtype == np.int32
            np.testing.assert_array_equal(ds.train_X_u8[:, 0], arr["train_X"][:40])
            np.testing.assert_array_equal(ds.val_X_u8[:, 0], arr["train_X"][40:])
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][40:])
            np.testing.assert_array_equal(ds.test_y[:], arr["test_y"])
            assert isinstance(ds.train_X, ImageArrayUInt8ToFloat32)
            batch = ds.val_X[:5]
            assert batch.dtype == np.float32 and 0.0 <= batch.min() and batch.max() <= 1.0
            np.testing.assert_allclose(batch, arr["train_X"][40:45, None] / 255.0, atol=1e-6)
    assert os.path.isfile(config.get_data_path("mnist.h5"))
    assert _downloads_left("mnist") == []  # sources removed after conversion


def test_mnist_n_val_zero_is_lazy_with_empty_validation(home, server):
    files, arr = mnist_files(30, 10, seed=1)
    with serve_dataset(server, "mnist", files):
        with mnist.MNIST(n_val=0, val_lower=-1.0, val_upper=1.0) as ds:
            assert not isinstance(ds.train_X_u8, np.ndarray)  # an HDF5 node
            assert ds.val_X_u8.shape == (0, 1, 28, 28) and ds.val_X_u8.dtype == np.uint8
            assert ds.val_y.shape == (0,) and ds.val_y.dtype == np.int32
            assert ds.train_X[:3].min() >= -1.0
            np.testing.assert_allclose(ds.train_X[:3], arr["train_X"][:3, None] / 127.5 - 1,
                                       atol=1e-5)


def test_mnist_second_load_uses_cache_without_network(home, server):
    files, _ = mnist_files(20, 5, seed=2)
    with serve_dataset(server, "mnist", files):
        mnist.MNIST(n_val=5).close()
        before = len(server.log)
        mnist.MNIST(n_val=5).close()
        assert len(server.log) == before


def test_fashion_mnist_whole_path(home, server):
    files, arr = mnist_files(25, 10, seed=3)
    with serve_dataset(server, "fashion_mnist", files):
        with fashion_mnist.FashionMNIST(n_val=5) as ds:
            assert ds.train_X.shape == (20, 1, 28, 28)
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][20:])
            assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10
    assert os.path.isfile(config.get_data_path("fashion-mnist.h5"))
    assert not os.path.exists(config.get_data_path("mnist.h5"))


def test_mnist_and_fashion_mnist_downloads_do_not_mix(home, server):
    m_files, m_arr = mnist_files(12, 4, seed=4)
    f_files, f_arr = mnist_files(12, 4, seed=5)
    with serve_dataset(server, "mnist", m_files), serve_dataset(server, "fashion_mnist", f_files):
        with mnist.MNIST(n_val=0) as m, fashion_mnist.FashionMNIST(n_val=0) as f:
            np.testing.assert_array_equal(m.train_y[:], m_arr["train_y"])
            np.testing.assert_array_equal(f.train_y[:], f_arr["train_y"])


def test_svhn_whole_path_labels_and_split(home, server):
    train, X, y = svhn_mat(14, seed=0)
    test, tX, ty = svhn_mat(6, seed=1)
    with serve_dataset(server, "svhn", {"train_32x32.mat": train, "test_32x32.mat": test}):
        with svhn.SVHN(n_val=4) as ds:
            assert ds.train_X_u8.shape == (10, 3, 32, 32) and ds.val_X_u8.shape == (4, 3, 32, 32)
            assert tuple(ds.test_X_u8.shape) == (6, 3, 32, 32)
            np.testing.assert_array_equal(ds.train_X_u8, X.transpose(3, 2, 0, 1)[:10])
            expected = y[:, 0].astype(np.int32) % 10  # label 10 means digit 0
            np.testing.assert_array_equal(np.concatenate([ds.train_y, ds.val_y]), expected)
            assert ds.train_y.dtype == np.int32 and ds.train_y[0] == 0
            assert set(ds.test_y[:]) <= set(range(10))
            assert ds.test_X[:2].dtype == np.float32


def test_svhn_extra_whole_path_compressed(home, server):
    data, X, y = svhn_mat(23, seed=2)
    with serve_dataset(server, "svhn_extra", {"extra_32x32.mat": data}):
        with svhn.SVHNExtra() as ds:
            assert tuple(ds.X_u8.shape) == (23, 3, 32, 32)
            np.testing.assert_array_equal(ds.X_u8[:], X.transpose(3, 2, 0, 1))
            np.testing.assert_array_equal(ds.y[:], y[:, 0].astype(np.int32) % 10)
            assert ds.X_u8.filters.complib == "blosc" and ds.X_u8.filters.complevel == 9
            assert ds.X[:3].dtype == np.float32


def test_cifar10_whole_path_and_split(home, server):
    files, arr = cifar10_tarball(4, 6)
    with serve_dataset(server, "cifar10", files):
        with cifar10.CIFAR10(n_val=5) as ds:
            assert ds.train_X_u8.shape == (15, 3, 32, 32) and ds.val_X.shape == (5, 3, 32, 32)
            np.testing.assert_array_equal(ds.train_X_u8, arr["train_X"][:15])
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][15:])
            np.testing.assert_array_equal(ds.test_X_u8[:], arr["test_X"])
            assert ds.test_y.dtype == np.int32
            assert ds.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                      "frog", "horse", "ship", "truck"]
    assert _downloads_left("cifar10") == []


def test_cifar100_whole_path_fine_and_coarse(home, server):
    files, arr = cifar100_tarball(12, 5)
    with serve_dataset(server, "cifar100", files):
        with cifar100.CIFAR100(n_val=4) as ds:
            assert ds.train_X.shape == (8, 3, 32, 32)
            np.testing.assert_array_equal(ds.train_y, arr["train_y"][:8])
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][8:])
            np.testing.assert_array_equal(ds.train_y_coarse, arr["train_y_coarse"][:8])
            np.testing.assert_array_equal(ds.val_y_coarse, arr["train_y_coarse"][8:])
            np.testing.assert_array_equal(ds.test_y_coarse[:], arr["test_y_coarse"])
            assert ds.class_names == arr["fine_names"]
            assert ds.class_names_coarse == arr["coarse_names"]
        with cifar100.CIFAR100(n_val=0) as ds:
            assert ds.val_y_coarse.shape == (0,) and ds.val_y_coarse.dtype == np.int32


def test_stl_whole_path_folds_and_unlabelled(home, server):
    folds = [[0, 2, 4], [1, 3, 5], [6, 7, 9]]
    files, arr, names = stl_tarball(10, 4, 3, folds)
    with serve_dataset(server, "stl", files):
        with stl.STL(n_val_folds=1) as ds:
            assert [f.tolist() for f in ds.tr_folds] == folds
            assert ds.class_names == names
            np.testing.assert_array_equal(ds.val_X_u8, arr["train_X"][[6, 7, 9]])
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][[6, 7, 9]])
            np.testing.assert_array_equal(ds.train_X_u8, arr["train_X"][[0, 1, 2, 3, 4, 5, 8]])
            np.testing.assert_array_equal(ds.test_X_u8[:], arr["test_X"])
            np.testing.assert_array_equal(ds.test_y[:], arr["test_y"])
            np.testing.assert_array_equal(ds.unl_X_u8[:], arr["unl_X"])
            assert ds.train_y.dtype == np.int32 and ds.train_X[:1].dtype == np.float32
        with stl.STL(n_val_folds=2) as ds:
            assert ds.val_y.shape == (6,) and ds.train_y.shape == (4,)
        with stl.STL(n_val_folds=0) as ds:
            assert tuple(ds.train_X_u8.shape) == (10, 3, 96, 96)
            assert ds.val_X_u8.shape == (0, 3, 96, 96)


def test_stl_rejects_more_val_folds_than_folds(home, server):
    files, _, _ = stl_tarball(4, 1, 1, [[0, 1], [2, 3]])
    with serve_dataset(server, "stl", files):
        with pytest.raises(ValueError, match="n_val_folds.*3"):
            stl.STL(n_val_folds=3)


def test_usps_whole_path_and_split(home, server):
    files, arr = usps_h5(20, 7)
    with serve_dataset(server, "usps", files):
        with usps.USPS(n_val=6) as ds:
            assert ds.train_X.shape == (14, 1, 16, 16) and ds.train_X.dtype == np.float32
            np.testing.assert_array_equal(ds.val_X, arr["train_X"][14:])
            np.testing.assert_array_equal(ds.val_y, arr["train_y"][14:])
            np.testing.assert_array_equal(ds.test_y[:], arr["test_y"])
        with usps.USPS(n_val=0) as ds:
            assert ds.val_X.shape == (0, 1, 16, 16) and ds.val_X.dtype == np.float32
            assert ds.val_y.dtype == np.int32


def test_usps_failure_raises(home, server):
    entry = with_urls(registry.get("usps", "usps.h5"), [server.url("/missing/usps.h5")])
    with registry.overridden(entry):
        with pytest.raises(RuntimeError, match="Could not load USPS dataset"):
            usps.USPS()


def test_delete_cache_removes_converted_file(home, server):
    files, _ = mnist_files(10, 3, seed=6)
    with serve_dataset(server, "mnist", files):
        mnist.MNIST(n_val=0).close()
    assert mnist.delete_cache() == [config.get_data_path("mnist.h5")]
    assert not os.path.exists(config.get_data_path("mnist.h5"))

"""The fetch protocol: every storage kind gives the in-memory batches in every iteration mode.

Each storage kind holds the same small data (written to files under tmp_path);
iterating it must give exactly the batches iterating the NumPy copy gives.
"""

from __future__ import annotations

import numpy as np
import pytest
from _loopback import mnist_files, serve_dataset

from batchup import data_source, sampling
from batchup._core import fetch
from batchup._core.fetch import read_rows, storage_kind
from batchup.datasets import mnist
from batchup.image.utils import ImageArrayUInt8ToFloat32

N = 37
X = (np.arange(N * 2 * 3, dtype=np.float32).reshape(N, 2, 3) * 0.5)
Y = (np.arange(N) % 5).astype(np.int32)


class Plain:
    """A user array-like of batchup 0.2.3's kind: ``__len__`` and index-array ``__getitem__``."""

    def __init__(self, a):
        self.a = a

    def __len__(self):
        return len(self.a)

    def __getitem__(self, key):
        return self.a[key]


def _numpy(tmp_path):
    return X, Y


def _memmap(tmp_path):
    out = []
    for name, a in (("x", X), ("y", Y)):
        m = np.lib.format.open_memmap(str(tmp_path / f"{name}.npy"), mode="w+", dtype=a.dtype,
                                      shape=a.shape)
        m[...] = a
        m.flush()
        out.append(np.load(str(tmp_path / f"{name}.npy"), mmap_mode="r"))
    return tuple(out)


def _tables(tmp_path, kind="carray"):
    tables = pytest.importorskip("tables")
    f = tables.open_file(str(tmp_path / "d.h5"), mode="w")
    nodes = []
    for name, a in (("x", X), ("y", Y)):
        if kind == "carray":
            node = f.create_carray(f.root, name, obj=a, chunkshape=(4,) + a.shape[1:])
        elif kind == "earray":
            node = f.create_earray(f.root, name, obj=a)
        else:
            node = f.create_array(f.root, name, obj=a)
        nodes.append(node)
    f.flush()
    _OPEN.append(f)
    return tuple(nodes)


def _h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    f = h5py.File(str(tmp_path / "d.h5"), "w")
    out = (f.create_dataset("x", data=X, chunks=(4, 2, 3)), f.create_dataset("y", data=Y))
    f.flush()
    _OPEN.append(f)
    return out


def _zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    x = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, dtype=X.dtype,
                        chunks=(4, 2, 3))
    x[...] = X
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="w", shape=Y.shape, dtype=Y.dtype,
                        chunks=(8,))
    y[...] = Y
    return x, y


def _dask(tmp_path):
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(5, 2, 3)), da.from_array(Y, chunks=(7,))


def _plain(tmp_path):
    return Plain(X), Plain(Y)


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_files():
    yield
    while _OPEN:
        _OPEN.pop().close()


STORAGE = {
    "numpy": _numpy,
    "memmap": _memmap,
    "tables-carray": _tables,
    "tables-earray": lambda p: _tables(p, "earray"),
    "tables-array": lambda p: _tables(p, "array"),
    "h5py": _h5py,
    "zarr": _zarr,
    "dask": _dask,
    "array-like": _plain,
}


def _sources(data, make):
    x, y = data
    return make([x, y])


def _modes():
    subset = np.array([30, 3, 4, 5, 6, 0, 36, 12, 11])
    return {
        "in order": (lambda d: data_source.ArrayDataSource(d), dict(shuffle=None)),
        "in order repeats": (lambda d: data_source.ArrayDataSource(d, repeats=2),
                             dict(shuffle=None)),
        "seeded": (lambda d: data_source.ArrayDataSource(d), dict(shuffle=5)),
        "RandomState repeats": (lambda d: data_source.ArrayDataSource(d, repeats=2),
                                dict(shuffle=lambda: np.random.RandomState(2))),
        "subset": (lambda d: data_source.ArrayDataSource(d, indices=subset),
                   dict(shuffle=3)),
        "subset in order": (lambda d: data_source.ArrayDataSource(d, indices=subset),
                            dict(shuffle=None)),
        "include_indices": (lambda d: data_source.ArrayDataSource(d, include_indices=True),
                            dict(shuffle=7)),
        "sharded": (lambda d: data_source.ArrayDataSource(d), dict(shuffle=7, shard=(1, 2))),
    }


@pytest.mark.parametrize("mode", list(_modes()))
@pytest.mark.parametrize("kind", list(STORAGE))
def test_every_storage_kind_gives_the_in_memory_batches(tmp_path, kind, mode):
    make, kwargs = _modes()[mode]
    want = [tuple(np.asarray(a) for a in b)
            for b in make([X, Y]).batch_iterator(6, **_fresh(kwargs))]
    got = list(make(list(STORAGE[kind](tmp_path))).batch_iterator(6, **_fresh(kwargs)))
    _assert_batches(got, want)


@pytest.mark.parametrize("kind", list(STORAGE))
def test_weighted_sampling_reads_repeated_indices(tmp_path, kind):
    weights = np.zeros(N)
    weights[[3, 4, 20]] = [1.0, 5.0, 2.0]  # few indices: many repeats per batch
    sampler = sampling.WeightedSampler(weights)
    mem = data_source.ArrayDataSource([X, Y], sampler=sampler).batch_iterator(16, shuffle=3)
    it = data_source.ArrayDataSource(list(STORAGE[kind](tmp_path)), sampler=sampler)
    got = it.batch_iterator(16, shuffle=3)
    _assert_batches([next(got) for _ in range(4)], [next(mem) for _ in range(4)])


@pytest.mark.parametrize("kind", list(STORAGE))
def test_composite_choice_and_batch_map_over_storage(tmp_path, kind):
    x, y = STORAGE[kind](tmp_path)
    stored = data_source.ArrayDataSource([x, y])
    mem = data_source.ArrayDataSource([X, Y])
    small = data_source.ArrayDataSource([np.arange(5)], repeats=-1)
    def twice(a):
        return (a, a)

    for make in (lambda d: data_source.CompositeDataSource([small, d]),
                 lambda d: data_source.ChoiceDataSource([d, small.map(twice)])):
        want = [tuple(np.asarray(p) for p in b) for b in make(mem).batch_iterator(4, shuffle=9)]
        _assert_batches(list(make(stored).batch_iterator(4, shuffle=9)), want)
    got = stored.batch_map_concat(lambda a, b: (a.sum(axis=(1, 2)), b * 2), batch_size=8)
    np.testing.assert_allclose(got[0], X.sum(axis=(1, 2)))
    np.testing.assert_array_equal(got[1], Y * 2)
    def total(a, b):
        return (a.sum(),)

    assert stored.batch_map_mean(total, batch_size=8)[0] == pytest.approx(
        mem.batch_map_mean(total, batch_size=8)[0], rel=1e-6)


@pytest.mark.parametrize("kind", list(STORAGE))
def test_image_view_over_storage(tmp_path, kind):
    # The data sets' lazy float views: uint8 rows read from storage, then converted.
    u8 = (np.arange(N * 4) % 256).astype(np.uint8).reshape(N, 4)
    if kind in ("numpy", "array-like"):
        raw = u8
    elif kind == "memmap":
        np.save(str(tmp_path / "u8.npy"), u8)
        raw = np.load(str(tmp_path / "u8.npy"), mmap_mode="r")
    elif kind.startswith("tables"):
        tables = pytest.importorskip("tables")
        f = tables.open_file(str(tmp_path / "u8.h5"), mode="w")
        _OPEN.append(f)
        raw = f.create_carray(f.root, "u8", obj=u8)
    elif kind == "h5py":
        h5py = pytest.importorskip("h5py")
        f = h5py.File(str(tmp_path / "u8h.h5"), "w")
        _OPEN.append(f)
        raw = f.create_dataset("u8", data=u8)
    elif kind == "zarr":
        zarr = pytest.importorskip("zarr")
        raw = zarr.open_array(str(tmp_path / "u8.zarr"), mode="w", shape=u8.shape,
                              dtype=u8.dtype)
        raw[...] = u8
    else:
        raw = pytest.importorskip("dask.array").from_array(u8, chunks=(6, 4))
    view = ImageArrayUInt8ToFloat32(raw, -1.0, 1.0)
    want = u8.astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0)
    idx = np.array([9, 2, 2, 30, 1])
    np.testing.assert_allclose(view[idx], want[idx], rtol=1e-6)
    batches = list(data_source.ArrayDataSource([view]).batch_iterator(8, shuffle=4))
    order = np.concatenate([b for b in data_source.ArrayDataSource([np.arange(N)])
                            .batch_indices_iterator(8, shuffle=4)])
    np.testing.assert_allclose(np.concatenate([b[0] for b in batches]), want[order], rtol=1e-6)


def test_mnist_lazy_arrays_iterate_in_every_mode(home, server):
    files, arr = mnist_files(40, 12, seed=2)
    with serve_dataset(server, "mnist", files):
        with mnist.MNIST(n_val=0) as ds:
            for X_lazy, y_lazy, raw in ((ds.train_X, ds.train_y, arr["train_X"]),
                                        (ds.test_X, ds.test_y, arr["test_X"])):
                want_X = raw[:, None].astype(np.float32) / np.float32(255.0)
                src = data_source.ArrayDataSource([X_lazy, y_lazy])
                for shuffle in (None, 3, np.random.RandomState(1)):
                    got = np.concatenate([b[0] for b in src.batch_iterator(8, shuffle=shuffle)])
                    mem = data_source.ArrayDataSource([np.arange(len(raw))])
                    order = np.concatenate([b[0] for b in mem.batch_iterator(
                        8, shuffle=shuffle if not isinstance(shuffle, np.random.RandomState)
                        else np.random.RandomState(1))])
                    np.testing.assert_allclose(got, want_X[order], atol=1e-6)
                means = src.batch_map_concat(lambda a, b: (a.mean(axis=(1, 2, 3)),),
                                             batch_size=16)
                np.testing.assert_allclose(means[0], want_X.mean(axis=(1, 2, 3)), atol=1e-6)


# ----------------------------------------------------------------- read_rows itself


def test_read_rows_restores_the_requested_order_and_reads_each_row_once(tmp_path):
    reads = []

    class Counting:
        """A stand-in for a PyTables node: records every slice it is asked for."""

        __module__ = "tables.fake"

        def __len__(self):
            return 1000

        def __getitem__(self, key):
            assert isinstance(key, slice), "storage must be read with slices"
            reads.append((key.start, key.stop))
            return np.arange(key.start, key.stop)

    idx = np.array([900, 3, 4, 5, 900, 500, 3])
    np.testing.assert_array_equal(read_rows(Counting(), idx), idx)
    # Three contiguous runs, each read once, in increasing order.
    assert reads == [(3, 6), (500, 501), (900, 901)]
    reads.clear()
    dense = np.array([10, 12, 11, 15])
    np.testing.assert_array_equal(read_rows(Counting(), dense), dense)
    assert reads == [(10, 16)]  # dense indices: one block


def test_read_rows_negative_indices_and_out_buffer(tmp_path):
    x, _ = _tables(tmp_path)
    got = read_rows(x, np.array([-1, 0, -N]))
    np.testing.assert_array_equal(got, X[[-1, 0, -N]])
    out = np.empty((2, 2, 3), np.float32)
    assert read_rows(x, np.array([4, 2]), out=out) is out
    np.testing.assert_array_equal(out, X[[4, 2]])
    out = np.empty((2, 2, 3), np.float32)
    assert read_rows(X, np.array([4, 2]), out=out) is out
    np.testing.assert_array_equal(out, X[[4, 2]])


def test_read_rows_out_of_range_names_the_index(tmp_path):
    x, _ = _tables(tmp_path)
    with pytest.raises(IndexError, match="index 37 is out of bounds .* length 37"):
        read_rows(x, np.array([0, 37]))
    with pytest.raises(IndexError, match="index -38"):
        read_rows(x, np.array([-38]))


def test_read_rows_rejects_a_non_integer_index(tmp_path):
    x, _ = _tables(tmp_path)
    with pytest.raises(IndexError, match="1-D integer array"):
        read_rows(x, np.array([0.5, 1.0]))
    with pytest.raises(IndexError, match="1-D integer array"):
        read_rows(x, np.zeros((2, 2), dtype=int))


def test_storage_kind_does_not_import_storage_modules():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from batchup._core.fetch import storage_kind; "
            "storage_kind(np.zeros(2)); storage_kind([1]); "
            "assert not {'h5py', 'tables', 'zarr', 'dask'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_storage_kinds_are_recognised(tmp_path):
    assert storage_kind(_tables(tmp_path)[0]) == "tables"
    assert storage_kind(ImageArrayUInt8ToFloat32(np.zeros((2, 2), np.uint8))) == "reader"
    assert storage_kind(Plain(X)) == "generic"
    assert fetch.STORAGE_MODULES == ("h5py", "tables", "zarr", "dask")


def _fresh(kwargs):
    """The iteration's arguments, with a new stream where ``shuffle`` makes one."""
    kw = dict(kwargs)
    if callable(kw.get("shuffle")):
        kw["shuffle"] = kw["shuffle"]()
    return kw


def _assert_batches(got, want):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert len(g) == len(w), f"batch {k}: {len(g)} parts, expected {len(w)}"
        for part, (a, b) in enumerate(zip(g, w, strict=True)):
            a = np.asarray(a)
            assert isinstance(a, np.ndarray), f"batch {k}[{part}] is a {type(a)}"
            np.testing.assert_array_equal(a, b, err_msg=f"batch {k}[{part}]")
            assert a.dtype == np.asarray(b).dtype, f"batch {k}[{part}]: dtype {a.dtype}"


# ----------------------------------------------------------------- files through process pools


@pytest.mark.parametrize("kind", ["memmap", "tables-carray", "h5py", "image-view", "zarr",
                                  "dask-zarr"])
def test_process_pool_reads_files_by_reference(tmp_path, kind, monkeypatch):
    from batchup import work_pool
    from batchup._pool import shm

    if kind == "image-view":
        u8 = (np.arange(N * 4) % 256).astype(np.uint8).reshape(N, 4)
        tables = pytest.importorskip("tables")
        f = tables.open_file(str(tmp_path / "u8.h5"), mode="w")
        _OPEN.append(f)
        data = [ImageArrayUInt8ToFloat32(f.create_carray(f.root, "u8", obj=u8)), Y]
        f.flush()
    elif kind == "dask-zarr":
        # A dask array over a zarr store pickles as its graph: the store's path.
        da = pytest.importorskip("dask.array")
        x, y = _zarr(tmp_path)
        data = [da.from_zarr(x), y]
    else:
        data = list(STORAGE[kind](tmp_path))
    raw = u8.tobytes() if kind == "image-view" else X.tobytes()
    dumped = []
    dump = shm.dump_constant

    def recording_dump(value, folder):
        ref = dump(value, folder)
        with open(ref.path, "rb") as f:
            dumped.append(f.read())
        return ref

    monkeypatch.setattr(shm, "dump_constant", recording_dump)
    ds = data_source.ArrayDataSource(data)
    want = [tuple(np.asarray(a) for a in b) for b in ds.batch_iterator(5, shuffle=2)]
    with work_pool.WorkerProcessPool(2) as pool:
        got = list(pool.parallel_data_source(ds, batch_buffer_size=4).batch_iterator(
            5, shuffle=2))
    _assert_batches(got, want)
    # The file's rows are not in shared memory: only the pickled references are.
    assert dumped and not any(raw in blob for blob in dumped)


@pytest.mark.parametrize("kind", ["tables-carray", "h5py"])
def test_file_closed_under_the_iterator_gives_a_clear_error(tmp_path, kind):
    x, y = STORAGE[kind](tmp_path)
    it = data_source.ArrayDataSource([x, y]).batch_iterator(8, shuffle=1, threads=0)
    next(it)
    _OPEN.pop().close()
    with pytest.raises(ValueError, match="file has been closed"):
        next(it)


@pytest.mark.parametrize("kind", ["tables-carray", "h5py"])
def test_closed_file_is_refused_at_construction(tmp_path, kind):
    x, y = STORAGE[kind](tmp_path)
    _OPEN.pop().close()
    with pytest.raises(ValueError, match=r"data\[0\]: cannot read from .*file has been closed"):
        data_source.ArrayDataSource([x, y])


def test_closed_file_under_a_float_view_gives_the_clear_error(tmp_path):
    tables = pytest.importorskip("tables")
    with tables.open_file(str(tmp_path / "u.h5"), mode="w") as f:
        f.create_carray(f.root, "u", obj=np.arange(64, dtype=np.uint8).reshape(16, 4))
    f = tables.open_file(str(tmp_path / "u.h5"))
    view = ImageArrayUInt8ToFloat32(f.root.u)
    ds = data_source.ArrayDataSource([view])
    f.close()
    with pytest.raises(ValueError, match="file has been closed"):
        next(ds.batch_iterator(4, shuffle=2, threads=0))


def test_a_missing_storage_library_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    ref = fetch.StorageRef("h5py", str(tmp_path / "x.h5"), "/x")
    with pytest.raises(ImportError, match=r"x\.h5.* needs h5py, which is not installed: "
                                          r"pip install 'batchup\[storage\]'"):
        fetch.open_reference(ref)


def test_read_rows_into_a_buffer_checks_bounds_and_takes_negative_indices():
    X = np.arange(10) * 10
    out = np.empty(3, dtype=X.dtype)
    assert read_rows(X, np.array([-1, 0, 4]), out=out) is out
    assert out.tolist() == [90, 0, 40]
    with pytest.raises(IndexError, match="index 10 is out of bounds for a numpy array of "
                                         "length 10"):
        read_rows(X, np.array([0, 10, 1]), out=out)

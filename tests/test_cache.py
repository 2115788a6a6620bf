"""batchup.cache: caching slow array-likes to .npy, HDF5 or shared memory, resumably."""

import errno
import gc
import itertools
import json
import os
import runpy
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from _waiting import wait_for

from batchup import data_source, sampling, work_pool
from batchup._core.fetch import storage_reference
from batchup.cache import cache_array, cache_source, fingerprint_positions

ROOT = Path(__file__).resolve().parent.parent

# A slow array-like, defined once as source text: the subprocess scripts below
# define it from the same text, so its type name (part of the fingerprint) is
# the same in them and here.
SLOW_ROWS = textwrap.dedent('''
    import os as _os
    import time as _time

    import numpy as _np


    class SlowRows:
        """Row i is [3i, 3i+1, 3i+2] (float32); each read sleeps, then logs its size."""

        def __init__(self, n, log=None, delay=0.0, scale=1):
            self.n, self.log, self.delay, self.scale = n, log, delay, scale

        def __len__(self):
            return self.n

        def __getitem__(self, index):
            index = _np.asarray(index)
            _time.sleep(self.delay)
            if self.log is not None:
                with open(self.log, "a") as f:
                    f.write(f"{index.size}\\n")
            return ((index[:, None] * 3 + _np.arange(3)) * self.scale).astype(_np.float32)
''')
_namespace = {"__name__": __name__}
exec(SLOW_ROWS, _namespace)
SlowRows = _namespace["SlowRows"]


def expected_rows(n, scale=1):
    return ((np.arange(n)[:, None] * 3 + np.arange(3)) * scale).astype(np.float32)


def logged_reads(log):
    """Sizes of the reads a SlowRows logged."""
    if not os.path.exists(log):
        return []
    return [int(line) for line in Path(log).read_text().split()]


class CountingRows:
    """An in-process array-like over ``data`` that counts the rows it reads."""

    def __init__(self, data):
        self.data = data
        self.reads = []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        index = np.asarray(index)
        self.reads.append(index.size)
        return self.data[index]


def fp_rows(n):
    return len(fingerprint_positions(n))


def run_script(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)




# --------------------------------------------------------------------------- storage


def test_npy_cache_is_a_memmap_with_a_manifest(tmp_path):
    X = np.random.default_rng(0).random((100, 3, 2)).astype(np.float32)
    path = tmp_path / "sub" / "X.npy"
    out = cache_array(X, path, batch_size=16)
    assert type(out) is np.memmap and out.mode == "r"
    np.testing.assert_array_equal(out, X)
    ref = storage_reference(out)
    assert ref is not None and ref.kind == "memmap" and ref.path == str(path)
    manifest = json.loads((tmp_path / "sub" / "X.npy.json").read_text())
    assert manifest["fingerprint"]["length"] == 100
    assert manifest["fingerprint"]["shape"] == [3, 2]
    assert manifest["fingerprint"]["dtype"] == "<f4"
    assert manifest["storage"] == "npy" and manifest["shape"] == [100, 3, 2]
    assert sorted(p.name for p in path.parent.iterdir()) == ["X.npy", "X.npy.json", "X.npy.lock"]
    np.testing.assert_array_equal(np.load(path), X)  # a plain .npy file


def test_second_call_reads_only_the_fingerprint_rows(tmp_path):
    src = CountingRows(np.arange(300, dtype=np.int16).reshape(100, 3))
    first = cache_array(src, tmp_path / "X.npy", batch_size=32)
    # The fingerprint (one read), then four blocks, one read each: no per-row reads.
    assert src.reads == [fp_rows(100), 32, 32, 32, 4]
    src.reads.clear()
    second = cache_array(src, tmp_path / "X.npy", batch_size=32)
    assert src.reads == [fp_rows(100)]
    np.testing.assert_array_equal(second, first)


def test_hdf5_cache_is_a_read_only_pytables_node(tmp_path):
    import tables

    X = np.arange(60, dtype=np.int32).reshape(20, 3)
    node = cache_array(X, tmp_path / "X.h5", storage="hdf5", batch_size=6)
    try:
        assert isinstance(node, tables.CArray) and node._v_file.mode == "r"
        np.testing.assert_array_equal(node[:], X)
        assert storage_reference(node).kind == "tables"
        again = cache_array(X, tmp_path / "X.h5", storage="hdf5")
        np.testing.assert_array_equal(again[:], X)
        again._v_file.close()
    finally:
        node._v_file.close()


def test_memory_storage_is_shared_memory_removed_with_the_array():
    X = np.arange(40.0).reshape(10, 4)
    out = cache_array(X, storage="memory", batch_size=3)
    path = out.filename
    np.testing.assert_array_equal(out, X)
    if os.path.isdir("/dev/shm"):
        assert path.startswith("/dev/shm/")
    assert storage_reference(out) is not None  # process pools pass it by reference
    view = out[2:5]
    del out
    gc.collect()
    assert os.path.exists(path)  # a view keeps it
    np.testing.assert_array_equal(view, X[2:5])
    del view
    gc.collect()
    assert not os.path.exists(path)


def test_memory_storage_with_a_path_is_kept(tmp_path):
    X = np.arange(10)
    out = cache_array(X, tmp_path / "shared.npy", storage="memory")
    del out
    gc.collect()
    np.testing.assert_array_equal(np.load(tmp_path / "shared.npy"), X)


def test_declared_dtype_and_shape_are_used(tmp_path):
    class Declared(CountingRows):
        dtype = np.dtype(np.float32)

        @property
        def shape(self):
            return self.data.shape

    src = Declared(np.arange(12.0).reshape(4, 3))  # float64 rows, declared float32
    out = cache_array(src, tmp_path / "X.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.arange(12.0).reshape(4, 3))


def test_rows_of_the_wrong_shape_are_reported(tmp_path):
    class Ragged(CountingRows):
        def __getitem__(self, index):
            rows = super().__getitem__(index)
            return rows[:, :2] if np.asarray(index)[0] == 4 else rows

    with pytest.raises(ValueError, match=r"rows 4\.\.7 with shape \(4, 2\), expected \(4, 3\)"):
        cache_array(Ragged(np.zeros((8, 3))), tmp_path / "X.npy", batch_size=4)
    assert not (tmp_path / "X.npy").exists()


# --------------------------------------------------------------------------- fingerprints


@pytest.mark.parametrize("change, field", [
    (lambda X: X[:-5], "length"),
    (lambda X: X.astype(np.float64), "dtype"),
    (lambda X: X.reshape(len(X), 3, 1), "row shape"),
    (lambda X: X + 1, "sampled rows"),
])
def test_a_changed_source_is_rebuilt_with_a_warning(tmp_path, change, field):
    X = np.arange(90, dtype=np.float32).reshape(30, 3)
    cache_array(X, tmp_path / "X.npy")
    Y = change(X)
    with pytest.warns(UserWarning, match=f"rebuilding the cache at .*X.npy.*{field}"):
        out = cache_array(Y, tmp_path / "X.npy")
    np.testing.assert_array_equal(out, Y)
    assert out.dtype == Y.dtype


def test_a_changed_key_or_cache_key_rebuilds(tmp_path):
    class Keyed(CountingRows):
        version = 1

        def cache_key(self):
            return {"decoder": self.version}

    src = Keyed(np.arange(20).reshape(10, 2))
    cache_array(src, tmp_path / "X.npy", key={"size": 8})
    with pytest.warns(UserWarning, match=r"key: cached \{'size': 8\}, now \{'size': 16\}"):
        cache_array(src, tmp_path / "X.npy", key={"size": 16})
    src.version = 2
    with pytest.warns(UserWarning, match=r"cache_key\(\): cached \{'decoder': 1\}"):
        cache_array(src, tmp_path / "X.npy", key={"size": 16})
    src.reads.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache_array(src, tmp_path / "X.npy", key={"size": 16})  # same again: reused
    assert src.reads == [fp_rows(10)]


def test_rebuild_false_raises_and_leaves_the_cache(tmp_path):
    path = tmp_path / "X.npy"
    cache_array(np.arange(10), path)
    before = path.stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"the cache at .*X\.npy does not match the source: "
                                         r"length: cached 10, now 12"):
        cache_array(np.arange(12), path, rebuild=False)
    assert path.stat().st_mtime_ns == before
    np.testing.assert_array_equal(np.load(path), np.arange(10))


def test_a_file_that_is_not_a_cache_is_never_overwritten(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.arange(5))
    with pytest.raises(FileExistsError, match="is not a batchup cache"):
        cache_array(np.arange(10), path)
    np.testing.assert_array_equal(np.load(path), np.arange(5))


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    path = tmp_path / "X.npy"
    cache_array(np.arange(100), path)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.warns(UserWarning, match="unreadable"):
        out = cache_array(np.arange(100), path)
    np.testing.assert_array_equal(out, np.arange(100))


# --------------------------------------------------------------------------- parallel fill


def test_thread_pool_fill_reads_each_block_once(tmp_path):
    src = CountingRows(np.arange(500).reshape(250, 2))
    with work_pool.WorkerThreadPool(2) as pool:
        out = cache_array(src, tmp_path / "X.npy", pool=pool, batch_size=20)
    np.testing.assert_array_equal(out, src.data)
    assert sorted(src.reads) == sorted([fp_rows(250)] + [20] * 12 + [10])


def test_process_pool_fill_from_an_int(tmp_path):
    log = tmp_path / "log"
    out = cache_array(SlowRows(90, str(log)), tmp_path / "X.npy", pool=2, batch_size=10)
    np.testing.assert_array_equal(out, expected_rows(90))
    assert sorted(logged_reads(log)) == sorted([fp_rows(90)] + [10] * 9)


def test_progress_bar(tmp_path, capsys):
    cache_array(np.arange(50), tmp_path / "X.npy", batch_size=10, progress=True)
    err = capsys.readouterr().err
    assert "caching X.npy" in err and "50/50" in err


# --------------------------------------------------------------------------- interruptions


KILLED_FILL = SLOW_ROWS + textwrap.dedent('''
    import sys
    from batchup.cache import cache_array
    cache_array(SlowRows(60, sys.argv[2], delay=0.05), sys.argv[1], batch_size=5)
''')


@pytest.mark.parametrize("storage", ["npy", "hdf5"])
def test_a_killed_fill_resumes(tmp_path, storage):
    path = tmp_path / f"X.{storage}"
    record = Path(f"{path}.partial.json")

    def blocks_done():
        try:
            done = json.loads(record.read_text())["done"]
        except (OSError, ValueError):
            return 0
        return int(np.unpackbits(np.frombuffer(bytes.fromhex(done), np.uint8)).sum())

    code = KILLED_FILL.replace("batch_size=5)", f"batch_size=5, storage={storage!r})")
    proc = run_script(code, path, tmp_path / "log")
    try:
        wait_for(lambda: blocks_done() >= 3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = blocks_done()
    assert 3 <= done < 12 and not path.exists()  # nothing half-written at the final path
    src = SlowRows(60, str(tmp_path / "log2"))  # the script's type name: same fingerprint
    out = cache_array(src, path, storage=storage, batch_size=7)  # resumes with its 5-row blocks
    reads = logged_reads(tmp_path / "log2")
    assert reads == [fp_rows(60)] + [5] * (12 - done)
    np.testing.assert_array_equal(out[:], expected_rows(60))
    assert not record.exists() and not Path(f"{path}.partial").exists()
    if storage == "hdf5":
        out._v_file.close()


def test_full_disk_fails_before_reading_any_block(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    src = CountingRows(np.zeros((1000, 10), dtype=np.float64))
    with pytest.raises(OSError, match=r"cache .*X\.npy: it needs 80,128 bytes") as info:
        cache_array(src, tmp_path / "X.npy")
    assert info.value.errno == errno.ENOSPC
    assert src.reads == [fp_rows(1000)]  # the fingerprint only, no block
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy.lock"]


def test_full_disk_hdf5_fails_before_reading_any_block(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    src = CountingRows(np.zeros((1000, 10), dtype=np.float64))
    with pytest.raises(OSError, match=r"cache .*X\.h5: it needs 80,000 bytes; 1,000 bytes are "
                                      r"free"):
        cache_array(src, tmp_path / "X.h5", storage="hdf5")
    assert src.reads == [fp_rows(1000)]
    assert not (tmp_path / "X.h5").exists()


def test_a_write_error_leaves_no_file_and_the_next_call_resumes(tmp_path, monkeypatch):
    real_pwrite = os.pwrite
    calls = []

    def failing(fd, data, offset):
        calls.append(offset)
        if len(calls) == 4:  # header, block 0, block 1, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", failing)
    src = CountingRows(np.arange(200).reshape(100, 2))
    with pytest.raises(OSError, match=r"writing the cache .*X\.npy \(at .*X\.npy\.partial\) "
                                      r"failed: No space left"):
        cache_array(src, tmp_path / "X.npy", batch_size=20)
    assert not (tmp_path / "X.npy").exists()
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    src.reads.clear()
    out = cache_array(src, tmp_path / "X.npy", batch_size=20)
    assert src.reads == [fp_rows(100), 20, 20, 20]  # blocks 2, 3 and 4 only
    np.testing.assert_array_equal(out, src.data)


def test_a_fill_stopped_before_its_rename_completes_without_reading(tmp_path, monkeypatch):
    real_replace = os.replace

    def stop_at_rename(src, dst):
        if str(src).endswith(".partial"):
            raise KeyboardInterrupt  # killed between the manifest and the rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", stop_at_rename)
    src = CountingRows(np.arange(60).reshape(30, 2))
    path = tmp_path / "X.npy"
    with pytest.raises(KeyboardInterrupt):
        cache_array(src, path, batch_size=8)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not path.exists() and Path(f"{path}.partial").exists()
    src.reads.clear()
    out = cache_array(src, path, batch_size=8)
    assert src.reads == [fp_rows(30)]  # every block was done: only renamed
    np.testing.assert_array_equal(out, src.data)


def test_a_source_error_then_a_damaged_hdf5_partial_restarts(tmp_path):
    class Failing(CountingRows):
        fail_at = 8

        def __getitem__(self, index):
            if np.asarray(index)[0] == self.fail_at:
                raise RuntimeError("decoder crashed")
            return super().__getitem__(index)

    src = Failing(np.arange(40).reshape(20, 2))
    path = tmp_path / "X.h5"
    with pytest.raises(RuntimeError, match="decoder crashed"):
        cache_array(src, path, storage="hdf5", batch_size=4)
    partial = Path(f"{path}.partial")
    assert not path.exists() and partial.exists()
    partial.write_bytes(b"not an HDF5 file")
    src.fail_at, src.reads = -1, []
    with pytest.warns(UserWarning, match=r"restarting the fill of .*X\.h5: its partial file "
                                         r"cannot be resumed"):
        out = cache_array(src, path, storage="hdf5", batch_size=4)
    try:
        np.testing.assert_array_equal(out[:], src.data)
        assert src.reads == [fp_rows(20)] + [4] * 5  # filled again from the start
    finally:
        out._v_file.close()


def test_a_partial_fill_of_another_source_is_not_resumed(tmp_path):
    class Failing(CountingRows):
        def __getitem__(self, index):
            if np.asarray(index)[0] == 10:
                raise RuntimeError("decoder crashed")
            return super().__getitem__(index)

    path = tmp_path / "X.npy"
    with pytest.raises(RuntimeError):
        cache_array(Failing(np.arange(20)), path, batch_size=5)
    other = CountingRows(np.arange(20) * 2)
    with pytest.raises(ValueError, match=r"the partly filled cache at .*X\.npy does not match "
                                         r"the source: source type: .*Failing', now "
                                         r"'CountingRows'; the sampled rows differ"):
        cache_array(other, path, batch_size=5, rebuild=False)
    with pytest.warns(UserWarning, match="rebuilding the partly filled cache"):
        out = cache_array(other, path, batch_size=5)
    np.testing.assert_array_equal(out, other.data)
    assert other.reads[-4:] == [5, 5, 5, 5]  # every block read for the new source


CONCURRENT_FILL = SLOW_ROWS + textwrap.dedent('''
    import sys, time
    import numpy as np
    from batchup.cache import cache_array
    path, log, ready, go = sys.argv[1:5]
    open(ready, "w").close()
    while not _os.path.exists(go):
        time.sleep(0.005)
    out = cache_array(SlowRows(40, log, delay=0.05), path, batch_size=4)
    expected = (np.arange(40)[:, None] * 3 + np.arange(3)).astype(np.float32)
    assert np.array_equal(out, expected)
    print("ok")
''')


def test_two_processes_at_once_fill_once(tmp_path):
    log, go = tmp_path / "log", tmp_path / "go"
    procs = [run_script(CONCURRENT_FILL, tmp_path / "X.npy", log, tmp_path / f"ready{i}", go)
             for i in range(2)]
    wait_for(lambda: all((tmp_path / f"ready{i}").exists() for i in range(2)))
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(out.strip() == "ok" for out, _ in outs)
    # Each process read the fingerprint rows; the 10 blocks were read once in all.
    assert sorted(logged_reads(log)) == sorted([fp_rows(40)] * 2 + [4] * 10)


# --------------------------------------------------------------------------- bad input


def test_bad_source_type(tmp_path):
    with pytest.raises(TypeError, match="source must be array-like .* not a int"):
        cache_array(5, tmp_path / "X.npy")


def test_empty_source(tmp_path):
    with pytest.raises(ValueError, match="source is empty"):
        cache_array(np.zeros((0, 3)), tmp_path / "X.npy")
    assert not any(tmp_path.iterdir())


def test_unknown_storage(tmp_path):
    with pytest.raises(ValueError, match="storage must be one of 'npy', 'hdf5', 'memory', not "
                                         "'zarr'"):
        cache_array(np.arange(3), tmp_path / "X.npy", storage="zarr")


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        ("8", TypeError)])
def test_bad_batch_size(tmp_path, bad, error):
    with pytest.raises(error, match=f"batch_size must be a positive integer, not {bad!r}"):
        cache_array(np.arange(3), tmp_path / "X.npy", batch_size=bad)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("storage", ["npy", "hdf5"])
def test_path_is_required_on_disk(storage):
    src = CountingRows(np.arange(3))
    with pytest.raises(ValueError, match=f"path is required for storage='{storage}'"):
        cache_array(src, storage=storage)
    assert src.reads == []


def test_path_that_is_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give the file"):
        cache_array(np.arange(3), tmp_path)


def test_object_rows_are_refused(tmp_path):
    with pytest.raises(TypeError, match="dtype object, which holds Python objects"):
        cache_array(np.array([{"a": 1}, None], dtype=object), tmp_path / "X.npy")
    with pytest.raises(TypeError, match="dtype object"):
        cache_array(CountingRows(np.array(["a", 1, None], dtype=object)), tmp_path / "Y.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_structured_rows_in_hdf5_are_refused(tmp_path):
    rows = np.zeros(4, dtype=[("a", "f4"), ("b", "i2")])
    with pytest.raises(TypeError, match="storage='hdf5' cannot store rows of dtype"):
        cache_array(rows, tmp_path / "X.h5", storage="hdf5")
    np.testing.assert_array_equal(cache_array(rows, tmp_path / "X.npy"), rows)


@pytest.mark.parametrize("pool, error, text", [
    (True, TypeError, "pool must be None, a WorkerThreadPool"),
    ("2", TypeError, "pool must be None"),
    (-1, ValueError, "pool must be a number of worker processes >= 0"),
])
def test_bad_pool(tmp_path, pool, error, text):
    with pytest.raises(error, match=text):
        cache_array(np.arange(3), tmp_path / "X.npy", pool=pool)


def test_closed_pool(tmp_path):
    pool = work_pool.WorkerThreadPool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="is closed"):
        cache_array(np.arange(3), tmp_path / "X.npy", pool=pool)


def test_key_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="key must be JSON-serialisable"):
        cache_array(np.arange(3), tmp_path / "X.npy", key=object())
    assert not any(tmp_path.iterdir())


def test_import_stays_light():
    code = ("import sys, batchup.cache, batchup.local_copy; "
            "print([m for m in ('tables', 'tqdm', 'joblib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- cache_source


def test_cache_source_one_file_per_array_same_batches(tmp_path):
    X = np.random.default_rng(1).random((50, 4)).astype(np.float32)
    y = np.arange(50) % 7
    ds = data_source.ArrayDataSource([X, y], repeats=2)
    cached = cache_source(ds, tmp_path / "c", batch_size=16)
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "1.npy"), y)  # labels alone
    assert all(type(a) is np.memmap for a in cached.data)
    for a, b in zip(ds.batch_iterator(8, shuffle=3), cached.batch_iterator(8, shuffle=3),
                    strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert cached.num_samples() == 100


def test_cache_source_subset_stores_only_its_rows(tmp_path):
    X = np.arange(200).reshape(100, 2)
    y = np.arange(100)
    idx = np.array([90, 5, 40, 5, 12])
    ds = data_source.ArrayDataSource([X, y], indices=idx)
    cached = cache_source(ds, tmp_path / "c")
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "1.npy"), [5, 12, 40, 90])
    for a, b in zip(ds.batch_iterator(2, shuffle=9), cached.batch_iterator(2, shuffle=9),
                    strict=True):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    # Another subset of the same arrays is another cache: rebuilt, with a warning.
    with pytest.warns(UserWarning, match="rebuilding"):
        other = cache_source(data_source.ArrayDataSource([X, y], indices=[1, 2]), tmp_path / "c")
    np.testing.assert_array_equal(other.data[1], [1, 2])


def test_cache_source_keeps_a_weighted_sampler(tmp_path):
    X = np.arange(10)
    sampler = sampling.WeightedSampler(np.arange(10.0) + 1)
    ds = data_source.ArrayDataSource([X], sampler=sampler)
    cached = cache_source(ds, tmp_path / "c")
    assert cached.sampler is sampler
    # Weighted sampling is endless: compare the first five batches.
    a = [b[0].tolist() for b in itertools.islice(ds.batch_iterator(4, shuffle=5), 5)]
    assert a == [b[0].tolist() for b in itertools.islice(cached.batch_iterator(4, shuffle=5), 5)]


def test_cache_source_hdf5_memory_and_pool(tmp_path):
    X, y = expected_rows(30), np.arange(30)
    ds = data_source.ArrayDataSource([SlowRows(30), y], include_indices=True)
    h5 = cache_source(ds, tmp_path / "h", storage="hdf5", pool=2, batch_size=8)
    try:
        assert sorted(p.name for p in (tmp_path / "h").glob("*.h5")) == ["0.h5", "1.h5"]
        idx, bx, by = next(h5.batch_iterator(30))
        np.testing.assert_array_equal(bx, X)
        np.testing.assert_array_equal(by, y)
        np.testing.assert_array_equal(idx, np.arange(30))
    finally:
        for node in h5.data:
            node._v_file.close()
    mem = cache_source(ds, None, storage="memory")
    np.testing.assert_array_equal(mem.data[0], X)


def test_cache_source_bad_input(tmp_path):
    ds = data_source.ArrayDataSource([np.arange(4)])
    with pytest.raises(TypeError, match="ds must be an ArrayDataSource, not a MapDataSource "
                                        r"\(cache the source it maps"):
        cache_source(ds.map(lambda x: (x,)), tmp_path / "c")
    with pytest.raises(ValueError, match="path is required for storage='npy'"):
        cache_source(ds, None)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="cache_source needs a folder"):
        cache_source(ds, tmp_path / "file")
    with pytest.raises(ValueError, match=r"ds is empty \(indices=\[\]\)"):
        cache_source(data_source.ArrayDataSource([np.arange(4)], indices=[]), tmp_path / "c")


# --------------------------------------------------------------------------- the example


def test_example_cache_slow_source(monkeypatch, capsys, tmp_path):
    argv = ["--cache", str(tmp_path / "cache"), "--delay", "0.0002", "--epochs", "3"]
    monkeypatch.setattr(sys, "argv", ["cache_slow_source.py", *argv])
    module = runpy.run_path(str(ROOT / "examples" / "cache_slow_source.py"))
    accuracy = module["main"](argv)
    out = capsys.readouterr().out
    assert "with 2 worker processes" in out and "['0.npy', '1.npy']" in out
    assert out.count("test accuracy") == 3 and accuracy > 0.7
    assert np.load(tmp_path / "cache" / "1.npy").shape == (1400,)

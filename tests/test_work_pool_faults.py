"""batchup.work_pool: worker failures, lifecycle (no orphaned processes) and start methods."""

import faulthandler
import gc
import os
import signal
import subprocess
import sys
import textwrap

import _pool_helpers as helpers
import numpy as np
import pytest

from batchup import data_source, work_pool

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(autouse=True)
def hang_guard():
    # A hang is the bug these tests look for: fail loudly instead of stalling CI.
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _run_script(tmp_path, source, **kwargs):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        **kwargs,
    )


# ----------------------------------------------------------------- exceptions


@pytest.mark.parametrize("cls", [work_pool.WorkerThreadPool, work_pool.WorkerProcessPool])
def test_worker_exception_keeps_type_message_and_traceback(cls):
    with cls(2) as pool:
        it = pool.work_stream([(helpers.fail_on, (k, 3)) for k in range(8)]).retrieve_iter()
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad task 3") as info:
            next(it)
        assert "fail_on" in info.value.worker_traceback
        assert "bad task 3" in info.value.worker_traceback
        assert isinstance(info.value.__cause__, work_pool.RemoteTraceback)
        # The failed iteration is over ...
        assert list(it) == []
        # ... but the pool serves the next one.
        assert list(
            pool.work_stream([(helpers.square, (k,)) for k in range(4)]).retrieve_iter()
        ) == [
            0,
            1,
            4,
            9,
        ]


def test_unpicklable_worker_exception_is_described():
    with work_pool.WorkerProcessPool(1) as pool:
        with pytest.raises(RuntimeError, match="NotPicklableError: 1-2") as info:
            pool.work_stream([(helpers.raise_unpicklable, (0,))]).retrieve()
        assert "raise_unpicklable" in info.value.worker_traceback


def test_exception_in_map_function_of_parallel_source():
    def bad_map(x):
        if x[0] >= 6:
            raise KeyError("no such sample")
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(10)]).map(bad_map)
    with work_pool.WorkerProcessPool(2) as pool:
        it = pool.parallel_data_source(ds, batch_buffer_size=3).batch_iterator(3)
        assert next(it)[0].tolist() == [0, 1, 2]
        assert next(it)[0].tolist() == [3, 4, 5]
        with pytest.raises(KeyError, match="no such sample"):
            next(it)


@pytest.mark.parametrize("chunk", [2, 4])
def test_exception_in_the_middle_of_a_chunk_is_raised_at_its_task(chunk):
    with work_pool.WorkerProcessPool(2) as pool:
        tasks = [(helpers.fail_on, (k, 5)) for k in range(12)]
        it = pool.work_stream(tasks, task_buffer_size=8, tasks_per_chunk=chunk).retrieve_iter()
        assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="bad task 5") as info:
            next(it)
        assert "fail_on" in info.value.worker_traceback
        assert list(it) == []
        ring = pool._state.ring
        # Every slot of the failed iteration went back to the ring.
        assert helpers.wait_until(lambda: len(ring._free) == ring.created)
        assert list(pool.work_stream([(helpers.square, (k,)) for k in range(5)], 4, 2)
                    .retrieve_iter()) == [0, 1, 4, 9, 16]


@pytest.mark.parametrize("chunk", [1, 4])
def test_unpicklable_result_mid_chunk_is_raised_at_its_task(chunk):
    with work_pool.WorkerProcessPool(1) as pool:
        tasks = [(helpers.unpicklable_result_on, (k, 2)) for k in range(8)]
        it = pool.work_stream(tasks, task_buffer_size=8, tasks_per_chunk=chunk).retrieve_iter()
        assert [next(it), next(it)] == [0, 1]
        with pytest.raises(Exception, match="pickle"):
            next(it)
        assert list(it) == []


def test_exception_in_map_function_mid_chunk_of_parallel_source():
    def bad_map(x):
        if x[0] >= 12:
            raise KeyError("no such sample")
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(30)]).map(bad_map)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=6, batches_per_chunk=3)
        it = par.batch_iterator(3)
        assert [next(it)[0].tolist() for _ in range(4)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8],
                                                             [9, 10, 11]]
        with pytest.raises(KeyError, match="no such sample"):
            next(it)


# ----------------------------------------------------------------- dead workers


def test_killed_worker_raises_clear_error_then_pool_recovers():
    with work_pool.WorkerProcessPool(2) as pool:
        old = set()
        stream = pool.work_stream([(helpers.kill_self_on, (k, 4)) for k in range(10)], 3)
        got = []
        with pytest.raises(work_pool.WorkerCrashedError, match="worker process died"):
            for value in stream.retrieve_iter():
                got.append(value)
                old.update(pool.worker_pids())
        assert got == [0, 1, 2, 3][: len(got)]
        # The next iteration runs on fresh workers.
        out = list(pool.work_stream([(helpers.my_pid, (k,)) for k in range(6)]).retrieve_iter())
        assert len(out) == 6
        assert not set(out) & old


def test_killed_worker_in_parallel_source():
    def deadly(x):
        if 7 in x:
            os.kill(os.getpid(), signal.SIGKILL)
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(20)]).map(deadly)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=4)
        with pytest.raises(work_pool.WorkerCrashedError):
            list(par.batch_iterator(4))
        ok = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(6)]))
        assert [b[0].tolist() for b in ok.batch_iterator(3)] == [[0, 1, 2], [3, 4, 5]]


def test_killed_worker_in_chunked_parallel_source():
    def deadly(x):
        if 9 in x:
            os.kill(os.getpid(), signal.SIGKILL)
        return (x,)

    ds = data_source.ArrayDataSource([np.arange(40)]).map(deadly)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(ds, batch_buffer_size=8, batches_per_chunk=2)
        with pytest.raises(work_pool.WorkerCrashedError):
            list(par.batch_iterator(2))
        ok = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(6)]), 4, 2)
        assert [b[0].tolist() for b in ok.batch_iterator(2)] == [[0, 1], [2, 3], [4, 5]]


# ----------------------------------------------------------------- lifecycle


def test_close_is_idempotent_and_final():
    pool = work_pool.WorkerProcessPool(1)
    assert pool.work_stream([(helpers.square, (3,))]).retrieve() == 9
    pool.close()
    pool.close()
    assert pool.closed
    with pytest.raises(RuntimeError, match="closed"):
        pool.work_stream([(helpers.square, (3,))])


def test_thread_pool_close_is_idempotent_and_final():
    pool = work_pool.WorkerThreadPool(2)
    pool.close()
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.work_stream([(helpers.square, (3,))])


def test_batches_stay_valid_after_close():
    X = np.arange(64 * 512, dtype=np.float64).reshape(64, 512)
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(data_source.ArrayDataSource([X]), batch_buffer_size=2)
        batches = list(par.batch_iterator(16))
        folder = pool._state.folder.path
    assert not os.path.exists(folder)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)


def test_abandoned_iterator_cancels_pending_work_and_leaves_no_process():
    with work_pool.WorkerProcessPool(2) as pool:
        tasks = [(helpers.sleep_then, (k, 0.2)) for k in range(40)]
        stream = pool.work_stream(tasks, task_buffer_size=20)
        pending = list(stream._pending)
        for value in stream.retrieve_iter():
            assert value == 0
            break
        # break + drop: the iterator and the stream are garbage
        del stream, value
        gc.collect()
        assert sum(h.future.cancelled() for h in pending) >= 10
        pids = pool.worker_pids()
        assert len(pids) == 2
    assert helpers.wait_gone(pids) == []
    assert not set(pids) & set(helpers.children_of(os.getpid()))


def test_abandoned_chunked_iterator_cancels_pending_chunks_and_frees_slots():
    X = np.arange(64 * 1024, dtype=np.float64).reshape(64, 1024)
    slow = data_source.ArrayDataSource([X]).map(lambda x: (__import__("time").sleep(0.1), (x,))[1])
    with work_pool.WorkerProcessPool(2) as pool:
        par = pool.parallel_data_source(slow, batch_buffer_size=24, batches_per_chunk=2)
        it = par.batch_iterator(2)
        pending = list(it._stream._pending)
        (first,) = next(it)
        np.testing.assert_array_equal(first, X[:2])
        del it, first
        gc.collect()
        # Chunks not started are cancelled (workers run two, loky's call queue holds three).
        assert len({id(h.chunk) for h in pending}) == 12
        assert sum(h.future.cancelled() for h in pending) >= 2 * 5
        ring = pool._state.ring
        assert helpers.wait_until(lambda: len(ring._free) == ring.created, timeout=10)
        assert [b[0].tolist() for b in pool.parallel_data_source(
            data_source.ArrayDataSource([np.arange(4)]), 4, 2).batch_iterator(2)] == [[0, 1],
                                                                                    [2, 3]]


def test_closed_iterator_cancels_pending_work():
    with work_pool.WorkerThreadPool(1) as pool:
        it = pool.work_stream(
            [(helpers.sleep_then, (k, 0.05)) for k in range(30)], 10
        ).retrieve_iter()
        pending = list(it._stream._pending)
        next(it)
        it.close()
        it.close()
        assert sum(h.future.cancelled() for h in pending) >= 5
        assert list(it) == []


def test_garbage_collected_pool_leaves_no_process():
    pool = work_pool.WorkerProcessPool(2)
    it = pool.parallel_data_source(data_source.ArrayDataSource([np.arange(100)])).batch_iterator(5)
    next(it)
    pids = pool.worker_pids()
    folder = pool._state.folder.path
    del pool, it
    gc.collect()
    assert helpers.wait_gone(pids) == []
    assert not os.path.exists(folder)


def test_interpreter_exit_leaves_no_process(tmp_path):
    proc = _run_script(
        tmp_path,
        """
        import numpy as np, time
        from batchup import data_source, work_pool
        pool = work_pool.WorkerProcessPool(2)  # never closed, as in batchup 0.2.3's README
        slow = data_source.ArrayDataSource([np.arange(1000)]).map(
            lambda x: (time.sleep(0.5), (x,))[1])
        it = pool.parallel_data_source(slow, batch_buffer_size=20).batch_iterator(5)
        next(it)
        print(" ".join(map(str, pool.worker_pids())), pool._state.folder.path, flush=True)
        """,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    *pids, folder = out.split()
    assert len(pids) == 2
    assert helpers.wait_gone([int(p) for p in pids]) == []
    assert not os.path.exists(folder)
    assert "Traceback" not in err


def test_ctrl_c_stops_everything_cleanly(tmp_path):
    proc = _run_script(
        tmp_path,
        """
        import numpy as np, signal, time
        from batchup import data_source, work_pool
        # As in a terminal (a background parent may have left SIGINT ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        slow = data_source.ArrayDataSource([np.arange(1000)]).map(
            lambda x: (time.sleep(0.3), (x,))[1])
        with work_pool.WorkerProcessPool(2) as pool:
            it = pool.parallel_data_source(slow, batch_buffer_size=8).batch_iterator(5)
            next(it)
            print(" ".join(map(str, pool.worker_pids())), pool._state.folder.path, flush=True)
            for batch in it:
                pass
        """,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    *pids, folder = line.split()
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert err.count("KeyboardInterrupt") == 1, err  # workers stay quiet
    assert helpers.wait_gone([int(p) for p in pids]) == []
    assert not os.path.exists(folder)


def test_killed_consumer_leaves_no_worker(tmp_path):
    proc = _run_script(
        tmp_path,
        """
        import numpy as np, time
        from batchup import work_pool
        pool = work_pool.WorkerProcessPool(2)
        pool.work_stream([(abs, (-1,))]).retrieve()
        print(" ".join(map(str, pool.worker_pids())), flush=True)
        time.sleep(60)
        """,
    )
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.kill()
    proc.wait(timeout=30)
    assert helpers.wait_gone(pids, timeout=20) == []
    proc.stdout.close()
    proc.stderr.close()


# ----------------------------------------------------------------- start methods


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
# Python 3.12+ warns that fork() in a process with threads (other pools' loky
# threads, here) may deadlock the child: the reason forkserver became the default.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_start_method(method):
    X = np.random.RandomState(0).rand(40, 8)
    y = np.arange(40)
    ds = data_source.ArrayDataSource([X, y]).map(
        lambda x, y: (x + work_pool.task_rng().normal(), y)
    )
    results = []
    for n, chunk in ((1, None), (2, 2)):
        with work_pool.WorkerProcessPool(n, seed=3, start_method=method) as pool:
            par = pool.parallel_data_source(ds, batch_buffer_size=4, batches_per_chunk=chunk)
            results.append(list(par.batch_iterator(6, shuffle=np.random.RandomState(2))))
            with pytest.raises(ValueError, match="bad task 1"):
                list(
                    pool.work_stream([(helpers.fail_on, (k, 1)) for k in range(3)]).retrieve_iter()
                )
            pids = pool.worker_pids()
        assert helpers.wait_gone(pids) == []
    serial = list(
        data_source.ArrayDataSource([X, y]).batch_iterator(6, shuffle=np.random.RandomState(2))
    )
    for a, b, s in zip(results[0], results[1], serial, strict=False):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], s[1])
        assert not np.array_equal(a[0], s[0])

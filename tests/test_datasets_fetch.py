"""Download, verification, cache repair and offline use, against a 127.0.0.1 server."""

import dataclasses
import errno
import gc
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _loopback import loopback_url, mnist_files, refusing_ports, serve_dataset, sha256, with_urls

from batchup import config
from batchup.datasets import _download, _h5, dataset, mnist, registry

LABELS = "t10k-labels-idx1-ubyte.gz"


def _fetch_one(server, name, data, mirrors):
    """Register one MNIST file with ``mirrors`` (paths or (path, mode)) and acquire it."""
    urls = []
    for m in mirrors:
        path, mode = m if isinstance(m, tuple) else (m, None)
        urls.append(server.add(path, data, mode) if mode != "absent" else server.url(path))
    entry = registry.SourceFile("mnist", name, tuple(urls), sha256(data))
    with registry.overridden(entry):
        return dataset.RegistrySourceFile("mnist", name).acquire()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ mirrors


def test_mirror_that_404s_falls_through_to_next(home, server):
    data = b"label bytes 404 case"
    path = _fetch_one(server, LABELS, data, [("/a404/x", "404"), "/b404/x"])
    assert _read(path) == data
    assert server.gets("/a404/x") == 1 and server.gets("/b404/x") == 1


def test_missing_file_on_mirror_falls_through(home, server):
    data = b"label bytes absent case"
    path = _fetch_one(server, LABELS, data, [("/nowhere/x", "absent"), "/there/x"])
    assert _read(path) == data


def test_html_error_page_with_status_200_is_a_mismatch(home, server):
    data = b"the real label bytes"
    path = _fetch_one(server, LABELS, data, [("/html/x", "html"), "/good_html/x"])
    assert _read(path) == data
    assert server.gets("/html/x") == 1  # a mismatch is not retried on the same mirror


def test_truncated_file_is_rejected_and_fetched_from_next_mirror(home, server):
    data = bytes(range(256)) * 8
    path = _fetch_one(server, LABELS, data, [("/short/x", "short"), "/full/x"])
    assert _read(path) == data


def test_interrupted_download_resumes_with_range(home, server):
    data = os.urandom(200_000)
    path = _fetch_one(server, LABELS, data, [("/cut/x", "cut-once")])
    assert _read(path) == data
    ranges = [r for p, r in server.log if p == "/cut/x"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"
    assert not os.path.exists(path + ".part")


def test_all_mirrors_failing_raises_naming_each_url(home, server):
    data = b"never delivered"
    with pytest.raises(RuntimeError) as info:
        _fetch_one(server, LABELS, data, [("/f1/x", "404"), ("/f2/x", "html")])
    message = str(info.value)
    assert server.url("/f1/x") in message and "HTTP 404" in message
    assert server.url("/f2/x") in message and "SHA-256 mismatch" in message
    assert "BATCHUP_DOWNLOADS" in message
    local = dataset.RegistrySourceFile("mnist", LABELS).local_path
    assert not os.path.exists(local)
    assert [f for f in os.listdir(os.path.dirname(local)) if not f.endswith(".part")] == []


def test_wrong_hash_file_in_downloads_is_deleted_and_refetched(home, server):
    data = b"correct content"
    local = dataset.RegistrySourceFile("mnist", LABELS).local_path
    os.makedirs(os.path.dirname(local))
    with open(local, "wb") as f:
        f.write(b"stale content from an old run")
    path = _fetch_one(server, LABELS, data, ["/refetch/x"])
    assert path == local and _read(local) == data


def test_dataset_failure_message_names_dataset(home, server):
    files, _ = mnist_files(5, 2)
    with serve_dataset(server, "mnist", files) as entries:
        broken = [with_urls(e, [server.url("/gone/" + e.filename)]) for e in entries]
        with registry.overridden(*broken), pytest.raises(RuntimeError,
                                                         match="Could not load MNIST dataset"):
            mnist.MNIST(n_val=0)
    assert not os.path.exists(config.get_data_path("mnist.h5"))


# ------------------------------------------------------------------ what a failure prints

MAX_LINE = 120


def _acquire_lines(capsys, urls, data=b"x"):
    """Acquire one MNIST file from ``urls``; return (error, printed lines)."""
    entry = registry.SourceFile("mnist", LABELS, tuple(urls), sha256(data))
    with registry.overridden(entry), pytest.raises(_download.DownloadError) as info:
        dataset.RegistrySourceFile("mnist", LABELS).acquire()
    return info.value, capsys.readouterr().out.splitlines()


def _header():
    folder = os.path.join(config.get_downloads_dir(), "mnist", "")
    return f"Downloading {LABELS} into {folder}"


def test_refused_connections_print_one_short_line_per_attempt(short_home, no_waits, capsys):
    with refusing_ports(2) as ports:
        hosts = [f"127.0.0.1:{p}" for p in ports]
        err, lines = _acquire_lines(capsys, [loopback_url(p, f"mnist/{LABELS}") for p in ports])
    assert lines == [_header()] + [f"  {h} failed: connection refused (attempt {i} of 3)"
                                   for h in hosts for i in (1, 2, 3)]
    assert err.summary == f"could not download {LABELS} (6 attempts at 2 hosts failed)"
    assert max(len(line) for line in lines + str(err).splitlines()) <= MAX_LINE


def test_failed_name_lookup_is_named_with_the_host(short_home, no_waits, capsys, monkeypatch):
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):  # no query leaves the machine
        if str(host) == "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    ports = [1, 2]  # never reached: the (patched) look-up of the host fails first
    hosts = [f"127.0.0.1:{p}" for p in ports]
    err, lines = _acquire_lines(capsys, [loopback_url(p, f"data/{LABELS}", "https")
                                         for p in ports])
    assert lines == [_header()] + [f"  {h} failed: name resolution failed (attempt {i} of 3)"
                                   for h in hosts for i in (1, 2, 3)]
    assert [reason for _, reason in err.failures] == ["name resolution failed"] * 6


def test_silent_server_times_out_with_one_line_per_attempt(short_home, no_waits, capsys,
                                                           monkeypatch):
    monkeypatch.setattr(_download, "TIMEOUT_SECONDS", (5.0, 0.2))
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        host = f"127.0.0.1:{port}"
        _, lines = _acquire_lines(capsys, [loopback_url(port, LABELS)])
    assert lines == [_header()] + [f"  {host} failed: timed out (attempt {i} of 3)"
                                   for i in (1, 2, 3)]


def test_404_and_wrong_content_are_one_line_each_and_not_retried(short_home, server, capsys):
    url_404 = server.add("/lines404/x", b"real", "404")
    url_html = server.add("/lineshtml/x", b"real", "html")
    err, lines = _acquire_lines(capsys, [url_404, url_html], data=b"real")
    host = server.url("").split("://")[1]
    mismatch = "SHA-256 mismatch (wrong or corrupt content)"
    assert lines == [_header(), f"  {host} failed: HTTP 404", f"  {host} failed: {mismatch}"]
    assert server.gets("/lines404/x") == 1 and server.gets("/lineshtml/x") == 1
    assert str(err).splitlines()[1:3] == [f"  {url_404}: HTTP 404", f"  {url_html}: {mismatch}"]


def test_cut_transfer_is_one_line_then_resumes(short_home, server, capsys):
    data = os.urandom(150_000)
    url = server.add("/linescut/x", data, "cut-once")
    entry = registry.SourceFile("mnist", LABELS, (url,), sha256(data))
    with registry.overridden(entry):
        path = dataset.RegistrySourceFile("mnist", LABELS).acquire()
    assert _read(path) == data
    host = url.split("/")[2]
    assert capsys.readouterr().out.splitlines() == [
        _header(), f"  {host} failed: connection closed mid-transfer (attempt 1 of 3)"]


def test_full_errors_are_kept_and_printed_with_batchup_debug(short_home, no_waits, capsys,
                                                             monkeypatch):
    import requests

    with refusing_ports(1) as (port,):
        _, quiet = _acquire_lines(capsys, [loopback_url(port, LABELS)])
        monkeypatch.setenv("BATCHUP_DEBUG", "1")
        err, loud = _acquire_lines(capsys, [loopback_url(port, LABELS)])
    assert not any("HTTPConnectionPool" in line for line in quiet)
    assert loud[1::2] == quiet[1:]  # the same short lines, each followed by its full error
    assert len(loud) == 7
    for full in loud[2::2]:
        assert full.startswith("    requests.exceptions.ConnectionError: HTTPConnectionPool")
        assert "Connection refused" in full
    assert len(err.errors) == len(err.failures) == 3
    assert all(isinstance(e, requests.ConnectionError) for e in err.errors)
    assert err.__cause__ is err.errors[-1]


def test_download_error_without_attempts_has_no_empty_list(short_home):
    hint = "$BATCHUP_OFFLINE is set. To use batchup without network access, place " + \
        f"{LABELS} (SHA-256 {'0' * 64}) at {short_home}/data/downloads/mnist/{LABELS}."
    err = _download.DownloadError(LABELS, [], hint)
    lines = str(err).splitlines()
    assert lines[0] == f"could not download {LABELS}: no URL was tried"
    assert "attempts:" not in str(err)
    assert " ".join(lines[1:]) == hint  # wrapped, not changed
    assert max(len(line) for line in lines) <= 100


@pytest.mark.parametrize("exc, reason", [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection reset"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "network unreachable"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "host unreachable"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (TimeoutError("timed out"), "timed out"),
])
def test_short_reason_of_socket_errors(exc, reason):
    assert _download.short_reason(exc) == reason


def test_short_reason_of_unknown_errors_is_short():
    reason = _download.short_reason(RuntimeError("x" * 500))
    assert reason.startswith("RuntimeError: xxx") and len(reason) <= 60


# ------------------------------------------------------------------ offline use


def test_files_placed_in_downloads_folder_are_used_offline(home, server, monkeypatch):
    files, arr = mnist_files(10, 4, seed=7)
    folder = os.path.join(config.get_downloads_dir(), "mnist")
    os.makedirs(folder)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    monkeypatch.setenv("BATCHUP_OFFLINE", "1")
    entries = [registry.SourceFile("mnist", n, (server.url("/offline/" + n),), sha256(d))
               for n, d in files.items()]
    before = len(server.log)
    with registry.overridden(*entries), mnist.MNIST(n_val=2) as ds:
        np.testing.assert_array_equal(ds.val_y, arr["train_y"][8:])
    assert len(server.log) == before


@pytest.mark.parametrize("layout", ["flat", "per_dataset"])
def test_files_in_env_folder_are_used_and_kept(home, server, monkeypatch, tmp_path, layout):
    files, arr = mnist_files(10, 4, seed=8)
    offline = tmp_path / "usb"
    target = offline / "mnist" if layout == "per_dataset" else offline
    target.mkdir(parents=True)
    for name, data in files.items():
        (target / name).write_bytes(data)
    monkeypatch.setenv("BATCHUP_DOWNLOADS", str(offline))
    entries = [registry.SourceFile("mnist", n, (server.url("/nonet/" + n),), sha256(d))
               for n, d in files.items()]
    before = len(server.log)
    with registry.overridden(*entries), mnist.MNIST(n_val=0) as ds:
        np.testing.assert_array_equal(ds.test_y[:], arr["test_y"])
    assert len(server.log) == before
    assert sorted(os.listdir(target)) == sorted(files)  # never deleted


def test_wrong_file_in_env_folder_is_ignored(home, server, monkeypatch, tmp_path, capsys):
    data = b"genuine"
    (tmp_path / LABELS).write_bytes(b"imposter")
    monkeypatch.setenv("BATCHUP_DOWNLOADS", str(tmp_path))
    path = _fetch_one(server, LABELS, data, ["/ignored_env/x"])
    assert _read(path) == data
    assert "ignoring" in capsys.readouterr().out
    assert (tmp_path / LABELS).read_bytes() == b"imposter"


def test_offline_mode_without_files_says_where_to_put_them(home, monkeypatch, capsys):
    monkeypatch.setenv("BATCHUP_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="BATCHUP_OFFLINE") as info:
        mnist.MNIST()
    message = str(info.value)
    assert os.path.join("downloads", "mnist") in message
    assert "attempts:" not in message and "no URL was tried" in message
    assert capsys.readouterr().out == ""  # nothing is downloaded, so nothing is printed


# ------------------------------------------------------------------ cache repair


def test_corrupt_cached_h5_is_rebuilt_with_message(home, server, capsys):
    files, arr = mnist_files(8, 3, seed=9)
    target = config.get_data_path("mnist.h5")
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n garbage, not a real file")
    with serve_dataset(server, "mnist", files), mnist.MNIST(n_val=0) as ds:
        np.testing.assert_array_equal(ds.train_y[:], arr["train_y"])
    assert "unusable" in capsys.readouterr().out


def test_cached_h5_lacking_arrays_is_rebuilt(home, server, capsys):
    import tables

    files, arr = mnist_files(8, 3, seed=10)
    target = config.get_data_path("mnist.h5")
    os.makedirs(os.path.dirname(target))
    with tables.open_file(target, "w") as f:
        g = f.create_group(f.root, "mnist")
        f.create_array(g, "train_X_u8", np.zeros((2, 1, 28, 28), np.uint8))
    with serve_dataset(server, "mnist", files), mnist.MNIST(n_val=0) as ds:
        np.testing.assert_array_equal(ds.test_y[:], arr["test_y"])
    assert "lacks /mnist/train_y" in capsys.readouterr().out


def test_conversion_error_leaves_nothing_behind(home, server):
    bogus = b"not gzip at all"
    files, _ = mnist_files(4, 2)
    files["t10k-labels-idx1-ubyte.gz"] = bogus
    with serve_dataset(server, "mnist", files), pytest.raises(OSError):
        mnist.MNIST(n_val=0)
    assert sorted(os.listdir(config.get_data_dir())) == ["downloads"]


def test_conversion_killed_half_way_is_repaired_by_next_call(home, server):
    files, arr = mnist_files(6, 2, seed=11)
    with serve_dataset(server, "mnist", files) as entries:
        # A child process downloads, starts converting and dies abruptly while
        # the HDF5 file is half-written (after the images, before the labels).
        entries_json = json.dumps([dataclasses.asdict(e) for e in entries])
        script = textwrap.dedent(f"""
            import json, os
            from batchup.datasets import mnist, registry
            for e in json.loads({entries_json!r}):
                registry.register(registry.SourceFile(**e))
            def die(path):
                os._exit(9)
            mnist.read_idx_labels = die
            mnist.MNIST()
        """)
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 9, proc.stderr
        data_dir = config.get_data_dir()
        leftovers = [f for f in os.listdir(data_dir) if f.endswith(".tmp")]
        assert len(leftovers) == 1 and not os.path.exists(os.path.join(data_dir, "mnist.h5"))
        with mnist.MNIST(n_val=0) as ds:
            np.testing.assert_array_equal(ds.train_y[:], arr["train_y"])
        assert [f for f in os.listdir(data_dir) if f.endswith(".tmp")] == []


def test_temp_files_of_live_processes_are_left_alone(home):
    target = config.get_data_path("mnist.h5")
    os.makedirs(os.path.dirname(target))
    mine = _h5.temp_path_for(target)
    other_host = f"{target}.{socket.gethostname()}x-1.tmp"
    for p in (mine, other_host):
        open(p, "w").close()
    assert _h5.remove_stale_temps(target) == []


# ------------------------------------------------------------------ n_val validation


def test_n_val_negative_is_rejected(home):
    with pytest.raises(ValueError, match=r"n_val must be >= 0, got -1"):
        mnist.MNIST(n_val=-1)


def test_n_val_float_is_rejected(home):
    with pytest.raises(TypeError, match=r"n_val must be an integer or None, got 1.5"):
        mnist.MNIST(n_val=1.5)


def test_n_val_string_is_rejected(home):
    with pytest.raises(TypeError, match=r"n_val .* got '10'"):
        mnist.MNIST(n_val="10")


def test_n_val_bool_is_rejected(home):
    with pytest.raises(TypeError, match=r"n_val .* got True"):
        mnist.MNIST(n_val=True)


def test_n_val_larger_than_training_set_is_rejected(home, server):
    files, _ = mnist_files(10, 2, seed=12)
    with serve_dataset(server, "mnist", files):
        with pytest.raises(ValueError, match=r"n_val must be at most .* 10, got 11"):
            mnist.MNIST(n_val=11)


def test_n_val_numpy_integer_is_accepted(home, server):
    files, _ = mnist_files(10, 2, seed=13)
    with serve_dataset(server, "mnist", files), mnist.MNIST(n_val=np.int64(3)) as ds:
        assert ds.val_y.shape == (3,)


def test_n_val_folds_negative_is_rejected(home):
    from batchup.datasets import stl

    with pytest.raises(ValueError, match=r"n_val_folds must be >= 0, got -2"):
        stl.STL(n_val_folds=-2)


# ------------------------------------------------------------------ data directory


def test_unwritable_data_directory_is_named(home, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("BATCHUP_HOME", str(blocker / "sub"))
    with pytest.raises(PermissionError, match="a_file/sub/data.*BATCHUP_HOME"):
        mnist.MNIST()


# ------------------------------------------------------------------ closing


def test_close_is_idempotent_and_closes_file(home, server):
    files, _ = mnist_files(6, 2, seed=14)
    with serve_dataset(server, "mnist", files):
        ds = mnist.MNIST(n_val=0)
    h5 = ds.h5_file
    assert h5.isopen
    ds.close()
    ds.close()
    assert not h5.isopen and ds.h5_file is None


def test_garbage_collection_closes_file(home, server):
    files, _ = mnist_files(6, 2, seed=15)
    with serve_dataset(server, "mnist", files):
        ds = mnist.MNIST(n_val=0)
    h5 = ds.h5_file
    del ds
    gc.collect()
    assert not h5.isopen


def test_no_unclosed_file_warning_at_exit(home, server):
    files, _ = mnist_files(6, 2, seed=16)
    with serve_dataset(server, "mnist", files):
        mnist.MNIST(n_val=0).close()  # build the cache in this process
    script = "from batchup.datasets import mnist\nds = mnist.MNIST(n_val=0)\nprint(ds.test_y[0])\n"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-X", "dev", "-c", script], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Closing remaining open file" not in proc.stderr
    assert "ResourceWarning" not in proc.stderr

"""Dataset commands (sources, fetch, info, delete) and the source registry."""

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest
from _loopback import loopback_url, mnist_files, refusing_ports, serve_dataset, with_urls

from batchup import config
from batchup.datasets import _download, cli, registry


def run(*argv):
    parser = argparse.ArgumentParser(prog="batchup")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


# ------------------------------------------------------------------ registry


def test_registry_lists_every_dataset():
    assert registry.datasets() == ["mnist", "fashion_mnist", "svhn", "svhn_extra", "cifar10",
                                   "cifar100", "stl", "usps", "digits"]


def test_registry_mnist_tries_working_mirrors_before_original_host():
    for s in registry.sources("mnist"):
        assert s.urls[0].split("://", 1)[1].startswith("ossci-datasets.s3.amazonaws.com/mnist/")
        assert s.urls[-1].split("://", 1)[1].startswith("yann.lecun.com/")


def test_registry_checksums_match_spec():
    assert registry.get("mnist", "train-images-idx3-ubyte.gz").sha256.startswith("440fcabf")
    assert registry.get("cifar10", "cifar-10-python.tar.gz").sha256.startswith("6d958be0")
    assert registry.get("stl", "stl10_binary.tar.gz").sha256.startswith("f31fd992")
    assert all(len(s.urls) >= 1 for s in registry.sources())


def test_overridden_restores_previous_entries():
    old = registry.get("usps", "usps.h5")
    with registry.overridden(with_urls(old, ["http://127.0.0.1:9/usps.h5"])):
        assert registry.get("usps", "usps.h5").urls == ("http://127.0.0.1:9/usps.h5",)
    assert registry.get("usps", "usps.h5") is old


def test_source_file_rejects_bad_checksum():
    with pytest.raises(ValueError, match="sha256 .* 'abc'"):
        registry.SourceFile("x", "f", ("http://127.0.0.1/f",), "abc")


def test_source_file_rejects_string_urls():
    with pytest.raises(TypeError, match="urls .* 'http://127.0.0.1/f'"):
        registry.SourceFile("x", "f", "http://127.0.0.1/f", "0" * 64)


def test_sources_of_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        registry.sources("nope")


# ------------------------------------------------------------------ commands


def test_sources_prints_every_file_url_and_checksum(capsys):
    assert run("sources") == 0
    out = capsys.readouterr().out
    for s in registry.sources():
        assert s.sha256 in out
        for url in s.urls:
            assert url in out
    assert "digits: shipped with the package" in out


def test_sources_json(capsys):
    assert run("sources", "--json", "cifar10") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [dict(dataclasses.asdict(registry.get("cifar10", "cifar-10-python.tar.gz")),
                         urls=list(registry.get("cifar10", "cifar-10-python.tar.gz").urls))]


def test_fetch_unknown_name_exits_2_listing_known_names(home, capsys):
    assert run("fetch", "mnist", "imagenet") == 2
    err = capsys.readouterr().err
    assert "imagenet" in err and "cifar100" in err and "fashion_mnist" in err
    assert not os.path.exists(home)


def test_delete_unknown_name_exits_2(home, capsys):
    assert run("delete", "mnits") == 2
    assert "mnits" in capsys.readouterr().err


def test_fetch_converts_and_info_lists_it_and_delete_removes_it(home, server, capsys):
    files, _ = mnist_files(10, 3)
    with serve_dataset(server, "mnist", files):
        assert run("fetch", "mnist") == 0
    target = config.get_data_path("mnist.h5")
    assert os.path.isfile(target)
    capsys.readouterr()
    assert run("info") == 0
    out = capsys.readouterr().out
    assert config.get_data_dir() in out and "BATCHUP_HOME" in out
    mnist_line = next(line for line in out.splitlines() if line.strip().startswith("mnist "))
    assert "mnist.h5" in mnist_line and "kB" in mnist_line
    assert "not cached" in next(line for line in out.splitlines() if "cifar10 " in line)
    assert run("delete", "mnist") == 0
    assert not os.path.exists(target)


def test_fetch_download_only_keeps_sources_and_does_not_convert(home, server):
    files, _ = mnist_files(6, 2, seed=1)
    with serve_dataset(server, "fashion_mnist", files):
        assert run("fetch", "fashion-mnist", "--download-only") == 0
    folder = os.path.join(config.get_downloads_dir(), "fashion_mnist")
    assert sorted(os.listdir(folder)) == sorted(files)
    assert not os.path.exists(config.get_data_path("fashion-mnist.h5"))
    assert run("delete", "fashion_mnist") == 0
    assert not os.path.exists(folder)


def test_fetch_failure_exits_1(home, server, capsys):
    entry = with_urls(registry.get("usps", "usps.h5"), [server.url("/cli/missing.h5")])
    with registry.overridden(entry):
        assert run("fetch", "usps") == 1
    assert "fetching usps failed" in capsys.readouterr().err


def test_fetch_shipped_dataset_needs_nothing(home, capsys):
    assert run("fetch", "digits") == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_cli_module_runs_as_a_program(home):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "batchup.datasets.cli", "sources", "usps"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert registry.get("usps", "usps.h5").sha256 in proc.stdout


def _python_m_batchup(*argv):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "batchup", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def test_python_m_batchup_info_and_sources(home):
    proc = _python_m_batchup("info")
    assert proc.returncode == 0, proc.stderr
    assert os.path.join(home, "data") in proc.stdout
    proc = _python_m_batchup("sources", "mnist")
    assert proc.returncode == 0 and "storage.googleapis.com/cvdf-datasets" in proc.stdout


def test_python_m_batchup_fetch_unknown_exits_2(home):
    proc = _python_m_batchup("fetch", "nosuchset")
    assert proc.returncode == 2
    assert "nosuchset" in proc.stderr and "mnist" in proc.stderr


# ------------------------------------------------------------------ what a failed fetch prints

MAX_LINE = 120
FIRST = "train-images-idx3-ubyte.gz"
POINTER = "For the full errors, add --verbose or set BATCHUP_DEBUG=1."


@contextlib.contextmanager
def refusing_mirrors(dataset, n):
    """Point every file of ``dataset`` at ``n`` 127.0.0.1 ports that refuse connections.

    Yields the ``host:port`` of each mirror; the registry's checksums and sizes are kept.
    """
    with refusing_ports(n) as ports:
        entries = [with_urls(e, [loopback_url(p, e.filename) for p in ports])
                   for e in registry.sources(dataset)]
        with registry.overridden(*entries):
            yield [f"127.0.0.1:{p}" for p in ports]


def _install_block(dataset, entries, downloads_line):
    """The lines that say where to place each of ``entries`` by hand, as fetch prints them."""
    files = "this file" if len(entries) == 1 else f"these {len(entries)} files"
    lines = [f"To install {dataset} by hand, copy {files} to the path shown (checked by SHA-256):"]
    for e in entries:
        size = f", {e.size:,} bytes" if e.size else ""
        lines += [f"  {os.path.join(config.get_downloads_dir(), dataset, e.filename)}",
                  f"      sha256 {e.sha256}{size}"]
    return lines + [downloads_line,
                    f"`python -m batchup sources {dataset}` lists the URLs to get them from."]


NO_DOWNLOADS_DIR = "or to <dir>/{}/ or <dir>/ of a folder named by $BATCHUP_DOWNLOADS."


def test_fetch_without_network_prints_a_line_per_attempt_and_the_hint_once(short_home, no_waits,
                                                                          capsys):
    with refusing_mirrors("mnist", 3) as hosts:
        assert run("fetch", "mnist") == 1
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    folder = os.path.join(config.get_downloads_dir(), "mnist", "")
    assert out == [f"Downloading {FIRST} into {folder}"] + [
        f"  {h} failed: connection refused (attempt {i} of 3)" for h in hosts for i in (1, 2, 3)]
    assert err == [
        f"batchup: fetching mnist failed: could not download {FIRST} "
        "(9 attempts at 3 hosts failed)",
        *_install_block("mnist", registry.sources("mnist"), NO_DOWNLOADS_DIR.format("mnist")),
        POINTER,
    ]
    assert len(out) == 10 and len(err) == 13
    assert max(len(line) for line in out + err) <= MAX_LINE
    text = captured.out + captured.err
    assert text.count("To install mnist by hand") == 1
    for entry in registry.sources("mnist"):
        assert text.count(entry.sha256) == 1
    assert "HTTPConnectionPool" not in text and "attempts:" not in text


def test_fetch_of_two_failing_datasets_gives_each_hint_once(short_home, no_waits, capsys):
    with refusing_mirrors("mnist", 1), refusing_mirrors("usps", 2):
        assert run("fetch", "mnist", "usps") == 1
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert len(out) == (1 + 3) + (1 + 6)  # per dataset: a header, then a line per attempt
    assert err.count(POINTER) == 1 and err[-1] == POINTER
    assert sum(line.startswith("batchup: fetching ") for line in err) == 2
    assert sum(line.startswith("To install ") for line in err) == 2
    usps = registry.get("usps", "usps.h5")
    assert captured.err.count(usps.sha256) == 1
    assert max(len(line) for line in out + err) <= MAX_LINE


def test_fetch_verbose_adds_full_errors_and_the_traceback(short_home, no_waits, capsys):
    with refusing_mirrors("usps", 1):
        assert run("fetch", "usps", "--verbose") == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert len(out) == 1 + 2 * 3
    assert all("Connection refused" in line for line in out[2::2])
    assert "Traceback (most recent call last)" in captured.err
    assert "The above exception was the direct cause" in captured.err  # the chained cause
    assert POINTER not in captured.err
    assert not _download.debug_enabled()  # --verbose does not outlive the command


def test_offline_fetch_says_why_and_where_each_file_goes(short_home, server, monkeypatch, capsys):
    monkeypatch.setenv("BATCHUP_OFFLINE", "1")
    entries = [with_urls(e, [server.url("/offline-cli/" + e.filename)])
               for e in registry.sources("mnist")]
    before = len(server.log)
    with registry.overridden(*entries):
        assert run("fetch", "mnist") == 1
    assert len(server.log) == before
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == ""
    assert err == [
        "batchup: cannot fetch mnist: network access is off because BATCHUP_OFFLINE=1 is set "
        "(unset it to download)",
        *_install_block("mnist", entries, NO_DOWNLOADS_DIR.format("mnist")),
    ]
    assert max(len(line) for line in err) <= MAX_LINE
    assert "attempts:" not in captured.err and POINTER not in captured.err


def test_offline_fetch_lists_only_missing_files(short_home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BATCHUP_OFFLINE", "yes")
    monkeypatch.setenv("BATCHUP_DOWNLOADS", str(tmp_path / "usb"))
    entries = []
    for i, entry in enumerate(registry.sources("mnist")):
        if i % 2 == 0:  # the 1st and 3rd files are in place, with the right checksum
            data = f"placed {entry.filename}".encode()
            path = os.path.join(config.get_downloads_dir(), "mnist", entry.filename)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            entry = dataclasses.replace(entry, sha256=hashlib.sha256(data).hexdigest())
        entries.append(entry)
    with registry.overridden(*entries):
        assert run("fetch", "mnist", "--download-only") == 1
    err = capsys.readouterr().err.splitlines()
    usb = os.path.join(str(tmp_path / "usb"), "")
    downloads_line = f"or to {os.path.join(usb, 'mnist', '')} or {usb} ($BATCHUP_DOWNLOADS)."
    assert err[0].endswith("network access is off because BATCHUP_OFFLINE=yes is set "
                           "(unset it to download)")
    assert err[1:] == _install_block("mnist", entries[1::2], downloads_line)


def test_python_m_batchup_fetch_offline_names_every_file(short_home):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), BATCHUP_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "batchup", "fetch", "mnist"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    err = proc.stderr.splitlines()
    assert "network access is off because BATCHUP_OFFLINE=1 is set" in err[0]
    assert len(err) == 1 + 1 + 2 * 4 + 2
    for entry in registry.sources("mnist"):
        assert f"  {os.path.join(short_home, 'data', 'downloads', 'mnist', entry.filename)}" in err
        assert proc.stderr.count(entry.sha256) == 1
    assert max(len(line) for line in err) <= MAX_LINE

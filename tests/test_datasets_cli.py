"""Dataset commands (sources, fetch, info, delete) and the source registry."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from _loopback import mnist_files, serve_dataset, with_urls

from batchup import config
from batchup.datasets import cli, registry


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

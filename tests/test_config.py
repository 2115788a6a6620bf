"""batchup.config: directory resolution, verification and verified acquisition."""

import os
import subprocess
import sys

import pytest
from _loopback import LoopbackServer, isolate_home, sha256

from batchup import config


@pytest.fixture
def home(monkeypatch, tmp_path):
    return isolate_home(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def server():
    s = LoopbackServer()
    yield s
    s.close()


def _write_cfg(tmp_path, text):
    user = tmp_path / "user_home"
    user.mkdir(exist_ok=True)
    (user / ".batchup.cfg").write_text(text)


def test_env_var_takes_precedence_over_config_file(home, tmp_path):
    _write_cfg(tmp_path, "[paths]\ndata_dir = /from/config\n")
    assert config.get_batchup_path() == home
    assert config.get_data_dir() == os.path.join(home, "data")
    assert config.get_batchup_path_origin() == "environment variable BATCHUP_HOME"


def test_config_file_used_when_env_var_unset(home, tmp_path, monkeypatch):
    monkeypatch.delenv("BATCHUP_HOME")
    _write_cfg(tmp_path, "[paths]\ndata_dir = ~/bu_data\n")
    assert config.get_batchup_path() == str(tmp_path / "user_home" / "bu_data")


def test_default_is_dot_batchup_in_home(home, tmp_path, monkeypatch):
    monkeypatch.delenv("BATCHUP_HOME")
    assert config.get_batchup_path() == str(tmp_path / "user_home" / ".batchup")


def test_resolution_follows_env_changes_at_call_time(home, monkeypatch, tmp_path):
    monkeypatch.setenv("BATCHUP_HOME", str(tmp_path / "other"))
    assert config.get_data_dir() == str(tmp_path / "other" / "data")


def test_empty_env_var_is_ignored(home, monkeypatch, tmp_path):
    monkeypatch.setenv("BATCHUP_HOME", "")
    assert config.get_batchup_path() == str(tmp_path / "user_home" / ".batchup")


def test_config_file_that_does_not_parse_names_the_file(home, tmp_path, monkeypatch):
    monkeypatch.delenv("BATCHUP_HOME")
    _write_cfg(tmp_path, "data_dir = no section header\n")
    with pytest.raises(config.ConfigError, match=r"\.batchup\.cfg does not parse"):
        config.get_data_dir()


def test_path_that_is_a_file_is_rejected(home, monkeypatch, tmp_path):
    (tmp_path / "plain").write_text("x")
    monkeypatch.setenv("BATCHUP_HOME", str(tmp_path / "plain"))
    with pytest.raises(RuntimeError, match="is not a directory"):
        config.get_data_dir()


def test_unwritable_directory_raises_permission_error_naming_it(home, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(PermissionError, match=r"f/deeper.*BATCHUP_HOME"):
        config.ensure_dir(str(tmp_path / "f" / "deeper"))


def test_resolving_creates_nothing(home):
    config.get_data_path("mnist.h5")
    config.get_downloads_dir()
    assert not os.path.exists(home)


def test_get_data_path_keeps_absolute_paths(home):
    assert config.get_data_path("/abs/x.h5") == "/abs/x.h5"
    assert config.get_data_path("x.h5") == os.path.join(home, "data", "x.h5")


def test_importing_dataset_modules_creates_no_directory_and_no_heavy_imports(tmp_path):
    script = (
        "import sys\n"
        "import batchup, batchup.config, batchup.datasets\n"
        "heavy = {'scipy', 'tables', 'pooch', 'tqdm', 'requests'}\n"
        "assert not heavy & {m.split('.')[0] for m in sys.modules}, sys.modules.keys()\n"
        "from batchup.datasets import mnist, fashion_mnist, svhn, cifar10, cifar100, stl, usps\n"
    )
    env = dict(os.environ, HOME=str(tmp_path / "h"), BATCHUP_HOME=str(tmp_path / "bu"),
               PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == []


def test_compute_sha256(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert config.compute_sha256(str(tmp_path / "a")) == sha256(b"abc")


def test_verify_file_matches_and_mismatches(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert config.verify_file(str(tmp_path / "a"), sha256(b"abc"))
    assert not config.verify_file(str(tmp_path / "a"), sha256(b"abd"))
    assert not config.verify_file(str(tmp_path), sha256(b"abc"))  # not a regular file


def test_verify_file_without_hash_prints_digest(tmp_path, capsys):
    (tmp_path / "a").write_bytes(b"abc")
    assert config.verify_file(str(tmp_path / "a"), None)
    assert capsys.readouterr().out == f'SHA-256 of {tmp_path / "a"}:\n  "{sha256(b"abc")}"\n'


def test_download_and_verify_tries_mirrors_in_order(home, server, tmp_path):
    data = b"config payload"
    urls = [server.add("/cfg/bad", data, "html"), server.add("/cfg/good", data)]
    dest = str(tmp_path / "dl" / "file.bin")
    assert config.download_and_verify(dest, urls, sha256(data)) == dest
    with open(dest, "rb") as f:
        assert f.read() == data


def test_download_and_verify_returns_none_when_all_fail(home, server, tmp_path, capsys):
    url = server.add("/cfg/only_404", b"x", "404")
    dest = str(tmp_path / "dl2" / "file.bin")
    assert config.download_and_verify(dest, url, sha256(b"x")) is None
    assert "Did not succeed in downloading" in capsys.readouterr().out
    assert not os.path.exists(dest)


def test_existing_file_with_wrong_hash_is_refetched(home, server, tmp_path):
    data = b"fresh"
    dest = tmp_path / "existing.bin"
    dest.write_bytes(b"stale")
    url = server.add("/cfg/fresh", data)
    assert config.download_and_verify(str(dest), url, sha256(data)) == str(dest)
    assert dest.read_bytes() == data


def test_download_data_goes_into_data_dir(home, server):
    url = server.add("/cfg/dd", b"dd")
    path = config.download_data("sub/dd.bin", url, sha256(b"dd"))
    assert path == os.path.join(home, "data", "sub", "dd.bin")


def test_copy_and_verify_good_and_bad(tmp_path, capsys):
    src = tmp_path / "src.bin"
    src.write_bytes(b"copy me")
    good = tmp_path / "out" / "good.bin"
    assert config.copy_and_verify(str(good), str(src), sha256(b"copy me")) == str(good)
    bad = tmp_path / "out" / "bad.bin"
    assert config.copy_and_verify(str(bad), str(src), sha256(b"other")) is None
    assert "SHA verification of file" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == ["good.bin"]


def test_copy_and_verify_missing_source_returns_none(tmp_path):
    assert config.copy_and_verify(str(tmp_path / "o"), str(tmp_path / "missing"), None) is None


def test_copy_data_goes_into_data_dir(home, tmp_path):
    src = tmp_path / "s.bin"
    src.write_bytes(b"s")
    assert config.copy_data("s.bin", str(src), sha256(b"s")) == os.path.join(home, "data", "s.bin")

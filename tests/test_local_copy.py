"""batchup.local_copy: copying a data set folder or zip file to local disk, once."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from _waiting import wait_for

from batchup import local_copy
from batchup.local_copy import MARKER, copy_to_local


def make_source(root, n_files=6):
    """A small data set folder: files in nested folders and an empty folder."""
    root.mkdir(parents=True)
    (root / "train").mkdir()
    (root / "test" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    files = {}
    for i in range(n_files):
        rel = f"train/{i}.bin" if i % 2 else f"test/deep/{i}.bin"
        data = bytes([i]) * (100 + 37 * i)
        (root / rel).write_bytes(data)
        files[rel] = data
    (root / "labels.csv").write_text("a,b\n")
    files["labels.csv"] = b"a,b\n"
    return files


def tree(root):
    """{relative path: bytes} of every file under ``root`` but the done marker."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


@pytest.fixture
def counted(monkeypatch):
    """The files copied (or extracted) by copy_to_local in this process."""
    copies = []
    real = local_copy._copy_file

    def counting(src, dst):
        copies.append(src)
        real(src, dst)

    monkeypatch.setattr(local_copy, "_copy_file", counting)
    return copies


def test_folder_copy(tmp_path, counted):
    files = make_source(tmp_path / "shared" / "ds")
    out = copy_to_local(tmp_path / "shared" / "ds", tmp_path / "local" / "ds")
    assert out == tmp_path / "local" / "ds"
    assert tree(out) == files
    assert (out / "empty").is_dir()
    assert len(counted) == len(files)
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "folder" and marker["files"] == len(files)
    assert marker["bytes"] == sum(map(len, files.values()))
    # Modification times are kept, and nothing is left beside dest but the lock.
    src_mtime = (tmp_path / "shared" / "ds" / "labels.csv").stat().st_mtime_ns
    assert (out / "labels.csv").stat().st_mtime_ns == src_mtime
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == [".ds.batchup-lock", "ds"]


def test_zip_copy(tmp_path, counted):
    archive = tmp_path / "ds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/a.bin", b"\x01" * 500)
        zf.writestr("images/b.bin", b"\x02" * 300)
        zf.writestr("empty/", b"")
        zf.writestr("meta.json", b"{}")
    out = copy_to_local(str(archive), str(tmp_path / "local"))
    assert tree(out) == {"images/a.bin": b"\x01" * 500, "images/b.bin": b"\x02" * 300,
                         "meta.json": b"{}"}
    assert (out / "empty").is_dir()
    assert json.loads((out / MARKER).read_text())["kind"] == "zip"
    before = (out / "meta.json").stat().st_mtime_ns
    time.sleep(0.01)
    assert copy_to_local(archive, tmp_path / "local") == out
    assert (out / "meta.json").stat().st_mtime_ns == before  # not extracted again


def test_second_call_does_not_copy(tmp_path, counted):
    make_source(tmp_path / "src")
    out = copy_to_local(tmp_path / "src", tmp_path / "dst")
    n = len(counted)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert copy_to_local(tmp_path / "src", tmp_path / "dst") == out
    assert len(counted) == n
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_a_changed_source_is_copied_again(tmp_path, counted):
    files = make_source(tmp_path / "src")
    out = copy_to_local(tmp_path / "src", tmp_path / "dst")
    (tmp_path / "src" / "labels.csv").write_text("a,b\n1,2\n")
    (tmp_path / "src" / "train" / "1.bin").unlink()
    (tmp_path / "src" / "new.txt").write_text("new")
    counted.clear()
    assert copy_to_local(tmp_path / "src", tmp_path / "dst") == out
    files["labels.csv"] = b"a,b\n1,2\n"
    files["new.txt"] = b"new"
    del files["train/1.bin"]
    assert tree(out) == files  # the deleted file is gone from the copy too
    assert len(counted) == len(files)
    leftovers = [p.name for p in tmp_path.iterdir() if "batchup-old" in p.name
                 or "batchup-partial" in p.name]
    assert leftovers == []


def test_a_copy_of_a_copy(tmp_path):
    files = make_source(tmp_path / "src")
    first = copy_to_local(tmp_path / "src", tmp_path / "a")
    second = copy_to_local(first, tmp_path / "b")
    assert tree(second) == files
    assert json.loads((second / MARKER).read_text())["source"] == str(first)


SLOW_COPY = textwrap.dedent('''
    import sys, time
    from batchup import local_copy

    source, dest, log, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    real = local_copy._copy_file

    def slow(src, dst):
        real(src, dst)
        with open(log, "a") as f:
            f.write(src + "\\n")
        time.sleep(delay)

    local_copy._copy_file = slow
    if len(sys.argv) > 5:  # wait for the go file, so that two processes start together
        import os
        open(sys.argv[5] + ".ready" + str(os.getpid()), "w").close()
        while not os.path.exists(sys.argv[5]):
            time.sleep(0.005)
    print(local_copy.copy_to_local(source, dest))
''')


def run_copy(*args):
    return subprocess.Popen([sys.executable, "-c", SLOW_COPY, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)




def test_killed_mid_copy_resumes(tmp_path, counted):
    files = make_source(tmp_path / "src", n_files=10)
    log = tmp_path / "log"
    proc = run_copy(tmp_path / "src", tmp_path / "dst", log, 0.1)
    try:
        wait_for(lambda: log.exists() and len(log.read_text().split()) >= 3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "dst").exists()  # no half-copied folder at dest
    copied_before = len(log.read_text().split())
    assert (tmp_path / ".dst.batchup-partial").is_dir()
    out = copy_to_local(tmp_path / "src", tmp_path / "dst")
    assert tree(out) == files
    assert 0 < len(counted) == len(files) - copied_before  # only the missing files
    assert not (tmp_path / ".dst.batchup-partial").exists()


def test_a_partial_copy_of_another_source_is_discarded(tmp_path, counted):
    make_source(tmp_path / "src")
    partial = tmp_path / ".dst.batchup-partial"
    partial.mkdir()
    (partial / "stale.bin").write_bytes(b"x")
    (partial / ".batchup-copy-partial.json").write_text('{"fingerprint": "other"}')
    out = copy_to_local(tmp_path / "src", tmp_path / "dst")
    assert not (out / "stale.bin").exists()


def test_two_processes_at_once_copy_once(tmp_path):
    files = make_source(tmp_path / "src", n_files=8)
    log, go = tmp_path / "log", tmp_path / "go"
    procs = [run_copy(tmp_path / "src", tmp_path / "dst", log, 0.03, go) for _ in range(2)]
    wait_for(lambda: len(list(tmp_path.glob("go.ready*"))) == 2)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [out.strip() for out, _ in outs] == [str(tmp_path / "dst")] * 2
    copied = log.read_text().split()
    assert len(copied) == len(files) == len(set(copied))  # every file copied once, in all
    assert tree(tmp_path / "dst") == files


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"source '.*nowhere' does not exist"):
        copy_to_local(tmp_path / "nowhere", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_source_neither_folder_nor_zip(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"source '.*data\.csv' is neither a folder nor a zip"):
        copy_to_local(tmp_path / "data.csv", tmp_path / "dst")


def test_dest_with_other_content_is_refused(tmp_path):
    make_source(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a copy made by copy_to_local"):
        copy_to_local(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst" / "mine.txt").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["mine.txt"]


def test_dest_that_is_a_file_is_refused(tmp_path):
    make_source(tmp_path / "src")
    (tmp_path / "dst").write_text("a file")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        copy_to_local(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst").read_text() == "a file"


def test_an_empty_dest_folder_is_used(tmp_path):
    files = make_source(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    assert tree(copy_to_local(tmp_path / "src", tmp_path / "dst")) == files


def test_dest_inside_source_is_refused(tmp_path):
    make_source(tmp_path / "src")
    with pytest.raises(ValueError, match="lies inside source"):
        copy_to_local(tmp_path / "src", tmp_path / "src" / "copy")
    with pytest.raises(ValueError, match="lies inside source"):
        copy_to_local(tmp_path / "src", tmp_path / "src")


def test_unsafe_zip_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(ValueError, match="would be extracted outside dest"):
        copy_to_local(archive, tmp_path / "out" / "dst")
    assert not (tmp_path / "out" / "outside.txt").exists()
    assert not (tmp_path / "out" / "dst").exists()
    assert not (tmp_path / "out" / ".dst.batchup-partial").exists()  # refused before extracting


def test_bad_argument_types(tmp_path):
    with pytest.raises(TypeError, match="source must be a str or os.PathLike, not 3"):
        copy_to_local(3, tmp_path)
    with pytest.raises(TypeError, match="progress must be True or False, not 'yes'"):
        copy_to_local(tmp_path, tmp_path / "x", progress="yes")


def test_progress_bar(tmp_path, capsys):
    files = make_source(tmp_path / "src")
    copy_to_local(tmp_path / "src", tmp_path / "dst", progress=True)
    err = capsys.readouterr().err
    assert "copying src" in err
    assert tree(tmp_path / "dst") == files


def test_returns_a_path(tmp_path):
    make_source(tmp_path / "src")
    out = copy_to_local(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert isinstance(out, Path) and out.is_absolute()

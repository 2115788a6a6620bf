"""Test helpers: a real HTTP server on 127.0.0.1 and small synthetic dataset files.

The files are written in each dataset's real format (IDX gzip, CIFAR pickle
tarballs, SVHN MATLAB v5, the STL-10 binary tarball, the USPS HDF5 file), so
the whole download → verify → convert → load path runs without the internet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import tempfile
import threading

import numpy as np

from batchup.datasets import registry

# ------------------------------------------------------------------ server


class LoopbackServer:
    """Serve ``files`` (URL path -> bytes) with optional misbehaviour per path.

    Modes set in ``modes[path]``:

    * ``"404"`` — always not found;
    * ``"html"`` — an HTML error page with status 200;
    * ``"cut-once"`` — the first GET sends the full Content-Length but only
      half of the body, then closes; later GETs behave normally (Range works);
    * ``"short"`` — the file is served truncated, with a matching length.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        self._cut_done: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                rng = self.headers.get("Range")
                server.log.append((path, rng))
                mode = server.modes.get(path)
                body = server.files.get(path)
                if body is None or mode == "404":
                    self.send_error(404)
                    return
                if mode == "html":
                    self._send(200, b"<html><body>Domain expired</body></html>")
                    return
                if mode == "short":
                    body = body[: len(body) // 2]
                if mode == "cut-once" and path not in server._cut_done:
                    server._cut_done.add(path)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes="):-1])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self._send(206, body[start:], f"bytes {start}-{len(body) - 1}/{len(body)}")
                    return
                self._send(200, body)

            def _send(self, status, body, content_range=None):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if content_range:
                    self.send_header("Content-Range", content_range)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path: str, data: bytes, mode: str | None = None) -> str:
        self.files[path] = data
        if mode:
            self.modes[path] = mode
        return self.url(path)

    def gets(self, path: str) -> int:
        return sum(1 for p, _ in self.log if p == path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def refusing_ports(n: int):
    """``n`` ports on 127.0.0.1 that refuse connections (bound, never listening, held by us)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_url(port: int, path: str, scheme: str = "http") -> str:
    """``scheme://127.0.0.1:port/path``: every URL a test asks for is on this machine."""
    return f"{scheme}://127.0.0.1:{port}/{path.lstrip('/')}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def serve_dataset(server: LoopbackServer, dataset: str, files: dict[str, bytes]):
    """Serve ``files`` and point the registry entries of ``dataset`` at them."""
    entries = []
    for name, data in files.items():
        url = server.add(f"/{dataset}/{name}", data)
        entries.append(registry.SourceFile(dataset, name, (url,), sha256(data), len(data)))
    with registry.overridden(*entries):
        yield entries


def with_urls(entry: registry.SourceFile, urls) -> registry.SourceFile:
    return dataclasses.replace(entry, urls=tuple(urls))


# ------------------------------------------------------------------ formats


def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    raw = struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()
    return gzip.compress(raw, mtime=0)


def idx_labels(labels: np.ndarray) -> bytes:
    raw = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    return gzip.compress(raw, mtime=0)


def mnist_files(n_train: int, n_test: int, seed: int = 0) -> tuple[dict[str, bytes], dict]:
    rng = np.random.RandomState(seed)
    arrays = {
        "train_X": rng.randint(0, 256, size=(n_train, 28, 28)).astype(np.uint8),
        "train_y": rng.randint(0, 10, size=n_train),
        "test_X": rng.randint(0, 256, size=(n_test, 28, 28)).astype(np.uint8),
        "test_y": rng.randint(0, 10, size=n_test),
    }
    files = {
        "train-images-idx3-ubyte.gz": idx_images(arrays["train_X"]),
        "train-labels-idx1-ubyte.gz": idx_labels(arrays["train_y"]),
        "t10k-images-idx3-ubyte.gz": idx_images(arrays["test_X"]),
        "t10k-labels-idx1-ubyte.gz": idx_labels(arrays["test_y"]),
    }
    return files, arrays


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar10_tarball(n_per_batch: int, n_test: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    members, xs, ys = {}, [], []
    for i in range(1, 6):
        x = rng.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        y = rng.randint(0, 10, size=n_per_batch).tolist()
        members[f"cifar-10-batches-py/data_batch_{i}"] = pickle.dumps(
            {"data": x, "labels": y, "batch_label": f"batch {i}"}, protocol=2)
        xs.append(x)
        ys += y
    tx = rng.randint(0, 256, size=(n_test, 3072)).astype(np.uint8)
    ty = rng.randint(0, 10, size=n_test).tolist()
    members["cifar-10-batches-py/test_batch"] = pickle.dumps({"data": tx, "labels": ty})
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": ["a"] * 10})
    arrays = {"train_X": np.concatenate(xs).reshape(-1, 3, 32, 32), "train_y": np.array(ys),
              "test_X": tx.reshape(-1, 3, 32, 32), "test_y": np.array(ty)}
    return {"cifar-10-python.tar.gz": _tar_gz(members)}, arrays


def cifar100_tarball(n_train: int, n_test: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    members, arrays = {}, {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        fine = rng.randint(0, 100, size=n)
        coarse = rng.randint(0, 20, size=n)
        # Keys as bytes, as the real Python-2 pickles give with encoding="bytes".
        members[f"cifar-100-python/{part}"] = pickle.dumps(
            {b"data": x, b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()})
        arrays[f"{part}_X"] = x.reshape(-1, 3, 32, 32)
        arrays[f"{part}_y"] = fine
        arrays[f"{part}_y_coarse"] = coarse
    arrays["fine_names"] = [f"fine{i}" for i in range(100)]
    arrays["coarse_names"] = [f"coarse{i}" for i in range(20)]
    members["cifar-100-python/meta"] = pickle.dumps(
        {"fine_label_names": arrays["fine_names"], "coarse_label_names": arrays["coarse_names"]})
    return {"cifar-100-python.tar.gz": _tar_gz(members)}, arrays


def svhn_mat(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, size=(32, 32, 3, n)).astype(np.uint8)
    y = rng.randint(1, 11, size=(n, 1)).astype(np.uint8)
    y[0, 0] = 10  # always exercise the 10 -> 0 remap
    buf = io.BytesIO()
    savemat(buf, {"X": X, "y": y})
    return buf.getvalue(), X, y


def stl_tarball(n_train: int, n_test: int, n_unl: int, folds: list[list[int]], seed: int = 0):
    rng = np.random.RandomState(seed)
    # Images as (N, 3, rows, cols); the file stores each channel column-major.
    arrays = {
        "train_X": rng.randint(0, 256, size=(n_train, 3, 96, 96)).astype(np.uint8),
        "test_X": rng.randint(0, 256, size=(n_test, 3, 96, 96)).astype(np.uint8),
        "unl_X": rng.randint(0, 256, size=(n_unl, 3, 96, 96)).astype(np.uint8),
        "train_y": rng.randint(0, 10, size=n_train),
        "test_y": rng.randint(0, 10, size=n_test),
    }
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]

    def raw(x):
        return np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes()

    members = {
        "stl10_binary/class_names.txt": ("\n".join(names) + "\n").encode(),
        "stl10_binary/fold_indices.txt": "".join(
            " ".join(str(i) for i in f) + " \n" for f in folds).encode(),
        "stl10_binary/train_X.bin": raw(arrays["train_X"]),
        "stl10_binary/train_y.bin": (arrays["train_y"] + 1).astype(np.uint8).tobytes(),
        "stl10_binary/test_X.bin": raw(arrays["test_X"]),
        "stl10_binary/test_y.bin": (arrays["test_y"] + 1).astype(np.uint8).tobytes(),
        "stl10_binary/unlabeled_X.bin": raw(arrays["unl_X"]),
    }
    return {"stl10_binary.tar.gz": _tar_gz(members)}, arrays, names


def usps_h5(n_train: int, n_test: int, seed: int = 0):
    import tables

    rng = np.random.RandomState(seed)
    arrays = {
        "train_X": rng.rand(n_train, 1, 16, 16).astype(np.float32),
        "train_y": rng.randint(0, 10, size=n_train).astype(np.int32),
        "test_X": rng.rand(n_test, 1, 16, 16).astype(np.float32),
        "test_y": rng.randint(0, 10, size=n_test).astype(np.int32),
    }
    fd, path = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    try:
        with tables.open_file(path, "w") as f:
            g = f.create_group(f.root, "usps", "USPS data")
            filters = tables.Filters(complevel=9, complib="blosc", shuffle=True)
            for name, arr in arrays.items():
                node = f.create_earray(g, name, tables.Atom.from_dtype(arr.dtype),
                                       shape=(0,) + arr.shape[1:], filters=filters)
                node.append(arr)
        with open(path, "rb") as f:
            data = f.read()
    finally:
        os.remove(path)
    return {"usps.h5": data}, arrays


# ------------------------------------------------------------------ fixtures' bodies


def isolate_home(monkeypatch, tmp_path) -> str:
    """Point batchup at an empty tmp home; clear the offline variables."""
    home = str(tmp_path / "bu_home")
    monkeypatch.setenv("BATCHUP_HOME", home)
    monkeypatch.setenv("HOME", str(tmp_path / "user_home"))
    monkeypatch.setenv("BATCHUP_PROGRESS", "0")
    monkeypatch.delenv("BATCHUP_DOWNLOADS", raising=False)
    monkeypatch.delenv("BATCHUP_OFFLINE", raising=False)
    return home

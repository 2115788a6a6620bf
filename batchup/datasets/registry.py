"""The public registry of every dataset's source files.

Each entry names a dataset, a file, the URLs to try in order, the file's
SHA-256 and (where published) its size. The loaders look entries up at call
time, so :func:`overridden` can point a dataset at other URLs (a local mirror,
or a test server) without touching the loaders.

Print it with ``python -m batchup sources``.

Examples
--------
>>> [s.filename for s in sources("cifar10")]
['cifar-10-python.tar.gz']
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One file a dataset is built from.

    Parameters
    ----------
    dataset : str
        Dataset name as used on the command line (e.g. ``"mnist"``).
    filename : str
        File name in the download folder.
    urls : tuple of str
        URLs tried in order; the first that yields the right SHA-256 wins.
    sha256 : str
        Lowercase hex SHA-256 of the file.
    size : int or None
        Size in bytes, if published (informative only: the hash decides).

    Examples
    --------
    >>> s = SourceFile("toy", "a.bin", ("http://127.0.0.1/a.bin",), "0" * 64)
    >>> s.urls
    ('http://127.0.0.1/a.bin',)
    """

    dataset: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None = None

    def __post_init__(self):
        if isinstance(self.urls, str):
            raise TypeError(f"urls must be a tuple of URLs, not the string {self.urls!r}")
        object.__setattr__(self, "urls", tuple(self.urls))
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise ValueError(
                f"sha256 must be 64 lowercase hex digits, got {self.sha256!r} "
                f"for {self.dataset}/{self.filename}"
            )
        if not self.filename or "/" in self.filename or self.filename in (".", ".."):
            raise ValueError(f"filename must be a plain file name, got {self.filename!r}")


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_SVHN_BASE = "http://ufldl.stanford.edu/housenumbers/"


def _mirrored(dataset: str, filename: str, bases, sha256: str, size=None) -> SourceFile:
    return SourceFile(dataset, filename, tuple(b + filename for b in bases), sha256, size)


_BUILTIN: tuple[SourceFile, ...] = (
    _mirrored("mnist", "train-images-idx3-ubyte.gz", _MNIST_MIRRORS,
              "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    _mirrored("mnist", "train-labels-idx1-ubyte.gz", _MNIST_MIRRORS,
              "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    _mirrored("mnist", "t10k-images-idx3-ubyte.gz", _MNIST_MIRRORS,
              "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    _mirrored("mnist", "t10k-labels-idx1-ubyte.gz", _MNIST_MIRRORS,
              "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    _mirrored("fashion_mnist", "train-images-idx3-ubyte.gz", _FASHION_MIRRORS,
              "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    _mirrored("fashion_mnist", "train-labels-idx1-ubyte.gz", _FASHION_MIRRORS,
              "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    _mirrored("fashion_mnist", "t10k-images-idx3-ubyte.gz", _FASHION_MIRRORS,
              "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    _mirrored("fashion_mnist", "t10k-labels-idx1-ubyte.gz", _FASHION_MIRRORS,
              "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    _mirrored("svhn", "train_32x32.mat", (_SVHN_BASE,),
              "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", 182040794),
    _mirrored("svhn", "test_32x32.mat", (_SVHN_BASE,),
              "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", 64275384),
    _mirrored("svhn_extra", "extra_32x32.mat", (_SVHN_BASE,),
              "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3", 1329278602),
    SourceFile("cifar10", "cifar-10-python.tar.gz",
               ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
               "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    SourceFile("cifar100", "cifar-100-python.tar.gz",
               ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
               "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
    SourceFile("stl", "stl10_binary.tar.gz",
               ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",),
               "f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866", 2640397119),
    SourceFile("usps", "usps.h5",
               ("https://github.com/Britefury/usps_dataset/raw/master/usps.h5",
                "https://raw.githubusercontent.com/Britefury/usps_dataset/master/usps.h5"),
               "ba768d9a9b11e79b31c1e40130647c4fc04e6afc1fb41a0d4b9f1176065482b4"),
)

#: Datasets that need no download, with a note for listings.
SHIPPED = {"digits": "shipped with the package (batchup/datasets/data/digits.csv.gz)"}

_entries: dict[tuple[str, str], SourceFile] = {(s.dataset, s.filename): s for s in _BUILTIN}


def datasets() -> list[str]:
    """Return the names of all datasets, downloadable then shipped, in order.

    Examples
    --------
    >>> datasets()[:2]
    ['mnist', 'fashion_mnist']
    """
    names: list[str] = []
    for dataset, _ in _entries:
        if dataset not in names:
            names.append(dataset)
    return names + [name for name in SHIPPED if name not in names]


def sources(dataset: str | None = None) -> list[SourceFile]:
    """Return the source files of ``dataset`` (all datasets if ``None``).

    Raises
    ------
    ValueError
        If ``dataset`` is not a known name.

    Examples
    --------
    >>> len(sources("mnist"))
    4
    """
    if dataset is None:
        return list(_entries.values())
    if dataset not in datasets():
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(datasets())}")
    return [s for (name, _), s in _entries.items() if name == dataset]


def get(dataset: str, filename: str) -> SourceFile:
    """Return one registry entry.

    Examples
    --------
    >>> get("usps", "usps.h5").sha256[:8]
    'ba768d9a'
    """
    try:
        return _entries[(dataset, filename)]
    except KeyError:
        raise KeyError(f"no source file {filename!r} registered for dataset {dataset!r}") from None


def register(source: SourceFile) -> SourceFile | None:
    """Add or replace an entry; return the entry it replaced, if any.

    Use it to add a local mirror for a cluster, e.g. by registering a copy
    of an entry with your mirror's URL first.

    Examples
    --------
    >>> old = get("usps", "usps.h5")
    >>> mine = dataclasses.replace(old, urls=("http://mirror.local/usps.h5",) + old.urls)
    >>> register(mine) is old
    True
    >>> _ = register(old)
    """
    if not isinstance(source, SourceFile):
        raise TypeError(f"source must be a SourceFile, not {type(source).__name__}")
    key = (source.dataset, source.filename)
    previous = _entries.get(key)
    _entries[key] = source
    return previous


def unregister(dataset: str, filename: str) -> None:
    """Remove one entry (a no-op if absent).

    Examples
    --------
    >>> unregister("nosuch", "file")
    """
    _entries.pop((dataset, filename), None)


@contextlib.contextmanager
def overridden(*replacements: SourceFile) -> Iterator[None]:
    """Temporarily register ``replacements``; the old registry comes back after.

    Examples
    --------
    >>> old = get("cifar10", "cifar-10-python.tar.gz")
    >>> local = dataclasses.replace(old, urls=("http://127.0.0.1:8000/c.tgz",))
    >>> with overridden(local):
    ...     get("cifar10", "cifar-10-python.tar.gz").urls
    ('http://127.0.0.1:8000/c.tgz',)
    """
    saved = dict(_entries)
    try:
        for source in replacements:
            register(source)
        yield
    finally:
        _entries.clear()
        _entries.update(saved)

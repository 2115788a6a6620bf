"""The documentation site builds without warnings, its links resolve, the API is all there.

The site is built once per test module with Sphinx (``docs/conf.py``), warnings
as errors, into a temporary directory. The build needs the ``docs`` extra
(``pip install '.[docs]'``); without Sphinx the tests that need a build are
skipped, and the check of the Markdown pages' links still runs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Modules at batchup 0.2.3's import paths, then the modules that are new.
OLD_MODULES = [
    "batchup.data_source",
    "batchup.sampling",
    "batchup.work_pool",
    "batchup.config",
    "batchup.datasets",
    "batchup.image",
    "batchup.image.utils",
]
NEW_MODULES = ["batchup.randomness", "batchup.distributed", "batchup.testing"]
# Documented when they exist (they are being written).
OPTIONAL_MODULES = ["batchup.cache", "batchup.local_copy"]

# The pages of the home page's table of contents; caching only if it exists.
PAGES = [
    "installation",
    "guide",
    "resume",
    "storage",
    "caching",
    "work_pool",
    "datasets",
    "compatibility",
    "api/index",
]


def _datasets_modules() -> list[str]:
    import batchup.datasets

    return [
        f"batchup.datasets.{info.name}"
        for info in pkgutil.iter_modules(batchup.datasets.__path__)
        if not info.name.startswith("_")
    ]


def _documented_modules(*, new: bool) -> list[str]:
    modules = OLD_MODULES + _datasets_modules()
    if new:
        modules += NEW_MODULES
        modules += [m for m in OPTIONAL_MODULES if importlib.util.find_spec(m) is not None]
    return modules


def public_names(modname: str) -> list[str]:
    """The public names of a module.

    Parameters
    ----------
    modname : str
        Dotted name of the module.

    Returns
    -------
    list of str
        With ``__all__``: its names that do not start with an underscore.
        Without: the classes and functions defined in the module and the
        constants assigned at its top level, less those starting with an
        underscore (imported names and modules are not its own).
    """
    module = importlib.import_module(modname)
    if getattr(module, "__all__", None) is not None:
        return [name for name in module.__all__ if not name.startswith("_")]
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if (inspect.isclass(value) or inspect.isroutine(value)) and getattr(
            value, "__module__", None
        ) == modname:
            names.append(name)
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and not target.id.startswith("_")
                and target.id not in names
                and not inspect.ismodule(getattr(module, target.id, None))
            ):
                names.append(target.id)
    return names


# -- Build ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site into a temporary directory; the HTML directory."""
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("Sphinx is not installed: pip install '.[docs]' to build the docs site")
    missing = [m for m in ("myst_parser", "furo") if importlib.util.find_spec(m) is None]
    assert not missing, (
        f"the docs extra is half installed, missing {missing}: pip install '.[docs]'"
    )
    out = tmp_path_factory.mktemp("docs_site")
    html = out / "html"
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(out / "doctrees"),
        str(DOCS),
        str(html),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"docs build failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return html


def test_site_builds_without_warnings(site):
    assert (site / "index.html").is_file()
    assert (site / "objects.inv").is_file()


def test_home_page_lists_every_page(site):
    links = {urlsplit(href).path for href in _HTMLPage.parse(site / "index.html").links}
    for page in PAGES:
        source = next(DOCS.glob(f"{page}.*"), None)
        if page == "caching" and source is None:
            assert "caching.html" not in links
            continue
        assert f"{page}.html" in links, f"{page} is not in the home page's table of contents"


# -- Links ------------------------------------------------------------------------


class _HTMLPage(HTMLParser):
    """The links and the anchors of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "preconnect"):
                self.links.append(attrs[key])

    @classmethod
    def parse(cls, path: Path) -> _HTMLPage:
        page = cls()
        page.feed(path.read_text(encoding="utf-8"))
        return page


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme or parts.netloc)


def test_internal_links_of_the_site_resolve(site):
    pages = {path: _HTMLPage.parse(path) for path in sorted(site.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        for url in page.links:
            if _is_external(url):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {url} (no such file)")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                anchors = pages[target].anchors if target in pages else set()
                if fragment not in anchors:
                    broken.append(f"{path.relative_to(site)}: {url} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


_FENCE = re.compile(r"^(```+|~~~+).*?^\1\s*$", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # link text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _markdown_anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for match in _HEADING.finditer(text):
        slug = _slug(match.group(1))
        n = 1
        unique = slug
        while unique in anchors:  # repeated headings get -1, -2, ...
            unique = f"{slug}-{n}"
            n += 1
        anchors.add(unique)
    return anchors


def _markdown_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_of_the_markdown_pages_resolve(page):
    text = _INLINE_CODE.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for match in _MD_LINK.finditer(text):
        url = match.group(1)
        if _is_external(url):
            continue
        parts = urlsplit(url)
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.exists():
            broken.append(f"{url} (no such file)")
        elif parts.fragment and target.suffix == ".md":
            if unquote(parts.fragment) not in _markdown_anchors(target):
                broken.append(f"{url} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


# -- API reference ------------------------------------------------------------------


def read_inventory(path: Path) -> dict[str, tuple[str, str]]:
    """Read a Sphinx ``objects.inv`` (format version 2).

    Parameters
    ----------
    path : Path
        The inventory file.

    Returns
    -------
    dict
        Maps each object's name to its ``(domain:role, uri)``.
    """
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four plain-text header lines, then zlib
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2"), data[:40]
    entries = {}
    line_re = re.compile(r"(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S*)\s+(.*)")
    for line in zlib.decompress(data[header_end:]).decode("utf-8").splitlines():
        match = line_re.fullmatch(line)
        if match:
            name, role, _, uri, _ = match.groups()
            entries[name] = (role, uri)
    return entries


@pytest.fixture(scope="module")
def inventory(site):
    return read_inventory(site / "objects.inv")


def test_every_module_has_a_page(inventory):
    for modname in _documented_modules(new=True):
        role, uri = inventory.get(modname, (None, None))
        assert role == "py:module", f"{modname} is not in the API reference"


@pytest.mark.parametrize("modname", _documented_modules(new=False))
def test_every_public_name_of_the_023_modules_is_documented(inventory, modname):
    names = public_names(modname)
    missing = [name for name in names if f"{modname}.{name}" not in inventory]
    assert not missing, f"{modname}: not in the API reference: {missing}"


@pytest.mark.parametrize(
    "modname", [m for m in _documented_modules(new=True) if m not in _documented_modules(new=False)]
)
def test_every_public_name_of_the_new_modules_is_documented(inventory, modname):
    names = public_names(modname)
    missing = [name for name in names if f"{modname}.{name}" not in inventory]
    assert not missing, f"{modname}: not in the API reference: {missing}"


def test_public_names_are_found():
    """The helper finds what it should, so the checks above check something."""
    assert "ArrayDataSource" in public_names("batchup.data_source")
    assert "_trim_batch" not in public_names("batchup.data_source")
    mnist = public_names("batchup.datasets.mnist")
    assert {"MNIST", "fetch_mnist", "GROUP", "NODES"} <= set(mnist)
    assert not {"np", "annotations", "new_h5", "progress_bar"} & set(mnist)

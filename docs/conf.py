"""Sphinx configuration for batchup's documentation site.

Build (offline, warnings are errors) from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST-Parser); the API reference under ``api/`` is
generated from the NumPy-style docstrings by autodoc and napoleon. Pages and
modules that other work may not have added yet (``caching.md``,
``batchup.cache``, ``batchup.local_copy``) are built when they exist and left
out of the site, toctrees included, when they do not.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
# Document the checkout's batchup, installed or not.
sys.path.insert(0, ROOT)

import batchup  # noqa: E402

# -- Project ------------------------------------------------------------------

project = "batchup"
author = "batchup developers"
copyright = "batchup developers"
release = batchup.__version__
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
# No sphinx.ext.viewcode: its "[source]" links for a class re-exported by two
# public modules point at the first module's anchor on the second one's page
# (a broken link), and the code they show lives in the private packages.

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# docs/README.md tells contributors how to build the site; it is not a page.
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# Optional documents: built only when what they describe exists at build time.
# Maps a docname to the path (relative to the repository root) of a file that
# must exist, or to a module that must be importable.
OPTIONAL_DOCS = {
    "caching": ("file", "docs/caching.md"),
    "api/batchup.cache": ("module", "batchup.cache"),
    "api/batchup.local_copy": ("module", "batchup.local_copy"),
}


def _present(kind: str, what: str) -> bool:
    if kind == "file":
        return os.path.exists(os.path.join(ROOT, what))
    try:
        return importlib.util.find_spec(what) is not None
    except ImportError:
        return False


MISSING_DOCS = {doc for doc, (kind, what) in OPTIONAL_DOCS.items() if not _present(kind, what)}
exclude_patterns += [doc + ext for doc in sorted(MISSING_DOCS) for ext in (".md", ".rst")]

# MyST: GitHub-style anchors for headings, so that the Markdown pages' links
# such as ``guide.md#seeds-generators-and-epochs`` resolve on the site as on
# GitHub.
myst_heading_anchors = 4
# No MyST syntax extensions: the pages are GitHub-flavoured Markdown and should
# read the same on GitHub and on the site.


# -- autodoc / napoleon -------------------------------------------------------

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "mixed"
autoclass_content = "class"
autodoc_preserve_defaults = True

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_ivar = True
# Turn the words of a "Parameters" type into :class: references here, so
# that a type such as ``ShardSpec or (rank, world_size)`` links ShardSpec and
# leaves ``rank`` alone instead of matching every attribute named rank.
napoleon_preprocess_types = True

# Without intersphinx (the build is offline) references to NumPy and the
# standard library stay plain text rather than failing: the build is not
# nitpicky.
nitpicky = False

# -- HTML ---------------------------------------------------------------------

html_theme = "furo"
html_title = f"batchup {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
# "read_idx_images(path)" under its module heading, not the full dotted name.
add_module_names = False


# -- Optional documents -------------------------------------------------------

_TOCTREE = re.compile(r"^(```+)\{toctree\}.*?^\1\s*$", re.S | re.M)


def _drop_missing_entries(app, docname, source):
    """Remove toctree entries naming an optional document that is absent."""
    if not MISSING_DOCS:
        return
    base = docname.rsplit("/", 1)[0] + "/" if "/" in docname else ""

    def strip(match):
        lines = []
        for line in match.group(0).splitlines(keepends=True):
            entry = line.strip()
            target = re.sub(r"^.*<(.+)>$", r"\1", entry)
            target = target[:-3] if target.endswith(".md") else target
            if target and (target in MISSING_DOCS or base + target in MISSING_DOCS):
                continue
            lines.append(line)
        return "".join(lines)

    source[0] = _TOCTREE.sub(strip, source[0])


# -- Module constants -----------------------------------------------------------

# ``automodule`` with ``:members:`` leaves out a module's undocumented constants
# (``GROUP = "mnist"``: the str's ``__module__`` is "builtins", so autodoc takes
# it for an imported object) when the module has no ``__all__``. They are public
# names all the same, so each API page gets an ``autodata`` entry for every
# such constant assigned at the top level of its module.

_AUTOMODULE = re.compile(r"^\.\. automodule:: (\S+)\n(?:[ \t]+:.*\n)*", re.M)


def _undocumented_constants(modname: str) -> list[str]:
    """Public top-level constants of a module without ``__all__`` that autodoc skips."""
    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(modname)
    if getattr(module, "__all__", None) is not None:
        return []
    attr_docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if not isinstance(target, ast.Name) or target.id.startswith("_"):
                continue
            value = getattr(module, target.id, None)
            defined_here = getattr(value, "__module__", None) == modname and (
                inspect.isclass(value) or inspect.isroutine(value)
            )
            if ("", target.id) in attr_docs or defined_here or inspect.ismodule(value):
                continue  # documented by automodule already, or not a constant
            if target.id not in names:
                names.append(target.id)
    return names


def _add_constants(app, docname, source):
    """Follow each ``automodule`` of an API page with its module's constants."""
    if not docname.startswith("api/"):
        return

    def extend(match):
        names = _undocumented_constants(match.group(1))
        if not names:
            return match.group(0)
        lines = [match.group(0), "\n.. rubric:: Constants\n\n"]
        lines += [f".. autodata:: {match.group(1)}.{name}\n" for name in names]
        return "".join(lines)

    source[0] = _AUTOMODULE.sub(extend, source[0])


# -- Re-exported objects -------------------------------------------------------

# The public modules re-export classes defined in the private packages
# (``batchup._core``, ``batchup._pool``), and some in two public modules:
# ``ShardSpec`` in ``batchup.data_source`` and ``batchup.distributed``,
# for instance. Each is documented under every public name, and autodoc marks
# every one of those entries with the same ``:canonical:`` private name, which
# Sphinx would report as a duplicate description. The first entry keeps the
# canonical name; the later ones only add their public name.


def _python_domain():
    from sphinx.domains.python import PythonDomain

    class BatchupPythonDomain(PythonDomain):
        def note_object(self, name, objtype, node_id, aliased=False, location=None):
            other = self.objects.get(name)
            if aliased and other is not None and other.aliased:
                return  # a canonical name noted already, from another re-export
            super().note_object(name, objtype, node_id, aliased=aliased, location=location)

    return BatchupPythonDomain


def setup(app):
    app.connect("source-read", _drop_missing_entries)
    app.connect("source-read", _add_constants)
    app.add_domain(_python_domain(), override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx configuration of the geo_neuralop documentation site (``make docs``).

Offline: no intersphinx, no remote theme assets, MathJax copied into the site. numpydoc
renders the docstrings,
myst-parser the Markdown pages, sphinx-gallery runs ``examples/*.py`` (pass
``-D plot_gallery=0`` for a quick build that does not run them).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
# examples/visualization.py writes its pictures here instead of examples/pictures/
os.environ.setdefault("GEO_NEURALOP_PICTURES", str(ROOT / "docs" / "_build" / "example_pictures"))

from geo_neuralop._version import __version__  # noqa: E402

project = "geo_neuralop"
author = "geo_neuralop developers"
copyright = "geo_neuralop developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the built site, not from a CDN
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "sg_execution_times.rst"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(cylinder|shallow_water|visualization|xarray_import)\.py$",
    "ignore_pattern": r"geometry_tour\.py$|/configs/|/pictures/",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
}

html_theme = "alabaster"
html_title = f"geo_neuralop {version}"
html_static_path: list[str] = []
html_theme_options = {"description": "Neural operators on meshes and spheres",
                      "fixed_sidebar": True, "page_width": "1100px"}
html_copy_source = False
html_show_sourcelink = False
suppress_warnings = ["config.cache"]
nitpicky = False


# --- the API pages: one per subpackage, one section per module, written at each build ----
def _write_api_pages() -> None:
    import pkgutil

    import geo_neuralop

    out = Path(__file__).resolve().parent / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    wanted = set()
    top = ["geo_neuralop", "geo_neuralop.cli"]
    groups: dict[str, list[str]] = {}
    for info in pkgutil.walk_packages(geo_neuralop.__path__, "geo_neuralop."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]):
            continue
        if len(parts) == 2 and not info.ispkg:
            continue
        groups.setdefault(".".join(parts[:2]), [])
        if not info.ispkg:
            groups[".".join(parts[:2])].append(info.name)
    pages = {"geo_neuralop": top, **groups}
    for package, modules in sorted(pages.items()):
        title = package if package != "geo_neuralop" else "geo_neuralop (package and CLI)"
        lines = [title, "=" * len(title), "", f".. automodule:: {package}", "   :no-members:",
                 ""]
        for module in sorted(modules):
            if module == package:
                continue
            lines += [module, "-" * len(module), "", f".. automodule:: {module}", ""]
        name = f"{package}.rst"
        wanted.add(name)
        text = "\n".join(lines) + "\n"
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for path in out.glob("*.rst"):
        if path.name not in wanted:
            path.unlink()


_write_api_pages()


# --- docstrings written for the terminal: shape notation such as ``[B, C, *grid]`` and
# ``|x|`` are plain text there, reST markup here; escape them outside literals ----------------
_SHAPE_STAR = re.compile(r"\[[^\[\]`]*\*[^\[\]`]*\]")
_BARS = re.compile(r"(?<![\\|])\|(?=[^|\s][^|]*\|)")


def _escape_line(line: str) -> str:
    parts = line.split("``")
    for i in range(0, len(parts), 2):  # outside ``literals``
        part = _SHAPE_STAR.sub(lambda m: m.group(0).replace("*", r"\*"), parts[i])
        if not part.lstrip().startswith(("|", "+-", "+=")):
            part = _BARS.sub(r"\|", part)
        parts[i] = part
    return "``".join(parts)


def _escape_docstring(app, what, name, obj, options, lines) -> None:
    lines[:] = [_escape_line(line) for line in lines]


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _escape_docstring, priority=100)

"""Sphinx configuration of olfacto's reference manual.

Built from the repository root (``make docs``: ``sphinx-build -W -c docs . build/docs``) so that the
README, the docs pages, figures/README.md and the executed notebooks are read where they live.
Notebooks are rendered with their committed outputs (never executed here: the tests execute them).
"""

import os
import sys
from importlib.metadata import version as _version

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

project = "olfacto"
author = "olfacto developers"
release = _version("olfacto")
root_doc = "docs/index"
include_patterns = ["docs/**", "README.md", "figures/README.md", "notebooks/*.ipynb"]
exclude_patterns = ["build/**", ".venv/**", "**/.ipynb_checkpoints"]

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
suppress_warnings = ["myst.header"]
html_theme = "furo"
html_title = f"olfacto {release}"
napoleon_use_ivar = True  # "Attributes" sections as fields, not as a second description of each attribute


def _plain_bars(app, what, name, obj, options, lines):
    """olfacto's docstrings state equations in plain text, where |x| is an absolute value or a norm,
    never a reST substitution: escape the bars."""
    lines[:] = [line.replace("|", r"\|") if "|" in line and not line.lstrip().startswith(("+", "|=", "=")) else line
                for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_bars)

"""Sphinx configuration of the skvae documentation."""

import os
import sys
import warnings

# Document the checkout this file belongs to, whatever else is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import skvae  # noqa: E402

project = "skvae"
author = "The skvae developers"
copyright = "2026, the skvae developers"
version = release = skvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # Bundled MathJax 3 (copied into _static): formulas render offline.
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_intersphinx", "_measured_*.rst", "Thumbs.db", ".DS_Store",
                    "check_offline.py"]
html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
# Long code lines wrap instead of scrolling; wide formulas scroll in their box.
html_static_path = ["_static"]
html_css_files = ["custom.css"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Upstream inventories first; when they cannot be fetched (no network, as on
# CI) the committed offline fallbacks in _intersphinx/ resolve the same links.
_here = os.path.dirname(__file__)


def _inv(name, url):
    return (url, (None, os.path.join(_here, "_intersphinx", f"{name}-objects.inv")))


intersphinx_mapping = {
    "sklearn": _inv("sklearn", "https://scikit-learn.org/stable/"),
    "numpy": _inv("numpy", "https://numpy.org/doc/stable/"),
    "scipy": _inv("scipy", "https://docs.scipy.org/doc/scipy/"),
    "torch": _inv("torch", "https://docs.pytorch.org/docs/stable/"),
}
intersphinx_timeout = 5

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "doc_module": ("skvae",),
    "reference_url": {"skvae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    # The computation-times pages load jQuery and DataTables from CDNs.
    "write_computation_times": False,
}

# Fitting with few epochs in examples may warn about convergence; the
# examples print the diagnostics that matter instead.
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib")

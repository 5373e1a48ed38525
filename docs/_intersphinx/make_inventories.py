"""Write the offline fallback intersphinx inventories (run once; outputs are committed).

CI and many build machines have no network, where Sphinx cannot fetch the
upstream ``objects.inv`` files. These small inventories list the upstream
objects our pages link to, with their real addresses, so the links resolve
offline; when the network is up Sphinx uses the upstream inventories first.
"""

import zlib
from pathlib import Path

INVENTORIES = {
    "sklearn": ("scikit-learn", [
        ("sklearn.decomposition.PCA", "py:class", "modules/generated/sklearn.decomposition.PCA.html#$"),
        ("sklearn.preprocessing.StandardScaler", "py:class", "modules/generated/sklearn.preprocessing.StandardScaler.html#$"),
        ("sklearn.pipeline.Pipeline", "py:class", "modules/generated/sklearn.pipeline.Pipeline.html#$"),
        ("sklearn.model_selection.GridSearchCV", "py:class", "modules/generated/sklearn.model_selection.GridSearchCV.html#$"),
        ("sklearn.cluster.KMeans", "py:class", "modules/generated/sklearn.cluster.KMeans.html#$"),
        ("sklearn.cluster.MiniBatchKMeans", "py:class", "modules/generated/sklearn.cluster.MiniBatchKMeans.html#$"),
        ("sklearn.exceptions.ConvergenceWarning", "py:class", "modules/generated/sklearn.exceptions.ConvergenceWarning.html#$"),
        ("sklearn.base.BaseEstimator", "py:class", "modules/generated/sklearn.base.BaseEstimator.html#$"),
        ("sklearn.base.TransformerMixin", "py:class", "modules/generated/sklearn.base.TransformerMixin.html#$"),
        ("sklearn.utils.estimator_checks.parametrize_with_checks", "py:function", "modules/generated/sklearn.utils.estimator_checks.parametrize_with_checks.html#$"),
        ("sklearn.neural_network.MLPRegressor", "py:class", "modules/generated/sklearn.neural_network.MLPRegressor.html#$"),
        ("metadata_routing", "std:label", "metadata_routing.html#metadata-routing"),
        ("df_output_transform", "std:label", "auto_examples/miscellaneous/plot_set_output.html#$"),
        ("sphx_glr_auto_examples_miscellaneous_plot_set_output.py", "std:label", "auto_examples/miscellaneous/plot_set_output.html#$"),
        ("fit", "std:term", "glossary.html#term-fit"),
        ("random_state", "std:term", "glossary.html#term-random_state"),
    ]),
    "numpy": ("NumPy", [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
        ("numpy.random.RandomState", "py:class", "reference/random/legacy.html#$"),
    ]),
    "scipy": ("SciPy", [
        ("scipy.optimize.minimize", "py:function", "reference/generated/scipy.optimize.minimize.html#$"),
    ]),
    "torch": ("PyTorch", [
        ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#$"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.Generator", "py:class", "generated/torch.Generator.html#$"),
        ("torch.autograd.functional.jacobian", "py:function", "generated/torch.autograd.functional.jacobian.html#$"),
    ]),
}

for key, (project, entries) in INVENTORIES.items():
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n# Version: stable\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in entries).encode()
    Path(__file__).with_name(f"{key}-objects.inv").write_bytes(header + zlib.compress(body))

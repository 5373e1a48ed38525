"""Fixtures shared by the test modules: small data and one small fitted model per geometry."""

import pytest
from sklearn.datasets import make_blobs

from _helpers import GEOMETRIES, fit_quietly, geometry_model

#: A small, fast network for the tests that need a fitted model of each geometry.
SMALL = dict(hidden_layer_sizes=(16, 8), max_iter=5, random_state=0)


@pytest.fixture(scope="session")
def X():
    """150 rows of 5-D blobs with offsets and scales far from 0 and 1.

    A model or export module that skipped the standardization cannot match
    its estimator on these.
    """
    X = make_blobs(n_samples=150, n_features=5, centers=4, random_state=0)[0]
    return X * [1.0, 10.0, 0.1, 100.0, 3.0] + [5.0, -20.0, 0.0, 1e3, 7.0]


@pytest.fixture(scope="session", params=GEOMETRIES)
def geometry_fit(request, X):
    """``(geometry name, model fitted on X)`` for the identity shell, the paper's map and the VAE.

    The VAE uses tanh, so that code rebuilding a module must get the
    activation right.
    """
    extra = {"activation": "tanh"} if request.param == "vae" else {}
    return request.param, fit_quietly(geometry_model(request.param, **SMALL, **extra), X)

"""Fixtures shared by the test modules: small data and one small fitted model per geometry."""

import os

import pytest
import threadpoolctl
import torch
from sklearn.datasets import make_blobs

from _helpers import GEOMETRIES, fit_quietly, geometry_model

#: A small, fast network for the tests that need a fitted model of each geometry.
SMALL = dict(hidden_layer_sizes=(16, 8), max_iter=5, random_state=0)


def pytest_configure(config):
    """One thread per pytest-xdist worker (setup.cfg runs two).

    Two workers that each spin two torch or OpenMP threads on two cores run
    far slower than two single-threaded ones. The variables reach the
    subprocesses the benchmark smoke tests start.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)


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

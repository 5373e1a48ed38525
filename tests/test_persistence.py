"""Saving and loading: plain-data state, skops.io with only skvae types to trust."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import make_blobs

from skvae import SphericalShellScaler

from _helpers import GEOMETRIES, fit_quietly, geometry_model

SMALL = dict(hidden_layer_sizes=(16, 8), max_iter=5, random_state=0)


@pytest.fixture(scope="module")
def X():
    return make_blobs(n_samples=150, n_features=5, centers=4, random_state=0)[0]


@pytest.fixture(scope="module", params=GEOMETRIES)
def est(request, X):
    # The VAE with tanh, so a rebuilt module must get its activation right.
    extra = {"activation": "tanh"} if request.param == "vae" else {}
    return fit_quietly(geometry_model(request.param, **SMALL, **extra), X)


def _outputs(est, X):
    Z = est.transform(X)
    return Z, est.inverse_transform(Z), est.score_samples(X), est.sample(4, random_state=1)


def _walk(obj):
    """Every object reachable through dicts, lists, tuples and estimator states."""
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from _walk(vars(obj))


def test_state_is_plain_data(est):
    state = est.__getstate__()
    assert not any(isinstance(o, (torch.Tensor, torch.nn.Module, torch.Generator))
                   for o in _walk(state))
    weights = state["module_"]["weights"]
    n_params = sum(p.numel() for p in est.module_.parameters())
    assert sum(w.size for w in weights.values()) == n_params
    assert all(w.dtype == np.float64 for w in weights.values())


def test_pickling_does_not_change_the_model(est, X):
    before = _outputs(est, X)
    module = est.module_
    pickle.dumps(est)
    assert est.module_ is module  # __getstate__ must not write into __dict__
    for a, b in zip(before, _outputs(est, X)):
        assert_array_equal(a, b)


def test_pickle_round_trip_is_exact(est, X):
    loaded = pickle.loads(pickle.dumps(est))
    for a, b in zip(_outputs(est, X), _outputs(loaded, X)):
        assert_array_equal(a, b)
    assert not loaded.module_.training  # rebuilt in eval mode (overflow-safe norms)


def test_skops_round_trip_trusts_only_skvae_types(est, X):
    sio = pytest.importorskip("skops.io")
    blob = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=blob)
    assert untrusted and all(name.startswith("skvae.") for name in untrusted), untrusted
    loaded = sio.loads(blob, trusted=untrusted)
    for a, b in zip(_outputs(est, X), _outputs(loaded, X)):
        assert_array_equal(a, b)
    assert loaded.get_params() == est.get_params()


def test_skops_round_trip_of_the_scaler(X):
    sio = pytest.importorskip("skops.io")
    scaler = SphericalShellScaler(r_min=0.5, r_max=3.0).fit(X)
    blob = sio.dumps(scaler)
    assert sio.get_untrusted_types(data=blob) == ["skvae._shell.SphericalShellScaler"]
    loaded = sio.loads(blob, trusted=["skvae._shell.SphericalShellScaler"])
    assert_array_equal(loaded.transform(X), scaler.transform(X))

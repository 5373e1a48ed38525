"""Saving and loading: pickle and joblib round trips, no training data stored, devices, skops.io."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs

from skvae import SphericalClusterVAE, SphericalShellScaler

from _helpers import fit_quietly
from conftest import SMALL


@pytest.fixture(scope="module")
def est(geometry_fit):
    return geometry_fit[1]


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


@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_round_trip(est, X, dumper, tmp_path):
    if dumper == "pickle":
        loaded = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
    Z = est.transform(X)
    assert_array_equal(loaded.transform(X), Z)
    assert_array_equal(loaded.inverse_transform(Z), est.inverse_transform(Z))
    assert_array_equal(loaded.score_samples(X), est.score_samples(X))


def test_pickle_holds_no_training_data(X):
    X = X.copy()
    est = fit_quietly(SphericalClusterVAE(n_clusters=4, **SMALL), X)
    blob = pickle.dumps(est)
    for arr in (X, X.astype(np.float32), est.shell_.transform(X),
                est.shell_.transform(X).astype(np.float32)):
        for row in arr[:20]:
            assert row.tobytes() not in blob
    assert not hasattr(est, "labels_")
    n_params = sum(p.numel() for p in est.module_.parameters())
    assert len(blob) < 8 * n_params + 20_000


def test_pickle_size_does_not_grow_with_n_samples():
    sizes = []
    for n in (200, 4000):
        X, _ = make_blobs(n_samples=n, n_features=6, centers=4, random_state=0)
        est = fit_quietly(SphericalClusterVAE(n_clusters=4, hidden_layer_sizes=(16,),
                                             max_iter=2, random_state=0), X)
        sizes.append(len(pickle.dumps(est)))
    # Only the per-epoch loss curve may differ (same max_iter here).
    assert abs(sizes[1] - sizes[0]) < 200, sizes


def test_model_fitted_on_gpu_loads_on_cpu(est, X):
    est = pickle.loads(pickle.dumps(est))
    est.device_ = "cuda:0"  # as if it had been fitted there
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the fallback path is not taken")
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = pickle.loads(pickle.dumps(est))
    assert loaded.device_ == "cpu"
    assert_array_equal(loaded.transform(X), est.transform(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_and_cpu_portable_pickle(X):
    est = fit_quietly(SphericalClusterVAE(n_clusters=4, device="cuda", **SMALL), X)
    assert est.device_.startswith("cuda") and est.collapse_certified_
    state = est.__getstate__()
    assert all(isinstance(w, np.ndarray) for w in state["module_"]["weights"].values())
    assert next(est.module_.parameters()).device.type == "cuda"  # pickling moved nothing
    cpu = fit_quietly(SphericalClusterVAE(n_clusters=4, **SMALL), X)
    assert_allclose(est.transform(X).std(axis=0), cpu.transform(X).std(axis=0), rtol=0.5)


def test_one_row_per_cluster_leaves_no_row_in_the_pickle(X):
    # n_clusters = n_samples makes every centre a training row; none may be stored.
    Xs = X[:40]
    est = fit_quietly(SphericalClusterVAE(n_clusters=40, **SMALL), Xs)
    blob = pickle.dumps(est)
    Y = (Xs - est.shell_.mean_) / est.shell_.scale_
    for arr in (Xs, Y, Xs.astype(np.float32), Y.astype(np.float32)):
        for row in arr:
            assert row.tobytes() not in blob
    arrays = [v for v in vars(est).values() if isinstance(v, np.ndarray)]
    assert all(a.shape[0] != 40 for a in arrays)


def test_model_from_a_second_gpu_loads_on_a_one_gpu_machine(est, monkeypatch, X):
    state = pickle.loads(pickle.dumps(est))
    state.device_ = "cuda:1"  # as if fitted on the second GPU of another machine
    blob = pickle.dumps(state)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.warns(UserWarning, match=r"fitted on cuda:1.*\(1 CUDA device\(s\)\).*CPU"):
        loaded = pickle.loads(blob)  # was a RuntimeError from .to("cuda:1")
    assert loaded.device_ == "cpu"
    assert_array_equal(loaded.transform(X), est.transform(X))

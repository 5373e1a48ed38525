"""partial_fit (out-of-core, dask-ml's Incremental) and warm_start."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skvae import SphericalClusterVAE, VAE

from _helpers import heldout_error, train_test_blobs

SMALL = dict(hidden_layer_sizes=(32,), random_state=0)


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.fixture(scope="module")
def data():
    return train_test_blobs()


def _make(name, **kw):
    if name == "vae":
        return VAE(**SMALL, **kw)
    return SphericalClusterVAE(n_clusters=5, **SMALL, **kw)


@pytest.mark.parametrize("name", ["spherical", "vae"])
def test_partial_fit_by_blocks_matches_fit(data, name):
    X, X_test = data
    full = _quiet(_make(name, max_iter=60).fit, X)
    inc = _make(name)
    blocks = np.array_split(X, 4)
    for _ in range(full.n_iter_):  # the same number of passes over the data
        for block in blocks:
            _quiet(inc.partial_fit, block)
    assert inc.n_iter_ == 4 * full.n_iter_ and inc.n_partial_fit_calls_ == inc.n_iter_
    assert inc.n_samples_seen_ == full.n_iter_ * len(X)
    assert inc.collapse_certified_
    ratio = heldout_error(inc, X_test) / heldout_error(full, X_test)
    assert ratio < 1.10, ratio


def test_first_block_fits_the_data_map_and_band(data):
    X, _ = data
    est = _quiet(_make("spherical").partial_fit, X[:300])
    ref = _quiet(_make("spherical", max_iter=1).fit, X[:300])
    # Same seed, same first block: the same standardization and band.
    assert_array_equal(est.shell_.mean_, ref.shell_.mean_)
    assert est.reconstruction_target_ == ref.reconstruction_target_
    shell, target = est.shell_, est.reconstruction_target_
    _quiet(est.partial_fit, X[300:600] + 100.0)  # later blocks do not refit them
    assert est.shell_ is shell and est.reconstruction_target_ == target


def test_partial_fit_resumes_exactly_through_a_pickle(data):
    X, _ = data
    a = _make("spherical")
    for block in np.array_split(X[:600], 3):
        _quiet(a.partial_fit, block)
    b = pickle.loads(pickle.dumps(a))  # Adam's state and the multiplier travel along
    for est in (a, b):
        _quiet(est.partial_fit, X[600:900])
    assert_array_equal(a.transform(X), b.transform(X))
    assert a.lagrange_multiplier_ == b.lagrange_multiplier_


def test_partial_fit_errors_name_the_problem(data):
    X, _ = data
    with pytest.raises(ValueError, match="n_clusters=5 must be <= n_samples=3"):
        _make("spherical").partial_fit(X[:3])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        _make("vae", early_stopping=True).partial_fit(X)
    est = _quiet(_make("vae").partial_fit, X[:200])
    module, weights = est.module_, [p.clone() for p in est.module_.parameters()]
    with pytest.raises(ValueError, match="X has 5 features"):
        est.partial_fit(X[:200, :5])
    # The failed call left the model as it was.
    assert est.module_ is module and next(module.parameters()).dtype.is_floating_point
    assert all((p == w).all() for p, w in zip(est.module_.parameters(), weights))


def test_warm_start_continues_training(data):
    X, X_test = data
    est = _quiet(_make("spherical", max_iter=15, warm_start=True).fit, X)
    first_curve, shell = list(est.loss_curve_), est.shell_
    _quiet(est.fit, X)
    assert est.n_iter_ == 30 and est.shell_ is shell
    assert est.loss_curve_[:15] == first_curve
    # It continues from the trained weights: the 16th epoch is nowhere near
    # the first epoch's loss of a fresh start.
    assert est.loss_curve_[15] < first_curve[0] - 0.5 * (first_curve[0] - first_curve[-1])
    cold = _quiet(_make("spherical", max_iter=15).fit, X)
    assert cold.n_iter_ == 15 and cold._training_state is None  # no Adam state kept

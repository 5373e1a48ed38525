"""The default geometry (an open shell), the paper's map as an option, and the reconstruction target."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from skvae import SphericalClusterVAE, SphericalShellScaler
from skvae._feasible import project_to_shell

# early_stopping=False: the band is then fitted on every row, as the checks below assume.
FAST = dict(hidden_layer_sizes=(16,), max_iter=5, early_stopping=False, random_state=0)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SphericalClusterVAE(**{**FAST, **params}).fit(X)


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(n_samples=200, n_features=5, centers=3, random_state=0)
    return X * [1, 10, 0.1, 5, 2] + [0, 3, 100, -7, 1]


def _standardized_norms(X):
    return np.linalg.norm((X - X.mean(axis=0)) / X.std(axis=0), axis=1)


def test_auto_radii_are_the_data_radii(X):
    est = _fit(X, n_clusters=3)
    norms = _standardized_norms(X)
    assert est.r_min_ == pytest.approx(norms.min() / 1.5, rel=1e-12)
    # Open outward: the guarantee needs only the inner radius.
    assert est.r_max_ == np.inf
    # The VAE models the standardized rows themselves.
    assert_allclose(est.shell_.transform(X), (X - X.mean(axis=0)) / X.std(axis=0))
    # Every training row is in the shell and above the knee of the output layer.
    assert est.output_knee_ == pytest.approx(norms.min(), rel=1e-12)
    assert est.n_rows_below_knee_ == 0
    assert est.shell_radius_range_ == pytest.approx((norms.min(), norms.max()))


def test_numeric_radii_are_absolute_standardized_units(X):
    est = _fit(X, n_clusters=3, r_min=0.25, r_max=4.0)
    assert (est.r_min_, est.r_max_) == (0.25, 4.0)
    norms = _standardized_norms(X)
    assert est.output_knee_ == pytest.approx(max(norms.min(), 0.375))
    # delta = T + dist(mean, S)^2 with the mean at the origin: T + r_min^2.
    T = np.mean(np.sum(((X - X.mean(axis=0)) / X.std(axis=0)) ** 2, axis=1))
    assert est.total_variance_ == pytest.approx(T) and T == pytest.approx(5.0)
    assert est.collapse_loss_ == pytest.approx(T + 0.25**2)


def test_paper_map_is_an_option_with_its_own_radii(X):
    est = _fit(X, n_clusters=3, shell_map="paper")
    assert isinstance(est.shell_, SphericalShellScaler)
    assert (est.r_min_, est.r_max_) == (1.0, 2.0)
    ref = SphericalShellScaler(1.0, 2.0).fit(X)
    assert_allclose(est.shell_.transform(X), ref.transform(X))
    norms = np.linalg.norm(ref.transform(X), axis=1)
    # Knee: max(smallest norm, 1.5 r_min); the rows below it are counted.
    assert est.output_knee_ == pytest.approx(max(norms.min(), 1.5))
    assert est.n_rows_below_knee_ == int(np.sum(norms < est.output_knee_))
    est = _fit(X, n_clusters=3, shell_map="paper", r_min=0.5, r_max=3.0)
    assert (est.shell_.r_min, est.shell_.r_max) == (0.5, 3.0)


def test_row_at_the_mean_falls_back_to_a_quantile_and_says_so(X):
    Xm = np.vstack([X, X.mean(axis=0)])
    with pytest.warns(UserWarning, match="1 training row.*exactly at the mean"):
        est = _fit(Xm, n_clusters=3)
    norms = _standardized_norms(Xm)
    assert est.r_min_ == pytest.approx(np.quantile(norms, 0.01) / 1.5)
    assert est.r_min_ > 0
    assert est.n_rows_below_knee_ >= 1


def test_reconstruction_target_and_its_anchors(X):
    est = _fit(X, n_clusters=3, anchor="codebook", margin=0.3)
    Y = (X - X.mean(axis=0)) / X.std(axis=0)
    # The blobs have one K-means optimum, so an independent K-means finds the
    # clusters the estimator used (their centres are not stored).
    km = KMeans(n_clusters=3, n_init=4, random_state=0).fit(Y)
    C = project_to_shell(km.cluster_centers_, est.r_min_, est.r_max_)
    W_S = np.mean(np.sum((Y - C[km.labels_]) ** 2, axis=1))
    assert est.codebook_loss_ == pytest.approx(W_S)
    assert est.within_cluster_variance_ == pytest.approx(km.inertia_ / len(Y), rel=1e-6)
    d = est.collapse_loss_
    assert est.reconstruction_target_ == pytest.approx(d - 0.3 * (d - W_S))
    # PCA anchor: probabilistic PCA's expected loss under its exact posterior,
    # which at the maximum-likelihood solution is n_features times the mean
    # discarded eigenvalue of the (biased) covariance.
    eig = np.linalg.eigvalsh(np.cov(Y, rowvar=False, bias=True))[::-1]
    P = Y.shape[1] * eig[2:].mean()
    assert est.pca_loss_ == pytest.approx(P, rel=1e-9)
    pca = _fit(X, n_clusters=3, anchor="pca", margin=0.3)
    assert pca.reconstruction_target_ == pytest.approx(d - 0.3 * (d - P))
    best = _fit(X, n_clusters=3, anchor="best", margin=0.3)
    assert best.reconstruction_target_ == pytest.approx(d - 0.3 * (d - min(P, W_S)))


def test_explained_fraction(X):
    est = _fit(X, n_clusters=3, max_iter=60)
    assert est.explained_fraction_ == pytest.approx(
        1 - est.reconstruction_loss_ / est.total_variance_)
    assert 0 < est.explained_fraction_ < 1

"""The feasible band: W, W_S, T and delta_collapse against independent computations."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from skvae import SphericalClusterVAE, SphericalShellScaler
from skvae._feasible import collapse_loss, fit_feasible_region, project_to_shell


def _shell_data(seed=0, n_features=6, shift=0.0):
    X, _ = make_blobs(n_samples=150, n_features=n_features, centers=3, random_state=seed)
    Y = SphericalShellScaler(1.0, 2.0).fit(X).transform(X)
    return Y + shift


def _numerical_delta(Y, r_min, r_max):
    """min over c in the shell of mean ||y - c||^2, by constrained optimisation."""
    best = np.inf
    rng = np.random.default_rng(0)
    f = lambda c: np.mean(np.sum((Y - c) ** 2, axis=1))  # noqa: E731
    cons = [
        {"type": "ineq", "fun": lambda c: c @ c - r_min**2},
        {"type": "ineq", "fun": lambda c: r_max**2 - c @ c},
    ]
    for _ in range(20):
        c0 = rng.normal(size=Y.shape[1])
        c0 *= rng.uniform(r_min, r_max) / np.linalg.norm(c0)
        res = minimize(f, c0, constraints=cons, method="SLSQP", options={"ftol": 1e-12})
        if res.success and r_min - 1e-6 <= np.linalg.norm(res.x) <= r_max + 1e-6:
            best = min(best, res.fun)
    return best


@pytest.mark.parametrize("shift", [0.0, 0.8, 3.0])
def test_collapse_loss_matches_numerical_minimisation(shift):
    # shift moves the data mean into the hole, into the shell, and outside it.
    Y = _shell_data(shift=shift)
    T, delta = np.sum(Y.var(axis=0)), collapse_loss(Y, 1.0, 2.0)
    assert delta == pytest.approx(_numerical_delta(Y, 1.0, 2.0), rel=1e-6)
    # No decoder that ignores its input beats the mean (equality up to rounding
    # when the mean lies in the shell).
    assert T <= delta * (1 + 1e-12)


def test_within_cluster_variance_is_kmeans_inertia():
    Y = _shell_data()
    region = fit_feasible_region(Y, n_clusters=5, r_min=1.0, r_max=2.0, margin=0.5,
                                 random_state=0)
    km = KMeans(n_clusters=5, n_init=4, random_state=0).fit(Y)
    assert region.within_cluster_variance == pytest.approx(km.inertia_ / len(Y), rel=1e-6)
    # W <= W_S (centres moved onto the shell) <= tau < delta, T <= delta.
    assert region.within_cluster_variance <= region.codebook_loss
    assert region.codebook_loss < region.reconstruction_target < region.collapse_loss
    assert region.total_variance <= region.collapse_loss
    assert region.reconstruction_target == pytest.approx(
        region.collapse_loss - 0.5 * (region.collapse_loss - region.codebook_loss))


def test_codebook_loss_uses_projected_centres():
    Y = _shell_data(seed=3)
    region = fit_feasible_region(Y, n_clusters=4, r_min=1.0, r_max=2.0, margin=0.3,
                                 random_state=0)
    C = region.cluster_centers
    norms = np.linalg.norm(C, axis=1, keepdims=True)
    P = C / norms * np.clip(norms, 1.0, 2.0)
    expected = np.mean(np.sum((Y - P[region.labels]) ** 2, axis=1))
    assert region.codebook_loss == pytest.approx(expected)


def test_projection_onto_shell():
    C = np.array([[0.1, 0.0], [3.0, 4.0], [1.2, 0.0], [0.0, 0.0]])
    assert_allclose(project_to_shell(C, 1.0, 2.0),
                    [[1.0, 0.0], [1.2, 1.6], [1.2, 0.0], [1.0, 0.0]])


def test_one_cluster_band_is_empty_exactly():
    # With K = 1 the shell codebook is the projected mean: W_S == delta.
    Y = _shell_data()
    with pytest.raises(ValueError, match="feasible band is empty"):
        fit_feasible_region(Y, n_clusters=1, r_min=1.0, r_max=2.0, margin=0.5,
                            random_state=0)
    with pytest.raises(ValueError, match="n_clusters=1 makes the feasible band empty"):
        SphericalClusterVAE(n_clusters=1).fit(np.random.default_rng(0).normal(size=(20, 3)))


def test_more_clusters_than_samples():
    with pytest.raises(ValueError, match=r"n_clusters=8 must be <= n_samples=5"):
        SphericalClusterVAE(n_clusters=8).fit(np.random.default_rng(0).normal(size=(5, 3)))


def test_zero_variance_data():
    with pytest.raises(ValueError, match="zero variance"):
        SphericalClusterVAE(n_clusters=2).fit(np.ones((20, 3)))
    # Straight to the region: all rows at the same shell point, so K-means
    # finds one cluster however many are asked for.
    with pytest.raises(ValueError, match="n_clusters=2 is more than the 1 distinct"):
        fit_feasible_region(np.tile([1.0, 0.0], (10, 1)), n_clusters=2, r_min=1.0,
                            r_max=2.0, margin=0.5, random_state=0)


def test_estimator_exposes_region():
    X, _ = make_blobs(n_samples=120, n_features=4, centers=3, random_state=0)
    vae = SphericalClusterVAE(n_clusters=3, max_iter=5, random_state=0)
    with pytest.warns(Warning):
        vae.fit(X)
    Y = vae.shell_.transform(X)
    delta = collapse_loss(Y, vae.r_min_, vae.r_max_)
    assert vae.total_variance_ == pytest.approx(np.sum(Y.var(axis=0)))
    assert vae.collapse_loss_ == pytest.approx(delta)
    # Neither labels_ (grows with n_samples) nor the centres (a centre of a
    # one-row cluster is that row) are stored.
    assert not hasattr(vae, "labels_") and not hasattr(vae, "cluster_centers_")
    km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(Y)
    assert vae.within_cluster_variance_ == pytest.approx(km.inertia_ / len(Y), rel=1e-6)


def test_kmeans_on_a_sample_gives_a_valid_band_on_every_row(monkeypatch):
    # Above KMEANS_MAX_ROWS rows K-means fits a random sample; W and W_S must
    # still be the losses of every row at its nearest centre (numpy reference).
    import skvae._feasible as feasible

    rng = np.random.default_rng(0)
    Y = project_to_shell(rng.normal(size=(600, 5)) + 3 * rng.integers(0, 2, size=(600, 1)),
                         1.0, 2.0)
    monkeypatch.setattr(feasible, "KMEANS_MAX_ROWS", 100)
    fitted_on = []

    class Spy(feasible.KMeans):
        def fit_predict(self, X, y=None, sample_weight=None):
            fitted_on.append(len(X))
            return super().fit_predict(X, y, sample_weight)

    monkeypatch.setattr(feasible, "KMeans", Spy)
    region = feasible.fit_feasible_region(Y, n_clusters=4, r_min=1.0, r_max=2.0,
                                          margin=0.5, random_state=0)
    assert fitted_on == [100]
    C = region.cluster_centers
    nearest = np.argmin(((Y[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
    assert_array_equal(region.labels, nearest)
    W = np.mean(np.sum((Y - C[nearest]) ** 2, axis=1))
    assert region.within_cluster_variance == pytest.approx(W)
    W_S = np.mean(np.sum((Y - project_to_shell(C, 1.0, 2.0)[nearest]) ** 2, axis=1))
    assert region.codebook_loss == pytest.approx(W_S)
    mean = Y.mean(axis=0)
    T = np.mean(np.sum((Y - mean) ** 2, axis=1))
    assert region.total_variance == pytest.approx(T)
    assert region.codebook_loss < region.reconstruction_target < region.collapse_loss
    # Even a 100-row sample's centres are nearly as good as K-means on every row.
    full = KMeans(n_clusters=4, n_init=4, random_state=0).fit(Y)
    assert W <= 1.10 * full.inertia_ / len(Y)


def test_best_anchor_takes_a_pca_loss_of_exactly_zero():
    # A pPCA that reconstructs every row exactly gives loss 0; "best" must
    # then anchor on 0, not fall back to the codebook.
    class ExactPPCA:
        eigenvalues = np.ones(2)

        def expected_loss(self, Y, Y_in=None):
            return 0.0

    region = fit_feasible_region(_shell_data(), n_clusters=3, r_min=1.0, r_max=2.0,
                                 margin=0.5, random_state=0, anchor="best",
                                 ppca=ExactPPCA())
    assert region.codebook_loss > 0 and region.pca_loss == 0.0
    assert region.reconstruction_target == pytest.approx(0.5 * region.collapse_loss)


def test_pca_anchor_needs_the_ppca():
    with pytest.raises(ValueError, match="needs the probabilistic PCA"):
        fit_feasible_region(_shell_data(), n_clusters=3, r_min=1.0, r_max=2.0, margin=0.5,
                            random_state=0, anchor="pca")


@pytest.mark.parametrize("holes", [False, True])
def test_band_losses_taken_by_row_chunks_match_numpy(monkeypatch, holes):
    # W, W_S, T and the pPCA anchor's loss are summed over chunks of rows so
    # that no temporary grows with n_samples; with chunks of 7 rows (an
    # uneven last one), and holes (NaN) in some chunks only, each must equal
    # the same mean over every row computed in one numpy expression.
    import skvae._chunks as chunking
    from skvae._missing import zero_filled
    from skvae._ppca import fit_ppca

    Y = _shell_data(seed=5)
    if holes:
        Y = Y.copy()
        Y[np.arange(0, 60, 3), np.arange(20) % Y.shape[1]] = np.nan
    ppca = fit_ppca(Y, 2)
    monkeypatch.setattr(chunking, "CHUNK_ROWS", 7)
    region = fit_feasible_region(Y, n_clusters=4, r_min=1.0, r_max=2.0, margin=0.5,
                                 random_state=0, anchor="best", ppca=ppca)
    M = ~np.isnan(Y)
    Y0 = np.where(M, Y, 0.0)

    def loss(C):
        return np.mean(np.sum(np.where(M, Y0 - C, 0.0) ** 2, axis=1))

    C = region.cluster_centers
    assert region.within_cluster_variance == pytest.approx(loss(C[region.labels]), rel=1e-12)
    P = project_to_shell(C, 1.0, 2.0)
    assert region.codebook_loss == pytest.approx(loss(P[region.labels]), rel=1e-12)
    mean = np.array([Y0[M[:, j], j].mean() for j in range(Y.shape[1])])
    assert region.total_variance == pytest.approx(loss(mean), rel=1e-12)
    # pPCA's expected loss: the decoded posterior mean's error plus the
    # decoded posterior covariance's diagonal, both over observed entries.
    W = ppca.loadings
    Z = (zero_filled(Y) - ppca.mean) @ np.linalg.solve(
        W.T @ W + ppca.noise_variance * np.eye(2), W.T).T
    spread = np.diag(W @ np.diag(ppca.noise_variance / ppca.eigenvalues) @ W.T)
    expected = loss(Z @ W.T + ppca.mean) + np.mean(M @ spread)
    assert region.pca_loss == pytest.approx(expected, rel=1e-10)

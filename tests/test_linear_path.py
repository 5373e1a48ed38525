"""The linear path: an untrained model is probabilistic PCA, checked against closed forms."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skvae import VAE, SphericalClusterVAE
from skvae._ppca import fit_ppca
from skvae.exceptions import PosteriorCollapseWarning


def _low_rank(n=400, n_features=8, rank=3, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 20.0, n_features)  # unequal units: standardization matters
    X = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, n_features))
    return (X + noise * rng.normal(size=(n, n_features))) * scales + rng.normal(size=n_features)


def _ml_ppca(Y, k):
    """Tipping & Bishop by numpy's eigh of the biased covariance: (mean, W, sigma2, V, L)."""
    mean = Y.mean(axis=0)
    lam, V = np.linalg.eigh(np.cov(Y, rowvar=False, bias=True))
    lam, V = lam[::-1], V[:, ::-1]
    s2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(lam[:k] - s2)
    return mean, W, s2, V[:, :k], lam[:k]


def _standardized(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_ppca_matches_scipy_and_monte_carlo(k):
    Y = _standardized(_low_rank())
    mean, W, s2, V, lam = _ml_ppca(Y, k)
    ppca = fit_ppca(Y, k)
    # The model covariance W W^T + s2 I (free of the eigenvectors' signs).
    assert_allclose(ppca.loadings @ ppca.loadings.T, W @ W.T, atol=1e-9)
    assert ppca.noise_variance == pytest.approx(s2, rel=1e-9)
    assert_allclose(ppca.mean, mean)
    # Exact posterior: mean M^-1 W^T (y - mean), covariance s2 M^-1, M = W^T W + s2 I.
    M = W.T @ W + s2 * np.eye(k)
    post_mean = (Y - mean) @ W @ np.linalg.inv(M)
    # Up to the sign of each eigenvector.
    signs = np.sign(np.sum(ppca.posterior_mean(Y) * post_mean, axis=0))
    assert_allclose(ppca.posterior_mean(Y) * signs, post_mean, atol=1e-9)
    assert_allclose(ppca.posterior_variance, np.diag(s2 * np.linalg.inv(M)), rtol=1e-9)
    # E_q ||y - W z - mean||^2 by Monte Carlo over z ~ q(z|y).
    rng = np.random.default_rng(1)
    draws = [np.mean(np.sum((Y - mean - (post_mean + rng.normal(size=post_mean.shape)
                                         * np.sqrt(np.diag(s2 * np.linalg.inv(M)))) @ W.T)
                            ** 2, axis=1)) for _ in range(200)]
    assert ppca.expected_loss(Y) == pytest.approx(np.mean(draws), rel=5e-3)
    # At the maximum-likelihood solution it is n_features * sigma^2.
    assert ppca.expected_loss(Y) == pytest.approx(Y.shape[1] * s2, rel=1e-9)


def test_ppca_handles_k_at_and_beyond_the_rank():
    Y = _standardized(_low_rank(n=5, n_features=8))  # rank 4 after centring
    for k in (4, 6, 8, 10):
        ppca = fit_ppca(Y, k)
        assert np.all(np.isfinite(ppca.encoder_weights)) and np.all(ppca.noise_variance > 0)
        assert np.all(np.isfinite(ppca.posterior_variance))
        assert ppca.expected_loss(Y) < 1e-3 * np.sum(Y.var(axis=0))


def _untrained(est_class, X, **params):
    """``est_class`` fitted with a step size too small to move the weights."""
    params = {"max_iter": 1, "learning_rate_init": 1e-12, "hidden_layer_sizes": (8,),
              "random_state": 0, **params}
    with warnings.catch_warnings():
        # One epoch is not convergence; a random plain MLP is not certified.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        return est_class(**params).fit(X)


@pytest.mark.parametrize("est_class", [VAE, SphericalClusterVAE])
def test_untrained_model_is_ppca(est_class):
    X = _low_rank()
    Y = _standardized(X)
    mean, W, s2, _, lam = _ml_ppca(Y, 2)
    params = dict(n_components=2, early_stopping=False)
    if est_class is VAE:
        # The maximum-likelihood noise variance, and the plain Gaussian
        # observation model (no outlier component), so the score is pPCA's.
        params.update(decoder_variance=s2, outlier_weight=0.0)
    est = _untrained(est_class, X, **params)
    # transform is pPCA's posterior mean (float32 weights: relative 1e-6).
    post_mean = (Y - mean) @ W @ np.linalg.inv(W.T @ W + s2 * np.eye(2))
    Z = est.transform(X)
    signs = np.sign(np.sum(Z * post_mean, axis=0))
    assert_allclose(Z * signs, post_mean, atol=1e-4)
    if est_class is VAE:
        # The ELBO of pPCA's exact posterior, written out in numpy with the
        # estimator's fixed noise draws: E_q log N(y; W z + mean, s2 I) - KL
        # - sum log scale.
        var = s2 / lam
        eps = est._score_eps * signs  # the model's z is numpy's up to each sign
        z = post_mean[:, None, :] + np.sqrt(var) * eps[None]
        sq = np.sum((Y[:, None, :] - mean - z @ W.T) ** 2, axis=-1)
        loglik = np.mean(-0.5 * Y.shape[1] * np.log(2 * np.pi * s2) - sq / (2 * s2), axis=1)
        kl = 0.5 * np.sum(post_mean**2 + var - 1 - np.log(var), axis=1)
        elbo = loglik - kl - np.log(X.std(axis=0)).sum()
        assert_allclose(est.score_samples(X), elbo, rtol=1e-5)
        # The draws have sample mean 0 and covariance I exactly, so for a
        # linear decoder the estimate is the exact ELBO, which with the exact
        # posterior is pPCA's log-likelihood of every row.
        cov = W @ W.T + s2 * np.eye(Y.shape[1])
        ll = multivariate_normal(mean, cov).logpdf(Y) - np.log(X.std(axis=0)).sum()
        assert_allclose(est.score_samples(X), ll, rtol=1e-5)
    else:
        # The learned variance R / n_features is pPCA's sigma^2 up to the
        # certificate's Monte Carlo error and the output layer.
        assert est.decoder_variance_ == pytest.approx(s2, rel=0.05)
        assert est.reconstruction_loss_ <= est.reconstruction_target_


def test_plain_mlp_is_an_option():
    X = _low_rank()
    est = _untrained(SphericalClusterVAE, X, n_components=2, linear_path=False,
                     early_stopping=False)
    assert est.module_.encoder.linear is None and est.module_.decoder.linear is None
    Y = _standardized(X)
    mean, W, s2, *_ = _ml_ppca(Y, 2)
    post_mean = (Y - mean) @ W @ np.linalg.inv(W.T @ W + s2 * np.eye(2))
    # A random network is nowhere near pPCA.
    assert not np.allclose(np.abs(est.transform(X)), np.abs(post_mean), atol=0.1)


@pytest.mark.parametrize("est_class", [VAE, SphericalClusterVAE])
def test_a_start_no_epoch_beats_is_ppca_of_every_row(est_class):
    # With a step size that cannot move the weights no epoch improves on the
    # start, so early stopping keeps it; the model is then the pPCA of all
    # rows, not of the rows left after the hold-out.
    X = _low_rank()
    Y = _standardized(X)
    mean, W, s2, *_ = _ml_ppca(Y, 2)
    est = _untrained(est_class, X, n_components=2, early_stopping=True, n_iter_no_change=1,
                     max_iter=5)
    post_mean = (Y - mean) @ W @ np.linalg.inv(W.T @ W + s2 * np.eye(2))
    Z = est.transform(X)
    signs = np.sign(np.sum(Z * post_mean, axis=0))
    assert_allclose(Z * signs, post_mean, atol=1e-4)


def test_open_shell_does_not_cap_a_far_row_and_keeps_the_collapse_loss():
    X = _low_rank(n=300, n_features=6, rank=2, noise=0.05)
    scale = X.std(axis=0)
    Y = _standardized(X)
    far_std = 5.0 * Y[np.argmax(np.linalg.norm(Y, axis=1))]  # 5x the largest norm
    far = X.mean(axis=0) + far_std * scale
    fits = {}
    for name, est in {
        "open": SphericalClusterVAE(2, n_clusters=4, random_state=0),
        "capped": SphericalClusterVAE(2, n_clusters=4, random_state=0,
                                      r_max=float(np.linalg.norm(Y, axis=1).max())),
        "vae": VAE(2, random_state=0),
    }.items():
        fits[name] = est.fit(X)

    def error(est):
        return float(np.sum(((est.inverse_transform(est.transform(far[None])) - far)
                             / scale) ** 2))

    # Independent reference: the row lies (up to the noise) in the data's
    # principal plane, so its projection error is a small fraction of its norm.
    U, s, Vt = np.linalg.svd(Y - Y.mean(axis=0), full_matrices=False)
    ref = float(np.sum((far_std - far_std @ Vt[:2].T @ Vt[:2]) ** 2))
    norm2 = float(far_std @ far_std)
    assert ref < 0.01 * norm2
    assert error(fits["open"]) <= 1.1 * error(fits["vae"]) + 0.01 * norm2
    # A radius at the largest training norm caps the row at 1/5 of its norm.
    assert error(fits["capped"]) > 0.5 * norm2
    # The guarantee needs only the inner radius: delta = T + r_min^2 either way.
    T = np.mean(np.sum(Y**2, axis=1))
    for name in ("open", "capped"):
        assert fits[name].collapse_loss_ == pytest.approx(T + fits[name].r_min_**2)
        assert fits[name].collapse_certified_
    assert fits["open"].r_max_ == np.inf


def test_grid_search_over_n_components_picks_the_supported_k():
    # Six latent directions of comparable variance: two components plainly
    # miss most of the structure, and the held-out score must say so.
    X = _low_rank(n=450, n_features=12, rank=6, noise=0.2, seed=3)
    search = GridSearchCV(SphericalClusterVAE(hidden_layer_sizes=(32,), random_state=0),
                          {"n_components": [2, 6]}, cv=3).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"n_components": 6}
    assert scores[1] > scores[0] + 1.0


def test_partial_fit_starts_at_the_ppca_of_its_first_block():
    X = _low_rank()
    first = X[:200]
    Y = _standardized(first)
    mean, W, s2, *_ = _ml_ppca(Y, 2)
    est = SphericalClusterVAE(2, learning_rate_init=1e-12, hidden_layer_sizes=(8,),
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        est.partial_fit(first).partial_fit(X[200:])
    post_mean = (Y - mean) @ W @ np.linalg.inv(W.T @ W + s2 * np.eye(2))
    Z = est.transform(first)
    signs = np.sign(np.sum(Z * post_mean, axis=0))
    assert_allclose(Z * signs, post_mean, atol=1e-4)


@pytest.mark.parametrize("n_features", [8, 50])
def test_scatter_matrix_route_matches_the_svd_of_the_rows(monkeypatch, n_features):
    # From COVARIANCE_MIN_ROWS rows and 10 rows per feature, the covariance's
    # eigenpairs come from the d x d scatter matrix summed over row chunks;
    # checked against scipy's SVD of the centred rows, with chunks of 7 rows.
    import scipy.linalg

    import skvae._chunks as chunking
    import skvae._ppca as ppca_module

    Y = _standardized(_low_rank(n=400, n_features=n_features, rank=3))
    _, s, Vt = scipy.linalg.svd(Y - Y.mean(axis=0), full_matrices=False)
    monkeypatch.setattr(chunking, "CHUNK_ROWS", 7)
    monkeypatch.setattr(ppca_module, "COVARIANCE_MIN_ROWS", 100)
    routes = []
    for name in ("eigh", "svd"):
        def spy(A, *args, _f=getattr(np.linalg, name), _name=name, **kwargs):
            routes.append(_name)
            return _f(A, *args, **kwargs)
        monkeypatch.setattr(ppca_module.np.linalg, name, spy)
    eigenvalues, V = ppca_module.covariance_spectrum(Y, Y.mean(axis=0))
    # 400 rows: 10 per feature for 8 features, not for 50.
    assert routes == (["eigh"] if n_features == 8 else ["svd"])
    assert_allclose(eigenvalues, s**2 / len(Y), rtol=1e-9, atol=1e-12 * s[0] ** 2)
    # The leading eigenvectors (distinct eigenvalues) up to sign.
    assert_allclose(np.abs(np.sum(V[:3] * Vt[:3], axis=1)), 1.0, atol=1e-9)
    # The fitted pPCA is the model of numpy's closed form.
    fitted = ppca_module.fit_ppca(Y, 2)
    mean, W, s2, *_ = _ml_ppca(Y, 2)
    assert_allclose(fitted.loadings @ fitted.loadings.T, W @ W.T, atol=1e-9)
    assert fitted.noise_variance == pytest.approx(s2, rel=1e-9)

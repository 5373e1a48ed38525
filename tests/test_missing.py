"""Missing values: every number checked against an independent numpy, scipy or autograd computation."""

import copy
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import SphericalClusterVAE, VAE, VAEImputer
from skvae._imputer import stacking_weights
from skvae._missing import collapse_loss
from skvae._networks import NormConstraint
from skvae._ppca_missing import conditional_fill, fit_ppca_missing


def _quiet(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def _holes(X, rate, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.random(X.shape) < rate
    M[M.all(axis=1), 0] = False
    return np.where(M, np.nan, X)


@pytest.fixture(scope="module")
def data():
    X = make_blobs(n_samples=240, n_features=6, centers=4, random_state=0)[0]
    X = X * [1.0, 10.0, 0.1, 100.0, 3.0, 1.0] + [5.0, -20.0, 0.0, 1e3, 7.0, 0.0]
    return X, _holes(X, 0.2)


@pytest.fixture(scope="module")
def fitted(data):
    return _quiet(SphericalClusterVAE(n_components=2, hidden_layer_sizes=(16, 8),
                                      random_state=0), data[1])


def test_standardization_uses_observed_entries(data, fitted):
    # sklearn's StandardScaler also ignores NaN: an independent reference.
    ref = StandardScaler().fit(data[1])
    assert_allclose(fitted.shell_.mean_, ref.mean_, rtol=1e-12)
    assert_allclose(fitted.shell_.scale_, ref.scale_, rtol=1e-12)


def test_collapse_loss_with_holes_is_the_minimum_over_the_shell(data, fitted):
    X = data[1]
    Y = (X - fitted.shell_.mean_) / fitted.shell_.scale_
    seen = ~np.isnan(Y)
    r = fitted.r_min_

    def loss(c):  # loss of the constant decoder output c, on observed entries
        return np.mean(np.sum(np.where(seen, (Y - c) ** 2, 0.0), axis=1))

    counts = seen.sum(axis=0)
    best = loss(r * np.eye(Y.shape[1])[np.argmin(counts)])
    assert_allclose(fitted.collapse_loss_, best, rtol=1e-10)
    # Closed form of the design: T_obs + r^2 min_j n_j / n (the observed means are 0).
    T_obs = np.mean(np.sum(np.where(seen, Y, 0.0) ** 2, axis=1))
    assert_allclose(fitted.collapse_loss_, T_obs + r**2 * counts.min() / Y.shape[0], rtol=1e-10)
    # No point of the shell does better (random directions and radii).
    rng = np.random.default_rng(0)
    for _ in range(300):
        u = rng.standard_normal(Y.shape[1])
        c = u / np.linalg.norm(u) * r * (1 + rng.exponential())
        assert loss(c) >= fitted.collapse_loss_ - 1e-9


def test_collapse_loss_off_centre_is_a_lower_bound():
    # Rows whose observed mean is off the origin (a later partial_fit block):
    # the returned value must not exceed the true minimum (found by scipy).
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    Y = rng.standard_normal((50, 3)) * 0.3 + [0.2, 0.1, 0.0]
    Y[rng.random(Y.shape) < 0.3] = np.nan
    seen = ~np.isnan(Y)
    r = 2.0

    def loss(c):
        return np.mean(np.sum(np.where(seen, (Y - c) ** 2, 0.0), axis=1))

    cons = {"type": "ineq", "fun": lambda c: c @ c - r**2}
    true_min = min(minimize(loss, x0, constraints=[cons]).fun
                   for x0 in r * np.vstack([np.eye(3), -np.eye(3)]))
    bound = collapse_loss(Y, r, np.inf)
    assert bound <= true_min + 1e-7
    assert bound > loss(np.nanmean(Y, axis=0))  # and it is above the unconstrained optimum


def test_masked_shell_loss_gradient_matches_autograd():
    torch.manual_seed(0)
    u = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(20, 5, dtype=torch.float64)
    m = (torch.rand(20, 5) > 0.3).double()
    layer = NormConstraint(0.5, 3.0, knee=1.2)
    fused = layer.squared_error(u, y * m, m)
    (g_fused,) = torch.autograd.grad(fused, u)
    # Reference: the layer's forward under autograd, loss over observed entries.
    ref = ((y - layer(u)) * m).pow(2).sum(dim=1).mean()
    (g_ref,) = torch.autograd.grad(ref, u)
    assert_allclose(fused.item(), ref.item(), rtol=1e-12)
    assert_allclose(g_fused.numpy(), g_ref.numpy(), rtol=1e-9, atol=1e-12)


def test_mask_inputs_start_at_the_ppca_posterior():
    # The ablation's encoder takes the mask too; at the linear start its
    # weights are 0, so the posterior is pPCA's whatever the mask.
    from skvae._networks import build_vae
    from skvae._ppca import fit_ppca

    rng = np.random.default_rng(0)
    Y = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 4))
    ppca = fit_ppca(Y, 2)
    module = build_vae(n_features=4, n_components=2, hidden_layer_sizes=(8,),
                       activation="relu", output_layer=None, device=torch.device("cpu"),
                       generator=torch.Generator().manual_seed(0), linear_start=ppca,
                       mask_inputs=True).double()
    y = torch.as_tensor(Y[:5])
    mask = torch.as_tensor((rng.random((5, 4)) > 0.5).astype(float))
    with torch.no_grad():
        mu_mask = module.encoder(y, mask)[0].numpy()
        mu_none = module.encoder(y)[0].numpy()
    assert_allclose(mu_mask, ppca.posterior_mean(Y[:5]), rtol=1e-6, atol=1e-8)
    assert_allclose(mu_none, mu_mask, rtol=1e-12)
    assert module.encoder.linear.weight.shape == (2, 8)


def test_em_ppca_recovers_the_covariance_of_rows_with_holes():
    rng = np.random.default_rng(0)
    n, d, k = 4000, 8, 2
    W = rng.standard_normal((d, k))
    Y = rng.standard_normal((n, k)) @ W.T + 0.3 * rng.standard_normal((n, d))
    truth = W @ W.T + 0.09 * np.eye(d)
    Yh = Y.copy()
    Yh[rng.random(Y.shape) < 0.3] = np.nan
    p = fit_ppca_missing(Yh, k)
    C = p.loadings @ p.loadings.T + p.noise_variance * np.eye(d)
    assert np.linalg.norm(C - truth) / np.linalg.norm(truth) < 0.05
    # Zero filling, the alternative, shrinks the covariance far more.
    Y0 = np.nan_to_num(Yh)
    assert np.linalg.norm(np.cov(Y0.T, bias=True) - truth) / np.linalg.norm(truth) > 0.2


def test_fill_rank_is_chosen_on_hidden_entries():
    # Rank-2 rows with noise, few rows, many holes: the largest rank fits the
    # observed entries too closely; hidden entries pick a low rank.
    from skvae._ppca_missing import candidate_ranks, choose_rank

    ranks = candidate_ranks(12, 2)
    assert ranks == [2, 5, 11]
    chosen = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        Y = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 12))
        Y += 0.5 * rng.standard_normal((60, 12))
        Y[rng.random(Y.shape) < 0.4] = np.nan
        chosen.append(choose_rank(Y, 2, seed))
    assert all(r in ranks for r in chosen) and max(chosen) < 11
    assert choose_rank(Y, 2, 4) == chosen[-1]  # deterministic given the seed


def test_conditional_fill_is_the_gaussian_conditional_mean():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 5))
    Y[rng.random(Y.shape) < 0.25] = np.nan
    Y[0] = np.nan  # nothing observed: the mean
    p = fit_ppca_missing(Y, 3)
    F = conditional_fill(p, Y)
    C = p.loadings @ p.loadings.T + p.noise_variance * np.eye(5)
    for i in range(1, 40):
        o, m = ~np.isnan(Y[i]), np.isnan(Y[i])
        if not m.any():
            continue
        ref = p.mean[m] + C[np.ix_(m, o)] @ np.linalg.solve(C[np.ix_(o, o)], Y[i, o] - p.mean[o])
        assert_allclose(F[i, m], ref, rtol=1e-8, atol=1e-10)
        assert_array_equal(F[i, o], Y[i, o])
    assert_allclose(F[0], p.mean)


def test_score_with_holes_is_the_elbo_of_the_observed_entries(data, fitted):
    X = data[1][:12]
    est = fitted
    Y = (X - est.shell_.mean_) / est.shell_.scale_
    seen = ~np.isnan(Y)
    # Network outputs only; the ELBO's formula is evaluated here in numpy.
    Y_in = est._encoder_input(Y)
    with torch.no_grad():
        mu, logvar = (t.numpy() for t in est.module_.encoder(torch.as_tensor(Y_in)))
        eps = est._score_eps
        expected = np.empty(len(X))
        for i in range(len(X)):
            z = mu[i] + np.exp(0.5 * logvar[i]) * eps
            out = est.module_.decoder(torch.as_tensor(z)).numpy()
            o = seen[i]
            sq = np.sum((Y[i, o] - out[:, o]) ** 2, axis=1)

            def log_normal(s2):
                return -0.5 * o.sum() * np.log(2 * np.pi * s2) - sq / (2 * s2)

            # The observation model's two components, over the observed entries.
            w = est.outlier_weight
            loglik = np.logaddexp(np.log1p(-w) + log_normal(est.decoder_variance_),
                                  np.log(w) + log_normal(est.outlier_variance_)).mean()
            kl = 0.5 * np.sum(mu[i] ** 2 + np.exp(logvar[i]) - 1 - logvar[i])
            expected[i] = loglik - kl - np.log(est.shell_.scale_[o]).sum()
    assert_allclose(est.score_samples(X), expected, rtol=1e-9)


def test_fit_with_holes_is_certified_and_finite(data, fitted):
    X = data[1]
    assert fitted.collapse_certified_
    assert fitted.reconstruction_loss_ < fitted.reconstruction_target_ < fitted.collapse_loss_
    Z = fitted.transform(X)
    assert np.isfinite(Z).all()
    assert np.isfinite(fitted.inverse_transform(Z)).all()
    assert np.isfinite(fitted.score_samples(X)).all()
    # The learned variance is the squared error per observed entry: exactly
    # so without held-out rows, at least so with them.
    n_obs = (~np.isnan(X)).sum() / X.shape[0]
    assert fitted.decoder_variance_ >= fitted.reconstruction_loss_ / n_obs * (1 - 1e-12)
    plain = _quiet(SphericalClusterVAE(n_components=2, hidden_layer_sizes=(16, 8), max_iter=5,
                                       early_stopping=False, random_state=0), X)
    assert_allclose(plain.decoder_variance_, plain.reconstruction_loss_ / n_obs)


def test_outlier_variance_is_per_observed_entry(data, fitted):
    # Four times the standardized rows' variance per observed entry, written
    # out in numpy (each column is standardized on its observed entries, so
    # this is 4, not 4 x the observed share).
    Y = (data[1] - fitted.shell_.mean_) / fitted.shell_.scale_
    per_entry = np.nansum((Y - np.nanmean(Y, axis=0)) ** 2) / np.sum(~np.isnan(Y))
    assert per_entry == pytest.approx(1.0)
    assert fitted.outlier_variance_ == pytest.approx(
        max(4 * per_entry, fitted.decoder_variance_), rel=1e-9)


def test_rows_with_nothing_observed_get_the_prior(fitted):
    X = np.full((2, 6), np.nan)
    assert_array_equal(fitted.transform(X), np.zeros((2, 2)))
    assert_array_equal(fitted.score_samples(X), np.zeros(2))


@pytest.mark.parametrize("cls", [SphericalClusterVAE, VAE])
def test_model_fitted_on_complete_rows_takes_rows_with_holes(cls, data):
    X, _ = data
    est = _quiet(cls(n_components=2, hidden_layer_sizes=(16, 8), random_state=0), X)
    one_hole = X[:50].copy()
    one_hole[:, 2] = np.nan  # the feature of smallest scale: little information lost
    Z, Z_full = est.transform(one_hole), est.transform(X[:50])
    assert np.isfinite(Z).all()
    # The hole is filled from the other features: codes stay close.
    assert np.mean(np.sum((Z - Z_full) ** 2, axis=1)) < 0.1 * np.mean(np.sum(Z_full**2, axis=1))
    assert np.isfinite(est.score_samples(one_hole)).all()


def test_paper_map_refuses_missing_values(data):
    X, Xh = data
    with pytest.raises(ValueError, match="shell_map='paper' does not support missing values"):
        SphericalClusterVAE(shell_map="paper").fit(Xh)
    est = _quiet(SphericalClusterVAE(shell_map="paper", max_iter=2, random_state=0), X)
    with pytest.raises(ValueError, match="does not support missing values"):
        est.transform(Xh)
    assert not est.__sklearn_tags__().input_tags.allow_nan
    assert SphericalClusterVAE().__sklearn_tags__().input_tags.allow_nan


def test_infinity_is_refused(data):
    X = data[1].copy()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        SphericalClusterVAE().fit(X)


def test_partial_fit_with_holes(data):
    _, Xh = data
    est = SphericalClusterVAE(n_components=2, hidden_layer_sizes=(16,), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in np.array_split(Xh, 3):
            est.partial_fit(block)
    assert np.isfinite(est.transform(Xh)).all() and est.n_partial_fit_calls_ == 3


def test_map_fill_of_a_linear_decoder_is_the_closed_form(data):
    # VAE with no hidden layers: the decoder is affine, y = B z + b, and the
    # MAP latent given the observed entries is (B_o'B_o + s2 I)^-1 B_o'(y_o - b_o).
    X, Xh = data
    vae = _quiet(VAE(n_components=2, hidden_layer_sizes=(), random_state=0), Xh)
    imp = VAEImputer(vae, fill_method="vae", keep_range=False, max_search_iter=200, tol=1e-10)
    imp.estimator_, imp.fill_method_, imp.n_features_in_ = vae, "vae", X.shape[1]
    imp.fill_weights_ = np.tile([1.0, 0.0], (X.shape[1], 1))
    imp.data_min_, imp.data_max_ = np.full(X.shape[1], -np.inf), np.full(X.shape[1], np.inf)
    filled = imp.transform(Xh[:30])
    dec = vae.module_.decoder
    B = (dec.head.weight + dec.linear.weight).detach().numpy()
    b = (dec.head.bias + dec.linear.bias).detach().numpy()
    s2 = vae.decoder_variance_
    Y = (Xh[:30] - vae.scaler_.mean_) / vae.scaler_.scale_
    for i in range(30):
        o = ~np.isnan(Y[i])
        if o.all():
            continue
        z = np.linalg.solve(B[o].T @ B[o] + s2 * np.eye(2), B[o].T @ (Y[i, o] - b[o]))
        ref = (B @ z + b) * vae.scaler_.scale_ + vae.scaler_.mean_
        assert_allclose(filled[i, ~o], ref[~o], rtol=1e-6, atol=1e-8)


def test_imputer_keeps_observed_entries_and_beats_the_mean(data):
    X, Xh = data
    imp = _quiet(VAEImputer(random_state=0), Xh)
    F = imp.transform(Xh)
    seen = ~np.isnan(Xh)
    assert_array_equal(F[seen], Xh[seen])
    assert not np.isnan(F).any()
    sd = X.std(axis=0)
    err = np.sqrt(np.mean((((F - X) / sd)[~seen]) ** 2))
    mean_err = np.sqrt(np.mean((((np.nanmean(Xh, axis=0) - X) / sd)[~seen]) ** 2))
    assert err < 0.5 * mean_err
    assert imp.estimator_.collapse_certified_
    # float32 stays float32; complete rows come back unchanged.
    assert imp.transform(Xh.astype(np.float32)).dtype == np.float32
    assert_array_equal(imp.transform(X), X)


def test_stacking_weights_match_bounded_least_squares():
    rng = np.random.default_rng(0)
    n_features = 4
    columns = np.repeat(np.arange(n_features), [50, 5, 1, 0][:n_features])
    fills = rng.normal(size=(columns.size, 2))
    truth = fills @ [0.7, 0.2] + 0.3 * rng.normal(size=columns.size)
    # A column of its own, whose unconstrained weights are negative.
    truth[columns == 1] = fills[columns == 1] @ [-0.5, 1.5]

    def lsq(rows):
        # Two weights >= 0: the best of the feasible candidates on each face.
        A, y = fills[rows], truth[rows]
        faces = [np.linalg.lstsq(A, y, rcond=None)[0], np.zeros(2)]
        for k in range(2):
            w = np.zeros(2)
            w[k] = A[:, k] @ y / (A[:, k] @ A[:, k])
            faces.append(w)
        feasible = [w for w in faces if (w >= 0).all()]
        return min(feasible, key=lambda w: np.sum((A @ w - y) ** 2))

    pooled = lsq(np.ones(columns.size, bool))
    W = stacking_weights(fills, truth, columns, n_features)
    for j in range(n_features):
        n = int(np.sum(columns == j))
        ref = pooled if n < 2 else (n * lsq(columns == j) + 30 * pooled) / (n + 30)
        assert_allclose(W[j], ref, atol=1e-8)
    assert (W >= 0).all()


def test_imputer_stacks_the_fills_on_hidden_entries(data):
    X, Xh = data
    imp = _quiet(VAEImputer(SphericalClusterVAE(n_components=2, hidden_layer_sizes=(8,),
                                                random_state=0), random_state=0), Xh)
    errors = imp.validation_errors_
    assert set(errors) == {"vae", "ppca", "blend", "mean"}
    assert imp.fill_method_ == "stacked" and imp.fill_weights_.shape == (X.shape[1], 2)
    assert (imp.fill_weights_ >= 0).all()
    # The mean's error on hidden standardized entries is their root mean square, about 1.
    assert 0.5 < errors["mean"] < 1.5
    # A stacked hole is the column mean plus each fill's weighted step from it.
    holes = np.isnan(Xh)
    single = {}
    for k, method in enumerate(("vae", "ppca")):
        one = copy.copy(imp)
        one.fill_weights_ = np.eye(2)[[k] * X.shape[1]]
        single[method] = one.transform(Xh)
    mean, scale = imp.estimator_.shell_.mean_, imp.estimator_.shell_.scale_
    a, b = imp.fill_weights_.T
    ref = mean + a * (single["vae"] - mean) + b * (single["ppca"] - mean)
    ref = np.clip(ref, imp.data_min_, imp.data_max_)
    assert_allclose(imp.transform(Xh)[holes], np.broadcast_to(ref, Xh.shape)[holes],
                    rtol=1e-9, atol=1e-9 * scale.max())
    # Explicit fills fit once and are used as asked.
    for method in ("mean", "ppca"):
        fixed = _quiet(VAEImputer(fill_method=method, keep_range=False, random_state=0), Xh)
        assert fixed.fill_method_ == method and fixed.validation_errors_ is None
    F = fixed.transform(Xh)  # "ppca": the fill model's conditional mean
    Y = fixed.estimator_._to_representation(Xh)
    ref = conditional_fill(fixed.estimator_._fill_ppca, Y) * fixed.estimator_.shell_.scale_
    assert_allclose(F, ref + fixed.estimator_.shell_.mean_, rtol=1e-10, atol=1e-9)


def test_imputer_keeps_fills_in_each_column_observed_range(data):
    X, Xh = data
    # Rows far outside the data: their conditional means leave the columns' ranges.
    far = 50.0 * np.nanmax(np.abs(Xh), axis=0) * np.where(np.arange(X.shape[1]) % 2, 1, -1)
    rows = np.tile(far, (4, 1))
    rows[np.arange(4), np.arange(4)] = np.nan
    rows[:, -1] = np.nan
    free = _quiet(VAEImputer(fill_method="ppca", keep_range=False, random_state=0), Xh)
    kept = _quiet(VAEImputer(fill_method="ppca", random_state=0), Xh)
    low, high = np.nanmin(Xh, axis=0), np.nanmax(Xh, axis=0)
    assert_array_equal(kept.data_min_, low)
    assert_array_equal(kept.data_max_, high)
    unclipped, clipped = free.transform(rows), kept.transform(rows)
    holes = np.isnan(rows)
    assert ((unclipped < low) | (unclipped > high))[holes].any()
    assert_allclose(clipped, np.where(holes, np.clip(unclipped, low, high), rows))


def test_imputer_keeps_feature_names_and_outputs_pandas(data):
    pd = pytest.importorskip("pandas")
    X, Xh = data
    frame = pd.DataFrame(Xh, columns=[f"f{j}" for j in range(X.shape[1])])
    imp = VAEImputer(SphericalClusterVAE(n_components=2, hidden_layer_sizes=(8,), max_iter=3,
                                         random_state=0), fill_method="ppca")
    out = _quiet(imp.set_output(transform="pandas"), frame).transform(frame)
    assert list(out.columns) == list(frame.columns) and not out.isna().any().any()
    assert list(imp.get_feature_names_out()) == list(frame.columns)


def test_imputer_in_a_pipeline_and_grid_search(data):
    X, Xh = data
    pipe = make_pipeline(
        VAEImputer(SphericalClusterVAE(n_components=2, hidden_layer_sizes=(8,), max_iter=5,
                                       random_state=0)),
        SphericalClusterVAE(n_components=2, hidden_layer_sizes=(8,), max_iter=5, random_state=0),
    )
    search = GridSearchCV(pipe, {"vaeimputer__estimator__n_components": [1, 2]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(Xh)
    assert np.isfinite(search.transform(Xh)).all()
    assert set(search.cv_results_["param_vaeimputer__estimator__n_components"]) == {1, 2}

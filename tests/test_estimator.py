"""The estimator contract: transform, inverse, score, sample, persistence, bad input."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import norm
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import SphericalClusterVAE, VAE
from skvae.exceptions import PosteriorCollapseWarning
from skvae.metrics import collapse_certificate

FAST = dict(hidden_layer_sizes=(32,), max_iter=40, random_state=0)


def _quiet_fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, n_features=6, centers=4, cluster_std=1.5,
                      random_state=0)
    return X, y


@pytest.fixture(scope="module", params=["spherical", "vae"])
def fitted(request, blobs):
    X, _ = blobs
    est = (SphericalClusterVAE(n_clusters=4, **FAST) if request.param == "spherical"
           else VAE(**FAST))
    return _quiet_fit(est, X), X


# ------------------------------------------------------------------ transform
def test_transform_does_not_depend_on_other_rows(fitted):
    est, X = fitted
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    for method in (est.transform, est.score_samples):
        full = method(X)
        assert_allclose(method(X[perm]), full[perm], rtol=0, atol=1e-9)
        by_row = np.concatenate([method(X[i : i + 1]) for i in range(0, 30)])
        assert_allclose(by_row, full[:30], rtol=0, atol=1e-9)
        halves = np.concatenate([method(X[:7]), method(X[7:])])
        assert_allclose(halves, full, rtol=0, atol=1e-9)


def test_inference_by_row_blocks_matches_whole_array(fitted, monkeypatch):
    # transform, inverse_transform and score_samples work on blocks of
    # CHUNK_ROWS rows to bound memory; with blocks of 7 rows (uneven last
    # block) they must equal one forward pass of the networks over all rows.
    import skvae._chunks as diag

    est, X = fitted
    Y = est._to_representation(X)
    with torch.no_grad():
        mu, _ = est.module_.encoder(torch.as_tensor(Y))
        decoded = est.module_.decoder(mu).numpy()
    whole_score = est.score_samples(X)
    monkeypatch.setattr(diag, "CHUNK_ROWS", 7)
    assert len(diag.chunks(len(X))) > 10
    Z = est.transform(X)
    assert_allclose(Z, mu.numpy(), rtol=1e-12, atol=1e-12)
    assert_allclose(est.inverse_transform(Z), est._from_representation(decoded),
                    rtol=1e-10, atol=1e-10)
    assert_allclose(est.score_samples(X), whole_score, rtol=1e-10)


def test_transform_is_posterior_mean(fitted):
    est, X = fitted
    Y = est._to_representation(X)
    with torch.no_grad():
        mu, _ = est.module_.encoder(torch.as_tensor(Y))
    assert_allclose(est.transform(X), mu.numpy())


def test_refit_is_reproducible(blobs):
    X, _ = blobs
    a = _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    b = _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    assert_array_equal(a.transform(X), b.transform(X))
    assert a.loss_curve_ == b.loss_curve_
    c = _quiet_fit(SphericalClusterVAE(n_clusters=4, **{**FAST, "random_state": 1}), X)
    assert not np.allclose(a.transform(X), c.transform(X))


def test_fit_does_not_change_parameters(blobs):
    # What check_dont_overwrite_parameters tests, with a valid n_clusters.
    X, _ = blobs
    est = SphericalClusterVAE(n_components=1, n_clusters=2, **FAST)
    params = est.get_params()
    keys = set(vars(est))
    _quiet_fit(est, X)
    assert est.get_params() == params
    added = set(vars(est)) - keys
    assert all(k.endswith("_") or k.startswith("_") for k in added)


def test_one_feature():
    # What check_fit2d_1feature tests, with a valid n_clusters.
    X = np.random.default_rng(0).uniform(size=(10, 1)) * 3
    est = _quiet_fit(SphericalClusterVAE(n_clusters=2, **FAST), X)
    assert est.transform(X).shape == (10, 2)
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("method", ["transform", "score_samples", "score"])
def test_1d_input_rejected(fitted, method):
    est, X = fitted
    with pytest.raises(ValueError, match="Expected 2D array"):
        getattr(est, method)(X[0])


def test_fit_does_not_touch_global_torch_state(blobs):
    X, _ = blobs
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    np_state = np.random.get_state()[1].copy()
    _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    assert_array_equal(np.random.get_state()[1], np_state)


# -------------------------------------------------------------------- inverse
def test_inverse_transform_reconstructs(fitted):
    est, X = fitted
    X_hat = est.inverse_transform(est.transform(X))
    assert X_hat.shape == X.shape
    # Clearly better than predicting the mean everywhere (80 Adam steps only).
    assert np.mean((X - X_hat) ** 2) < 0.75 * np.mean((X - X.mean(axis=0)) ** 2)


@pytest.mark.parametrize("shell_map", ["identity", "paper"])
def test_decoded_rows_lie_in_the_shell(blobs, shell_map):
    X, _ = blobs
    est = _quiet_fit(SphericalClusterVAE(n_clusters=4, shell_map=shell_map, **FAST), X)
    Z = np.random.default_rng(0).normal(scale=50, size=(200, 2))  # far-out latents
    X_hat = est.inverse_transform(Z)
    assert np.all(np.isfinite(X_hat))
    if shell_map == "identity":
        # Decoder outputs are standardized rows confined to r_min_ <= |y| <= r_max_.
        lo, hi = est.r_min_, est.r_max_
        norms = np.linalg.norm((X_hat - X.mean(axis=0)) / X.std(axis=0), axis=1)
    else:
        # Paper map: decoded norms are clipped into the training rows' range.
        lo, hi = est.shell_radius_range_
        norms = np.linalg.norm(est.shell_.transform(X_hat), axis=1)
    assert np.all(norms >= lo - 1e-9) and np.all(norms <= hi + 1e-9)


def test_inverse_transform_checks_width(fitted):
    est, _ = fitted
    with pytest.raises(ValueError, match="expecting 2 latent coordinates"):
        est.inverse_transform(np.zeros((3, 5)))


# ---------------------------------------------------------------------- score
def test_score_samples_matches_independent_elbo(fitted):
    est, X = fitted
    Xq = X[:20]
    Y = est._to_representation(Xq)
    with torch.no_grad():
        mu, logvar = (t.numpy() for t in est.module_.encoder(torch.as_tensor(Y)))
    std = np.exp(0.5 * logvar)
    sigma, broad = np.sqrt(est.decoder_variance_), np.sqrt(est.outlier_variance_)
    w = est.outlier_weight
    assert 0 < w < 1
    loglik = []
    for eps in est._score_eps:
        with torch.no_grad():
            y_hat = est.module_.decoder(torch.as_tensor(mu + std * eps)).numpy()
        # The observation model's two components (docs/theory.rst).
        loglik.append(np.logaddexp(
            np.log1p(-w) + norm.logpdf(Y, loc=y_hat, scale=sigma).sum(axis=1),
            np.log(w) + norm.logpdf(Y, loc=y_hat, scale=broad).sum(axis=1)))
    kl = 0.5 * np.sum(mu**2 + std**2 - 1 - logvar, axis=1)
    if isinstance(est, SphericalClusterVAE):
        log_det = est.shell_.log_abs_det_jacobian(Xq)
    else:
        log_det = -np.sum(np.log(X.std(axis=0)))
    expected = np.mean(loglik, axis=0) - kl + log_det
    assert_allclose(est.score_samples(Xq), expected, rtol=1e-9)
    assert est.score(Xq) == pytest.approx(expected.mean())
    assert_array_equal(est.score_samples(Xq), est.score_samples(Xq))


def test_outlier_component_bounds_the_score_of_far_and_typical_rows(fitted):
    # Per noise draw, logaddexp(log(1 - w) + a, log(w) + b) lies between
    # max(log(1 - w) + a, log(w) + b) and that plus log 2, where a and b are
    # the two Gaussians' log-densities: so a typical row loses at most
    # -log(1 - w) against the plain ELBO (w = 0), and a row far from the data
    # scores at least log(w) plus its ELBO under the broad Gaussian alone.
    est, X = fitted
    w = est.outlier_weight
    assert w == 0.01  # the default
    far = X.mean(axis=0) + 100 * X.std(axis=0) * np.r_[1.0, -1.0, 1.0, 0.0, 0.0, 1.0]
    rows = np.r_[X[:30], far[None]]
    mixed = est.score_samples(rows)
    # Training does not use the weight, so the same fitted model scores the
    # plain Gaussian ELBO once it is set to 0 (no refit).
    gaussian = copy.deepcopy(est).set_params(outlier_weight=0.0).score_samples(rows)
    assert np.all(mixed >= gaussian + np.log1p(-w) - 1e-9)
    assert np.all(mixed[:30] <= gaussian[:30] + np.log(2) + 1e-9)
    # The broad Gaussian's ELBO of the far row, written out in numpy.
    Y = est._to_representation(far[None])
    with torch.no_grad():
        mu, logvar = (t.numpy() for t in est.module_.encoder(torch.as_tensor(Y)))
    std, s = np.exp(0.5 * logvar), np.sqrt(est.outlier_variance_)
    loglik = [norm.logpdf(Y, loc=est.module_.decoder(torch.as_tensor(mu + std * e)).detach()
                          .numpy(), scale=s).sum() for e in est._score_eps]
    kl = 0.5 * np.sum(mu**2 + std**2 - 1 - logvar)
    log_det = (est.shell_.log_abs_det_jacobian(far[None])[0] if isinstance(est, SphericalClusterVAE)
               else -np.sum(np.log(X.std(axis=0))))
    broad_elbo = np.mean(loglik) - kl + log_det
    assert mixed[-1] >= np.log(w) + broad_elbo - 1e-6
    assert mixed[-1] > gaussian[-1] + 100  # the far row no longer dominates a mean score
    # The broad variance: four times the modelled rows' variance per entry.
    assert est.outlier_variance_ == pytest.approx(
        max(4 * est.total_variance_ / X.shape[1], est.decoder_variance_))


def _two_blobs_2d():
    rng = np.random.default_rng(0)
    return np.r_[rng.normal([-30, 5], [4, 2], (300, 2)), rng.normal([20, -5], [8, 3], (300, 2))]


def _grid_mass(log_density, half_width, n=401):
    g = np.linspace(-half_width, half_width, n)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    dens = np.exp(log_density(G))
    return G, dens, (g[1] - g[0]) ** 2


def test_vae_score_is_a_density_of_the_original_data():
    # The ELBO lower-bounds log p(x): exp(score_samples) integrates to at most
    # 1 over the original plane; for a model that uses its latent (R well
    # below T) the bound's gap KL(q(z|x) || p(z|x)) keeps it visibly under 1.
    est = _quiet_fit(VAE(n_components=1, hidden_layer_sizes=(32,), max_iter=150,
                         random_state=0), _two_blobs_2d())
    assert est.reconstruction_loss_ < 0.2 * est.total_variance_
    _, dens, cell = _grid_mass(est.score_samples, 150)
    assert 0.5 < dens.sum() * cell <= 1.01


def test_spherical_score_change_of_variables():
    # Integrating exp(score_samples) over the original plane must give the
    # mass that the shell-space ELBO puts inside the shell, computed on a grid
    # in shell space: this checks the Jacobian term end to end. (Mass the
    # Gaussian decoder puts outside the shell maps to no x, so it is < 1.)
    est = _quiet_fit(SphericalClusterVAE(n_components=1, n_clusters=2, shell_map="paper",
                                         hidden_layer_sizes=(32,), max_iter=150,
                                         random_state=0), _two_blobs_2d())
    _, dens_x, cell_x = _grid_mass(est.score_samples, 150, n=601)
    from skvae._forward import elbo

    G, dens_y, cell_y = _grid_mass(
        lambda Y: elbo(est.module_, Y, est._score_eps, est.decoder_variance_,
                       outlier=(est.outlier_weight, est.outlier_variance_)), 2.0, n=801)
    inside = np.linalg.norm(G, axis=1) < 2.0
    inside &= np.linalg.norm(G, axis=1) >= 1.0
    mass_x, mass_y = dens_x.sum() * cell_x, dens_y[inside].sum() * cell_y
    assert mass_x <= 1.0
    assert mass_x == pytest.approx(mass_y, rel=0.1)


def test_identity_shell_score_is_a_density_of_the_original_data():
    # With the default geometry the map is affine: the integral of
    # exp(score_samples) over the original plane equals the integral of the
    # standardized-space ELBO density over its plane (computed on a grid in
    # standardized units), and neither exceeds 1.
    X = _two_blobs_2d()
    est = _quiet_fit(SphericalClusterVAE(n_components=1, n_clusters=2,
                                         hidden_layer_sizes=(32,), max_iter=150,
                                         random_state=0), X)
    _, dens_x, cell_x = _grid_mass(est.score_samples, 150, n=601)
    from skvae._forward import elbo

    Xs_max = np.abs((X - X.mean(axis=0)) / X.std(axis=0)).max() + 3
    _, dens_y, cell_y = _grid_mass(
        lambda Y: elbo(est.module_, Y, est._score_eps, est.decoder_variance_,
                       outlier=(est.outlier_weight, est.outlier_variance_)), Xs_max, n=801)
    mass_x, mass_y = dens_x.sum() * cell_x, dens_y.sum() * cell_y
    assert mass_x <= 1.01 and mass_y <= 1.01
    assert mass_x == pytest.approx(mass_y, rel=0.05)
    assert mass_x > 0.1  # a bound, not a tight one: the constraint is active here


def test_score_is_finite_at_the_mean():
    # The default geometry has a constant Jacobian, so a row at the training
    # mean (e.g. after mean imputation) scores like any other row.
    X, _ = make_blobs(n_samples=240, n_features=6, centers=4, cluster_std=1.5,
                      random_state=0)
    est = _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    s_mean = est.score_samples(X.mean(axis=0, keepdims=True))[0]
    s_rows = est.score_samples(X)
    assert np.isfinite(s_mean)
    assert s_mean < s_rows.max() + 10
    assert_allclose(est.shell_.log_abs_det_jacobian(X), -np.log(X.std(axis=0)).sum())


# --------------------------------------------------------------- certificate
def test_certificate_accepts_trained_and_refuses_collapsed(blobs):
    X, _ = blobs
    est = _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    assert est.collapse_certified_
    assert est.reconstruction_loss_ + 3 * est.reconstruction_loss_se_ < est.collapse_loss_
    cert = collapse_certificate(est, X)
    assert cert.certified and cert.collapse_loss == pytest.approx(est.collapse_loss_)
    # Force the encoder output constant: q(z|x) the same for every x (the
    # MLP's head and the linear path both ignore the input).
    collapsed = pickle.loads(pickle.dumps(est))
    with torch.no_grad():
        collapsed.module_.encoder.head.weight.zero_()
        collapsed.module_.encoder.head.bias.zero_()
        collapsed.module_.encoder.linear.weight.zero_()
    for seed in range(5):
        cert = collapse_certificate(collapsed, X, random_state=seed)
        assert not cert.certified
        # The theorem's bound holds up to Monte Carlo error.
        assert cert.reconstruction_loss > cert.collapse_loss - 4 * cert.standard_error


def test_uncertified_fit_warns_with_its_own_class(blobs):
    X, _ = blobs
    lam = np.linalg.eigvalsh(np.cov(StandardScaler().fit_transform(X), rowvar=False))[-1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Users silence ConvergenceWarning; the collapse warning must survive it.
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = VAE(decoder_variance=4 * lam, **FAST).fit(X)
    kinds = [w.category for w in caught]
    assert PosteriorCollapseWarning in kinds
    assert not issubclass(PosteriorCollapseWarning, ConvergenceWarning)
    assert "posterior collapse is not ruled out" in str(
        next(w for w in caught if w.category is PosteriorCollapseWarning).message)
    assert not est.collapse_certified_ and est.active_units_ == 0


def test_certified_fit_gives_no_collapse_warning(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)
        est = _quiet_fit(SphericalClusterVAE(n_clusters=4, **FAST), X)
    assert est.collapse_certified_


# --------------------------------------------------------------------- sample
def test_sample(fitted):
    est, X = fitted
    S = est.sample(50, random_state=0)
    assert S.shape == (50, X.shape[1])
    assert_array_equal(S, est.sample(50, random_state=0))
    assert not np.allclose(S, est.sample(50, random_state=1))
    # Samples land in the region the data occupy.
    assert np.all(np.abs(S.mean(axis=0) - X.mean(axis=0)) < 2 * X.std(axis=0))
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        est.sample(0)


# ----------------------------------------------------------- names and output
def test_feature_names_and_pandas_output(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = SphericalClusterVAE(n_clusters=4, **FAST).set_output(transform="pandas")
    Z = _quiet_fit(est, df).transform(df)
    assert list(Z.columns) == ["sphericalclustervae0", "sphericalclustervae1"]
    assert_array_equal(est.feature_names_in_, df.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warnings inside
        est.score_samples(df)


def test_get_feature_names_out(fitted):
    est, _ = fitted
    prefix = type(est).__name__.lower()
    assert list(est.get_feature_names_out()) == [f"{prefix}0", f"{prefix}1"]


def test_pipeline_grid_search_without_scorer():
    X, _ = make_blobs(n_samples=150, n_features=5, centers=3, random_state=1)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("vae", SphericalClusterVAE(hidden_layer_sizes=(16,), max_iter=15,
                                                 random_state=0))])
    grid = {"vae__n_clusters": [2, 4], "vae__r_min": [0.5, 1.0], "vae__r_max": [2.0, 3.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid, cv=3, error_score="raise").fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (8,)
    assert np.all(np.isfinite(scores))
    # n_clusters and r_max change the model; an r_min below every training
    # norm does not when the constraint is inactive, and then scores tie exactly.
    assert np.unique(np.round(scores, 6)).size >= 4


# ---------------------------------------------------------------- persistence


# ------------------------------------------------------------------ bad input
def test_unfitted(fitted):
    est, X = fitted
    for method in ("transform", "score_samples", "inverse_transform"):
        with pytest.raises(NotFittedError):
            getattr(clone(est), method)(X)
    with pytest.raises(NotFittedError):
        clone(est).sample()


@pytest.mark.parametrize(
    "params, X, match",
    [
        ({}, [[np.nan, np.nan], [2.0, 3.0], [0.0, 1.0]], r"1 row\(s\) of X \(first: row 0\) have no observed value"),
        ({}, [[np.nan, 1.0], [np.nan, 3.0], [np.nan, 1.0]], r"column\(s\) of X \(first: column 0\) have no observed value"),
        ({}, [[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]], "infinity"),
        ({}, [["1", "b"], ["2", "d"], ["3", "e"]], r"numeric features.*column 1 of X holds 'b' \(row 0\)"),
        ({"r_min": 0.0}, None, "r_min"),
        ({"r_min": "big"}, None, "r_min"),
        ({"shell_map": "radial"}, None, "shell_map"),
        ({"anchor": "median"}, None, "anchor"),
        ({"r_max": 1e-3}, None, "r_min must be smaller than r_max"),
        ({"r_min": -1.0}, None, "r_min"),
        ({"r_min": 2.0, "r_max": 2.0}, None, "r_min must be smaller than r_max"),
        ({"r_min": 3.0, "r_max": 2.0}, None, "r_min must be smaller than r_max"),
        ({"margin": 0.0}, None, "margin"),
        ({"margin": 1.0}, None, "margin"),
        ({"n_clusters": 500}, None, "n_clusters=500 must be <= n_samples=240"),
        ({"device": "banana"}, None, "not a torch device"),
        ({"hidden_layer_sizes": (8, 0)}, None, "hidden_layer_sizes"),
        ({"learning_rate_init": 1e30}, None, "Training diverged.*learning_rate_init"),
        ({"decoder_variance": 1e-300}, None, "'decoder_variance' parameter"),
        ({"margin": 1e-17}, None, "margin=1e-17 is too small"),
        ({"learning_rate_init": 1e39}, None, "'learning_rate_init' parameter"),
        ({"r_max": 1e19}, None, "'r_max' parameter"),
        ({"r_max": 1e40}, None, "'r_max' parameter"),
        ({"r_max": 1e160}, None, "'r_max' parameter"),
        ({"beta": 1e39}, None, "'beta' parameter"),
        ({"hidden_layer_sizes": (2**62,)}, None, "hidden_layer_sizes=.*weights"),
        ({"n_components": 2**62}, None, "n_components=4611686018427387904.*weights"),
        ({"n_clusters": 100}, np.repeat(np.eye(6)[:5], 30, axis=0),
         "n_clusters=100 is more than the 5 distinct"),
    ],
)
def test_bad_input_names_the_problem_and_keeps_fitted_state(fitted, blobs, params, X, match):
    est, X_good = fitted
    if "n_clusters" in params and not isinstance(est, SphericalClusterVAE):
        pytest.skip("VAE has no n_clusters")
    shell_params = ("r_min", "r_max", "margin", "shell_map", "anchor")
    if any(k in params for k in shell_params) and isinstance(est, VAE):
        pytest.skip("VAE has no shell")
    model = pickle.loads(pickle.dumps(est))
    before = model.transform(X_good)
    keys = set(vars(model))
    module = model.module_
    with pytest.raises(ValueError, match=match):
        _quiet_fit(model.set_params(**params), X_good if X is None else np.array(X))
    model.set_params(**{k: est.get_params()[k] for k in params})
    assert set(vars(model)) == keys and model.module_ is module
    assert_array_equal(model.transform(X_good), before)


@pytest.mark.parametrize("Est", [SphericalClusterVAE, VAE])
def test_last_step_is_checked(Est):
    # One epoch of 100 rows is a single step here: the loss before it is
    # finite, the step itself overflows the weights.
    X, _ = make_blobs(n_samples=100, n_features=5, centers=4, random_state=0)
    params = dict(hidden_layer_sizes=(16,), max_iter=1, learning_rate_init=1e10,
                  batch_size=100, random_state=0)
    if Est is SphericalClusterVAE:
        params["n_clusters"] = 4
    with pytest.raises(ValueError, match="Training diverged.*learning_rate_init"):
        _quiet_fit(Est(**params), X)


def test_wrong_number_of_features_at_transform(fitted):
    est, X = fitted
    with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 6"):
        est.transform(X[:, :5])


def test_unavailable_cuda_is_a_clear_error(blobs):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="torch.cuda.is_available"):
        VAE(device="cuda", **FAST).fit(blobs[0])

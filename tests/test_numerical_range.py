"""Finite input gives finite output or a ValueError naming the cause; no data in the pickle."""

import math
import pickle
import re

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from skvae import SphericalClusterVAE, SphericalShellScaler, VAE
from skvae._networks import NormConstraint
from skvae.metrics import collapse_certificate

from _helpers import GEOMETRIES, fit_quietly, geometry_model, reference_rho


SMALL = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)


def _small(name):
    return geometry_model(name, **SMALL)


@pytest.fixture(scope="module")
def model(geometry_fit):
    return geometry_fit


def _all_methods(est, X):
    """Every public output of a fitted model on X, each checked finite and float64."""
    Z = est.transform(X)
    outputs = [Z, est.inverse_transform(Z), est.score_samples(X), est.sample(3, random_state=0),
               np.array([est.score(X), est.reconstruction_loss_, est.decoder_variance_,
                         est.mutual_information_]), est.kl_per_dimension_]
    for out in outputs:
        assert out.dtype == np.float64 and np.all(np.isfinite(out))
    return Z


def _distance(row, mean, scale):
    """Standardized norm of one row, by an overflow-free route (divide by 1e150 first)."""
    return 1e150 * np.linalg.norm(((row / 1e150) - mean / 1e150) / scale)


# ------------------------------------------------- 1. far rows: finite or named
def test_far_row_transform_is_finite(model):
    name, est = model
    Z = est.transform(np.full((1, 5), 1e155))
    assert np.all(np.isfinite(Z))  # was NaN with the paper's map


def test_far_row_score_is_finite_or_names_the_row(model):
    name, est = model
    big = np.vstack([np.zeros(5), np.full(5, 1e155)])
    scaler = est.shell_ if name != "vae" else est.scaler_
    if name == "paper":
        # The paper's map puts every row inside the shell: a finite bound.
        assert np.all(np.isfinite(est.score_samples(big)))
        return
    d = re.escape(f"{_distance(big[1], scaler.mean_, scaler.scale_):.3g}")
    with pytest.raises(ValueError, match=rf"score_samples: 1 of 2 row\(s\).*row 1\): its "
                       rf"standardized distance from the training mean is {d}"):
        est.score_samples(big)  # was -inf / NaN


def test_far_latent_inverse_transform(model):
    name, est = model
    Z = np.full((2, 2), 1e160)
    try:
        out = est.inverse_transform(Z)
    except ValueError as exc:  # the VAE's unbounded decoder may overflow
        assert name == "vae" and "latent norm is 1.41e+160" in str(exc)
        return
    assert np.all(np.isfinite(out))  # was "Input X contains NaN" (paper map)
    if name != "vae" and np.isfinite(est.r_max_):
        # Decoded rows obey a bounded shell however far out z is.
        norms = np.linalg.norm(est.shell_.transform(out) if name == "paper"
                               else (out - est.shell_.mean_) / est.shell_.scale_, axis=1)
        assert np.all(norms <= est.r_max_ * (1 + 1e-9))


def test_extreme_decoder_is_named_even_for_typical_latents(X):
    # A decoder whose outputs are extreme (as after a diverging fit) times a
    # feature scale of 1e300 overflows for an ordinary latent row; the
    # message must not blame the row.
    Xe = X.copy()
    Xe[:, 0] *= 1e300
    est = fit_quietly(_small("vae"), Xe)
    with torch.no_grad():
        est.module_.decoder.head.weight.mul_(1e20)
    with pytest.raises(ValueError, match="typical of the prior.*scales up to .*e\\+300"
                       ".*lower learning_rate_init"):
        est.sample(2, random_state=0)


def test_norm_layer_keeps_nan_and_bounds_huge_rows():
    layer = NormConstraint(1.0, 3.0, 1.5).double().eval()
    u = torch.tensor([[np.nan, 1.0], [1e200, 1e200], [0.0, 0.0]], dtype=torch.float64)
    out = layer(u)
    assert torch.isnan(out[0]).all()  # a NaN row used to become r_min * e_1
    assert_allclose(out[1].numpy(), [3 / np.sqrt(2)] * 2, rtol=1e-12)
    assert_allclose(out[2].numpy(), [1.0, 0.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mixed", [False, True])
def test_norm_layer_over_the_whole_float_range(dtype, mixed):
    # Rows of every magnitude, from denormal to near overflow, alone in a
    # batch or beside ordinary rows, against the profile applied to the
    # exact norm (math.hypot, which neither overflows nor underflows).
    r_min, r_max, knee = 1.0, 1e6, 1.5
    layer = NormConstraint(r_min, r_max, knee).to(dtype)
    info = torch.finfo(dtype)
    low, high = math.log10(info.smallest_normal) - 6, math.log10(info.max) - 1
    direction = np.array([0.36, -0.48, 0.8])
    ordinary = np.array([[1.0, 2.0, 2.0], [0.1, 0.0, 0.2]])
    for exponent in np.linspace(low, high, 41):
        rows = [direction * 10.0**exponent] + (list(ordinary) if mixed else [])
        u = torch.tensor(np.array(rows), dtype=dtype)
        out = layer(u).double().numpy()
        for row, got in zip(u.double().numpy(), out):
            s = math.hypot(*row)
            if s <= info.tiny ** 0.5:  # no direction: r_min * e_1
                expected = np.array([r_min, 0.0, 0.0])
            else:
                expected = row / s * float(reference_rho(s, r_min, r_max, knee))
            assert_allclose(got, expected, rtol=1e-5 if dtype == torch.float32 else 1e-12,
                            atol=0, err_msg=f"|u| = {s:.3g}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norm_layer_with_many_denormal_squares(dtype):
    # 4096 equal entries whose squares are denormal, though the row's norm
    # is twice the smallest the layer gives a direction: a plain float sum
    # of squares loses digits there.
    info = torch.finfo(dtype)
    entry = 2 * info.tiny ** 0.5 / 64
    u = torch.full((1, 4096), entry, dtype=dtype)
    layer = NormConstraint(1.0, math.inf, 1.5).to(dtype)
    s = 64 * entry
    expected = (1.0 + s / 3) / 64
    assert_allclose(layer(u).double().numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("column, value", [(0, "constant"), (1, "spread")])
def test_extreme_training_columns(X, name, column, value):
    # A column constant at 1e300, or one whose spread is 1e200: the moments
    # used to overflow and every output was inf or NaN.
    Xe = X.copy()
    if value == "constant":
        Xe[:, column] = 1e300
    else:
        Xe[:, column] *= 1e200
    est = fit_quietly(_small(name), Xe)
    _all_methods(est, Xe)
    scaler = est.shell_ if name != "vae" else est.scaler_
    if value == "constant":
        assert scaler.scale_[column] == 1e300
        assert scaler.mean_[column] == pytest.approx(1e300, rel=1e-14)
    else:
        assert scaler.scale_[column] == pytest.approx(1e200 * X[:, column].std(), rel=1e-12)
        assert scaler.mean_[column] == pytest.approx(1e200 * X[:, column].mean(), rel=1e-12)


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("factor", [1e300, 1e-310])
def test_data_near_the_float64_limits_fits(X, name, factor):
    # Both used to be reported as "(near) zero variance" or a divergence.
    Xe = X * factor
    est = fit_quietly(_small(name), Xe)
    _all_methods(est, Xe)
    scaler = est.shell_ if name != "vae" else est.scaler_
    # Denormals carry ~14 fewer bits, hence the looser tolerance there.
    assert_allclose(scaler.scale_, factor * X.std(axis=0), rtol=1e-12 if factor > 1 else 1e-9)
    ref = fit_quietly(_small(name), X)
    assert est.total_variance_ == pytest.approx(ref.total_variance_, rel=1e-9)


def test_rounding_level_spread_is_zero_variance():
    X = 1.0 + np.arange(10)[:, None] * np.finfo(float).eps * np.ones((1, 3))
    for name in GEOMETRIES:
        with pytest.raises(ValueError, match="zero variance: every feature is constant"):
            fit_quietly(_small(name), X)


# ------------------------------------------------- 2. the paper's map at the mean
def test_score_at_the_training_mean(model):
    name, est = model
    scaler = est.shell_ if name != "vae" else est.scaler_
    at_mean = scaler.mean_[None, :]
    if name == "paper":
        with pytest.raises(ValueError, match="equal the training mean.*sphere"):
            est.score_samples(at_mean)  # was +inf
    else:
        assert np.isfinite(est.score_samples(at_mean)).all()


# ----------------------------------------- 4. settings that passed validation
@pytest.mark.parametrize("params", [{"free_bits": 1e39}, {"beta": 1e31},
                                    {"decoder_variance": 1e-31}])
def test_float32_bounds_on_vae_parameters(X, params):
    (name,) = params
    with pytest.raises(ValueError, match=f"'{name}' parameter of VAE"):
        VAE(**params).fit(X)


def test_certificate_of_a_non_skvae_estimator(X):
    with pytest.raises(ValueError, match="'estimator' parameter of collapse_certificate"):
        collapse_certificate(PCA().fit(X), X)  # was AttributeError


# -------------------------------------------------------- 5. messages name the cause
def test_non_numeric_column_is_named_in_a_dataframe(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=list("abcde")).astype(object)
    df.loc[7, "d"] = "A"
    for name in GEOMETRIES:
        with pytest.raises(ValueError, match=r"column 3 \('d'\) of X holds 'A' \(row 7\)"):
            fit_quietly(_small(name), df)


def test_early_stopping_hold_out_is_named(X):
    # The band is fitted on every row, the held-out ones included, so
    # n_clusters is bounded by all the rows of X, not the training share.
    X = X[:100]
    fit_quietly(SphericalClusterVAE(n_clusters=95, early_stopping=True, **SMALL), X)
    with pytest.raises(ValueError, match="n_clusters=101 must be <= n_samples=100"):
        fit_quietly(SphericalClusterVAE(n_clusters=101, early_stopping=True, **SMALL), X)
    same = np.repeat(X[:1], 10, axis=0)
    same[3] += 1.0  # the only distinct row; validation_fraction=0.5 may hold it out
    for seed in range(20):
        try:
            fit_quietly(VAE(early_stopping=True, validation_fraction=0.5,
                     **{**SMALL, "random_state": seed}), same)
        except ValueError as exc:
            assert "rows left for training after early_stopping" in str(exc)
            return
    pytest.fail("no seed held out the distinct row")


# --------------------------------------------------- 6. SphericalShellScaler
def test_scaler_scales_a_tiny_column_like_standard_scaler():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    X[:, 0] *= 8.7e-17  # varies by 100% of its size; it was treated as constant
    assert_allclose(SphericalShellScaler().fit(X).scale_, StandardScaler().fit(X).scale_,
                    rtol=1e-12)


def test_scaler_on_denormal_data_keeps_rows_apart():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)) * 1e-310
    scaler = SphericalShellScaler().fit(X)
    Y = scaler.transform(X)
    assert len(np.unique(Y.round(6), axis=0)) == 30  # was 1
    assert_allclose(scaler.inverse_transform(Y), X, rtol=0, atol=1e-315)


def test_scaler_saturated_rows_are_named_and_moderate_rows_invert():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    scaler = SphericalShellScaler().fit(X)
    m = scaler.radius_scale_
    direction = np.array([[1.0, 2.0, 2.0]]) / 3
    moderate = scaler.mean_ + 1e6 * m * direction * scaler.scale_
    assert_allclose(scaler.inverse_transform(scaler.transform(moderate)), moderate, rtol=1e-8)
    far = scaler.mean_ + 1e17 * m * direction * scaler.scale_
    with pytest.raises(ValueError, match="outer radius.*cannot be inverted"):
        scaler.inverse_transform(scaler.transform(far))


def test_failed_scaler_fit_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=["a", "b", "c"])
    scaler = SphericalShellScaler().fit(X)
    state = pickle.dumps(scaler)
    bad = X.to_numpy().copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scaler.fit(bad)
    assert list(scaler.feature_names_in_) == ["a", "b", "c"]
    assert pickle.dumps(scaler) == state


# --------------------------------------------------------- 7. no data in the pickle


# ------------------------------------------------- 8. a GPU index the machine lacks


# ----------------------------------------------- 9. what is bitwise reproducible
def test_bitwise_reproducible_refit(X):
    a = fit_quietly(_small("identity"), X)
    b = fit_quietly(_small("identity"), X)
    assert_array_equal(a.transform(X), b.transform(X))
    assert_array_equal(a.score_samples(X), b.score_samples(X))


# ------------------------------------------- the zero-variance check's fast path
def _all_constant(X):
    """The zero-variance criterion written out: sklearn's ``_is_constant_feature``
    on each column divided by its largest |x|, independent of skvae's code."""
    X = np.asarray(X, dtype=np.float64)
    peak = np.abs(X).max(axis=0)
    U = X / np.where(peak > 0, peak, 1.0)
    n, eps = X.shape[0], np.finfo(np.float64).eps
    mean, var = U.mean(axis=0), U.var(axis=0)
    return bool(np.all(var <= n * eps * var + (n * mean * eps) ** 2))


def _zero_variance_cases():
    rng = np.random.default_rng(0)
    eps = np.finfo(float).eps
    steps = np.arange(10)[:, None] * eps * np.ones((1, 3))
    tiny = rng.normal(size=(50, 3))
    tiny[:, 0] *= 8.7e-17
    return {
        "normal": rng.normal(size=(500, 3)),
        "rounding steps at 1": 1.0 + steps,
        "rounding steps at 1e300": 1e300 * (1.0 + steps),
        "rounding steps at 1e-300": 1e-300 * (1.0 + steps),
        "constant and rounding": np.column_stack([np.full(10, 3.0), 1.0 + steps[:, 0]]),
        "spread 1e200 at 1e300": 1e300 + 1e200 * rng.normal(size=(40, 2)),
        "tiny column": tiny,
        "denormals": rng.normal(size=(30, 4)) * 1e-310,
        "the float64 limits": np.array([[1.7e308, -1.7e308], [-1.7e308, 1.7e308]] * 5),
        "float32": rng.normal(size=(100, 3)).astype(np.float32),
        "zeros": np.zeros((20, 2)),
    }


@pytest.mark.parametrize("case", sorted(_zero_variance_cases()))
def test_zero_variance_check_agrees_with_the_criterion(case):
    from skvae._scaling import check_not_constant

    X = _zero_variance_cases()[case]
    if _all_constant(X):
        with pytest.raises(ValueError, match="zero variance"):
            check_not_constant(X)
    else:
        check_not_constant(X)


@pytest.mark.parametrize("n", [10, 1000, 20_000])
@pytest.mark.parametrize("magnitude", [1e-300, 1.0, 1e300])
def test_fast_zero_variance_path_never_passes_a_constant_column(n, magnitude):
    # Two values a relative spread apart, swept across the criterion's
    # threshold: the two-reduction test may say "varies" only where the
    # criterion does, and it does say so well above the threshold.
    from skvae._scaling import _a_column_clearly_varies

    pattern = (np.arange(n) % 2).astype(float)[:, None]
    said = []
    for spread in np.geomspace(1e-17, 1e-4, 80):
        X = magnitude * (1.0 + spread * pattern)
        varies = _a_column_clearly_varies(X)
        if varies:
            assert not _all_constant(X), spread
        said.append(varies)
    assert said[-1] and not said[0]

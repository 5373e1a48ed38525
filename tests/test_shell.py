"""SphericalShellScaler: the map, its exact inverse, and its log-Jacobian."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skvae import SphericalShellScaler


def _reference_map(x, mean, scale, r_min, r_max, m):
    """The paper's radial map (docs/theory.rst) written independently, in torch, for autograd."""
    xs = (x - mean) / scale
    r = torch.linalg.vector_norm(xs)
    rho = r_min + (r_max - r_min) * r / (r + m)
    return rho * xs / r


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * [1.0, 3.0, 0.1, 10.0, 2.0] + [0, 5, -2, 100, 1]
    return X, SphericalShellScaler(r_min=0.5, r_max=3.0).fit(X)


def test_fitted_statistics_match_numpy(fitted):
    X, scaler = fitted
    assert_allclose(scaler.mean_, X.mean(axis=0))
    assert_allclose(scaler.scale_, X.std(axis=0))
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    assert scaler.radius_scale_ == pytest.approx(np.median(np.linalg.norm(Xs, axis=1)))


def test_rows_land_in_shell_and_keep_direction(fitted):
    X, scaler = fitted
    rng = np.random.default_rng(1)
    X_new = np.vstack([X, rng.normal(scale=1e4, size=(50, 5))])
    Y = scaler.transform(X_new)
    norms = np.linalg.norm(Y, axis=1)
    assert np.all(norms >= 0.5) and np.all(norms < 3.0)
    Xs = (X_new - scaler.mean_) / scaler.scale_
    cos = np.sum(Y * Xs, axis=1) / (norms * np.linalg.norm(Xs, axis=1))
    assert_allclose(cos, 1.0, rtol=1e-12)


def test_radial_profile_closed_form(fitted):
    X, scaler = fitted
    Xs = (X - scaler.mean_) / scaler.scale_
    r = np.linalg.norm(Xs, axis=1)
    m = scaler.radius_scale_
    assert_allclose(
        np.linalg.norm(scaler.transform(X), axis=1), 0.5 + 2.5 * r / (r + m), rtol=1e-12
    )
    # The median training row sits in the middle of the shell (to the gap
    # between the two middle rows, as n is even).
    assert np.median(np.linalg.norm(scaler.transform(X), axis=1)) == pytest.approx(
        1.75, abs=1e-3)


@pytest.mark.parametrize("spread", [1e-3, 1.0, 1e3, 1e5])
def test_inverse_is_exact_for_any_rows(fitted, spread):
    X, scaler = fitted
    rng = np.random.default_rng(2)
    X_new = scaler.mean_ + rng.normal(size=(100, 5)) * scaler.scale_ * spread
    assert_allclose(scaler.inverse_transform(scaler.transform(X_new)), X_new,
                    rtol=1e-9, atol=1e-9 * np.abs(X_new).max())


def test_row_at_the_mean(fitted):
    X, scaler = fitted
    Y = scaler.transform(scaler.mean_[None, :])
    assert_allclose(Y, [[0.5, 0, 0, 0, 0]])
    assert_allclose(scaler.inverse_transform(Y), scaler.mean_[None, :])
    # The map blows the mean up into a sphere: log|det J| is +inf there, which
    # is an error that says so rather than an infinite return value.
    with pytest.raises(ValueError, match="row 1.*equal the training mean.*sphere"):
        scaler.log_abs_det_jacobian(np.vstack([X[:1], scaler.mean_]))


def test_log_det_matches_autograd_jacobian(fitted):
    X, scaler = fitted
    mean, scale = torch.tensor(scaler.mean_), torch.tensor(scaler.scale_)
    rng = np.random.default_rng(3)
    points = np.vstack([X[:5], scaler.mean_ + 40 * rng.normal(size=(3, 5))])
    expected = []
    for x in points:
        J = torch.autograd.functional.jacobian(
            lambda v: _reference_map(v, mean, scale, 0.5, 3.0, scaler.radius_scale_),
            torch.tensor(x),
        )
        expected.append(torch.linalg.slogdet(J)[1].item())
    assert_allclose(scaler.log_abs_det_jacobian(points), expected, rtol=1e-9)


def test_log_det_one_feature():
    X = np.arange(10.0)[:, None]
    scaler = SphericalShellScaler().fit(X)
    x = torch.tensor([7.0], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(
        lambda v: _reference_map(v, torch.tensor(scaler.mean_), torch.tensor(scaler.scale_),
                                 1.0, 2.0, scaler.radius_scale_), x)
    assert scaler.log_abs_det_jacobian([[7.0]])[0] == pytest.approx(
        float(torch.log(J.abs()).squeeze()))


def test_constant_feature_gets_unit_scale_or_its_magnitude():
    X = np.c_[np.arange(6.0), np.full(6, 0.3), np.full(6, -4.0), np.full(6, 1e300)]
    scaler = SphericalShellScaler().fit(X)
    # 1 as StandardScaler up to magnitude 1, the magnitude beyond, so that
    # the rounding residual of x - mean stays at rounding level.
    assert_allclose(scaler.scale_, [np.arange(6.0).std(), 1.0, 4.0, 1e300])
    assert np.all(np.abs(scaler.standardize(X)[:, 1:]) < 1e-15)
    assert_allclose(scaler.inverse_transform(scaler.transform(X)), X)


def test_without_centring_or_scaling():
    X = np.random.default_rng(4).normal(3.0, 2.0, size=(30, 3))
    scaler = SphericalShellScaler(with_mean=False, with_std=False).fit(X)
    assert_allclose(scaler.mean_, 0)
    assert_allclose(scaler.scale_, 1)
    assert_allclose(scaler.inverse_transform(scaler.transform(X)), X)


def test_inverse_rejects_rows_off_the_shell(fitted):
    _, scaler = fitted
    with pytest.raises(ValueError, match="inside the shell"):
        scaler.inverse_transform(np.full((1, 5), 10.0))
    with pytest.raises(ValueError, match="inside the shell"):
        scaler.inverse_transform(np.zeros((1, 5)))


@pytest.mark.parametrize("r_min, r_max", [(2.0, 2.0), (3.0, 1.0)])
def test_radii_must_be_ordered(r_min, r_max):
    with pytest.raises(ValueError, match="r_min must be smaller than r_max"):
        SphericalShellScaler(r_min, r_max).fit(np.eye(3))


def test_nonpositive_r_min_is_rejected():
    with pytest.raises(ValueError, match="r_min"):
        SphericalShellScaler(r_min=0.0).fit(np.eye(3))

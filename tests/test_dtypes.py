"""float32 in, float32 out for every method (as PCA); other dtypes give float64."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skvae import SphericalShellScaler


@pytest.fixture(scope="module")
def est(geometry_fit):
    return geometry_fit[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimator_methods_keep_float32(est, X, dtype):
    Xd = X.astype(dtype)
    Z = est.transform(Xd)
    assert Z.dtype == dtype
    assert est.inverse_transform(Z).dtype == dtype
    assert est.score_samples(Xd).dtype == dtype


def test_float32_output_is_the_float64_output_rounded(est, X):
    # The computation runs in float64 either way; float32 is only the output.
    X32 = X.astype(np.float32)
    for method in (est.transform, est.score_samples):
        assert_allclose(method(X32), method(X32.astype(np.float64)).astype(np.float32),
                        rtol=1e-6)


def test_integer_input_gives_float64(est, X):
    Xi = np.round(X * 10).astype(np.int64)
    assert est.transform(Xi).dtype == np.float64
    assert est.score_samples(Xi).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shell_scaler_methods_keep_float32(X, dtype):
    Xd = X.astype(dtype)
    scaler = SphericalShellScaler().fit(Xd)
    Y = scaler.transform(Xd)
    assert Y.dtype == dtype
    assert scaler.standardize(Xd).dtype == dtype
    assert scaler.log_abs_det_jacobian(Xd).dtype == dtype
    back = scaler.inverse_transform(Y)
    assert back.dtype == dtype
    assert_allclose(back, Xd, rtol=1e-4 if dtype is np.float32 else 1e-10, atol=1e-4)


def test_float32_overflow_is_named(est, X):
    # The log-density of a row 1e25 out is about -1e50: finite in float64,
    # beyond float32, so float32 input gets an error that says so.
    if est.get_params().get("shell_map") == "paper":
        pytest.skip("the paper's map keeps every score bounded")
    far = np.full((1, 5), 1e25)
    assert np.isfinite(est.score_samples(far)).all()
    with pytest.raises(ValueError, match=r"score_samples: 1 of 1 row.*in float32"):
        est.score_samples(far.astype(np.float32))

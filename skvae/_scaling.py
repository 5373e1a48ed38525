"""Column standardization and row norms that neither overflow nor underflow in float64."""

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._missing import has_missing
from ._validation import non_finite_rows

_EPS = np.finfo(np.float64).eps
#: Below this a sum of squares may have lost digits to underflow.
_SMALL = np.sqrt(np.finfo(np.float64).tiny)


def row_norms(A):
    """Euclidean norm of each row of ``A``, exact where ``np.linalg.norm`` is.

    ``np.linalg.norm`` squares the entries, so rows with entries beyond about
    1e154 give ``inf`` and rows of denormals give 0 or lose their digits.
    Those rows (and only those, so ordinary rows keep numpy's bits) are
    recomputed as ``peak * ||row / peak||`` with ``peak`` the largest
    absolute entry. A row with an infinite entry has norm ``inf``.
    """
    A = np.asarray(A, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(A, axis=1)
    redo = ~np.isfinite(norms) | (norms < _SMALL)
    if np.any(redo):
        rows = A[redo]
        peak = np.max(np.abs(rows), axis=1) if rows.shape[1] else np.zeros(len(rows))
        ok = (peak > 0) & np.isfinite(peak)
        safe = np.where(ok, peak, 1.0)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = safe * np.linalg.norm(rows / safe[:, None], axis=1)
        norms[redo] = np.where(ok, scaled, peak)
    return norms


def row_polar(A):
    """``(log_norm, direction)`` of each row of ``A``, finite for every finite row.

    The norm itself may exceed float64 (entries near 1e308 in many columns);
    its logarithm and the unit direction ``A / ||A||`` never do. A zero row
    has ``log_norm = -inf`` and direction 0.
    """
    A = np.asarray(A, dtype=np.float64)
    peak = np.max(np.abs(A), axis=1) if A.shape[1] else np.zeros(A.shape[0])
    safe = np.where(peak > 0, peak, 1.0)[:, None]
    U = A / safe
    n_u = np.linalg.norm(U, axis=1)
    with np.errstate(divide="ignore"):
        log_norm = np.log(peak) + np.log(np.where(peak > 0, n_u, 1.0))
    return log_norm, U / np.where(n_u > 0, n_u, 1.0)[:, None]


def _peak_scaled(X):
    """``(X / unit, peak, unit)``: columns divided by their largest |x| (1 if all zero).

    Missing entries (NaN) are left out of the peak and stay NaN.
    """
    peak = np.nanmax(np.abs(X), axis=0) if has_missing(X) else np.max(np.abs(X), axis=0)
    unit = np.where(peak > 0, peak, 1.0)
    return X / unit, peak, unit


def _moments(U):
    """``(mean, var, count)`` of the columns of U over their observed (non-NaN) entries."""
    if not has_missing(U):
        return U.mean(axis=0), U.var(axis=0), U.shape[0]
    return np.nanmean(U, axis=0), np.nanvar(U, axis=0), np.sum(~np.isnan(U), axis=0)


def constant_columns(U):
    """Columns of ``U`` (scaled so that max |U| <= 1) whose spread is only rounding.

    scikit-learn's criterion (``sklearn.preprocessing._data._is_constant_feature``):
    ``var <= n * eps * var + (n * mean * eps) ** 2``, applied to columns
    divided by their largest absolute value so that it is the same at every
    magnitude: a column of 1e-16s that varies by 100% is not constant, a
    column of 1e300s that varies in its last bit is. Moments and ``n`` are
    over each column's observed (non-NaN) entries.
    """
    mean, var, count = _moments(U)
    bound = count * _EPS * var + (count * mean * _EPS) ** 2
    return var <= bound


def standard_scale(X, *, with_mean=True, with_std=True):
    """Column means and standard deviations of ``X``, finite for any finite X.

    Returns ``(mean, scale, constant)``. The moments are taken of the columns
    divided by their largest absolute value, so neither ``sum(x)`` nor
    ``sum(x ** 2)`` overflows (data near 1e300) or underflows (denormals).
    Constant columns (see :func:`constant_columns`) get scale
    ``max(1, max |x|)``: 1 as in :class:`~sklearn.preprocessing.StandardScaler`
    for values up to 1 in size, and their magnitude beyond, so that they
    standardize to rounding noise of size ~1e-16 at any magnitude. Missing
    entries (NaN) are left out: each column's moments are those of its
    observed entries, as in StandardScaler.
    """
    n_samples, n_features = X.shape
    U, peak, unit = _peak_scaled(X)
    missing = has_missing(U)
    if with_mean:
        with np.errstate(over="ignore"):
            mean = np.nanmean(X, axis=0) if missing else X.mean(axis=0)
        # numpy's own mean wherever its sum fits in float64, so that a row
        # equal to the mean standardizes to exactly 0 as with StandardScaler.
        mean = np.where(np.isfinite(mean), mean, unit * _moments(U)[0])
    else:
        mean = np.zeros(n_features)
    constant = constant_columns(U)
    if not with_std:
        return mean, np.ones(n_features), constant
    scale = unit * (np.nanstd(U, axis=0) if missing else U.std(axis=0))
    # A spread that is representable relative to the column but whose
    # absolute size underflows (denormal data) counts as constant too.
    constant |= ~(scale > 0)
    # Constant columns: scale 1 as in StandardScaler, or their magnitude when
    # that is larger, so that x - mean (rounding noise, about eps * |x|)
    # stays at rounding level after scaling (1e300 - mean is ~1e284).
    return mean, np.where(constant, np.maximum(peak, 1.0), scale), constant


def _a_column_clearly_varies(X):
    """Whether some column of ``X`` (complete rows) spreads too far to pass :func:`constant_columns`.

    A column whose values span ``r = max - min`` has variance at least
    ``r**2 / (2 n)``: its two extreme values alone contribute that much.
    Divided by its largest ``|x|`` (``peak``), :func:`constant_columns`
    calls it constant only if ``var <= n eps var + (n mean eps)**2``, at
    most ``n eps var + (n eps)**2``, which that variance exceeds once
    ``r / peak > n eps sqrt(2 n / (1 - n eps))``. The test asks for twice
    that, so that the rounding of the computed variance cannot decide it.
    Two reductions and no copy of ``X``; False only means "not sure".
    """
    n = X.shape[0]
    ne = n * _EPS
    if n == 0 or not ne < 0.5:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        top = np.max(X, axis=0).astype(np.float64)
        bottom = np.min(X, axis=0).astype(np.float64)
        if np.isnan(bottom).any():  # a missing entry (min propagates NaN, as in has_missing)
            return False
        peak = np.maximum(np.abs(top), np.abs(bottom))
        spread = (top - bottom) / np.where(peak > 0, peak, 1.0)
    return bool(np.any(spread > 2.0 * ne * np.sqrt(2.0 * n / (1.0 - ne))))


def check_not_constant(X):
    """Raise a ValueError if every column of X is constant up to float64 rounding.

    Most data show a varying column in two reductions
    (:func:`_a_column_clearly_varies`); the rest get the exact test.
    """
    if _a_column_clearly_varies(X):
        return
    if np.all(constant_columns(_peak_scaled(X)[0])):
        raise ValueError(
            "X has zero variance: every feature is constant (up to float64 "
            "rounding), so there is nothing for the VAE to encode and the "
            "feasible band is empty."
        )


def _redo_rows(out, redo):
    """Replace the rows of ``out`` that are not finite by ``redo(mask)`` (same rows)."""
    bad = non_finite_rows(out)
    if np.any(bad):
        with np.errstate(over="ignore", invalid="ignore"):
            out[bad] = redo(bad)
    return out


def standardize(X, mean, scale):
    """``(X - mean) / scale``; rows where that overflows are redone in scaled units.

    X - mean can overflow when both are near the float64 limit; with every
    term divided first by ``u = max(|mean|, scale)``, ``X / u - mean / u``
    cannot (unless the result itself is out of range).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = (X - mean) / scale
    u = np.maximum(np.abs(mean), scale)
    return _redo_rows(out, lambda rows: (X[rows] / u - mean / u) / (scale / u))


def unstandardize(Y, mean, scale):
    """``Y * scale + mean``; rows where that overflows are redone in scaled units."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = Y * scale + mean
    u = np.maximum(np.abs(mean), scale)
    return _redo_rows(out, lambda rows: (Y[rows] * (scale / u) + mean / u) * u)


class Standardizer(BaseEstimator):
    """Fitted standardization ``(x - mean_) / scale_`` with its inverse and Jacobian.

    The data map of :class:`VAE`; :class:`StandardizedShell` adds the shell
    radii to it. Fitted on validated float64 rows.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Column means and standard deviations (``max(1, max |x|)`` for
        constant columns).
    """

    def fit(self, X):
        """Fit ``mean_`` and ``scale_`` on validated rows."""
        self.mean_, self.scale_, _ = standard_scale(X)
        return self

    def standardize(self, X):
        """``(X - mean_) / scale_`` of validated rows."""
        return standardize(X, self.mean_, self.scale_)

    transform = standardize

    def inverse_transform(self, Y):
        """Back to original units: ``Y * scale_ + mean_``."""
        return unstandardize(Y, self.mean_, self.scale_)

    def log_abs_det_jacobian(self, X):
        """``-sum(log scale_)`` for every row: the map is affine.

        A row with missing entries (NaN) is a density on its observed
        columns only, so the sum runs over those.
        """
        if has_missing(X):
            return -((~np.isnan(X)) @ np.log(self.scale_))
        return np.full(X.shape[0], -np.log(self.scale_).sum())

    # The internal protocol of the data maps (validated rows in, float64 out),
    # shared with SphericalShellScaler.
    _transform = standardize
    _inverse_transform = inverse_transform
    _log_abs_det_jacobian = log_abs_det_jacobian


def radial(r, r_min, r_max, m):
    """The paper's radial profile ``rho(r) = r_min + (r_max - r_min) r / (r + m)``.

    ``r = inf`` gives ``r_max``. ``r`` is a numpy array or a torch tensor
    (the export module uses this).
    """
    if torch.is_tensor(r):
        ratio = torch.where(torch.isinf(r), 1.0, r / (r + m))
    else:
        with np.errstate(invalid="ignore"):
            ratio = np.where(np.isinf(r), 1.0, r / (r + m))
    return r_min + (r_max - r_min) * ratio


def inverse_radial(rho, r_min, r_max, m):
    """``r`` with ``radial(r) = rho``, for ``r_min <= rho < r_max`` (numpy or torch).

    ``m * u / (1 - u)`` with ``u = (rho - r_min) / (r_max - r_min)``, written
    so that ``1 - u`` is formed without cancellation.
    """
    return m * (rho - r_min) / (r_max - rho)


def origin_to_e1(Y, at_origin, r_min):
    """Rows of ``Y`` flagged in ``at_origin`` replaced by ``r_min * e_1``.

    The shell's rule for a row with no direction (the origin, or a decoder
    output of norm ~0): every point of the shell is then equally near, and
    the first basis direction is the convention. ``Y`` is a numpy array or a
    torch tensor; ``at_origin`` a boolean mask of its rows, shape ``(n,)`` or
    ``(n, 1)``. NaN rows that are not flagged stay NaN.
    """
    if torch.is_tensor(Y):
        e1 = torch.zeros_like(Y[:1])
        e1[0, 0] = r_min
        return torch.where(at_origin.reshape(-1, 1), e1, Y)
    Y = np.array(Y, dtype=np.float64)
    at_origin = np.asarray(at_origin).reshape(-1)
    Y[at_origin] = 0.0
    Y[at_origin, 0] = r_min
    return Y

"""The data maps into a spherical shell: standardization alone (default) or the paper's radial map."""

import numbers

import numpy as np
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._scaling import (
    Standardizer, inverse_radial, origin_to_e1, radial, row_norms, row_polar, standard_scale,
    standardize, unstandardize,
)
from ._missing import zero_filled
from ._validation import (
    FLOAT_DTYPES, check_finite_output, fit_or_restore, non_finite_rows, validate_numeric,
)


#: Largest accepted radius, in standardized units. Standardized rows have
#: norms of order sqrt(n_features); radii beyond this only overflow float32.
MAX_RADIUS = 1e6


def _log1p_ratio(log_r, m):
    """``log(1 + m / r)`` from ``log r``, without forming r (which may overflow)."""
    with np.errstate(over="ignore"):
        return np.log1p(m * np.exp(-log_r))


class SphericalShellScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardize features, then map every row into a spherical shell.

    A standardized row ``x~`` with norm ``r`` is sent to
    ``y = rho(r) * x~ / r`` with ``rho(r) = r_min + (r_max - r_min) * r / (r + m)``,
    where ``m`` is the median norm of the standardized training rows. ``rho``
    increases strictly from ``[0, inf)`` onto ``[r_min, r_max)``, so every row,
    seen or unseen, lands in the shell ``r_min <= ||y|| < r_max`` without
    clipping, directions are kept, and the map is invertible.

    Read more in the :ref:`User Guide <theory>`.

    Parameters
    ----------
    r_min : float, default=1.0
        Inner radius of the shell. Must be positive.
    r_max : float, default=2.0
        Outer radius of the shell. Must be larger than ``r_min``.
    with_mean : bool, default=True
        Centre the features before the radial map.
    with_std : bool, default=True
        Scale the features to unit variance before the radial map. Constant
        features get scale ``max(1, max |x|)`` (1, as in StandardScaler, for
        values up to 1 in size), so they standardize to 0 up to rounding.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Per-feature mean (zeros when ``with_mean=False``).
    scale_ : ndarray of shape (n_features,)
        Per-feature standard deviation, ``max(1, max |x|)`` for constant
        features (ones when ``with_std=False``).
    radius_scale_ : float
        ``m``, the median norm of the standardized training rows (the mean norm
        if the median is 0, and 1 if every row is at the mean).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.preprocessing.StandardScaler : The standardization step alone.
    SphericalClusterVAE : The VAE that is trained on this representation.

    Notes
    -----
    A row equal to the mean (``r = 0``) has no direction; it is mapped to
    ``r_min * e_1`` (the first standard basis vector), and ``r_min * e_1`` is
    mapped back to the mean. The map is continuous everywhere else.

    ``rho(r)`` saturates towards ``r_max`` like ``m / r``; in float64 a row
    ``k`` median norms away from the mean is recovered by
    :meth:`inverse_transform` with relative error about ``k * 1e-16``, so
    exactness holds to float precision for rows up to roughly ``1e8`` median
    norms from the mean and degrades beyond.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import SphericalShellScaler
    >>> X = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 9.0], [6.0, 3.0]])
    >>> scaler = SphericalShellScaler(r_min=1.0, r_max=2.0).fit(X)
    >>> Y = scaler.transform(X)
    >>> norms = np.linalg.norm(Y, axis=1)
    >>> bool(np.all((norms >= 1.0) & (norms < 2.0)))
    True
    >>> np.allclose(scaler.inverse_transform(Y), X)
    True
    """

    _parameter_constraints: dict = {
        "r_min": [Interval(numbers.Real, 0, MAX_RADIUS, closed="right")],
        "r_max": [Interval(numbers.Real, 0, MAX_RADIUS, closed="right")],
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __init__(self, r_min=1.0, r_max=2.0, *, with_mean=True, with_std=True):
        self.r_min = r_min
        self.r_max = r_max
        self.with_mean = with_mean
        self.with_std = with_std

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the standardization and the radius scale ``m``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to learn the mean, the scale and ``m`` from.
        y : None
            Ignored.

        Returns
        -------
        self : SphericalShellScaler
            The fitted scaler.
        """
        return fit_or_restore(self, self._fit, X)

    def _fit(self, X):
        check_radii(self.r_min, self.r_max)
        X = validate_numeric(self, X, reset=True)
        self.mean_, self.scale_, _ = standard_scale(
            X, with_mean=self.with_mean, with_std=self.with_std
        )
        norms = row_norms(standardize(X, self.mean_, self.scale_))
        m = float(np.median(norms))
        if m <= 0:
            m = float(norms.mean()) or 1.0
        self.radius_scale_ = m

    def standardize(self, X):
        """Apply only the standardization ``(X - mean_) / scale_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows in original units.

        Returns
        -------
        X_std : ndarray of shape (n_samples, n_features)
            Standardized data, float32 for float32 input, else float64.
        """
        X = self._check(X)
        return self._cast(self._standardize(X), X.dtype, "standardize")

    # Public methods validate, compute in float64 through these private ones
    # (which SphericalClusterVAE calls on validated rows), and return the
    # input's dtype (float32 or float64), as PCA does.
    def _check(self, X):
        check_is_fitted(self)
        return validate_numeric(self, X, reset=False, dtype=FLOAT_DTYPES)

    def _cast(self, out, dtype, method):
        # Finite in float64 by construction: only the cast can overflow.
        return check_finite_output(
            self, method, out, dtype=dtype,
            describe=lambda i, name: f"it exceeds the range of the input's dtype "
            f"{name}; pass float64 input.",
        )

    def _standardize(self, X):
        Xs = standardize(X, self.mean_, self.scale_)
        bad = non_finite_rows(Xs)
        if np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} row(s) of X (first: row {first}) cannot be "
                "standardized in float64: (x - mean_) / scale_ overflows. They lie "
                "far outside the training data (scale_ ranges over "
                f"[{self.scale_.min():.3g}, {self.scale_.max():.3g}]); check their units."
            )
        return Xs

    def transform(self, X):
        """Standardize and map each row into the shell.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to map into the shell, in original units.

        Returns
        -------
        Y : ndarray of shape (n_samples, n_features)
            Rows with ``r_min <= ||y|| < r_max`` (float32 for float32 input).
        """
        X = self._check(X)
        return self._cast(self._transform(X), X.dtype, "transform")

    def _transform(self, X):
        log_r, direction = row_polar(self._standardize(X))
        with np.errstate(over="ignore"):
            r = np.exp(log_r)[:, None]  # may be inf; rho(inf) = r_max
        rho = radial(r, self.r_min, self.r_max, self.radius_scale_)
        return origin_to_e1(direction * rho, np.isneginf(log_r), self.r_min)

    def inverse_transform(self, X):
        """Map rows of the shell back to original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with ``r_min <= ||y|| < r_max`` (norms within rounding of
            ``r_min`` are accepted).

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Data in original units (float32 for float32 input).
        """
        Y = self._check(X)
        # float32 rows carry their norms to float32 rounding only.
        rtol = 1e-12 if Y.dtype == np.float64 else 1e-6
        return self._cast(self._inverse_transform(Y, rtol), Y.dtype, "inverse_transform")

    def _inverse_transform(self, Y, rtol=1e-12):
        Y = np.asarray(Y, dtype=np.float64)
        norm = row_norms(Y)[:, None]
        r_min, r_max, m = self.r_min, self.r_max, self.radius_scale_
        tol = rtol * r_max
        if np.any(norm < r_min - tol) or np.any(norm > r_max + tol):
            raise ValueError(
                "inverse_transform needs rows inside the shell "
                f"{r_min} <= ||y|| < {r_max}; got row norms in "
                f"[{norm.min():.6g}, {norm.max():.6g}]."
            )
        if np.any(norm >= r_max):
            raise ValueError(
                f"{int(np.sum(norm >= r_max))} row(s) lie on the outer radius "
                f"||y|| = r_max = {r_max}, the image of points at infinity: rho(r) "
                "rounds to r_max in float64 for rows more than about 1e16 "
                f"radius_scale_ (= {m:.3g}) from the mean, so such rows cannot be "
                "inverted."
            )
        norm = np.maximum(norm, r_min)  # rows within rounding of r_min are on it
        r = inverse_radial(norm, r_min, r_max, m)
        out = unstandardize((Y / norm) * r, self.mean_, self.scale_)
        bad = non_finite_rows(out)
        if np.any(bad):
            raise ValueError(
                f"{int(bad.sum())} row(s) map back to values beyond the float64 "
                "range: their norms are too close to r_max."
            )
        return out

    def log_abs_det_jacobian(self, X):
        """Log absolute determinant of the Jacobian of :meth:`transform`.

        ``log rho'(r) + (n_features - 1) * log(rho(r) / r) - sum(log scale_)``,
        with ``rho'(r) = (r_max - r_min) * m / (r + m) ** 2``. It turns a
        density of the transformed rows into a density of the original rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows at which the Jacobian is evaluated, in original units.

        Returns
        -------
        log_det : ndarray of shape (n_samples,)
            Finite for every row off the mean.

        Raises
        ------
        ValueError
            If ``n_features > 1`` and a row equals the training mean: the map
            blows that point up into a sphere, so the log-Jacobian is +inf.
        """
        X = self._check(X)
        return self._cast(self._log_abs_det_jacobian(X), X.dtype, "log_abs_det_jacobian")

    def _log_abs_det_jacobian(self, X):
        Xs = self._standardize(X)
        log_r, _ = row_polar(Xs)
        n_features = Xs.shape[1]
        at_mean = np.isneginf(log_r)
        if n_features > 1 and np.any(at_mean):
            raise ValueError(
                f"{int(np.sum(at_mean))} row(s) of X (first: row "
                f"{int(np.flatnonzero(at_mean)[0])}) equal the training mean, where "
                "the radial map sends one point onto a whole sphere: the "
                "log-Jacobian is +inf there and a density is not defined."
            )
        m, width = self.radius_scale_, self.r_max - self.r_min
        # Everything through log r: r itself may overflow for rows far out.
        # log(r + m) = log r + log(1 + m / r); rho / r = r_min / r + width / (r + m).
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            log_r_plus_m = np.where(at_mean, np.log(m), log_r + _log1p_ratio(log_r, m))
            log_drho = np.log(width * m) - 2.0 * log_r_plus_m
            if n_features > 1:
                r = np.exp(log_r)
                log_ratio = np.log(radial(r, self.r_min, self.r_max, m)) - log_r
                log_drho = log_drho + (n_features - 1) * log_ratio
        return log_drho - np.log(self.scale_).sum()


def check_radii(r_min, r_max):
    """Raise a ValueError naming the problem unless 0 < r_min < r_max."""
    if not r_min < r_max:
        raise ValueError(
            f"r_min must be smaller than r_max, got r_min={r_min} and r_max={r_max}."
        )


#: ``r_min="auto"`` with the identity shell puts the inner radius this factor
#: below the smallest training norm (docs/theory.rst).
INNER_RADIUS_FACTOR = 1.5
#: Quantile of the training norms used for ``r_min="auto"`` when some row sits
#: exactly at the mean (its norm, 0, cannot bound the shell away from 0).
FALLBACK_QUANTILE = 0.01


class StandardizedShell(Standardizer):
    """Standardization with a shell ``r_min <= ||x~|| <= r_max`` around it (no radial map).

    The model of :class:`SphericalClusterVAE` with ``shell_map="identity"``:
    the VAE sees the standardized rows ``x~ = (x - mean_) / scale_`` as they
    are; the shell only says where decoder outputs may lie. Its only Jacobian
    is ``-sum(log scale_)``, constant, so the score has no singularity.

    Parameters
    ----------
    r_min, r_max : float or "auto"
        Radii in standardized units. ``"auto"``: ``r_min`` is the smallest
        training norm divided by 1.5 (a low quantile when a row sits at the
        mean); ``r_max`` is ``inf``, a shell open outward. The mean lies in
        the hole, so the collapse loss ``T + r_min^2`` does not depend on
        ``r_max``, and an open shell does not cap the reconstruction of test
        rows beyond the training rows' largest norm.
    """

    def __init__(self, r_min="auto", r_max="auto"):
        self.r_min = r_min
        self.r_max = r_max

    def fit(self, X):
        """Fit mean, scale and the resolved radii ``r_min_``, ``r_max_`` on validated X."""
        super().fit(X)
        # Norms of the observed entries: a missing entry counts as the column mean.
        norms = row_norms(zero_filled(self.standardize(X)))
        self.n_rows_at_mean_ = int(np.sum(norms == 0))
        if self.r_min == "auto":
            inner = norms.min()
            if inner == 0:
                positive = norms[norms > 0]
                inner = max(np.quantile(norms, FALLBACK_QUANTILE), positive.min())
            self.r_min_ = float(inner / INNER_RADIUS_FACTOR)
        else:
            self.r_min_ = float(self.r_min)
        self.r_max_ = np.inf if self.r_max == "auto" else float(self.r_max)
        check_radii(self.r_min_, self.r_max_)
        return self

"""Maximum-likelihood probabilistic PCA in closed form: the linear start of every model (docs/theory.rst)."""

from dataclasses import dataclass

import numpy as np

from ._chunks import chunks
from ._missing import has_missing, observed, zero_filled

#: The noise variance is floored at this fraction of the mean eigenvalue, so
#: that ``n_components = n_features`` (no discarded eigenvalue) and data of
#: rank below ``n_components`` still give a finite posterior.
NOISE_FLOOR = 1e-6

#: The covariance's eigenpairs come from the d x d scatter matrix, not the
#: SVD of the rows, from this many rows ...
COVARIANCE_MIN_ROWS = 20_000
#: ... and this many rows per feature (:func:`covariance_spectrum`).
COVARIANCE_ROWS_PER_FEATURE = 10


@dataclass(frozen=True)
class PPCA:
    """Tipping & Bishop's maximum-likelihood solution for rows Y.

    ``Y ~ N(mean, W W^T + noise_variance I)`` with ``W = V_k (L_k - s2)^(1/2)``
    (``V_k``, ``L_k`` the top eigenpairs of the covariance, ``s2`` the mean
    discarded eigenvalue). The exact posterior is
    ``q(z|y) = N(A (y - mean), diag(posterior_variance))`` with
    ``A = L_k^-1 (L_k - s2)^(1/2) V_k^T`` and ``posterior_variance = s2 / L_k``.
    """

    mean: np.ndarray  # (n_features,)
    components: np.ndarray  # V_k^T, (k, n_features)
    eigenvalues: np.ndarray  # L_k, (k,)
    noise_variance: float

    @property
    def loadings(self):
        """W, (n_features, k): the decoder's linear map."""
        return self.components.T * np.sqrt(self.eigenvalues - self.noise_variance)

    @property
    def encoder_weights(self):
        """A, (k, n_features): the posterior mean is ``A (y - mean)``."""
        gain = np.sqrt(self.eigenvalues - self.noise_variance) / self.eigenvalues
        return gain[:, None] * self.components

    @property
    def posterior_variance(self):
        """``s2 / L_k``, (k,): the same for every row."""
        return self.noise_variance / self.eigenvalues

    def posterior_mean(self, Y):
        return (Y - self.mean) @ self.encoder_weights.T

    def reconstruct(self, Y):
        """Decoded posterior means ``W A (y - mean) + mean``: PCA shrunk by ``1 - s2 / L_i``."""
        return self.posterior_mean(Y) @ self.loadings.T + self.mean

    def expected_loss(self, Y, Y_in=None):
        """``mean_i E_q ||y_i - W z - mean||^2`` with ``z ~ q(z|y_i)``, in closed form.

        The squared error of the decoded posterior mean plus the trace of the
        decoded posterior covariance, ``sum_i (L_i - s2) s2 / L_i``. With
        missing entries (NaN in ``Y``) the posterior is that of ``Y_in`` (the
        rows as the encoder sees them; default zero-filled) and both terms
        count the observed entries only. The rows are taken in chunks, so no
        temporary grows with n_samples beyond the per-row sums.
        """
        missing = has_missing(Y)
        # Diagonal of W diag(posterior_variance) W^T: a row's spread is its
        # sum over the row's observed entries.
        spread = (self.loadings**2) @ self.posterior_variance if missing else None
        resid, row_spread = np.empty(Y.shape[0]), np.empty(Y.shape[0] if missing else 0)
        for s in chunks(Y.shape[0]):
            Y0, M = observed(Y[s])
            # Complete rows: the posterior of Y itself (Y0 is then Y[s]).
            x = Y_in[s] if missing and Y_in is not None else Y0
            d = Y0 - self.reconstruct(x)
            if missing:
                M = np.ones_like(Y0) if M is None else M
                d *= M
                row_spread[s] = M @ spread
            d *= d
            np.sum(d, axis=1, out=resid[s])
        if missing:
            return float(resid.mean() + row_spread.mean())
        spread = np.sum((self.eigenvalues - self.noise_variance) * self.posterior_variance)
        return float(resid.mean() + spread)


def fit_ppca(Y, n_components):
    """Maximum-likelihood pPCA of the rows of Y with ``n_components`` latent dimensions.

    Eigenvalues are those of the maximum-likelihood covariance (divided by
    n_samples). Kept eigenvalues are floored at the noise variance times
    ``1 + 1e-6`` so that every loading and posterior variance is finite.
    Missing entries (NaN) are filled with 0, the standardized column mean
    (:func:`~skvae._ppca_missing.fit_ppca_missing` models them instead).
    """
    return fit_ppcas(Y, [n_components])[0]


def fit_ppcas(Y, ranks):
    """:func:`fit_ppca` of the same rows at each of ``ranks``, from one eigendecomposition."""
    Y = zero_filled(np.asarray(Y, dtype=np.float64))
    mean = Y.mean(axis=0)
    eigenvalues, Vt = covariance_spectrum(Y, mean)
    return [_from_spectrum(mean, eigenvalues, Vt, int(k)) for k in ranks]


def covariance_spectrum(Y, mean):
    """Eigenvalues (descending) and eigenvectors (rows) of the rows' maximum-likelihood covariance.

    Below ``COVARIANCE_MIN_ROWS`` rows, or with fewer than
    ``COVARIANCE_ROWS_PER_FEATURE`` rows per feature, from the SVD of the
    centred rows (eigenvalues ``s^2 / n``; no d x d product formed when
    n < d), which keeps the small eigenvalues' relative accuracy. Above,
    from ``eigh`` of the d x d scatter matrix accumulated over row chunks:
    the cost of the SVD, which grows with n_samples, becomes that of one
    pass of d x d products, at an absolute error of about machine epsilon
    times the largest eigenvalue, far below the noise floor
    (``NOISE_FLOOR``) that the fit puts under the eigenvalues it keeps.
    """
    n, d = Y.shape
    if n < max(COVARIANCE_MIN_ROWS, COVARIANCE_ROWS_PER_FEATURE * d):
        _, s, Vt = np.linalg.svd(Y - mean, full_matrices=False)
        return s**2 / n, Vt
    scatter = np.zeros((d, d))
    for rows in chunks(n):
        centred = Y[rows] - mean
        scatter += centred.T @ centred
    eigenvalues, V = np.linalg.eigh(scatter / n)
    return np.maximum(eigenvalues[::-1], 0.0), V[:, ::-1].T


def _from_spectrum(mean, eigenvalues, Vt, k):
    """The rank-``k`` maximum-likelihood pPCA of a covariance's eigenpairs."""
    d = mean.size
    eig = np.zeros(max(d, k))
    eig[: eigenvalues.size] = eigenvalues
    floor = NOISE_FLOOR * max(eig[:d].mean(), np.finfo(float).tiny)
    noise = max(float(eig[k:d].mean()) if k < d else 0.0, floor)
    # Directions beyond the data's rank (n_samples or n_features below k) are
    # completed orthonormally where possible; any beyond n_features stay zero
    # and get eigenvalue ~noise, so their loadings vanish and their posterior
    # is the prior.
    m = min(k, Vt.shape[0])
    basis = Vt[:m]
    if m < min(k, d):
        q, _ = np.linalg.qr(np.vstack([basis, np.eye(d)]).T)
        basis = np.vstack([basis, q.T[m : min(k, d)]])
    components = np.zeros((k, d))
    components[: basis.shape[0]] = basis
    kept = np.maximum(eig[:k], noise * (1 + 1e-6))
    return PPCA(mean=mean, components=components, eigenvalues=kept, noise_variance=noise)

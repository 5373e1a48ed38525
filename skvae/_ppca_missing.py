"""Probabilistic PCA of rows with missing entries (EM) and its conditional-mean fill (docs/theory.rst)."""

import numpy as np

from ._missing import has_missing
from ._ppca import NOISE_FLOOR, PPCA, fit_ppca, fit_ppcas

#: The fill model's rank: one below the number of features, at most this
#: (or n_components where that is larger), so that it captures nearly the
#: whole covariance on tabular data at a cost linear in n_features.
FILL_MAX_RANK = 20
#: EM runs on at most this many rows, drawn at random.
EM_MAX_ROWS = 5000
#: EM stops after this many iterations, or when the log-likelihood per
#: observed entry rises by less than EM_TOL.
EM_MAX_ITER = 100
EM_TOL = 1e-5


def fill_rank(n_features, n_components):
    """Latent dimensions of the fill model (at least 1)."""
    return int(max(1, min(n_features - 1, max(n_components, FILL_MAX_RANK))))


def _posterior(Yc, M, W, noise):
    """Per-row posterior ``(mean (n, r), covariance (n, r, r))`` of z given the observed entries.

    ``Yc`` are the centred rows with 0 at missing entries, ``M`` the 0/1 mask.
    ``M_i = W_o^T W_o + noise I``; mean ``M_i^-1 W_o^T y_o``, covariance ``noise M_i^-1``.
    """
    r = W.shape[1]
    WW = (W[:, :, None] * W[:, None, :]).reshape(W.shape[0], r * r)
    Mi = (M @ WW).reshape(-1, r, r) + noise * np.eye(r)
    Mi_inv = np.linalg.inv(Mi)
    mean = np.einsum("nrs,ns->nr", Mi_inv, Yc @ W)
    return mean, noise * Mi_inv


def fit_ppca_missing(Y, n_components, *, seed=0):
    """Maximum-likelihood pPCA of rows with missing entries, by EM (Tipping and Bishop, 1999).

    Starts from the pPCA of the zero-filled rows and alternates the exact
    posterior of each row's latent given its observed entries with the
    closed-form update of loadings, mean and noise variance on observed
    entries only (Ilin and Raiko, 2010). Runs on at most EM_MAX_ROWS rows.
    Complete rows get the closed form of :func:`~skvae._ppca.fit_ppca`.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if not has_missing(Y):
        return fit_ppca(Y, n_components)
    if Y.shape[0] > EM_MAX_ROWS:
        rows = np.random.RandomState(seed).choice(Y.shape[0], EM_MAX_ROWS, replace=False)
        Y = Y[np.sort(rows)]
    n, d = Y.shape
    M = (~np.isnan(Y)).astype(np.float64)
    Y0 = np.where(M > 0, Y, 0.0)
    n_obs = M.sum()
    start = fit_ppca(Y, n_components)
    W, mean, noise = start.loadings, start.mean, start.noise_variance
    floor = NOISE_FLOOR * max(float(np.sum((Y0 * M) ** 2) / n_obs), np.finfo(float).tiny)
    r = W.shape[1]
    previous = -np.inf
    for _ in range(EM_MAX_ITER):
        z, cov = _posterior((Y0 - mean) * M, M, W, noise)
        # Augmented latent (z, 1): loadings and mean are one linear map.
        za = np.hstack([z, np.ones((n, 1))])
        Ezz = np.zeros((n, r + 1, r + 1))
        Ezz[:, :r, :r] = cov
        Ezz += za[:, :, None] * za[:, None, :]
        A = (M.T @ Ezz.reshape(n, -1)).reshape(d, r + 1, r + 1)
        B = (Y0 * M).T @ za
        Wa = np.linalg.solve(A + 1e-12 * np.eye(r + 1), B[:, :, None])[:, :, 0]
        W, mean = Wa[:, :r], Wa[:, r]
        # sum_ij m_ij E[(y_ij - w~_j z~_i)^2] over observed entries.
        sq = (np.sum((Y0 * M) ** 2) - 2.0 * np.sum(B * Wa)
              + np.einsum("da,dab,db->", Wa, A, Wa))
        noise = max(float(sq / n_obs), floor)
        loglik = -0.5 * np.log(noise)  # per observed entry, up to terms EM keeps fixed
        if loglik - previous < EM_TOL:
            break
        previous = loglik
    return _as_ppca(W, mean, noise)


def _as_ppca(W, mean, noise):
    """The PPCA whose loadings are ``W`` (up to a rotation of the latent space)."""
    U, s, _ = np.linalg.svd(W, full_matrices=False)
    eigenvalues = np.maximum(s**2 + noise, noise * (1 + 1e-6))
    return PPCA(mean=mean, components=U.T, eigenvalues=eigenvalues, noise_variance=noise)


def conditional_fill(ppca, Y):
    """``Y`` with each missing entry (NaN) replaced by its conditional mean given the row's observed ones.

    ``E[y_mis | y_obs] = mean_mis + W_mis E[z | y_obs]`` under the pPCA; a
    row with nothing observed gets the mean. Rows without NaN are returned as
    they are.
    """
    if not has_missing(Y):
        return Y
    M = (~np.isnan(Y)).astype(np.float64)
    W = ppca.loadings
    z, _ = _posterior(np.where(M > 0, Y - ppca.mean, 0.0), M, W, ppca.noise_variance)
    return np.where(M > 0, Y, ppca.mean + z @ W.T)


def fit_linear_models(Y, n_components, seed=0):
    """(pPCA of the linear start, fill model) of the modelled rows ``Y``.

    Complete rows: both from one SVD. Rows with holes: the fill model by EM,
    and the start's pPCA in closed form on the rows it fills.
    """
    rank = fill_rank(Y.shape[1], n_components)
    if not has_missing(Y):
        start, fill = fit_ppcas(Y, [n_components, rank])
        return start, fill
    fill = fit_ppca_missing(Y, rank, seed=seed)
    return fit_ppca(conditional_fill(fill, Y), n_components), fill

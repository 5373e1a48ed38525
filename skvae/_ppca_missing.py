"""Probabilistic PCA of rows with missing entries (EM) and its conditional-mean fill (docs/theory.rst)."""

import numpy as np

from ._missing import has_missing, hide_observed, observed
from ._ppca import NOISE_FLOOR, PPCA, fit_ppca, fit_ppcas

#: The fill model's largest rank: one below the number of features, at most
#: this (or n_components where that is larger), so that it can capture
#: nearly the whole covariance on tabular data at a cost linear in n_features.
FILL_MAX_RANK = 20
#: EM runs on at most this many rows, drawn at random (its cost per
#: iteration is rows x n_features x rank^2).
EM_MAX_ROWS = 2000
#: EM stops after this many iterations, or when loadings, mean and noise
#: variance change by less than EM_TOL relative to their size.
EM_MAX_ITER = 200
EM_TOL = 1e-4


#: Share of the observed entries hidden to choose the fill model's rank.
RANK_CHECK_SHARE = 0.1


def fill_rank(n_features, n_components):
    """Largest rank of the fill model (at least 1)."""
    return int(max(1, min(n_features - 1, max(n_components, FILL_MAX_RANK))))


def candidate_ranks(n_features, n_components):
    """Ranks the fill model is chosen from: a quarter, half and all of :func:`fill_rank`."""
    top = fill_rank(n_features, n_components)
    return sorted({max(1, top // 4), max(1, top // 2), top})


def choose_rank(Y, n_components, seed=0):
    """The candidate rank whose EM fill best predicts observed entries hidden from it.

    With many holes and few rows the largest rank can fit the observed
    entries exactly (noise variance 0) and fill the holes badly; a share
    RANK_CHECK_SHARE of the observed entries (never a row's last one) is
    hidden, each candidate is fitted on the rest, and the one with the
    smallest squared error on the hidden entries wins.
    """
    ranks = candidate_ranks(Y.shape[1], n_components)
    if len(ranks) == 1:
        return ranks[0]
    Y = _em_rows(Y, seed)
    hide = hide_observed(Y, RANK_CHECK_SHARE, seed)
    if not hide.any():
        return ranks[-1]
    Y_fit = np.where(hide, np.nan, Y)
    errors = [np.sum((conditional_fill(fit_ppca_missing(Y_fit, r, seed=seed), Y_fit) - Y)[hide]
                     ** 2) for r in ranks]
    return ranks[int(np.argmin(errors))]


def _em_rows(Y, seed):
    """The rows EM runs on: all of them, or EM_MAX_ROWS drawn at random (in order)."""
    if Y.shape[0] <= EM_MAX_ROWS:
        return Y
    rows = np.random.RandomState(seed).choice(Y.shape[0], EM_MAX_ROWS, replace=False)
    return Y[np.sort(rows)]


def _posterior(Yc, M, W, noise, covariance=True):
    """Per-row posterior ``(mean (n, r), covariance (n, r, r) or None)`` of z given the observed entries.

    ``Yc`` are the centred rows with 0 at missing entries, ``M`` the 0/1 mask.
    ``M_i = W_o^T W_o + noise I``; mean ``M_i^-1 W_o^T y_o``, covariance ``noise M_i^-1``.
    Without ``covariance`` the means come from one batched solve, no inverse.
    """
    r = W.shape[1]
    WW = (W[:, :, None] * W[:, None, :]).reshape(W.shape[0], r * r)
    Mi = (M @ WW).reshape(-1, r, r) + noise * np.eye(r)
    if not covariance:
        return np.linalg.solve(Mi, (Yc @ W)[:, :, None])[:, :, 0], None
    Mi_inv = np.linalg.inv(Mi)
    mean = np.einsum("nrs,ns->nr", Mi_inv, Yc @ W)
    return mean, noise * Mi_inv


def fit_ppca_missing(Y, n_components, *, seed=0):
    """Maximum-likelihood pPCA of rows with missing entries, by EM (Tipping and Bishop, 1999).

    Starts from the pairwise-observed covariance (:func:`_pairwise_start`)
    and alternates the exact posterior of each row's latent given its
    observed entries with the closed-form update of loadings, mean and noise
    variance on observed entries only (Ilin and Raiko, 2010). Runs on at
    most EM_MAX_ROWS rows. Complete rows get the closed form of
    :func:`~skvae._ppca.fit_ppca`.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if not has_missing(Y):
        return fit_ppca(Y, n_components)
    Y = _em_rows(Y, seed)
    n, d = Y.shape
    Y0, M = observed(Y)
    n_obs = M.sum()
    floor = NOISE_FLOOR * max(float(np.sum((Y0 * M) ** 2) / n_obs), np.finfo(float).tiny)
    W, mean, noise = _pairwise_start(Y0, M, n_components, floor)
    r = W.shape[1]
    for _ in range(EM_MAX_ITER):
        before = np.append(np.hstack([W, mean[:, None]]).ravel(), noise)
        try:
            z, cov = _posterior((Y0 - mean) * M, M, W, noise)
        except np.linalg.LinAlgError:
            return fit_ppca(Y, n_components)
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
        after = np.append(Wa.ravel(), noise)
        if not np.all(np.isfinite(after)):
            # Rounding on extreme data: the filled rows would not be finite.
            return fit_ppca(Y, n_components)
        if np.linalg.norm(after - before) <= EM_TOL * np.linalg.norm(after):
            break
    return _as_ppca(W, mean, noise)


def _pairwise_start(Y0, M, rank, floor):
    """(loadings, mean, noise) from the pairwise-observed covariance: EM's starting point.

    Each covariance entry is averaged over the rows where both columns are
    observed, which is unbiased under values missing completely at random
    (zero filling shrinks it); EM then needs far fewer iterations.
    """
    counts = np.maximum(M.sum(axis=0), 1.0)
    mean = (Y0 * M).sum(axis=0) / counts
    C = M * (Y0 - mean)
    cov = (C.T @ C) / np.maximum(M.T @ M, 1.0)
    eig, V = np.linalg.eigh((cov + cov.T) / 2)
    eig, V = eig[::-1], V[:, ::-1]
    d = eig.size
    noise = max(float(np.mean(np.maximum(eig[rank:], 0.0))) if rank < d else 0.0, floor)
    W = V[:, :rank] * np.sqrt(np.maximum(eig[:rank] - noise, 0.0) + floor)
    return W, mean, noise


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
    Y0, M = observed(Y)
    if M is None:
        return Y
    W = ppca.loadings
    with np.errstate(all="ignore"):
        try:
            z, _ = _posterior((Y0 - ppca.mean) * M, M, W, ppca.noise_variance,
                              covariance=False)
        except np.linalg.LinAlgError:  # a fill model overflowed on extreme data
            return Y0
        filled = ppca.mean + z @ W.T
    # Rows far outside the training data can overflow: those holes get the
    # column mean (0 after standardization), as zero filling would.
    filled = np.where(np.isfinite(filled), filled, 0.0)
    return np.where(M > 0, Y, filled)


def fit_linear_models(Y, n_components, seed=0):
    """(pPCA of the linear start, fill model) of the modelled rows ``Y``.

    Complete rows: both from one eigendecomposition, the fill at the largest rank. Rows with
    holes: the fill model by EM at the rank :func:`choose_rank` picks, and the
    start's pPCA in closed form on the rows it fills.
    """
    if not has_missing(Y):
        return tuple(fit_ppcas(Y, [n_components, fill_rank(Y.shape[1], n_components)]))
    fill = fit_ppca_missing(Y, choose_rank(Y, n_components, seed), seed=seed)
    return fit_ppca(conditional_fill(fill, Y), n_components), fill

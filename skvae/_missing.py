"""Missing values: the observed-entry mask, zero filling, and losses over observed entries only (docs/theory.rst)."""

import numpy as np

from ._chunks import chunks


def has_missing(Y):
    """Whether the array ``Y`` holds a NaN (a missing entry).

    ``min`` propagates NaN and, unlike a sum, cannot overflow to ``inf - inf``.
    """
    return Y.size > 0 and bool(np.isnan(np.min(Y)))


def observed(Y):
    """``(Y0, M)``: ``Y`` with missing entries set to 0 and the float mask of observed ones.

    ``M`` is None when nothing is missing, so complete data take exactly the
    code paths they took before missing values were supported.
    """
    if not has_missing(Y):
        return Y, None
    M = ~np.isnan(Y)
    return np.where(M, Y, 0.0), M.astype(np.float64)


def zero_filled(Y):
    """``Y`` with its missing entries replaced by 0 (the standardized column mean)."""
    return observed(Y)[0]


def nothing_observed(X):
    """Boolean mask of the rows of ``X`` whose every entry is missing (NaN)."""
    if X.shape[1] == 0 or not has_missing(X):
        return np.zeros(X.shape[0], dtype=bool)
    return np.isnan(X).all(axis=1)


def hide_observed(X, share, seed):
    """Boolean mask of about ``share`` of X's observed entries, to hide for a check.

    No row and no column loses its last observed entry.
    """
    rng = np.random.RandomState(seed)
    seen = ~np.isnan(X)
    hide = seen & (rng.random_sample(X.shape) < share)
    hide &= (seen & ~hide).any(axis=1, keepdims=True)
    hide &= (seen & ~hide).any(axis=0, keepdims=True)
    return hide


def observed_per_row(M, n_features):
    """Mean number of observed entries per row: ``n_features`` without a mask."""
    return float(n_features) if M is None else float(M.sum() / M.shape[0])


def check_missing_pattern(X, what="X"):
    """Raise a ValueError naming the first row or column of ``X`` with nothing observed."""
    if not has_missing(X):
        return
    seen = ~np.isnan(X)
    empty_cols = np.flatnonzero(~seen.any(axis=0))
    if empty_cols.size:
        raise ValueError(
            f"{empty_cols.size} column(s) of {what} (first: column {int(empty_cols[0])}) "
            "have no observed value (all NaN): nothing can be learnt about them. "
            "Drop them before fitting."
        )
    empty_rows = np.flatnonzero(~seen.any(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{empty_rows.size} row(s) of {what} (first: row {int(empty_rows[0])}) have "
            "no observed value (all NaN): they carry no information to fit on. Drop "
            "them before fitting (transform accepts them and returns the prior mean)."
        )


def masked_mean(Y):
    """Column means over the observed entries (plain means for complete data)."""
    if not has_missing(Y):
        return Y.mean(axis=0)
    return np.nanmean(Y, axis=0)


def masked_squared_distance(Y, C, labels=None):
    """Mean over rows of ``sum_{j observed} (y_ij - c_ij)^2``.

    ``C`` is broadcast to ``Y`` (one row per row of ``Y``, or one row for
    all), or with ``labels`` is a table: row ``i`` is compared with
    ``C[labels[i]]``. For complete data this is ``mean ||y - c||^2``. A NaN
    in ``C`` (a diverged decoder) stays NaN: the mask multiplies the
    difference, it does not skip it. The rows are taken in chunks, so no
    temporary grows with n_samples beyond the per-row sums.
    """
    C = np.asarray(C)
    per_row_C = labels is None and C.ndim == 2 and C.shape[0] == Y.shape[0]
    per_row = np.empty(Y.shape[0], dtype=np.result_type(Y, C))
    for s in chunks(Y.shape[0]):
        Y0, M = observed(Y[s])
        d = Y0 - (C[labels[s]] if labels is not None else C[s] if per_row_C else C)
        if M is not None:
            d *= M
        d *= d
        np.sum(d, axis=1, out=per_row[s])
    return float(np.mean(per_row))


def collapse_loss(Y, r_min, r_max, *, mean=None, total=None):
    """The loss of the best input-independent decoder with outputs in the shell, on observed entries.

    A decoder that ignores its input outputs one ``c`` with
    ``r_min <= |c| <= r_max``; its loss on the observed entries is
    ``T_obs + (1/n) sum_j n_j (c_j - m_j)^2`` with ``n_j`` the observed count
    and ``m_j`` the observed mean of column j. Without holes the minimum is
    ``T + dist(m, S)^2`` (the projection of the mean). With holes the value
    returned is ``T_obs + (min_j n_j / n) dist(m, S)^2``, exact when the
    mean is at the origin (every standardized fit: ``r_min^2`` on the axis of
    the least-observed column) and otherwise a lower bound of the minimum,
    which keeps the certificate valid (docs/theory.rst).

    ``mean`` and ``total`` (``masked_mean(Y)`` and the mean squared distance
    of the rows to it, T) may be passed when the caller has them.
    """
    mean = masked_mean(Y) if mean is None else mean
    norm = float(np.linalg.norm(mean))
    dist = max(0.0, r_min - norm, norm - r_max)
    weight = 1.0
    if has_missing(Y):
        weight = float((~np.isnan(Y)).sum(axis=0).min() / Y.shape[0])
    total = masked_squared_distance(Y, mean) if total is None else total
    return total + weight * dist**2

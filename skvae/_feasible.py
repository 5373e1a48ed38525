"""The cluster-aware feasible band W_S <= R <= tau < delta_collapse (DESIGN section 3)."""

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

#: Above this many rows the internal clustering uses ``MiniBatchKMeans``.
#: Measured (benchmarks/results/speed.md, 64 features, K=8, 2 cores): full
#: K-means with n_init=4 grows linearly and costs less than one training
#: epoch at every size up to 1M rows, while the mini-batch version ends 2-5%
#: higher in W (a narrower band); so full K-means is kept up to 1M rows.
MINIBATCH_KMEANS_THRESHOLD = 1_000_000


@dataclass(frozen=True)
class FeasibleRegion:
    """Everything section 3 of the design fits, in shell units."""

    cluster_centers: np.ndarray
    labels: np.ndarray
    within_cluster_variance: float
    codebook_loss: float
    total_variance: float
    collapse_loss: float
    reconstruction_target: float


def project_to_shell(C, r_min, r_max):
    """Nearest point of the shell for each row: ``c * clamp(|c|, r_min, r_max) / |c|``.

    A row at the origin (every shell point is then equally near) goes to
    ``r_min * e_1``, the same convention as :class:`SphericalShellScaler`.
    """
    C = np.asarray(C, dtype=np.float64)
    norm = np.linalg.norm(C, axis=1, keepdims=True)
    zero = norm[:, 0] == 0
    P = C * (np.clip(norm, r_min, r_max) / np.where(zero[:, None], 1.0, norm))
    P[zero] = 0.0
    P[zero, 0] = r_min
    return P


def mean_squared_distance(Y, C):
    """Per-sample loss convention used everywhere: mean over rows of ``||y - c||^2``."""
    return float(np.mean(np.sum((Y - C) ** 2, axis=1)))


def collapse_loss(Y, r_min, r_max):
    """Total variance T and ``delta_collapse = min_{c in S} mean ||y - c||^2``.

    The minimiser over the shell is the projection of the mean, so
    ``delta_collapse = T + dist(mean, S) ** 2``.
    """
    mean = Y.mean(axis=0)
    total = mean_squared_distance(Y, mean)
    norm = float(np.linalg.norm(mean))
    dist = max(0.0, r_min - norm, norm - r_max)
    return total, total + dist**2


def fit_feasible_region(Y, *, n_clusters, r_min, r_max, margin, random_state):
    """Cluster the shell data and derive W, W_S, T, delta_collapse and tau.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
        Rows in the shell.
    n_clusters : int
        K of K-means.
    r_min, r_max : float
        Shell radii.
    margin : float in (0, 1)
        Fraction of the way from delta_collapse down to W_S that the
        reconstruction target tau must reach.
    random_state : int
        Seed of the K-means initialisation.

    Returns
    -------
    FeasibleRegion

    Raises
    ------
    ValueError
        If ``n_clusters > n_samples`` or the band is empty (``W_S >=
        delta_collapse``: zero-variance data, or ``n_clusters=1``).
    """
    n_samples = Y.shape[0]
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} must be <= n_samples={n_samples}: "
            "lower n_clusters or pass more rows."
        )
    if n_samples > MINIBATCH_KMEANS_THRESHOLD:
        km = MiniBatchKMeans(
            n_clusters=n_clusters, n_init=3, batch_size=4096, random_state=random_state
        )
    else:
        km = KMeans(n_clusters=n_clusters, n_init=4, random_state=random_state)
    labels = km.fit_predict(Y)
    centers = km.cluster_centers_
    W = mean_squared_distance(Y, centers[labels])
    W_S = mean_squared_distance(Y, project_to_shell(centers, r_min, r_max)[labels])
    T, delta = collapse_loss(Y, r_min, r_max)
    if not W_S < delta:
        reason = (
            "the data has (near) zero variance"
            if T <= 1e-12 * max(1.0, r_max**2)
            else f"n_clusters={n_clusters} is too small to beat the collapsed fit"
        )
        raise ValueError(
            "The feasible band is empty: the shell codebook loss "
            f"W_S={W_S:.6g} is not below the collapse loss "
            f"delta_collapse={delta:.6g} ({reason}). Use data with variance "
            "and n_clusters >= 2."
        )
    tau = delta - margin * (delta - W_S)
    return FeasibleRegion(
        cluster_centers=centers,
        labels=labels,
        within_cluster_variance=W,
        codebook_loss=W_S,
        total_variance=T,
        collapse_loss=delta,
        reconstruction_target=tau,
    )

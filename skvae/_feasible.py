"""The cluster-aware feasible band W_S <= R <= tau < delta_collapse (docs/theory.rst)."""

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from . import _missing
from ._missing import masked_mean, masked_squared_distance, zero_filled
from ._scaling import origin_to_e1, row_norms

#: K-means runs on at most this many rows, drawn at random; W and W_S are
#: then computed on every row with the sample's centres. The certificate
#: does not depend on the clustering (docs/theory.rst); the cost of the
#: sample in W is measured in benchmarks/results/speed.md.
KMEANS_MAX_ROWS = 20_000


#: The fields of a FeasibleRegion a fitted estimator keeps (no per-row or per-centre arrays).
_FITTED = ("within_cluster_variance", "codebook_loss", "pca_loss", "total_variance",
           "collapse_loss", "reconstruction_target")


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
    pca_loss: float = None

    def fitted_attributes(self):
        """The estimator's attributes of the band: each scalar field with a trailing ``_``."""
        return {f"{name}_": getattr(self, name) for name in _FITTED}


def project_to_shell(C, r_min, r_max):
    """Nearest point of the shell for each row: ``c * clamp(|c|, r_min, r_max) / |c|``.

    A row at the origin (every shell point is then equally near) goes to
    ``r_min * e_1`` (:func:`~skvae._scaling.origin_to_e1`).
    """
    C = np.asarray(C, dtype=np.float64)
    norm = row_norms(C)[:, None]
    zero = norm[:, 0] == 0
    P = C * (np.clip(norm, r_min, r_max) / np.where(zero[:, None], 1.0, norm))
    return origin_to_e1(P, zero, r_min)


def mean_squared_distance(Y, C, labels=None):
    """Per-sample loss convention used everywhere: mean over rows of ``||y - c||^2``.

    ``c`` is ``C`` broadcast to ``Y``, or with ``labels`` the row
    ``C[labels[i]]`` of a table of centres. Missing entries of ``Y`` (NaN)
    are left out of the sum (:func:`~skvae._missing.masked_squared_distance`).
    """
    return masked_squared_distance(Y, C, labels)


def collapse_loss(Y, r_min, r_max, *, mean=None, total=None):
    """``delta_collapse = min_{c in S} mean ||y - c||^2``, the loss of a decoder that ignores z.

    The minimiser over the shell is the projection of the mean, so
    ``delta_collapse = T + dist(mean, S) ** 2`` with ``T`` the total
    variance; with ``r_max = inf`` the outer side never binds. With missing
    entries, see :func:`~skvae._missing.collapse_loss`.
    """
    return _missing.collapse_loss(Y, r_min, r_max, mean=mean, total=total)


def _kmeans(Y, n_clusters, random_state):
    """(centres, label of every row): K-means with 4 restarts on at most KMEANS_MAX_ROWS rows."""
    sample = Y
    if Y.shape[0] > KMEANS_MAX_ROWS:
        rows = np.random.RandomState(random_state).choice(Y.shape[0], KMEANS_MAX_ROWS,
                                                          replace=False)
        sample = Y[np.sort(rows)]
    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=random_state)
    with warnings.catch_warnings():
        # Fewer distinct rows than clusters: reported below as a ValueError.
        warnings.filterwarnings(
            "ignore", message="Number of distinct clusters", category=ConvergenceWarning
        )
        labels = km.fit_predict(sample)
    n_found = np.unique(labels).size
    if n_found < n_clusters:
        where = "the training data has" if sample is Y else (
            f"a random sample of {KMEANS_MAX_ROWS} training rows has")
        raise ValueError(
            f"n_clusters={n_clusters} is more than the {n_found} distinct clusters "
            f"K-means finds: {where} only about that many distinct rows. Use "
            f"n_clusters <= {n_found}."
        )
    if sample is not Y:
        labels = km.predict(Y)
    return km.cluster_centers_, labels


def fit_feasible_region(
    Y, *, n_clusters, r_min, r_max, margin, random_state, anchor="codebook", ppca=None, Y_in=None
):
    """Cluster the shell data and derive W, W_S, T, delta_collapse and tau.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
        Rows in the modelled space.
    n_clusters : int
        K of K-means.
    r_min, r_max : float
        Shell radii; ``r_max`` may be ``inf`` (a shell open outward).
    margin : float in (0, 1)
        Fraction of the way from delta_collapse down to the anchor loss that
        the reconstruction target tau must reach.
    random_state : int
        Seed of the K-means initialisation.
    anchor : {"codebook", "pca", "best"}
        The achievable loss tau is anchored on: the shell codebook loss W_S
        of the paper, the expected reconstruction loss of probabilistic PCA
        under its own posterior (what the model reaches at its linear start),
        or the smaller of the two.
    ppca : skvae._ppca.PPCA or None
        Probabilistic PCA of Y, for the PCA anchor.
    Y_in : ndarray or None
        With missing entries (NaN in Y): the rows with their holes filled,
        which K-means clusters and the anchor's encoder sees; None
        zero-fills them.

    Returns
    -------
    FeasibleRegion

    Raises
    ------
    ValueError
        If ``n_clusters > n_samples`` or the band is empty (the anchor loss is
        not below delta_collapse: zero-variance data, or ``n_clusters=1``).
    """
    n_samples = Y.shape[0]
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} must be <= n_samples={n_samples}: "
            "lower n_clusters or pass more rows."
        )
    # K-means sees the rows with their holes filled (docs/theory.rst); the
    # losses below count observed entries only.
    Y_in = zero_filled(Y) if Y_in is None else Y_in
    centers, labels = _kmeans(Y_in, n_clusters, random_state)
    W = mean_squared_distance(Y, centers, labels)
    W_S = mean_squared_distance(Y, project_to_shell(centers, r_min, r_max), labels)
    mean = masked_mean(Y)
    T = mean_squared_distance(Y, mean)
    delta = collapse_loss(Y, r_min, r_max, mean=mean, total=T)
    pca = None if ppca is None else ppca.expected_loss(Y, Y_in)
    if anchor == "codebook":
        anchor_loss = W_S
    elif pca is None:
        raise ValueError(f"anchor={anchor!r} needs the probabilistic PCA of Y.")
    else:
        anchor_loss = pca if anchor == "pca" else min(W_S, pca)
    if not anchor_loss < delta:
        raise ValueError(
            "The feasible band is empty: the anchor loss "
            f"{anchor_loss:.6g} ({anchor}) is not below the collapse loss "
            f"delta_collapse={delta:.6g}: no {n_clusters}-centre codebook"
            + ("" if pca is None else
               f" and no {ppca.eigenvalues.size}-component probabilistic PCA")
            + " on the shell reconstructs the data better than a constant. Widen "
            "the shell (r_min, r_max) or use more clusters or components."
        )
    tau = delta - margin * (delta - anchor_loss)
    if not delta - tau > 0:
        raise ValueError(
            f"margin={margin!r} is too small: the target tau rounds to "
            f"delta_collapse={delta:.6g}, leaving a band of width 0. Use a margin "
            "of at least 1e-6."
        )
    return FeasibleRegion(cluster_centers=centers, labels=labels, within_cluster_variance=W,
                          codebook_loss=W_S, total_variance=T, collapse_loss=delta,
                          reconstruction_target=tau, pca_loss=pca)

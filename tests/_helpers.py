"""Shared test helpers: the three model geometries, quiet fits, held-out error, the shell profile."""

import warnings

import numpy as np
from sklearn.datasets import make_blobs

from skvae import SphericalClusterVAE, VAE

#: The identity shell (default), the paper's radial map, and the conventional VAE.
GEOMETRIES = ("identity", "paper", "vae")


def geometry_model(name, **params):
    """An unfitted model of geometry ``name``; the shell models use 4 clusters."""
    if name == "vae":
        return VAE(**params)
    shell = {} if name == "identity" else {"shell_map": "paper"}
    return SphericalClusterVAE(n_clusters=4, **shell, **params)


def fit_quietly(est, X):
    """``est.fit(X)`` with warnings (convergence, collapse) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def heldout_error(est, X):
    """Mean squared reconstruction error of the rows of X, in original units."""
    return float(np.mean(np.sum((est.inverse_transform(est.transform(X)) - X) ** 2, axis=1)))


def train_test_blobs():
    """1,200 training and 300 held-out rows of 6-D blobs (5 centres)."""
    X, _ = make_blobs(n_samples=1500, n_features=6, centers=5, cluster_std=1.5,
                      random_state=0)
    return X[:1200], X[1200:]


def reference_rho(s, r_min, r_max, knee):
    """The output layer's radial profile (docs/theory.rst), written out independently."""
    return np.where(s < knee, r_min + s * (1 - r_min / knee), np.minimum(s, r_max))

"""The method's claims on data: no collapse where a conventional VAE collapses; beats PCA."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import SphericalClusterVAE, VAE
from skvae._demo import heldout_mse
from skvae.exceptions import PosteriorCollapseWarning


def _data(name):
    if name == "blobs":
        X, _ = make_blobs(n_samples=800, n_features=20, centers=6, cluster_std=2.0,
                          random_state=0)
    else:
        X, _ = load_digits(return_X_y=True)
    return train_test_split(X, test_size=0.3, random_state=0)


def _top_eigenvalue(X):
    return float(np.linalg.eigvalsh(np.cov(StandardScaler().fit_transform(X), rowvar=False))[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["blobs", "digits"])
def test_certified_where_conventional_vae_collapses(name):
    X_train, _ = _data(name)
    # Above twice the top eigenvalue of the standardized covariance a
    # conventional VAE with fixed decoder variance collapses.
    sigma2 = 2.5 * _top_eigenvalue(X_train)
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # The conventional VAE collapses, and must say so.
            with pytest.warns(PosteriorCollapseWarning, match="collapse is not ruled out"):
                vae = VAE(n_components=2, decoder_variance=sigma2,
                          random_state=seed).fit(X_train)
            svae = SphericalClusterVAE(n_components=2, decoder_variance=sigma2,
                                       random_state=seed).fit(X_train)
        assert vae.active_units_ == 0, (name, seed)
        assert not vae.collapse_certified_, (name, seed)
        assert svae.collapse_certified_, (name, seed)
        assert svae.active_units_ >= 1, (name, seed)
        assert svae.reconstruction_loss_ < svae.collapse_loss_
        assert svae.mutual_information_ > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("n_components", [2, 8])
def test_digits_heldout_reconstruction_beats_pca(n_components):
    X_train, X_test = _data("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = SphericalClusterVAE(n_components=n_components, random_state=0).fit(X_train)
    pca = PCA(n_components=n_components).fit(X_train)
    assert vae.collapse_certified_
    assert heldout_mse(vae, X_test) < heldout_mse(pca, X_test)

"""Collapse diagnostics for any fitted skvae estimator, evaluated on any data."""

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from . import _diagnostics
from ._diagnostics import ACTIVE_UNIT_THRESHOLD, CollapseCertificate
from ._spherical import SphericalClusterVAE
from ._vae import VAE

__all__ = [
    "CollapseCertificate",
    "active_units",
    "collapse_certificate",
    "kl_per_dimension",
    "mutual_information",
]


def _posterior(estimator, X):
    Y = estimator._to_representation(estimator._validated(X))
    return Y, *estimator._encode(Y)


def _torch_generator(random_state):
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return torch.Generator().manual_seed(int(seed))


# Any other object (a PCA, an unfitted class) is a clear InvalidParameterError.
_ESTIMATOR_AND_X = {"estimator": [SphericalClusterVAE, VAE], "X": ["array-like"]}


@validate_params(
    {**_ESTIMATOR_AND_X, "threshold": [Interval(numbers.Real, 0, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def active_units(estimator, X, *, threshold=ACTIVE_UNIT_THRESHOLD):
    """Number of latent dimensions the encoder uses (Burda et al., 2016).

    A dimension is active when the variance over the rows of X of its
    posterior mean ``E_q[z_j | x]`` exceeds ``threshold``. A posterior with no
    active unit is called collapsed.

    Parameters
    ----------
    estimator : SphericalClusterVAE or VAE
        A fitted skvae estimator, whose encoder is measured.
    X : array-like of shape (n_samples, n_features)
        Rows over which the posterior means' variance is taken, in original units.
    threshold : float, default=0.01
        Variance threshold.

    Returns
    -------
    n_active : int
        Number of active latent dimensions.

    References
    ----------
    .. [1] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted
       Autoencoders", ICLR 2016.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skvae import VAE
    >>> from skvae.metrics import active_units
    >>> X, _ = make_blobs(n_samples=200, n_features=5, random_state=0)
    >>> vae = VAE(n_components=2, random_state=0).fit(X)
    >>> active_units(vae, X)
    2
    """
    _, mu, _ = _posterior(estimator, X)
    return _diagnostics.active_units(mu, threshold)


@validate_params(_ESTIMATOR_AND_X, prefer_skip_nested_validation=True)
def kl_per_dimension(estimator, X):
    """Mean KL(q(z|x) || N(0, I)) of each latent dimension over the rows of X.

    Parameters
    ----------
    estimator : SphericalClusterVAE or VAE
        A fitted skvae estimator.
    X : array-like of shape (n_samples, n_features)
        Rows whose KL terms are averaged, in original units.

    Returns
    -------
    kl : ndarray of shape (n_components,)
        KL per dimension, in nats. Near 0 marks a collapsed dimension.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAE
    >>> from skvae.metrics import kl_per_dimension
    >>> X = load_iris().data
    >>> kl = kl_per_dimension(VAE(n_components=3, random_state=0).fit(X), X)
    >>> kl.shape
    (3,)
    """
    _, mu, logvar = _posterior(estimator, X)
    return _diagnostics.mean_kl(mu, logvar)


@validate_params(
    {
        **_ESTIMATOR_AND_X,
        "max_samples": [Interval(numbers.Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def mutual_information(estimator, X, *, max_samples=2000, random_state=0):
    """Estimate of the mutual information I(x; z) under the encoder.

    The minibatch estimator of He et al. (2019) for the quantity of Hoffman &
    Johnson (2016): ``E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)]``, with the
    aggregate posterior ``q(z)`` replaced by the mixture of the posteriors of
    (at most ``max_samples``) rows of X. It is bounded by
    ``log(min(n_samples, max_samples))`` and is 0 for a collapsed posterior.

    Parameters
    ----------
    estimator : SphericalClusterVAE or VAE
        A fitted skvae estimator; its posteriors q(z|x) form the mixture.
    X : array-like of shape (n_samples, n_features)
        Rows whose posteriors form the mixture, in original units.
    max_samples : int, default=2000
        Rows used in the O(n^2) mixture (a random subset above this).
    random_state : int, RandomState instance or None, default=0
        Seed of the subset and of the z draws.

    Returns
    -------
    mi : float
        Mutual information estimate, in nats.

    References
    ----------
    .. [1] M. D. Hoffman and M. J. Johnson, "ELBO surgery", NeurIPS Workshop
       on Advances in Approximate Bayesian Inference, 2016.
    .. [2] J. He et al., "Lagging Inference Networks and Posterior Collapse in
       Variational Autoencoders", ICLR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from skvae import SphericalClusterVAE, metrics
    >>> X = load_wine().data
    >>> model = SphericalClusterVAE(random_state=0).fit(X)
    >>> bool(0 < metrics.mutual_information(model, X) <= np.log(len(X)))
    True
    """
    _, mu, logvar = _posterior(estimator, X)
    return _diagnostics.mutual_information(
        mu, logvar, generator=_torch_generator(random_state), max_samples=max_samples
    )


@validate_params(
    {
        **_ESTIMATOR_AND_X,
        "n_passes": [Interval(numbers.Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def collapse_certificate(estimator, X, *, n_passes=10, random_state=0):
    """Test on X that the posterior of a fitted model has not collapsed.

    Theorem: if the expected reconstruction loss with ``z ~ q(z|x)`` on X is
    below ``delta_collapse`` (the smallest loss any decoder that ignores its
    input can reach on X), then ``q(z|x)`` is not the same for every x. The
    expectation is estimated by ``n_passes`` independent passes with fresh z;
    the model is certified when ``R_hat + 3 SE < delta_collapse``.

    ``delta_collapse`` is computed on X itself: for
    :class:`SphericalClusterVAE`, whose decoder outputs lie in the shell,
    ``T + dist(mean, shell)^2`` in shell units; for :class:`VAE`, the total
    variance of the standardized rows.

    Parameters
    ----------
    estimator : SphericalClusterVAE or VAE
        A fitted skvae estimator to test.
    X : array-like of shape (n_samples, n_features)
        Rows to test, in original units (at least 2 rows).
    n_passes : int, default=10
        Number of independent passes.
    random_state : int, RandomState instance or None, default=0
        Seed of the z draws.

    Returns
    -------
    certificate : CollapseCertificate
        With ``reconstruction_loss``, ``standard_error``, ``collapse_loss``,
        ``n_passes``, and the properties ``certified`` and ``margin``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skvae import SphericalClusterVAE
    >>> from skvae.metrics import collapse_certificate
    >>> X, _ = make_blobs(n_samples=300, n_features=10, centers=4, random_state=0)
    >>> vae = SphericalClusterVAE(n_clusters=4, random_state=0).fit(X)
    >>> cert = collapse_certificate(vae, X)
    >>> cert.certified
    True
    """
    Y, mu, logvar = _posterior(estimator, X)
    if Y.shape[0] < 2:
        raise ValueError(f"collapse_certificate needs n_samples >= 2, got {Y.shape[0]}.")
    return _diagnostics.collapse_certificate(
        estimator.module_, Y, mu, logvar, estimator._collapse_loss(Y),
        n_passes=n_passes, generator=_torch_generator(random_state),
    )

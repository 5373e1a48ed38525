"""Warnings of skvae: the one the library exists to give, PosteriorCollapseWarning."""

__all__ = ["PosteriorCollapseWarning"]


class PosteriorCollapseWarning(UserWarning):
    """The fitted posterior is not certified to depend on the input.

    Raised after :meth:`~skvae.SphericalClusterVAE.fit` (and
    :meth:`~skvae.VAE.fit`) when the collapse certificate fails:
    ``reconstruction_loss_ + 3 * reconstruction_loss_se_`` is not below
    ``collapse_loss_``, so total posterior collapse (``q(z|x)`` the same for
    every ``x``) is not ruled out. It is deliberately not a
    :class:`~sklearn.exceptions.ConvergenceWarning`: users often silence
    those, and this one says the latent coordinates may carry no information.

    Examples
    --------
    >>> import warnings
    >>> from skvae.exceptions import PosteriorCollapseWarning
    >>> issubclass(PosteriorCollapseWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", PosteriorCollapseWarning)  # make it fatal
    """

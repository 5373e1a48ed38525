"""VAEImputer: missing values filled from a VAE fitted on the observed entries, in scikit-learn's imputer contract."""

import numbers

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context, clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _forward
from ._missing import hide_observed, nothing_observed, zero_filled
from ._runtime import torch_threads
from ._spherical import SphericalClusterVAE
from ._validation import FLOAT_DTYPES, fit_or_restore, validate_numeric

#: ``estimator=None`` fits a SphericalClusterVAE with one latent dimension
#: fewer than the features, at most this many (:func:`default_components`).
MAX_DEFAULT_COMPONENTS = 20

#: The fills ``fill_method="auto"`` chooses from.
FILLS = ("vae", "ppca", "blend", "mean")


def default_components(n_features):
    """The default estimator's ``n_components`` for ``n_features`` columns."""
    return int(max(1, min(n_features - 1, MAX_DEFAULT_COMPONENTS)))


def map_decode(module, Y0, observed_mask, decoder_variance, *, max_iter, tol, Y_in=None):
    """Decoded MAP latents of the rows ``Y0`` given their observed entries.

    Each row's latent minimises
    ``|m * (y - decoder(z))|^2 / (2 sigma^2) + |z|^2 / 2``, the negative log
    posterior of ``z`` given the observed entries (docs/theory.rst), starting
    from the encoder's posterior mean of ``Y_in`` (the rows as the encoder
    sees them; default ``Y0``). The rows' problems are independent, so one
    L-BFGS run on their sum solves each: the gradient with respect to a
    row's latent is that row's own.
    """
    mu = _forward.encode(module, Y0 if Y_in is None else Y_in,
                         observed_mask.astype(np.float64))[0]
    if max_iter == 0:
        return _forward.decode(module, mu)
    p = next(module.parameters())
    y = torch.as_tensor(Y0, dtype=p.dtype, device=p.device)
    m = torch.as_tensor(observed_mask, dtype=p.dtype, device=p.device)
    z = torch.tensor(mu, dtype=p.dtype, device=p.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([z], max_iter=max_iter, tolerance_grad=tol,
                                  tolerance_change=1e-12, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        loss = ((y - module.decoder(z)) * m).pow(2).sum() / (2.0 * decoder_variance)
        loss = loss + 0.5 * z.pow(2).sum()
        # Only z's gradient: the fitted weights accumulate none.
        (z.grad,) = torch.autograd.grad(loss, z)
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return module.decoder(z).double().cpu().numpy()


class VAEImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill missing values from a VAE that was fitted on the observed entries only.

    ``fit`` fits a :class:`SphericalClusterVAE` (or the VAE given as
    ``estimator``) on X with its holes: the reconstruction loss runs over the
    observed entries, and the fit is certified not to have collapsed.
    ``transform`` fills each missing entry with the model's reconstruction
    from the most probable latent given the row's observed entries (the
    mode of ``p(z | x_obs)``, found by L-BFGS from the encoder's output);
    for probabilistic PCA this is the exact conditional mean
    ``E[x_mis | x_obs]`` (see :ref:`missing values <missing_values>`).
    Observed entries are returned unchanged, as
    :class:`~sklearn.impute.IterativeImputer` does.

    With ``fill_method="auto"`` the fill is chosen on the data: a first fit
    sees X with a further ``validation_fraction`` of its observed entries
    hidden, and the fill that best predicts the hidden entries wins among
    the VAE's (``"vae"``), the conditional mean under the model's
    probabilistic PCA (``"ppca"``, the fill the encoder itself sees), the
    average of the two (``"blend"``) and the column mean (``"mean"``); the
    model is then refitted on all of X.

    Read more in the :ref:`User Guide <missing_values_guide>`.

    Parameters
    ----------
    estimator : VAE or SphericalClusterVAE, default=None
        The model to fit (cloned). None fits
        ``SphericalClusterVAE(n_components=min(n_features - 1, 20),
        random_state=random_state)``.
    fill_method : {"auto", "vae", "ppca", "blend", "mean"}, default="auto"
        How holes are filled: chosen on hidden entries (``"auto"``), or one
        of the four fills (then X is fitted once).
    validation_fraction : float, default=0.1
        Share of the observed entries hidden to choose the fill (``"auto"``).
    max_search_iter : int, default=100
        Most L-BFGS iterations of the latent search in :meth:`transform`
        (per block of 4096 rows with holes). 0 decodes the encoder's
        posterior mean of the filled row.
    tol : float, default=1e-4
        The search stops when every latent coordinate's gradient is below
        ``tol`` in absolute value.
    random_state : int, RandomState instance or None, default=None
        Seed of the default estimator (ignored when ``estimator`` is given:
        set its own ``random_state``).

    Attributes
    ----------
    estimator_ : VAE or SphericalClusterVAE
        The fitted model.
    fill_method_ : {"vae", "ppca", "blend", "mean"}
        The fill :meth:`transform` uses.
    validation_errors_ : dict or None
        With ``fill_method="auto"``: the root-mean-square error of each fill
        on the hidden entries, in the model's standardized units (None if X
        had too few observed entries to hide any).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.impute.IterativeImputer : Regresses each feature on the others, in turn.
    sklearn.impute.KNNImputer : Fills from the nearest complete neighbours.
    SphericalClusterVAE : The model fitted here; it takes NaN directly for
        ``transform`` and ``score``.

    Notes
    -----
    A row with nothing observed is filled with the decoded prior mean.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_wine
    >>> from skvae import VAEImputer
    >>> X = load_wine().data
    >>> X_missing = X.copy()
    >>> X_missing[np.random.RandomState(0).rand(*X.shape) < 0.1] = np.nan
    >>> imputer = VAEImputer(random_state=0).fit(X_missing)
    >>> X_filled = imputer.transform(X_missing)
    >>> bool(np.isnan(X_filled).any())
    False
    >>> observed = ~np.isnan(X_missing)
    >>> bool(np.array_equal(X_filled[observed], X_missing[observed]))
    True
    >>> bool(imputer.estimator_.collapse_certified_)
    True
    >>> imputer.fill_method_ in ("vae", "ppca", "blend", "mean")
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "fill_method": [StrOptions({"auto", *FILLS})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "max_search_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, fill_method="auto", validation_fraction=0.1,
                 max_search_iter=100, tol=1e-4, random_state=None):
        self.estimator = estimator
        self.fill_method = fill_method
        self.validation_fraction = validation_fraction
        self.max_search_iter = max_search_iter
        self.tol = tol
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the VAE on X, missing entries (NaN) left out of its loss.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with missing values as NaN.
        y : None
            Ignored.

        Returns
        -------
        self : VAEImputer
            The fitted imputer.
        """
        return fit_or_restore(self, self._fit, X)

    def _fit(self, X):
        X = validate_numeric(self, X, reset=True, allow_nan=True)
        self.validation_errors_ = None
        self.fill_method_ = "vae" if self.fill_method == "auto" else self.fill_method
        if self.fill_method == "auto":
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            hidden = hide_observed(X, self.validation_fraction, seed)
            if hidden.any():
                X_hidden = np.where(hidden, np.nan, X)
                model = self._new_estimator(X).fit(X_hidden)
                Y, Y_hidden = model._to_representation(X), model._to_representation(X_hidden)
                fills = self._fills(model, Y_hidden, FILLS)
                self.validation_errors_ = {
                    method: float(np.sqrt(np.mean((fills[method] - Y)[hidden] ** 2)))
                    for method in FILLS
                }
                self.fill_method_ = min(FILLS, key=self.validation_errors_.get)
        self.estimator_ = self._new_estimator(X).fit(X)

    def _new_estimator(self, X):
        if self.estimator is None:
            return SphericalClusterVAE(n_components=default_components(X.shape[1]),
                                       random_state=self.random_state)
        return clone(self.estimator)

    def transform(self, X):
        """Fill the missing entries of X; observed entries are returned unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with missing values as NaN.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            X without NaN (float32 for float32 input, else float64).
        """
        check_is_fitted(self)
        X = validate_numeric(self, X, reset=False, dtype=FLOAT_DTYPES, allow_nan=True)
        missing = np.isnan(X)
        if not missing.any():
            return X.copy()
        model = self.estimator_
        X64 = X.astype(np.float64)
        Y = model._to_representation(X64)
        filled = self._fills(model, Y, [self.fill_method_])[self.fill_method_]
        decoded = model._from_representation(filled)
        out = np.where(missing, decoded, X64)
        # A row with nothing observed: the decoded prior mean (z = 0).
        empty = nothing_observed(X)
        if empty.any():
            prior = model._from_representation(
                _forward.decode(model.module_, np.zeros((1, model.n_components))))
            out[empty] = prior
        return out.astype(X.dtype, copy=False)

    def _fills(self, model, Y, methods):
        """``{method: Y with its missing entries (NaN) filled by it}`` for each of ``methods``.

        The pPCA fill is the encoder's own input and starts the VAE's latent
        search; each fill is computed once, however many methods use it.
        """
        out = {}
        with torch_threads(getattr(model, "n_jobs", None)):
            if "mean" in methods:
                out["mean"] = zero_filled(Y)  # the standardized column mean
            if {"ppca", "vae", "blend"} & set(methods):
                Y_in = model._encoder_input(Y)
                out["ppca"] = Y_in
            if {"vae", "blend"} & set(methods):
                out["vae"] = self._map_fill(model, Y, Y_in)
            if "blend" in methods:
                out["blend"] = 0.5 * (out["vae"] + out["ppca"])
        return out

    def _map_fill(self, model, Y, Y_in):
        """Y with each missing entry decoded from its row's MAP latent; ``Y_in`` the encoder's input."""
        missing = np.isnan(Y)
        F = np.where(missing, 0.0, Y)
        rows = np.flatnonzero(missing.any(axis=1))
        for s in _forward.chunks(rows.size):
            block = rows[s]
            decoded = map_decode(model.module_, F[block], ~missing[block],
                                 model.decoder_variance_, max_iter=self.max_search_iter,
                                 tol=self.tol, Y_in=Y_in[block])
            F[block] = np.where(missing[block], decoded, F[block])
        return F

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

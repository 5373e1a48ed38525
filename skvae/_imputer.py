"""VAEImputer: missing values filled from a VAE fitted on the observed entries, in scikit-learn's imputer contract."""

import numbers

import numpy as np
import torch
from scipy.optimize import nnls
from sklearn.base import (
    BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context, clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _forward
from ._missing import hide_observed, nothing_observed
from ._optimizer import lbfgs
from ._runtime import torch_threads
from ._spherical import SphericalClusterVAE
from ._validation import FLOAT_DTYPES, fit_or_restore, validate_numeric

#: ``estimator=None`` fits a SphericalClusterVAE with one latent dimension
#: fewer than the features, at most this many (:func:`default_components`).
MAX_DEFAULT_COMPONENTS = 20

#: The two fills every filled entry is weighed from.
STACKED = ("vae", "ppca")
#: Each fixed fill as weights of the STACKED fills; the rest of the weight
#: goes to the column mean (0 in the model's standardized units).
FILL_WEIGHTS = {"vae": (1.0, 0.0), "ppca": (0.0, 1.0), "blend": (0.5, 0.5), "mean": (0.0, 0.0)}
#: The fixed fills, whose errors ``fill_method="auto"`` reports.
FILLS = tuple(FILL_WEIGHTS)
#: ``fill_method="auto"``: a column's own weights count as many hidden
#: entries as it has; the weights pooled over all columns count as this many
#: (:func:`stacking_weights`).
POOLED_WEIGHT_ENTRIES = 30


def stacking_weights(fills, truth, columns, n_features):
    """Per-column non-negative weights of the two fills that best predict hidden entries.

    ``fills`` (n_hidden, 2) are the VAE's and the pPCA's fills of the hidden
    entries, ``truth`` their values and ``columns`` their columns. The pooled
    weights are the non-negative least-squares fit over all entries; a
    column with ``n`` hidden entries (at least 2) gets its own fit, averaged
    with the pooled one as ``(n w_col + P w_pooled) / (n + P)``,
    ``P = POOLED_WEIGHT_ENTRIES``, so that a column with few hidden entries
    keeps close to the pooled weights. Weights below 1 in sum shrink the
    fill toward the column mean.
    """
    pooled = nnls(fills, truth)[0]
    weights = np.tile(pooled, (n_features, 1))
    for j in range(n_features):
        rows = columns == j
        n = int(rows.sum())
        if n >= 2:
            own = nnls(fills[rows], truth[rows])[0]
            weights[j] = (n * own + POOLED_WEIGHT_ENTRIES * pooled) / (n + POOLED_WEIGHT_ENTRIES)
    return weights


def default_components(n_features):
    """The default estimator's ``n_components`` for ``n_features`` columns."""
    return int(max(1, min(n_features - 1, MAX_DEFAULT_COMPONENTS)))


def observed_range(X):
    """(smallest, largest) observed value of each column; -inf and inf where none is observed."""
    low, high = np.fmin.reduce(X, axis=0), np.fmax.reduce(X, axis=0)
    return np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(high), np.inf, high)


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
    optimizer = lbfgs([z], max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                      history_size=20, line_search_fn="strong_wolfe")

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

    Two fills are at hand: the VAE's (``"vae"``) and the conditional mean
    under the model's probabilistic PCA (``"ppca"``, the fill the encoder
    itself sees); ``"blend"`` is their average and ``"mean"`` the column
    mean. With ``fill_method="auto"`` they are stacked on the data: a first
    fit sees X with a further ``validation_fraction`` of its observed
    entries hidden, and each column gets the non-negative weights of the two
    fills that best predict its hidden entries, shrunk toward the weights
    pooled over all columns (:func:`stacking_weights`); weight left over
    goes to the column mean. The model is then refitted on all of X.

    With ``keep_range=True`` every fill is clipped to the range its column's
    observed entries spanned in ``fit``: a conditional mean or a decoded
    value beyond every value seen in a column is an extrapolation, and on
    columns the other features predict poorly it can cost more than the
    column mean (benchmarks/results/imputation.md).

    Read more in the :ref:`User Guide <missing_values_guide>`.

    Parameters
    ----------
    estimator : VAE or SphericalClusterVAE, default=None
        The model to fit (cloned). None fits
        ``SphericalClusterVAE(n_components=min(n_features - 1, 20),
        random_state=random_state)``.
    fill_method : {"auto", "vae", "ppca", "blend", "mean"}, default="auto"
        How holes are filled: per-column weights of the two fills learned on
        hidden entries (``"auto"``), or one of the four fills (then X is
        fitted once).
    keep_range : bool, default=True
        Clip each filled entry to ``[data_min_[j], data_max_[j]]``, the range
        of its column's observed entries in :term:`fit` (as
        :class:`~sklearn.impute.IterativeImputer` does with ``min_value``
        and ``max_value`` given). Also applies to the fills weighed by
        ``fill_method="auto"``.
    validation_fraction : float, default=0.1
        Share of the observed entries hidden to weigh the fills (``"auto"``).
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
    fill_method_ : {"stacked", "vae", "ppca", "blend", "mean"}
        The fill :meth:`transform` uses: ``"stacked"`` for the weights
        learned by ``fill_method="auto"`` (``"vae"`` if X had too few
        observed entries to hide any).
    fill_weights_ : ndarray of shape (`n_features_in_`, 2)
        Each column's weights of the VAE's fill and the pPCA fill, in the
        model's standardized units (the rest goes to the column mean).
    validation_errors_ : dict or None
        With ``fill_method="auto"``: the root-mean-square error of each of
        the four fixed fills on the hidden entries, in the model's
        standardized units (None if X had too few observed entries to hide
        any).
    data_min_ : ndarray of shape (`n_features_in_`,)
        Smallest observed value of each column in :term:`fit`.
    data_max_ : ndarray of shape (`n_features_in_`,)
        Largest observed value of each column in :term:`fit`.
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
    >>> imputer.fill_method_, imputer.fill_weights_.shape
    ('stacked', (13, 2))
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "fill_method": [StrOptions({"auto", *FILLS})],
        "keep_range": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "max_search_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, fill_method="auto", keep_range=True,
                 validation_fraction=0.1, max_search_iter=100, tol=1e-4, random_state=None):
        self.estimator = estimator
        self.fill_method = fill_method
        self.keep_range = keep_range
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
        self.data_min_, self.data_max_ = observed_range(X)
        self.validation_errors_ = None
        method = "vae" if self.fill_method == "auto" else self.fill_method
        self.fill_method_ = method
        self.fill_weights_ = np.tile(FILL_WEIGHTS[method], (X.shape[1], 1))
        if self.fill_method == "auto":
            self._stack_on_hidden_entries(X)
        self.estimator_ = self._new_estimator(X).fit(X)

    def _stack_on_hidden_entries(self, X):
        """Fit X with a share of its observed entries hidden; weigh the fills by how they predict them."""
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        hidden = hide_observed(X, self.validation_fraction, seed)
        if not hidden.any():
            return
        X_hidden = np.where(hidden, np.nan, X)
        model = self._new_estimator(X).fit(X_hidden)
        Y, Y_hidden = model._to_representation(X), model._to_representation(X_hidden)
        # The range check sees only what this fit saw.
        low, high = observed_range(X_hidden)
        fills = self._fills(model, Y_hidden, STACKED)
        rows, columns = np.nonzero(hidden)
        both = np.column_stack([self._in_range(model, fills[method], low, high)[rows, columns]
                                for method in STACKED])
        truth = Y[rows, columns]
        self.validation_errors_ = {
            method: float(np.sqrt(np.mean((both @ weights - truth) ** 2)))
            for method, weights in FILL_WEIGHTS.items()
        }
        self.fill_weights_ = stacking_weights(both, truth, columns, X.shape[1])
        self.fill_method_ = "stacked"

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
        # Each column's hole: its weights times the two fills, each in range;
        # the weight left over goes to the column mean (0 here).
        used = [(method, w) for method, w in zip(STACKED, self.fill_weights_.T) if w.any()]
        fills = self._fills(model, Y, [method for method, _ in used])
        combined = np.zeros_like(Y)
        for method, w in used:
            combined += w * self._in_range(model, fills[method], self.data_min_, self.data_max_)
        decoded = model._from_representation(np.where(np.isnan(Y), combined, Y))
        # A row with nothing observed: the decoded prior mean (z = 0).
        empty = nothing_observed(X)
        if empty.any():
            decoded[empty] = model._from_representation(
                _forward.decode(model.module_, np.zeros((1, model.n_components))))
        if self.keep_range:
            decoded = np.clip(decoded, self.data_min_, self.data_max_)
        out = np.where(missing, decoded, X64)
        return out.astype(X.dtype, copy=False)

    def _in_range(self, model, F, low, high):
        """The model's rows ``F`` with each entry clipped to ``[low, high]`` in data units (``keep_range``)."""
        if not self.keep_range:
            return F
        return model._to_representation(np.clip(model._from_representation(F), low, high))

    def _fills(self, model, Y, methods):
        """``{method: Y with its missing entries (NaN) filled by it}`` for ``methods`` among STACKED.

        The pPCA fill is the encoder's own input and starts the VAE's latent
        search, so it is computed once for both.
        """
        out = {}
        if not methods:
            return out
        with torch_threads(getattr(model, "n_jobs", None)):
            Y_in = model._encoder_input(Y)
            if "ppca" in methods:
                out["ppca"] = Y_in
            if "vae" in methods:
                out["vae"] = self._map_fill(model, Y, Y_in)
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

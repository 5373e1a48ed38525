"""The estimator machinery shared by SphericalClusterVAE and VAE (fit, transform, score, pickling)."""

import numbers
import warnings
from abc import abstractmethod

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from . import _diagnostics
from ._networks import _ACTIVATIONS, module_from_state, module_state
from ._export import ExportMixin
from ._fitting import fit_estimator
from ._settings import torch_threads
from ._scaling import row_norms, standardize
from ._training import Constraint
from ._validation import FLOAT_DTYPES, check_finite_output, fit_or_restore, validate_numeric

#: ``early_stopping="auto"`` holds out rows from this many training rows on.
AUTO_EARLY_STOPPING_MIN_ROWS = 20

#: Upper bound of the real parameters that enter float32 training arithmetic
#: (learning rate, beta, free bits, a fixed decoder variance): beyond it a
#: value or its square no longer fits in float32.
FLOAT32_SAFE = 1e30


def _by_chunks(fn, A, n_jobs):
    """``fn`` applied to row blocks of ``A``, written into one preallocated array.

    Every map here is row-wise, so the result equals ``fn(A)``; only a block's
    intermediates exist at a time, so memory stays at the output's size plus
    ``CHUNK_ROWS`` rows whatever n_samples is. Runs with the estimator's
    ``n_jobs`` torch threads.
    """
    out = None
    with torch_threads(n_jobs):
        for s in _diagnostics.chunks(A.shape[0]):
            part = fn(A[s])
            if out is None:
                out = np.empty((A.shape[0], *part.shape[1:]), dtype=part.dtype)
            out[s] = part
    return out


class _BaseVAE(ExportMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Fit/transform/score template; subclasses supply the data representation."""

    _parameter_constraints: dict = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, FLOAT32_SAFE, closed="both")],
        "decoder_variance": [
            StrOptions({"learned"}),
            Interval(numbers.Real, 1 / FLOAT32_SAFE, FLOAT32_SAFE, closed="both"),
        ],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [
            StrOptions({"auto"}), Interval(numbers.Real, 0, FLOAT32_SAFE, closed="right"),
        ],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "linear_path": ["boolean"],
        "warm_start": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_certificate_passes": [Interval(numbers.Integral, 10, None, closed="left")],
        "device": [str],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ----------------------------------------------------------- subclass hooks
    @abstractmethod
    def _fit_data_map(self, X, progress):
        """Fit the data map on X; return (fitted attributes, Y), Y the modelled rows.

        ``progress`` (a :class:`~skvae._progress.Progress`) times the phases.
        """

    @abstractmethod
    def _fit_band(self, Y, ppca, seed, progress):
        """Fit what constrains training on Y; return (fitted attributes, constraint or None).

        The attributes include ``total_variance_`` and ``collapse_loss_``;
        ``ppca`` is the probabilistic PCA of Y.
        """

    @abstractmethod
    def _collapse_loss(self, Y):
        """Smallest loss on rows Y of a decoder that ignores its input."""

    @abstractmethod
    def _standardization(self):
        """The fitted standardization (``mean_``, ``scale_``) in front of the model."""

    @abstractmethod
    def _to_representation(self, X):
        """Map validated rows in original units to the space the VAE models."""

    @abstractmethod
    def _from_representation(self, Y):
        """Map decoder outputs back to original units."""

    @abstractmethod
    def _log_abs_det_jacobian(self, X):
        """log|det| of the Jacobian of _to_representation at validated rows X."""

    def _output_layer(self):
        return None

    def _holds_out_rows(self, n_samples, incremental):
        """Whether this fit holds out ``validation_fraction`` of the rows to stop on.

        ``early_stopping="auto"`` holds them out in ``fit`` when there are at
        least AUTO_EARLY_STOPPING_MIN_ROWS rows, never in ``partial_fit``.
        """
        if incremental:
            return False
        if self.early_stopping == "auto":
            return n_samples >= AUTO_EARLY_STOPPING_MIN_ROWS
        return bool(self.early_stopping)

    def _constraint(self):
        """The fitted reconstruction constraint, to continue training under it."""
        if getattr(self, "reconstruction_target_", None) is None:
            return None
        return Constraint(self.reconstruction_target_, self.collapse_loss_)

    def _schedule(self):
        """KL-weight schedule: dict of TrainingConfig fields (kl_weight, ...)."""
        return {}

    def _training_summary(self, result):
        """Extra fitted attributes from the training result."""
        return {}

    # --------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with torch_threads(self.n_jobs):
            return fit_or_restore(self, fit_estimator, self, X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train one epoch on a block of rows, continuing from the previous calls.

        The first call fits the standardization, the shell radii and the
        feasible band on its block (so it should be a representative sample
        of at least ``n_clusters`` rows) and builds the networks; every call
        then trains one epoch on its block, continuing Adam's state and the
        constraint's multiplier. The diagnostics (``reconstruction_loss_``,
        ``collapse_certified_``, ``explained_fraction_``, ...) are evaluated
        on the block of the latest call. ``max_iter``, the stopping rule and
        ``early_stopping`` do not apply. This is what
        ``dask_ml.wrappers.Incremental`` calls for each block of a dask array.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A block of training rows.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The updated estimator.
        """
        with torch_threads(self.n_jobs):
            return fit_or_restore(self, fit_estimator, self, X, incremental=True)

    # --------------------------------------------------------------- inference
    def _validated(self, X):
        check_is_fitted(self)
        return validate_numeric(self, X, reset=False, dtype=FLOAT_DTYPES)

    def _checked(self, method, out, X):
        """``out`` in X's dtype, or a ValueError naming rows of X too far out for it."""
        scaler = self._standardization()

        def describe(i, dtype):
            d = row_norms(standardize(X[i : i + 1], scaler.mean_, scaler.scale_))[0]
            return (
                f"its standardized distance from the training mean is {d:.3g}, where "
                f"training rows lie at root-mean-square distance "
                f"{np.sqrt(self.n_features_in_):.3g} or less. Rows this far outside "
                f"the training data are beyond what the model can evaluate in {dtype}; "
                "check their units or remove them."
            )

        return check_finite_output(self, method, out, describe, X.dtype)

    def transform(self, X):
        """Posterior means E[z | x] of the rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in original units.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Latent coordinates, float32 for float32 input (else float64); a
            row's value does not depend on the other rows (up to rounding,
            see :ref:`reproducibility`).

        Raises
        ------
        ValueError
            If a row lies so far outside the training data that its latent
            coordinates overflow float64.
        """
        X = self._validated(X)
        out = _by_chunks(
            lambda x: _diagnostics.encode(self.module_, self._to_representation(x))[0], X,
            self.n_jobs,
        )
        return self._checked("transform", out, X)

    def inverse_transform(self, X):
        """Decode latent coordinates back to the original feature space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent coordinates, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Reconstructions in original units, float32 for float32 input.

        Raises
        ------
        ValueError
            If a latent row is so far from the prior's mass that its
            reconstruction overflows float64.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=FLOAT_DTYPES)
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}."
                f"inverse_transform is expecting {self.n_components} latent "
                "coordinates (n_components) as input."
            )
        out = _by_chunks(
            lambda z: self._from_representation(_diagnostics.decode(self.module_, z)), Z,
            self.n_jobs,
        )

        def describe(i, dtype):
            norm, bulk = row_norms(Z[i : i + 1])[0], np.sqrt(self.n_components) + 5
            if norm > bulk:
                return (
                    f"its latent norm is {norm:.3g}, where the prior N(0, I) puts "
                    f"almost every row below {bulk:.3g}; latent rows this far out "
                    f"are beyond what the decoder can map in {dtype}."
                )
            scale = self._standardization().scale_
            return (
                f"its latent norm {norm:.3g} is typical of the prior, but the decoded "
                f"row in original units (feature scales up to {scale.max():.3g}) "
                f"exceeds the {dtype} range: the decoder's outputs are extreme, as "
                "after a diverging fit (lower learning_rate_init)."
            )

        return check_finite_output(self, "inverse_transform", out, describe, Z.dtype)

    def score_samples(self, X):
        """Evidence lower bound of each row, as a log-density of the original data.

        ``E_q[log N(y; y_hat(z), sigma^2 I)] - KL(q(z|x) || p(z)) + log|det J(x)|``
        in nats, where ``y`` is the row in the modelled representation,
        ``sigma^2 = decoder_variance_`` and ``J`` the Jacobian of the map from
        original units to that representation. The expectation uses a fixed
        set of noise draws, so repeated calls agree and a row's value does not
        depend on the other rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in original units.

        Returns
        -------
        elbo : ndarray of shape (n_samples,)
            Lower bound on log p(x) of each row, float32 for float32 input.

        Raises
        ------
        ValueError
            If a row lies so far outside the training data that its
            log-density is below the float64 range, or (with
            ``shell_map="paper"``) a row equals the training mean, where the
            paper's map makes the density infinite.
        """
        X = self._validated(X)
        return self._checked(
            "score_samples", _by_chunks(self._score_block, X, self.n_jobs), X
        )

    def _score_block(self, X):
        Y = self._to_representation(X)
        elbo = _diagnostics.elbo(self.module_, Y, self._score_eps, self.decoder_variance_)
        return elbo + self._log_abs_det_jacobian(X)

    def score(self, X, y=None):
        """Mean ELBO of the rows of X (higher is better; see :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in original units.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Average lower bound on log p(x), in nats.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw rows from the generative model: z ~ N(0, I), decoded to X.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seed of the latent draws.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Decoded samples in original units (decoder means, no output noise).
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        Z = check_random_state(random_state).standard_normal((n_samples, self.n_components))
        return self.inverse_transform(Z)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.n_components

    # ------------------------------------------------------------- persistence
    def __getstate__(self):
        # A copy: BaseEstimator returns the instance's own __dict__ for
        # classes outside sklearn, and pickling must not change the model.
        state = dict(super().__getstate__())
        module = state.get("module_")
        if isinstance(module, torch.nn.Module):
            # Stored as numpy weights plus the architecture: CPU-portable, and
            # skops.io loads it trusting only skvae types (no torch objects).
            state["module_"] = module_state(module)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if not isinstance(state.get("module_"), dict):
            return
        target = torch.device(self.device_)
        if target.type == "cuda" and not _cuda_device_exists(target):
            warnings.warn(
                f"{type(self).__name__} was fitted on {self.device_}, which this "
                f"machine does not have ({torch.cuda.device_count()} CUDA "
                "device(s)); it was loaded on the CPU.",
                UserWarning,
            )
            self.device_ = "cpu"
            target = torch.device("cpu")
        self.module_ = module_from_state(state["module_"], target)


def _cuda_device_exists(device):
    """Whether ``device`` (type cuda) names a GPU present on this machine."""
    if not torch.cuda.is_available():
        return False
    return (device.index or 0) < torch.cuda.device_count()

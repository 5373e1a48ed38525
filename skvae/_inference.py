"""Inference on a fitted model: transform, inverse_transform, score and sample, row by row."""

import numbers
from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from . import _forward
from ._missing import nothing_observed, observed, zero_filled
from ._ppca_missing import conditional_fill
from ._scaling import row_norms, standardize
from ._runtime import torch_threads
from ._validation import FLOAT_DTYPES, check_finite_output, validate_numeric


def _by_chunks(fn, A, n_jobs):
    """``fn`` applied to row blocks of ``A``, written into one preallocated array.

    Every map here is row-wise, so the result equals ``fn(A)``; only a block's
    intermediates exist at a time, so memory stays at the output's size plus
    ``CHUNK_ROWS`` rows whatever n_samples is. Runs with the estimator's
    ``n_jobs`` torch threads.
    """
    out = None
    with torch_threads(n_jobs):
        for s in _forward.chunks(A.shape[0]):
            part = fn(A[s])
            if out is None:
                out = np.empty((A.shape[0], *part.shape[1:]), dtype=part.dtype)
            out[s] = part
    return out


class InferenceMixin(TransformerMixin, metaclass=ABCMeta):
    """transform, inverse_transform, score_samples, score and sample of a fitted VAE.

    Subclasses supply the map between original units and the modelled
    representation; ``module_``, ``_score_eps`` and ``decoder_variance_``
    are fitted attributes. It is a TransformerMixin so that ``set_output``
    wraps the ``transform`` defined here.
    """

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

    def _encoder_input(self, Y):
        """Modelled rows as the encoder sees them: missing entries filled (docs/theory.rst).

        Each missing entry gets its conditional mean under the fitted fill
        model (a probabilistic PCA of the training rows); rows without NaN
        are unchanged.
        """
        fill = getattr(self, "_fill_ppca", None)
        return zero_filled(Y) if fill is None else conditional_fill(fill, Y)

    def _encode(self, Y):
        """Posterior means and log-variances of modelled rows (NaN: missing)."""
        return _forward.encode(self.module_, self._encoder_input(Y), observed(Y)[1])

    def _validated(self, X):
        check_is_fitted(self)
        return validate_numeric(self, X, reset=False, dtype=FLOAT_DTYPES, allow_nan=True)

    def _checked(self, method, out, X):
        """``out`` in X's dtype, or a ValueError naming rows of X too far out for it."""
        scaler = self._standardization()

        def describe(i, dtype):
            d = row_norms(zero_filled(standardize(X[i : i + 1], scaler.mean_, scaler.scale_)))[0]
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
            Rows to encode, in original units.

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
        out = _by_chunks(self._transform_block, X, self.n_jobs)
        return self._checked("transform", out, X)

    def _transform_block(self, X):
        mu = self._encode(self._to_representation(X))[0]
        # With nothing observed the posterior is the prior: its mean is 0.
        mu[nothing_observed(X)] = 0.0
        return mu

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
            lambda z: self._from_representation(_forward.decode(self.module_, z)), Z,
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
            Rows in original units whose bound is computed.

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
        elbo = _forward.elbo(self.module_, Y, self._score_eps, self.decoder_variance_,
                             Y_in=self._encoder_input(Y),
                             outlier=(self.outlier_weight, self.outlier_variance_))
        # Nothing observed: q = the prior gives ELBO 0 = log p(no observation).
        elbo[nothing_observed(X)] = 0.0
        return elbo + self._log_abs_det_jacobian(X)

    def score(self, X, y=None):
        """Mean ELBO of the rows of X (higher is better; see :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows whose mean lower bound is returned, in original units.
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

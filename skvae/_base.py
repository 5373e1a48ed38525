"""The estimator shared by SphericalClusterVAE and VAE: parameters, and fit as phase methods."""

import copy
import numbers
from abc import abstractmethod

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions

from . import _diagnostics, _forward
from ._export import ExportMixin, Standardize, Unstandardize
from ._feasible import mean_squared_distance
from ._missing import check_missing_pattern, masked_mean, observed, observed_per_row
from ._fitting import (
    MAX_CURVE_ENTRIES, MIN_SCORE_PAIRS, FitRun, check_first_rows, fit_seeds, warn_after_fit,
)
from ._inference import InferenceMixin
from ._networks import _ACTIVATIONS, build_vae, start_at_ppca
from ._persistence import PersistenceMixin
from ._ppca import fit_ppca
from ._ppca_missing import fit_linear_models
from ._progress import Progress
from ._runtime import (
    check_network_size, hidden_sizes, resolve_device, torch_threads,
)
from ._constraint import Constraint
from ._training import diverged
from ._training_phase import TrainingPhaseMixin
from ._validation import fit_or_restore, validate_numeric

#: The score's broad outlier component has this many times the training rows'
#: variance per entry about their mean (docs/theory.rst, "The score's outlier
#: component").
OUTLIER_SCALE = 4.0

#: Upper bound of the real parameters that enter float32 training arithmetic
#: (learning rate, beta, free bits, a fixed decoder variance): beyond it a
#: value or its square no longer fits in float32.
FLOAT32_SAFE = 1e30


class _BaseVAE(
    TrainingPhaseMixin, InferenceMixin, PersistenceMixin, ExportMixin,
    ClassNamePrefixFeaturesOutMixin, BaseEstimator,
):
    """Fit template: the phases of a fit, with hooks for the data map and the band.

    ``fit`` is :meth:`_initialize` (unless it continues a fitted model with
    ``warm_start``) and :meth:`_run_epochs` for up to ``max_iter`` epochs;
    ``partial_fit`` is :meth:`_initialize` on its first call and
    :meth:`_run_epochs` for one epoch. Holding out rows and the training
    loop's settings are :class:`TrainingPhaseMixin`'s; inference is
    :class:`InferenceMixin`'s.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, FLOAT32_SAFE, closed="both")],
        "decoder_variance": [
            StrOptions({"learned"}),
            Interval(numbers.Real, 1 / FLOAT32_SAFE, FLOAT32_SAFE, closed="both"),
        ],
        "outlier_weight": [Interval(numbers.Real, 0, 1, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [
            StrOptions({"auto"}), Interval(numbers.Real, 0, FLOAT32_SAFE, closed="right"),
        ],
        "learning_rate": [StrOptions({"auto", "constant", "adaptive"})],
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

    #: Give the encoder the mask of observed entries as extra inputs: an
    #: ablation (benchmarks/missing_fill.py), off in every public estimator.
    _mask_inputs = False

    def _set_init_params(self, values):
        """Store each constructor argument unchanged under its own name (scikit-learn's rule).

        ``values`` is the ``locals()`` of the subclass's ``__init__``, whose
        signature lists the parameters.
        """
        for name in self._get_param_names():
            setattr(self, name, values[name])

    # ----------------------------------------------------------- subclass hooks
    @abstractmethod
    def _fit_data_map(self, X, progress):
        """Fit the data map on X; return (fitted attributes, Y), Y the modelled rows.

        ``progress`` (a :class:`~skvae._progress.Progress`) times the phases.
        """

    @abstractmethod
    def _fit_band(self, Y, Y_in, ppca, seed, progress):
        """Fit what constrains training on Y; return (fitted attributes, constraint or None).

        The attributes include ``total_variance_`` and ``collapse_loss_``;
        ``Y_in`` are the rows with their holes filled (:meth:`_encoder_input`)
        and ``ppca`` is their probabilistic PCA.
        """

    @abstractmethod
    def _collapse_loss(self, Y):
        """Smallest loss on rows Y of a decoder that ignores its input."""

    def _output_layer(self):
        """The decoder's norm-constraint layer ``(r_min, r_max, knee)``, or None."""
        return None

    def _export_maps(self):
        # Standardization alone; SphericalClusterVAE's geometry supplies its own.
        scaler = self._standardization()
        return Standardize(scaler.mean_, scaler.scale_), Unstandardize(scaler.mean_, scaler.scale_)

    def _schedule(self):
        """KL-weight schedule: dict of TrainingConfig fields (kl_weight, ...)."""
        return {}

    def _training_summary(self, result):
        """Extra fitted attributes from the training result."""
        return {}

    def _constraint(self):
        """The fitted reconstruction constraint, to continue training under it."""
        if getattr(self, "reconstruction_target_", None) is None:
            return None
        return Constraint(self.reconstruction_target_, self.collapse_loss_)

    # --------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows in original units.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with torch_threads(self.n_jobs):
            return fit_or_restore(self, self._fit, X, incremental=False)

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
            A block of training rows, in original units.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The estimator, trained one more epoch on X.
        """
        with torch_threads(self.n_jobs):
            return fit_or_restore(self, self._fit, X, incremental=True)

    # ------------------------------------------------------------- fit phases
    def _fit(self, X, incremental):
        """One call of fit or partial_fit: set up (or continue), then train and certify."""
        resume = hasattr(self, "module_") and (incremental or self.warm_start)
        if incremental and self.early_stopping is True:
            raise ValueError("partial_fit does not support early_stopping=True.")
        X = validate_numeric(self, X, reset=not resume, allow_nan=True)
        check_missing_pattern(X)
        run = self._continue(X, incremental) if resume else self._initialize(X, incremental)
        self._run_epochs(run, 1 if incremental else self.max_iter)

    def _new_run(self, X, *, resume, incremental):
        """The call's settings, seeds, progress report and random generators."""
        check_network_size(X.shape[1], self.n_components, hidden_sizes(self.hidden_layer_sizes))
        device = resolve_device(self.device)
        calls = self.n_partial_fit_calls_ if resume else 0
        seeds = fit_seeds(self.random_state, calls)
        return FitRun(
            n_samples=X.shape[0], resume=resume, incremental=incremental, calls=calls,
            seeds=seeds, device=device,
            # Reports phases when verbose; a local, never stored on the estimator.
            progress=Progress(self.verbose, type(self).__name__),
            generator=torch.Generator().manual_seed(seeds[1]),
            noise_generator=torch.Generator(device=device).manual_seed(seeds[2]),
        )

    def _set(self, attrs):
        # Set as soon as fitted, so later phases can apply them; a failed fit
        # restores the estimator's previous __dict__ whole (fit_or_restore).
        for name, value in attrs.items():
            setattr(self, name, value)

    def _initialize(self, X, incremental):
        """Data map, probabilistic PCA, band, held-out rows and the networks at the linear start."""
        check_first_rows(X)
        run = self._new_run(X, resume=False, incremental=incremental)
        attrs, run.Y = self._fit_data_map(X, run.progress)
        self._set(attrs)
        with run.progress.phase("probabilistic PCA (linear start)", "linear start"):
            # The fill model completes rows with holes wherever the encoder
            # sees them (docs/theory.rst); on complete rows it is one more
            # rank of the same SVD.
            run.ppca, fill = fit_linear_models(run.Y, self.n_components, run.seeds[0])
        self._set({"_fill_ppca": fill})
        run.Y_in, run.M = self._encoder_input(run.Y), observed(run.Y)[1]
        band, run.constraint = self._fit_band(run.Y, run.Y_in, run.ppca, run.seeds[0],
                                              run.progress)
        self._set(band)
        run.total_variance = self.total_variance_
        self._hold_out(run)
        # The start is fitted on the rows training sees, so that the held-out
        # rows judge it as fairly as every later epoch.
        start = run.ppca
        if self.linear_path and run.Y_val is not None:
            with run.progress.phase("probabilistic PCA of the training rows", "linear start",
                                    report=False):
                start = fit_ppca(run.Y_fit_in, self.n_components)
        run.module = build_vae(
            n_features=X.shape[1],
            n_components=self.n_components,
            hidden_layer_sizes=hidden_sizes(self.hidden_layer_sizes),
            activation=self.activation,
            output_layer=self._output_layer(),
            device=run.device,
            generator=run.generator,
            linear_start=start if self.linear_path else None,
            mask_inputs=self._mask_inputs,
        )
        return run

    def _continue(self, X, incremental):
        """A fitted model's data map, band and networks, to train on (warm_start, partial_fit)."""
        run = self._new_run(X, resume=True, incremental=incremental)
        run.Y = self._to_representation(X)
        run.Y_in, run.M = self._encoder_input(run.Y), observed(run.Y)[1]
        run.constraint = self._constraint()
        # A float32 training copy; the fitted float64 module stays untouched
        # until the call succeeds.
        run.module = copy.deepcopy(self.module_).float().to(run.device)
        # The band is the first fit's; explained_fraction_ refers to this call's rows.
        run.total_variance = mean_squared_distance(run.Y, masked_mean(run.Y))
        self._hold_out(run)
        return run

    def _run_epochs(self, run, max_iter):
        """Train up to ``max_iter`` epochs, certify, and set the fitted attributes."""
        result, config = self._train(run, max_iter)
        # The training copies are not needed further.
        run.Y_fit = run.Y_val = run.Y_fit_in = run.Y_val_in = None
        if result.kept_start and not run.resume and self.linear_path:
            # No epoch beat the linear start on the held-out rows: the fit is
            # probabilistic PCA, now of every row.
            start_at_ppca(run.module, run.ppca)
        cert, mu, logvar = self._certify(run, result, config)
        self._store(run, result, config, cert, mu, logvar)
        run.progress.note(
            f"{'certified' if cert.certified else 'NOT certified'}: R_hat + 3 SE = "
            f"{cert.reconstruction_loss + 3 * cert.standard_error:.6g} vs delta_collapse = "
            f"{cert.collapse_loss:.6g}; explained {self.explained_fraction_:.1%}"
        )
        # partial_fit runs one epoch by design: only the certificate is reported.
        warn_after_fit(type(self).__name__, result, cert, run.constraint,
                       max_iter=self.max_iter, tol=self.tol, convergence=not run.incremental)

    def _certify(self, run, result, config):
        """(certificate, posterior means, log-variances) of every row of the call.

        They use the network in its training precision: its decoder passes
        are cheaper than in float64, and float32 rounding of R-hat (relative
        ~1e-6) is far below the Monte Carlo error the test allows for. With
        partial_fit they refer to the block of the latest call.
        """
        with run.progress.phase(f"collapse certificate ({self.n_certificate_passes} passes)",
                                "certificate"):
            mu, logvar = _forward.encode(run.module, run.Y_in, run.M)
            cert = _diagnostics.collapse_certificate(
                run.module, run.Y, mu, logvar,
                self._collapse_loss(run.Y) if run.resume else self.collapse_loss_,
                n_passes=self.n_certificate_passes, generator=run.generator,
            )
        if not (np.isfinite(cert.reconstruction_loss) and np.isfinite(mu).all()
                and np.isfinite(logvar).all()):
            # The weights can be finite and still overflow float32 on the
            # training rows (a last step of an absurd learning rate).
            raise diverged(result.n_iter - 1, config)
        return cert, mu, logvar

    def _store(self, run, result, config, cert, mu, logvar):
        """Set the fitted attributes of the trained model and its diagnostics."""
        # Served inference runs in float64 so a row's output does not depend
        # on which other rows share its batch (float32 kernels may sum in
        # another order); eval mode makes the output layer's norms overflow-safe.
        module = run.module.double().eval()
        # Variances are per observed entry: R and T sum over observed entries only.
        entries = observed_per_row(run.M, run.Y.shape[1])
        if self.decoder_variance == "learned":
            # The maximum-likelihood variance: squared error per observed entry,
            # on the training rows, or where rows were held out, at least the
            # held-out rows' (docs/theory.rst).
            decoder_variance = max(cert.reconstruction_loss, config.recon_floor) / entries
            if result.heldout_variance is not None:
                decoder_variance = max(decoder_variance, result.heldout_variance[0])
        else:
            decoder_variance = float(self.decoder_variance)
        with run.progress.phase("posterior diagnostics", "diagnostics", report=False):
            diagnostics = dict(
                active_units_=_diagnostics.active_units(mu),
                kl_per_dimension_=_diagnostics.mean_kl(mu, logvar),
                mutual_information_=_diagnostics.mutual_information(
                    mu, logvar, generator=run.generator
                ),
            )
        scores = result.validation_scores
        curve = (list(self.loss_curve_) if run.resume else []) + result.loss_curve
        attrs = dict(
            validation_scores_=scores,
            best_validation_score_=None if scores is None else max(scores),
            module_=module,
            device_=str(run.device),
            batch_size_=config.batch_size,
            learning_rate_=config.learning_rate,
            loss_curve_=curve[-MAX_CURVE_ENTRIES:] if run.incremental else curve,
            n_iter_=config.first_epoch + result.n_iter,
            n_samples_seen_=(self.n_samples_seen_ if run.resume else 0) + run.n_samples,
            n_partial_fit_calls_=run.calls + 1 if run.incremental else 0,
            reconstruction_loss_=cert.reconstruction_loss,
            reconstruction_loss_se_=cert.standard_error,
            collapse_certified_=cert.certified,
            explained_fraction_=1.0 - cert.reconstruction_loss / run.total_variance,
            decoder_variance_=decoder_variance,
            outlier_variance_=max(OUTLIER_SCALE * run.total_variance / entries, decoder_variance),
            **diagnostics,
            # Adam's moments (2x the weights) are kept only where they will be used.
            _training_state=result.state if run.incremental or self.warm_start else None,
            **self._training_summary(result),
        )
        if not run.resume:
            attrs["_score_eps"] = _forward.moment_matched_normal(
                max(MIN_SCORE_PAIRS, self.n_components), self.n_components, run.generator
            )
        attrs["fit_times_"] = dict(run.progress.times)
        self._set(attrs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        # Missing values are modelled (docs/theory.rst); infinity is refused.
        tags.input_tags.allow_nan = True
        return tags

    @property
    def _n_features_out(self):
        return self.n_components


"""The fit pipeline: input checks, data map, constrained training, certificate, attributes."""

import copy
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _diagnostics
from .exceptions import PosteriorCollapseWarning
from ._feasible import mean_squared_distance
from ._networks import build_vae, start_at_ppca
from ._ppca import fit_ppca
from ._progress import Progress
from ._scaling import check_not_constant
from ._settings import (
    batch_and_learning_rate, check_network_size, hidden_sizes, resolve_device, validation_split,
)
from ._training import TrainingConfig, diverged, train
from ._validation import validate_numeric

#: score_samples' noise rows, shared by every row (common random numbers):
#: at least this many antithetic pairs, and at least n_components.
MIN_SCORE_PAIRS = 8
#: partial_fit keeps this many recent entries of loss_curve_, so that the
#: fitted state does not grow with the number of blocks (or rows) seen.
MAX_CURVE_ENTRIES = 1000


def _seeds(est, calls):
    """Four int32 seeds from random_state; later partial_fit calls get new ones."""
    base = check_random_state(est.random_state).randint(np.iinfo(np.int32).max, size=4)
    return [int((b + 7919 * calls) % np.iinfo(np.int32).max) for b in base]


def _check_first_rows(X):
    """What the rows that fit the data map and band must satisfy."""
    if X.shape[0] < 2:
        raise ValueError(
            f"n_samples={X.shape[0]}: at least 2 samples are needed to fit a VAE."
        )
    check_not_constant(X)


def _split(est, Y, seed):
    """Rows to take gradient steps on and the held-out rows, named error if the first are identical."""
    Y_fit, Y_val = validation_split(Y, est.validation_fraction, seed)
    try:
        check_not_constant(Y_fit)
    except ValueError:
        raise ValueError(
            f"The {Y_fit.shape[0]} rows left for training after early_stopping "
            f"held out validation_fraction={est.validation_fraction} of X "
            "are all identical (up to float64 rounding); use more rows or "
            "early_stopping=False."
        ) from None
    return Y_fit, Y_val


def fit_estimator(est, X, *, incremental=False):
    """Fit ``est`` on X in place: checks, data map, training, certificate, attributes.

    ``incremental=False`` is ``fit``: from scratch, or with ``warm_start``
    from the fitted networks, data map and optimizer state, for up to
    ``max_iter`` epochs. ``incremental=True`` is ``partial_fit``: the first
    call fits the data map and the feasible band on its block, every call
    trains one epoch on its block, continuing the optimizer and multiplier.
    """
    fitted = hasattr(est, "module_")
    resume = fitted and (incremental or est.warm_start)
    if incremental and est.early_stopping is True:
        raise ValueError("partial_fit does not support early_stopping=True.")
    X = validate_numeric(est, X, reset=not resume)
    if not resume:
        _check_first_rows(X)
    n_features = X.shape[1]
    hidden = hidden_sizes(est.hidden_layer_sizes)
    check_network_size(n_features, est.n_components, hidden)
    device = resolve_device(est.device)
    calls = est.n_partial_fit_calls_ if resume else 0
    seeds = _seeds(est, calls)
    n_samples = X.shape[0]

    # Reports phases when verbose; a local, never stored on the estimator.
    progress = Progress(est.verbose, type(est).__name__)
    generator = torch.Generator().manual_seed(seeds[1])
    noise_generator = torch.Generator(device=device).manual_seed(seeds[2])
    if resume:
        # The data map and the band stay those of the first fit / block.
        attrs = {}
        Y = est._to_representation(X)
        constraint = est._constraint()
        # A float32 training copy; the fitted float64 module stays untouched
        # until the call succeeds.
        module = copy.deepcopy(est.module_).float().to(device)
    else:
        attrs, Y = est._fit_data_map(X, progress)
        # Set now so the data map can be applied below; a failed fit restores
        # the estimator's previous __dict__ whole.
        for name, value in attrs.items():
            setattr(est, name, value)
        with progress.phase("probabilistic PCA (linear start)"):
            ppca = fit_ppca(Y, est.n_components)
        band, constraint = est._fit_band(Y, ppca, seeds[0], progress)
        attrs.update(band)
        for name, value in band.items():
            setattr(est, name, value)
    # The data map, the band and the certificate use every row; early
    # stopping holds rows out of the gradient steps only, to decide when to
    # stop and which epoch to keep.
    Y_fit, Y_val = Y, None
    if est._holds_out_rows(n_samples, incremental):
        Y_fit, Y_val = _split(est, Y, seeds[3])
    if not resume:
        # The start is fitted on the rows training sees, so that the held-out
        # rows judge it as fairly as every later epoch.
        start = None
        if est.linear_path:
            start = ppca if Y_val is None else fit_ppca(Y_fit, est.n_components)
        module = build_vae(
            n_features=n_features,
            n_components=est.n_components,
            hidden_layer_sizes=hidden,
            activation=est.activation,
            output_layer=est._output_layer(),
            device=device,
            generator=generator,
            linear_start=start,
        )
    batch_size, learning_rate = batch_and_learning_rate(
        est.batch_size, est.learning_rate_init, Y_fit.shape[0]
    )
    # With resume the band is the first fit's; explained_fraction_ refers to
    # the rows of this call.
    total_variance = (
        mean_squared_distance(Y, Y.mean(axis=0)) if resume else est.total_variance_
    )
    config = TrainingConfig(
        beta=est.beta,
        decoder_variance=est.decoder_variance,
        max_iter=1 if incremental else est.max_iter,
        batch_size=batch_size,
        learning_rate=learning_rate,
        tol=est.tol,
        n_iter_no_change=est.n_iter_no_change,
        constraint=constraint,
        recon_floor=1e-9 * total_variance,
        progress=progress,
        first_epoch=est.n_iter_ if resume else 0,
        **est._schedule(),
    )
    Y_train = torch.as_tensor(Y_fit, dtype=torch.float32, device=device)
    if Y_val is not None:
        Y_val = torch.as_tensor(Y_val, dtype=torch.float32, device=device)
    progress.start_training(config.max_iter, Y_train.shape[0], config.batch_size)
    result = train(
        module, Y_train, config, generator=generator,
        noise_generator=noise_generator, Y_val=Y_val,
        resume=est._training_state if resume else None,
    )
    progress.end_training(
        result.n_iter, "stopping rule met" if result.converged else "reached max_iter"
    )
    del Y_train, Y_val, Y_fit
    if result.kept_start and not resume and est.linear_path:
        # No epoch beat the linear start on the held-out rows: the fit is
        # probabilistic PCA, now of every row.
        start_at_ppca(module, ppca)
    # The certificate and the posterior statistics use the network in its
    # training precision: its decoder passes are cheaper than in float64, and
    # float32 rounding of R-hat (relative ~1e-6) is far below the Monte Carlo
    # error the test allows for. They are computed on the rows the band was
    # fitted on, every row of X (early stopping's held-out rows included);
    # with partial_fit, on the block of the latest call.
    with progress.phase(f"collapse certificate ({est.n_certificate_passes} passes)"):
        mu, logvar = _diagnostics.encode(module, Y)
        cert = _diagnostics.collapse_certificate(
            module, Y, mu, logvar, est._collapse_loss(Y) if resume else est.collapse_loss_,
            n_passes=est.n_certificate_passes, generator=generator,
        )
    if not (np.isfinite(cert.reconstruction_loss) and np.isfinite(mu).all()
            and np.isfinite(logvar).all()):
        # The weights can be finite and still overflow float32 on the
        # training rows (a last step of an absurd learning rate).
        raise diverged(result.n_iter - 1, config)
    # Served inference runs in float64 so a row's output does not depend on
    # which other rows share its batch (float32 kernels may sum in another
    # order); eval mode makes the output layer's norms overflow-safe.
    module = module.double().eval()
    if est.decoder_variance == "learned":
        decoder_variance = max(cert.reconstruction_loss, config.recon_floor) / n_features
    else:
        decoder_variance = float(est.decoder_variance)
    scores = result.validation_scores
    curve = (list(est.loss_curve_) if resume else []) + result.loss_curve
    attrs.update(
        validation_scores_=scores,
        best_validation_score_=None if scores is None else max(scores),
        module_=module,
        device_=str(device),
        loss_curve_=curve[-MAX_CURVE_ENTRIES:] if incremental else curve,
        n_iter_=config.first_epoch + result.n_iter,
        n_samples_seen_=(est.n_samples_seen_ if resume else 0) + n_samples,
        n_partial_fit_calls_=calls + 1 if incremental else 0,
        reconstruction_loss_=cert.reconstruction_loss,
        reconstruction_loss_se_=cert.standard_error,
        collapse_certified_=cert.certified,
        explained_fraction_=1.0 - cert.reconstruction_loss / total_variance,
        decoder_variance_=decoder_variance,
        active_units_=_diagnostics.active_units(mu),
        kl_per_dimension_=_diagnostics.kl_by_dimension(mu, logvar),
        mutual_information_=_diagnostics.mutual_information(
            mu, logvar, generator=generator
        ),
        # Adam's moments (2x the weights) are kept only where they will be used.
        _training_state=result.state if incremental or est.warm_start else None,
        **est._training_summary(result),
    )
    if not resume:
        attrs["_score_eps"] = _diagnostics.moment_matched_normal(
            max(MIN_SCORE_PAIRS, est.n_components), est.n_components, generator
        )
    for name, value in attrs.items():
        setattr(est, name, value)
    progress.note(
        f"{'certified' if cert.certified else 'NOT certified'}: R_hat + 3 SE = "
        f"{cert.reconstruction_loss + 3 * cert.standard_error:.6g} vs delta_collapse = "
        f"{cert.collapse_loss:.6g}; explained {est.explained_fraction_:.1%}"
    )
    # partial_fit runs one epoch by design: only the certificate is reported.
    warn_after_fit(est, result, cert, constraint, convergence=not incremental)


def warn_after_fit(est, result, cert, constraint, convergence=True):
    """ConvergenceWarning (if ``convergence``) and PosteriorCollapseWarning, when they apply."""
    name = type(est).__name__
    if convergence and not result.converged:
        reason = (
            f"the reconstruction constraint R <= tau={constraint.target:.6g} "
            f"was not met (moving average R={result.reconstruction_average:.6g})"
            if not result.feasible
            else f"the loss was still improving by more than tol={est.tol}"
        )
        warnings.warn(
            f"{name} stopped at max_iter={est.max_iter} before converging: "
            f"{reason}. Raise max_iter.",
            ConvergenceWarning,
        )
    if not cert.certified:
        warnings.warn(
            f"{name}: posterior collapse is not ruled out: R_hat + 3 SE = "
            f"{cert.reconstruction_loss:.6g} + 3 * {cert.standard_error:.3g} is not "
            f"below delta_collapse = {cert.collapse_loss:.6g}; the latent "
            "coordinates may carry no information about the input.",
            PosteriorCollapseWarning,
        )

"""The fit pipeline: input checks, data map, constrained training, certificate, attributes."""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _diagnostics
from .exceptions import PosteriorCollapseWarning
from ._networks import build_vae
from ._progress import Progress
from ._scaling import check_not_constant
from ._settings import (
    auto_batch_size, check_network_size, hidden_sizes, resolve_device, validation_split,
)
from ._training import TrainingConfig, diverged, train
from ._validation import validate_numeric

#: Noise rows shared by every row in score_samples (common random numbers).
N_SCORE_DRAWS = 16


def fit_estimator(est, X):
    """Fit ``est`` on X in place: checks, data map, training, certificate, attributes."""
    X = validate_numeric(est, X, reset=True)
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(
            f"n_samples={n_samples}: at least 2 samples are needed to fit a VAE."
        )
    check_not_constant(X)
    hidden = hidden_sizes(est.hidden_layer_sizes)
    check_network_size(n_features, est.n_components, hidden)
    device = resolve_device(est.device)
    rng = check_random_state(est.random_state)
    seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=4)]
    X_val = None
    if est.early_stopping:
        X, X_val = validation_split(X, est.validation_fraction, seeds[3])
        n_samples = X.shape[0]
        try:
            check_not_constant(X)
        except ValueError:
            raise ValueError(
                f"The {n_samples} rows left for training after early_stopping "
                f"held out validation_fraction={est.validation_fraction} of X "
                "are all identical (up to float64 rounding); use more rows or "
                "early_stopping=False."
            ) from None

    # Reports phases when verbose; a local, never stored on the estimator.
    progress = Progress(est.verbose, type(est).__name__)
    attrs, Y, constraint = est._fit_representation(X, seeds[0], progress)
    # Set now so the data map can be applied below; a failed fit restores
    # the estimator's previous __dict__ whole.
    for name, value in attrs.items():
        setattr(est, name, value)
    generator = torch.Generator().manual_seed(seeds[1])
    noise_generator = torch.Generator(device=device).manual_seed(seeds[2])
    module = build_vae(
        n_features=n_features,
        n_components=est.n_components,
        hidden_layer_sizes=hidden,
        activation=est.activation,
        output_layer=est._output_layer(),
        device=device,
        generator=generator,
    )
    batch_size = (
        auto_batch_size(n_samples) if est.batch_size == "auto" else est.batch_size
    )
    total_variance = attrs["total_variance_"]
    config = TrainingConfig(
        beta=est.beta,
        decoder_variance=est.decoder_variance,
        max_iter=est.max_iter,
        batch_size=min(batch_size, n_samples),
        learning_rate=est.learning_rate_init,
        tol=est.tol,
        n_iter_no_change=est.n_iter_no_change,
        constraint=constraint,
        recon_floor=1e-9 * total_variance,
        progress=progress,
        **est._schedule(),
    )
    Y_train = torch.as_tensor(Y, dtype=torch.float32, device=device)
    Y_val = None
    if X_val is not None:
        Y_val = torch.as_tensor(
            est._to_representation(X_val), dtype=torch.float32, device=device
        )
    progress.start_training(config.max_iter, n_samples, config.batch_size)
    result = train(
        module, Y_train, config, generator=generator,
        noise_generator=noise_generator, Y_val=Y_val,
    )
    progress.end_training(
        result.n_iter, "stopping rule met" if result.converged else "reached max_iter"
    )
    del Y_train, Y_val
    # The certificate and the posterior statistics use the network in its
    # training precision: its decoder passes cost ~1.6x less than in
    # float64 (measured on 100k rows), and float32 rounding of R-hat
    # (relative ~1e-6) is far below the Monte Carlo error the test allows for.
    # With early stopping they are computed on the rows the model was
    # trained on (the validation rows are held out of everything).
    with progress.phase(f"collapse certificate ({est.n_certificate_passes} passes)"):
        mu, logvar = _diagnostics.encode(module, Y)
        cert = _diagnostics.collapse_certificate(
            module, Y, mu, logvar, attrs["collapse_loss_"],
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
    attrs.update(
        validation_scores_=scores,
        best_validation_score_=None if scores is None else max(scores),
        module_=module,
        device_=str(device),
        loss_curve_=result.loss_curve,
        n_iter_=result.n_iter,
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
        _score_eps=torch.randn(
            (N_SCORE_DRAWS, est.n_components), generator=generator,
            dtype=torch.float64,
        ).numpy(),
        **est._training_summary(result),
    )
    for name, value in attrs.items():
        setattr(est, name, value)
    progress.note(
        f"{'certified' if cert.certified else 'NOT certified'}: R_hat + 3 SE = "
        f"{cert.reconstruction_loss + 3 * cert.standard_error:.6g} vs delta_collapse = "
        f"{cert.collapse_loss:.6g}; explained {attrs['explained_fraction_']:.1%}"
    )
    warn_after_fit(est, result, cert, constraint)

def warn_after_fit(est, result, cert, constraint):
    """ConvergenceWarning and PosteriorCollapseWarning, when they apply."""
    name = type(est).__name__
    if not result.converged:
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

"""The steps of a fit that need no estimator: its per-call state, seeds, row checks, the split, warnings."""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._constraint import Constraint
from ._progress import Progress
from .exceptions import PosteriorCollapseWarning
from ._scaling import check_not_constant

#: score_samples' noise rows, shared by every row (common random numbers):
#: at least this many antithetic pairs, and at least n_components.
MIN_SCORE_PAIRS = 8
#: partial_fit keeps this many recent entries of loss_curve_, so that the
#: fitted state does not grow with the number of blocks (or rows) seen.
MAX_CURVE_ENTRIES = 1000


@dataclass
class FitRun:
    """What one call of fit or partial_fit carries from its set-up to its epochs.

    ``Y`` are the call's rows in the modelled representation (the data map,
    band and certificate use all of them), ``Y_fit`` the rows the gradient
    steps see and ``Y_val`` early stopping's held-out rows, or None. Missing
    entries are NaN there; the ``*_in`` arrays are the same rows as the
    encoder sees them, holes filled (the same arrays when nothing is missing).
    """

    n_samples: int
    resume: bool
    incremental: bool
    calls: int
    seeds: list
    device: torch.device
    progress: Progress
    generator: torch.Generator
    noise_generator: torch.Generator
    Y: np.ndarray = None
    Y_fit: np.ndarray = None
    Y_val: np.ndarray = None
    Y_in: np.ndarray = None
    M: np.ndarray = None
    Y_fit_in: np.ndarray = None
    Y_val_in: np.ndarray = None
    module: torch.nn.Module = None
    constraint: Constraint = None
    total_variance: float = None
    ppca: object = None  # the probabilistic PCA of every row, on a fresh fit


def fit_seeds(random_state, calls):
    """Four int32 seeds from random_state; later partial_fit calls get new ones."""
    base = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=4)
    return [int((b + 7919 * calls) % np.iinfo(np.int32).max) for b in base]


def check_first_rows(X):
    """What the rows that fit the data map and band must satisfy."""
    if X.shape[0] < 2:
        raise ValueError(
            f"n_samples={X.shape[0]}: at least 2 samples are needed to fit a VAE."
        )
    check_not_constant(X)


def validation_split(X, fraction, seed):
    """Rows for training and the held-out rows for early stopping (at least 1 each)."""
    n = X.shape[0]
    n_val = min(max(int(round(fraction * n)), 1), n - 2)
    if n_val < 1:
        raise ValueError(
            f"early_stopping needs at least 3 rows (2 to train, 1 to validate); got {n}."
        )
    perm = np.random.RandomState(seed).permutation(n)
    return X[perm[n_val:]], X[perm[:n_val]]


def split_rows(Y, fraction, seed):
    """Rows to take gradient steps on and the held-out rows, named error if the first are identical."""
    Y_fit, Y_val = validation_split(Y, fraction, seed)
    try:
        check_not_constant(Y_fit)
    except ValueError:
        raise ValueError(
            f"The {Y_fit.shape[0]} rows left for training after early_stopping "
            f"held out validation_fraction={fraction} of X "
            "are all identical (up to float64 rounding); use more rows or "
            "early_stopping=False."
        ) from None
    return Y_fit, Y_val


def warn_after_fit(name, result, cert, constraint, *, max_iter, tol, convergence=True):
    """ConvergenceWarning (if ``convergence``) and PosteriorCollapseWarning, when they apply."""
    if convergence and not result.converged:
        reason = (
            f"the reconstruction constraint R <= tau={constraint.target:.6g} "
            f"was not met (moving average R={result.reconstruction_average:.6g})"
            if not result.feasible
            else f"the loss was still improving by more than tol={tol}"
        )
        warnings.warn(
            f"{name} stopped at max_iter={max_iter} before converging: "
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

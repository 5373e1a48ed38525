"""SphericalClusterVAE's data map (shell, radii, output knee) and feasible band (K-means, target)."""

import warnings

import numpy as np

from ._feasible import fit_feasible_region
from ._networks import output_knee
from ._scaling import row_norms
from ._shell import FALLBACK_QUANTILE, SphericalShellScaler, StandardizedShell, check_radii
from ._training import Constraint

#: Radii of the paper's map when ``r_min``/``r_max`` are "auto" (docs/theory.rst).
PAPER_RADII = (1.0, 2.0)


def make_shell(est):
    """The unfitted data map for ``shell_map`` with the resolved paper radii."""
    if est.shell_map == "identity":
        return StandardizedShell(est.r_min, est.r_max)
    r_min = PAPER_RADII[0] if est.r_min == "auto" else est.r_min
    r_max = PAPER_RADII[1] if est.r_max == "auto" else est.r_max
    check_radii(r_min, r_max)
    return SphericalShellScaler(r_min, r_max)


def fit_data_map(est, X, progress):
    """Shell, radii and output knee on the training rows: (attributes, Y)."""
    if est.n_clusters == 1:
        raise ValueError(
            "n_clusters=1 makes the feasible band empty: one shell centre "
            "reconstructs no better than a collapsed decoder (W_S = "
            "delta_collapse exactly). Use n_clusters >= 2."
        )
    if est.n_clusters > X.shape[0]:
        raise ValueError(
            f"n_clusters={est.n_clusters} must be <= n_samples={X.shape[0]}: "
            "lower n_clusters or pass more rows."
        )
    with progress.phase("standardize and shell radii"):
        shell = make_shell(est).fit(X)
    if est.shell_map == "identity":
        r_min, r_max = shell.r_min_, shell.r_max_
    else:
        r_min, r_max = float(shell.r_min), float(shell.r_max)
    Y = shell._transform(X)
    norms = row_norms(Y)
    if est.shell_map == "identity" and shell.n_rows_at_mean_:
        warnings.warn(
            f"{shell.n_rows_at_mean_} training row(s) sit exactly at the mean "
            "(all features equal to their means, e.g. after mean imputation), "
            f"so r_min='auto' used the {FALLBACK_QUANTILE:.0%} quantile of the "
            f"training norms: r_min_={r_min:.6g}.",
            UserWarning,
        )
    radius_range = (float(norms.min()), float(norms.max()))
    knee = output_knee(radius_range[0], r_min, r_max)
    attrs = dict(
        shell_=shell,
        r_min_=r_min,
        r_max_=r_max,
        shell_radius_range_=radius_range,
        output_knee_=knee,
        n_rows_below_knee_=int(np.sum(norms < knee)),
    )
    return attrs, Y


def fit_band(est, Y, ppca, seed, progress):
    """K-means and the feasible band on the modelled rows: (attributes, constraint)."""
    with progress.phase(f"K-means with {est.n_clusters} clusters (feasible band)"):
        region = fit_feasible_region(
            Y,
            n_clusters=est.n_clusters,
            r_min=est.r_min_,
            r_max=est.r_max_,
            margin=est.margin,
            random_state=seed,
            anchor=est.anchor,
            ppca=ppca,
        )
    progress.note(
        f"feasible band: R <= tau = {region.reconstruction_target:.6g} < "
        f"delta_collapse = {region.collapse_loss:.6g}"
    )
    attrs = dict(
        within_cluster_variance_=region.within_cluster_variance,
        codebook_loss_=region.codebook_loss,
        pca_loss_=region.pca_loss,
        total_variance_=region.total_variance,
        collapse_loss_=region.collapse_loss,
        reconstruction_target_=region.reconstruction_target,
    )
    return attrs, Constraint(region.reconstruction_target, region.collapse_loss)

"""SphericalClusterVAE's data map (shell, radii, output knee) and feasible band (K-means, target)."""

import numpy as np

from ._feasible import fit_feasible_region
from ._missing import zero_filled
from ._networks import output_knee
from ._scaling import row_norms
from ._constraint import Constraint


def check_n_clusters(n_clusters, n_samples):
    """Raise a ValueError naming the problem unless 2 <= n_clusters <= n_samples."""
    if n_clusters == 1:
        raise ValueError(
            "n_clusters=1 makes the feasible band empty: one shell centre "
            "reconstructs no better than a collapsed decoder (W_S = "
            "delta_collapse exactly). Use n_clusters >= 2."
        )
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} must be <= n_samples={n_samples}: "
            "lower n_clusters or pass more rows."
        )


def fit_data_map(geometry, X, *, r_min, r_max, progress):
    """Shell, radii and output knee of ``geometry`` on the training rows: (attributes, Y)."""
    with progress.phase("standardize and shell radii", "data map"):
        shell, r_min, r_max = geometry.fit(X, r_min, r_max)
    Y = geometry.transform(shell, X)
    # Norms of the observed entries (missing ones count as the column mean, 0).
    norms = row_norms(zero_filled(Y))
    radius_range = (float(norms.min()), float(norms.max()))
    knee = output_knee(radius_range[0], r_min, r_max)
    attrs = dict(shell_=shell, r_min_=r_min, r_max_=r_max, shell_radius_range_=radius_range,
                 output_knee_=knee, n_rows_below_knee_=int(np.sum(norms < knee)))
    return attrs, Y


def fit_band(Y, ppca, *, Y_in, n_clusters, r_min, r_max, margin, anchor, seed, progress):
    """K-means and the feasible band on the modelled rows: (attributes, constraint).

    ``Y_in`` are the rows as the encoder sees them (holes filled).
    """
    with progress.phase(f"K-means with {n_clusters} clusters (feasible band)", "band"):
        region = fit_feasible_region(Y, n_clusters=n_clusters, r_min=r_min, r_max=r_max,
                                     margin=margin, random_state=seed, anchor=anchor, ppca=ppca,
                                     Y_in=Y_in)
    progress.note(
        f"feasible band: R <= tau = {region.reconstruction_target:.6g} < "
        f"delta_collapse = {region.collapse_loss:.6g}"
    )
    return region.fitted_attributes(), Constraint(region.reconstruction_target, region.collapse_loss)

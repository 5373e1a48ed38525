"""One geometry object per ``shell_map``: the data map, its radii, the way back and the export maps."""

import warnings

import numpy as np

from ._export import InverseRadialMap, RadialMap, Standardize, Unstandardize
from ._missing import has_missing
from ._scaling import row_norms
from ._shell import FALLBACK_QUANTILE, SphericalShellScaler, StandardizedShell, check_radii

#: Radii of the paper's map when ``r_min``/``r_max`` are "auto" (docs/theory.rst).
PAPER_RADII = (1.0, 2.0)


class IdentityGeometry:
    """``shell_map="identity"``: the standardized rows as they are; the shell bounds decoder outputs.

    ``r_min="auto"`` is the smallest training norm over 1.5 and
    ``r_max="auto"`` leaves the shell open outward (docs/theory.rst).
    """

    name = "identity"

    def transform(self, shell, X):
        """Validated rows in original units to the modelled rows (NaN stays NaN: missing)."""
        return shell._transform(X)

    def fit(self, X, r_min, r_max):
        """The fitted data map and its resolved radii ``(shell, r_min, r_max)``."""
        shell = StandardizedShell(r_min, r_max).fit(X)
        if shell.n_rows_at_mean_:
            warnings.warn(
                f"{shell.n_rows_at_mean_} training row(s) sit exactly at the mean "
                "(all features equal to their means, e.g. after mean imputation), "
                f"so r_min='auto' used the {FALLBACK_QUANTILE:.0%} quantile of the "
                f"training norms: r_min_={shell.r_min_:.6g}.",
                UserWarning,
            )
        return shell, shell.r_min_, shell.r_max_

    def inverse(self, shell, Y, radius_range):
        """Decoder outputs back to original units."""
        return shell._inverse_transform(Y)

    def export_maps(self, shell, radius_range):
        """(raw X -> modelled rows, decoder outputs -> raw X) as torch modules."""
        return Standardize(shell.mean_, shell.scale_), Unstandardize(shell.mean_, shell.scale_)


class PaperGeometry:
    """``shell_map="paper"``: standardize, then the paper's radial map into a bounded shell."""

    name = "paper"

    @staticmethod
    def refuse_missing(X):
        """Raise a ValueError if X has a missing value: the radial map needs whole rows."""
        if has_missing(X):
            raise ValueError(
                f"shell_map='paper' does not support missing values, and X has "
                f"{int(np.isnan(X).sum())} NaN entries: the paper's radial map needs "
                "each row's whole norm. Use shell_map='identity' (the default), which "
                "models the observed entries, or impute first (skvae.VAEImputer)."
            )

    def transform(self, shell, X):
        """Validated rows in original units to the modelled rows, inside the shell."""
        self.refuse_missing(X)
        return shell._transform(X)

    def fit(self, X, r_min, r_max):
        """The fitted data map and its radii ``(shell, r_min, r_max)``; "auto" is 1 and 2."""
        self.refuse_missing(X)
        r_min = PAPER_RADII[0] if r_min == "auto" else r_min
        r_max = PAPER_RADII[1] if r_max == "auto" else r_max
        check_radii(r_min, r_max)
        shell = SphericalShellScaler(r_min, r_max).fit(X)
        return shell, float(shell.r_min), float(shell.r_max)

    def inverse(self, shell, Y, radius_range):
        """Decoder outputs back to original units, norms first kept in ``radius_range``.

        Decoder outputs are not data: their norms are clipped to the radial
        range the training rows occupied, where the inverse map is tame.
        """
        lo, hi = radius_range
        norm = row_norms(Y)[:, None]
        return shell._inverse_transform(Y * (np.clip(norm, lo, hi) / norm))

    def export_maps(self, shell, radius_range):
        """(raw X -> modelled rows, decoder outputs -> raw X) as torch modules."""
        from torch import nn

        radial = (shell.r_min, shell.r_max, shell.radius_scale_)
        return (
            nn.Sequential(Standardize(shell.mean_, shell.scale_), RadialMap(*radial)),
            nn.Sequential(InverseRadialMap(*radial, *radius_range),
                          Unstandardize(shell.mean_, shell.scale_)),
        )


GEOMETRIES = {g.name: g for g in (IdentityGeometry(), PaperGeometry())}

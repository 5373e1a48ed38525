"""skvae: scikit-learn variational autoencoders that certify they did not collapse."""

from . import exceptions, metrics
from ._shell import SphericalShellScaler
from ._spherical import SphericalClusterVAE
from ._imputer import VAEImputer
from ._vae import VAE
from ._version import __version__

__all__ = [
    "SphericalClusterVAE",
    "SphericalShellScaler",
    "VAE",
    "VAEImputer",
    "exceptions",
    "metrics",
    "__version__",
]

"""The two ablations of the collapse benchmark: the constraint without the shell, the shell without the constraint."""

import numbers

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval

from skvae import VAE, SphericalClusterVAE
from skvae._base import _BaseVAE
from skvae._feasible import fit_feasible_region
from skvae._training import Constraint


class ConstraintWithoutShell(_BaseVAE):
    """Conventional VAE on standardized data, trained inside the cluster-aware band.

    Without the shell the centres are not projected (``W_S = W``) and the best
    input-independent decoder outputs the mean (``delta_collapse = T``), which
    is ``fit_feasible_region`` with ``r_min=0`` and ``r_max=inf``. Everything
    else (K-means, margin, multiplier rule, certificate) is the library's, and
    the data map is :class:`skvae.VAE`'s.
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "n_clusters": [Interval(numbers.Integral, 2, None, closed="left")],
        "margin": [Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        n_components=2,
        *,
        n_clusters=8,
        margin=0.5,
        beta=1.0,
        decoder_variance="learned",
        hidden_layer_sizes=(128, 64),
        activation="relu",
        linear_path=True,
        max_iter=200,
        batch_size="auto",
        learning_rate_init="auto",
        tol=1e-3,
        n_iter_no_change=10,
        early_stopping="auto",
        validation_fraction=0.1,
        warm_start=False,
        n_certificate_passes=10,
        device="cpu",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.beta = beta
        self.decoder_variance = decoder_variance
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.linear_path = linear_path
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.n_certificate_passes = n_certificate_passes
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.n_clusters = n_clusters
        self.margin = margin

    def _fit_data_map(self, X, progress):
        scaler = StandardScaler().fit(X)
        return dict(scaler_=scaler), scaler.transform(X)

    def _fit_band(self, Y, ppca, seed, progress):
        region = fit_feasible_region(
            Y, n_clusters=self.n_clusters, r_min=0.0, r_max=np.inf,
            margin=self.margin, random_state=seed,
        )
        attrs = dict(
            total_variance_=region.total_variance,
            collapse_loss_=region.collapse_loss,
            within_cluster_variance_=region.within_cluster_variance,
            reconstruction_target_=region.reconstruction_target,
        )
        return attrs, Constraint(region.reconstruction_target, region.collapse_loss)

    # The same data map as the conventional VAE: standardization only.
    _collapse_loss = VAE._collapse_loss
    _standardization = VAE._standardization
    _to_representation = VAE._to_representation
    _from_representation = VAE._from_representation
    _log_abs_det_jacobian = VAE._log_abs_det_jacobian

    def _training_summary(self, result):
        return {"lagrange_multiplier_": result.lagrange_multiplier}


class ShellWithoutConstraint(SphericalClusterVAE):
    """SphericalClusterVAE trained on the plain (beta-)ELBO: shell map and norm layer, no band.

    The feasible region is still fitted, so the certificate is tested against
    the same delta_collapse, but the reconstruction constraint is not imposed.
    """

    def _fit_band(self, Y, ppca, seed, progress):
        attrs, _ = super()._fit_band(Y, ppca, seed, progress)
        return attrs, None

    def _constraint(self):
        return None

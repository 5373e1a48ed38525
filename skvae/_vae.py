"""VAE: the conventional baseline (standardized data, no shell, no constraint) and its usual remedies."""

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import FLOAT32_SAFE, _BaseVAE
from ._docstrings import fill
from ._feasible import mean_squared_distance
from ._missing import masked_mean
from ._scaling import Standardizer


def kl_weight_schedule(kind, annealing_epochs):
    """Multiplier of ``beta`` at each epoch (0-based) for an annealing ``kind``.

    * ``None``: always 1.
    * ``"linear"`` (Bowman et al., 2016): ``min(1, epoch / annealing_epochs)``,
      rising from 0 over the first ``annealing_epochs`` epochs.
    * ``"cyclical"`` (Fu et al., 2019): cycles of ``annealing_epochs`` epochs;
      in each the weight rises linearly from 0 over the first half, then
      stays at 1 for the second half.
    """
    if kind is None:
        return lambda epoch: 1.0
    if kind == "linear":
        return lambda epoch: min(1.0, epoch / annealing_epochs)
    if kind == "cyclical":
        half = annealing_epochs / 2.0
        return lambda epoch: min(1.0, (epoch % annealing_epochs) / half)
    raise ValueError(f"Unknown kl_annealing={kind!r}.")


class VAE(_BaseVAE):
    """Conventional Gaussian VAE on standardized data, with the same API and backend.

    The baseline against which :class:`SphericalClusterVAE` is measured: the
    same networks, optimiser, stopping rule, diagnostics, certificate and
    scoring, but no shell map, no norm constraint and no reconstruction
    constraint. The usual remedies for posterior collapse are options: KL
    annealing (linear or cyclical) and free bits.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    {{n_components}}
    beta : float, default=1.0
        Weight of the KL term.
    decoder_variance : "learned" or float, default="learned"
        ``"learned"`` uses the maximum-likelihood variance ``R / n_features``;
        a positive float fixes ``sigma^2`` in standardized units (the model
        collapses when it exceeds the largest eigenvalue of the standardized
        covariance, Lucas et al. 2019).
    {{outlier_weight hidden_layer_sizes activation linear_path}}
    kl_annealing : {"linear", "cyclical"} or None, default=None
        KL-weight schedule: ``"linear"`` warm-up (Bowman et al., 2016) or
        ``"cyclical"`` (Fu et al., 2019); see ``annealing_epochs``.
    annealing_epochs : int, default=20
        Length of the linear warm-up, or of one cycle. The weight at 0-based
        epoch ``t`` is ``min(1, t / annealing_epochs)`` (linear) or
        ``min(1, 2 * (t mod annealing_epochs) / annealing_epochs)``
        (cyclical). Early stopping is not considered before the warm-up ends;
        with cyclical annealing training runs for ``max_iter`` epochs.
    free_bits : float, default=0.0
        Per-dimension KL floor in nats (Kingma et al., 2016): each latent
        dimension's batch-mean KL enters the loss as ``max(free_bits, KL_j)``,
        so it gets no gradient below the floor.
    {{max_iter batch_size learning_rate_init learning_rate tol}}
    n_iter_no_change : int, default=20
        Training stops after this many epochs without improvement. With
        ``learning_rate="adaptive"``, half as many, counted twice (see
        ``learning_rate``).
    {{early_stopping validation_fraction warm_start n_certificate_passes device n_jobs random_state verbose}}

    Attributes
    ----------
    scaler_ : object
        The fitted standardization: ``mean_`` and ``scale_`` as in
        :class:`~sklearn.preprocessing.StandardScaler` (``max(1, max |x|)``
        for constant features), computed so that they do not overflow for
        data near the float64 limits.
    total_variance_ : float
        ``T``, mean squared distance to the mean in standardized units.
    collapse_loss_ : float
        Loss of the best input-independent decoder; without a shell it can
        output the mean, so this equals ``total_variance_``.
    {{reconstruction_loss_ reconstruction_loss_se_ collapse_certified_}}
    explained_fraction_ : float
        ``1 - reconstruction_loss_ / total_variance_``.
    {{decoder_variance_ outlier_variance_ active_units_ kl_per_dimension_ mutual_information_}}
    loss_curve_ : list of float
        Negative beta-ELBO of each epoch (with the epoch's KL weight).
    {{validation_scores_ best_validation_score_ n_iter_ n_samples_seen_ n_partial_fit_calls_ device_ batch_size_ learning_rate_ fit_times_ module_ n_features_in_ feature_names_in_}}

    See Also
    --------
    SphericalClusterVAE : The same model with the collapse guarantee.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes",
       ICLR 2014.
    .. [2] S. R. Bowman et al., "Generating Sentences from a Continuous Space",
       CoNLL 2016.
    .. [3] H. Fu et al., "Cyclical Annealing Schedule: A Simple Approach to
       Mitigating KL Vanishing", NAACL 2019.
    .. [4] D. P. Kingma et al., "Improved Variational Inference with Inverse
       Autoregressive Flow", NeurIPS 2016.
    .. [5] J. Lucas et al., "Don't Blame the ELBO! A Linear VAE Perspective on
       Posterior Collapse", NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skvae import VAE
    >>> X, _ = make_blobs(n_samples=300, n_features=10, centers=4, random_state=0)
    >>> vae = VAE(n_components=2, random_state=0).fit(X)
    >>> vae.transform(X).shape
    (300, 2)
    >>> vae.active_units_
    2
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "kl_annealing": [StrOptions({"linear", "cyclical"}), None],
        "annealing_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "free_bits": [Interval(numbers.Real, 0, FLOAT32_SAFE, closed="both")],
    }

    def __init__(
        self, n_components=2, *, beta=1.0, decoder_variance="learned",
        outlier_weight=0.01,
        # the networks
        hidden_layer_sizes=(128, 64), activation="relu", linear_path=True,
        # remedies for collapse
        kl_annealing=None, annealing_epochs=20, free_bits=0.0,
        # training and stopping
        max_iter=400, batch_size="auto", learning_rate_init="auto", learning_rate="auto",
        tol=1e-3,
        n_iter_no_change=20, early_stopping="auto", validation_fraction=0.1, warm_start=False,
        # certificate and runtime
        n_certificate_passes=10, device="cpu", n_jobs=None, random_state=None, verbose=0,
    ):
        self._set_init_params(locals())

    def _fit_data_map(self, X, progress):
        with progress.phase("standardize", "data map"):
            scaler = Standardizer().fit(X)
            return dict(scaler_=scaler), scaler.transform(X)

    def _fit_band(self, Y, Y_in, ppca, seed, progress):
        total = self._collapse_loss(Y)
        return dict(total_variance_=total, collapse_loss_=total), None

    def _collapse_loss(self, Y):
        # Without a shell the best input-independent output is the mean: T
        # (of the observed entries, with their column means).
        return mean_squared_distance(Y, masked_mean(Y))

    def _standardization(self):
        return self.scaler_

    def _to_representation(self, X):
        return self.scaler_.transform(X)

    def _from_representation(self, Y):
        return self.scaler_.inverse_transform(Y)

    def _log_abs_det_jacobian(self, X):
        return self.scaler_.log_abs_det_jacobian(X)

    def _schedule(self):
        if self.kl_annealing == "linear":
            earliest = self.annealing_epochs
        elif self.kl_annealing == "cyclical":
            earliest = self.max_iter
        else:
            earliest = 0
        return dict(
            kl_weight=kl_weight_schedule(self.kl_annealing, self.annealing_epochs),
            earliest_stop=earliest,
            free_bits=self.free_bits,
            fixed_budget=self.kl_annealing == "cyclical",
        )


VAE.__doc__ = fill(VAE.__doc__)

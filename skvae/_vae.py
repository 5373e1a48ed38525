"""VAE: the conventional baseline (standardized data, no shell, no constraint) and its usual remedies."""

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import FLOAT32_SAFE, _BaseVAE
from ._feasible import mean_squared_distance
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
    n_components : int, default=2
        Dimension of the latent space.
    beta : float, default=1.0
        Weight of the KL term.
    decoder_variance : "learned" or float, default="learned"
        ``"learned"`` uses the maximum-likelihood variance ``R / n_features``;
        a positive float fixes ``sigma^2`` in standardized units (the model
        collapses when it exceeds the largest eigenvalue of the standardized
        covariance, Lucas et al. 2019).
    hidden_layer_sizes : array-like of int, default=(128, 64)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    activation : {"relu", "tanh", "elu", "gelu"}, default="relu"
        Hidden-layer activation.
    linear_path : bool, default=True
        Start the model at the probabilistic PCA of the standardized rows
        through a linear map beside each MLP; False gives plain MLPs. As in
        :class:`SphericalClusterVAE`.
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
    max_iter : int, default=200
        Maximum number of epochs.
    batch_size : int or "auto", default="auto"
        Minibatch size. ``"auto"`` is ``n_samples // 10`` clipped to
        [16, 256], so that small data sets still get about ten optimizer
        steps per epoch, and above 25,600 rows ``n_samples // 100`` up to
        4096, so that a step's arithmetic outweighs its fixed cost.
    learning_rate_init : float or "auto", default="auto"
        Adam step size. ``"auto"`` is 1e-3 for batches of up to 256 rows and
        ``1e-3 * sqrt(batch_size / 256)`` for larger ones.
    tol : float, default=1e-3
        An epoch improves when its loss per feature beats the best by more
        than a threshold that stands for a relative improvement of the
        reconstruction loss R of about ``2 * tol``: ``tol`` itself with the
        learned decoder variance, ``tol * R / (decoder_variance *
        n_features)`` with a fixed one. 1e-3 (scikit-learn's MLPs use 1e-4)
        was chosen with :class:`SphericalClusterVAE`, which trains through
        the same loop; on the evaluation's small data sets it left this
        estimator's held-out error about unchanged (:ref:`user guide
        <choices>`).
    n_iter_no_change : int, default=10
        Training stops after this many epochs without improvement.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows and stop when the
        objective on them stops improving; the weights of the best epoch are
        kept, and the untrained starting model (probabilistic PCA, with the
        linear path) is a candidate too, so training never returns a model
        that fits the held-out rows worse than its start.
        ``"auto"`` does this in ``fit`` from 20 rows on, and never in
        ``partial_fit``. The held-out rows are left out of the gradient steps
        only: the data map, the linear start, the band and the certificate
        use every row.
    validation_fraction : float, default=0.1
        Share of the rows held out when ``early_stopping`` is True.
    warm_start : bool, default=False
        When True, ``fit`` continues the fitted networks and Adam's state on
        the new X, keeping the standardization (there is no band here); as
        in :class:`SphericalClusterVAE`.
    n_certificate_passes : int, default=10
        Passes with fresh ``z`` for ``reconstruction_loss_`` (at least 10).
    device : str, default="cpu"
        Torch device to train on.
    n_jobs : int or None, default=None
        Torch intra-op threads, for each call only: None means 1 (robust on
        a busy machine), -1 all CPUs; as in :class:`SphericalClusterVAE`.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, minibatch order and noise draws.
    verbose : int, default=0
        0 prints nothing. 1 prints each phase of the fit with its time
        (standardization, K-means, training, certificate), about 20 epoch
        lines ``epoch i/max_iter`` with the losses, elapsed time and an ETA
        (a tqdm bar instead when tqdm is installed and stderr is a terminal),
        and the certificate's verdict. 2 prints every epoch.

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
    reconstruction_loss_ : float
        Expected reconstruction loss on the training data with ``z ~ q(z|x)``.
    reconstruction_loss_se_ : float
        Its standard error over ``n_certificate_passes`` passes.
    collapse_certified_ : bool
        ``reconstruction_loss_ + 3 SE < collapse_loss_``.
    explained_fraction_ : float
        ``1 - reconstruction_loss_ / total_variance_``.
    decoder_variance_ : float
        Decoder variance used by :meth:`score_samples`.
    active_units_ : int
        Latent dimensions with ``Var_x(E[z|x]) > 0.01``.
    kl_per_dimension_ : ndarray of shape (n_components,)
        Mean KL per latent dimension, in nats.
    mutual_information_ : float
        Estimate of I(x; z) under q, in nats.
    loss_curve_ : list of float
        Negative beta-ELBO of each epoch (with the epoch's KL weight).
    validation_scores_ : list of float or None
        When the fit held rows out (``early_stopping``), the negative ELBO
        per feature of the held-out rows at each epoch, with the training
        rows' decoder variance (higher is better); None otherwise.
    best_validation_score_ : float or None
        The best of ``validation_scores_``; None when no rows were held out.
    n_iter_ : int
        Number of epochs run (over all ``partial_fit`` calls and warm starts).
    n_samples_seen_ : int
        Rows trained on: by ``fit``, or summed over ``partial_fit`` calls.
    n_partial_fit_calls_ : int
        Number of ``partial_fit`` calls since the last ``fit`` (0 after ``fit``).
    device_ : str
        Device the networks live on.
    module_ : torch.nn.Module
        The trained encoder and decoder (float64).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

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
        self,
        n_components=2,
        *,
        beta=1.0,
        decoder_variance="learned",
        hidden_layer_sizes=(128, 64),
        activation="relu",
        linear_path=True,
        kl_annealing=None,
        annealing_epochs=20,
        free_bits=0.0,
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
        self.kl_annealing = kl_annealing
        self.annealing_epochs = annealing_epochs
        self.free_bits = free_bits
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

    def _fit_data_map(self, X, progress):
        with progress.phase("standardize"):
            scaler = Standardizer().fit(X)
            return dict(scaler_=scaler), scaler.transform(X)

    def _fit_band(self, Y, ppca, seed, progress):
        total = self._collapse_loss(Y)
        return dict(total_variance_=total, collapse_loss_=total), None

    def _collapse_loss(self, Y):
        # Without a shell the best input-independent output is the mean: T.
        return mean_squared_distance(Y, Y.mean(axis=0))

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

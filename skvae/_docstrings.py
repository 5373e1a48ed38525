"""Docstring entries shared by VAE and SphericalClusterVAE, written once so the two cannot drift."""

import re
import textwrap

PARAMETERS = {
    "n_components": """
n_components : int, default=2
    Dimension of the latent space.
""",
    "outlier_weight": """
outlier_weight : float in [0, 1), default=0.01
    Weight ``w`` of a broad component in the observation model that
    :meth:`score_samples` uses: ``p(y | z) = (1 - w) N(y; y_hat(z),
    sigma^2 I) + w N(y; y_hat(z), s^2 I)``, with ``sigma^2 =
    decoder_variance_`` and ``s^2 = outlier_variance_``. A row unlike every
    training row (a county at a hundred standard deviations) then costs what
    the broad component charges instead of dominating the mean score; any
    other row loses at most ``-log(1 - w)`` nats. 0 gives the plain
    Gaussian ELBO. Training does not use it (:ref:`theory`, "The score's
    outlier component").
""",
    "hidden_layer_sizes": """
hidden_layer_sizes : array-like of int, default=(128, 64)
    Widths of the encoder's hidden layers; the decoder mirrors them. An
    empty tuple gives linear maps.
""",
    "activation": """
activation : {"relu", "tanh", "elu", "gelu"}, default="relu"
    Hidden-layer activation.
""",
    "linear_path": """
linear_path : bool, default=True
    Add a linear map beside each MLP (encoder mean, encoder log-variance
    bias, decoder) and start the model at the maximum-likelihood
    probabilistic PCA of the modelled rows, with the MLPs' last layers at
    zero: the untrained model is pPCA, and training moves away from it only
    where the objective improves. False gives the plain MLPs of earlier
    versions (for ablations and reproduction).
""",
    "max_iter": """
max_iter : int, default=400
    Maximum number of epochs.
""",
    "batch_size": """
batch_size : int or "auto", default="auto"
    Minibatch size. ``"auto"`` is ``n_samples // 10`` clipped to [16, 256],
    so that small data sets still get about ten optimizer steps per epoch,
    and above 25,600 rows ``n_samples // 100`` up to 4096, so that a step's
    arithmetic outweighs its fixed cost.
""",
    "learning_rate_init": """
learning_rate_init : float or "auto", default="auto"
    Adam step size. ``"auto"`` is 1e-3 for batches of up to 256 rows and
    ``1e-3 * sqrt(batch_size / 256)`` for larger ones.
""",
    "learning_rate": """
learning_rate : {"auto", "constant", "adaptive"}, default="auto"
    Step-size schedule, after scikit-learn's MLPs. ``"constant"`` keeps
    ``learning_rate_init``. ``"adaptive"`` starts ``learning_rate_init="auto"``
    three times higher and divides the step by 5 the first time the
    stopping rule counts more than ``n_iter_no_change // 2`` epochs without
    improvement; the next such count stops the fit. ``"auto"`` is
    ``"adaptive"`` where the fit holds rows out (``early_stopping``) of more
    than 10,000 rows, and ``"constant"`` elsewhere. ``partial_fit`` keeps
    the step constant. See :ref:`the user guide <choices>`.
""",
    "tol": """
tol : float, default=1e-3
    An epoch improves when its loss per feature beats the best by more than
    a threshold that stands for a relative improvement of the
    reconstruction loss R of about ``2 * tol``: ``tol`` itself with the
    learned decoder variance, ``tol * R / (decoder_variance * n_features)``
    with a fixed one. Where the fit holds rows out (``early_stopping``) an
    epoch improves if their negative ELBO per feature does, by the same
    threshold, or half the log of their squared error per entry falls by
    ``tol``. scikit-learn's MLPs use 1e-4; the
    measurements behind 1e-3 are in the :ref:`user guide <choices>`.
""",
    "early_stopping": """
early_stopping : bool or "auto", default="auto"
    Hold out ``validation_fraction`` of the rows and stop when the
    objective on them stops improving; the weights of the best epoch are
    kept (with a reconstruction constraint, the best at which it held), and
    the untrained starting model (probabilistic PCA, with the linear path)
    is a candidate too, so training never returns a model that fits the
    held-out rows worse than its start. ``"auto"`` does this in ``fit``
    from 20 rows on, and never in ``partial_fit``; up to 10,000 rows it
    then starts again and trains on every row for the number of epochs of
    the kept weights, so that small data sets lose no rows to the hold-out
    (:ref:`theory`, "The refit on every row"). The held-out rows are left
    out of the gradient steps only: the data map, the linear start, any
    band and the certificate use every row.
""",
    "validation_fraction": """
validation_fraction : float, default=0.1
    Share of the rows held out when ``early_stopping`` holds rows out.
""",
    "warm_start": """
warm_start : bool, default=False
    When True, ``fit`` on a fitted model continues training its networks
    (and Adam's state) for up to ``max_iter`` more epochs on the new X,
    keeping the fitted data map and any band; the diagnostics are then
    evaluated on the new X. When False, ``fit`` starts over.
""",
    "n_certificate_passes": """
n_certificate_passes : int, default=10
    Passes over the training data with fresh ``z`` for
    ``reconstruction_loss_`` and the certificate (at least 10).
""",
    "device": """
device : str, default="cpu"
    Torch device to train on, e.g. ``"cuda"``. Fitted models are stored
    CPU-portable when pickled.
""",
    "n_jobs": """
n_jobs : int or None, default=None
    Torch intra-op threads for fit, partial_fit and inference, set for the
    call and restored after it (torch's setting is process-wide). None
    means 1, the robust choice on a shared machine; -1 means all CPUs. More
    threads pay off only with large batches and layers on an otherwise idle
    machine.
""",
    "random_state": """
random_state : int, RandomState instance or None, default=None
    Seeds every random choice of the fit: any K-means, the weight
    initialisation, the held-out rows, minibatch order and all noise draws
    (through local generators; global RNGs are not touched).
""",
    "verbose": """
verbose : int, default=0
    0 prints nothing. 1 prints each phase of the fit with its time (the
    data map, the probabilistic PCA start, any K-means, training, the
    certificate), about 20 epoch lines ``epoch i/max_iter`` with the
    losses, elapsed time and an ETA (a tqdm bar instead when tqdm is
    installed and stderr is a terminal), and the certificate's verdict.
    2 prints every epoch.
""",
}

ATTRIBUTES = {
    "reconstruction_loss_": """
reconstruction_loss_ : float
    ``R_hat``: expected reconstruction loss on the training data with
    ``z ~ q(z|x)``, averaged over ``n_certificate_passes`` passes.
""",
    "reconstruction_loss_se_": """
reconstruction_loss_se_ : float
    Standard error of ``reconstruction_loss_``.
""",
    "collapse_certified_": """
collapse_certified_ : bool
    ``R_hat + 3 SE < collapse_loss_``: the posterior provably depends on x.
""",
    "decoder_variance_": """
decoder_variance_ : float
    Decoder variance used by :meth:`score_samples`: a fixed
    ``decoder_variance`` as given; the learned one is the training rows'
    squared error per observed entry, or where the fit held rows out, the
    held-out rows' if that is larger
    (:ref:`theory`, "The score's decoder variance").
""",
    "outlier_variance_": """
outlier_variance_ : float
    Variance per entry of the score's broad component (``outlier_weight``):
    four times the training rows' variance per entry about their mean in
    the modelled space, and at least ``decoder_variance_``.
""",
    "active_units_": """
active_units_ : int
    Latent dimensions with ``Var_x(E[z|x]) > 0.01`` on the training data.
""",
    "kl_per_dimension_": """
kl_per_dimension_ : ndarray of shape (n_components,)
    Mean KL(q(z|x) || p(z)) per latent dimension, in nats.
""",
    "mutual_information_": """
mutual_information_ : float
    Estimate of I(x; z) under q, in nats.
""",
    "validation_scores_": """
validation_scores_ : list of float or None
    When the fit held rows out (``early_stopping``), the negative ELBO per
    feature of the held-out rows at each epoch of the run that held them
    out, with the training rows' decoder variance (higher is better); None
    otherwise.
""",
    "best_validation_score_": """
best_validation_score_ : float or None
    The best of ``validation_scores_``; None when no rows were held out.
""",
    "n_iter_": """
n_iter_ : int
    Number of epochs that trained the returned weights (over all
    ``partial_fit`` calls and warm starts); with the refit of
    ``early_stopping="auto"``, the epochs the held-out rows chose.
""",
    "n_samples_seen_": """
n_samples_seen_ : int
    Rows trained on: by ``fit``, or summed over ``partial_fit`` calls.
""",
    "n_partial_fit_calls_": """
n_partial_fit_calls_ : int
    Number of ``partial_fit`` calls since the last ``fit`` (0 after ``fit``).
""",
    "device_": """
device_ : str
    Device the networks live on.
""",
    "batch_size_": """
batch_size_ : int
    The minibatch size training used (``batch_size`` resolved).
""",
    "learning_rate_": """
learning_rate_ : float
    Adam's step size at the start of training (``learning_rate_init``
    resolved); an adaptive schedule divides it later (``learning_rate``).
""",
    "fit_times_": """
fit_times_ : dict of str to float
    Seconds spent in each phase of the latest ``fit`` or ``partial_fit``
    call: ``"data map"``, ``"linear start"`` (probabilistic PCA of every
    row, and of the training rows when early stopping holds rows out),
    ``"band"`` (K-means, where there is one), ``"training"``,
    ``"certificate"`` and ``"diagnostics"`` (active units, KL, mutual
    information); phases a call did not run are absent.
""",
    "module_": """
module_ : torch.nn.Module
    The trained encoder and decoder (float64).
""",
    "n_features_in_": """
n_features_in_ : int
    Number of features seen during :term:`fit`.
""",
    "feature_names_in_": """
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X` has
    feature names that are all strings.
""",
}

_ENTRIES = {**PARAMETERS, **ATTRIBUTES}
_MARKER = re.compile(r"^( *)\{\{([\w ]+)\}\}$", re.MULTILINE)


def fill(doc):
    """``doc`` with each line ``{{name name ...}}`` replaced by those shared entries, indented like it."""

    def entries(match):
        indent, names = match.group(1), match.group(2).split()
        text = "".join(_ENTRIES[name].lstrip("\n") for name in names)
        return textwrap.indent(text, indent).rstrip("\n")

    return _MARKER.sub(entries, doc)


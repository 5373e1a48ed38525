"""SphericalClusterVAE: the VAE trained inside the cluster-aware feasible band on the shell."""

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseVAE
from ._docstrings import fill
from ._feasible import collapse_loss
from ._geometry import GEOMETRIES
from ._representation import check_n_clusters, fit_band, fit_data_map
from ._shell import MAX_RADIUS

#: Defaults of the reconstruction target (chosen from benchmarks/results/evaluation.md).
DEFAULT_MARGIN = 0.8
DEFAULT_ANCHOR = "best"


class SphericalClusterVAE(_BaseVAE):
    """Variational autoencoder with a checked guarantee against posterior collapse.

    The data are standardized; decoder outputs are confined to a spherical
    shell ``r_min_ <= |y| <= r_max_`` around the standardized data (by
    default open outward, with no radial map); K-means fixes a
    reconstruction target ``tau`` strictly below the collapse loss
    ``delta_collapse`` (the best any decoder that ignores its input can do
    with outputs in the shell); the VAE is trained with a Lagrange multiplier
    that keeps its reconstruction loss under ``tau``. After fitting, a Monte
    Carlo test certifies that the expected reconstruction loss is below
    ``delta_collapse``, which proves that ``q(z|x)`` depends on ``x``; if it
    does not hold, a :class:`~skvae.exceptions.PosteriorCollapseWarning` says
    so.

    It is used like :class:`~sklearn.decomposition.PCA`: :meth:`transform`
    gives posterior means, :meth:`inverse_transform` decodes, :meth:`score`
    is a log-likelihood bound in the original units.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    {{n_components}}
    n_clusters : int, default=8
        K of the internal K-means that defines the feasible band. Must be at
        least 2 and at most n_samples.
    shell_map : {"identity", "paper"}, default="identity"
        ``"identity"`` models the standardized rows as they are and only
        confines decoder outputs to the shell. ``"paper"`` first maps the
        rows radially into the shell as the paper does
        (:class:`SphericalShellScaler`); kept for reproduction, it costs
        reconstruction where rows lie far from the centre.
    r_min : float or "auto", default="auto"
        Inner radius of the shell. With ``shell_map="identity"``, ``"auto"``
        is the smallest standardized training norm divided by 1.5 and a
        number is an absolute radius in standardized units; with
        ``shell_map="paper"``, ``"auto"`` is 1. Numbers are at most 1e6.
    r_max : float or "auto", default="auto"
        Outer radius of the shell. With ``shell_map="identity"``, ``"auto"``
        is ``inf``: the shell is open outward, so rows beyond the training
        data are not capped (the collapse loss does not depend on it there);
        with ``shell_map="paper"`` it is 2. A number must exceed the inner
        radius and be at most 1e6.
    beta : float, default=1.0
        Weight of the KL term (beta-VAE). The constraint keeps the model out
        of collapse however large it is.
    margin : float, default=0.8
        Position of the target between the collapse loss and the anchor
        loss, strictly between 0 and 1:
        ``tau = delta_collapse - margin * (delta_collapse - anchor_loss)``.
    anchor : {"codebook", "pca", "best"}, default="best"
        The achievable loss the target is anchored on: the K-means codebook
        projected onto the shell (``codebook_loss_``, the paper's ``W_S``),
        the expected reconstruction loss of probabilistic PCA with
        ``n_components`` under its own posterior (``pca_loss_``, where the
        linear path starts), or the smaller of the two.
    decoder_variance : "learned" or float, default="learned"
        Variance of the Gaussian decoder. ``"learned"`` uses its
        maximum-likelihood value ``R / n_features`` (a calibrated decoder whose
        balance with the KL does not depend on the radii or data scale). A
        positive float fixes ``sigma^2`` in the modelled space's units
        (standardized units by default), the conventional setting in which
        VAEs collapse for large ``sigma^2``.
    {{outlier_weight hidden_layer_sizes activation linear_path max_iter batch_size learning_rate_init learning_rate tol}}
    n_iter_no_change : int, default=20
        Training stops after this many epochs without improvement, provided
        the moving-average reconstruction loss is under ``tau``. With
        ``learning_rate="adaptive"``, half as many, counted twice (see
        ``learning_rate``).
    {{early_stopping validation_fraction warm_start n_certificate_passes device n_jobs random_state verbose}}

    Attributes
    ----------
    shell_ : object
        The fitted data map: the standardization (``mean_``, ``scale_``) and,
        with ``shell_map="paper"``, the radial map (a
        :class:`SphericalShellScaler`).
    r_min_, r_max_ : float
        The resolved shell radii, in the modelled space (``r_max_`` is
        ``inf`` for an open shell).
    within_cluster_variance_ : float
        ``W``, the K-means loss per sample.
    codebook_loss_ : float
        ``W_S``, the loss of the K centres projected onto the shell.
    pca_loss_ : float
        Expected reconstruction loss ``E_q ||y - W z - mean||^2`` of the
        maximum-likelihood probabilistic PCA with ``n_components`` on the
        training rows, ``z`` drawn from its exact posterior (closed form).
    total_variance_ : float
        ``T``, mean squared distance to the mean, in the modelled space.
    collapse_loss_ : float
        ``delta_collapse = T + dist(mean, shell)^2``.
    reconstruction_target_ : float
        ``tau``, the upper edge of the feasible band.
    {{reconstruction_loss_ reconstruction_loss_se_ collapse_certified_}}
    explained_fraction_ : float
        ``1 - R_hat / T``: the share of the (standardized) data's variance
        the model reconstructs. Certification says the posterior did not
        collapse; this says how much the model captures.
    lagrange_multiplier_ : float
        Final value of the constraint's multiplier (1e-3 means inactive).
    {{decoder_variance_ outlier_variance_ active_units_ kl_per_dimension_ mutual_information_}}
    shell_radius_range_ : tuple of float
        Smallest and largest norm of the training rows in the modelled
        space; with the paper's map, decoded norms are clipped into it
        before the map is inverted.
    output_knee_ : float
        Knee of the output layer; it is the identity for norms in
        ``[output_knee_, r_max_]``.
    n_rows_below_knee_ : int
        Training rows whose norm is below the knee.
    loss_curve_ : list of float
        Negative beta-ELBO (without the constraint term) of each epoch.
    {{validation_scores_ best_validation_score_ n_iter_ n_samples_seen_ n_partial_fit_calls_ device_ batch_size_ learning_rate_ fit_times_ module_ n_features_in_ feature_names_in_}}

    See Also
    --------
    VAE : The conventional baseline with the same networks, without shell or
        constraint.
    SphericalShellScaler : The data map used here.
    sklearn.decomposition.PCA : The linear method this replaces.

    Notes
    -----
    The certificate rules out total collapse only (``q(z|x)`` identical for
    every x). Individual latent dimensions can still be inactive; see
    ``active_units_`` and ``kl_per_dimension_``. It is a statistical test with
    a 3-standard-error margin over ``n_certificate_passes`` passes.

    :meth:`score` includes the log-Jacobian of the data map, so scores are
    comparable across ``n_clusters``, ``r_min``, ``r_max`` and ``shell_map``;
    they are not comparable across different preprocessing placed before the
    model in a Pipeline (its Jacobian is not counted).

    References
    ----------
    .. [1] "Spherical VAE with Cluster-Aware Feasible Regions: Guaranteed
       Prevention of Posterior Collapse", arXiv:2603.10935.
    .. [2] D. J. Rezende and F. Viola, "Taming VAEs", arXiv:1810.00597, 2018.
    .. [3] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes",
       ICLR 2014.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skvae import SphericalClusterVAE
    >>> X, _ = make_blobs(n_samples=300, n_features=10, centers=4, random_state=0)
    >>> vae = SphericalClusterVAE(n_components=2, n_clusters=4, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (300, 2)
    >>> bool(vae.collapse_certified_)
    True
    >>> bool(vae.explained_fraction_ > 0.5)
    True
    >>> vae.reconstruction_loss_ < vae.reconstruction_target_ < vae.collapse_loss_
    True
    >>> vae.inverse_transform(Z).shape
    (300, 10)
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "shell_map": [StrOptions({"identity", "paper"})],
        "r_min": [StrOptions({"auto"}), Interval(numbers.Real, 0, MAX_RADIUS, closed="right")],
        "r_max": [StrOptions({"auto"}), Interval(numbers.Real, 0, MAX_RADIUS, closed="right")],
        "margin": [Interval(numbers.Real, 0, 1, closed="neither")],
        "anchor": [StrOptions({"codebook", "pca", "best"})],
    }

    def __init__(
        self, n_components=2, *,
        # the shell and the feasible band
        n_clusters=8, shell_map="identity", r_min="auto", r_max="auto", beta=1.0,
        margin=DEFAULT_MARGIN, anchor=DEFAULT_ANCHOR, decoder_variance="learned",
        outlier_weight=0.01,
        # the networks
        hidden_layer_sizes=(128, 64), activation="relu", linear_path=True,
        # training and stopping
        max_iter=400, batch_size="auto", learning_rate_init="auto", learning_rate="auto",
        tol=1e-3,
        n_iter_no_change=20, early_stopping="auto", validation_fraction=0.1, warm_start=False,
        # certificate and runtime
        n_certificate_passes=10, device="cpu", n_jobs=None, random_state=None, verbose=0,
    ):
        self._set_init_params(locals())

    def _geometry(self):
        return GEOMETRIES[self.shell_map]

    def _fit_data_map(self, X, progress):
        check_n_clusters(self.n_clusters, X.shape[0])
        return fit_data_map(self._geometry(), X, r_min=self.r_min, r_max=self.r_max,
                            progress=progress)

    def _fit_band(self, Y, Y_in, ppca, seed, progress):
        return fit_band(Y, ppca, Y_in=Y_in, n_clusters=self.n_clusters,
                        r_min=self.r_min_,
                        r_max=self.r_max_, margin=self.margin, anchor=self.anchor,
                        seed=seed, progress=progress)

    def _export_maps(self):
        return self._geometry().export_maps(self.shell_, self.shell_radius_range_)

    def _collapse_loss(self, Y):
        return collapse_loss(Y, self.r_min_, self.r_max_)

    def _standardization(self):
        return self.shell_

    def _to_representation(self, X):
        return self._geometry().transform(self.shell_, X)

    def _from_representation(self, Y):
        return self._geometry().inverse(self.shell_, Y, self.shell_radius_range_)

    def _log_abs_det_jacobian(self, X):
        return self.shell_._log_abs_det_jacobian(X)

    def _output_layer(self):
        return (self.r_min_, self.r_max_, self.output_knee_)

    def _training_summary(self, result):
        return {"lagrange_multiplier_": result.lagrange_multiplier}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The paper's radial map needs whole rows (docs/theory.rst).
        tags.input_tags.allow_nan = self.shell_map != "paper"
        return tags


SphericalClusterVAE.__doc__ = fill(SphericalClusterVAE.__doc__)

"""Data sets, methods and the one-fit job of the collapse benchmark (importable by worker processes)."""

import functools
import time
import warnings

import numpy as np

from _common import heldout_error

N_COMPONENTS = 2
#: Free-bits floor in nats per latent dimension (Kingma et al. 2016 use 0.125-2).
FREE_BITS = 0.5
SPLIT_SEED = 0

METHODS = [
    "VAE",
    "VAE + KL annealing",
    "VAE + cyclical annealing",
    "VAE + free bits",
    "SphericalClusterVAE",
    "SphericalClusterVAE (paper map)",
    "constraint without shell",
    "shell without constraint",
]
#: Methods trained on the paper's radial shell map (their lambda_max is the
#: shell's); every other method, the default SphericalClusterVAE included,
#: models the standardized data.
SHELL_METHODS = {"SphericalClusterVAE (paper map)"}
DATASETS = ["blobs", "lowrank", "digits", "breast_cancer"]

# Low-rank-plus-noise set: x = A s + e with s ~ N(0, diag(LOWRANK_SIGNAL)),
# e ~ N(0, LOWRANK_NOISE I), and A = orthonormal Hadamard columns whose
# entries all have magnitude 1/sqrt(d). Every feature then has the same
# variance v = sum(signal)/d + noise, standardizing divides the covariance by v,
# and the top eigenvalue of the standardized covariance is
# (max(signal) + noise) / v exactly.
LOWRANK_DIM = 32
LOWRANK_SIGNAL = np.array([16.0, 9.0, 4.0, 2.25])
LOWRANK_NOISE = 0.25


def lowrank_lambda_max():
    """Closed-form top eigenvalue of the standardized low-rank covariance."""
    v = LOWRANK_SIGNAL.sum() / LOWRANK_DIM + LOWRANK_NOISE
    return float((LOWRANK_SIGNAL.max() + LOWRANK_NOISE) / v)


def _lowrank(n_samples, rng):
    from scipy.linalg import hadamard

    A = hadamard(LOWRANK_DIM)[:, 1 : 1 + LOWRANK_SIGNAL.size] / np.sqrt(LOWRANK_DIM)
    S = rng.standard_normal((n_samples, LOWRANK_SIGNAL.size)) * np.sqrt(LOWRANK_SIGNAL)
    return S @ A.T + np.sqrt(LOWRANK_NOISE) * rng.standard_normal((n_samples, LOWRANK_DIM))


@functools.cache
def load(name, smoke=False):
    """(X_train, X_test) of a data set, split 70/30 with a fixed seed."""
    from sklearn.datasets import load_breast_cancer, load_digits, make_blobs
    from sklearn.model_selection import train_test_split

    if name == "blobs":
        X, _ = make_blobs(n_samples=600, n_features=24, centers=6, cluster_std=2.0,
                          random_state=SPLIT_SEED)
    elif name == "lowrank":
        X = _lowrank(600, np.random.default_rng(SPLIT_SEED))
    elif name == "digits":
        X = load_digits().data
    elif name == "breast_cancer":
        X = load_breast_cancer().data
    else:
        raise ValueError(f"unknown data set {name!r}")
    if smoke:
        X = X[:150]
    return train_test_split(X, test_size=0.3, random_state=SPLIT_SEED)


def _top_eigenvalue(Y):
    return float(np.linalg.eigvalsh(np.cov(Y, rowvar=False))[-1])


def dataset_info(name, smoke=False):
    """Sizes, the two lambda_max values used to place sigma^2, and PCA's held-out MSE."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skvae import SphericalShellScaler

    X_train, X_test = load(name, smoke)
    lam_empirical = _top_eigenvalue(StandardScaler().fit_transform(X_train))
    lam_std = lowrank_lambda_max() if name == "lowrank" else lam_empirical
    # PCA on standardized features, mapped back: the scale-free baseline that
    # matches what every model here does to the features first.
    pca_std = make_pipeline(StandardScaler(), PCA(n_components=N_COMPONENTS)).fit(X_train)
    return dict(
        dataset=name,
        n_train=X_train.shape[0],
        n_test=X_test.shape[0],
        n_features=X_train.shape[1],
        lambda_standardized=lam_std,
        lambda_standardized_empirical=lam_empirical,
        lambda_shell=_top_eigenvalue(SphericalShellScaler().fit_transform(X_train)),
        pca_mse=heldout_error(PCA(n_components=N_COMPONENTS).fit(X_train), X_test),
        pca_std_mse=heldout_error(pca_std, X_test),
        pca_std_mse_standardized=standardized_mse(pca_std, X_train, X_test),
    )


def standardized_mse(model, X_train, X_test):
    """Held-out MSE with every feature divided by its training standard deviation."""
    scale = X_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    X_hat = model.inverse_transform(model.transform(X_test))
    return float(np.mean(np.sum(((X_test - X_hat) / scale) ** 2, axis=1)))


def make_model(method, *, decoder_variance, beta, seed, max_iter):
    from _ablations import ConstraintWithoutShell, ShellWithoutConstraint

    from skvae import VAE, SphericalClusterVAE

    common = dict(n_components=N_COMPONENTS, decoder_variance=decoder_variance, beta=beta,
                  max_iter=max_iter, random_state=seed)
    factories = {
        "VAE": lambda: VAE(**common),
        "VAE + KL annealing": lambda: VAE(kl_annealing="linear", **common),
        "VAE + cyclical annealing": lambda: VAE(kl_annealing="cyclical", **common),
        "VAE + free bits": lambda: VAE(free_bits=FREE_BITS, **common),
        "SphericalClusterVAE": lambda: SphericalClusterVAE(**common),
        "SphericalClusterVAE (paper map)": lambda: SphericalClusterVAE(
            shell_map="paper", **common),
        "constraint without shell": lambda: ConstraintWithoutShell(**common),
        "shell without constraint": lambda: ShellWithoutConstraint(**common),
    }
    return factories[method]()


def run_one(cell, seed, max_iter, smoke):
    """Fit one model of a cell; a dict of its measurements (``error`` set if the fit failed)."""
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from skvae.exceptions import PosteriorCollapseWarning

    X_train, X_test = load(cell["dataset"], smoke)
    model = make_model(cell["method"], decoder_variance=cell["decoder_variance"],
                       beta=cell["beta"], seed=seed, max_iter=max_iter)
    row = dict(cell, seed=seed, error="", torch_threads=torch.get_num_threads())
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", PosteriorCollapseWarning)
            model.fit(X_train)
    except ValueError as exc:  # e.g. a diverged loss: counted, not hidden
        row.update(error=str(exc).splitlines()[0], fit_seconds=time.perf_counter() - start)
        return row
    row.update(
        fit_seconds=time.perf_counter() - start,
        n_iter=model.n_iter_,
        active_units=model.active_units_,
        collapsed=model.active_units_ == 0,
        kl=float(np.sum(model.kl_per_dimension_)),
        mutual_information=model.mutual_information_,
        certified=bool(model.collapse_certified_),
        reconstruction_loss=model.reconstruction_loss_,
        collapse_loss=model.collapse_loss_,
        mse=heldout_error(model, X_test),
        mse_standardized=standardized_mse(model, X_train, X_test),
    )
    return row

"""Helpers every benchmark shares: held-out reconstruction error, geometric means, one torch thread."""

import contextlib

import numpy as np


def heldout_error(model, X_test, scale=None):
    """Mean over rows of the squared reconstruction error summed over features.

    ``scale`` (per feature, e.g. the training split's standard deviations)
    measures the error in those units; None measures it in the data's own.
    """
    X_hat = model.inverse_transform(model.transform(X_test))
    D = X_test - X_hat if scale is None else (X_test - X_hat) / scale
    return float(np.mean(np.sum(D**2, axis=1)))


def geomean(a):
    """Geometric mean of positive values (ratios across data sets)."""
    a = np.asarray(a, dtype=float)
    return float(np.exp(np.mean(np.log(a))))


@contextlib.contextmanager
def one_torch_thread():
    """torch on one intra-op thread inside the block (the estimators' default n_jobs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

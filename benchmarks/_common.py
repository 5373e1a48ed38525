"""Helpers every benchmark shares: held-out reconstruction error, geometric means, one torch thread, a past commit's checkout."""

import contextlib
import subprocess
import tempfile
from pathlib import Path

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


REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(commit):
    """The path of a temporary git worktree of ``commit``, removed on exit.

    Code imported from it (with the path first on ``sys.path``) is that
    commit's skvae, beside today's in the working tree.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "previous")
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", path, commit],
                       check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", path],
                           check=False, capture_output=True)


"""Resolve fit settings: device, threads, batch_size="auto", the early-stopping split, layer sizes."""

import contextlib
import numbers

import joblib
import numpy as np
import torch

#: ``batch_size="auto"``: aim for this many minibatches per epoch ...
AUTO_BATCH_STEPS = 10
#: ... with the batch size kept in this range.
AUTO_BATCH_RANGE = (16, 256)


def resolve_device(device):
    """torch.device for ``device``, or a ValueError saying why it cannot be used."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device ({exc}).") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch.cuda.is_available() is "
            "False on this machine; use device='cpu'."
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: only 'cpu' and 'cuda' devices are supported.")
    return dev


def resolve_n_jobs(n_jobs):
    """Torch intra-op threads for ``n_jobs`` (sklearn's convention).

    None means 1 (measured robust on a busy machine: torch's intra-op
    threads spin, and beside one other busy process a 2-thread fit ran 10-20x
    slower than with 1 thread); -1 means all CPUs, -2 all but one, and so on.
    """
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, joblib.cpu_count() + 1 + n_jobs)
    return int(n_jobs)


@contextlib.contextmanager
def torch_threads(n_jobs):
    """Run the block with ``resolve_n_jobs(n_jobs)`` torch threads, then restore the setting.

    ``torch.set_num_threads`` is process-wide: it is changed only for the
    block (and only when it differs), never left changed.
    """
    wanted, before = resolve_n_jobs(n_jobs), torch.get_num_threads()
    if wanted == before:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def auto_batch_size(n_samples):
    """``batch_size="auto"``: AUTO_BATCH_STEPS minibatches per epoch, within AUTO_BATCH_RANGE."""
    lo, hi = AUTO_BATCH_RANGE
    return int(min(max(n_samples // AUTO_BATCH_STEPS, lo), hi))


def validation_split(X, fraction, seed):
    """Rows for training and the held-out rows for early stopping (at least 1 each)."""
    n = X.shape[0]
    n_val = min(max(int(round(fraction * n)), 1), n - 2)
    if n_val < 1:
        raise ValueError(
            f"early_stopping needs at least 3 rows (2 to train, 1 to validate); got {n}."
        )
    perm = np.random.RandomState(seed).permutation(n)
    return X[perm[n_val:]], X[perm[:n_val]]


#: Largest network accepted, in weights: 2**31 float32 weights are 8 GiB
#: before gradients and Adam's two moment buffers triple that.
MAX_PARAMETERS = 2**31


def check_network_size(n_features, n_components, hidden):
    """Raise a ValueError naming the settings if the encoder and decoder are too large."""
    enc = [n_features, *hidden, 2 * n_components]
    dec = [n_components, *reversed(hidden), n_features]
    n_params = sum(a * b + b for sizes in (enc, dec) for a, b in zip(sizes[:-1], sizes[1:]))
    if n_params > MAX_PARAMETERS:
        raise ValueError(
            f"hidden_layer_sizes={tuple(hidden)} with n_components={n_components} and "
            f"{n_features} features gives {n_params:.3g} weights, more than the "
            f"{MAX_PARAMETERS:.3g} (8 GiB in float32) skvae accepts; use smaller "
            "layers or fewer components."
        )


def hidden_sizes(hidden_layer_sizes):
    """``hidden_layer_sizes`` as a tuple of positive ints, or a ValueError."""
    sizes = tuple(np.atleast_1d(np.asarray(hidden_layer_sizes, dtype=object)).tolist())
    if not all(isinstance(s, numbers.Integral) and s >= 1 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a sequence of positive integers, got "
            f"{hidden_layer_sizes!r}."
        )
    return tuple(int(s) for s in sizes)

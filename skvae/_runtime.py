"""How a fit runs on this machine: device, torch threads, batch size and learning rate, network size."""

import contextlib
import math
import numbers

import joblib
import numpy as np
import torch

#: ``batch_size="auto"``: aim for this many minibatches per epoch ...
AUTO_BATCH_STEPS = 10
#: ... with the batch size kept in this range; ...
AUTO_BATCH_RANGE = (16, 256)
#: ... and on large data, batches of ``n_samples // AUTO_LARGE_BATCH_STEPS``
#: up to AUTO_BATCH_MAX, so a step's arithmetic outweighs its fixed cost
#: (benchmarks/results/batch_rule.md).
AUTO_LARGE_BATCH_STEPS = 100
AUTO_BATCH_MAX = 4096
#: ``learning_rate_init="auto"``: Adam's step size at batches up to
#: AUTO_LR_BATCH, grown as the square root of the batch above it.
AUTO_LR = 1e-3
AUTO_LR_BATCH = 256
#: ``learning_rate="adaptive"`` starts ``learning_rate_init="auto"`` this
#: many times higher: the division later takes the step below the constant
#: rule's (docs/theory.rst, "Adaptive step").
ADAPTIVE_LR_BOOST = 3.0


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

    None means 1: torch's intra-op threads spin, so more than one slows a
    fit down beside other busy processes (benchmarks/results/threads.md);
    -1 means all CPUs, -2 all but one, and so on.
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
    """``batch_size="auto"``: ``n // 10`` in [16, 256], or ``n // 100`` up to 4096 if larger.

    Small data get about AUTO_BATCH_STEPS steps per epoch (the stopping rule
    counts epochs); above 25,600 rows the batch grows with the data, at
    least AUTO_LARGE_BATCH_STEPS steps per epoch, to AUTO_BATCH_MAX.
    """
    lo, hi = AUTO_BATCH_RANGE
    small = min(max(n_samples // AUTO_BATCH_STEPS, lo), hi)
    large = min(n_samples // AUTO_LARGE_BATCH_STEPS, AUTO_BATCH_MAX)
    return int(max(small, large))


def auto_learning_rate(batch_size):
    """``learning_rate_init="auto"``: 1e-3 up to batch 256, then ``1e-3 * sqrt(batch / 256)``.

    The square-root rule keeps the step's noise about constant as batches
    grow (the gradient's standard error falls as ``1 / sqrt(batch)``).
    """
    return AUTO_LR * math.sqrt(max(batch_size, AUTO_LR_BATCH) / AUTO_LR_BATCH)


def batch_and_learning_rate(batch_size, learning_rate_init, n_samples, adaptive=False):
    """(batch, Adam step size) a fit on ``n_samples`` rows uses: "auto" resolved, batch <= n.

    With ``adaptive`` (the step will be divided when training stalls) the
    "auto" step is ADAPTIVE_LR_BOOST times the constant rule's.
    """
    batch = min(auto_batch_size(n_samples) if batch_size == "auto" else batch_size, n_samples)
    if learning_rate_init != "auto":
        return batch, learning_rate_init
    return batch, auto_learning_rate(batch) * (ADAPTIVE_LR_BOOST if adaptive else 1.0)


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

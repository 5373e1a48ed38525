"""Forward passes of a fitted module on arrays, in row chunks: encode, decode, the ELBO and its noise rows."""

import math

import numpy as np
import torch

from . import _chunks
from ._chunks import chunks
from ._missing import observed, zero_filled
from ._networks import kl_elementwise


def moment_matched_normal(n_pairs, n_components, generator):
    """``2 * n_pairs`` standard-normal rows whose sample mean is 0 and covariance I exactly.

    Antithetic pairs ``(e, -e)`` cancel the mean; whitening by the draws' own
    second moment makes their covariance the identity. A Monte Carlo average
    over them is then exact for any function of ``z`` that is at most
    quadratic: ``score_samples`` of a linear decoder (an untrained model with
    the linear path) is the exact ELBO, and the shared draws do not bias
    every row's score the same way. Needs ``n_pairs >= n_components``.
    """
    E = torch.randn((n_pairs, n_components), generator=generator, dtype=torch.float64).numpy()
    # (1/n) E^T E = U diag(s^2 / n) U^T; E U diag(sqrt(n) / s) U^T has identity second moment.
    _, s, Vt = np.linalg.svd(E, full_matrices=False)
    E = E @ Vt.T @ np.diag(math.sqrt(n_pairs) / s) @ Vt
    return np.vstack([E, -E])


def _as_tensor(a, module):
    p = next(module.parameters())
    return torch.as_tensor(a, dtype=p.dtype, device=p.device)


@torch.no_grad()
def encode(module, Y, M=None):
    """Posterior means and log-variances of the rows of ``Y``, as float64 arrays.

    The encoder sees missing entries (NaN) as 0, the standardized column mean;
    ``M`` is the rows' mask of observed entries (for an encoder with mask
    inputs; None: all observed).
    """
    mus, logvars = [], []
    for s in chunks(Y.shape[0]):
        m = None if M is None else _as_tensor(M[s], module)
        mu, logvar = module.encoder(_as_tensor(zero_filled(Y[s]), module), m)
        mus.append(mu.double().cpu().numpy())
        logvars.append(logvar.double().cpu().numpy())
    n_components = module.encoder.n_components
    if not mus:
        return np.empty((0, n_components)), np.empty((0, n_components))
    return np.concatenate(mus), np.concatenate(logvars)


@torch.no_grad()
def decode(module, Z):
    """Decoder outputs for the rows of ``Z``, as a float64 array."""
    out = [
        module.decoder(_as_tensor(Z[s], module)).double().cpu().numpy()
        for s in chunks(Z.shape[0])
    ]
    return np.concatenate(out) if out else np.empty((0, 0))


def _log_normal(sq, n_obs, variance):
    """log N(y; y_hat, variance I) of rows with squared error ``sq`` over ``n_obs`` entries."""
    return -0.5 * n_obs * math.log(2 * math.pi * variance) - sq / (2.0 * variance)


@torch.no_grad()
def elbo(module, Y, eps, decoder_variance, Y_in=None, outlier=None):
    """Per-row ELBO of ``Y`` under the decoder's observation model, in nats.

    ``E_q[log p(y | z)] - KL(q(z|x) || p(z))``, the expectation taken over
    the fixed noise rows ``eps`` (shape ``(n_draws, n_components)``) so that
    a row's value does not depend on the other rows passed with it. The
    observation model is ``N(y; y_hat(z), sigma^2 I)``, or with ``outlier =
    (w, s2)`` the two-component mixture ``(1 - w) N(y; y_hat(z), sigma^2 I) +
    w N(y; y_hat(z), s2 I)`` (docs/theory.rst, "The score's outlier
    component"). With missing entries (NaN) it is the ELBO of the observed
    entries: the likelihood runs over them only, and the encoder sees
    ``Y_in`` (the filled rows; default: zero-filled).
    """
    n_features = Y.shape[1]
    out = np.empty(Y.shape[0])
    eps_t = _as_tensor(eps, module)
    rows = max(1, _chunks.CHUNK_ROWS // eps.shape[0])
    weight, broad = (0.0, None) if outlier is None else outlier
    for start in range(0, Y.shape[0], rows):
        Y0, M = observed(Y[start : start + rows])
        y = _as_tensor(Y0, module)
        x = y if Y_in is None else _as_tensor(Y_in[start : start + rows], module)
        mu, logvar = module.encoder(x, None if M is None else _as_tensor(M, module))
        z = mu[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps_t[None]
        y_hat = module.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], -1)
        d = y[:, None, :] - y_hat
        n_obs = n_features
        if M is not None:
            m = _as_tensor(M, module)
            d = d * m[:, None, :]
            n_obs = m.sum(dim=1)[:, None]
        sq = d.pow(2).sum(dim=-1)
        loglik = _log_normal(sq, n_obs, decoder_variance)
        if weight > 0:
            loglik = torch.logaddexp(
                math.log1p(-weight) + loglik, math.log(weight) + _log_normal(sq, n_obs, broad)
            )
        kl = kl_elementwise(mu, logvar).sum(dim=1)
        out[start : start + y.shape[0]] = (loglik.mean(dim=1) - kl).double().cpu().numpy()
    return out

"""Posterior statistics on arrays: the collapse certificate, KL, active units, MI, ELBO."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._networks import kl_per_dimension

#: Rows per forward pass at inference; bounds memory for any n_samples.
CHUNK_ROWS = 4096

#: Threshold on Var_x(E_q[z|x]) for an active unit (Burda et al., 2016).
ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass(frozen=True)
class CollapseCertificate:
    """Result of the Monte Carlo collapse test (docs/theory.rst).

    Attributes
    ----------
    reconstruction_loss : float
        R-hat, the mean over passes of the reconstruction loss with z ~ q(z|x).
    standard_error : float
        Standard error of R-hat over the passes.
    collapse_loss : float
        delta_collapse, the best loss any input-independent decoder can reach.
    n_passes : int
        Number of independent passes over the data.
    """

    reconstruction_loss: float
    standard_error: float
    collapse_loss: float
    n_passes: int

    @property
    def certified(self):
        """True when ``R-hat + 3 SE < delta_collapse``: q(z|x) depends on x."""
        return bool(self.reconstruction_loss + 3 * self.standard_error < self.collapse_loss)

    @property
    def margin(self):
        """``delta_collapse - R-hat``, the collapse margin."""
        return self.collapse_loss - self.reconstruction_loss


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


def chunks(n):
    """Row slices of at most CHUNK_ROWS rows covering range(n)."""
    return [slice(s, min(s + CHUNK_ROWS, n)) for s in range(0, n, CHUNK_ROWS)]


def _as_tensor(a, module):
    p = next(module.parameters())
    return torch.as_tensor(a, dtype=p.dtype, device=p.device)


@torch.no_grad()
def encode(module, Y):
    """Posterior means and log-variances of the rows of ``Y``, as float64 arrays."""
    mus, logvars = [], []
    for s in chunks(Y.shape[0]):
        mu, logvar = module.encoder(_as_tensor(Y[s], module))
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


@torch.no_grad()
def collapse_certificate(module, Y, mu, logvar, collapse_loss, *, n_passes, generator):
    """Estimate E_q[R] on ``Y`` with ``n_passes`` independent passes of fresh z.

    ``generator`` is a CPU torch.Generator; every pass draws new noise from it.
    """
    std = np.exp(0.5 * logvar)
    losses = np.empty(n_passes)
    for m in range(n_passes):
        sq = 0.0
        for s in chunks(Y.shape[0]):
            eps = torch.randn(mu[s].shape, generator=generator, dtype=torch.float64)
            z = mu[s] + std[s] * eps.numpy()
            sq += float(np.sum((Y[s] - decode(module, z)) ** 2))
        losses[m] = sq / Y.shape[0]
    se = float(losses.std(ddof=1) / math.sqrt(n_passes))
    return CollapseCertificate(float(losses.mean()), se, float(collapse_loss), n_passes)


def active_units(mu, threshold=ACTIVE_UNIT_THRESHOLD):
    """Number of latent dimensions whose posterior mean varies over x by more than threshold."""
    if mu.shape[0] < 2:
        return 0
    return int(np.sum(mu.var(axis=0) > threshold))


def kl_by_dimension(mu, logvar):
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over rows."""
    kl = kl_per_dimension(torch.from_numpy(mu), torch.from_numpy(logvar))
    return kl.mean(dim=0).numpy()


def mutual_information(mu, logvar, *, generator, max_samples=2000):
    """Minibatch estimate of I(x; z) under q (Hoffman & Johnson 2016; He et al. 2019).

    ``I = E_x E_q(z|x)[log q(z|x) - log q(z)]`` with the aggregate
    posterior ``q(z)`` replaced by the mixture of the posteriors of the rows
    used, one draw ``z_i ~ q(z|x_i)`` per row. Unlike He et al., who take the
    entropy term in closed form, both terms use the same draws, which lowers
    the variance and makes the estimate exactly 0 for a collapsed posterior.
    At most ``max_samples`` rows (drawn by ``generator``) enter the ``O(n^2)``
    mixture; the estimate is bounded above by ``log(n)``.
    """
    n, d = mu.shape
    if n > max_samples:
        idx = torch.randperm(n, generator=generator)[:max_samples].numpy()
        mu, logvar = mu[idx], logvar[idx]
        n = max_samples
    mu_t, logvar_t = torch.from_numpy(mu), torch.from_numpy(logvar)
    eps = torch.randn(mu_t.shape, generator=generator, dtype=torch.float64)
    z = mu_t + torch.exp(0.5 * logvar_t) * eps
    var = logvar_t.exp()
    log_norm = -0.5 * (d * math.log(2 * math.pi) + logvar_t.sum(dim=1))
    # log q(z_i | x_i), at the same draws as the mixture term: the two terms
    # then cancel exactly for a collapsed posterior.
    log_q_own = log_norm - 0.5 * eps.pow(2).sum(dim=1)
    log_qz = []
    for s in range(0, n, 256):
        dev = z[s : s + 256, None, :] - mu_t[None, :, :]
        log_dens = -0.5 * (dev.pow(2) / var[None]).sum(dim=-1) + log_norm[None]
        log_qz.append(torch.logsumexp(log_dens, dim=1) - math.log(n))
    return float((log_q_own - torch.cat(log_qz)).mean())


@torch.no_grad()
def elbo(module, Y, eps, decoder_variance):
    """Per-row ELBO of ``Y`` under the Gaussian decoder, in nats.

    ``E_q[log N(y; y_hat(z), sigma^2 I)] - KL(q(z|x) || p(z))``, the
    expectation taken over the fixed noise rows ``eps`` (shape
    ``(n_draws, n_components)``) so that a row's value does not depend on the
    other rows passed with it.
    """
    n_features = Y.shape[1]
    log_norm = -0.5 * n_features * math.log(2 * math.pi * decoder_variance)
    out = np.empty(Y.shape[0])
    eps_t = _as_tensor(eps, module)
    rows = max(1, CHUNK_ROWS // eps.shape[0])
    for start in range(0, Y.shape[0], rows):
        y = _as_tensor(Y[start : start + rows], module)
        mu, logvar = module.encoder(y)
        z = mu[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps_t[None]
        y_hat = module.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], -1)
        sq = (y[:, None, :] - y_hat).pow(2).sum(dim=-1)
        loglik = (log_norm - sq / (2.0 * decoder_variance)).mean(dim=1)
        kl = kl_per_dimension(mu, logvar).sum(dim=1)
        out[start : start + y.shape[0]] = (loglik - kl).double().cpu().numpy()
    return out

"""Posterior statistics on arrays: the collapse certificate, KL, active units, mutual information."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._forward import chunks, decode
from ._missing import observed
from ._networks import kl_elementwise

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


@torch.no_grad()
def collapse_certificate(module, Y, mu, logvar, collapse_loss, *, n_passes, generator):
    """Estimate E_q[R] on ``Y`` with ``n_passes`` independent passes of fresh z.

    ``generator`` is a CPU torch.Generator; every pass draws new noise from it.
    Missing entries of ``Y`` (NaN) are left out of the loss, as in training.
    """
    Y, M = observed(Y)
    std = np.exp(0.5 * logvar)
    losses = np.empty(n_passes)
    for m in range(n_passes):
        sq = 0.0
        for s in chunks(Y.shape[0]):
            eps = torch.randn(mu[s].shape, generator=generator, dtype=torch.float64)
            z = mu[s] + std[s] * eps.numpy()
            d = Y[s] - decode(module, z)
            if M is not None:
                d = d * M[s]
            sq += float(np.sum(d**2))
        losses[m] = sq / Y.shape[0]
    se = float(losses.std(ddof=1) / math.sqrt(n_passes))
    return CollapseCertificate(float(losses.mean()), se, float(collapse_loss), n_passes)


def active_units(mu, threshold=ACTIVE_UNIT_THRESHOLD):
    """Number of latent dimensions whose posterior mean varies over x by more than threshold."""
    if mu.shape[0] < 2:
        return 0
    return int(np.sum(mu.var(axis=0) > threshold))


def mean_kl(mu, logvar):
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over rows."""
    kl = kl_elementwise(torch.from_numpy(mu), torch.from_numpy(logvar))
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



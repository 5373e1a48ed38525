"""Early stopping on held-out rows: their negative ELBO, the linear start as a candidate, the best epoch."""

import copy
import math

import numpy as np
import torch

from ._forward import chunks
from ._networks import kl_elementwise


@torch.no_grad()
def _validation_rows(module, Y_val, eps_val, config, train_reconstruction, M_val=None):
    """(negative beta-ELBO, squared error) of each held-out row (numpy).

    The noise is drawn once, so that epochs compare.

    With the learned decoder variance the variance is the one ``score``
    uses, the maximum-likelihood value on the training rows,
    ``train_reconstruction / n_features``: an epoch that fits the training
    rows more tightly than the held-out rows then pays for it, as it does
    in the held-out score. The KL weight is ``beta`` at every epoch and the
    KL is not floored: KL annealing and free bits are training devices, and
    an epoch of a warm-up must not look better for its smaller weight. With
    ``M_val`` (the rows' mask of observed entries) a row's likelihood is that
    of its observed entries.
    """
    mu, logvar = module.encoder(Y_val, M_val)
    z = mu + eps_val * torch.exp(0.5 * logvar)
    d = Y_val - module.decoder(z)
    n_obs = Y_val.shape[1]
    if M_val is not None:
        d = d * M_val
        n_obs = M_val.sum(dim=1).double()
    sq = d.pow(2).sum(dim=1).double()
    kl = config.beta * kl_elementwise(mu, logvar).sum(dim=1).double()
    if config.decoder_variance == "learned":
        variance = (max(train_reconstruction, config.recon_floor)
                    / config.observed_entries(Y_val.shape[1]))
        rows = 0.5 * n_obs * math.log(variance) + sq / (2.0 * variance) + kl
    else:
        rows = sq / (2.0 * config.decoder_variance) + kl
    return rows.cpu().numpy(), sq.cpu().numpy()


def heldout_variance(sq, n_obs):
    """(squared error per observed entry of held-out rows, its standard error).

    The ratio estimator ``sum(sq) / sum(n_obs)`` over the rows; its standard
    error by the delta method, from the rows' residuals ``sq_i - v n_i``.
    """
    v = float(sq.sum() / n_obs.sum())
    if sq.size < 2:
        return v, math.inf
    se = float(np.std(sq - v * n_obs, ddof=1) / (n_obs.mean() * math.sqrt(sq.size)))
    return v, se


def beats_start(rows, start_rows, n_se=2.0):
    """Whether held-out objectives ``rows`` beat the start's by more than ``n_se`` standard errors.

    The paired per-row differences' mean must be below ``-n_se`` times their
    standard error: on a few held-out rows a trained model that only looks
    better by chance does not replace the linear start.
    """
    diff = rows - start_rows
    se = diff.std(ddof=1) / math.sqrt(diff.size) if diff.size > 1 else math.inf
    return bool(diff.mean() < -n_se * se)


@torch.no_grad()
def _reconstruction_loss(module, Y, noise_generator, M=None):
    """R of the untrained model on the training rows, one pass with fresh z."""
    total = 0.0
    for s in chunks(Y.shape[0]):
        y = Y[s]
        m = None if M is None else M[s]
        mu, logvar = module.encoder(y, m)
        eps = torch.randn(mu.shape, generator=noise_generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        total += float(module.decoder.squared_error(z, y, m)) * y.shape[0]
    return total / Y.shape[0]


def _start_candidate(module, Y, Y_val, eps_val, config, noise_generator, M=None, M_val=None):
    """(held-out rows' objectives, state) of the untrained model; state None if it cannot win.

    The starting model (probabilistic PCA, with the linear path) is the
    first candidate of early stopping: if no epoch beats it on the held-out
    rows, it is what the fit returns. It is not one where it breaks the
    reconstruction constraint or its objective is not finite.
    """
    module.eval()
    start_R = _reconstruction_loss(module, Y, noise_generator, M)
    rows, sq = _validation_rows(module, Y_val, eps_val, config, start_R, M_val)
    feasible = config.constraint is None or start_R <= config.constraint.target
    if not (feasible and np.isfinite(rows).all()):
        return (rows, sq), None
    return (rows, sq), copy.deepcopy(module.state_dict())


class HeldOut:
    """Early stopping's bookkeeping: the held-out rows, their noise, the start and the best epoch.

    The noise of the held-out rows is drawn once, so that epochs compare.
    On a fresh fit the untrained model (probabilistic PCA with the linear
    path) is the first candidate; a trained epoch replaces it only if it
    beats it on the held-out rows by more than two standard errors
    (:func:`beats_start`).
    """

    def __init__(self, module, Y, Y_val, config, noise_generator, fresh, M=None, M_val=None):
        self.Y_val, self.M_val = Y_val, M_val
        self.config = config
        self.eps = torch.randn(
            (Y_val.shape[0], module.encoder.n_components),
            generator=noise_generator, device=Y_val.device, dtype=Y_val.dtype,
        )
        self.best = math.inf
        self.best_state = self.start_state = self.rows = self.best_rows = None
        self.sq = self.best_sq = self.start_sq = None
        # Observed entries of each held-out row, for the held-out variance.
        self.n_obs = (np.full(Y_val.shape[0], float(Y_val.shape[1])) if M_val is None
                      else M_val.sum(dim=1).double().cpu().numpy())
        self.best_is_start = False
        self.best_epoch = 0  # epochs trained to reach best_state (0: the start)
        if fresh:
            (self.start_rows, self.start_sq), self.start_state = _start_candidate(
                module, Y, Y_val, self.eps, config, noise_generator, M, M_val
            )
            if self.start_state is not None:
                self.best = float(self.start_rows.mean()) / Y.shape[1]
                self.best_state, self.best_is_start = self.start_state, True

    def objective(self, module, train_reconstruction):
        """The held-out negative ELBO per feature of the module as it is now (inf or NaN if diverged)."""
        module.eval()
        self.rows, self.sq = _validation_rows(
            module, self.Y_val, self.eps, self.config, train_reconstruction, self.M_val)
        module.train()
        return float(self.rows.mean()) / self.Y_val.shape[1]

    def keep(self, module, n_epochs):
        """Remember the module's weights, after ``n_epochs`` epochs, as the best so far."""
        self.best_state = copy.deepcopy(module.state_dict())
        self.best_rows, self.best_sq = self.rows, self.sq
        self.best_is_start = False
        self.best_epoch = n_epochs

    def chosen(self):
        """(weights to restore or None, whether they are the start's, their epochs)."""
        if (self.start_state is not None and not self.best_is_start
                and not beats_start(self.best_rows, self.start_rows)):
            return self.start_state, True, 0
        return self.best_state, self.best_is_start, self.best_epoch

    def variance(self, kept_start):
        """:func:`heldout_variance` of the weights the fit keeps: the start, the best
        epoch, or (no feasible epoch) the last one; ``kept_start`` as :meth:`chosen` says."""
        sq = self.start_sq if kept_start else self.best_sq
        return heldout_variance(self.sq if sq is None else sq, self.n_obs)

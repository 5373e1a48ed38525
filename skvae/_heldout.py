"""Early stopping on held-out rows: their error and ELBO, the linear start as a candidate, the epoch kept."""

import copy
import math
from dataclasses import dataclass

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


#: Nats per held-out row by which an epoch's mean negative ELBO may exceed the
#: best epoch's and still be chosen for its lower reconstruction error.
ELBO_TOLERANCE = 0.1


def monitored_error(sq, n_obs):
    """What the stopping rule watches: ``log(v)/2``, v the held-out squared error per observed entry.

    Its changes are relative changes of the error, so ``tol`` means the same
    whatever the data's scale, dimension or decoder variance.
    """
    return 0.5 * math.log(max(float(sq.sum() / n_obs.sum()), 1e-300))


@dataclass
class _Candidate:
    """One set of weights the fit may keep, with its held-out rows' objectives and errors."""

    rows: np.ndarray  # negative beta-ELBO of each held-out row
    sq: np.ndarray  # squared error of each held-out row
    state: dict  # the module's weights
    epochs: int  # epochs trained to reach them (0: the start)
    is_start: bool = False

    def elbo(self):
        return float(self.rows.mean())

    def error(self):
        return float(self.sq.mean())


def _near(best, c):
    """Whether candidate ``c``'s held-out negative ELBO is near the best candidate's ``best``.

    Within :data:`ELBO_TOLERANCE` nats per row on average, and not beaten by
    ``best`` by more than two standard errors of the paired differences.
    """
    return c is best or (c.elbo() - best.elbo() <= ELBO_TOLERANCE
                         and not beats_start(best.rows, c.rows))


class HeldOut:
    """Early stopping's bookkeeping: the held-out rows, their noise, the start and the candidates.

    The noise of the held-out rows is drawn once, so that epochs compare.
    Every epoch at which the reconstruction constraint held is offered as a
    candidate; the fit keeps, among the candidates whose held-out ELBO is
    near the best one (:func:`_near`), the one with the lowest held-out
    reconstruction error. On a fresh fit the untrained model (probabilistic
    PCA with the linear path) is a candidate too, and it stays unless the
    chosen epoch's error beats it by more than two standard errors
    (:func:`beats_start`), where the best ELBO does not beat the start's by
    as much. Stored are only candidates that another does not match or beat
    on both means and whose ELBO is within the tolerance of the best (the
    best only falls).
    """

    def __init__(self, module, Y, Y_val, config, noise_generator, fresh, M=None, M_val=None):
        self.Y_val, self.M_val = Y_val, M_val
        self.config = config
        self.eps = torch.randn(
            (Y_val.shape[0], module.encoder.n_components),
            generator=noise_generator, device=Y_val.device, dtype=Y_val.dtype,
        )
        self.rows = self.sq = None
        # Observed entries of each held-out row, for the held-out variance.
        self.n_obs = (np.full(Y_val.shape[0], float(Y_val.shape[1])) if M_val is None
                      else M_val.sum(dim=1).double().cpu().numpy())
        self.start = None
        self.candidates = []
        self.best = self.best_error = math.inf  # the stopping rule's starting values
        if fresh:
            (rows, sq), state = _start_candidate(
                module, Y, Y_val, self.eps, config, noise_generator, M, M_val
            )
            if state is not None:
                self.start = _Candidate(rows, sq, state, 0, is_start=True)
                self.candidates.append(self.start)
                self.best = float(rows.mean()) / Y.shape[1]
                self.best_error = monitored_error(sq, self.n_obs)

    def objective(self, module, train_reconstruction):
        """(held-out negative ELBO per feature, :func:`monitored_error`) of the module as it is now."""
        module.eval()
        self.rows, self.sq = _validation_rows(
            module, self.Y_val, self.eps, self.config, train_reconstruction, self.M_val)
        module.train()
        elbo = float(self.rows.mean()) / self.Y_val.shape[1]
        return elbo, (monitored_error(self.sq, self.n_obs) if np.isfinite(self.sq).all()
                      else math.nan)

    def offer(self, module, n_epochs):
        """Make the module's weights, after ``n_epochs`` epochs, a candidate if they can be chosen."""
        new = _Candidate(self.rows, self.sq, None, n_epochs)
        others = [c for c in self.candidates if not c.is_start]
        if any(c.elbo() <= new.elbo() and c.error() <= new.error() for c in self.candidates):
            return
        new.state = copy.deepcopy(module.state_dict())
        start = [] if self.start is None else [self.start]
        kept = [c for c in others if not (new.elbo() <= c.elbo() and new.error() <= c.error())]
        kept.append(new)
        best = min(start + kept, key=_Candidate.elbo)
        self.candidates = start + [c for c in kept if c.elbo() - best.elbo() <= ELBO_TOLERANCE]

    def _choice(self):
        """The candidate the fit keeps, or None if no epoch was feasible and the start cannot be kept."""
        if not self.candidates:
            return None
        best = min(self.candidates, key=_Candidate.elbo)
        pick = min((c for c in self.candidates if _near(best, c)), key=_Candidate.error)
        if (self.start is not None and pick is not self.start
                and not beats_start(best.rows, self.start.rows)
                and not beats_start(pick.sq, self.start.sq)):
            return self.start
        return pick

    def chosen(self):
        """(weights to restore or None, whether they are the start's, their epochs, held-out variance).

        The variance is :func:`heldout_variance` of the kept weights (without a
        feasible candidate, of the last epoch's).
        """
        pick = self._choice()
        if pick is None:
            return None, False, 0, heldout_variance(self.sq, self.n_obs)
        return pick.state, pick.is_start, pick.epochs, heldout_variance(pick.sq, self.n_obs)

"""Minibatch Adam training of a VAE, with the optional reconstruction constraint (docs/theory.rst)."""

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._forward import chunks
from ._networks import kl_elementwise

# Multiplier rule of docs/theory.rst.
LAMBDA_INIT = 1.0
LAMBDA_BOUNDS = (1e-3, 1e4)
LAMBDA_STEP = 0.05
MOVING_AVERAGE = 0.9


@dataclass(frozen=True)
class Constraint:
    """Keep the reconstruction loss R under ``target`` (tau); ``collapse`` is delta."""

    target: float
    collapse: float

    @property
    def width(self):
        return self.collapse - self.target


@dataclass(frozen=True)
class TrainingConfig:
    """Everything the loop needs besides the module and the data."""

    beta: float
    decoder_variance: object  # "learned" or a positive float
    max_iter: int
    batch_size: int
    learning_rate: float
    tol: float
    n_iter_no_change: int
    constraint: Constraint = None
    kl_weight: object = None  # callable epoch -> multiplier of beta, or None
    earliest_stop: int = 0  # no early stopping before this epoch (annealing)
    free_bits: float = 0.0
    fixed_budget: bool = False  # run max_iter epochs by design (cyclical annealing)
    recon_floor: float = 1e-12  # guard for log R with a learned variance
    progress: object = None  # a skvae._progress.Progress, told about every epoch
    first_epoch: int = 0  # epochs already trained (warm start, partial_fit): schedules go on


@dataclass
class TrainingResult:
    """What the loop reports back to the estimator."""

    loss_curve: list = field(default_factory=list)
    reconstruction_curve: list = field(default_factory=list)
    lagrange_multiplier: float = LAMBDA_INIT
    reconstruction_average: float = None  # moving average of R; constrained training only
    validation_scores: list = None  # early stopping only: -objective per feature
    state: dict = None  # optimizer and multiplier, as plain data, to resume training
    n_iter: int = 0
    kept_start: bool = False  # early stopping restored the untrained model
    converged: bool = False
    feasible: bool = True


def reconstruction_term(R, n_features, decoder_variance, floor):
    """Negative log-likelihood of the Gaussian decoder, up to constants.

    ``(n_features / 2) * log R`` for the maximum-likelihood ("learned")
    variance ``R / n_features``; ``R / (2 sigma^2)`` for a fixed ``sigma^2``.
    """
    if decoder_variance == "learned":
        return 0.5 * n_features * torch.log(R.clamp_min(floor))
    return R / (2.0 * decoder_variance)


def kl_term(mu, logvar, free_bits):
    """Mean KL(q(z|x) || p(z)); with free bits, each dimension's batch mean is floored."""
    kl = kl_elementwise(mu, logvar).mean(dim=0)
    if free_bits > 0:
        # Below the floor the term is constant, so its gradient stops there.
        kl = kl.clamp_min(free_bits)
    return kl.sum()


def _clip(x, lo, hi):
    """``x`` clipped to ``[lo, hi]``: a float, or a tensor that stays on its device."""
    return x.clamp(lo, hi) if torch.is_tensor(x) else min(max(x, lo), hi)


class _Multiplier:
    """log-space Lagrange multiplier update with a normalised, clipped violation.

    With ``on_device`` the state is kept as 0-d tensors on the loss's device,
    so the per-step rule never waits for the device (a host sync per step on
    a GPU); otherwise it is plain floats, which on the CPU cost less than
    tensor arithmetic. The rule is the same code for both.
    """

    def __init__(self, constraint, on_device=False):
        self.constraint = constraint
        self.on_device = on_device
        self.log_value = math.log(LAMBDA_INIT)
        self.average = None

    @property
    def value(self):
        return math.exp(float(self.log_value)) if self.constraint else 0.0

    def penalty(self, R):
        """``lambda (R - tau) / (delta - tau)``, the term added to the loss."""
        c = self.constraint
        lam = self.log_value.exp() if torch.is_tensor(self.log_value) else math.exp(self.log_value)
        return (R - c.target) * (lam / c.width)

    def update(self, R):
        r = R.detach() if self.on_device else float(R)
        self.average = r if self.average is None else (
            MOVING_AVERAGE * self.average + (1 - MOVING_AVERAGE) * r
        )
        c = self.constraint
        violation = _clip((self.average - c.target) / c.width, -1.0, 1.0)
        lo, hi = math.log(LAMBDA_BOUNDS[0]), math.log(LAMBDA_BOUNDS[1])
        self.log_value = _clip(self.log_value + LAMBDA_STEP * violation, lo, hi)

    @property
    def feasible(self):
        return self.constraint is None or float(self.average) <= self.constraint.target

    def state(self):
        """(log multiplier, moving average of R) as floats, to resume from."""
        average = None if self.average is None else float(self.average)
        return float(self.log_value), average


def improvement_threshold(config, reconstruction, n_features):
    """The drop of the loss per feature that counts as an improvement: ``tol`` in relative R.

    With the learned decoder variance the loss per feature is
    ``log(R)/2 + beta KL / n_features``, so ``tol`` is a relative drop of R
    of about ``2 tol`` whatever the data. With a fixed variance ``sigma^2``
    the reconstruction part is ``R / (2 sigma^2 n_features)``; the same
    relative drop of R, at the epoch's ``reconstruction`` R, moves it by
    ``tol R / (sigma^2 n_features)``, which is returned so that ``tol``
    means the same there (an absolute ``tol`` stops large variances early).
    """
    if config.decoder_variance == "learned":
        return config.tol
    return config.tol * reconstruction / (config.decoder_variance * n_features)


def diverged(epoch, config):
    """The ValueError for a non-finite loss or weights at 0-based ``epoch`` of this run.

    The epoch is reported counted over all training so far (``first_epoch``
    added), so a resumed partial_fit or warm start names the model's epoch.
    """
    advice = f"Lower learning_rate_init (now {config.learning_rate:g}) or beta (now {config.beta:g})"
    if config.decoder_variance != "learned":
        advice += f", or raise decoder_variance (now {config.decoder_variance:g})"
    return ValueError(
        f"Training diverged: the loss or the weights became NaN or infinite at "
        f"epoch {config.first_epoch + epoch + 1}. {advice}."
    )


def _objective(decoder, y, z, mu, logvar, weight, config):
    """(objective, R): negative beta-ELBO (up to constants) and reconstruction loss."""
    R = decoder.squared_error(z, y)
    objective = reconstruction_term(
        R, y.shape[1], config.decoder_variance, config.recon_floor
    ) + weight * kl_term(mu, logvar, config.free_bits)
    return objective, R


@torch.no_grad()
def _validation_rows(module, Y_val, eps_val, config, train_reconstruction):
    """Negative beta-ELBO of each held-out row (numpy), noise drawn once so that epochs compare.

    With the learned decoder variance the variance is the one ``score``
    uses, the maximum-likelihood value on the training rows,
    ``train_reconstruction / n_features``: an epoch that fits the training
    rows more tightly than the held-out rows then pays for it, as it does
    in the held-out score. The KL weight is ``beta`` at every epoch and the
    KL is not floored: KL annealing and free bits are training devices, and
    an epoch of a warm-up must not look better for its smaller weight.
    """
    mu, logvar = module.encoder(Y_val)
    z = mu + eps_val * torch.exp(0.5 * logvar)
    sq = (Y_val - module.decoder(z)).pow(2).sum(dim=1).double()
    kl = config.beta * kl_elementwise(mu, logvar).sum(dim=1).double()
    if config.decoder_variance == "learned":
        variance = max(train_reconstruction, config.recon_floor) / Y_val.shape[1]
        rows = 0.5 * Y_val.shape[1] * math.log(variance) + sq / (2.0 * variance) + kl
    else:
        rows = sq / (2.0 * config.decoder_variance) + kl
    return rows.cpu().numpy()


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
def _reconstruction_loss(module, Y, noise_generator):
    """R of the untrained model on the training rows, one pass with fresh z."""
    total = 0.0
    for s in chunks(Y.shape[0]):
        y = Y[s]
        mu, logvar = module.encoder(y)
        eps = torch.randn(mu.shape, generator=noise_generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        total += float(module.decoder.squared_error(z, y)) * y.shape[0]
    return total / Y.shape[0]


def _start_candidate(module, Y, Y_val, eps_val, config, noise_generator):
    """(held-out rows' objectives, state) of the untrained model; state None if it cannot win.

    The starting model (probabilistic PCA, with the linear path) is the
    first candidate of early stopping: if no epoch beats it on the held-out
    rows, it is what the fit returns. It is not one where it breaks the
    reconstruction constraint or its objective is not finite.
    """
    module.eval()
    start_R = _reconstruction_loss(module, Y, noise_generator)
    rows = _validation_rows(module, Y_val, eps_val, config, start_R)
    feasible = config.constraint is None or start_R <= config.constraint.target
    if not (feasible and np.isfinite(rows).all()):
        return rows, None
    return rows, copy.deepcopy(module.state_dict())


def optimizer_state_to_numpy(optimizer):
    """Adam's state as plain data (numpy arrays, str keys): picklable and skops-safe."""
    sd = optimizer.state_dict()
    return {
        "state": {str(k): {name: t.detach().cpu().numpy().copy() if torch.is_tensor(t) else t
                           for name, t in v.items()}
                  for k, v in sd["state"].items()},
        "param_groups": [{k: (list(v) if isinstance(v, (list, tuple)) else v)
                          for k, v in g.items()} for g in sd["param_groups"]],
    }


def optimizer_state_from_numpy(optimizer, state, device):
    """Load what :func:`optimizer_state_to_numpy` stored into ``optimizer``."""
    groups = [{**g, "params": list(g["params"])} for g in state["param_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    tensors = {int(k): {name: torch.as_tensor(np.asarray(v)).to(
        device if name != "step" else "cpu") for name, v in entry.items()}
        for k, entry in state["state"].items()}
    optimizer.load_state_dict({"state": tensors, "param_groups": groups})


def _fused_adam(device):
    """Whether torch has a fused Adam kernel for ``device``'s parameters.

    One kernel for all parameters instead of a loop over them in Python,
    which matters most at small batches (benchmarks/results/speed.md). The
    CPU kernel came with torch 2.4.
    """
    if device.type == "cuda":
        return True
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return device.type == "cpu" and (major, minor) >= (2, 4)


def _optimizer_and_multiplier(module, config, device, resume):
    """Adam over the module's weights and the constraint's multiplier, resumed if given."""
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.learning_rate, fused=_fused_adam(device)
    )
    multiplier = _Multiplier(config.constraint, on_device=device.type != "cpu")
    if resume is not None:
        optimizer_state_from_numpy(optimizer, resume["optimizer"], device)
        multiplier.log_value, multiplier.average = resume["multiplier"]
    return optimizer, multiplier


class _HeldOut:
    """Early stopping's bookkeeping: the held-out rows, their noise, the start and the best epoch.

    The noise of the held-out rows is drawn once, so that epochs compare.
    On a fresh fit the untrained model (probabilistic PCA with the linear
    path) is the first candidate; a trained epoch replaces it only if it
    beats it on the held-out rows by more than two standard errors
    (:func:`beats_start`).
    """

    def __init__(self, module, Y, Y_val, config, noise_generator, fresh):
        self.Y_val = Y_val
        self.config = config
        self.eps = torch.randn(
            (Y_val.shape[0], module.encoder.n_components),
            generator=noise_generator, device=Y_val.device, dtype=Y_val.dtype,
        )
        self.best = math.inf
        self.best_state = self.start_state = self.rows = self.best_rows = None
        if fresh:
            self.start_rows, self.start_state = _start_candidate(
                module, Y, Y_val, self.eps, config, noise_generator
            )
            if self.start_state is not None:
                self.best = float(self.start_rows.mean()) / Y.shape[1]
                self.best_state = self.start_state

    def objective(self, module, train_reconstruction, epoch):
        """The held-out negative ELBO per feature of the module as it is now."""
        module.eval()
        self.rows = _validation_rows(module, self.Y_val, self.eps, self.config,
                                     train_reconstruction)
        module.train()
        monitored = float(self.rows.mean())
        if not math.isfinite(monitored):
            raise diverged(epoch, self.config)
        return monitored / self.Y_val.shape[1]

    def keep(self, module):
        """Remember the module's weights as the best epoch so far."""
        self.best_state = copy.deepcopy(module.state_dict())
        self.best_rows = self.rows

    def chosen(self, kept_start):
        """(weights to restore or None, whether they are the start's)."""
        if (self.start_state is not None and not kept_start
                and not beats_start(self.best_rows, self.start_rows)):
            return self.start_state, True
        return self.best_state, kept_start


def _epoch(module, Y, optimizer, multiplier, weight, config, generator, noise_generator, epoch):
    """One pass over shuffled minibatches: (mean objective, mean R) over the rows."""
    n_samples = Y.shape[0]
    order = torch.randperm(n_samples, generator=generator).to(Y.device)
    # Epoch sums stay on the device: one host sync per epoch, not three per step.
    total = torch.zeros((), dtype=Y.dtype, device=Y.device)
    recon_total = torch.zeros((), dtype=Y.dtype, device=Y.device)
    for start in range(0, n_samples, config.batch_size):
        y = Y[order[start : start + config.batch_size]]
        mu, logvar = module.encoder(y)
        eps = torch.randn(mu.shape, generator=noise_generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        objective, R = _objective(module.decoder, y, z, mu, logvar, weight, config)
        loss = objective
        if config.constraint is not None:
            loss = loss + multiplier.penalty(R)
            # The multiplier rule is per step (docs/theory.rst).
            multiplier.update(R.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        try:
            optimizer.step()
        except RuntimeError as exc:  # torch's Adam overflows on absurd step sizes
            if "overflow" not in str(exc):
                raise
            raise diverged(epoch, config) from None
        total += objective.detach() * y.shape[0]
        recon_total += R.detach() * y.shape[0]
    total, recon_total = float(total), float(recon_total)
    if not math.isfinite(total):
        # Checked once per epoch (the objective carries any non-finite R);
        # a failed fit restores the previous state.
        raise diverged(epoch, config)
    return total / n_samples, recon_total / n_samples


def _report(config, epoch, loss, reconstruction, validation, multiplier):
    """The epoch's line for ``verbose``."""
    if config.progress is None or not config.progress.verbose:
        return
    msg = f"loss {loss:.6g}  R {reconstruction:.6g}"
    if validation is not None:
        msg += f"  validation {validation:.6g}"
    if config.constraint is not None:
        msg += (
            f"  R_avg {float(multiplier.average):.6g} (tau {config.constraint.target:.6g})"
            f"  lambda {multiplier.value:.4g}"
        )
    config.progress.epoch(epoch, msg)


def _finish(module, optimizer, multiplier, result, config):
    """Check the final weights and pack the multiplier and optimizer state into ``result``."""
    # The epoch check sees the loss before the last step; the step itself
    # can still overflow the weights (the estimator also checks the
    # outputs, through the certificate's forward passes).
    if not all(torch.isfinite(p).all() for p in module.parameters()):
        raise diverged(result.n_iter - 1, config)
    result.lagrange_multiplier = multiplier.value
    log_value, result.reconstruction_average = multiplier.state()
    result.feasible = multiplier.feasible
    result.state = {
        "optimizer": optimizer_state_to_numpy(optimizer),
        "multiplier": (log_value, result.reconstruction_average),
    }
    module.eval()
    return result


def train(module, Y, config, *, generator, noise_generator, Y_val=None, resume=None):
    """Fit ``module`` to the rows of ``Y`` (a float tensor on the module's device).

    ``generator`` (CPU) shuffles the minibatches; ``noise_generator`` (on the
    data's device) draws the reparameterisation noise. With ``Y_val`` (held-out
    rows) the stopping rule watches the validation objective, and the weights
    of the epoch that set its best value while the constraint held are
    restored at the end (an infeasible best is never restored). Raises ValueError if the loss
    stops being finite. ``resume`` (a previous ``TrainingResult.state``)
    continues with that optimizer state and multiplier.

    The stopping rule compares objectives per feature: with the learned
    decoder variance that is ``log(R)/2 + beta KL / n_features``, whose
    changes are relative changes of R, so ``tol`` means the same on every
    data set whatever its scale or dimension; with a fixed variance the
    threshold is rescaled to the same relative change of R
    (:func:`improvement_threshold`).
    """
    n_features = Y.shape[1]
    optimizer, multiplier = _optimizer_and_multiplier(module, config, Y.device, resume)
    result = TrainingResult()
    held_out = None
    if Y_val is not None:
        held_out = _HeldOut(module, Y, Y_val, config, noise_generator, resume is None)
        result.validation_scores = []
        result.kept_start = held_out.start_state is not None
    best, stall = (math.inf if held_out is None else held_out.best), 0
    module.train()
    for epoch in range(config.max_iter):
        step = config.first_epoch + epoch  # the epoch's index over all training so far
        weight = config.beta * (config.kl_weight(step) if config.kl_weight else 1.0)
        loss, reconstruction = _epoch(module, Y, optimizer, multiplier, weight, config,
                                      generator, noise_generator, epoch)
        result.loss_curve.append(loss)
        result.reconstruction_curve.append(reconstruction)
        result.n_iter = epoch + 1
        monitored = loss / n_features
        if held_out is not None:
            monitored = held_out.objective(module, reconstruction, epoch)
            result.validation_scores.append(-monitored)
        _report(config, epoch, loss, reconstruction,
                None if held_out is None else -monitored, multiplier)
        # sklearn's MLP rule: count epochs that fail to improve on the best by
        # tol, read as a relative drop of R (improvement_threshold).
        threshold = improvement_threshold(config, reconstruction, n_features)
        stall = stall + 1 if monitored > best - threshold else 0
        if monitored < best:
            best = monitored
            if held_out is not None and multiplier.feasible:
                held_out.keep(module)
                result.kept_start = False
        if (stall > config.n_iter_no_change and step + 1 >= config.earliest_stop
                and multiplier.feasible):
            result.converged = True
            break
    if config.fixed_budget and result.n_iter == config.max_iter:
        result.converged = multiplier.feasible
    if held_out is not None:
        state, result.kept_start = held_out.chosen(result.kept_start)
        if state is not None:
            module.load_state_dict(state)
    return _finish(module, optimizer, multiplier, result, config)

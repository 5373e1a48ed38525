"""Minibatch Adam training of a VAE, with the optional reconstruction constraint (docs/theory.rst)."""

import math
from dataclasses import dataclass, field

import torch

from ._constraint import LAMBDA_INIT, Constraint, Multiplier
from ._heldout import HeldOut
from ._networks import kl_elementwise
from ._optimizer import adam, optimizer_state_from_numpy, optimizer_state_to_numpy

#: ``learning_rate="adaptive"``: the step is divided by this ...
ADAPTIVE_DIVISOR = 5.0
#: ... this many times, each time the stopping rule counts more than
#: ``n_iter_no_change // 2`` epochs without improvement; after the last
#: division the same count stops the fit (docs/theory.rst, "Adaptive step").
ADAPTIVE_DIVISIONS = 1


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
    observed_per_row: float = None  # mean observed entries per row; None: every entry
    adaptive: bool = False  # divide the step when the stopping rule stalls (ADAPTIVE_*)
    step_drops: tuple = ()  # 0-based epochs before which the step is divided (a replay)

    @property
    def patience(self):
        """Epochs without improvement the rule allows: ``n_iter_no_change``, halved if adaptive."""
        return max(1, self.n_iter_no_change // 2) if self.adaptive else self.n_iter_no_change

    def observed_entries(self, n_features):
        """Mean observed entries per training row: the learned variance's divisor."""
        return n_features if self.observed_per_row is None else self.observed_per_row


@dataclass
class TrainingResult:
    """What the loop reports back to the estimator."""

    loss_curve: list = field(default_factory=list)
    reconstruction_curve: list = field(default_factory=list)
    lagrange_multiplier: float = LAMBDA_INIT
    reconstruction_average: float = None  # moving average of R; constrained training only
    validation_scores: list = None  # early stopping only: held-out ELBO per feature
    state: dict = None  # optimizer and multiplier, as plain data, to resume training
    n_iter: int = 0
    kept_start: bool = False  # early stopping restored the untrained model
    best_epoch: int = None  # early stopping: epochs of the restored weights (0: the start)
    #: early stopping: (squared error per observed entry, its SE) of the held-out rows
    heldout_variance: tuple = None
    converged: bool = False
    feasible: bool = True
    step_drops: list = field(default_factory=list)  # epochs from which the step was divided


def reconstruction_term(R, n_features, decoder_variance, floor):
    """Negative log-likelihood of the Gaussian decoder, up to constants.

    ``(n_features / 2) * log R`` for the maximum-likelihood ("learned")
    variance ``R / n_features``; ``R / (2 sigma^2)`` for a fixed ``sigma^2``.
    With missing entries ``n_features`` is the mean number of observed
    entries per row: the likelihood is that of the observed entries.
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


def _objective(decoder, y, m, z, mu, logvar, weight, config):
    """(objective, R): negative beta-ELBO (up to constants) and reconstruction loss.

    ``m`` is the batch's mask of observed entries, or None.
    """
    R = decoder.squared_error(z, y, m)
    objective = reconstruction_term(
        R, config.observed_entries(y.shape[1]), config.decoder_variance, config.recon_floor
    ) + weight * kl_term(mu, logvar, config.free_bits)
    return objective, R


def _optimizer_and_multiplier(module, config, device, resume):
    """Adam over the module's weights and the constraint's multiplier, resumed if given."""
    optimizer = adam(module.parameters(), config.learning_rate, device)
    multiplier = Multiplier(config.constraint, on_device=device.type != "cpu")
    if resume is not None:
        optimizer_state_from_numpy(optimizer, resume["optimizer"], device)
        multiplier.log_value, multiplier.average = resume["multiplier"]
    return optimizer, multiplier


def _epoch(module, Y, M, optimizer, multiplier, weight, config, generator, noise_generator,
           epoch):
    """One pass over shuffled minibatches: (mean objective, mean R) over the rows.

    ``Y`` are the rows with their holes filled and ``M`` their mask of
    observed entries, or None.
    """
    n_samples = Y.shape[0]
    order = torch.randperm(n_samples, generator=generator).to(Y.device)
    # Epoch sums stay on the device: one host sync per epoch, not three per step.
    total = torch.zeros((), dtype=Y.dtype, device=Y.device)
    recon_total = torch.zeros((), dtype=Y.dtype, device=Y.device)
    for start in range(0, n_samples, config.batch_size):
        rows = order[start : start + config.batch_size]
        y = Y[rows]
        m = None if M is None else M[rows]
        mu, logvar = module.encoder(y, m)
        eps = torch.randn(mu.shape, generator=noise_generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        objective, R = _objective(module.decoder, y, m, z, mu, logvar, weight, config)
        loss = objective
        if config.constraint is not None:
            loss = multiplier.add_penalty(loss, R)
            # The multiplier rule is per step (docs/theory.rst).
            multiplier.update(R.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        try:
            optimizer.step()
        except RuntimeError as exc:  # the Adam kernel overflows on absurd step sizes
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


def _divide_step(optimizer):
    """Divide Adam's step size by ADAPTIVE_DIVISOR (its moment estimates are kept)."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] / ADAPTIVE_DIVISOR


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


def train(module, Y, config, *, generator, noise_generator, Y_val=None, resume=None, M=None,
          M_val=None):
    """Fit ``module`` to the rows of ``Y`` (a float tensor on the module's device).

    ``Y`` and ``Y_val`` have their holes filled (the encoder's input); ``M``
    and ``M_val`` are their masks of observed entries (1.0 observed, 0.0
    missing), or None for complete rows. The loss counts observed entries only.

    ``generator`` (CPU) shuffles the minibatches; ``noise_generator`` (on the
    data's device) draws the reparameterisation noise. With ``Y_val`` (held-out
    rows) the stopping rule watches their negative ELBO and their
    reconstruction error, and at the end the weights
    :class:`~skvae._heldout.HeldOut` chooses among the epochs at
    which the constraint held are restored (an infeasible epoch is never
    restored). Raises ValueError if the loss stops being finite. ``resume``
    (a previous ``TrainingResult.state``) continues with that optimizer state
    and multiplier.

    The stopping rule compares quantities on which ``tol`` means a relative
    change of R on every data set whatever its scale or dimension. Without
    held-out rows it watches the training loss per feature: with the learned
    decoder variance that is ``log(R)/2 + beta KL / n_features``; with a
    fixed variance the threshold is rescaled to the same relative change of R
    (:func:`improvement_threshold`). With held-out rows it watches their
    negative ELBO per feature the same way and half the log of their squared
    error per entry (:func:`~skvae._heldout.monitored_error`, threshold
    ``tol``); an epoch improves if either does.

    With ``config.adaptive`` the step is divided by ADAPTIVE_DIVISOR the
    first ADAPTIVE_DIVISIONS times the rule counts more than
    ``config.patience`` epochs without improvement (the count restarts);
    the next such count stops the fit. ``config.step_drops`` replays the
    divisions of an earlier run at the same epochs.
    """
    n_features = Y.shape[1]
    optimizer, multiplier = _optimizer_and_multiplier(module, config, Y.device, resume)
    result = TrainingResult()
    held_out = None
    if Y_val is not None:
        held_out = HeldOut(module, Y, Y_val, config, noise_generator, resume is None,
                           M=M, M_val=M_val)
        result.validation_scores = []
    best, stall = (math.inf if held_out is None else held_out.best), 0
    best_error = math.inf if held_out is None else held_out.best_error
    module.train()
    for epoch in range(config.max_iter):
        step = config.first_epoch + epoch  # the epoch's index over all training so far
        weight = config.beta * (config.kl_weight(step) if config.kl_weight else 1.0)
        if epoch in config.step_drops:
            _divide_step(optimizer)
        loss, reconstruction = _epoch(module, Y, M, optimizer, multiplier, weight, config,
                                      generator, noise_generator, epoch)
        result.loss_curve.append(loss)
        result.reconstruction_curve.append(reconstruction)
        result.n_iter = epoch + 1
        # sklearn's MLP rule: count epochs that fail to improve on the best by
        # tol, read as a relative drop of R (improvement_threshold). With
        # held-out rows an epoch improves if their negative ELBO or their
        # error (on a log scale, threshold tol) does.
        threshold = improvement_threshold(config, reconstruction, n_features)
        if held_out is None:
            improved = loss / n_features < best - threshold
            best = min(best, loss / n_features)
        else:
            elbo, error = held_out.objective(module, reconstruction)
            if not (math.isfinite(elbo) and math.isfinite(error)):
                raise diverged(epoch, config)
            result.validation_scores.append(-elbo)
            improved = elbo < best - threshold or error < best_error - config.tol
            best, best_error = min(best, elbo), min(best_error, error)
            if multiplier.feasible:
                held_out.offer(module, result.n_iter)
        _report(config, epoch, loss, reconstruction,
                None if held_out is None else result.validation_scores[-1], multiplier)
        stall = 0 if improved else stall + 1
        if stall <= config.patience or step + 1 < config.earliest_stop:
            continue
        if config.adaptive and len(result.step_drops) < ADAPTIVE_DIVISIONS:
            _divide_step(optimizer)
            result.step_drops.append(epoch + 1)
            stall = 0
            if config.progress is not None:
                config.progress.note(f"epoch {step + 1}: no improvement for {config.patience + 1} "
                                     f"epochs; Adam's step divided by {ADAPTIVE_DIVISOR:g} to "
                                     f"{optimizer.param_groups[0]['lr']:.3g}")
        elif multiplier.feasible:
            result.converged = True
            break
    if config.fixed_budget and result.n_iter == config.max_iter:
        result.converged = multiplier.feasible
    if held_out is not None:
        (state, result.kept_start, result.best_epoch,
         result.heldout_variance) = held_out.chosen()
        if state is not None:
            module.load_state_dict(state)
    return _finish(module, optimizer, multiplier, result, config)

"""The training phase of a fit: the rows held out to stop on, the loop's settings, the refit on every row."""

import copy
import dataclasses

import torch

from ._fitting import split_rows, validation_split
from ._missing import observed, observed_per_row
from ._runtime import batch_and_learning_rate
from ._training import TrainingConfig, train

#: ``early_stopping="auto"`` holds out rows from this many training rows on.
AUTO_EARLY_STOPPING_MIN_ROWS = 20
#: ... and, up to this many rows, then trains again on every row for the
#: number of epochs the held-out rows chose (docs/theory.rst, "Stopping").
AUTO_REFIT_MAX_ROWS = 10_000
#: ``learning_rate="auto"`` is "adaptive" where a fit holds rows out of
#: more than this many rows (so does not refit), "constant" elsewhere.
AUTO_ADAPTIVE_MIN_ROWS = AUTO_REFIT_MAX_ROWS


def _entries_per_row(M):
    """Mean observed entries per row of mask ``M``; None for complete rows (M None)."""
    return None if M is None else observed_per_row(M, M.shape[1])


class TrainingPhaseMixin:
    """Hold out rows and run the minibatch epochs of a fit (``_BaseVAE``'s phases).

    Reads the estimator's training parameters (``batch_size``, ``tol``,
    ``early_stopping``, ...) and its ``_schedule`` hook.
    """

    def _holds_out_rows(self, n_samples, incremental):
        """Whether this fit holds out ``validation_fraction`` of the rows to stop on.

        ``early_stopping="auto"`` holds them out in ``fit`` when there are at
        least AUTO_EARLY_STOPPING_MIN_ROWS rows, never in ``partial_fit``.
        """
        if incremental:
            return False
        if self.early_stopping == "auto":
            return n_samples >= AUTO_EARLY_STOPPING_MIN_ROWS
        return bool(self.early_stopping)

    def _refits(self, run):
        """Whether this fit trains again on every row once the held-out rows chose the epochs.

        ``early_stopping="auto"`` does, in a fresh ``fit`` that held rows out,
        up to AUTO_REFIT_MAX_ROWS rows: there the held-out share is rows the
        model needs, and a second run costs little. ``early_stopping=True``
        keeps the best epoch of the run that held rows out.
        """
        return (self.early_stopping == "auto" and not run.resume and run.Y_val is not None
                and run.n_samples <= AUTO_REFIT_MAX_ROWS)

    def _hold_out(self, run):
        # The data map, the band and the certificate use every row; early
        # stopping holds rows out of the gradient steps only, to decide when
        # to stop and which epoch to keep.
        run.Y_fit, run.Y_val = run.Y, None
        run.Y_fit_in, run.Y_val_in = run.Y_in, None
        if self._holds_out_rows(run.n_samples, run.incremental):
            run.Y_fit, run.Y_val = split_rows(run.Y, self.validation_fraction, run.seeds[3])
            run.Y_fit_in, run.Y_val_in = run.Y_fit, run.Y_val
            if run.Y_in is not run.Y:  # the same rows, holes filled
                run.Y_fit_in, run.Y_val_in = validation_split(
                    run.Y_in, self.validation_fraction, run.seeds[3])

    def _adaptive(self, run):
        """Whether this fit divides its step when training stalls (``learning_rate``).

        ``"auto"`` does where the fit holds rows out of more than
        AUTO_ADAPTIVE_MIN_ROWS rows; ``partial_fit`` never does (it runs
        one epoch per call, with no stopping rule).
        """
        if run.incremental or self.learning_rate == "constant":
            return False
        if self.learning_rate == "adaptive":
            return True
        return run.Y_val is not None and run.n_samples > AUTO_ADAPTIVE_MIN_ROWS

    def _config(self, run, n_rows, M, max_iter):
        """The loop's TrainingConfig for ``n_rows`` rows with mask ``M`` (None: complete)."""
        adaptive = self._adaptive(run)
        batch_size, learning_rate = batch_and_learning_rate(
            self.batch_size, self.learning_rate_init, n_rows, adaptive
        )
        return TrainingConfig(
            beta=self.beta,
            decoder_variance=self.decoder_variance,
            max_iter=max_iter,
            batch_size=batch_size,
            learning_rate=learning_rate,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            constraint=run.constraint,
            recon_floor=1e-9 * run.total_variance,
            progress=run.progress,
            first_epoch=self.n_iter_ if run.resume else 0,
            observed_per_row=_entries_per_row(M),
            adaptive=adaptive,
            **self._schedule(),
        )

    def _train(self, run, max_iter):
        """(TrainingResult, TrainingConfig) of the minibatch epochs on ``run.Y_fit``.

        Where :meth:`_refits`, the weights go back to the start and train
        again on every row for the epochs that the held-out rows chose; if
        the constraint fails at the end of that run, the held-out run's
        weights stay.
        """
        # The encoder sees filled rows; the loss counts observed entries (M).
        Y_fit, M_fit = run.Y_fit_in, observed(run.Y_fit)[1]
        Y_val = M_val = None
        if run.Y_val is not None:
            Y_val, M_val = run.Y_val_in, observed(run.Y_val)[1]
        config = self._config(run, Y_fit.shape[0], M_fit, max_iter)
        start = copy.deepcopy(run.module.state_dict()) if self._refits(run) else None
        result = self._loop(run, config, Y_fit, M_fit, Y_val, M_val)
        if start is None or result.kept_start or not result.best_epoch:
            return result, config
        # The same batches and step sizes (the divisions replayed), now over
        # every row; the epochs are those of the chosen weights, so no
        # stopping rule runs.
        chosen = copy.deepcopy(run.module.state_dict())
        run.module.load_state_dict(start)
        n_epochs = result.best_epoch
        refit_config = dataclasses.replace(
            config, max_iter=n_epochs, earliest_stop=max(config.earliest_stop, n_epochs),
            observed_per_row=_entries_per_row(run.M), adaptive=False,
            step_drops=tuple(result.step_drops),
        )
        refit = self._loop(run, refit_config, run.Y_in, run.M, None, None,
                           "refit on every row")
        if not refit.feasible:
            # Weights that break the reconstruction constraint never replace
            # the held-out run's, which met it.
            run.module.load_state_dict(chosen)
            return result, config
        refit.validation_scores, refit.converged = result.validation_scores, result.converged
        refit.best_epoch, refit.heldout_variance = n_epochs, result.heldout_variance
        return refit, refit_config

    def _loop(self, run, config, Y, M, Y_val, M_val, label=None):
        """TrainingResult of :func:`train` on rows ``Y`` (numpy), reported to ``run.progress``."""

        def tensor(a):
            return None if a is None else torch.as_tensor(a, dtype=torch.float32,
                                                          device=run.device)

        Y_train, Y_val, M_train, M_val = map(tensor, (Y, Y_val, M, M_val))
        run.progress.start_training(config.max_iter, Y_train.shape[0], config.batch_size)
        result = train(
            run.module, Y_train, config, generator=run.generator,
            noise_generator=run.noise_generator, Y_val=Y_val,
            resume=self._training_state if run.resume else None, M=M_train, M_val=M_val,
        )
        reason = label or ("stopping rule met" if result.converged else "reached max_iter")
        run.progress.end_training(result.n_iter, reason)
        return result

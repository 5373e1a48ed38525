"""The training phase of a fit: the rows held out to stop on, and the loop's settings from the parameters."""

import torch

from ._fitting import split_rows, validation_split
from ._missing import observed, observed_per_row
from ._runtime import batch_and_learning_rate
from ._training import TrainingConfig, train

#: ``early_stopping="auto"`` holds out rows from this many training rows on.
AUTO_EARLY_STOPPING_MIN_ROWS = 20


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

    def _train(self, run, max_iter):
        """(TrainingResult, TrainingConfig) of the minibatch epochs on ``run.Y_fit``."""
        batch_size, learning_rate = batch_and_learning_rate(
            self.batch_size, self.learning_rate_init, run.Y_fit.shape[0]
        )
        # The encoder sees filled rows; the loss counts observed entries (M).
        Y_fit, M_fit = run.Y_fit_in, observed(run.Y_fit)[1]
        Y_val = M_val = None
        if run.Y_val is not None:
            Y_val, M_val = run.Y_val_in, observed(run.Y_val)[1]
        config = TrainingConfig(
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
            observed_per_row=None if M_fit is None else observed_per_row(M_fit, Y_fit.shape[1]),
            **self._schedule(),
        )

        def tensor(a):
            return None if a is None else torch.as_tensor(a, dtype=torch.float32,
                                                          device=run.device)

        Y_train, Y_val, M_train, M_val = map(tensor, (Y_fit, Y_val, M_fit, M_val))
        run.progress.start_training(config.max_iter, Y_train.shape[0], config.batch_size)
        result = train(
            run.module, Y_train, config, generator=run.generator,
            noise_generator=run.noise_generator, Y_val=Y_val,
            resume=self._training_state if run.resume else None, M=M_train, M_val=M_val,
        )
        run.progress.end_training(
            result.n_iter, "stopping rule met" if result.converged else "reached max_iter"
        )
        return result, config

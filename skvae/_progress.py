"""Fit progress for ``verbose``: phases with their times, epochs with elapsed time and ETA."""

import sys
import time
from contextlib import contextmanager


def _seconds(t):
    return f"{t:.1f} s" if t < 120 else f"{t / 60:.1f} min"


class Progress:
    """Reports one fit; created inside ``fit`` and never stored on the estimator.

    ``verbose=0`` prints nothing. ``verbose >= 1`` prints each phase (the
    data map, K-means, training, the certificate) with its time and the
    verdict at the end; epochs appear as a tqdm bar when tqdm is installed
    and ``err`` is a terminal, and otherwise as plain lines on ``out``
    (every epoch with ``verbose >= 2``, else about 20 lines per fit) with
    ``epoch i/max_iter``, the losses, the elapsed time and an ETA (an upper
    bound: the stopping rule may end training before ``max_iter``).
    """

    def __init__(self, verbose, name, *, out=None, err=None):
        self.verbose = int(verbose)
        self.name = name
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self._bar = None
        self._start = None
        #: Seconds per phase key, whatever ``verbose`` is: the fit's ``fit_times_``.
        self.times = {}

    def _print(self, text):
        if self.verbose:
            if self._bar is not None:
                self._bar.write(f"[{self.name}] {text}", file=self.err)
            else:
                print(f"[{self.name}] {text}", file=self.out, flush=True)

    @contextmanager
    def phase(self, label, key, report=True):
        """Time the block under ``key`` of :attr:`times`; report it as ``label: <seconds>``."""
        t0 = time.perf_counter()
        yield
        spent = time.perf_counter() - t0
        self.times[key] = self.times.get(key, 0.0) + spent
        if report:
            self._print(f"{label}: {_seconds(spent)}")

    def note(self, text):
        """A line of its own (a result, a verdict)."""
        self._print(text)

    def start_training(self, max_iter, n_samples, batch_size):
        self.max_iter = max_iter
        self._start = time.perf_counter()
        self._every = 1 if self.verbose >= 2 else max(1, max_iter // 20)
        self._print(f"training: up to {max_iter} epochs of {n_samples} rows, "
                    f"batch {batch_size}")
        if self.verbose and _is_terminal(self.err):
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=max_iter, desc=f"[{self.name}] epochs", unit="epoch",
                             file=self.err, leave=True)

    def epoch(self, epoch, fields):
        """Report epoch ``epoch`` (0-based); ``fields`` is the loss summary text."""
        if not self.verbose:
            return
        done = epoch + 1
        elapsed = time.perf_counter() - self._start
        eta = elapsed / done * (self.max_iter - done)
        if self._bar is not None:
            self._bar.set_postfix_str(fields, refresh=False)
            self._bar.update(1)
        elif done % self._every == 0 or done == self.max_iter:
            self._print(f"epoch {done}/{self.max_iter}  {fields}  "
                        f"elapsed {_seconds(elapsed)}  ETA <= {_seconds(eta)}")

    def end_training(self, n_iter, reason):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._start is not None:
            spent = time.perf_counter() - self._start
            self.times["training"] = self.times.get("training", 0.0) + spent
            self._print(f"training: {n_iter} epochs in {_seconds(spent)} ({reason})")


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False

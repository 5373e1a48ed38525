"""verbose: phases, epoch i/max_iter with elapsed time and ETA, the verdict; nothing stored."""

import io
import re
import sys
import warnings

import pytest
from sklearn.datasets import make_blobs

from skvae import SphericalClusterVAE, VAE
from skvae._progress import Progress

SMALL = dict(hidden_layer_sizes=(8,), random_state=0)


@pytest.fixture(scope="module")
def X():
    return make_blobs(n_samples=200, n_features=5, centers=4, random_state=0)[0]


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_by_default(X, capsys):
    _fit(SphericalClusterVAE(n_clusters=4, max_iter=3, **SMALL), X)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_phases_epochs_and_verdict_in_order(X, capsys):
    est = _fit(SphericalClusterVAE(n_clusters=4, max_iter=40, tol=0.0, early_stopping=False,
                                   n_iter_no_change=1000, verbose=1, **SMALL), X)
    out = capsys.readouterr().out
    order = ["standardize and shell radii: ", "probabilistic PCA (linear start): ",
             "K-means with 4 clusters (feasible band): ",
             "feasible band: R <= tau = ", "training: up to 40 epochs of 200 rows, batch 20",
             "epoch 2/40  loss ", "training: 40 epochs in ",
             "collapse certificate (10 passes): ", "certified: R_hat + 3 SE = "]
    positions = [out.find(text) for text in order]
    assert -1 not in positions and positions == sorted(positions), out
    epochs = re.findall(r"epoch (\d+)/40 .* elapsed [\d.]+ s  ETA <= [\d.]+ s", out)
    # verbose=1: about 20 lines (every 2nd epoch here), the last one included.
    assert [int(e) for e in epochs] == list(range(2, 41, 2))
    assert f"explained {est.explained_fraction_:.1%}" in out
    assert all(line.startswith("[SphericalClusterVAE] ") for line in out.splitlines())


def test_verbose_2_prints_every_epoch_and_the_stop_reason(X, capsys):
    est = _fit(VAE(max_iter=300, verbose=2, **SMALL), X)
    out = capsys.readouterr().out
    # The run on the rows left after the hold-out, then (early_stopping="auto")
    # the refit on every row for the epochs it chose: each prints its epochs.
    runs = re.findall(r"training: (\d+) epochs in [^(]*\(([^)]*)\)", out)
    assert len(re.findall(r"\] epoch \d+/300 ", out)) == int(runs[0][0])
    assert int(runs[0][0]) == len(est.validation_scores_)
    reason = "stopping rule met" if int(runs[0][0]) < 300 else "reached max_iter"
    assert runs[0][1] == reason
    assert runs[-1] == (str(est.n_iter_), "refit on every row")
    assert len(re.findall(rf"\] epoch \d+/{est.n_iter_} ", out)) == est.n_iter_


def test_terminal_gets_a_tqdm_bar(X, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fit(VAE(max_iter=5, tol=0.0, n_iter_no_change=100, verbose=1, **SMALL), X)
    bar = terminal.getvalue()
    assert "[VAE] epochs" in bar and "5/5" in bar
    out = capsys.readouterr().out
    assert "epoch 1/5" not in out  # the bar replaces the epoch lines
    assert "standardize: " in bar or "standardize: " in out


def test_progress_is_not_stored(X):
    est = _fit(SphericalClusterVAE(n_clusters=4, max_iter=2, verbose=1, **SMALL), X)
    assert not any(isinstance(v, Progress) for v in vars(est).values())


def test_eta_is_remaining_epochs_at_the_mean_epoch_time():
    out = io.StringIO()
    progress = Progress(1, "X", out=out, err=io.StringIO())
    progress.start_training(10, 100, 10)
    progress._start -= 4.0  # as if 4 s had passed
    progress.epoch(1, "loss 1")  # 2 epochs in 4 s: 8 more take 16 s
    assert "epoch 2/10  loss 1  elapsed 4.0 s  ETA <= 16.0 s" in out.getvalue()

"""learning_rate="adaptive": one division of the step at a stall, then the stop; its replay."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from skvae import VAE, SphericalClusterVAE
from skvae._networks import build_vae
from skvae._runtime import auto_batch_size, auto_learning_rate
from skvae._training import ADAPTIVE_DIVISIONS, ADAPTIVE_DIVISOR, TrainingConfig, train

LR = 1e-3


def _module():
    return build_vae(n_features=5, n_components=2, hidden_layer_sizes=(16,), activation="relu",
                     output_layer=None, device="cpu",
                     generator=torch.Generator().manual_seed(0))


def _rows():
    return torch.as_tensor(make_blobs(n_samples=120, n_features=5, random_state=0)[0],
                           dtype=torch.float32)


def _train(**fields):
    config = TrainingConfig(beta=1.0, decoder_variance="learned", batch_size=40,
                            learning_rate=LR, **fields)
    module = _module()
    result = train(module, _rows(), config, generator=torch.Generator().manual_seed(1),
                   noise_generator=torch.Generator().manual_seed(2))
    return module, result


def _final_step(result):
    return result.state["optimizer"]["param_groups"][0]["lr"]


@pytest.mark.parametrize("n_iter_no_change", [2, 6, 11])
def test_the_step_is_divided_at_the_first_stall_and_the_second_stops(n_iter_no_change):
    # tol is so large that only the first epoch (against an infinite best)
    # improves; the written rule then gives the epochs in closed form.
    patience = max(1, n_iter_no_change // 2)
    _, result = _train(max_iter=500, tol=1e9, n_iter_no_change=n_iter_no_change,
                       adaptive=True)
    assert ADAPTIVE_DIVISIONS == 1
    # epoch 1 improves; the count passes `patience` after patience + 1 more.
    assert result.step_drops == [1 + patience + 1]
    assert result.n_iter == 1 + 2 * (patience + 1)
    assert result.converged
    assert _final_step(result) == pytest.approx(LR / ADAPTIVE_DIVISOR, rel=1e-12)


def test_a_constant_step_stops_at_the_full_count_and_is_never_divided():
    _, result = _train(max_iter=500, tol=1e9, n_iter_no_change=6)
    assert result.step_drops == []
    assert result.n_iter == 1 + 6 + 1
    assert _final_step(result) == LR


def test_replaying_the_divisions_reproduces_the_adaptive_run_exactly():
    # The refit on every row replays the held-out run's divisions: with the
    # same generators, the same epochs at the same steps give the same weights.
    adaptive, result = _train(max_iter=500, tol=1e9, n_iter_no_change=6, adaptive=True)
    replay, replayed = _train(max_iter=result.n_iter, tol=0.0, n_iter_no_change=10_000,
                              step_drops=tuple(result.step_drops))
    assert replayed.n_iter == result.n_iter
    assert _final_step(replayed) == pytest.approx(LR / ADAPTIVE_DIVISOR, rel=1e-12)
    for a, b in zip(adaptive.state_dict().values(), replay.state_dict().values()):
        assert torch.equal(a, b)
    # Without the replay the weights differ: the division is what matched them.
    constant, _ = _train(max_iter=result.n_iter, tol=0.0, n_iter_no_change=10_000)
    assert not all(torch.equal(a, b) for a, b in
                   zip(adaptive.state_dict().values(), constant.state_dict().values()))


def _step(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X).learning_rate_


@pytest.mark.parametrize("Est", [VAE, SphericalClusterVAE])
def test_auto_is_adaptive_only_where_a_fit_holds_out_rows_of_more_than_10000(Est):
    small = np.random.default_rng(0).normal(size=(300, 3))
    large = np.random.default_rng(0).normal(size=(12_000, 3))
    params = dict(n_components=1, hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    # The held-out share leaves 10,800 rows to train on.
    boosted = 3 * auto_learning_rate(auto_batch_size(10_800))
    assert _step(Est(**params), large) == pytest.approx(boosted, rel=1e-12)
    assert _step(Est(**params, early_stopping=False), large) == pytest.approx(
        auto_learning_rate(auto_batch_size(12_000)), rel=1e-12)
    assert _step(Est(**params), small) == pytest.approx(LR, rel=1e-12)
    assert _step(Est(**params, learning_rate="adaptive"), small) == pytest.approx(
        3 * LR, rel=1e-12)
    assert _step(Est(**params, learning_rate="constant"), large) == pytest.approx(
        auto_learning_rate(auto_batch_size(10_800)), rel=1e-12)
    # A given learning_rate_init is used as it is.
    assert _step(Est(**params, learning_rate="adaptive", learning_rate_init=2e-4),
                 small) == 2e-4


def test_the_refit_on_every_row_replays_the_held_out_runs_division(monkeypatch):
    # Small data refit (early_stopping="auto"): the second run must divide
    # the step at the epoch the held-out run did, and not stop by itself.
    import skvae._training_phase as phase

    runs, real_train = [], phase.train

    def spy(module, Y, config, **kwargs):
        result = real_train(module, Y, config, **kwargs)
        runs.append((config, result))
        return result

    monkeypatch.setattr(phase, "train", spy)
    X = make_blobs(n_samples=300, n_features=5, centers=3, random_state=0)[0]
    # Without the linear path the start is untrained, so an epoch is kept
    # and the refit runs.
    est = VAE(n_components=2, hidden_layer_sizes=(8,), learning_rate="adaptive",
              linear_path=False, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    (held, held_result), (config, result) = runs
    assert held.adaptive and len(held_result.step_drops) == ADAPTIVE_DIVISIONS
    assert not config.adaptive and config.step_drops == tuple(held_result.step_drops)
    assert result.n_iter == held_result.best_epoch and result.step_drops == []
    divided = result.n_iter > held_result.step_drops[0]  # epoch indices 0 .. n_iter - 1
    assert divided  # this seed keeps an epoch after the division
    assert _final_step(result) == pytest.approx(est.learning_rate_ / ADAPTIVE_DIVISOR,
                                                rel=1e-12)

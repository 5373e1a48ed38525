"""The stopping rule, batch_size="auto" and opt-in held-out early stopping."""

import time
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning

from skvae import VAE, SphericalClusterVAE
from skvae._runtime import AUTO_BATCH_RANGE, AUTO_BATCH_STEPS, auto_batch_size


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


@pytest.mark.parametrize("n, expected", [(2, 2), (105, 16), (150, 16), (1_000, 100),
                                         (2_560, 256), (25_600, 256), (30_000, 300),
                                         (100_000, 1000), (409_600, 4096),
                                         (1_000_000, 4096)])
def test_auto_batch_size(n, expected):
    assert min(auto_batch_size(n), n) == expected
    # At least AUTO_BATCH_STEPS steps per epoch wherever the lower bound allows.
    if n // AUTO_BATCH_STEPS >= AUTO_BATCH_RANGE[0]:
        assert n // auto_batch_size(n) >= AUTO_BATCH_STEPS


@pytest.mark.parametrize("batch_size, expected", [(16, 1e-3), (256, 1e-3), (1024, 2e-3),
                                                  (4096, 4e-3)])
def test_auto_learning_rate_reaches_adam(batch_size, expected):
    # Read back from the optimizer state the fit keeps (what Adam was given).
    X = np.random.default_rng(0).normal(size=(4096, 4))
    for est in (VAE, SphericalClusterVAE):
        model = _fit(est(batch_size=batch_size, max_iter=1, hidden_layer_sizes=(4,),
                         n_components=1, warm_start=True, early_stopping=False,
                         random_state=0), X)
        lr = model._training_state["optimizer"]["param_groups"][0]["lr"]
        assert lr == pytest.approx(expected, rel=1e-12)
    fixed = _fit(VAE(batch_size=1024, learning_rate_init=5e-4, max_iter=1,
                     hidden_layer_sizes=(4,), warm_start=True, early_stopping=False,
                     random_state=0), X)
    assert fixed._training_state["optimizer"]["param_groups"][0]["lr"] == 5e-4


def test_auto_learning_rate_follows_the_batch_actually_used():
    # A batch larger than the data is cut to the data, and the rate follows
    # the cut batch: 1e-3 * sqrt(1000 / 256), not sqrt(4096 / 256).
    X = np.random.default_rng(0).normal(size=(1000, 4))
    model = _fit(VAE(batch_size=4096, max_iter=1, hidden_layer_sizes=(4,), n_components=1,
                     warm_start=True, early_stopping=False, random_state=0), X)
    lr = model._training_state["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * np.sqrt(1000 / 256), rel=1e-12)


def test_small_data_gets_several_steps_per_epoch():
    # 105 rows used to be one Adam step per epoch (batch 200): the stopping
    # rule then saw one noisy step per "epoch" and stopped after ~60 steps.
    X, _ = load_iris(return_X_y=True)
    est = _fit(SphericalClusterVAE(random_state=0, hidden_layer_sizes=(16,), max_iter=3), X)
    assert len(est.loss_curve_) == 3
    assert int(np.ceil(150 / auto_batch_size(150))) >= 9


def test_stopping_rule_is_scale_free():
    # The same data in other units gives the same standardized problem, so
    # the same number of epochs and the same curve up to the constant
    # (n_features / 2) * log(c^2) shift that would not exist after standardizing.
    X, _ = make_blobs(n_samples=300, n_features=4, centers=3, random_state=0)
    a = _fit(VAE(random_state=0, hidden_layer_sizes=(16,), max_iter=300), X)
    b = _fit(VAE(random_state=0, hidden_layer_sizes=(16,), max_iter=300), 1e4 * X)
    assert a.n_iter_ == b.n_iter_ < 300
    assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variance", ["learned", 0.05, 3.0, 400.0])
def test_improvement_threshold_is_a_relative_drop_of_R(variance):
    # ``tol`` must mean "R fell by about 2 tol" whatever the decoder variance:
    # the threshold equals the loss-per-feature change that such a drop makes
    # (the loss's reconstruction term written out here, KL held fixed).
    from skvae._training import TrainingConfig, improvement_threshold

    tol, n_features = 1e-3, 7
    config = TrainingConfig(beta=1.0, decoder_variance=variance, max_iter=1, batch_size=8,
                            learning_rate=1e-3, tol=tol, n_iter_no_change=10)
    for R in (1e-3, 0.7, 52.0):
        if variance == "learned":
            def term(r):
                return 0.5 * n_features * np.log(r)
        else:
            def term(r):
                return r / (2.0 * variance)
        drop = (term(R) - term(R * (1 - 2 * tol))) / n_features
        threshold = improvement_threshold(config, R, n_features)
        # Exact for a fixed variance; to first order in tol for log R.
        assert threshold == pytest.approx(drop, rel=1e-12 if variance != "learned" else 2e-3)


@pytest.mark.parametrize("Est", [SphericalClusterVAE, VAE])
def test_early_stopping_holds_out_rows_and_restores_the_best_epoch(Est):
    X, _ = make_blobs(n_samples=300, n_features=6, centers=3, random_state=0)
    params = dict(random_state=0, hidden_layer_sizes=(16,), max_iter=60,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=5)
    if Est is SphericalClusterVAE:
        params["n_clusters"] = 3
    est = _fit(Est(**params), X)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(scores)
    assert np.all(np.isfinite(scores))
    # The held-out rows are left out of the gradient steps only: the
    # standardization (and radii, band, certificate) use all 300 rows.
    scaler = est.shell_ if hasattr(est, "shell_") else est.scaler_
    assert_allclose(scaler.mean_, X.mean(axis=0))
    # Without early stopping the attributes exist and are None (as MLPRegressor).
    plain = _fit(Est(**{**params, "early_stopping": False}), X)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None


def _spy_on_train(monkeypatch):
    """Record (rows, held-out rows, max_iter, epochs run) of every call of the loop."""
    import skvae._training_phase as phase

    calls, real_train = [], phase.train

    def spy(module, Y, config, **kwargs):
        result = real_train(module, Y, config, **kwargs)
        Y_val = kwargs.get("Y_val")
        calls.append((Y.shape[0], None if Y_val is None else Y_val.shape[0],
                      config.max_iter, result.n_iter))
        return result

    monkeypatch.setattr(phase, "train", spy)
    return calls


@pytest.mark.parametrize("Est", [SphericalClusterVAE, VAE])
def test_auto_early_stopping_trains_again_on_every_row(monkeypatch, Est):
    X, _ = make_blobs(n_samples=300, n_features=6, centers=3, random_state=0)
    calls = _spy_on_train(monkeypatch)
    params = dict(random_state=0, hidden_layer_sizes=(16,), max_iter=60, n_iter_no_change=5)
    if Est is SphericalClusterVAE:
        params["n_clusters"] = 3
    est = _fit(Est(**params), X)
    # First the 270 rows with 30 held out, then all 300 for the epochs of
    # the best held-out score (no constraint binds on these blobs).
    (n_fit, n_val, _, ran), (n_all, no_val, refit_epochs, refit_ran) = calls
    assert (n_fit, n_val, n_all, no_val) == (270, 30, 300, None)
    scores = np.asarray(est.validation_scores_)
    assert len(scores) == ran
    # The epochs of the weights the held-out run chose (test_the_held_out_choice_...).
    assert refit_epochs == refit_ran == est.n_iter_
    assert 1 <= est.n_iter_ <= ran
    assert len(est.loss_curve_) == est.n_iter_


def test_early_stopping_true_and_large_data_keep_the_best_held_out_epoch(monkeypatch):
    import skvae._training_phase as phase

    X, _ = make_blobs(n_samples=300, n_features=6, centers=3, random_state=0)
    params = dict(random_state=0, hidden_layer_sizes=(16,), max_iter=60, n_iter_no_change=5)
    calls = _spy_on_train(monkeypatch)
    _fit(VAE(early_stopping=True, **params), X)
    assert [c[:2] for c in calls] == [(270, 30)]
    calls.clear()
    monkeypatch.setattr(phase, "AUTO_REFIT_MAX_ROWS", 299)
    _fit(VAE(**params), X)
    assert [c[:2] for c in calls] == [(270, 30)]


def test_a_refit_that_breaks_the_constraint_keeps_the_held_out_runs_weights(monkeypatch):
    import skvae._training_phase as phase

    X, _ = make_blobs(n_samples=300, n_features=6, centers=3, random_state=0)
    params = dict(random_state=0, hidden_layer_sizes=(16,), max_iter=60, n_iter_no_change=5,
                  n_clusters=3)
    held_out_only = _fit(SphericalClusterVAE(early_stopping=True, **params), X)
    real_train, calls = phase.train, []

    def infeasible_refit(module, Y, config, **kwargs):
        result = real_train(module, Y, config, **kwargs)
        calls.append(kwargs.get("Y_val") is None)
        if kwargs.get("Y_val") is None:  # the refit on every row
            result.feasible = False
        return result

    monkeypatch.setattr(phase, "train", infeasible_refit)
    est = _fit(SphericalClusterVAE(**params), X)
    assert calls == [False, True]
    # The held-out run is the early_stopping=True fit, draw for draw.
    assert_allclose(est.transform(X), held_out_only.transform(X))
    assert est.n_iter_ == held_out_only.n_iter_


def test_early_stopping_needs_three_rows():
    with pytest.raises(ValueError, match="at least 3 rows"):
        VAE(early_stopping=True).fit(np.array([[0.0, 1.0], [1.0, 0.0]]))


@pytest.mark.parametrize("n_jobs, expected", [(None, 1), (2, 2), (-1, "all")])
def test_n_jobs_sets_torch_threads_for_the_call_only(monkeypatch, n_jobs, expected):
    import joblib

    import skvae._training_phase as fitting

    expected = joblib.cpu_count() if expected == "all" else expected
    seen = []
    real_train = fitting.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(fitting, "train", spy)
    X = np.random.default_rng(0).normal(size=(120, 5))
    before = torch.get_num_threads()
    other = 3 if before != 3 else 2
    torch.set_num_threads(other)  # whatever the caller had must come back
    try:
        est = VAE(hidden_layer_sizes=(8,), max_iter=2, n_jobs=n_jobs, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        # Two calls where early_stopping="auto" trains again on every row.
        assert seen and set(seen) == {expected}
        assert torch.get_num_threads() == other
        est.transform(X)
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_divergence_names_the_epoch_over_all_training():
    # A resumed run (warm start, partial_fit) reports the model's epoch, not
    # the index inside this call: 3 epochs trained before; the first step's
    # 1e30 learning rate makes the second epoch's loss non-finite: epoch 5.
    from skvae._networks import build_vae
    from skvae._training import TrainingConfig, train

    g = torch.Generator().manual_seed(0)
    module = build_vae(n_features=5, n_components=2, hidden_layer_sizes=(16,),
                       activation="relu", output_layer=None, device="cpu", generator=g)
    Y = torch.as_tensor(make_blobs(n_samples=100, n_features=5, random_state=0)[0],
                        dtype=torch.float32)
    config = TrainingConfig(beta=1.0, decoder_variance="learned", max_iter=2, batch_size=100,
                            learning_rate=1e30, tol=0.0, n_iter_no_change=10, first_epoch=3)
    with pytest.raises(ValueError, match="Training diverged.*at epoch 5\\."):
        train(module, Y, config, generator=g, noise_generator=torch.Generator().manual_seed(1))


def test_a_trained_model_must_beat_the_start_by_two_standard_errors():
    from skvae._heldout import beats_start

    rng = np.random.default_rng(0)
    start = rng.normal(size=400)
    noise = rng.normal(size=400)
    noise = (noise - noise.mean()) / noise.std(ddof=1)  # mean 0, sd 1 exactly
    se = 1 / np.sqrt(400)
    # Paired differences with mean -d and standard error se: beaten iff d > 2 se.
    assert beats_start(start + noise - 2.5 * se, start)
    assert not beats_start(start + noise - 1.5 * se, start)
    assert not beats_start(start + noise + 2.5 * se, start)
    assert not beats_start(start[:1] - 10.0, start[:1])  # one row: no standard error


class _Weights:
    """A stand-in module whose weights are the number of the epoch that made them."""

    def __init__(self, epoch):
        self.epoch = epoch

    def state_dict(self):
        return {"epoch": self.epoch}


def _brute_force_choice(elbo_rows, sq_rows, tolerance):
    """The documented rule over every epoch at once (epoch 0 is the start)."""

    def beats(a, b):  # a's rows lower than b's by more than 2 SE of the paired differences
        diff = a - b
        return diff.mean() < -2.0 * diff.std(ddof=1) / np.sqrt(diff.size)

    means = elbo_rows.mean(axis=1)
    best = int(np.argmin(means))
    near = np.array([i for i in range(len(means)) if i == best or (
        means[i] - means[best] <= tolerance and not beats(elbo_rows[best], elbo_rows[i]))])
    pick = int(near[np.argmin(sq_rows[near].mean(axis=1))])
    if pick == 0 or beats(elbo_rows[best], elbo_rows[0]) or beats(sq_rows[pick], sq_rows[0]):
        return pick
    return 0


@pytest.mark.parametrize("seed", range(40))
def test_the_held_out_choice_is_the_documented_rule_over_every_epoch(seed):
    # Epochs whose held-out ELBO drifts while their error falls (the trade
    # the rule settles), fed one at a time: the candidates the fit keeps
    # must give the choice a brute force over all epochs gives.
    from skvae._heldout import ELBO_TOLERANCE, HeldOut, _Candidate

    rng = np.random.default_rng(seed)
    n_epochs, n_rows = 60, 30
    trend = np.cumsum(rng.normal(0.0, 0.04, size=n_epochs + 1))
    elbo = 20.0 + trend[:, None] + rng.normal(0.0, 0.3, size=(n_epochs + 1, n_rows))
    sq = (3.0 * np.exp(-np.linspace(0.0, rng.uniform(0.0, 0.5), n_epochs + 1))[:, None]
          * rng.gamma(5.0, 0.2, size=(n_epochs + 1, n_rows)))
    held = HeldOut.__new__(HeldOut)
    held.n_obs = np.full(n_rows, 4.0)
    held.start = _Candidate(elbo[0], sq[0], {"epoch": 0}, 0, is_start=True)
    held.candidates = [held.start]
    for epoch in range(1, n_epochs + 1):
        held.rows, held.sq = elbo[epoch], sq[epoch]
        held.offer(_Weights(epoch), epoch)
    state, is_start, epochs, variance = held.chosen()
    expected = _brute_force_choice(elbo, sq, ELBO_TOLERANCE)
    assert state["epoch"] == epochs == expected and is_start == (expected == 0)
    assert variance[0] == pytest.approx(sq[expected].sum() / (4.0 * n_rows))


@pytest.mark.parametrize("Est", [SphericalClusterVAE, VAE])
def test_fitted_batch_rate_and_phase_times(Est):
    # 600 rows, 10% held out: 540 training rows; the documented rule is
    # n // 10 clipped to [16, 256] and Adam 1e-3 at batches up to 256.
    X = np.random.default_rng(0).normal(size=(600, 4))
    start = time.perf_counter()
    est = Est(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    wall = time.perf_counter() - start
    assert est.batch_size_ == 54 and est.learning_rate_ == 1e-3
    phases = {"data map", "linear start", "training", "certificate", "diagnostics"}
    if Est is SphericalClusterVAE:
        phases.add("band")
    assert set(est.fit_times_) == phases
    assert all(t >= 0 for t in est.fit_times_.values())
    assert sum(est.fit_times_.values()) <= wall
    # partial_fit reports its own call's phases only: no data map after the first.
    est.partial_fit(X[:100]).partial_fit(X[100:200])
    assert "data map" not in est.fit_times_ and "training" in est.fit_times_


def test_heldout_variance_is_the_ratio_estimator_with_its_bootstrap_spread():
    from skvae._heldout import heldout_variance

    rng = np.random.default_rng(0)
    n_obs = rng.integers(3, 9, size=400).astype(float)  # rows with holes
    sq = n_obs * rng.gamma(2.0, 0.5, size=400)
    v, se = heldout_variance(sq, n_obs)
    assert v == pytest.approx(sq.sum() / n_obs.sum(), rel=1e-12)
    boot = [sq[i].sum() / n_obs[i].sum()
            for i in rng.integers(0, 400, size=(2000, 400))]
    assert se == pytest.approx(np.std(boot), rel=0.1)
    assert heldout_variance(sq[:1], n_obs[:1])[1] == np.inf


@pytest.mark.parametrize("Est", [SphericalClusterVAE, VAE])
def test_decoder_variance_is_at_least_the_held_out_error(monkeypatch, Est):
    import skvae._heldout as heldout

    X, _ = make_blobs(n_samples=200, n_features=6, centers=3, random_state=0)
    params = dict(n_components=2, hidden_layer_sizes=(16,), random_state=0, max_iter=20)
    plain = _fit(Est(early_stopping=False, **params), X)
    assert plain.decoder_variance_ == pytest.approx(plain.reconstruction_loss_ / 6, rel=1e-12)
    held = _fit(Est(**params), X)
    training = held.reconstruction_loss_ / 6
    assert held.decoder_variance_ >= training
    # The rule, with the held-out measurement replaced by known numbers.
    for measured, expected in [((5.0 * training, 0.5 * training), 5.0 * training),
                               ((0.5 * training, 0.1 * training), training)]:
        monkeypatch.setattr(heldout, "heldout_variance", lambda sq, n_obs, m=measured: m)
        est = _fit(Est(**params), X)
        assert est.decoder_variance_ == pytest.approx(expected, rel=1e-9)

"""KL, mutual information, the multiplier rule and the schedules, against closed forms."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skvae._diagnostics import active_units, mutual_information
from skvae._networks import NormConstraint, build_vae, kl_elementwise
from skvae._constraint import Constraint, Multiplier
from skvae._training import kl_term
from skvae._vae import kl_weight_schedule
from _helpers import reference_rho


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.7, -2.0]], dtype=torch.float64)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn((400_000, 3), generator=g, dtype=torch.float64)
    log_q = torch.distributions.Normal(mu, std).log_prob(z)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    mc = (log_q - log_p).mean(dim=0)
    se = (log_q - log_p).std(dim=0) / math.sqrt(z.shape[0])
    closed = kl_elementwise(mu, logvar)[0]
    assert torch.all((closed - mc).abs() < 4 * se)
    # ... and torch's own analytic KL.
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, std), torch.distributions.Normal(0.0, 1.0))
    assert_allclose(closed.numpy(), ref[0].numpy(), rtol=1e-12)


def test_free_bits_stop_gradient_below_floor():
    mu = torch.tensor([[0.05, 2.0], [-0.05, 1.0]], requires_grad=True)
    logvar = torch.zeros((2, 2), requires_grad=True)
    kl_term(mu, logvar, free_bits=0.5).backward()
    # Dimension 0 has KL 0.00125 < 0.5: no gradient. Dimension 1 is above.
    assert torch.all(mu.grad[:, 0] == 0)
    assert torch.all(mu.grad[:, 1] != 0)
    assert float(kl_term(mu.detach(), logvar.detach(), free_bits=0.5)) == pytest.approx(0.5 + 1.25)


def test_annealing_schedules():
    linear = kl_weight_schedule("linear", 4)
    assert [linear(t) for t in range(6)] == [0, 0.25, 0.5, 0.75, 1, 1]
    cyc = kl_weight_schedule("cyclical", 4)
    assert [cyc(t) for t in range(9)] == [0, 0.5, 1, 1, 0, 0.5, 1, 1, 0]
    assert kl_weight_schedule(None, 4)(0) == 1.0


def test_multiplier_update_rule():
    c = Constraint(target=1.0, collapse=3.0)  # band width 2
    m = Multiplier(c)
    assert m.value == 1.0
    m.update(torch.tensor(2.0))  # first value starts the moving average
    assert m.average == 2.0
    assert m.value == pytest.approx(math.exp(0.05 * 0.5))
    m.update(torch.tensor(10.0))  # average 2.8 -> violation 0.9
    assert m.average == pytest.approx(2.8)
    assert m.value == pytest.approx(math.exp(0.05 * (0.5 + 0.9)))
    for _ in range(10_000):
        m.update(torch.tensor(100.0))
    assert m.value == pytest.approx(1e4)  # upper bound, clipped violation
    for _ in range(10_000):
        m.update(torch.tensor(-100.0))
    assert m.value == pytest.approx(1e-3)
    assert m.feasible
    # The penalty is normalised by the band width.
    assert float(m.penalty(torch.tensor(2.0))) == pytest.approx(1e-3 * 0.5)


def test_multiplier_on_device_follows_the_same_rule():
    """The tensor-state path (GPU: no host sync per step) matches the float path."""
    c = Constraint(target=1.0, collapse=3.0)
    host, dev = Multiplier(c), Multiplier(c, on_device=True)
    losses = np.random.default_rng(0).uniform(-2.0, 8.0, size=300)
    for r in losses:
        R = torch.tensor(r, dtype=torch.float64)
        assert float(dev.penalty(R)) == pytest.approx(float(host.penalty(R)), rel=1e-12)
        host.update(R)
        dev.update(R)
        assert torch.is_tensor(dev.average) and torch.is_tensor(dev.log_value)
    assert dev.state() == pytest.approx(host.state(), rel=1e-12)
    assert dev.value == pytest.approx(host.value, rel=1e-12)
    assert dev.feasible == host.feasible


def test_norm_constraint_radial_profile_and_direction():
    r_min, r_max, knee = 0.5, 3.0, 0.8
    layer = NormConstraint(r_min, r_max, knee)
    g = torch.Generator().manual_seed(0)
    u = torch.randn((2000, 7), generator=g, dtype=torch.float64)
    u *= torch.empty((2000, 1), dtype=torch.float64).uniform_(0, 5, generator=g)
    y = layer(u)
    s = torch.linalg.vector_norm(u, dim=1).numpy()
    norms = torch.linalg.vector_norm(y, dim=1).numpy()
    assert_allclose(norms, reference_rho(s, r_min, r_max, knee), rtol=1e-12)
    # Every output lies in the shell; directions are kept.
    assert np.all(norms >= r_min - 1e-12) and np.all(norms <= r_max + 1e-12)
    cos = torch.sum(y * u, dim=1).numpy() / (norms * s)
    assert_allclose(cos, 1.0, rtol=1e-12)
    # The identity over [knee, r_max], the training rows' radial range.
    between = (s >= knee) & (s <= r_max)
    assert 100 < between.sum() < 1900
    assert torch.equal(y[between], u[between])
    # The origin has no direction: r_min * e_1.
    assert_allclose(layer(torch.zeros((1, 3))).numpy(), [[0.5, 0.0, 0.0]])


def test_fused_shell_loss_matches_autograd_through_the_layer():
    """Training's loss (layer and squared error fused, backward by hand) against
    the plain formula through the inference path, differentiated by autograd.
    The radii are not float32 numbers: float64 gradients must use them unrounded."""
    r_min, r_max, knee = 0.3, 3.1, 0.8
    layer = NormConstraint(r_min, r_max, knee)
    g = torch.Generator().manual_seed(1)
    u = torch.randn((500, 7), generator=g, dtype=torch.float64)
    u *= torch.empty((500, 1), dtype=torch.float64).uniform_(0, 5, generator=g)
    y = torch.randn((500, 7), generator=g, dtype=torch.float64)
    uu, yy = u.clone().requires_grad_(), y.clone().requires_grad_()
    reference = (yy - layer(uu)).pow(2).sum(dim=1).mean()
    ref_u, ref_y = torch.autograd.grad(reference, (uu, yy))
    fused = layer.squared_error(uu, yy)
    got_u, got_y = torch.autograd.grad(fused, (uu, yy))
    assert float(fused.detach()) == pytest.approx(float(reference.detach()), rel=1e-12)
    assert_allclose(got_u.numpy(), ref_u.numpy(), rtol=1e-10, atol=1e-14)
    assert_allclose(got_y.numpy(), ref_y.numpy(), rtol=1e-10, atol=1e-14)
    # Rows in all three pieces of the radial profile took part.
    s = torch.linalg.vector_norm(u, dim=1)
    assert (s < knee).sum() > 20 and (s > r_max).sum() > 20
    assert ((s >= knee) & (s <= r_max)).sum() > 20


def test_fused_shell_loss_backward_runs_no_python_and_keeps_the_value():
    """The fused loss's value is the plain R to the last bit, with or without
    gradients, and its backward graph holds only autograd's own nodes (no
    custom Function, whose Python backward would run on every step)."""
    layer = NormConstraint(0.5, 3.0, 0.8)
    g = torch.Generator().manual_seed(2)
    u = torch.randn((300, 5), generator=g) * torch.empty((300, 1)).uniform_(0, 5, generator=g)
    y = torch.randn((300, 5), generator=g)
    with torch.no_grad():
        plain = layer.squared_error(u, y)
        scaled = layer(u)
        reference = float(((y - scaled) ** 2).sum(dim=1).mean())
    w = torch.ones(5, requires_grad=True)
    loss = layer.squared_error(u * w, y)
    assert float(loss.detach()) == float(plain)
    assert float(loss.detach()) == pytest.approx(reference, rel=1e-5)
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        assert not isinstance(node, torch.autograd.function.BackwardCFunction), node
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    (grad,) = torch.autograd.grad(loss, w)
    (ref,) = torch.autograd.grad(((y - layer(u * w)) ** 2).sum(dim=1).mean(), w)
    assert_allclose(grad.numpy(), ref.numpy(), rtol=1e-4)


def test_norm_constraint_has_no_dead_zone():
    # d|y|/d|u| by autograd: the slope 1 - r_min/knee everywhere inside the
    # hole (where a plain clamp has 0), 1 between knee and r_max.
    r_min, r_max, knee = 1.0, 4.0, 1.5
    layer = NormConstraint(r_min, r_max, knee)
    direction = torch.tensor([0.6, -0.8], dtype=torch.float64)
    for s, expected in [(0.05, 1 / 3), (0.5, 1 / 3), (0.99, 1 / 3), (1.49, 1 / 3),
                        (1.51, 1.0), (3.9, 1.0), (4.5, 0.0)]:
        t = torch.tensor(s, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(torch.linalg.vector_norm(layer((t * direction)[None])), t)
        assert float(grad) == pytest.approx(expected, abs=1e-12), s
    # Continuous at the knee.
    below = layer(torch.tensor([[knee - 1e-9, 0.0]], dtype=torch.float64))
    assert float(below[0, 0]) == pytest.approx(knee, abs=1e-8)


def test_norm_constraint_rejects_a_knee_outside_the_shell():
    with pytest.raises(ValueError, match="knee"):
        NormConstraint(1.0, 2.0, 0.5)


def test_build_does_not_touch_global_rng():
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    a = build_vae(n_features=5, n_components=2, hidden_layer_sizes=(8,), activation="relu",
                  output_layer=None, device="cpu", generator=torch.Generator().manual_seed(1))
    b = build_vae(n_features=5, n_components=2, hidden_layer_sizes=(8,), activation="relu",
                  output_layer=None, device="cpu", generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
        bound = 1 / math.sqrt(a.encoder.body[0].in_features) if p.shape[-1] == 5 else None
        if bound is not None:
            assert p.abs().max() <= bound


def test_mutual_information_limits():
    g = torch.Generator().manual_seed(0)
    n = 300
    # Identical posteriors: I(x; z) = 0.
    mu = np.zeros((n, 3))
    assert abs(mutual_information(mu, np.zeros((n, 3)), generator=g)) < 1e-12
    # Well-separated point-like posteriors: z identifies the row, I = log n.
    mu = np.arange(n, dtype=float)[:, None] * np.ones((1, 2))
    mi = mutual_information(mu, np.full((n, 2), -20.0), generator=g)
    assert mi == pytest.approx(math.log(n), abs=1e-6)


def test_mutual_information_gaussian_closed_form():
    # mu ~ N(0, s^2), q(z|x) = N(mu, 1): I = 0.5 log(1 + s^2) per dimension.
    rng = np.random.default_rng(0)
    s2 = 4.0
    mu = rng.normal(scale=math.sqrt(s2), size=(2000, 1))
    mi = mutual_information(mu, np.zeros_like(mu), generator=torch.Generator().manual_seed(0))
    assert mi == pytest.approx(0.5 * math.log(1 + s2), abs=0.05)


def test_active_units_threshold():
    rng = np.random.default_rng(0)
    mu = np.c_[rng.normal(scale=1.0, size=500), rng.normal(scale=0.05, size=500),
               np.zeros(500)]
    assert active_units(mu) == 1
    assert active_units(mu, threshold=1e-4) == 2


def test_score_draws_have_exact_first_and_second_moments():
    from skvae._forward import moment_matched_normal

    for pairs, k in [(8, 1), (8, 5), (20, 20)]:
        E = moment_matched_normal(pairs, k, torch.Generator().manual_seed(0))
        assert E.shape == (2 * pairs, k)
        np.testing.assert_allclose(E.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(E.T @ E / len(E), np.eye(k), atol=1e-12)

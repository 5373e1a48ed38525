"""FusedAdam against torch.optim.Adam and Adam's closed form, L-BFGS against torch's; first fits import no torch._dynamo or sympy."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from skvae._optimizer import (
    FusedAdam,
    adam,
    fused_adam,
    lbfgs,
    optimizer_state_from_numpy,
    optimizer_state_to_numpy,
)

pytestmark = pytest.mark.skipif(not fused_adam(torch.device("cpu")),
                                reason="torch has no fused CPU Adam kernel before 2.4")


def _params(dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).to(device).requires_grad_()
            for shape in ((5, 3), (3,), (2, 2))]


def _grads(params, step, skip=True):
    g = torch.Generator().manual_seed(100 + step)
    # With skip, the last parameter gets no gradient on even steps: it must be skipped.
    return [None if (skip and i == 2 and step % 2 == 0) else
            torch.randn(p.shape, generator=g, dtype=p.dtype) * 10.0 ** (i - 1)
            for i, p in enumerate(params)]


def _run(make, params, steps, lr_change_at=None, skip=True):
    opt = make(params)
    for t in range(steps):
        if t == lr_change_at:
            opt.param_groups[0]["lr"] /= 5.0
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, _grads(params, t, skip)):
            p.grad = None if g is None else g.to(p.device)
        opt.step()
    return opt


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="needs a CUDA device"))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("skip", [True, False])
def test_matches_torch_adam_fused(dtype, skip, device):
    # skip=False: every parameter steps together (one shared count tensor);
    # skip=True: one parameter skips every other step (counts differ).
    ours, ref = _params(dtype, device=device), _params(dtype, device=device)
    steps = 7 if skip else 12
    a = _run(lambda p: FusedAdam(p, 3e-3, betas=(0.8, 0.99)), ours, steps, 4, skip)
    b = _run(lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.99), fused=True), ref, steps,
             4, skip)
    for p, q in zip(ours, ref):
        assert p.device.type == device and torch.equal(p, q)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys() == {0, 1, 2}
    for i in sa["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for name, v in sa["state"][i].items():
            w = sb["state"][i][name]
            assert v.dtype == w.dtype and v.device == w.device and torch.equal(v, w), (i, name)
    # The skipped parameter took steps only on odd iterations.
    assert float(sa["state"][2]["step"]) == (3.0 if skip else 12.0)


def test_one_step_is_adams_closed_form():
    # Independent of torch: after one step from zero moments, the bias-corrected
    # moments are g and g**2, so each entry moves by lr * g / (|g| + eps).
    lr, eps = 0.01, 1e-8
    (p,) = [torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64, requires_grad=True)]
    g = np.array([1e-3, -4.0, 0.0])
    opt = FusedAdam([p], lr)
    p.grad = torch.as_tensor(g)
    opt.step()
    expected = np.array([0.5, -2.0, 3.0]) - lr * g / (np.abs(g) + eps)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12, atol=1e-15)


def test_state_round_trips_between_the_two_optimizers():
    # A state saved by torch's Adam (older fitted models) resumes in FusedAdam
    # and the other way round, through the plain-data form the estimator keeps.
    first, resumed_ours, resumed_ref = _params(), _params(), _params()
    a = _run(lambda p: torch.optim.Adam(p, lr=1e-3, fused=True), first, 3)
    saved = optimizer_state_to_numpy(a)
    for p, q, r in zip(first, resumed_ours, resumed_ref):
        with torch.no_grad():
            q.copy_(p)
            r.copy_(p)
    ours = FusedAdam(resumed_ours, 1.0)
    optimizer_state_from_numpy(ours, saved, torch.device("cpu"))
    assert ours.param_groups[0]["lr"] == 1e-3
    ref = torch.optim.Adam(resumed_ref, lr=1.0, fused=True)
    optimizer_state_from_numpy(ref, optimizer_state_to_numpy(ours), torch.device("cpu"))
    for opt, params in ((ours, resumed_ours), (ref, resumed_ref)):
        for t in range(3, 6):
            opt.zero_grad()
            for p, g in zip(params, _grads(params, t)):
                p.grad = g
            opt.step()
    for p, q in zip(resumed_ours, resumed_ref):
        assert torch.equal(p, q)


def test_load_rejects_other_parameters():
    opt = FusedAdam(_params()[:2], 1e-3)
    with pytest.raises(ValueError, match="holds 3 parameters; this optimizer has 2"):
        opt.load_state_dict(FusedAdam(_params(), 1e-3).state_dict())


def test_zero_grad_in_place():
    p = torch.ones(2, requires_grad=True)
    p.grad = torch.ones(2)
    FusedAdam([p], 1e-3).zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(2))


def test_adam_picks_the_fused_class_on_cpu():
    assert isinstance(adam([torch.zeros(1, requires_grad=True)], 1e-3, torch.device("cpu")),
                      FusedAdam)


def test_lbfgs_steps_are_torch_lbfgs():
    # The same ill-conditioned quadratic from the same start: the unwrapped
    # constructor must leave every iterate of torch's L-BFGS as it is.
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    A = torch.from_numpy(Q @ np.diag(np.logspace(0, 2, 6)) @ Q.T)
    b = torch.from_numpy(rng.normal(size=6))

    def solve(make):
        z = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        opt = make([z], max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-14,
                   history_size=4, line_search_fn="strong_wolfe")

        def closure():
            loss = 0.5 * z @ A @ z - b @ z
            (z.grad,) = torch.autograd.grad(loss, z)
            return loss.detach()

        with torch.enable_grad():
            opt.step(closure)
        return z.detach().numpy(), opt.state[z]["func_evals"]

    ours, theirs = solve(lbfgs), solve(torch.optim.LBFGS)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours[1] == theirs[1] > 6  # several iterations, line searches included
    np.testing.assert_allclose(ours[0], np.linalg.solve(A.numpy(), b.numpy()), rtol=1e-6)


def test_first_calls_import_neither_torch_dynamo_nor_sympy():
    # torch.optim's constructors import torch._dynamo, and Module.to_empty of
    # meta tensors sympy: seconds, once per process, on a user's first fit.
    code = ("import sys, numpy as np, skvae\n"
            "X = np.random.default_rng(0).normal(size=(200, 4))\n"
            "before = set(sys.modules)\n"
            "skvae.SphericalClusterVAE(max_iter=2, random_state=0).fit(X)\n"
            "skvae.VAE(max_iter=2, random_state=0).fit(X)\n"
            "X[::7, 1] = np.nan\n"
            "skvae.VAEImputer(estimator=skvae.VAE(max_iter=2, random_state=0),\n"
            "                 fill_method='vae').fit_transform(X)\n"
            "new = set(sys.modules) - before\n"
            "assert not {'torch._dynamo', 'sympy'} & new, sorted({'torch._dynamo', 'sympy'} & new)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr

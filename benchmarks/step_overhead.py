"""Where SphericalClusterVAE's per-step overhead over a plain VAE comes from.

Times one training step (encoder, reparameterisation, decoder, loss,
backward, fused Adam) of the default network (64 features, hidden (128,
64), 2 latent dimensions) on one thread, with the plain VAE loss and with
four formulations of the shell output layer's loss (the fused closed-form
gradient skvae uses, the same as the custom autograd Function skvae used
before, autograd through a per-row scale, and an expanded
``|y|^2 - 2 rho u.y / s + rho^2`` form), plus probes of what one extra
elementwise op or a bare custom autograd Function costs inside a full step.
Variants alternate within each round; the table gives medians of the
per-round ratios to the plain step.

With ``--compile`` the autograd per-row scale formulation also runs
through ``torch.compile`` (inductor; needs a C++ compiler), to see whether
a compiled loss would remove the overhead.

A second section fits SphericalClusterVAE at its defaults and counts the
training steps in which every decoded row already lies where the output
layer is the identity (a fast path could skip the layer there).

    python benchmarks/step_overhead.py [--smoke] [--compile] [--output DIR]
"""

import datetime
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skvae import SphericalClusterVAE

sys.path.insert(0, str(Path(__file__).parent))
from _ablations import (  # noqa: E402
    PreviousShellLoss, counting_in_band_steps, default_network,
)
from _cli import parser, write_report  # noqa: E402
from _common import one_torch_thread  # noqa: E402
from _machine import describe, git_commit  # noqa: E402
from speed import synthetic  # noqa: E402

N_FEATURES = 64


def _plain(layer, u, y):
    return (y - u).pow(2).sum(dim=1).mean()


def _fused(layer, u, y):
    return layer.squared_error(u, y)


def _rho(layer, s):
    return torch.clamp(s, layer.knee, layer.r_max) + layer.slope * (s - layer.knee).clamp_max(0.0)


def _scaled(layer, u, y):
    s = torch.linalg.vector_norm(u, dim=1, keepdim=True)
    return (y - u * (_rho(layer, s) / s)).pow(2).sum(dim=1).mean()


def _expanded(layer, u, y):
    s = torch.linalg.vector_norm(u, dim=1)
    rho = _rho(layer, s)
    yy = torch.dot(y.view(-1), y.view(-1))
    return (yy + (rho * (rho - 2 * torch.linalg.vecdot(u, y) / s)).sum()) / y.shape[0]


def _plain_one_mul(layer, u, y):
    return (y - u * 1.0).pow(2).sum(dim=1).mean()


class _Bare(torch.autograd.Function):
    """The plain loss as a custom Function: the machinery's own cost."""

    @staticmethod
    def forward(ctx, u, y):
        d = y - u
        ctx.save_for_backward(d)
        return torch.dot(d.view(-1), d.view(-1)).div_(u.shape[0])

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return d * (g * (-2.0 / d.shape[0])), None


def _bare(layer, u, y):
    return _Bare.apply(u, y)


def _shell_function(layer, u, y):
    return PreviousShellLoss.apply(u, y, layer.r_min, layer.r_max, layer.knee, layer.slope)


VARIANTS = {
    "plain VAE loss": _plain,
    "shell, fused (skvae)": _fused,
    "shell, fused as a custom Function (before)": _shell_function,
    "shell, autograd per-row scale": _scaled,
    "shell, expanded form": _expanded,
    "plain + one elementwise mul": _plain_one_mul,
    "plain as a bare custom Function": _bare,
}


def _reference_check(layer, gen):
    """Largest difference of each shell formulation from the fused one (float64)."""
    u = (torch.randn(256, N_FEATURES, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randn(256, N_FEATURES, generator=gen, dtype=torch.float64) * 3
    out = {}
    for name in ("shell, fused (skvae)", "shell, fused as a custom Function (before)",
                 "shell, autograd per-row scale", "shell, expanded form"):
        u.grad = None
        loss = VARIANTS[name](layer, u, y)
        loss.backward()
        out[name] = (float(loss), u.grad.clone())
    ref_loss, ref_grad = out["shell, fused (skvae)"]
    return {k: max(abs(v[0] - ref_loss) / abs(ref_loss), float((v[1] - ref_grad).abs().max()))
            for k, v in out.items()}


def step_costs(batch, rounds, steps):
    gen = torch.Generator().manual_seed(0)
    module, optimizer = default_network(N_FEATURES, gen)
    layer = module.decoder.output
    Y = torch.randn(batch, N_FEATURES, generator=gen) * 3

    def step(loss_fn):
        mu, logvar = module.encoder(Y)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        u = module.decoder.head(module.decoder.body(z))
        R = loss_fn(layer, u, Y)
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(dim=1).mean()
        loss = 0.5 * N_FEATURES * torch.log(R) + kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, fn in VARIANTS.items():
            for _ in range(max(steps // 10, 1)):
                step(fn)
            t = time.perf_counter()
            for _ in range(steps):
                step(fn)
            times[name].append((time.perf_counter() - t) / steps * 1e6)
    base = times["plain VAE loss"]
    return {name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, base)))
            for name, t in times.items()}, _reference_check(layer, gen)


def in_band_fraction(data):
    """Per data set: share of training steps whose decoded rows all lie in [knee, r_max]."""
    seen = []
    out = {}
    with counting_in_band_steps(seen):
        for name, X in data.items():
            seen.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = SphericalClusterVAE(random_state=0).fit(X)
            out[name] = (est.n_iter_, len(seen), float(np.mean(seen)))
    return out


def main(argv=None):
    cli = parser(__doc__)
    cli.add_argument("--compile", action="store_true",
                     help="also time the per-row scale loss through torch.compile")
    args = cli.parse_args(argv)
    if args.compile:
        VARIANTS["shell, autograd per-row scale, torch.compile"] = torch.compile(
            _scaled, dynamic=False)
    start, commit = time.perf_counter(), git_commit()
    with one_torch_thread():
        batches = (64,) if args.smoke else (256, 1000)
        costs = {b: step_costs(b, rounds=2 if args.smoke else 15, steps=5 if args.smoke else 200)
                 for b in batches}
        from sklearn.datasets import load_diabetes, load_digits, load_iris, load_wine

        data = ({"iris": load_iris().data} if args.smoke else
                {"digits": load_digits().data, "wine": load_wine().data,
                 "diabetes": load_diabetes().data, "synthetic 20k": synthetic(20_000)})
        band = in_band_fraction(data)
    lines = [
        "# Per-step overhead of the shell output layer", "",
        f"Generated by `python benchmarks/step_overhead.py` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in "
        f"{(time.perf_counter() - start) / 60:.1f} min, one torch thread.", "",
        *describe(commit), "",
        "One training step of the default network (64 features, hidden (128, 64), 2 latent "
        "dimensions, fused Adam); median µs per step and median of per-round ratios to the "
        "plain VAE step, variants alternating within each round.", "",
        "| batch | loss | µs per step | ratio to plain |", "|---|---|---|---|",
    ]
    for b, (table, _) in costs.items():
        lines += [f"| {b} | {name} | {us:.0f} | {ratio:.3f} |" for name, (us, ratio) in table.items()]
    lines += ["", "Largest difference from the fused loss and gradient (float64, relative loss "
              "or absolute gradient): " + ", ".join(
                  f"{k}: {v:.1e}" for k, v in next(iter(costs.values()))[1].items()) + ".", ""]
    lines += ["## Steps with every decoded row in the layer's identity band", "",
              "SphericalClusterVAE at its defaults (`random_state=0`).", "",
              "| data | epochs | steps | share of steps in band |", "|---|---|---|---|"]
    lines += [f"| {name} | {e} | {n} | {f:.3f} |" for name, (e, n, f) in band.items()]
    path = write_report(args.output, "step_overhead", args.smoke, "\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()

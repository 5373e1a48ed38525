"""The one benchmarks module built on skvae's internals: ablations of the method and of its output layer.

Every other benchmark measures the public estimators. Here:

* :class:`ConstraintWithoutShell` and :class:`ShellWithoutConstraint`, the
  two ablations of the collapse benchmark;
* :func:`default_network` and :func:`counting_in_band_steps`, the pieces of
  ``step_overhead.py`` that time the output layer's loss inside one
  training step and count the steps where the layer is the identity;
* :class:`PreviousShellLoss` and :func:`previous_shell_loss`, the shell
  loss as a custom autograd Function, as it was before ``edcb41a``
  (``step_overhead.py``, ``shell_loss.py``);
* :func:`zero_filled_encoder_input` and :func:`mask_as_encoder_input`, the
  design's alternatives for what the encoder sees in a hole
  (``missing_fill.py``).
"""

import contextlib

import numpy as np
import torch

import skvae._base as base
import skvae._inference as inference
import skvae._networks as networks
import skvae._ppca_missing as ppca_missing
from skvae import SphericalClusterVAE
from skvae._missing import zero_filled
from skvae._networks import build_vae
from skvae._optimizer import fused_adam


class ConstraintWithoutShell(SphericalClusterVAE):
    """SphericalClusterVAE without the shell: trained inside the cluster-aware band, outputs free.

    Without the shell the centres are not projected (``W_S = W``) and the
    best input-independent decoder outputs the mean (``delta_collapse = T``):
    the band of radii ``r_min = 0`` and ``r_max = inf``, and no output
    layer. Everything else (standardization, K-means, anchor, margin,
    multiplier rule, certificate) is SphericalClusterVAE's, with its
    parameters and defaults.
    """

    def _fit_data_map(self, X, progress):
        attrs, Y = super()._fit_data_map(X, progress)
        attrs.update(r_min_=0.0, r_max_=np.inf, output_knee_=None, n_rows_below_knee_=0)
        return attrs, Y

    def _output_layer(self):
        return None


class ShellWithoutConstraint(SphericalClusterVAE):
    """SphericalClusterVAE trained on the plain (beta-)ELBO: shell map and norm layer, no band.

    The feasible region is still fitted, so the certificate is tested against
    the same delta_collapse, but the reconstruction constraint is not imposed.
    """

    def _fit_band(self, Y, Y_in, ppca, seed, progress):
        attrs, _ = super()._fit_band(Y, Y_in, ppca, seed, progress)
        return attrs, None

    def _constraint(self):
        return None


def default_network(n_features, generator, output_layer=(0.5, 20.0, 1.0)):
    """The default networks (hidden (128, 64), 2 latent dimensions) with a shell output layer, and their Adam."""
    module = build_vae(n_features=n_features, n_components=2, hidden_layer_sizes=(128, 64),
                       activation="relu", output_layer=output_layer, device="cpu",
                       generator=generator)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4,
                                 fused=fused_adam(torch.device("cpu")))
    return module, optimizer


class PreviousShellLoss(torch.autograd.Function):
    """The fused shell loss as skvae wrote it before ``edcb41a``: a custom Function
    whose closed-form backward runs as Python on every step (complete rows only)."""

    @staticmethod
    def forward(ctx, u, y, r_min, r_max, knee, slope):
        s = torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min_(1e-12)
        rho = torch.clamp(s, knee, r_max).add_((s - knee).clamp_max_(0.0), alpha=slope)
        c = rho.div_(s)
        d = torch.addcmul(y, u, c, value=-1.0)
        ctx.save_for_backward(u, d, c, s)
        ctx.shell = (r_min, r_max, knee)
        flat = d.view(-1)
        return torch.dot(flat, flat).div_(u.shape[0])

    @staticmethod
    def backward(ctx, g):
        u, d, c, s = ctx.saved_tensors
        r_min, r_max, knee = ctx.shell
        a = g * (-2.0 / u.shape[0])
        k = torch.where(s < knee, -r_min, 0.0)
        k = torch.where(s > r_max, -r_max, k)
        dot = torch.linalg.vecdot(u, d, dim=1).unsqueeze_(1)
        coef = dot.mul_(k).div_(s.pow(3)).mul_(a)
        return torch.addcmul(d * (c * a), u, coef), None, None, None, None, None


@contextlib.contextmanager
def previous_shell_loss():
    """Within the block, training's shell loss is :class:`PreviousShellLoss` (complete rows only)."""
    original = networks._shell_squared_error

    def previous(u, y, mask, r_min, r_max, knee, slope):
        if mask is not None:
            raise ValueError("PreviousShellLoss takes complete rows only.")
        return PreviousShellLoss.apply(u, y, r_min, r_max, knee, slope)

    networks._shell_squared_error = previous
    try:
        yield
    finally:
        networks._shell_squared_error = original


@contextlib.contextmanager
def counting_in_band_steps(seen):
    """Within the block, append to ``seen`` whether each training step's decoded rows all lie in [knee, r_max]."""
    original = networks._shell_squared_error

    def counting(u, y, mask, r_min, r_max, knee, slope):
        with torch.no_grad():
            s = torch.linalg.vector_norm(u, dim=1)
            seen.append(bool(((s >= knee) & (s <= r_max)).all()))
        return original(u, y, mask, r_min, r_max, knee, slope)

    networks._shell_squared_error = counting
    try:
        yield
    finally:
        networks._shell_squared_error = original


@contextlib.contextmanager
def zero_filled_encoder_input():
    """Within the block, rows with holes reach the encoder, K-means and the linear start zero-filled.

    Zero is the standardized column mean: the design's first choice, before
    the conditional mean of the EM probabilistic PCA replaced it.
    """
    saved = inference.conditional_fill, ppca_missing.conditional_fill

    def fill(ppca, Y):
        return zero_filled(Y)

    inference.conditional_fill = ppca_missing.conditional_fill = fill
    try:
        yield
    finally:
        inference.conditional_fill, ppca_missing.conditional_fill = saved


@contextlib.contextmanager
def mask_as_encoder_input():
    """Within the block, every fitted encoder also takes the mask of observed entries as inputs."""
    saved = base._BaseVAE._mask_inputs
    base._BaseVAE._mask_inputs = True
    try:
        yield
    finally:
        base._BaseVAE._mask_inputs = saved

"""Encoder and decoder MLPs with their linear path, and the norm-constraint output layer."""

import math

import numpy as np
import torch
from torch import nn

from ._scaling import origin_to_e1

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}

#: The knee of the output layer is at least this multiple of the inner radius.
KNEE_FACTOR = 1.5

#: Row norms are floored here in the fused training loss: 1/s^3 stays finite
#: in float32 (1e36), so no row, however small, gives an infinite gradient.
_NORM_FLOOR = 1e-12

# log-variance outputs are clamped to keep exp() finite in float32.
_LOGVAR_RANGE = (-30.0, 20.0)


_is_compiling = getattr(torch.compiler, "is_compiling", None)
if _is_compiling is None:  # torch < 2.3
    from torch._dynamo import is_compiling as _is_compiling


def _symbolic():
    """Whether torch is tracing the module (torch.export, ONNX, torch.compile).

    A traced graph cannot branch on the data, so code that takes a cheaper
    path when the data allow it takes the path that is right for all data.
    """
    return torch.jit.is_tracing() or _is_compiling()


def _row_norms(u):
    """``|u_i|`` as a column, without overflow or underflow of the squares.

    The plain norm is exact unless the sum of squares overflows (an
    infinite result) or entries' squares underflow, which can matter only
    for norms below ``sqrt(tiny) / eps``. Only then, with a NaN, or when
    traced (:func:`_symbolic`), are the norms taken with each row divided
    by its largest ``|u_ij|`` (decoded rows of a float64 latent ~1e160 have
    norms ~1e161). :func:`skvae._scaling.row_norms` is the same rule for
    numpy rows; this one stays on the tensor's device and in its graph, and
    recomputes the whole batch rather than indexing the rows that need it.
    """
    info = torch.finfo(u.dtype)
    if not _symbolic():
        norm = torch.linalg.vector_norm(u, dim=1, keepdim=True)
        trusted = (norm >= info.tiny ** 0.5 / info.eps) & (norm < math.inf)
        if bool(trusted.all()):
            return norm
    peak = u.abs().amax(dim=1, keepdim=True).clamp_min(info.tiny)
    return peak * torch.linalg.vector_norm(u / peak, dim=1, keepdim=True)


def _mlp(sizes, activation):
    """Linear layers through ``sizes`` with ``activation`` after each one."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out, device="meta"), _ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class NormConstraint(nn.Module):
    """Map every row onto the shell ``r_min <= |y| <= r_max`` with no dead zone.

    ``y = rho(|u|) * u / |u|`` with ``rho(s) = r_min + s * (1 - r_min / knee)``
    below the knee and ``rho(s) = min(s, r_max)`` above it (docs/theory.rst).
    ``rho`` is continuous, strictly increasing up to ``r_max`` and the
    identity on ``[knee, r_max]``, the training rows' radial range, so it
    removes no reconstruction the data need; unlike a plain radial clamp it
    has a positive radial gradient inside the hole, where a freshly
    initialised decoder's small outputs start. A row with ``|u| ~ 0`` has no
    direction and is sent to ``r_min * e_1``.
    """

    def __init__(self, r_min, r_max, knee=None):
        super().__init__()
        self.r_min = float(r_min)
        self.r_max = float(r_max)
        knee = self.r_max if knee is None else float(knee)
        if not self.r_min < knee <= self.r_max:
            raise ValueError(
                f"The knee of the output layer must lie in (r_min, r_max]; got "
                f"knee={knee}, r_min={self.r_min}, r_max={self.r_max}."
            )
        self.knee = knee
        self.slope = 1.0 - self.r_min / knee

    def forward(self, u):
        norm = _row_norms(u)
        tiny = torch.finfo(u.dtype).tiny ** 0.5
        rho = torch.where(
            norm < self.knee, self.r_min + self.slope * norm, norm.clamp_max(self.r_max)
        )
        # NaN rows stay NaN (a diverged network must not look like a finite one).
        y = u * (rho / norm.clamp_min(tiny))
        at_origin = norm <= tiny
        if _symbolic() or bool(at_origin.any()):
            y = origin_to_e1(y, at_origin, self.r_min)
        return y

    def squared_error(self, u, y, mask=None):
        """Training loss ``mean_i |y_i - layer(u)_i|^2``, the layer fused into it.

        The map is one per-row scale ``c = rho(s) / s`` (``slope + r_min / s``
        below the knee, ``min(1, r_max / s)`` above it) and the gradient is
        written in closed form (:func:`_shell_squared_error`). A row of exact
        zeros, which a decoder with biases does not produce, is scaled to 0
        here and sent to ``r_min * e_1`` by ``forward``; a NaN row gives a
        NaN loss. With a ``mask`` (1 where observed) only observed entries
        count.
        """
        return _shell_squared_error(u, y, mask, self.r_min, self.r_max, self.knee, self.slope)

    def extra_repr(self):
        return f"r_min={self.r_min}, r_max={self.r_max}, knee={self.knee}"


def _shell_squared_error(u, y, mask, r_min, r_max, knee, slope):
    """``R = mean_i |y_i - c(s_i) u_i|^2`` with ``s_i = |u_i|``, its gradient in closed form.

    With ``d = y - c u`` and ``k = c'(s) / s``: ``dR/du_i = -(2/n) (c_i d_i +
    k_i (u_i . d_i) u_i)`` and ``dR/dy_i = (2/n) d_i``; with a 0/1 ``mask``
    of observed entries ``d`` is ``mask * (y - c u)`` and the same formulas
    hold. Both gradients are computed here, with R, and reach autograd
    through the term ``L - L.detach()`` (value exactly 0) of the linear
    form ``L = G_u . u + G_y . y``: backward is then one multiply per input,
    run by autograd's engine with no Python, where a custom
    ``autograd.Function`` would run its Python backward on every step (at
    small batches the dispatch of these small ops, not their arithmetic,
    is the layer's cost). First derivatives only: the gradients are
    constants to autograd, so a second derivative through them is wrong.
    """
    wanted = torch.is_grad_enabled()
    grad_u, grad_y = wanted and u.requires_grad, wanted and y.requires_grad
    with torch.no_grad():
        s = torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min_(_NORM_FLOOR)
        # rho(s) = clip(s, knee, r_max) + slope * min(s - knee, 0): r_min + slope * s
        # below the knee, s up to r_max, r_max above.
        rho = torch.clamp(s, knee, r_max).add_((s - knee).clamp_max_(0.0), alpha=slope)
        c = rho.div_(s)
        d = torch.addcmul(y, u, c, value=-1.0)
        if mask is not None:
            d.mul_(mask)
        flat = d.view(-1)
        R = torch.dot(flat, flat).div_(u.shape[0])
        if not (grad_u or grad_y):
            return R
        a = -2.0 / u.shape[0]
        terms = []
        if grad_u:
            # c'(s) / s = -r_min / s^3 below the knee, -r_max / s^3 above r_max, 0 between.
            # (masked_fill_ keeps s's dtype: r_min and r_max enter float64 fits unrounded.)
            k = torch.zeros_like(s).masked_fill_(s < knee, -r_min)
            if r_max != math.inf:  # an open shell has no outer side
                k.masked_fill_(s > r_max, -r_max)
            coef = torch.linalg.vecdot(u, d, dim=1).unsqueeze_(1).mul_(k).div_(s.pow(3)).mul_(a)
            terms.append((u, torch.addcmul(d * (c * a), u, coef)))
        if grad_y:
            terms.append((y, d * -a))
    linear = torch.dot(terms[0][0].reshape(-1), terms[0][1].view(-1))
    for x, g in terms[1:]:
        linear = linear + torch.dot(x.reshape(-1), g.view(-1))
    return R + (linear - linear.detach())


def output_knee(min_norm, r_min, r_max):
    """Knee R of the output layer: ``max(min_i |y_i|, 1.5 r_min)``, at most ``r_max``.

    The layer is the identity above R; ``1.5 r_min`` keeps its slope below R,
    ``1 - r_min / R``, at least 1/3 where the smallest training norm is close
    to ``r_min`` (the paper's map puts a row at the mean on ``r_min`` itself).
    """
    return float(min(max(min_norm, KNEE_FACTOR * r_min), r_max))


class GaussianEncoder(nn.Module):
    """x -> (mu, log sigma^2) of a diagonal Gaussian q(z|x).

    With ``linear=True`` a linear path runs beside the MLP:
    ``mu = A x + a + g_mu(x)``, ``log sigma^2 = b + g_l(x)`` (docs/theory.rst,
    "The linear path").
    """

    def __init__(self, n_features, hidden_layer_sizes, n_components, activation, linear=False,
                 mask_inputs=False):
        super().__init__()
        self.mask_inputs = bool(mask_inputs)
        n_in = 2 * n_features if mask_inputs else n_features
        sizes = [n_in, *hidden_layer_sizes]
        self.body = _mlp(sizes, activation)
        self.head = nn.Linear(sizes[-1], 2 * n_components, device="meta")
        self.n_components = n_components
        if linear:
            self.linear = nn.Linear(n_in, n_components, device="meta")
            self.logvar_bias = nn.Parameter(torch.empty(n_components, device="meta"))
        else:
            self.linear = self.logvar_bias = None

    def forward(self, x, mask=None):
        """``(mu, logvar)`` of rows ``x``; with ``mask_inputs`` the 0/1 mask of
        observed entries (None: all observed) is appended to the input."""
        if self.mask_inputs:
            x = torch.cat([x, torch.ones_like(x) if mask is None else mask], dim=1)
        h = self.head(self.body(x))
        mu, logvar = h[:, : self.n_components], h[:, self.n_components :]
        if self.linear is not None:
            mu = mu + self.linear(x)
            logvar = logvar + self.logvar_bias
        return mu, logvar.clamp(*_LOGVAR_RANGE)


class Decoder(nn.Module):
    """z -> reconstruction, optionally constrained to the shell.

    With ``linear=True`` the raw output is ``B z + c + g_d(z)``.
    """

    def __init__(self, n_components, hidden_layer_sizes, n_features, activation, output,
                 linear=False):
        super().__init__()
        sizes = [n_components, *reversed(hidden_layer_sizes)]
        self.body = _mlp(sizes, activation)
        self.head = nn.Linear(sizes[-1], n_features, device="meta")
        self.linear = nn.Linear(n_components, n_features, device="meta") if linear else None
        self.output = output if output is not None else nn.Identity()

    def raw(self, z):
        """The decoder's output before the norm-constraint layer."""
        u = self.head(self.body(z))
        return u if self.linear is None else u + self.linear(z)

    def forward(self, z):
        return self.output(self.raw(z))

    def squared_error(self, z, y, mask=None):
        """Mean over rows of ``|y - decoder(z)|^2`` summed over features: R of docs/theory.rst.

        With ``mask`` (1 where observed, 0 where missing) the sum runs over
        the observed entries only.
        """
        u = self.raw(z)
        if isinstance(self.output, NormConstraint):
            return self.output.squared_error(u, y, mask)
        d = y - u
        if mask is not None:
            d = d * mask
        return d.pow(2).sum(dim=1).mean()


class VAEModule(nn.Module):
    """The encoder and decoder of one model."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder


def _assemble(spec):
    """The encoder and decoder described by ``spec``, with parameters on the meta device."""
    output = spec["output"]
    linear = spec.get("linear", False)
    module = VAEModule(
        GaussianEncoder(spec["n_features"], spec["hidden_layer_sizes"],
                        spec["n_components"], spec["activation"], linear,
                        spec.get("mask_inputs", False)),
        Decoder(spec["n_components"], spec["hidden_layer_sizes"], spec["n_features"],
                spec["activation"], None if output is None else NormConstraint(*output),
                linear),
    )
    # Plain data (ints, str, tuples), kept so the module can be stored as
    # numpy weights and rebuilt (module_state / module_from_state).
    module.spec = spec
    return module


def _materialize(module, device):
    """``module`` with each meta-device parameter replaced by an uninitialised one on ``device``.

    What ``Module.to_empty`` does, through ``torch.empty`` of each shape:
    ``to_empty`` calls ``torch.empty_like`` on meta tensors, whose reference
    implementation imports torch.fx's symbolic shapes (and sympy) the first
    time it runs, a one-off cost on the first fit of a process
    (``benchmarks/results/first_fit.md``).
    """
    for layer in module.modules():
        for name, p in list(layer.named_parameters(recurse=False)):
            fresh = torch.empty(p.shape, dtype=p.dtype, device=device)
            setattr(layer, name, nn.Parameter(fresh, requires_grad=p.requires_grad))
    return module


def build_vae(
    *,
    n_features,
    n_components,
    hidden_layer_sizes,
    activation,
    output_layer,
    device,
    generator,
    linear_start=None,
    mask_inputs=False,
):
    """Build a VAEModule on ``device`` with float32 parameters drawn from ``generator``.

    Layers are created on the meta device and initialised here, so torch's
    global random state is neither read nor advanced. The MLPs' initialisation
    is torch's default for ``nn.Linear``: weights and biases uniform in
    ``+-1/sqrt(fan_in)``. ``output_layer`` is None or ``(r_min, r_max, knee)``
    of a :class:`NormConstraint`.

    ``linear_start`` (a :class:`~skvae._ppca.PPCA`) adds the linear path and
    starts the model at that probabilistic PCA: the linear maps take its
    exact posterior and its loadings, and the MLPs' last layers start at zero,
    so the untrained model's posterior, decoder mean and ELBO are pPCA's
    (before the output layer). ``mask_inputs`` (an ablation,
    ``benchmarks/missing_fill.py``) gives the encoder the mask of observed
    entries as extra inputs, with zero linear-path weights at the start.
    """
    spec = dict(
        n_features=int(n_features),
        n_components=int(n_components),
        hidden_layer_sizes=tuple(int(h) for h in hidden_layer_sizes),
        activation=str(activation),
        output=None if output_layer is None else tuple(float(v) for v in output_layer),
        linear=linear_start is not None,
    )
    if mask_inputs:
        spec["mask_inputs"] = True
    module = _materialize(_assemble(spec), device)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    draw = torch.empty(p.shape).uniform_(-bound, bound, generator=generator)
                    p.copy_(draw)
        if linear_start is not None:
            start_at_ppca(module, linear_start)
    return module


@torch.no_grad()
def start_at_ppca(module, ppca):
    """Set the linear path to ``ppca``'s exact posterior and loadings; zero the MLP heads."""
    A = ppca.encoder_weights
    enc, dec = module.encoder, module.decoder
    if enc.mask_inputs:  # the mask's weights start at 0
        A = np.hstack([A, np.zeros_like(A)])
    values = {
        enc.linear.weight: A,
        enc.linear.bias: -A[:, : ppca.mean.size] @ ppca.mean,
        enc.logvar_bias: np.log(ppca.posterior_variance),
        dec.linear.weight: ppca.loadings,
        dec.linear.bias: ppca.mean,
        enc.head.weight: 0.0, enc.head.bias: 0.0, dec.head.weight: 0.0, dec.head.bias: 0.0,
    }
    for p, v in values.items():
        p.copy_(torch.as_tensor(v, dtype=p.dtype))


def module_state(module):
    """``{"spec": ..., "weights": {name: ndarray}}``: the networks as plain data.

    Only builtins and numpy arrays, so :mod:`pickle` and ``skops.io`` store
    it without trusting any torch type; the weights are copied to the CPU.
    """
    weights = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    return {"spec": dict(module.spec), "weights": weights}


def module_from_state(state, device="cpu"):
    """The module stored by :func:`module_state`, in eval mode on ``device``."""
    module = _assemble(state["spec"])
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in state["weights"].items()}
    module.load_state_dict(tensors, assign=True)
    return module.to(device).eval()


def kl_elementwise(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each row and latent dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
